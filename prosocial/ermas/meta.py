"""ERMAS's first-order meta step (specs §9.9.4, REPTILE-style, SRAI's form).

The meta-gradient ∇J_i(θ^δ(θ), θ_{−i}) is approximated by moving the parameters away from
each agent's deviation:

    θ ← θ + b_i · (θ − θ'_i),   b_i = min(β · λ_i, cap),  cap = 2,

for i = 1 … N in turn, θ'_i the parameters agent i's deviation ended at and β the
``metascale``. With one parameter set shared by the agents every step moves the shared θ
(and the later steps see the earlier ones' result); with separate parameters per agent
(the bimatrix default, D-38) step i moves only θ_i, so the N steps are independent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

META_CAP = 2.0


def meta_scale(lam, beta: float, cap: float = META_CAP):
    """b_i = min(β·λ_i, cap)."""
    return jnp.minimum(beta * jnp.asarray(lam, jnp.float32), cap)


def reptile_per_agent(theta, deviations, lam, beta: float, cap: float = META_CAP):
    """Separate parameters: θ_i ← θ_i + b_i·(θ_i − θ'_i) for every agent at once.

    ``theta`` and ``deviations`` are pytrees with leaves ``[K, ...]`` (K parameter sets, e.g.
    seeds × agents), ``lam`` ``[K]``.
    """
    b = meta_scale(lam, beta, cap)

    def move(t, d):
        bb = b.reshape(b.shape + (1,) * (t.ndim - b.ndim))
        return t + bb * (t - d)

    return jax.tree.map(move, theta, deviations)


def reptile_shared(theta, deviations, lam, beta: float, cap: float = META_CAP):
    """Shared parameters: θ ← θ + b_i·(θ − θ'_i) for i = 0 … N−1 in turn.

    ``theta`` leaves ``[...]`` (one parameter set, or batched: any leading axes shared with
    ``deviations``), ``deviations`` leaves ``[N, ...]`` (agent i's deviation at index i on
    the first axis), ``lam`` ``[N]``.
    """
    b = meta_scale(lam, beta, cap)
    n = b.shape[0]
    for i in range(n):  # N is small and static; the order matters (SRAI's loop)
        theta = jax.tree.map(lambda t, d, i=i: t + b[i] * (t - d[i]), theta, deviations)
    return theta


__all__ = ["META_CAP", "meta_scale", "reptile_per_agent", "reptile_shared"]
