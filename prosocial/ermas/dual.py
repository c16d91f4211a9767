"""Regret and the dual (multiplier) step of ERMAS (specs §9.9.2, §9.9.5 step 5, D-41).

Agent i's regret is the gain of its best local unilateral deviation ([ERMAS] eq. 10),

    Δ_i = J_i(δ_i, π_{−i}, π_r) − J_i(π, π_r) = J_i^new − J_i^old,

estimated from E_eval episodes before (J^old) and after (J^new) the deviation. The
multipliers ascend the Lagrangian (eq. 12 with SRAI's sign, B-25):

    λ_i ← clip(λ_i + α_λ · (Δ_i − ε), 0, λ_max),   λ_max = 100.

Regret above ε raises λ_i (agent i becomes more self-interested), below ε lowers it.
"""

from __future__ import annotations

import jax.numpy as jnp

LAMBDA_MAX = 100.0


def regret(j_new, j_old):
    """Δ_i = J_i^new − J_i^old, element by element (any shape, e.g. ``[S, N]``)."""
    return jnp.asarray(j_new, jnp.float32) - jnp.asarray(j_old, jnp.float32)


def dual_step(lam, regret_, epsilon, alpha, lambda_max: float = LAMBDA_MAX,
              freeze: bool = False):
    """λ ← clip(λ + α·(Δ − ε), 0, λ_max) per agent; ``freeze`` returns λ unchanged
    (``freeze_lambda``, the fixed-λ ablation). ``epsilon`` and ``alpha`` are numbers or
    broadcast against ``lam``."""
    lam = jnp.asarray(lam, jnp.float32)
    if freeze:
        return lam
    return jnp.clip(lam + alpha * (jnp.asarray(regret_, jnp.float32) - epsilon), 0.0,
                    lambda_max)


def per_step_regret(regret_, episode_length: int):
    """Δ_i / T, the per-step regret of [ERMAS] Fig. 3 (specs §10)."""
    return jnp.asarray(regret_, jnp.float32) / float(episode_length)


__all__ = ["LAMBDA_MAX", "dual_step", "per_step_regret", "regret"]
