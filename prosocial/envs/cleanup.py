"""Cleanup (specs §3): apples grow only while agents keep the river clean of waste.

After each step's cleaning, the waste density ρ = waste cells / W (W = the map's waste
cells, 119) sets the spawn probabilities: none while ρ ≥ 0.4; otherwise waste 0.5 per trial
and apples 0.05·(1 − ρ/0.4) per free apple cell (0.05 at ρ = 0). At most one waste cell
appears per step: with probability 1 − 0.5^m (m clean waste cells) one of them, uniformly
chosen, the same distribution as the reference's walk of shuffled cells. Waste may appear
under an agent; apples never do.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prosocial.envs import grid as G
from prosocial.envs.ssd import SSDEnv

CLEANUP_MAP = (
    "@@@@@@@@@@@@@@@@@@",
    "@RRRRRR     BBBBB@",
    "@HHHHHH      BBBB@",
    "@RRRRRR     BBBBB@",
    "@RRRRR  P    BBBB@",
    "@RRRRR    P BBBBB@",
    "@HHHHH       BBBB@",
    "@RRRRR      BBBBB@",
    "@HHHHHHSSSSSSBBBB@",
    "@HHHHHHSSSSSSBBBB@",
    "@RRRRR   P P BBBB@",
    "@HHHHH   P  BBBBB@",
    "@RRRRRR    P BBBB@",
    "@HHHHHH P   BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHH    P  BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHHH  P P BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHH       BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHHH      BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHH       BBBBB@",
    "@@@@@@@@@@@@@@@@@@",
)


class Cleanup(SSDEnv):
    """Cleanup with N agents (default 5), 9 actions (CLEAN is 8), 1000-step episodes."""

    env_id = "cleanup"
    default_map = CLEANUP_MAP
    actions = 9

    def __init__(self, num_agents: int = 5, max_steps: int = 1000,
                 depletion_threshold: float = 0.4, restoration_threshold: float = 0.0,
                 waste_spawn_prob: float = 0.5, apple_respawn_prob: float = 0.05, **kwargs):
        super().__init__(num_agents=num_agents, max_steps=max_steps, **kwargs)
        for name, value in [("depletion_threshold", depletion_threshold),
                            ("restoration_threshold", restoration_threshold),
                            ("waste_spawn_prob", waste_spawn_prob),
                            ("apple_respawn_prob", apple_respawn_prob)]:
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"cleanup: {name} must lie in [0, 1], got {value!r}")
        if restoration_threshold >= depletion_threshold:
            raise ValueError("cleanup: restoration_threshold must be below depletion_threshold")
        self.depletion_threshold = float(depletion_threshold)
        self.restoration_threshold = float(restoration_threshold)
        self.waste_spawn_prob = float(waste_spawn_prob)
        self.apple_respawn_prob = float(apple_respawn_prob)
        self.apple_cells = G.cells_of(self.map_lines, "B")
        self.waste_cells = G.cells_of(self.map_lines, "HR")
        if len(self.waste_cells) == 0:
            raise ValueError("cleanup: the map has no waste cells ('H' or 'R')")
        self.is_waste_cell = np.zeros(self.base_grid.shape, bool)
        self.is_waste_cell[self.waste_cells[:, 0], self.waste_cells[:, 1]] = True

    def validate_cells(self, codes: np.ndarray) -> None:
        dirty = np.isin(codes, (G.WASTE, G.RIVER)) & ~self.is_waste_cell
        if np.any(dirty):
            raise ValueError("waste ('H') and river ('R') may only lie on the map's waste cells")

    def extra_events(self, cleaned, actions):
        return {"cleans": (actions == G.CLEAN).astype(jnp.int32), "waste_cleaned": cleaned}

    def spawn_rates(self, grid: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(waste density, apple probability, waste probability) of this map (§3.3).

        The density is h/W (h waste cells). The reference writes 1 − (W − h)/W, which in
        float64 differs only in the last bit; in float32 that form loses ~6e-8 to
        cancellation (−5e-8 instead of 0 with no waste), so we divide directly.
        """
        cells = jnp.asarray(self.waste_cells)
        total = len(self.waste_cells)
        h = jnp.sum(grid[cells[:, 0], cells[:, 1]] == G.WASTE)
        density = h / total
        depleted = density >= self.depletion_threshold
        restored = density <= self.restoration_threshold
        apple = jnp.where(
            depleted, 0.0,
            jnp.where(restored, self.apple_respawn_prob,
                      self.apple_respawn_prob * (1.0 - (density - self.restoration_threshold)
                                                 / (self.depletion_threshold
                                                    - self.restoration_threshold))))
        waste = jnp.where(depleted, 0.0, self.waste_spawn_prob)
        return density, apple, waste

    def spawn_probabilities(self, grid: jax.Array, pos: jax.Array):
        """(float32[K] apple probability per apple cell, float32[W] per-trial waste
        probability per waste cell), 0 where no draw is made."""
        _, apple, waste = self.spawn_rates(grid)
        a, w = jnp.asarray(self.apple_cells), jnp.asarray(self.waste_cells)
        free = (grid[a[:, 0], a[:, 1]] != G.APPLE) & (
            G.occupancy(pos, grid.shape)[a[:, 0], a[:, 1]] == 0)
        clean = grid[w[:, 0], w[:, 1]] != G.WASTE
        return jnp.where(free, apple, 0.0), jnp.where(clean, waste, 0.0)

    def dynamics(self, key, grid, pos):
        key_apple, key_any, key_which = jax.random.split(key, 3)
        apple_p, waste_p = self.spawn_probabilities(grid, pos)
        a, w = jnp.asarray(self.apple_cells), jnp.asarray(self.waste_cells)
        grow = jax.random.uniform(key_apple, apple_p.shape) < apple_p
        grid = grid.at[jnp.where(grow, a[:, 0], grid.shape[0]), a[:, 1]].set(
            jnp.int8(G.APPLE), mode="drop")
        clean = waste_p > 0
        m = jnp.sum(clean)
        p_any = 1.0 - (1.0 - jnp.max(waste_p)) ** m
        spawn = (jax.random.uniform(key_any) < p_any) & (m > 0)
        which = jnp.argmax(jnp.where(clean, jax.random.uniform(key_which, waste_p.shape), -1.0))
        row = jnp.where(spawn, w[which, 0], grid.shape[0])
        return grid.at[row, w[which, 1]].set(jnp.int8(G.WASTE), mode="drop")
