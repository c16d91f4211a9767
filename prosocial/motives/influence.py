"""Social influence with a model of other agents (SI / MOA; specs.md §9.4).

Each agent owns a MOA: a tower (Dense 32 tanh, Dense 32 tanh) on the policy's shared
convolution features, an LSTM (128) whose input at step t is the tower output for o_t and
the one-hot actions of all N agents at t (own first, then the others in increasing index),
and a Dense head predicting the other agents' actions at t + 1 ((N − 1)·|A| logits;
Glorot-uniform kernel, zero bias: the Keras default of the reference). The model is
:class:`prosocial.motives.moa.ModelOfOtherAgents` (shared with SCM and EMuReL); this module
holds the influence reward built on it.

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

from prosocial import nets
from prosocial.motives.base import Motive
from prosocial.motives.moa import (
    ModelOfOtherAgents,
    check_moa_env,
    next_action_targets,
    prediction_accuracy,
)
from prosocial.schedules import knots, piecewise_linear


def influence_weight(knots, weight: float, env_steps) -> jax.Array:
    """``weight`` × the schedule's multiplier at ``env_steps`` (piecewise linear, held)."""
    return weight * piecewise_linear(knots, env_steps)


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
        ModelOfOtherAgents.check_config(cfg)
        for label in ("moa_loss_weight", "influence_reward_weight", "influence_reward_clip"):
            if not getattr(cfg, label) >= 0:
                raise ValueError(f"motive.{label} must be ≥ 0, got {getattr(cfg, label)!r}")
        if not knots("motive.influence_schedule", cfg.influence_schedule):
            raise ValueError("motive.influence_schedule needs at least one knot")
        self.cfg = cfg
        self.net_cfg = None

    def check(self, env, event_keys):
        super().check(env, event_keys)
        self.num_agents, self.num_actions, self.own_first = check_moa_env(self.name, env)

    @property
    def moa(self) -> ModelOfOtherAgents:
        """The model of other agents for the env's agents and actions (known after
        :meth:`check`)."""
        return ModelOfOtherAgents.from_config(self.cfg, self.num_agents, self.num_actions)

    # --- model ---------------------------------------------------------------------------

    def init_params(self, keys, env, policy):
        net_cfg = policy.cfg
        shape = env.observation_space.spaces["rgb"].shape
        width = nets.conv_width(net_cfg, shape)
        return self.moa.init(keys, width, net_cfg.hidden_init_scale)

    def init_carry(self, layout, num_envs):
        return self.moa.initial_carry(layout.num_params, layout.batch(num_envs))

    # --- rewards -------------------------------------------------------------------------------

    def intrinsic(self, params, carry, rollout, view):
        cfg, moa = self.cfg, self.moa
        lay = view.layout
        s = rollout.action.shape[1]
        to_params, to_envs = lay.time_to_params, lay.time_to_envs
        # [T, S, E, N, N] (row i: agent i's own-first order of the actions) → [T, P, B, N]
        own_first = to_params(rollout.action[..., self.own_first])
        starts = jax.vmap(lay.per_param)(rollout.start)
        visible = to_params(rollout.obs["visible"])
        if not cfg.influence_only_when_visible:
            visible = jnp.ones_like(visible)

        def body(c, x):
            # Features are computed step by step: a whole rollout's would not fit in memory.
            rgb, acts, st, logits, vis = x
            gx = moa.gates(params, view.features({"rgb": rgb}), acts)  # [P, E, 4H]
            own = acts[..., 0]
            h_cf = moa.counterfactual_step(params, c, gx, own, st)  # [P, E, A, H]
            new, h = moa.step(params, c, gx, st)
            cond = moa.predict(params, h_cf)  # [P, E, A, N-1, A]
            infl = influence(cond, logits, own, vis, cfg.influence_divergence)
            guess = jnp.argmax(moa.predict(params, h), axis=-1)  # [P, E, N-1]
            return new, (infl, guess)

        rgb = to_params(rollout.obs["rgb"])
        new_carry, (c, guess), chunk_carries = view.scan(
            body, carry, (rgb, own_first, starts, view.logits, visible))
        valid = ~jax.vmap(lay.per_param)(rollout.done)
        c = jnp.where(valid, guard_influence(c, s, cfg.influence_reward_clip), 0.0)
        weight = influence_weight(cfg.influence_schedule, cfg.influence_reward_weight,
                                  rollout.env_steps)
        reward = to_envs(weight * c)

        # Training targets: the others' actions and visibility at t + 1 (the training mask
        # ignores ``influence_only_when_visible``).
        next_others, next_visible = next_action_targets(
            own_first, to_params(rollout.obs["visible"]), valid, cfg.train_moa_only_when_visible)
        diagnostics = {
            "influence_reward": lay.scatter(to_envs(c).mean(axis=(0, 2))) * weight,
            "influence_weight": jnp.full((s,), weight),
            "moa_accuracy": lay.seed_mean(prediction_accuracy(guess, next_others,
                                                              next_visible)),
        }
        extras = {"initial_carry": chunk_carries, "own_first_actions": own_first,
                  "next_others": next_others, "next_visible": next_visible}
        return new_carry, reward, diagnostics, extras

    # --- loss --------------------------------------------------------------------------------

    def loss(self, params, mb, view):
        """MOA cross-entropy per agent k (``moa_loss`` [P]; :func:`prosocial.motives.moa.
        cross_entropy_loss`) and its weighted sum over agents:

            moa_loss_k = Σ_{b,t} mask(b, t)·Σ_j v_j(b, t)·CE_j(b, t)
                         / ((N − 1)·Σ_{b,t} mask(b, t))

        with ``mask`` the minibatch's valid (unpadded) steps and v = ``next_visible``: the
        mean over all (other, valid step) entries, masked entries counting as 0.
        """
        moa_loss = self.moa.loss(params, view.features, mb["own_first_actions"],
                                 mb["initial_carry"], view.starts, mb["next_others"],
                                 mb["next_visible"], view.mask)
        total = self.cfg.moa_loss_weight * moa_loss.sum()
        if self.cfg.ref_aux_losses_detached:
            total = jax.lax.stop_gradient(total)
        return total, {"moa_loss": moa_loss}
