"""EMuReL: inequity aversion weighted by environmental impact (specs.md §9.6, [EMUREL] §4).

Agent k owns the §9.4 model of other agents (MOA, on the policy's convolution) and an
extended ICM: an encoder φ (its own Conv 3×3 → q features), a forward model f and an
inverse model g. With a_τ the joint action at step τ as N one-hot blocks of |A| in k's
own-first order (k, then the others in increasing index) and u_τ the MOA's hidden state
carried into step τ (it has consumed o_{τ−1} and a_{τ−1}; 0 at an episode's first step;
under a stop-gradient), for the transition o_τ → o_{τ+1}:

    f(φ(o_τ), u_τ, a_τ) = relu(tanh([φ, u, a] W₁ + b₁) W₂ + b₂)   prediction of φ(o_{τ+1})  (eq. 7)
    g(φ(o_τ), φ(o_{τ+1}), u_τ) = tanh([φ, φ', u] V₁ + c₁) V₂ + c₂  logits [N, |A|] of a_τ (eq. 9)

Environmental impact of another agent j in k's view (eq. 6, Fig. 1; D-11, B-21):

    ŝ = f(φ(o_τ), u_τ, a_τ),   ŝ^{−j} = f(φ(o_τ), u_τ, a_τ with j's block set to zeros)
    L_kj = ½ · mean_q (ŝ − ŝ^{−j})²            (:func:`environmental_impact`)
    d_kj = L_kj / (max_{j'≠k} L_kj' + 1e-8)    (:func:`normalise_impact`)

Zeroing j's block is zeroing the input weights of j's action, not j taking a no-op. The
paper writes ½‖·‖² (a sum over the q features); the mean differs by 1/q, which the
normalisation cancels. ``impact_norm="minmax_others"`` gives (L − min)/(max − min + 1e-8)
over the others instead; ``ref_impact_nan`` drops the 1e-8 as EMUREL-CODE does, which gives
NaN where all impacts are 0 (B-14). With N = 2 the single other agent gets d = L/(L + 1e-8)
≈ 1 whenever L > 0, and EMuReL is smoothed IA.

Alignment (step 5): the impact of the joint action a_τ belongs to the reward of step τ. The
reference computes it one step late, when o_{τ+1} arrives, shifts it back and pads the last
step of a fragment with 0 (B-18); the impact needs only inputs of step τ, so here every step
has its own, the last of a rollout or an episode included.

Intrinsic reward (eq. 4) with w the smoothed extrinsic rewards of §9.3 (γλ = 0.81):

    i_k = −α_k/(N − 1) · Σ_{j≠k} max(d_kj·w_j − w_k, 0)
          − β_k/(N − 1) · Σ_{j≠k} max(w_k − d_kj·w_j, 0)

(:func:`environmental_impact_reward`); the learning reward is e_k + i_k. EMUREL-CODE computes
the influence and curiosity rewards but adds neither, so neither is added here.

Losses of agent k on the valid transitions τ (o_{τ+1} in the same rollout and episode):

    L_F(τ) = ½ · mean_q (f(φ(o_τ), u_τ, a_τ) − φ(o_{τ+1}))²              (eq. 8; trains f, φ)
    L_I(τ) = Σ_{i=1..N} CE(softmax(g(·)_i), a^i_τ)                        (eq. 10; trains g, φ)
    loss_k = scm_loss_weight · mean_τ [w·L_F(τ) + (1 − w)·L_I(τ)] + moa_loss_weight · MOA loss

with w = ``scm_forward_vs_inverse_loss_weight`` (0.5) and the MOA loss of §9.4. The inverse
losses stay aligned with their steps (the reference flattens them to N·T, B-16, which is
harmless there only because its losses carry no gradient). ``ref_aux_losses_detached``
reproduces that: the MOA, φ, f and g keep their initial weights (B-01);
``ref_inverse_relu_logits`` applies the reference's ReLU to g's logits (B-15).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prosocial import nets
from prosocial.motives.base import Motive, select_agents
from prosocial.motives.chunking import over_sequences
from prosocial.motives.forward_loss import relu_dense_surprise
from prosocial.motives.inequity import _as_float, smooth_rewards
from prosocial.motives.moa import (
    ModelOfOtherAgents,
    check_moa_env,
    cross_entropy_loss,
    next_action_targets,
    own_first_order,
    prediction_accuracy,
)

IMPACT_NORMS = ("max", "minmax_others")
HIDDEN = 32
"""Width of the forward and inverse models' hidden layer ([EMUREL] Fig. A.2)."""


