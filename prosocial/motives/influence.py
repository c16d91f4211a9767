"""Social influence with a model of other agents (SI / MOA; specs.md §9.4).

Each agent owns a MOA: a tower (Dense 32 tanh, Dense 32 tanh) on the policy's shared
convolution features, an LSTM (128) whose input at step t is the tower output for o_t and
the one-hot actions of all N agents at t (own first, then the others in increasing index),
and a Dense head predicting the other agents' actions at t + 1 ((N − 1)·|A| logits;
Glorot-uniform kernel, zero bias: the Keras default of the reference).

Influence of agent k's action a_t (the value SSD computes at t + 1 and shifts back to t):

1. for every own action a' the MOA steps from the same state with the own-action slot set to
   a' → c(a'); as the input projection is linear, this is one gate offset per a';
2. p_j = softmax(c(a_t))_j, the prediction given the action taken;
3. m_j = Σ_a' π(a' | o_t)·softmax(c(a'))_j, renormalised — the marginal over the agent's own
   policy at t;
4. c_t = Σ_j v_j·D(p_j ‖ m_j), D = KL (or Jensen–Shannon), v_j = 1 if j was visible in o_t;
5. r_t = w(t_env)·clip(c_t, −clip, clip), w = ``influence_reward_weight`` × the piecewise
   linear schedule; 0 on the last step of an episode (its next actions belong to another
   episode); a seed whose rollout has any non-finite influence gets none
   (:func:`guard_influence`, applied before the clip).

MOA loss of agent k on a minibatch of sequences b with valid (unpadded) steps t:

    L_k = moa_loss_weight · Σ_{b,t} Σ_{j≠k} v_j(t + 1)·CE_j(t) / ((N − 1)·#{valid (b, t)})

CE_j(t) the softmax cross-entropy between the prediction from step t and agent j's action
at t + 1, v_j(t + 1) = 1 where j is visible at t + 1 (``train_moa_only_when_visible``) and
t + 1 is in the same rollout and episode, else 0. The mean runs over all (other, step)
entries with the masked ones counting as 0, as the reference's ``reduce_mean`` of the masked
cross-entropy (specs.md §9.4); a step without a next action (the rollout's last, an
episode's last) is such a zero entry (the reference drops its alignment rows from the mean
instead, a difference of one step per rollout).
Our MOA trains from live outputs; ``ref_aux_losses_detached`` keeps it frozen at init as
the reference's did (B-01).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prosocial import nets
from prosocial.motives.base import Motive


def influence_weight(knots, weight: float, env_steps) -> jax.Array:
    """``weight`` × the schedule's multiplier at ``env_steps`` (piecewise linear, held)."""
    xs = jnp.asarray([a for a, _ in knots], jnp.float32)
    ys = jnp.asarray([b for _, b in knots], jnp.float32)
    return weight * jnp.interp(jnp.asarray(env_steps, jnp.float32), xs, ys)


def influence(cond_logits: jax.Array, policy_logits: jax.Array, action: jax.Array,
              visible: jax.Array, divergence: str = "kl") -> jax.Array:
    """Causal influence of the taken action on the others' predicted actions (steps 2–4).

    Args:
      cond_logits: ``[..., A, N−1, A]``, the MOA's logits for the others given each own
        counterfactual action a' (leading A axis).
      policy_logits: ``[..., A]``, the agent's own policy at the step.
      action: int ``[...]``, the action taken.
      visible: ``[..., N−1]`` weights v_j (1 visible, 0 not).

    Returns:
      ``[...]``: Σ_j v_j·D(p_j ‖ m_j).
    """
    probs = jax.nn.softmax(cond_logits, axis=-1)  # [..., A', N-1, A]
    pi = jax.nn.softmax(policy_logits, axis=-1)
    marginal = jnp.einsum("...a,...ajb->...jb", pi, probs)
    marginal = marginal / marginal.sum(axis=-1, keepdims=True)
    p = jnp.take_along_axis(probs, action[..., None, None, None], axis=-3)[..., 0, :, :]
    if divergence == "kl":
        div = _kl(p, marginal)
    elif divergence == "js":
        mid = 0.5 * (p + marginal)
        div = 0.5 * _kl(p, mid) + 0.5 * _kl(marginal, mid)
    else:
        raise ValueError(f"unknown divergence {divergence!r}; use 'kl' or 'js'")
    # KL and JS are ≥ 0; rounding of the renormalised marginal can leave them at ±1e-7.
    div = jnp.maximum(div, 0.0)
    return jnp.sum(visible.astype(div.dtype) * div, axis=-1)


