"""Piecewise-linear schedules over environment steps (learning rates, motive weights).

A schedule is a tuple of ``(env steps, value)`` knots with non-decreasing steps; its value
is linear between knots, the first knot's value before the first and the last knot's value
after the last (RLlib's ``PiecewiseSchedule`` with its ``outside_value`` held at the end, as
the SSD run scripts use it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def knots(name: str, schedule, positive: bool = False) -> tuple[tuple[float, float], ...]:
    """``schedule`` as float knots, or a ValueError naming ``name`` if the steps are negative
    or decrease (or, with ``positive``, a value is not > 0)."""
    out = tuple((float(s), float(v)) for s, v in schedule)
    steps = [s for s, _ in out]
    if out and (steps[0] < 0 or any(b < a for a, b in zip(steps, steps[1:], strict=False))):
        raise ValueError(f"{name} steps must be ≥ 0 and non-decreasing, got {out}")
    if positive and any(not v > 0 for _, v in out):
        raise ValueError(f"{name} values must be positive, got {out}")
    return out


def piecewise_linear(schedule, env_steps) -> jax.Array:
    """The schedule's value at ``env_steps`` (float32, the shape of ``env_steps``)."""
    xs = jnp.asarray([s for s, _ in schedule], jnp.float32)
    ys = jnp.asarray([v for _, v in schedule], jnp.float32)
    return jnp.interp(jnp.asarray(env_steps, jnp.float32), xs, ys)
