"""Harvest (specs §2): a commons where apples regrow only near other apples.

An empty apple cell with no agent on it regrows with probability 0, 0.005, 0.02, 0.05 for
0, 1, 2, ≥3 apples in its neighbourhood, counted on the map after this step's eating. Our
neighbourhood is the 12 cells within Euclidean distance 2 (j² + k² ≤ 4); the flag
``ref_harvest_moore_neighbourhood`` gives the reference code's 3×3 block (B-04).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prosocial.envs import grid as G
from prosocial.envs.ssd import SSDEnv

HARVEST_MAP = (
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "@ P   P      A    P AAAAA    P  A P  @",
    "@  P     A P AA    P    AAA    A  A  @",
    "@     A AAA  AAA    A    A AA AAAA   @",
    "@ A  AAA A    A  A AAA  A  A   A A   @",
    "@AAA  A A    A  AAA A  AAA        A P@",
    "@ A A  AAA  AAA  A A    A AA   AA AA @",
    "@  A A  AAA    A A  AAA    AAA  A    @",
    "@   AAA  A      AAA  A    AAAA       @",
    "@ P  A       A  A AAA    A  A      P @",
    "@A  AAA  A  A  AAA A    AAAA     P   @",
    "@    A A   AAA  A A      A AA   A  P @",
    "@     AAA   A A  AAA      AA   AAA P @",
    "@ A    A     AAA  A  P          A    @",
    "@       P     A         P  P P     P @",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
)

REGROWTH_PROBS = (0.0, 0.005, 0.02, 0.05)

L1_BALL_2 = tuple((j, k) for j in range(-2, 3) for k in range(-2, 3) if 0 < abs(j) + abs(k) <= 2)
"""The 12 cells within ℓ1 distance 2 of a cell, the cell itself excluded."""


def eaten_apple_neighbours(apples: jax.Array, pos: jax.Array, eaten: jax.Array,
                           cap: int = 3) -> jax.Array:
    """[ECCLES]' sustainability of each eaten apple (eq. 8, specs §9.7.3, D-20): the apples
    on the 12 cells within ℓ1 distance 2 of the eaten apple's cell, the apple itself
    excluded, counted on ``apples`` (bool [H, W], the map after the moves and before the
    eating) and capped at ``cap``; 0 for agents that ate nothing. ``pos`` int [N, 2],
    ``eaten`` bool [N] → int32 [N]. Off-map cells count as empty."""
    h, w = apples.shape
    padded = jnp.pad(apples.astype(jnp.int32), 2)
    count = sum(padded[pos[:, 0] + 2 + j, pos[:, 1] + 2 + k] for j, k in L1_BALL_2)
    return jnp.where(eaten, jnp.minimum(count, cap), 0).astype(jnp.int32)



class Harvest(SSDEnv):
    """Harvest with N agents (default 5), 8 actions, 1000-step episodes."""

    env_id = "harvest"
    default_map = HARVEST_MAP
    actions = 8
    reference_flags = (*SSDEnv.reference_flags, "ref_harvest_moore_neighbourhood")

    def __init__(self, num_agents: int = 5, max_steps: int = 1000,
                 regrowth_probs: tuple[float, float, float, float] = REGROWTH_PROBS,
                 ref_harvest_moore_neighbourhood: bool = False, reference: bool = False,
                 **kwargs):
        super().__init__(num_agents=num_agents, max_steps=max_steps, reference=reference,
                         **kwargs)
        probs = np.asarray(regrowth_probs, dtype=np.float64)
        if probs.shape != (4,) or not np.all((probs >= 0) & (probs <= 1)):  # NaN fails too
            raise ValueError("regrowth_probs must be 4 probabilities in [0, 1] "
                             f"(for 0, 1, 2, ≥3 neighbouring apples), got {regrowth_probs!r}")
        self.regrowth_probs = jnp.asarray(probs, jnp.float32)
        self.ref_harvest_moore_neighbourhood = reference or ref_harvest_moore_neighbourhood
        self.apple_cells = G.cells_of(self.map_lines, "A")
        radius_sq = 2 if self.ref_harvest_moore_neighbourhood else 4
        self.neighbour_offsets = tuple((j, k) for j in range(-2, 3) for k in range(-2, 3)
                                       if 0 < j * j + k * k <= radius_sq)

    def initial_grid(self) -> np.ndarray:
        grid = self.base_grid.copy()
        grid[self.apple_cells[:, 0], self.apple_cells[:, 1]] = G.APPLE
        return grid

    def extra_signals(self, grid, pos, eaten):
        """``eaten_apple_neighbours`` int32[N] (:func:`eaten_apple_neighbours`), what
        [ECCLES]' metric-matching imitators read in Harvest."""
        return {"eaten_apple_neighbours": eaten_apple_neighbours(grid == G.APPLE, pos, eaten)}

    def neighbour_counts(self, grid: jax.Array) -> jax.Array:
        """int32[K]: apples in the neighbourhood of each apple cell (off-map counts empty)."""
        h, w = grid.shape
        apples = jnp.pad((grid == G.APPLE).astype(jnp.int32), 2)
        counts = sum(apples[2 + j:2 + j + h, 2 + k:2 + k + w] for j, k in self.neighbour_offsets)
        return counts[self.apple_cells[:, 0], self.apple_cells[:, 1]]

    def spawn_probabilities(self, grid: jax.Array, pos: jax.Array) -> jax.Array:
        """float32[K]: this step's regrowth probability of each apple cell (0 if it holds an
        apple or an agent stands on it)."""
        cells = jnp.asarray(self.apple_cells)
        counts = jnp.minimum(self.neighbour_counts(grid), 3)
        free = (grid[cells[:, 0], cells[:, 1]] != G.APPLE) & (
            G.occupancy(pos, grid.shape)[cells[:, 0], cells[:, 1]] == 0)
        return jnp.where(free, self.regrowth_probs[counts], 0.0)

    def dynamics(self, key, grid, pos):
        cells = jnp.asarray(self.apple_cells)
        grow = jax.random.uniform(key, (len(self.apple_cells),)) < self.spawn_probabilities(
            grid, pos)
        return grid.at[jnp.where(grow, cells[:, 0], grid.shape[0]), cells[:, 1]].set(
            jnp.int8(G.APPLE), mode="drop")