# --- pure functions --------------------------------------------------------------------------


def others_order(num_agents: int) -> np.ndarray:
    """``[N, N − 1]`` int: row k lists the agents other than k in increasing index."""
    return own_first_order(num_agents)[:, 1:]


def ablated_joint_actions(own_first_onehot: jax.Array) -> jax.Array:
    """The forward model's action inputs: the joint action and, for each other agent, the
    joint action with that agent's block set to zeros.

    Args:
      own_first_onehot: ``[..., N, A]``, the one-hot joint action in the agent's own-first
        order (block 0 its own action).

    Returns:
      ``[..., N, N·A]``: row 0 the joint action, row i ≥ 1 with block i zeroed (the i-th
      other agent in increasing index).
    """
    n = own_first_onehot.shape[-2]
    keep = 1.0 - np.eye(n, dtype=np.float32)
    keep[0] = 1.0  # row 0: nothing removed
    joint = own_first_onehot[..., None, :, :] * keep[:, :, None]  # [..., N(rows), N, A]
    return joint.reshape(joint.shape[:-2] + (-1,))


def environmental_impact(prediction, ablated) -> jax.Array:
    """L_kj = ½ · mean over features of (ŝ − ŝ^{−j})² ([EMUREL] eq. 6 as the code, D-11).

    Args:
      prediction: ŝ, the forward model's prediction from the joint action, ``[..., q]``.
      ablated: ŝ^{−j} for each other agent j, ``[..., N − 1, q]``.

    Returns:
      ``[..., N − 1]``, ≥ 0; 0 for an agent whose action the model ignores.
    """
    prediction, ablated = _as_float(prediction), _as_float(ablated)
    if ablated.shape[:-2] != prediction.shape[:-1] or ablated.shape[-1] != prediction.shape[-1]:
        raise ValueError(f"environmental_impact: ablated must have shape [..., N − 1, q] "
                         f"around prediction's [..., q] = {prediction.shape}, got "
                         f"{ablated.shape}")
    return 0.5 * jnp.mean(jnp.square(prediction[..., None, :] - ablated), axis=-1)


def normalise_impact(impact, mode: str = "max", eps: float = 1e-8) -> jax.Array:
    """Unity-based normalisation of the impacts across the other agents (§9.6 step 4, D-12).

    ``max``: d_j = L_j / (max_j' L_j' + eps), the most impactful other agent ≈ 1 (what
    EMUREL-CODE's min–max over a row padded with zeros amounts to).
    ``minmax_others``: d_j = (L_j − min L) / (max L − min L + eps) over the others only.

    Args:
      impact: L ≥ 0, shape ``[..., N − 1]``.
      mode: ``"max"`` or ``"minmax_others"``.
      eps: added to the denominator; ``eps = 0`` is the reference's division, NaN where the
        denominator is 0 (B-14).

    Returns:
      d, shape ``[..., N − 1]``, in [0, 1].
    """
    impact = _as_float(impact)
    if impact.ndim < 1:
        raise ValueError(f"normalise_impact: impact must have shape [..., N − 1], got "
                         f"{impact.shape}")
    top = impact.max(axis=-1, keepdims=True)
    if mode == "max":
        return impact / (top + eps)
    if mode == "minmax_others":
        low = impact.min(axis=-1, keepdims=True)
        return (impact - low) / (top - low + eps)
    raise ValueError(f"unknown impact_norm {mode!r}; use one of {', '.join(IMPACT_NORMS)}")


