"""Per-seed means of the §10 episode metrics over the episodes that end in a rollout.

Learners add the metrics of every episode that ends (``add_finished``, inside the rollout
scan, only on steps where one ended) and divide once at the end (``mean_finished``).

A metric can be undefined for an episode (NaN from :func:`prosocial.metrics.episode_metrics`:
equality when the collective return is ≤ 0, sustainability when no agent had a positive
reward, …). Such an episode is left out of that metric's mean, so every metric (and every
element of a per-agent metric) keeps its own count of defined episodes; a metric undefined in
every episode that ended, or in a seed where none ended, is NaN (written as an empty cell by
the metrics log). ``episodes`` counts the episodes that ended.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from prosocial import metrics as M


def zero_sums(shapes, num_seeds):
    zeros = {k: jnp.zeros((num_seeds,) + v.shape, jnp.float32) for k, v in shapes.items()}
    return {"sum": zeros, "count": dict(zeros), "episodes": jnp.zeros((num_seeds,), jnp.float32)}


def add_finished(sums, finished, done):
    """Add the metrics of episodes that ended this step ([S, E] accumulators) to per-seed sums
    and per-metric counts of the episodes where the metric is defined (finite)."""
    per_env = jax.vmap(jax.vmap(M.episode_metrics))(finished)
    ended = done.astype(bool)

    def counted(value):
        return ended.reshape(ended.shape + (1,) * (value.ndim - 2)) & jnp.isfinite(value)

    out_sum, out_count = {}, {}
    for k in sums["sum"]:
        value = per_env[k]
        use = counted(value)
        out_sum[k] = sums["sum"][k] + jnp.where(use, value, 0.0).sum(axis=1)
        out_count[k] = sums["count"][k] + use.astype(jnp.float32).sum(axis=1)
    return {"sum": out_sum, "count": out_count,
            "episodes": sums["episodes"] + ended.astype(jnp.float32).sum(axis=1)}


def mean_finished(sums):
    """Per-seed means over the episodes where each metric is defined (NaN where none is),
    and ``episodes``, the number of episodes that ended."""
    out = {}
    for k, total in sums["sum"].items():
        count = sums["count"][k]
        out[k] = jnp.where(count > 0, total / jnp.maximum(count, 1.0), jnp.nan)
    out["episodes"] = sums["episodes"]
    return out
