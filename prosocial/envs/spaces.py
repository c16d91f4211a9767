"""Observation and action spaces of one agent.

Small, jittable-friendly descriptions of what an agent sees and does. They know how to
sample (with an explicit key), how to check a value, and how to become the matching
gymnasium space for the PettingZoo adapter.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Discrete:
    """Integers 0 … n − 1."""

    n: int
    dtype: str = "int32"

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, (), 0, self.n, dtype=self.dtype)

    def contains(self, x) -> bool:
        x = np.asarray(x)
        return x.shape == () and np.issubdtype(x.dtype, np.integer) and 0 <= int(x) < self.n

    def to_gymnasium(self):
        import gymnasium

        return gymnasium.spaces.Discrete(self.n)


@dataclass(frozen=True, init=False)
class MultiDiscrete:
    """A vector of independent integers: component k lies in 0 … nvec[k] − 1.

    A planner choosing one of 22 levels for each of 7 brackets has ``MultiDiscrete((22,) *
    7)``. ``nvec`` is stored as a tuple of ints, so two spaces with the same sizes are equal
    and the space stays hashable.
    """

    nvec: tuple[int, ...]
    dtype: str = "int32"

    def __init__(self, nvec, dtype: str = "int32"):
        sizes = np.asarray(nvec)
        if sizes.ndim != 1 or sizes.size == 0 or not np.issubdtype(sizes.dtype, np.integer):
            raise ValueError(f"MultiDiscrete: nvec must be a non-empty 1-D sequence of "
                             f"integers, got {nvec!r}")
        if np.any(sizes < 1):
            raise ValueError(f"MultiDiscrete: every size in nvec must be ≥ 1, got {nvec!r}")
        if not np.issubdtype(np.dtype(dtype), np.integer):
            raise ValueError(f"MultiDiscrete: dtype must be an integer type, got {dtype!r}")
        object.__setattr__(self, "nvec", tuple(int(n) for n in sizes))
        object.__setattr__(self, "dtype", str(np.dtype(dtype)))

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.nvec),)

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, self.shape, 0, jnp.asarray(self.nvec),
                                  dtype=jnp.int32).astype(self.dtype)

    def contains(self, x) -> bool:
        x = np.asarray(x)
        return (x.shape == self.shape and np.issubdtype(x.dtype, np.integer)
                and bool(np.all(x >= 0)) and bool(np.all(x < np.asarray(self.nvec))))

    def to_gymnasium(self):
        import gymnasium

        return gymnasium.spaces.MultiDiscrete(np.asarray(self.nvec), dtype=np.dtype(self.dtype))


@dataclass(frozen=True)
class Box:
    """Arrays of a fixed shape and dtype with elementwise bounds."""

    low: float
    high: float
    shape: tuple[int, ...]
    dtype: str = "float32"

    def sample(self, key: jax.Array) -> jax.Array:
        if np.issubdtype(np.dtype(self.dtype), np.integer):
            return jax.random.randint(
                key, self.shape, int(self.low), int(self.high) + 1, dtype=jnp.int32
            ).astype(self.dtype)
        return jax.random.uniform(key, self.shape, minval=self.low, maxval=self.high).astype(
            self.dtype
        )

    def contains(self, x) -> bool:
        x = np.asarray(x)
        return (
            x.shape == tuple(self.shape)
            and x.dtype == np.dtype(self.dtype)
            and bool(np.all(x >= self.low))
            and bool(np.all(x <= self.high))
        )

    def to_gymnasium(self):
        import gymnasium

        return gymnasium.spaces.Box(self.low, self.high, self.shape, np.dtype(self.dtype))


@dataclass(frozen=True)
class Dict:
    """A dictionary of named sub-spaces (the observation of one agent)."""

    spaces: dict

    @property
    def shape(self):
        return {k: s.shape for k, s in self.spaces.items()}

    def sample(self, key: jax.Array) -> dict:
        keys = jax.random.split(key, len(self.spaces))
        return {k: s.sample(kk) for (k, s), kk in zip(self.spaces.items(), keys, strict=True)}

    def contains(self, x) -> bool:
        return (
            isinstance(x, dict)
            and set(x) == set(self.spaces)
            and all(s.contains(x[k]) for k, s in self.spaces.items())
        )

    def to_gymnasium(self):
        import gymnasium

        return gymnasium.spaces.Dict({k: s.to_gymnasium() for k, s in self.spaces.items()})