def environmental_impact_reward(smoothed, impact, alpha, beta) -> jax.Array:
    """The intrinsic reward of [EMUREL] eq. 4, shape ``[..., N]``:

        i_k = −α_k/(N − 1) · Σ_{j≠k} max(d_kj·w_j − w_k, 0)
              − β_k/(N − 1) · Σ_{j≠k} max(w_k − d_kj·w_j, 0)

    With every d = 1 it is :func:`prosocial.motives.inequity.inequity_aversion`.

    Args:
      smoothed: w, the smoothed extrinsic rewards of all agents, ``[..., N]`` (N ≥ 2).
      impact: d, ``[..., N, N − 1]``: row k holds d_kj for the others j ≠ k in increasing
        index.
      alpha, beta: scalars or one per agent ``[N]``.

    Returns:
      i, ``[..., N]`` (≤ 0 for non-negative α, β).
    """
    w, d = _as_float(smoothed), _as_float(impact)
    if w.ndim < 1 or w.shape[-1] < 2:
        raise ValueError(f"environmental_impact_reward: smoothed must have shape [..., N] "
                         f"with N >= 2 agents, got shape {w.shape}")
    n = w.shape[-1]
    if d.shape != w.shape + (n - 1,):
        raise ValueError(f"environmental_impact_reward: impact must have shape "
                         f"{w.shape + (n - 1,)} (smoothed's, then N − 1 others), got {d.shape}")
    for name, weight in (("alpha", alpha), ("beta", beta)):
        if jnp.shape(weight) not in ((), (n,)):
            raise ValueError(f"environmental_impact_reward: {name} must be a scalar or have "
                             f"shape ({n},), got {jnp.shape(weight)}")
    weighted = d * w[..., others_order(n)]  # [..., N, N-1]: d_kj·w_j
    gap = weighted - w[..., None]
    envy = jnp.maximum(gap, 0.0).sum(-1)
    guilt = jnp.maximum(-gap, 0.0).sum(-1)
    return -(alpha * envy + beta * guilt) / (n - 1)


