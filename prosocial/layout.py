"""Every reshape between the environment's layout and the learners' layout, in one place.

Environments and motives see arrays **env-major**: ``[S, E, N, ...]`` per step (S seeds,
E environments per seed, N agents) and ``[T, S, E, N, ...]`` over a rollout of T steps.
Networks and learners see a population's arrays **parameter-major**: ``[P, B, ...]``, one
row per parameter set, so that one batched network call serves every agent and seed
(``prosocial.nets``):

- independent parameters (the default): P = S·n (seed-major) for the n agents of the
  population, and B = E;
- shared parameters: P = S and B = E·n (every agent of a seed is one more batch row of the
  same network).

Learners replay recurrent networks on **sequences**: a rollout of T steps is cut into
``chunks = ceil(T / L)`` chunks of L steps (the last one padded and masked), giving
``[P, chunks·B, L, ...]``, and the recurrent state stored at the start of each chunk is the
state the chunk is replayed from (:func:`chunked_scan` keeps only those states, never one
per step).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Layout:
    """The parameter-major layout of one population: which agents, how many seeds, shared
    or independent parameters."""

    num_seeds: int
    num_agents: int
    """Agents of the environment (N)."""
    agents: tuple[int, ...]
    """The population's agent ids, increasing."""
    shared: bool = False

    @property
    def n(self) -> int:
        return len(self.agents)

    @property
    def all_agents(self) -> bool:
        return self.agents == tuple(range(self.num_agents))

    @property
    def num_params(self) -> int:
        """Parameter sets P: S·n, or S when shared."""
        return self.num_seeds if self.shared else self.num_seeds * self.n

    def batch(self, num_envs: int) -> int:
        """Batch rows B per parameter set: E, or E·n when shared."""
        return num_envs * (self.n if self.shared else 1)

    def select(self, x):
        """``[S, E, N, ...]`` → ``[S, E, n, ...]`` (nothing to do for all agents)."""
        if self.all_agents:
            return x
        return x[:, :, np.asarray(self.agents)]

    def to_params(self, x):
        """Env-major ``[S, E, N, ...]`` (all agents) → ``[P, B, ...]``."""
        x = self.select(x)
        s, e, n = x.shape[:3]
        if self.shared:
            return x.reshape((s, e * n) + x.shape[3:])
        return jnp.swapaxes(x, 1, 2).reshape((s * n, e) + x.shape[3:])

    def to_envs(self, x):
        """``[P, B, ...]`` → env-major ``[S, E, n, ...]`` (the population's agents)."""
        s, n = self.num_seeds, self.n
        if self.shared:
            return x.reshape((s, x.shape[1] // n, n) + x.shape[2:])
        e = x.shape[1]
        return jnp.swapaxes(x.reshape((s, n, e) + x.shape[2:]), 1, 2)

    def per_param(self, x):
        """A per-environment value ``[S, E]`` → ``[P, B]`` (the same for every agent)."""
        if self.shared:
            return jnp.repeat(x, self.n, axis=1)
        return jnp.repeat(x, self.n, axis=0)

    def per_param_keys(self, keys):
        """Per-(seed, agent) PRNG keys ``[S, N, 2]`` → one per parameter set ``[P, 2]`` (a
        shared set takes its first agent's key)."""
        keys = keys[:, list(self.agents)]
        if self.shared:
            return keys[:, 0]
        return keys.reshape((-1,) + keys.shape[2:])

    def seed_mean(self, x):
        """Per-parameter-set values ``[P]`` → per-seed means ``[S]``."""
        return x.reshape(self.num_seeds, -1).mean(axis=1)

    def time_to_params(self, x):
        """``[T, S, E, N, ...]`` → ``[T, P, B, ...]``."""
        return jax.vmap(self.to_params)(x)

    def time_to_envs(self, x):
        """``[T, P, B, ...]`` → ``[T, S, E, n, ...]``."""
        return jax.vmap(self.to_envs)(x)

    def scatter(self, x, fill=jnp.nan):
        """Per-seed, per-agent values of the population ``[S, n]`` → ``[S, N]`` at the
        population's agent ids, ``fill`` elsewhere."""
        if self.all_agents:
            return x
        out = jnp.full((x.shape[0], self.num_agents) + x.shape[2:], fill, x.dtype)
        return out.at[:, np.asarray(self.agents)].set(x)


def num_chunks(num_steps: int, seq_len: int) -> int:
    """ceil(T / L): sequences per rollout and batch row."""
    return -(-num_steps // seq_len)


def to_sequences(x, seq_len: int):
    """``[T, P, B, ...]`` → ``[P, chunks·B, L, ...]``, padding time to chunks·L with zeros
    (chunk-major within a parameter set: row c·B + b is chunk c of batch row b)."""
    chunks = num_chunks(x.shape[0], seq_len)
    pad = chunks * seq_len - x.shape[0]
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)])
    x = x.reshape((chunks, seq_len) + x.shape[1:])  # [C, L, P, B, ...]
    x = jnp.moveaxis(x, (0, 1, 2, 3), (1, 3, 0, 2))  # [P, C, B, L, ...]
    return x.reshape((x.shape[0], -1) + x.shape[3:])


def chunk_starts(x):
    """States stored at chunk starts ``[chunks, P, B, ...]`` → ``[P, chunks·B, ...]``, the
    order of :func:`to_sequences`."""
    return jnp.swapaxes(x, 0, 1).reshape((x.shape[1], -1) + x.shape[3:])


def chunked_scan(body, carry, xs, seq_len: int, record=lambda c: c):
    """``lax.scan(body, carry, xs)`` over time, also returning ``record(carry)`` at the start
    of every ``seq_len``-step chunk (``[chunks, ...]``, the last chunk possibly shorter): the
    initial recurrent states of the training sequences, without storing every step's."""
    length = jax.tree.leaves(xs)[0].shape[0]
    full, rest = divmod(length, seq_len)
    ys, starts = [], []
    if full:
        def chunk(c, x):
            c_end, y = jax.lax.scan(body, c, x)
            return c_end, (y, record(c))

        head = jax.tree.map(lambda x: x[:full * seq_len].reshape(
            (full, seq_len) + x.shape[1:]), xs)
        carry, (y, c0) = jax.lax.scan(chunk, carry, head)
        ys.append(jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), y))
        starts.append(c0)
    if rest:
        starts.append(jax.tree.map(lambda x: x[None], record(carry)))
        carry, y = jax.lax.scan(body, carry, jax.tree.map(lambda x: x[full * seq_len:], xs))
        ys.append(y)
    cat = lambda *parts: jnp.concatenate(parts)  # noqa: E731
    return carry, jax.tree.map(cat, *ys), jax.tree.map(cat, *starts)
