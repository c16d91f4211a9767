"""Social curiosity module (SCM; specs.md §9.5, Heemskerk 2020, SSD ``models/scm_model.py``).

SCM is social influence with a model of other agents (SI, §9.4;
:mod:`prosocial.motives.influence`), its influence reward included, plus a curiosity reward:
the surprise of a forward model that predicts the agent's own encoding of its next
observation from the present one, the joint action, the MOA's state and the influence.

Per agent k, with the MOA of §9.4 (:class:`prosocial.motives.moa.ModelOfOtherAgents`). As in
the reference, the models of step t read the previous step's data (the transition
o_{t−1}, a_{t−1} → o_t):

    φ_t = flatten(ReLU(conv(o_t / 255)))      the SCM's own encoder: a conv with the policy
                                              conv's filters and kernel, not shared with it
    f_t = ReLU(tanh([φ_{t−1}, a_{t−1}, sg(u_{t−2}), c_{t−1}] W₁ + b₁) W₂ + b₂)   ≈ φ_t
    ĉ_{t−1} = ReLU(tanh([φ_{t−1}, φ_t, a_{t−1}, sg(u_{t−2})] V₁ + d₁) V₂ + d₂)  ≈ c_{t−1}

    L_F(t) = ½ · mean_d (φ_t − f_t)²          forward loss = curiosity (surprise)
    L_I(t) = (ĉ_{t−1} − c_{t−1})²             inverse loss

a_{t−1} is the one-hot joint action, own first then the others in increasing index (N·|A|
values, the MOA's action input); u_{t−2} the MOA hidden state carried into step t − 1
(:meth:`~prosocial.motives.moa.ModelOfOtherAgents.hidden`, 0 at an episode's first step),
under a stop-gradient so that the SCM does not shape what the MOA models; c_{t−1} the
influence of a_{t−1} on the others (§9.4 step 4, before the clip and the weight; 0 if not
finite), an input and a target, never differentiated. Initialisation: the encoder conv
Glorot-uniform (Keras default), the four Dense layers normalised columns of norm 1.0, zero
biases. The inverse model's output has the ReLU of §9.5 (the influence is ≥ 0); B-15 (ReLU
logits) concerns EMuReL's action-predicting inverse model, not this one.

Reward of agent k at step t (the value computed at t + 1 shifted back one step,
:func:`curiosity_reward`):

    r_t = influence reward (§9.4) + w_c · clip(L_F(t + 1), −clip, clip)

with w_c = ``curiosity_reward_weight`` (0.001, no schedule) and clip 10; the curiosity part
is 0 on the last step of an episode (o_{t+1} then belongs to the next episode) and on the
rollout's last step (o_T is not in the rollout; with the presets' 1000-step rollouts this is
the episode's last step, as in the reference). A seed with any non-finite L_F gets no
curiosity reward in the rollout (:func:`~prosocial.motives.influence.guard_influence`).

Loss of agent k on a minibatch of sequences, added to the learner's loss with the MOA's:

    L_k = scm_loss_weight · Σ_{(b,t)∈V} [w·L_F(t) + (1 − w)·L_I(t)] / |V|    (:func:`scm_loss`)

w = ``scm_forward_vs_inverse_loss_weight`` (0.5), V the valid (unpadded) steps that do not
start an episode (the reference's "rows 1…" of its one-episode batch: a transition across an
episode's start has no meaning). Every term comes from live model outputs (B-01;
``ref_aux_losses_detached`` freezes the MOA and the SCM at init as the reference's were).
Gradients reach φ on both sides of L_F, f, g; not the MOA (stop-gradient) nor the policy.

The observations of step t − 1 at a training sequence's first step come from the motive's
recurrent state stored at the sequence start (the image, actions, u and c of the previous
step), so L_F and L_I need no step outside the sequence.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from prosocial import nets
from prosocial.motives.chunking import over_sequences
from prosocial.motives.forward_loss import relu_dense_surprise
from prosocial.motives.influence import (
    SocialInfluence,
    guard_influence,
    influence,
    influence_weight,
)
from prosocial.motives.moa import cross_entropy_loss, next_action_targets, prediction_accuracy

# The encoder's convolution runs as the policy's default does (direct on CPU, XLA elsewhere).
_CONV = nets.NetConfig()


# --- pure functions ------------------------------------------------------------------------


def surprise(encoded: jax.Array, predicted: jax.Array) -> jax.Array:
    """Forward loss (curiosity) L_F = ½ · mean_d (φ_d − f_d)² over the last axis.

    Args:
      encoded: φ_t ``[..., D]``; predicted: f_t ``[..., D]``.
    Returns: ``[...]``.
    """
    return 0.5 * jnp.mean(jnp.square(encoded - predicted), axis=-1)


def inverse_error(influence_value: jax.Array, predicted: jax.Array) -> jax.Array:
    """Inverse loss L_I = (ĉ − c)², elementwise."""
    return jnp.square(predicted - influence_value)


def curiosity_reward(forward_loss: jax.Array, valid: jax.Array, weight, clip: float
                     ) -> jax.Array:
    """Curiosity reward per step, the one-step shift, clip and weight of §9.5:

        r_t = w_c · clip(L_F(t + 1), −clip, clip)   where valid[t] and t < T − 1,
        r_t = 0                                     elsewhere.

    Args:
      forward_loss: L_F ``[T, ...]``, entry t computed at step t (the surprise of o_t).
      valid: bool ``[T, ...]``, False where step t ends an episode.
      weight: w_c (a number or a traced scalar); clip: ≥ 0.
    """
    nxt = jnp.concatenate([forward_loss[1:], jnp.zeros_like(forward_loss[:1])])
    return jnp.where(valid, weight * jnp.clip(nxt, -clip, clip), 0.0)


def masked_mean(x: jax.Array, weights: jax.Array) -> jax.Array:
    """Σ w·x / max(Σ w, 1) over every axis but the first: ``[P, ...]`` → ``[P]``."""
    w = weights.astype(x.dtype)
    axes = tuple(range(1, x.ndim))
    return (x * w).sum(axis=axes) / jnp.maximum(w.sum(axis=axes), 1.0)


def scm_loss(forward_loss: jax.Array, inverse_loss: jax.Array, weights: jax.Array,
             forward_weight: float) -> jax.Array:
    """SCM loss per parameter set, ``[P]`` (before ``scm_loss_weight``):

        L = Σ_{(b,t)} v(b, t)·[w·L_F(b, t) + (1 − w)·L_I(b, t)] / max(Σ v, 1)

    Args:
      forward_loss, inverse_loss: ``[P, B, L]``; weights: v ``[P, B, L]`` (1 on the valid
        steps that do not start an episode); forward_weight: w in [0, 1].
    """
    return masked_mean(forward_weight * forward_loss + (1.0 - forward_weight) * inverse_loss,
                       weights)


# --- the model -----------------------------------------------------------------------------


class CuriosityModel:
    """Encoder φ, forward model f and inverse model g of agent k (module docstring), for
    ``rgb_shape`` (H, W, C) images, a conv of ``conv_filters`` × ``conv_kernel``², N agents,
    |A| actions, the MOA's ``lstm_size`` and ``hidden_size`` units in f and g.

    Parameters ``{"encoder", "forward_0", "forward_1", "inverse_0", "inverse_1"}`` stacked
    ``[P, ...]``; methods are pure functions of them on inputs ``[P, M, ...]``."""

    def __init__(self, rgb_shape, conv_filters: int, conv_kernel: int, num_agents: int,
                 num_actions: int, lstm_size: int, hidden_size: int):
        h, w, c = rgb_shape
        if h < conv_kernel or w < conv_kernel:
            raise ValueError(f"'rgb' observation {h}×{w} is smaller than the SCM encoder's "
                             f"{conv_kernel}×{conv_kernel} kernel")
        if isinstance(hidden_size, bool) or int(hidden_size) != hidden_size or hidden_size < 1:
            raise ValueError(f"motive.scm_hidden_size must be a positive integer, got "
                             f"{hidden_size!r}")
        self.rgb_shape, self.kernel, self.filters = tuple(rgb_shape), conv_kernel, conv_filters
        self.num_agents, self.num_actions = num_agents, num_actions
        self.lstm_size, self.hidden_size = lstm_size, int(hidden_size)
        self.encoded_width = (h - conv_kernel + 1) * (w - conv_kernel + 1) * conv_filters

    def init(self, keys: jax.Array) -> dict:
        """One parameter set per key, stacked ``[P, ...]``."""
        d, hid = self.encoded_width, self.hidden_size
        actions = self.num_agents * self.num_actions

        def one(key):
            kc, kf0, kf1, ki0, ki1 = jax.random.split(key, 5)
            return {
                "encoder": nets.conv_params(kc, self.rgb_shape, self.kernel, self.filters),
                "forward_0": nets.dense_params(kf0, d + actions + self.lstm_size + 1, hid, 1.0),
                "forward_1": nets.dense_params(kf1, hid, d, 1.0),
                "inverse_0": nets.dense_params(ki0, 2 * d + actions + self.lstm_size, hid, 1.0),
                "inverse_1": nets.dense_params(ki1, hid, 1, 1.0)}

        return jax.vmap(one)(keys)

    def encode(self, params, rgb: jax.Array) -> jax.Array:
        """φ = flatten(ReLU(conv(rgb / 255))): ``[P, M, H, W, C]`` → ``[P, M, D]``."""
        return nets.conv_features(_CONV, {"conv": params["encoder"]}, {"rgb": rgb})

    def _actions(self, own_first_actions):
        onehot = jax.nn.one_hot(own_first_actions, self.num_actions)
        return onehot.reshape(own_first_actions.shape[:-1] + (-1,))

    def forward(self, params, encoded: jax.Array, own_first_actions: jax.Array, h: jax.Array,
                influence_value: jax.Array) -> jax.Array:
        """f = ReLU(tanh([φ, onehot(a), h, c] W₁ + b₁) W₂ + b₂), ``[P, M, D]``.

        Args: encoded φ ``[P, M, D]``; own_first_actions int ``[P, M, N]``; h ``[P, M, H]``;
        influence_value c ``[P, M]``."""
        x = jnp.concatenate([encoded, self._actions(own_first_actions), h,
                             influence_value[..., None]], axis=-1)
        hidden = jnp.tanh(nets.dense(params["forward_0"], x))
        return jax.nn.relu(nets.dense(params["forward_1"], hidden))

    def inverse(self, params, encoded: jax.Array, encoded_next: jax.Array,
                own_first_actions: jax.Array, h: jax.Array) -> jax.Array:
        """ĉ = ReLU(tanh([φ, φ', onehot(a), h] V₁ + d₁) V₂ + d₂), ``[P, M]``."""
        x = jnp.concatenate([encoded, encoded_next, self._actions(own_first_actions), h],
                            axis=-1)
        out = nets.dense(params["inverse_1"], jnp.tanh(nets.dense(params["inverse_0"], x)))
        return jax.nn.relu(out[..., 0])

    def project(self, params, encoded: jax.Array) -> jax.Array:
        """φ's products with the first layers' φ blocks, ``[P, ..., D]`` → ``[P, ..., 3·hid]``:
        [φ W₁[φ], φ V₁[φ], φ V₁[φ']] (f's block, g's block for φ and for φ'). The first
        layers are linear in their concatenated inputs, so a transition needs only these
        products of its two images (:meth:`transition_outputs`), and each image's φ is
        multiplied once, by one combined kernel."""
        d = self.encoded_width
        wf, wi = params["forward_0"]["kernel"], params["inverse_0"]["kernel"]
        return jnp.einsum("p...i,pio->p...o", encoded,
                          jnp.concatenate([wf[:, :d], wi[:, :d], wi[:, d:2 * d]], axis=-1))

    def transition_hidden(self, params, projected: jax.Array, projected_next: jax.Array,
                          own_first_actions: jax.Array, h: jax.Array,
                          influence_value: jax.Array) -> tuple[jax.Array, jax.Array]:
        """f's hidden layer ``[P, ..., hid]`` and ĉ ``[P, ...]`` of transitions from
        :meth:`project` of their two images, without building the concatenated inputs
        (neither g's [2D + N·|A| + H]-wide input nor its gradient is materialised).

        Args:
          projected, projected_next: ``[P, ..., 3·hid]`` of the images before and after.
          own_first_actions: int ``[P, ..., N]``; h ``[P, ..., H]``; influence_value
            ``[P, ...]``: the transition's other inputs.
        """
        d, na, hid = self.encoded_width, self.num_agents * self.num_actions, self.hidden_size
        f0, i0 = params["forward_0"], params["inverse_0"]
        wf, wi = f0["kernel"], i0["kernel"]
        # The action and state blocks of both models in one matmul each: [P, …, 2·hid].
        onehot = self._actions(own_first_actions)
        on_rest = (jnp.einsum("p...i,pio->p...o", onehot, jnp.concatenate(
                       [wf[:, d:d + na], wi[:, 2 * d:2 * d + na]], axis=-1))
                   + jnp.einsum("p...i,pio->p...o", h, jnp.concatenate(
                       [wf[:, d + na:d + na + self.lstm_size], wi[:, 2 * d + na:]], axis=-1)))
        extra = (1,) * (influence_value.ndim - 1)
        per_row = lambda b: b.reshape(b.shape[:1] + extra + b.shape[1:])  # noqa: E731
        hidden_f = jnp.tanh(projected[..., :hid] + on_rest[..., :hid]
                            + influence_value[..., None] * per_row(wf[:, -1])
                            + per_row(f0["bias"]))
        hidden_i = jnp.tanh(projected[..., hid:2 * hid] + projected_next[..., 2 * hid:]
                            + on_rest[..., hid:] + per_row(i0["bias"]))
        return hidden_f, jax.nn.relu(nets.dense(params["inverse_1"], hidden_i)[..., 0])

    def transition_outputs(self, params, projected: jax.Array, projected_next: jax.Array,
                           own_first_actions: jax.Array, h: jax.Array,
                           influence_value: jax.Array) -> tuple[jax.Array, jax.Array]:
        """:meth:`forward` and :meth:`inverse` of transitions from :meth:`project` of their
        two images (arguments as :meth:`transition_hidden`): f ``[P, ..., D]`` and ĉ
        ``[P, ...]``."""
        hidden_f, guess = self.transition_hidden(params, projected, projected_next,
                                                 own_first_actions, h, influence_value)
        return jax.nn.relu(nets.dense(params["forward_1"], hidden_f)), guess

    def transition_errors(self, params, rgb: jax.Array, own_first_actions: jax.Array,
                          h: jax.Array, influence_value: jax.Array
                          ) -> tuple[jax.Array, jax.Array]:
        """L_F and L_I of the transitions of sequences of consecutive images, ``[P, B, L]``.

        Args:
          rgb: uint8 ``[P, B, L + 1, H, W, C]``; row t + 1 is the image after row t.
          own_first_actions: int ``[P, B, L, N]``, h ``[P, B, L, H]``, influence_value
            ``[P, B, L]``: the other inputs of the transition out of each of the first L rows.

        Each image is encoded and projected once (row t + 1 is the image after row t and
        the image before row t + 1's transition); L_F goes through
        :func:`~prosocial.motives.forward_loss.relu_dense_surprise`, the same values as
        :func:`surprise` of :meth:`forward` with fewer passes over D-wide arrays. Large
        batches go through in chunks of sequences (``prosocial.motives.chunking``).
        """
        length = influence_value.shape[2]

        def rows(x):
            rgb, actions, h, c = x  # [P, b, …]
            pp, bb = rgb.shape[:2]
            encoded = self.encode(params, rgb.reshape((pp, bb * (length + 1)) + rgb.shape[3:]))
            encoded = encoded.reshape(pp, bb, length + 1, -1)
            z = self.project(params, encoded)
            hidden_f, guess_c = self.transition_hidden(params, z[:, :, :-1], z[:, :, 1:],
                                                       actions, h, c)
            lf = relu_dense_surprise(hidden_f, params["forward_1"], encoded[:, :, 1:])
            return lf, inverse_error(c, guess_c)

        return over_sequences(rows, (rgb, own_first_actions, h, influence_value), length)


# --- the motive -----------------------------------------------------------------------------


class SocialCuriosity(SocialInfluence):
    """The SCM motive; ``cfg`` is a :class:`prosocial.motives.config.MotiveConfig`. Its
    parameters are ``{"moa": MOA params, "scm": CuriosityModel params}``; its carry the
    MOA's LSTM state and the previous step's data (module docstring)."""

    name = "scm"

    def __init__(self, cfg):
        super().__init__(cfg)
        for label in ("scm_loss_weight", "curiosity_reward_weight", "curiosity_reward_clip"):
            if not getattr(cfg, label) >= 0:
                raise ValueError(f"motive.{label} must be ≥ 0, got {getattr(cfg, label)!r}")
        if not 0.0 <= cfg.scm_forward_vs_inverse_loss_weight <= 1.0:
            raise ValueError(f"motive.scm_forward_vs_inverse_loss_weight must be in [0, 1], "
                             f"got {cfg.scm_forward_vs_inverse_loss_weight!r}")
        hidden = cfg.scm_hidden_size
        if isinstance(hidden, bool) or int(hidden) != hidden or hidden < 1:
            raise ValueError(f"motive.scm_hidden_size must be a positive integer, got "
                             f"{hidden!r}")
        self.scm = None

    def check(self, env, event_keys):
        missing = {"rgb", "visible"} - set(env.observation_space.spaces)
        if missing:
            raise ValueError(f"motive 'scm' needs observations {sorted(missing)}, which "
                             f"{env.env_id or type(env).__name__} does not give")
        super().check(env, event_keys)

    def model(self, env, net_cfg) -> CuriosityModel:
        """The curiosity model for ``env``'s images and the policy conv's sizes."""
        return CuriosityModel(env.observation_space.spaces["rgb"].shape, net_cfg.conv_filters,
                              net_cfg.conv_kernel, env.num_agents, env.num_actions,
                              self.cfg.moa_lstm_size, self.cfg.scm_hidden_size)

    def init_params(self, keys, env, policy):
        """The MOA from ``keys`` (as SI's), the SCM from ``fold_in(key, 1)``."""
        self.scm = self.model(env, policy.cfg)
        scm_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
        return {"moa": super().init_params(keys, env, policy), "scm": self.scm.init(scm_keys)}

    def init_carry(self, layout, num_envs):
        if self.scm is None:
            raise ValueError("SocialCuriosity.init_carry needs the model's sizes: call "
                             "init_params first")
        p, b = layout.num_params, layout.batch(num_envs)
        zeros = lambda *shape, dtype=jnp.float32: jnp.zeros((p, b) + shape, dtype)  # noqa: E731
        prev = {"projected": zeros(3 * self.scm.hidden_size),
                "rgb": zeros(*self.scm.rgb_shape, dtype=jnp.uint8),
                "actions": zeros(self.num_agents, dtype=jnp.int32),
                "h": zeros(self.cfg.moa_lstm_size), "influence": zeros()}
        return (self.moa.initial_carry(p, b), prev)

    # --- rewards -------------------------------------------------------------------------

    def intrinsic(self, params, carry, rollout, view):
        cfg, moa, scm = self.cfg, self.moa, self.scm
        mp, sp = params["moa"], params["scm"]
        lay = view.layout
        s = rollout.action.shape[1]
        to_params, to_envs = lay.time_to_params, lay.time_to_envs
        own_first = to_params(rollout.action[..., self.own_first])  # [T, P, B, N]
        starts = jax.vmap(lay.per_param)(rollout.start)
        visible = to_params(rollout.obs["visible"])
        if not cfg.influence_only_when_visible:
            visible = jnp.ones_like(visible)

        def body(c, x):
            moa_carry, prev = c
            rgb, acts, st, logits, vis = x
            gx = moa.gates(mp, view.features({"rgb": rgb}), acts)  # [P, E, 4H]
            own = acts[..., 0]
            h_cf = moa.counterfactual_step(mp, moa_carry, gx, own, st)  # [P, E, A, H]
            h_in = moa.hidden(nets.reset_carry(moa_carry, st))  # u_{t−1}
            new_moa, h = moa.step(mp, moa_carry, gx, st)
            infl = influence(moa.predict(mp, h_cf), logits, own, vis, cfg.influence_divergence)
            guess = jnp.argmax(moa.predict(mp, h), axis=-1)  # [P, E, N-1]
            # The SCM on the transition of the previous step into this observation; of the
            # previous image it needs only φ's products with the first layers (carried).
            encoded = scm.encode(sp, rgb)
            projected = scm.project(sp, encoded)
            predicted, guess_c = scm.transition_outputs(
                sp, prev["projected"], projected, prev["actions"], prev["h"], prev["influence"])
            lf = surprise(encoded, predicted)
            li = inverse_error(prev["influence"], guess_c)
            nxt = {"projected": projected, "rgb": rgb, "actions": acts, "h": h_in,
                   "influence": jnp.where(jnp.isfinite(infl), infl, 0.0)}
            return (new_moa, nxt), (infl, guess, lf, li, nxt["influence"])

        # Sequence starts keep all but φ's products, which the loss recomputes from the image.
        record = lambda c: (c[0], {k: v for k, v in c[1].items() if k != "projected"})  # noqa: E731
        rgb = to_params(rollout.obs["rgb"])
        new_carry, (c, guess, lf, li, c_input), chunk_carries = view.scan(
            body, carry, (rgb, own_first, starts, view.logits, visible), record=record)
        valid = ~jax.vmap(lay.per_param)(rollout.done)
        c = jnp.where(valid, guard_influence(c, s, cfg.influence_reward_clip), 0.0)
        weight = influence_weight(cfg.influence_schedule, cfg.influence_reward_weight,
                                  rollout.env_steps)
        curious = curiosity_reward(guard_influence(lf, s, cfg.curiosity_reward_clip), valid,
                                   cfg.curiosity_reward_weight, cfg.curiosity_reward_clip)
        reward = to_envs(weight * c + curious)

        next_others, next_visible = next_action_targets(
            own_first, to_params(rollout.obs["visible"]), valid, cfg.train_moa_only_when_visible)
        # L_F(t + 1) and L_I(t + 1) belong to step t's transition (none after the last step).
        transition = jnp.moveaxis(valid.at[-1].set(False), 1, 0)
        per_param_mean = lambda x: masked_mean(  # noqa: E731
            jnp.moveaxis(jnp.concatenate([x[1:], jnp.zeros_like(x[:1])]), 1, 0), transition)
        diagnostics = {
            "influence_reward": lay.scatter(to_envs(c).mean(axis=(0, 2))) * weight,
            "influence_weight": jnp.full((s,), weight),
            "moa_accuracy": lay.seed_mean(prediction_accuracy(guess, next_others,
                                                              next_visible)),
            "curiosity_reward": lay.scatter(to_envs(curious).mean(axis=(0, 2))),
            "scm_surprise": lay.seed_mean(per_param_mean(lf)),
            "scm_inverse_error": lay.seed_mean(per_param_mean(li)),
        }
        extras = {"initial_carry": chunk_carries, "own_first_actions": own_first,
                  "next_others": next_others, "next_visible": next_visible,
                  "influence": c_input}
        return new_carry, reward, diagnostics, extras

    # --- loss ----------------------------------------------------------------------------

    def transition_losses(self, params, mb, view):
        """On training sequences ``[P, B, L]``: the MOA's cross-entropy ``[P]`` (as SI's) and
        the SCM's L_F and L_I ``[P, B, L]`` of the transition into each step (meaningless
        where an episode starts). One MOA unroll gives both the MOA's predictions and the
        hidden states u the SCM reads (under a stop-gradient)."""
        moa, scm = self.moa, self.scm
        mp, sp = params["moa"], params["scm"]
        moa_carry0, prev = mb["initial_carry"]
        own_first = mb["own_first_actions"]  # [P, B, L, N]
        p, b, length = view.starts.shape
        gates = moa.gates(mp, view.features, own_first.reshape(p, b * length, -1))
        gates = jnp.moveaxis(gates.reshape(p, b, length, -1), 2, 0)  # [L, P, B, 4H]
        carried, outputs = moa.carried_and_outputs(mp, gates, moa_carry0,
                                                   jnp.moveaxis(view.starts, 2, 0))
        logits = jnp.swapaxes(moa.predict(mp, jnp.moveaxis(outputs, 1, 0)), 1, 2)
        moa_loss = cross_entropy_loss(logits, mb["next_others"], mb["next_visible"],
                                      view.mask)

        # Step t's models read step t − 1: the sequence's first step reads the stored state.
        def previous(first, seq):
            return jnp.concatenate([first[:, :, None], seq[:, :, :-1]], axis=2)

        h_in = jax.lax.stop_gradient(jnp.moveaxis(carried, 0, 2))  # [P, B, L, H]
        rgb = jnp.concatenate([prev["rgb"][:, :, None], view.obs["rgb"]], axis=2)
        lf, li = scm.transition_errors(sp, rgb, previous(prev["actions"], own_first),
                                       previous(prev["h"], h_in),
                                       previous(prev["influence"], mb["influence"]))
        return moa_loss, lf, li

    def loss(self, params, mb, view):
        """``moa_loss_weight`` × the MOA's cross-entropy (``moa_loss`` [P]) + ``scm_loss_weight``
        × :func:`scm_loss` (``scm_loss`` [P]) over the valid steps that do not start an
        episode, summed over the parameter sets; ``scm_forward_loss`` and
        ``scm_inverse_loss`` [P] are its two means."""
        cfg = self.cfg
        moa_loss, lf, li = self.transition_losses(params, mb, view)
        weights = jnp.logical_and(view.mask, jnp.logical_not(view.starts))
        scm_total = scm_loss(lf, li, weights, cfg.scm_forward_vs_inverse_loss_weight)
        total = cfg.moa_loss_weight * moa_loss.sum() + cfg.scm_loss_weight * scm_total.sum()
        if cfg.ref_aux_losses_detached:
            total = jax.lax.stop_gradient(total)
        return total, {"moa_loss": moa_loss, "scm_loss": scm_total,
                       "scm_forward_loss": masked_mean(lf, weights),
                       "scm_inverse_loss": masked_mean(li, weights)}