def inverse_cross_entropy(logits, actions) -> jax.Array:
    """L_I = Σ_i CE(softmax(logits_i), a^i) over all N agents (eq. 10): logits ``[..., N, A]``,
    actions int ``[..., N]`` → ``[...]``."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(logp, actions[..., None], axis=-1)[..., 0].sum(-1)


# --- the extended ICM ------------------------------------------------------------------------


class ImpactModel:
    """φ, f and g of one agent per parameter set (module docstring), parameters stacked
    ``[P, ...]`` in ``{"phi", "forward_0", "forward_1", "inverse_0", "inverse_1"}``.

    Initialisation as EMUREL-CODE (Keras): φ's kernel Glorot-uniform, the four Dense kernels
    normalised columns of norm 1.0, biases 0.
    """

    def __init__(self, obs_shape, conv_filters: int, conv_kernel: int, num_agents: int,
                 num_actions: int, lstm_size: int, conv_impl: str = "auto",
                 relu_logits: bool = False):
        h, w, c = obs_shape
        if h < conv_kernel or w < conv_kernel:
            raise ValueError(f"'rgb' observation {h}×{w} is smaller than the encoder's "
                             f"{conv_kernel}×{conv_kernel} kernel")
        self.obs_shape, self.filters, self.kernel = tuple(obs_shape), conv_filters, conv_kernel
        self.q = (h - conv_kernel + 1) * (w - conv_kernel + 1) * conv_filters
        self.num_agents, self.num_actions, self.lstm_size = num_agents, num_actions, lstm_size
        self.conv_impl = nets.NetConfig(conv_impl=conv_impl).resolved_conv_impl()
        self.relu_logits = relu_logits

    def init(self, keys: jax.Array):
        q, n, a, h = self.q, self.num_agents, self.num_actions, self.lstm_size
        k = self.kernel

        def one(key):
            ks = jax.random.split(key, 5)
            return {
                "phi": nets.conv_params(ks[0], self.obs_shape, k, self.filters),
                "forward_0": nets.dense_params(ks[1], q + h + n * a, HIDDEN, 1.0),
                "forward_1": nets.dense_params(ks[2], HIDDEN, q, 1.0),
                "inverse_0": nets.dense_params(ks[3], 2 * q + h, HIDDEN, 1.0),
                "inverse_1": nets.dense_params(ks[4], HIDDEN, n * a, 1.0),
            }

        return jax.vmap(one)(keys)

    def encode(self, params, rgb: jax.Array) -> jax.Array:
        """φ: uint8 ``[P, M, H, W, C]`` → ``[P, M, q]`` (÷255 folded into the kernel)."""
        phi = params["phi"]
        y = nets.conv_relu(self.conv_impl, rgb, phi["kernel"] / 255.0, phi["bias"])
        return y.reshape(y.shape[:2] + (-1,))

    def forward(self, params, phi: jax.Array, u: jax.Array, joint: jax.Array) -> jax.Array:
        """f for V action inputs at once: φ ``[P, M, q]``, u ``[P, M, H]``, joint
        ``[P, M, V, N·A]`` → ``[P, M, V, q]``. The first layer is linear in its
        concatenated input, so the state part is computed once for all V."""
        layer = params["forward_0"]
        q, h = phi.shape[-1], u.shape[-1]
        kernel = layer["kernel"]
        state = (jnp.einsum("pmi,pio->pmo", phi, kernel[:, :q])
                 + jnp.einsum("pmi,pio->pmo", u, kernel[:, q:q + h]))
        acts = jnp.einsum("pmvi,pio->pmvo", joint, kernel[:, q + h:])
        hidden = jnp.tanh(state[:, :, None] + acts + layer["bias"][:, None, None])
        return jax.nn.relu(nets.dense(params["forward_1"], hidden))

    def inverse(self, params, phi: jax.Array, phi_next: jax.Array, u: jax.Array) -> jax.Array:
        """g: ``[P, M, q]`` twice and u ``[P, M, H]`` → logits ``[P, M, N, A]`` of every
        agent's action (own first)."""
        hidden = jnp.tanh(nets.dense(params["inverse_0"], jnp.concatenate([phi, phi_next, u], -1)))
        logits = nets.dense(params["inverse_1"], hidden)
        if self.relu_logits:
            logits = jax.nn.relu(logits)
        return logits.reshape(logits.shape[:-1] + (self.num_agents, self.num_actions))

    def sequence_hidden(self, params, phi_seq: jax.Array, u: jax.Array, own_first: jax.Array
                        ) -> tuple[jax.Array, jax.Array]:
        """f's last hidden layer and g's logits on sequences of consecutive steps, where
        φ(o_{τ+1}) is the next row's φ.

        Args:
          phi_seq: ``[P, B, L + 1, q]``, φ of the L observations and of the one after them.
          u: ``[P, B, L, H]``; own_first: int ``[P, B, L, N]``.

        Returns:
          f's hidden layer ``[P, B, L, 32]`` (its prediction of φ(o_{τ+1}) is
          relu(hidden W₂ + b₂), :func:`~prosocial.motives.forward_loss.relu_dense_surprise`
          compares the two without building it) and g's logits ``[P, B, L, N, A]``:
          :meth:`forward` and :meth:`inverse` of the rows and their next rows, with every
          product of a φ and a first-layer kernel in one matmul (φ is the widest input and
          is read once).
        """
        q, h, width = self.q, self.lstm_size, HIDDEN
        f0, i0 = params["forward_0"], params["inverse_0"]
        kernel = jnp.concatenate([f0["kernel"][:, :q], i0["kernel"][:, :q],
                                  i0["kernel"][:, q:2 * q]], axis=-1)  # [P, q, 3·32]
        z = jnp.einsum("pbli,pio->pblo", phi_seq, kernel)
        bias = lambda x: x[:, None, None]  # noqa: E731
        onehot = jax.nn.one_hot(own_first, self.num_actions)
        onehot = onehot.reshape(onehot.shape[:-2] + (-1,))
        hidden = jnp.tanh(z[:, :, :-1, :width]
                          + jnp.einsum("pbli,pio->pblo", u, f0["kernel"][:, q:q + h])
                          + jnp.einsum("pbli,pio->pblo", onehot, f0["kernel"][:, q + h:])
                          + bias(f0["bias"]))
        hidden_i = jnp.tanh(z[:, :, :-1, width:2 * width] + z[:, :, 1:, 2 * width:]
                            + jnp.einsum("pbli,pio->pblo", u, i0["kernel"][:, 2 * q:])
                            + bias(i0["bias"]))
        logits = nets.dense(params["inverse_1"], hidden_i)
        if self.relu_logits:
            logits = jax.nn.relu(logits)
        return hidden, logits.reshape(logits.shape[:-1] + (self.num_agents,
                                                           self.num_actions))

    def impacts(self, params, phi: jax.Array, u: jax.Array, own_first: jax.Array) -> jax.Array:
        """L ``[P, M, N − 1]`` for the joint actions int ``[P, M, N]`` (own first)."""
        joint = ablated_joint_actions(jax.nn.one_hot(own_first, self.num_actions))
        out = self.forward(params, phi, u, joint)  # [P, M, N, q]
        return environmental_impact(out[:, :, 0], out[:, :, 1:])