def guard_influence(c: jax.Array, num_seeds: int, clip: float) -> jax.Array:
    """Influence values ``c`` [T, P, E] (P = S·N, seed-major) made safe to learn from.

    A seed with any non-finite value gets no influence reward in this rollout (all its
    values 0); then the values are clipped to [−clip, clip]. Zeroing comes first, so +inf
    gives 0, not the clip value. The rule is applied per seed because seeds are independent
    runs, and the reference zeroes the influence of a whole rollout batch (one run's) with any
    non-finite value (specs.md §9.4 step 4): one seed's broken model leaves the others'
    rewards alone.
    """
    t, p, e = c.shape
    per_seed = c.reshape(t, num_seeds, p // num_seeds, e)
    finite = jnp.all(jnp.isfinite(per_seed), axis=(0, 2, 3))  # [S]
    c = jnp.where(finite[None, :, None, None], per_seed, 0.0).reshape(t, p, e)
    return jnp.clip(c, -clip, clip)


def _kl(p, q):
    return jnp.sum(jnp.where(p > 0, p * (jnp.log(jnp.where(p > 0, p, 1.0)) - jnp.log(q)), 0.0),
                   axis=-1)


class SocialInfluence(Motive):
    """The SI motive; ``cfg`` is a :class:`prosocial.motives.config.MotiveConfig`."""

    name = "si"
    min_agents = 2
    learned = True

    def __init__(self, cfg):
        if not cfg.moa_lstm_size >= 1 or any(h < 1 for h in cfg.moa_hidden_sizes):
            raise ValueError("motive.moa_lstm_size and moa_hidden_sizes must be positive")
        for label in ("moa_loss_weight", "influence_reward_weight", "influence_reward_clip"):
            if not getattr(cfg, label) >= 0:
                raise ValueError(f"motive.{label} must be ≥ 0, got {getattr(cfg, label)!r}")
        steps = [a for a, _ in cfg.influence_schedule]
        if not steps or any(b < a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError("motive.influence_schedule needs non-decreasing env-step knots, "
                             f"got {cfg.influence_schedule}")
        self.cfg = cfg
        self.net_cfg = None

    def check(self, env, event_keys):
        super().check(env, event_keys)
        missing = {"rgb", "visible"} - set(env.observation_space.spaces)
        if missing:
            raise ValueError(f"motive 'si' needs observations {sorted(missing)}, which "
                             f"{env.env_id or type(env).__name__} does not give")
        self.num_agents, self.num_actions = env.num_agents, env.num_actions
        n = env.num_agents
        self.own_first = np.array([[i] + [j for j in range(n) if j != i] for i in range(n)])

    # --- model ---------------------------------------------------------------------------

    def init_params(self, keys, env, policy):
        net_cfg = policy.cfg
        shape = env.observation_space.spaces["rgb"].shape
        k = net_cfg.conv_kernel
        width = (shape[0] - k + 1) * (shape[1] - k + 1) * net_cfg.conv_filters
        n, a, h = self.num_agents, self.num_actions, self.cfg.moa_lstm_size

        def one(key):
            keys = iter(jax.random.split(key, len(self.cfg.moa_hidden_sizes) + 3))
            params, d = {}, width
            for i, size in enumerate(self.cfg.moa_hidden_sizes):
                params[f"moa_{i}"] = nets.dense_params(next(keys), d, size,
                                                       net_cfg.hidden_init_scale)
                d = size
            bias = jnp.zeros((4 * h,), jnp.float32).at[h:2 * h].set(1.0)
            params["lstm"] = {
                "input_kernel": jax.nn.initializers.glorot_uniform()(
                    next(keys), (d + n * a, 4 * h), jnp.float32),
                "recurrent_kernel": jax.nn.initializers.orthogonal()(
                    next(keys), (h, 4 * h), jnp.float32),
                "bias": bias}
            # Keras default (Glorot uniform, zero bias) as the policy logits (specs.md §9.4).
            params["out"] = nets.glorot_dense(next(keys), h, (n - 1) * a)
            return params

        return jax.vmap(one)(keys)

    def init_carry(self, layout, num_envs):
        h = self.cfg.moa_lstm_size
        batch = num_envs * (layout.n if layout.shared else 1)
        zeros = jnp.zeros((layout.num_params, batch, h), jnp.float32)
        return (zeros, zeros)

    def _gates_x(self, params, features, actions):
        """Input gates of the MOA LSTM: features [P, M, D], own-first actions [P, M, N]."""
        x = nets.mlp(params, features, prefix="moa")
        onehot = jax.nn.one_hot(actions, self.num_actions).reshape(actions.shape[:-1] + (-1,))
        x = jnp.concatenate([x, onehot], axis=-1)
        kernel = params["lstm"]["input_kernel"]
        return jnp.einsum("pmi,pig->pmg", x, kernel) + params["lstm"]["bias"][:, None]

    def _own_action_rows(self, params):
        """[P, A, 4H]: the input-kernel rows of the own-action one-hot slot."""
        d = params["lstm"]["input_kernel"].shape[1] - self.num_agents * self.num_actions
        return params["lstm"]["input_kernel"][:, d:d + self.num_actions]

    def _predict(self, params, h):
        """Logits of the others' next actions: h [P, ..., H] → [P, ..., N−1, A]."""
        out = jnp.einsum("p...h,pho->p...o", h, params["out"]["kernel"])
        out = out + params["out"]["bias"].reshape((out.shape[0],) + (1,) * (out.ndim - 2)
                                                  + (-1,))
        return out.reshape(out.shape[:-1] + (self.num_agents - 1, self.num_actions))

    def _unroll(self, params, gates_x, carry, starts):
        """MOA LSTM over time: gates_x [T, P, E, 4H], starts [T, P, E] → the states before
        each step (after the episode-start reset) and the outputs."""

        def body(c, x):
            gx, st = x
            c = nets.reset_carry(c, st)
            new, h = nets.lstm_cell(params, c, gx)
            return new, (c, h)

        return jax.lax.scan(body, carry, (gates_x, starts))

    # --- rewards -------------------------------------------------------------------------------

    def intrinsic(self, params, carry, rollout, view):
        cfg = self.cfg
        lay = view.layout
        t, s = rollout.action.shape[:2]
        to_params, to_envs = lay.time_to_params, lay.time_to_envs
        # [T, S, E, N, N] (row i: agent i's own-first order of the actions) → [T, P, B, N]
        own_first = to_params(rollout.action[..., self.own_first])
        starts = jax.vmap(lay.per_param)(rollout.start)
        visible = to_params(rollout.obs["visible"])
        if not cfg.influence_only_when_visible:
            visible = jnp.ones_like(visible)
        rows = self._own_action_rows(params)  # [P, A, 4H]
        num_a = self.num_actions

        def body(c, x):
            # Features are computed step by step: a whole rollout's would not fit in memory.
            rgb, acts, st, logits, vis = x
            features = view.features({"rgb": rgb})
            gx = self._gates_x(params, features, acts)  # [P, E, 4H]
            c = nets.reset_carry(c, st)
            new, h = nets.lstm_cell(params, c, gx)
            # Counterfactual own actions a': swap the own-action rows of the input projection.
            own = acts[..., 0]
            base = gx - jnp.einsum("pea,pag->peg", jax.nn.one_hot(own, num_a), rows)
            cf = base[:, :, None] + rows[:, None]  # [P, E, A, 4H]
            c_cf = jax.tree.map(lambda v: jnp.repeat(v[:, :, None], num_a, axis=2), c)
            p, e = gx.shape[:2]
            flat = lambda v: v.reshape(p, -1, v.shape[-1])  # noqa: E731
            _, h_cf = nets.lstm_cell(params, jax.tree.map(flat, c_cf), flat(cf))
            cond = self._predict(params, h_cf.reshape(p, e, num_a, -1))  # [P, E, A, N-1, A]
            infl = influence(cond, logits, own, vis, cfg.influence_divergence)
            guess = jnp.argmax(self._predict(params, h), axis=-1)  # [P, E, N-1]
            return new, (infl, guess)

        rgb = to_params(rollout.obs["rgb"])
        new_carry, (c, guess), chunk_carries = view.scan(
            body, carry, (rgb, own_first, starts, view.logits, visible))
        valid = ~jax.vmap(lay.per_param)(rollout.done)
        c = jnp.where(valid, guard_influence(c, s, cfg.influence_reward_clip), 0.0)
        weight = influence_weight(cfg.influence_schedule, cfg.influence_reward_weight,
                                  rollout.env_steps)
        reward = to_envs(weight * c)

        # Training targets: the others' actions and visibility at t + 1.
        others = own_first[..., 1:]  # [T, P, B, N-1]
        vis = to_params(rollout.obs["visible"])  # the training mask ignores the flag
        next_others = jnp.concatenate([others[1:], jnp.zeros_like(others[:1])])
        next_visible = jnp.concatenate([vis[1:], jnp.zeros_like(vis[:1])])
        if not cfg.train_moa_only_when_visible:
            next_visible = jnp.where(jnp.arange(t)[:, None, None, None] < t - 1, 1, 0) \
                * jnp.ones_like(next_visible)
        next_visible = next_visible * valid[..., None]
        hits = (guess == next_others).astype(jnp.float32)
        w = next_visible.astype(jnp.float32)
        per_agent = (hits * w).sum(axis=(0, 2, 3)) / jnp.maximum(w.sum(axis=(0, 2, 3)), 1.0)
        diagnostics = {
            "influence_reward": lay.scatter(to_envs(c).mean(axis=(0, 2))) * weight,
            "influence_weight": jnp.full((s,), weight),
            "moa_accuracy": lay.seed_mean(per_agent),
        }
        extras = {"initial_carry": chunk_carries, "own_first_actions": own_first,
                  "next_others": next_others, "next_visible": next_visible}
        return new_carry, reward, diagnostics, extras

    # --- loss --------------------------------------------------------------------------------

    def loss(self, params, mb, view):
        """MOA cross-entropy per agent k (``moa_loss`` [P]) and its weighted sum over agents:

            moa_loss_k = Σ_{b,t} mask(b, t)·Σ_j v_j(b, t)·CE_j(b, t)
                         / ((N − 1)·Σ_{b,t} mask(b, t))

        with ``mask`` the minibatch's valid (unpadded) steps and v = ``next_visible``: the
        mean over all (other, valid step) entries, masked entries counting as 0.
        """
        features, starts = view.features, view.starts
        p, b, length = starts.shape
        gates = self._gates_x(params, features, mb["own_first_actions"].reshape(p, b * length,
                                                                               -1))
        gates = jnp.moveaxis(gates.reshape(p, b, length, -1), 2, 0)  # [L, P, B, 4H]
        _, (_, outputs) = self._unroll(params, gates, mb["initial_carry"],
                                       jnp.moveaxis(starts, 2, 0))
        logits = self._predict(params, jnp.moveaxis(outputs, 1, 0))  # [P, L, B, N-1, A]
        logits = jnp.swapaxes(logits, 1, 2)  # [P, B, L, N-1, A]
        targets = mb["next_others"]
        mask = view.mask.astype(jnp.float32)  # [P, B, L], 0 on padding
        w = mb["next_visible"].astype(jnp.float32) * mask[..., None]
        ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None],
                                  axis=-1)[..., 0]
        # Mean over every (other, step) entry of the valid steps, the masked ones counting
        # as 0 (specs.md §9.4): dividing by the visible entries only would scale the loss by
        # 1 / (visible fraction).
        entries = mask.sum(axis=(1, 2)) * (self.num_agents - 1)
        moa_loss = (ce * w).sum(axis=(1, 2, 3)) / jnp.maximum(entries, 1.0)
        total = self.cfg.moa_loss_weight * moa_loss.sum()
        if self.cfg.ref_aux_losses_detached:
            total = jax.lax.stop_gradient(total)
        return total, {"moa_loss": moa_loss}
