"""Advantage estimation shared by the actor-critic learners."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(rewards, values, next_values, terminated, done, gamma: float, lam: float):
    """Generalised advantage estimates with a bootstrap value for every step.

    All inputs are time-major ``[T, ...]``: ``values[t]`` = V(o_t); ``next_values[t]`` = the
    value of the observation that followed step t in the same episode (V(o_{t+1}), or the
    value of the final observation where the episode was truncated); ``terminated[t]`` cuts
    the bootstrap; ``done[t]`` (terminated or truncated) cuts the trace.

        δ_t = r_t + γ·(1 − term_t)·V'_t − V_t,   Â_t = δ_t + γλ·(1 − done_t)·Â_{t+1}

    Returns ``(advantages, returns)`` with returns = advantages + values.
    """
    not_term = 1.0 - terminated.astype(jnp.float32)
    not_done = 1.0 - done.astype(jnp.float32)
    deltas = rewards + gamma * not_term * next_values - values

    def body(carry, x):
        delta, cont = x
        adv = delta + gamma * lam * cont * carry
        return adv, adv

    _, adv = jax.lax.scan(body, jnp.zeros_like(deltas[0]), (deltas, not_done), reverse=True)
    return adv, adv + values