# --- the motive ------------------------------------------------------------------------------


class EMuReL(Motive):
    """The EMuReL motive; ``cfg`` is a :class:`prosocial.motives.config.MotiveConfig`.

    α and β are numbers or one per agent of the environment (global agent ids), as IA's.
    """

    name = "emurel"
    min_agents = 2
    learned = True

    def __init__(self, cfg):
        ModelOfOtherAgents.check_config(cfg)
        for label in ("alpha", "beta", "moa_loss_weight", "scm_loss_weight"):
            if not np.all(np.asarray(getattr(cfg, label)) >= 0):
                raise ValueError(f"motive.{label} must be ≥ 0, got {getattr(cfg, label)!r}")
        for label in ("ia_gamma", "ia_lambda", "scm_forward_vs_inverse_loss_weight"):
            if not 0 <= getattr(cfg, label) <= 1:
                raise ValueError(f"motive.{label} must be in [0, 1], got "
                                 f"{getattr(cfg, label)!r}")
        if cfg.impact_norm not in IMPACT_NORMS:
            raise ValueError(f"motive.impact_norm must be one of {', '.join(IMPACT_NORMS)}, "
                             f"got {cfg.impact_norm!r}")
        self.cfg = cfg
        self.gamma_lambda = cfg.ia_gamma * cfg.ia_lambda
        self.conv_impl = "auto"

    def check(self, env, event_keys):
        super().check(env, event_keys)
        self.num_agents, self.num_actions, self.own_first = check_moa_env(self.name, env)

    @property
    def moa(self) -> ModelOfOtherAgents:
        return ModelOfOtherAgents.from_config(self.cfg, self.num_agents, self.num_actions)

    def init_params(self, keys, env, policy):
        net_cfg = policy.cfg
        shape = env.observation_space.spaces["rgb"].shape
        width = nets.conv_width(net_cfg, shape)
        # φ has the policy's convolution shape, as in the reference (one conv config).
        self.conv_impl = net_cfg.conv_impl
        icm = ImpactModel(shape, net_cfg.conv_filters, net_cfg.conv_kernel, env.num_agents,
                          env.num_actions, self.cfg.moa_lstm_size, self.conv_impl)
        k_moa, k_icm = jax.vmap(jax.random.split, out_axes=1)(keys)
        return {"moa": self.moa.init(k_moa, width, net_cfg.hidden_init_scale),
                "icm": icm.init(k_icm)}

    def impact_model(self, params, obs_shape) -> ImpactModel:
        """The extended ICM for ``params`` (φ's kernel ``[P, k, k, C, F]``) and observations
        of ``obs_shape``."""
        k, _, _, filters = params["icm"]["phi"]["kernel"].shape[1:]
        return ImpactModel(obs_shape, filters, k, self.num_agents, self.num_actions,
                           self.cfg.moa_lstm_size, self.conv_impl,
                           self.cfg.ref_inverse_relu_logits)

    def init_carry(self, layout, num_envs):
        return {"moa": self.moa.initial_carry(layout.num_params, layout.batch(num_envs)),
                "trace": jnp.zeros((layout.num_seeds, num_envs, layout.num_agents),
                                   jnp.float32)}

    # --- rewards ---------------------------------------------------------------------------

    def intrinsic(self, params, carry, rollout, view):
        cfg, moa, n = self.cfg, self.moa, self.num_agents
        lay = view.layout
        icm = self.impact_model(params, rollout.obs["rgb"].shape[-3:])
        to_params = lay.time_to_params
        own_first = to_params(rollout.action[..., self.own_first])  # [T, P, B, N]
        starts = jax.vmap(lay.per_param)(rollout.start)
        rgb = to_params(rollout.obs["rgb"])

        def body(c, x):
            # Step by step: a whole rollout's features would not fit in memory.
            rgb_t, acts, st = x
            gx = moa.gates(params["moa"], view.features({"rgb": rgb_t}), acts)
            u = jax.lax.stop_gradient(moa.hidden(nets.reset_carry(c, st)))
            new, h = moa.step(params["moa"], c, gx, st)
            impact = icm.impacts(params["icm"], icm.encode(params["icm"], rgb_t), u, acts)
            guess = jnp.argmax(moa.predict(params["moa"], h), axis=-1)
            return new, (impact, guess)

        moa_carry, (impact, guess), chunk_carries = view.scan(
            body, carry["moa"], (rgb, own_first, starts))
        d = normalise_impact(impact, cfg.impact_norm, 0.0 if cfg.ref_impact_nan else 1e-8)
        d_env = lay.time_to_envs(d)  # [T, S, E, n, N-1]
        if not lay.all_agents:
            d_env = jnp.ones(d_env.shape[:3] + (n, n - 1), d_env.dtype).at[
                :, :, :, list(lay.agents)].set(d_env)

        rewards = rollout.reward
        if cfg.ia_smoothed:
            initial = jnp.where(rollout.start[0][..., None], 0.0, carry["trace"])
            w = smooth_rewards(rewards, self.gamma_lambda, initial, rollout.done)
            trace = w[-1]
        else:
            w, trace = rewards, carry["trace"]
        reward = select_agents(environmental_impact_reward(w, d_env, cfg.alpha, cfg.beta), lay)

        # Training data: the MOA's targets and the transitions o_τ → o_{τ+1} in the rollout.
        done = jax.vmap(lay.per_param)(rollout.done)
        next_others, next_visible = next_action_targets(
            own_first, to_params(rollout.obs["visible"]), ~done,
            cfg.train_moa_only_when_visible)
        next_rgb = jnp.concatenate([rgb[1:], jnp.zeros_like(rgb[:1])])
        has_next = (~done).at[-1].set(False)
        diagnostics = {
            "environmental_impact": lay.scatter(lay.time_to_envs(d).mean(axis=(0, 2, 4))),
            "emurel_reward": lay.scatter(reward.mean(axis=(0, 2))),
            "moa_accuracy": lay.seed_mean(prediction_accuracy(guess, next_others,
                                                              next_visible)),
        }
        extras = {"initial_carry": chunk_carries, "own_first_actions": own_first,
                  "next_others": next_others, "next_visible": next_visible,
                  "next_rgb": next_rgb, "has_next": has_next}
        return {"moa": moa_carry, "trace": trace}, reward, diagnostics, extras

    # --- loss ------------------------------------------------------------------------------

    def loss(self, params, mb, view):
        """MOA cross-entropy (§9.4) and the extended ICM's losses (module docstring), per
        agent k (``moa_loss``, ``forward_loss``, ``inverse_loss`` ``[P]``), weighted and
        summed over agents."""
        cfg, moa = self.cfg, self.moa
        icm = self.impact_model(params, view.obs["rgb"].shape[-3:])
        p, b, length = view.starts.shape
        own_first = mb["own_first_actions"]  # [P, B, L, N]
        gates = moa.gates(params["moa"], view.features, own_first.reshape(p, b * length, -1))
        gates = jnp.moveaxis(gates.reshape(p, b, length, -1), 2, 0)  # [L, P, B, 4H]
        starts = jnp.moveaxis(view.starts, 2, 0)
        # The policy's LSTM kernel with its hand-written gradient (the MOA's is the same cell)
        outputs = nets.lstm_scan(params["moa"]["lstm"]["recurrent_kernel"], gates,
                                 mb["initial_carry"], starts)  # [L, P, B, H]
        logits = jnp.swapaxes(moa.predict(params["moa"], jnp.moveaxis(outputs, 1, 0)), 1, 2)
        moa_loss = cross_entropy_loss(logits, mb["next_others"], mb["next_visible"],
                                      view.mask)
        # u_τ: the state carried into step τ, the previous output (the initial carry's at the
        # sequence start), zeroed where an episode starts.
        carried = jnp.concatenate([moa.hidden(mb["initial_carry"])[None], outputs[:-1]])
        carried = jnp.where(starts[..., None], 0.0, carried)

        u = jax.lax.stop_gradient(jnp.moveaxis(carried, 0, 2))  # [P, B, L, H]
        # φ(o_{τ+1}) is φ of the sequence's next row, except on its last row: one encoding
        # of the L observations and the observation after the sequence. Rows whose next row
        # starts another episode are not transitions and are masked out below.
        # Large batches (A2C's) go through in chunks of sequences (motives.chunking).
        rgb = jnp.concatenate([view.obs["rgb"], mb["next_rgb"][:, :, -1:]], axis=2)

        def rows(x):
            rgb, u, acts = x  # [P, b, …]
            pp, bb = rgb.shape[:2]
            phi = icm.encode(params["icm"], rgb.reshape((pp, bb * (length + 1)) + rgb.shape[3:]))
            phi = phi.reshape(pp, bb, length + 1, -1)
            hidden, logits = icm.sequence_hidden(params["icm"], phi, u, acts)
            forward = relu_dense_surprise(hidden, params["icm"]["forward_1"], phi[:, :, 1:])
            return forward, inverse_cross_entropy(logits, acts)  # each [P, b, L]

        forward, inverse = over_sequences(rows, (rgb, u, own_first), length)
        valid = (mb["has_next"] & view.mask).astype(jnp.float32)
        count = jnp.maximum(valid.sum(axis=(1, 2)), 1.0)
        forward = (forward * valid).sum(axis=(1, 2)) / count
        inverse = (inverse * valid).sum(axis=(1, 2)) / count
        fw = cfg.scm_forward_vs_inverse_loss_weight
        icm_loss = fw * forward + (1.0 - fw) * inverse
        total = cfg.moa_loss_weight * moa_loss.sum() + cfg.scm_loss_weight * icm_loss.sum()
        if cfg.ref_aux_losses_detached:
            total = jax.lax.stop_gradient(total)
        return total, {"moa_loss": moa_loss, "forward_loss": forward, "inverse_loss": inverse}
