"""Reciprocity: imitators that match an innovator's niceness ([ECCLES], specs.md §9.7).

An innovator (agent ``innovator``, motive none) learns from its extrinsic reward; every
imitator m (the population this motive shapes) gets the intrinsic reward of eq. 1,

    N_t(T) = γ_im · N_{t−1}(T) + n(s_t, a_t),   N = 0 at an episode's start        (eq. 4)
    r_int^m(t) = −(N_t(T_m) − N_t(T_inv))²                                          (eq. 1)

scaled per imitator and training batch (eq. 2 as D-19 reads it, B-23):

    r^m(t) = r_env^m(t) + c_im · r_int^m(t) / mean_batch|r_int^m|

(``reciprocity_norm="env_relative"``: c_im · r_int · mean|r_env^m| / mean|r_int^m|); the
scale is a constant (no gradient) and the term is 0 where mean|r_int| < 1e-8.

Niceness n(s, a) of one step:

- **metric matching** (§9.7.3): Coins −(other-colour coins collected); Cleanup 1 if the
  agent's CLEAN beam removed waste (``cleanup_niceness="cells"``: the cells removed);
  Harvest, per apple eaten, the apples within ℓ1 distance 2 of it capped at 3 (the env's
  ``eaten_apple_neighbours`` signal), the trace decaying only on steps where the agent eats.
- **niceness network** (§9.7.4): one non-recurrent network per imitator with the policy's
  conv and MLP (own weights) and heads V, Q and π̂, trained by TD(λ) on the innovator's
  observations and actions to predict the imitator's discounted return; n(s, a) = Q(s, a) −
  V(s), applied to both the innovator's and the imitator's own trajectory. Its loss
  (V − G)² + (Q(a_inv) − G)² + CE(π̂, a_inv) uses λ-returns G computed at rollout time (no
  gradient through G); it trains with its own RMSProp (``niceness_lr``, decay 0.99, ε 0.01).
  Policy imitation (§9.7.5) adds c_KL · KL(π_im(·|o) ‖ π̂(·|o)) on the imitator's own
  observations, π̂ fixed from the rollout, gradient into the policy only: the motive's loss
  reads the policy's new logits through :class:`~prosocial.motives.base.PolicyView`.

The λ-returns need V of the observation after each step; the rollout does not hold the one
after its last step, so each rollout's last step only bootstraps the step before it and is
left out of the network's loss (one step in 100 with [ECCLES]' unroll).

Public pure functions: :func:`trajectory_niceness`, :func:`imitation_reward`,
:func:`normalise_imitation`, :func:`coins_niceness`, :func:`cleanup_niceness`,
:func:`niceness_targets`, :func:`policy_kl`; the network is :class:`NicenessNet`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
import rlax

from prosocial import nets
from prosocial.envs.core import signal_keys
from prosocial.motives.base import Motive, select_agents

EPS = 1e-8
"""Below this mean |r_int| the imitation term of a batch is 0 (eq. 2 undefined)."""
COINS_EVENT = "other_coins_collected"
CLEANUP_EVENT = "waste_cleaned"
HARVEST_SIGNAL = "eaten_apple_neighbours"


# --- pure functions ------------------------------------------------------------------------


def _expand(x, ndim):
    return x.reshape(x.shape + (1,) * (ndim - x.ndim))


def trajectory_niceness(n, decay, start, initial=None, tick=None) -> jax.Array:
    """Discounted niceness N_t = decay · N_{t−1} + n_t along a rollout (eq. 4).

    Args:
      n: per-step niceness ``[T, ...]``.
      decay: γ_im.
      start: bool ``[T, ...]`` (a prefix of n's shape, e.g. ``[T, S, E]`` for n
        ``[T, S, E, N]``): step t starts an episode, so N_{t−1} counts as 0 there.
      initial: N carried in from before the rollout ``n.shape[1:]`` (default 0).
      tick: optional bool like ``n``: the trace moves only where True (Harvest's per-apple
        trace, eq. 8) and is held elsewhere; default every step.

    Returns:
      N ``[T, ...]``, N_t including step t.
    """
    n = jnp.asarray(n, jnp.float32)
    start = _expand(jnp.asarray(start, bool), n.ndim)
    tick = jnp.ones(n.shape, bool) if tick is None else jnp.asarray(tick, bool)
    initial = jnp.zeros(n.shape[1:], jnp.float32) if initial is None else initial

    def body(prev, x):
        nt, st, tk = x
        prev = jnp.where(st, 0.0, prev)
        out = jnp.where(tk, decay * prev + nt, prev)
        return out, out

    _, out = jax.lax.scan(body, initial, (n, jnp.broadcast_to(start, n.shape), tick))
    return out


def imitation_reward(imitator_niceness, innovator_niceness) -> jax.Array:
    """r_int = −(N(T_m) − N(T_inv))² (eq. 1), elementwise (broadcasting)."""
    return -jnp.square(imitator_niceness - innovator_niceness)


def normalise_imitation(r_int, weight, axis, env_reward=None, mode: str = "batch_abs"
                        ) -> jax.Array:
    """The scaled imitation term of eq. 2 (D-19): ``weight · r_int / mean|r_int|`` with the
    mean over ``axis`` (one imitator's batch), or with ``mode="env_relative"``
    ``weight · r_int · mean|env_reward| / mean|r_int|``. The scale carries no gradient; a
    batch with mean|r_int| < 1e-8 gets 0."""
    if mode not in ("batch_abs", "env_relative"):
        raise ValueError(f"reciprocity_norm must be batch_abs or env_relative, got {mode!r}")
    mu = jnp.mean(jnp.abs(r_int), axis=axis, keepdims=True)
    scale = weight / jnp.where(mu < EPS, 1.0, mu)
    if mode == "env_relative":
        if env_reward is None:
            raise ValueError("reciprocity_norm='env_relative' needs the env rewards")
        scale = scale * jnp.mean(jnp.abs(env_reward), axis=axis, keepdims=True)
    scale = jax.lax.stop_gradient(jnp.where(mu < EPS, 0.0, scale))
    return r_int * scale


def coins_niceness(other_coins_collected) -> jax.Array:
    """Coins (eq. 6): −1 per coin of the other player's colour picked up, else 0."""
    return -jnp.asarray(other_coins_collected, jnp.float32)


def cleanup_niceness(waste_cleaned, mode: str = "binary") -> jax.Array:
    """Cleanup (eq. 7): 1 if the agent's beam removed waste this step (``"cells"``: the
    number of cells removed), else 0."""
    w = jnp.asarray(waste_cleaned, jnp.float32)
    if mode == "binary":
        return (w > 0).astype(jnp.float32)
    if mode == "cells":
        return w
    raise ValueError(f"cleanup_niceness must be binary or cells, got {mode!r}")


def niceness_targets(rewards, values, done, gamma: float, lam: float) -> jax.Array:
    """TD(λ) targets of the niceness network along time ``[T, ...]`` (§9.7.4):

        G_t = r_t + γ (1 − done_t) · [(1 − λ) · V_{t+1} + λ · G_{t+1}],

    ``values`` V_t = V(o_t) of the same steps; the last step is the bootstrap:
    G_{T−1} = V_{T−1} (so the step before it gets r + γ V_{T−1}); leave it out of the loss.
    ``done_t``: step t ends its episode. No gradient flows through the targets.
    """
    rewards, values = jnp.asarray(rewards, jnp.float32), jnp.asarray(values, jnp.float32)
    discount = gamma * (1.0 - jnp.asarray(done, jnp.float32))
    flat = lambda x: x.reshape(x.shape[0], -1).T  # noqa: E731  [T, ...] → [K, T]
    g = jax.vmap(lambda r, d, v: rlax.lambda_returns(r, d, v, lam))(
        flat(rewards[:-1]), flat(discount[:-1]), flat(values[1:]))
    g = g.T.reshape(rewards[:-1].shape)
    return jax.lax.stop_gradient(jnp.concatenate([g, values[-1:]], axis=0))


def policy_kl(logits, prior_logits) -> jax.Array:
    """KL(π ‖ π̂) = Σ_a π(a) (log π(a) − log π̂(a)) over the last axis (eq. 5)."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.sum(jnp.exp(logp) * (logp - jax.nn.log_softmax(prior_logits, axis=-1)), axis=-1)


# --- the niceness network -------------------------------------------------------------------


class NicenessNet:
    """The niceness network: the policy's torso (conv and MLP, ``lstm_size=None``, own
    weights) with linear heads V (1), Q (|A|) and π̂ (|A|), parameters stacked ``[P, ...]``."""

    def __init__(self, net_cfg: nets.NetConfig, obs_space, num_actions: int):
        self.cfg = dataclasses.replace(net_cfg, lstm_size=None)
        self.obs_space, self.num_actions = obs_space, num_actions

    def init(self, keys):
        def one(key):
            k_net, k_q = jax.random.split(key)
            params = nets.init_params(self.cfg, k_net, self.obs_space, self.num_actions)
            width = self.cfg.hidden_sizes[-1] if self.cfg.hidden_sizes else None
            if width is None:
                raise ValueError("the niceness network needs at least one hidden layer")
            params["q"] = nets.glorot_dense(k_q, width, self.num_actions)
            return params

        return jax.vmap(one)(keys)

    def apply(self, params, obs):
        """obs leaves ``[P, M, ...]`` → (V ``[P, M]``, Q ``[P, M, A]``, π̂ logits
        ``[P, M, A]``)."""
        x = nets.encode(self.cfg, params, obs)
        logits, value = nets.heads(params, x)
        q = nets.dense(params["q"], x)
        return value, q, logits

    def apply_seq(self, params, obs):
        """obs leaves ``[P, X, Y, ...]``: :meth:`apply` on the P·X·Y steps, the outputs
        reshaped back to ``[P, X, Y]``."""
        lead = jax.tree.leaves(obs)[0].shape[:3]
        flat = jax.tree.map(lambda x: x.reshape((lead[0], -1) + x.shape[3:]), obs)
        v, q, logits = self.apply(params, flat)
        return v.reshape(lead), q.reshape(lead + (-1,)), logits.reshape(lead + (-1,))

    def niceness(self, params, obs, action):
        """n(s, a) = Q(s, a) − V(s) (eq. 3) and π̂'s logits; obs leaves ``[P, B, L, ...]``,
        action int ``[P, B, L]``."""
        v, q, logits = self.apply_seq(params, obs)
        qa = jnp.take_along_axis(q, action[..., None], axis=-1)[..., 0]
        return qa - v, v, logits


# --- the motive -----------------------------------------------------------------------------


class Reciprocity(Motive):
    """[ECCLES]' imitator motive; ``cfg`` is a :class:`prosocial.motives.config.
    MotiveConfig` (module docstring)."""

    name = "reciprocity"
    min_agents = 2

    def __init__(self, cfg):
        if cfg.niceness not in ("metric", "network"):
            raise ValueError(f"motive.niceness must be metric or network, got {cfg.niceness!r}")
        if cfg.reciprocity_norm not in ("batch_abs", "env_relative"):
            raise ValueError("motive.reciprocity_norm must be batch_abs or env_relative, got "
                             f"{cfg.reciprocity_norm!r}")
        if cfg.cleanup_niceness not in ("binary", "cells"):
            raise ValueError(f"motive.cleanup_niceness must be binary or cells, got "
                             f"{cfg.cleanup_niceness!r}")
        if cfg.reciprocity_reduction not in ("mean", "sum"):
            raise ValueError("motive.reciprocity_reduction must be mean or sum, got "
                             f"{cfg.reciprocity_reduction!r}")
        for label in ("imitation_weight", "policy_imitation_weight"):
            if not getattr(cfg, label) >= 0:
                raise ValueError(f"motive.{label} must be ≥ 0, got {getattr(cfg, label)!r}")
        for label in ("imitation_decay", "niceness_lambda", "niceness_gamma"):
            if not 0 <= getattr(cfg, label) <= 1:
                raise ValueError(f"motive.{label} must be in [0, 1], got "
                                 f"{getattr(cfg, label)!r}")
        if not cfg.niceness_lr > 0:
            raise ValueError(f"motive.niceness_lr must be positive, got {cfg.niceness_lr!r}")
        if isinstance(cfg.innovator, bool) or not isinstance(cfg.innovator, int) \
                or cfg.innovator < 0:
            raise ValueError(f"motive.innovator must be an agent id, got {cfg.innovator!r}")
        if cfg.niceness == "metric" and cfg.policy_imitation_weight > 0:
            raise ValueError("policy imitation (motive.policy_imitation_weight > 0) needs the "
                             "niceness network (motive.niceness=network)")
        self.cfg = cfg
        self.learned = cfg.niceness == "network"
        self.kind = None
        self.events = ()

    def check(self, env, event_keys):
        cfg = self.cfg
        if cfg.innovator >= env.num_agents:
            raise ValueError(f"motive.innovator {cfg.innovator} is not an agent of "
                             f"{env.env_id} (agents 0..{env.num_agents - 1})")
        if len(env.roles) > 1:
            raise ValueError("motive 'reciprocity' needs a symmetric game (one role)")
        if cfg.niceness == "metric":
            signals = signal_keys(env)
            if COINS_EVENT in event_keys:
                self.kind, self.events = "coins", (COINS_EVENT,)
            elif CLEANUP_EVENT in event_keys:
                self.kind, self.events = "cleanup", (CLEANUP_EVENT,)
            elif HARVEST_SIGNAL in signals:
                self.kind, self.events = "harvest", ("apples_eaten",)
            else:
                raise ValueError(
                    f"motive 'reciprocity' with niceness=metric knows Coins ({COINS_EVENT!r} "
                    f"events), Cleanup ({CLEANUP_EVENT!r}) and Harvest ({HARVEST_SIGNAL!r} "
                    f"signal); {env.env_id} reports none of them: use niceness=network")
        else:
            self.kind = "network"
        self.num_actions = env.num_actions
        self.obs_space = env.observation_space
        super().check(env, event_keys)

    # --- niceness ------------------------------------------------------------------------

    def metric_niceness(self, rollout):
        """n ``[T, S, E, N]`` and the trace's ticks (or None) of every agent."""
        if self.kind == "coins":
            return coins_niceness(rollout.events[COINS_EVENT]), None
        if self.kind == "cleanup":
            return cleanup_niceness(rollout.events[CLEANUP_EVENT],
                                    self.cfg.cleanup_niceness), None
        sus = rollout.signals[HARVEST_SIGNAL]
        return jnp.asarray(sus, jnp.float32), rollout.events["apples_eaten"] > 0

    def net(self, policy_cfg) -> NicenessNet:
        return NicenessNet(policy_cfg, self.obs_space, self.num_actions)

    def init_params(self, keys, env, policy):
        if not self.learned:
            return ()
        self.policy_cfg = policy.cfg
        return self.net(policy.cfg).init(keys)

    def optimizer(self):
        if not self.learned:
            return None
        return optax.rmsprop(self.cfg.niceness_lr, decay=0.99, eps=0.01, eps_in_sqrt=True)

    def init_carry(self, layout, num_envs):
        # N of each imitator's own trajectory and of the innovator's as that imitator scores it.
        zeros = jnp.zeros((layout.num_seeds, num_envs, layout.n), jnp.float32)
        return (zeros, zeros)

    def intrinsic(self, params, carry, rollout, view):
        cfg, lay = self.cfg, view.layout
        inv = cfg.innovator
        if inv in lay.agents:
            raise ValueError(f"motive 'reciprocity': the innovator (agent {inv}) is in the "
                             f"imitators' population {lay.agents}; give the innovator a "
                             "population of its own without the motive")
        start = rollout.start
        extras, diagnostics = {}, {}
        if self.learned:
            net = self.net(self.policy_cfg)
            n_agents = rollout.action.shape[3]
            to_params = lay.time_to_params
            # The innovator's observations and actions, once for every imitator.
            inv_obs = jax.tree.map(
                lambda x: jnp.broadcast_to(x[:, :, :, inv:inv + 1],
                                           x.shape[:3] + (n_agents,) + x.shape[4:]),
                rollout.obs)
            inv_obs = jax.tree.map(to_params, inv_obs)
            inv_act = to_params(jnp.broadcast_to(rollout.action[..., inv:inv + 1],
                                                 rollout.action.shape))
            own_obs = jax.tree.map(to_params, rollout.obs)
            own_act = to_params(rollout.action)
            params_t = jax.lax.stop_gradient(params)
            n_inv, v_inv, _ = net.niceness(params_t, _p_major(inv_obs), jnp.swapaxes(
                inv_act, 0, 1))
            n_own, _, prior = net.niceness(params_t, _p_major(own_obs), jnp.swapaxes(
                own_act, 0, 1))
            n_inv, v_inv, n_own = (jnp.swapaxes(x, 0, 1) for x in (n_inv, v_inv, n_own))
            prior = jnp.swapaxes(prior, 0, 1)
            n_own, n_inv = lay.time_to_envs(n_own), lay.time_to_envs(n_inv)
            tick_own = tick_inv = None
            # TD(λ) targets: the imitator's extrinsic return from the innovator's steps.
            done_p = jax.vmap(lay.per_param)(rollout.done)
            target = niceness_targets(to_params(rollout.reward), v_inv, done_p,
                                      cfg.niceness_gamma, cfg.niceness_lambda)
            weight = jnp.ones(target.shape, jnp.float32).at[-1].set(0.0)
            extras = {"inv_obs": inv_obs, "inv_action": inv_act, "target": target,
                      "weight": weight, "prior_logits": prior}
        else:
            n_all, tick_all = self.metric_niceness(rollout)
            n_own = select_agents(n_all, lay)
            n_inv = jnp.broadcast_to(n_all[..., inv:inv + 1], n_own.shape)
            tick_own = None if tick_all is None else select_agents(tick_all, lay)
            tick_inv = None if tick_all is None else jnp.broadcast_to(
                tick_all[..., inv:inv + 1], n_own.shape)
        big_own = trajectory_niceness(n_own, cfg.imitation_decay, start, carry[0], tick_own)
        big_inv = trajectory_niceness(n_inv, cfg.imitation_decay, start, carry[1], tick_inv)
        r_int = imitation_reward(big_own, big_inv)
        reward = normalise_imitation(r_int, cfg.imitation_weight, (0, 2),
                                     select_agents(rollout.reward, lay), cfg.reciprocity_norm)
        diagnostics = {"imitator_niceness": big_own.mean(axis=(0, 2)),
                       "innovator_niceness": big_inv.mean(axis=(0, 2)),
                       "imitation_reward_raw": r_int.mean(axis=(0, 2)),
                       "step_niceness_imitator": n_own.mean(axis=(0, 2)),
                       "step_niceness_innovator": n_inv.mean(axis=(0, 2))}
        return (big_own[-1], big_inv[-1]), reward, diagnostics, extras

    # --- loss ---------------------------------------------------------------------------------

    def loss(self, params, mb, view):
        """Per imitator P: the niceness network's TD(λ) loss on the innovator's steps,

            L_nn = Σ w·[(V − G)² + (Q(a_inv) − G)² + CE(π̂, a_inv)] / Σ w

        (w: the valid steps, the rollout's last left out), and policy imitation
        c_KL · Σ m·KL(π_im ‖ π̂) / Σ m over the imitator's valid steps m (``"sum"``
        reduction: the sums without the division). Gradients: L_nn into the network, the KL
        into the policy's logits only."""
        net = self.net(self.policy_cfg)
        v, q, logits = net.apply_seq(params, mb["inv_obs"])
        a = mb["inv_action"]
        g = mb["target"]
        qa = jnp.take_along_axis(q, a[..., None], axis=-1)[..., 0]
        ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), a[..., None], axis=-1)[..., 0]
        w = mb["weight"] * view.mask.astype(jnp.float32)
        per_step = jnp.square(v - g) + jnp.square(qa - g) + ce
        kl = policy_kl(view.logits, jax.lax.stop_gradient(mb["prior_logits"]))
        m = view.mask.astype(jnp.float32)
        axes = (1, 2)
        nn_sum, kl_sum = (w * per_step).sum(axes), (m * kl).sum(axes)
        nn_mean = nn_sum / jnp.maximum(w.sum(axes), 1.0)
        kl_mean = kl_sum / jnp.maximum(m.sum(axes), 1.0)
        if self.cfg.reciprocity_reduction == "mean":
            nn_loss, kl_loss = nn_mean, kl_mean
        else:
            nn_loss, kl_loss = nn_sum, kl_sum
        total = nn_loss.sum() + self.cfg.policy_imitation_weight * kl_loss.sum()
        mean = lambda x: (w * x).sum(axes) / jnp.maximum(w.sum(axes), 1.0)  # noqa: E731
        # Diagnostics are per-step means whatever the reduction.
        return total, {"niceness_loss": nn_mean, "policy_imitation_kl": kl_mean,
                       "niceness_value_error": mean(jnp.square(v - g)),
                       "innovator_prediction_ce": mean(ce)}

    def config(self):
        return {"name": self.name, **{k: getattr(self.cfg, k) for k in (
            "niceness", "innovator", "imitation_weight", "imitation_decay",
            "reciprocity_norm", "policy_imitation_weight")}}


def _p_major(obs):
    """Time-major ``[T, P, B, ...]`` leaves → ``[P, T, B, ...]`` (the network is not
    recurrent, so any order of T and B works as long as it is undone)."""
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), obs)
