"""Inequity aversion (IA): smoothed rewards and the inequity-averse shaping term.

specs.md §9.3, [EMUREL] eqs. 2–3 after Hughes et al. 2018. With e_i(t) agent i's extrinsic
reward and w_i(t) its smoothed reward,

    w_i(t) = γλ · w_i(t − 1) + e_i(t),   w_i = 0 before an episode's first step     (eq. 3)

    r_i(t) = e_i(t) − α/(N − 1) · Σ_{j≠i} max(w_j(t) − w_i(t), 0)
                    − β/(N − 1) · Σ_{j≠i} max(w_i(t) − w_j(t), 0)                   (eq. 2)

α weighs disadvantageous inequity (envy), β advantageous inequity (guilt). Settings:
advantageous IA α = 0, β = 0.05; disadvantageous IA α = 5, β = 0; γλ = 0.81 (D-05).
The comparison always uses the other agents' raw extrinsic rewards, never their shaped ones.

These are pure functions: :func:`smooth_rewards` computes w over a rollout and
:func:`inequity_aversion` the shaping term, so the learning reward is
``e + inequity_aversion(smooth_rewards(e, γλ, ...), α, β)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prosocial.motives.base import Motive, select_agents


def _as_float(x) -> jax.Array:
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def smooth_rewards(rewards, gamma_lambda, initial=None, dones=None) -> jax.Array:
    """Smoothed rewards w(t) = γλ · w(t − 1) + e(t) along a rollout ([EMUREL] eq. 3).

    Args:
      rewards: e, shape ``[T, ..., N]`` (time first, agents last, e.g. ``[T, N]`` or
        ``[T, num_envs, N]``).
      gamma_lambda: the decay γλ in [0, 1] (0.81 in the papers' runs); a Python number is
        range-checked, a traced value is not.
      initial: w(−1), the trace carried in from before the rollout, shape ``[..., N]``.
        Default zeros: the rollout starts an episode.
      dones: optional bool ``[T, ...]`` (the shape of ``rewards`` without the agent axis).
        ``dones[t]`` True means step t is the **last step of its episode**: w(t) still
        includes e(t) as usual, and the trace restarts from 0 for step t + 1, so
        w(t + 1) = e(t + 1). This matches the reference, whose trace restarts every episode.

    Returns:
      w, shape ``[T, ..., N]``; w(t) includes step t's reward (specs.md §0.4).

    To carry the trace into the next rollout, pass
    ``initial = jnp.where(dones[-1][..., None], 0, w[-1])`` (or ``w[-1]`` without dones).
    """
    rewards = _as_float(rewards)
    if rewards.ndim < 2:
        raise ValueError(
            f"smooth_rewards: rewards must have shape [T, ..., N], got shape {rewards.shape}"
        )
    if isinstance(gamma_lambda, int | float) and not 0.0 <= gamma_lambda <= 1.0:
        raise ValueError(f"smooth_rewards: gamma_lambda must be in [0, 1], got {gamma_lambda}")
    if initial is None:
        initial = jnp.zeros(rewards.shape[1:], rewards.dtype)
    initial = jnp.asarray(initial, rewards.dtype)
    if initial.shape != rewards.shape[1:]:
        raise ValueError(
            f"smooth_rewards: initial must have shape {rewards.shape[1:]} (rewards without the "
            f"time axis), got {initial.shape}"
        )
    if dones is None:
        dones = jnp.zeros(rewards.shape[:-1], bool)
    dones = jnp.asarray(dones)
    if dones.shape != rewards.shape[:-1]:
        raise ValueError(
            f"smooth_rewards: dones must have shape {rewards.shape[:-1]} (rewards without the "
            f"agent axis), got {dones.shape}"
        )

    def step(w_prev, inputs):
        e, done = inputs
        w = gamma_lambda * w_prev + e
        return jnp.where(done[..., None], jnp.zeros_like(w), w), w

    _, smoothed = jax.lax.scan(step, initial, (rewards, dones.astype(bool)))
    return smoothed


def inequity_aversion(smoothed, alpha, beta) -> jax.Array:
    """The inequity-aversion shaping term of [EMUREL] eq. 2, shape ``[..., N]``.

    u_i = −α/(N − 1) · Σ_{j≠i} max(w_j − w_i, 0) − β/(N − 1) · Σ_{j≠i} max(w_i − w_j, 0)

    The learning reward is e_i(t) + u_i(t) with w from :func:`smooth_rewards`. Calling it
    on the raw rewards e instead of w gives the instantaneous variant (no smoothing,
    equivalent to γλ = 0).

    Args:
      smoothed: w, shape ``[..., N]`` with N ≥ 2 agents last.
      alpha: disadvantageous-inequity weight α, a scalar or one per agent ``[N]``.
      beta: advantageous-inequity weight β, a scalar or one per agent ``[N]``.
        Signs are not checked: negative weights express inequity seeking.

    Returns:
      u, shape ``[..., N]`` (≤ 0 for non-negative α, β).
    """
    w = _as_float(smoothed)
    if w.ndim < 1 or w.shape[-1] < 2:
        raise ValueError(
            f"inequity_aversion: smoothed must have shape [..., N] with N >= 2 agents, "
            f"got shape {w.shape}"
        )
    n = w.shape[-1]
    for name, weight in (("alpha", alpha), ("beta", beta)):
        shape = jnp.shape(weight)
        if shape not in ((), (n,)):
            raise ValueError(
                f"inequity_aversion: {name} must be a scalar or have shape ({n},), got {shape}"
            )
    # gap[..., i, j] = w_j − w_i; the j = i term is 0 in both sums, so no mask is needed.
    gap = w[..., None, :] - w[..., :, None]
    envy = jnp.maximum(gap, 0.0).sum(-1)
    guilt = jnp.maximum(-gap, 0.0).sum(-1)
    return -(alpha * envy + beta * guilt) / (n - 1)


class InequityAversion(Motive):
    """Inequity aversion as a motive (specs.md §9.3): the intrinsic reward of agent i is
    :func:`inequity_aversion` of the smoothed extrinsic rewards (``smoothed=True``, the
    papers' form, trace decay γλ restarting every episode) or of the step's rewards
    (``smoothed=False``, the instantaneous variant). The trace is carried across rollouts."""

    name = "ia"
    min_agents = 2

    def __init__(self, alpha=0.0, beta=0.05, gamma: float = 0.9, lam: float = 0.9,
                 smoothed: bool = True):
        # α and β: numbers, or one per agent of the environment (global agent ids), so that
        # agents of one population can differ only in their coefficients.
        for label, value in (("alpha", alpha), ("beta", beta)):
            if not np.all(np.asarray(value) >= 0):
                raise ValueError(f"motive.{label} must be ≥ 0, got {value!r}")
        for label, value in (("ia_gamma", gamma), ("ia_lambda", lam)):
            if not 0 <= value <= 1:
                raise ValueError(f"motive.{label} must be in [0, 1], got {value!r}")
        self.alpha, self.beta, self.gamma_lambda = alpha, beta, gamma * lam
        self.smoothed = smoothed

    def init_carry(self, layout, num_envs):
        return jnp.zeros((layout.num_seeds, num_envs, layout.num_agents), jnp.float32)

    def intrinsic(self, params, carry, rollout, view):
        rewards = rollout.reward
        if self.smoothed:
            # The carried trace belongs to the previous episode where step 0 starts one.
            initial = jnp.where(rollout.start[0][..., None], 0.0, carry)
            w = smooth_rewards(rewards, self.gamma_lambda, initial, rollout.done)
            carry = w[-1]
        else:
            w = rewards
        u = select_agents(inequity_aversion(w, self.alpha, self.beta), view.layout)
        return carry, u, {"inequity_aversion_reward": u.mean(axis=(0, 2))}, {}
