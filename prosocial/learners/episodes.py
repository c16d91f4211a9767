"""Per-seed means of the §10 episode metrics over the episodes that end in a rollout.

Learners add the metrics of every episode that ends (``add_finished``, inside the rollout
scan, only on steps where one ended) and divide once at the end (``mean_finished``; NaN
for a seed where no episode ended).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from prosocial import metrics as M


def zero_sums(shapes, num_seeds):
    zeros = {k: jnp.zeros((num_seeds,) + v.shape, jnp.float32) for k, v in shapes.items()}
    return {"sum": zeros, "count": jnp.zeros((num_seeds,), jnp.float32)}


def add_finished(sums, finished, done):
    """Add the metrics of episodes that ended this step ([S, E] accumulators) to per-seed sums."""
    per_env = jax.vmap(jax.vmap(M.episode_metrics))(finished)
    w = done.astype(jnp.float32)

    def add(total, value):
        value = jnp.where(jnp.isfinite(value), value, 0.0)
        weight = w.reshape(w.shape + (1,) * (value.ndim - 2))
        return total + (value * weight).sum(axis=1)

    return {"sum": {k: add(sums["sum"][k], per_env[k]) for k in sums["sum"]},
            "count": sums["count"] + w.sum(axis=1)}


def mean_finished(sums):
    count = sums["count"]
    out = {}
    for k, total in sums["sum"].items():
        c = count.reshape(count.shape + (1,) * (total.ndim - 1))
        out[k] = jnp.where(c > 0, total / jnp.maximum(c, 1.0), jnp.nan)
    out["episodes"] = count
    return out
