"""Rules of Cleanup (specs §3), one test per rule.

Spawn probabilities are checked on hand-built maps with ``spawn_rates``; their effect through
the jitted ``dynamics`` vmapped over keys, on the real map and on SMALL, a map with five waste
cells where the waste law 1 − 0.5^m is far from 1; full steps through a jitted, vmapped
``step_state`` on the real map.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import prosocial
from prosocial.envs import grid as G
from prosocial.envs.cleanup import CLEANUP_MAP

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
MOVE_UP, STAY, FIRE, CLEAN = 2, 4, 7, 8

CLEANUP = prosocial.make("cleanup", num_agents=2)
WASTE_CELLS = [(r, c) for r, line in enumerate(CLEANUP_MAP) for c, ch in enumerate(line)
               if ch in "HR"]
APPLE_CELLS = [(r, c) for r, line in enumerate(CLEANUP_MAP) for c, ch in enumerate(line)
               if ch == "B"]
SMALL_MAP = ["HRRRR", "  PP ", "BBBBB"]
SMALL = prosocial.make("cleanup", num_agents=2, map=SMALL_MAP)

_DYNAMICS = jax.jit(jax.vmap(CLEANUP.dynamics, in_axes=(0, None, None)))
_DYNAMICS_SMALL = jax.jit(jax.vmap(SMALL.dynamics, in_axes=(0, None, None)))
_STEP = jax.jit(jax.vmap(CLEANUP.step_state, in_axes=(0, None, None)))
KEYS = jax.random.split(jax.random.key(11), 64)


def polluted(waste_cells, apples=()) -> list[str]:
    """The Cleanup map with waste exactly on ``waste_cells`` (river on the other waste cells)
    and apples on ``apples``."""
    rows = [list(line.replace("H", "R")) for line in CLEANUP_MAP]
    for r, c in waste_cells:
        rows[r][c] = "H"
    for r, c in apples:
        rows[r][c] = "A"
    return ["".join(r) for r in rows]


def build(rows, agents):
    return CLEANUP.state_from_grid(rows, np.array([a[:2] for a in agents]),
                                   np.array([a[2] for a in agents]))


def count(grid, code) -> np.ndarray:
    return np.sum(np.asarray(grid) == code, axis=(-2, -1))


PARKED = [(10, 9, UP), (10, 11, UP)]
FAR_WASTE = [cell for cell in WASTE_CELLS if cell[0] >= 10]


# ------------------------------------------------------------------ §3.1, §3.2 map and actions

def test_rule_3_1_map_counts():
    """§3.1–3.2: 25×18 map with 103 apple-spawn cells B, 56 waste cells H, 63 river R, 12
    stream S, 10 spawn cells P, 82 walls, 124 empty floor; W = 119 waste cells (H + R)."""
    text = "".join(CLEANUP_MAP)
    assert len(CLEANUP_MAP) == 25 and {len(line) for line in CLEANUP_MAP} == {18}
    assert [text.count(ch) for ch in "BHRSP@ "] == [103, 56, 63, 12, 10, 82, 124]
    env = prosocial.make("cleanup")
    assert len(env.apple_cells) == 103 and len(env.waste_cells) == 119
    assert len(env.spawn_points) == 10


def test_rule_3_2_nine_actions():
    """§3.2: Cleanup has the 9 actions 0–8 (CLEAN is 8)."""
    env = prosocial.make("cleanup")
    assert env.num_actions == 9 and env.action_space.n == 9 and env.max_steps == 1000


def test_rule_3_3_reset_waste_on_h_cells_and_no_apples():
    """§3.3: at reset waste lies on exactly the 56 H cells, the other waste cells are river,
    the stream is intact and there are no apples."""
    s = jax.jit(CLEANUP.reset_state)(jax.random.key(0))
    grid = np.asarray(s.grid)
    expected = {"H": G.WASTE, "R": G.RIVER, "S": G.STREAM, "@": G.WALL, "B": G.EMPTY,
                "P": G.EMPTY, " ": G.EMPTY}
    np.testing.assert_array_equal(
        grid, [[expected[ch] for ch in line] for line in CLEANUP_MAP])
    assert count(grid, G.APPLE) == 0 and count(grid, G.WASTE) == 56


# ------------------------------------------------------------------ §3.3 probabilities

RATE_CASES = [  # waste cells h -> (apple probability, waste probability), by hand:
    # ρ = h/119; ρ ≥ 0.4 → (0, 0); else 0.05·(1 − ρ/0.4) = 0.05·(1 − h/47.6), and 0.5.
    (56, 0.0, 0.0),
    (48, 0.0, 0.0),  # ρ = 0.4034
    (47, 0.03 / 47.6, 0.5),  # ρ = 0.3950: 0.000630252
    (40, 0.38 / 47.6, 0.5),  # 0.00798319
    (24, 1.18 / 47.6, 0.5),  # 0.0247899
    (12, 1.78 / 47.6, 0.5),  # 0.0373950
    (0, 0.05, 0.5),  # ρ = 0 ≤ restoration threshold
]


@pytest.mark.parametrize(("h", "p_apple", "p_waste"), RATE_CASES)
def test_rule_3_3_spawn_probabilities_from_waste_density(h, p_apple, p_waste):
    """§3.3: density ρ = h / 119; ρ ≥ 0.4 → apple and waste probability 0; otherwise waste
    0.5 and apple 0.05 if ρ ≤ 0, else 0.05·(1 − ρ/0.4). 48 waste cells: nothing; 47: both."""
    grid = jnp.asarray(build(polluted(WASTE_CELLS[:h]), PARKED).grid)
    density, apple, waste = CLEANUP.spawn_rates(grid)
    assert float(density) == pytest.approx(h / 119, abs=1e-7)
    assert float(apple) == pytest.approx(p_apple, rel=1e-5, abs=1e-12)
    assert float(waste) == p_waste


def test_rule_3_3_threshold_48_waste_cells_nothing_spawns():
    """§3.3 (golden README note 9): with 48 waste cells nothing spawns under any key."""
    s = build(polluted(FAR_WASTE[:48]), PARKED)
    new = np.asarray(_DYNAMICS(KEYS, s.grid, s.pos))
    np.testing.assert_array_equal(new, np.broadcast_to(np.asarray(s.grid), new.shape))


def test_rule_3_3_threshold_47_waste_cells_spawns_exactly_one_waste():
    """§3.3: with 47 waste cells (m = 72 clean waste cells) waste spawns on one cell per
    step (probability 1 − 0.5^72), never more, only on a clean waste cell; apples appear at
    about 0.00063 per free apple cell."""
    s = build(polluted(FAR_WASTE[:47]), PARKED)
    keys = jax.random.split(jax.random.key(12), 512)
    new = np.asarray(_DYNAMICS(keys, s.grid, s.pos))
    np.testing.assert_array_equal(count(new, G.WASTE), 48)
    grid = np.asarray(s.grid)
    added = (new == G.WASTE) & (grid != G.WASTE)
    cells = np.argwhere(added.any(0))
    assert all(tuple(rc) in WASTE_CELLS and grid[tuple(rc)] == G.RIVER for rc in cells)
    apples = count(new, G.APPLE).sum()
    assert 0 < apples < 100  # expected 0.00063 · 103 · 512 ≈ 33


def test_rule_3_3_density_exactly_at_threshold_spawns_nothing():
    """§3.3: ρ ≥ 0.4 includes ρ = 0.4 (SMALL: 2 of 5 waste cells)."""
    s = SMALL.state_from_grid(["HHRRR", "     ", "     "], np.array([(1, 0), (1, 1)]),
                              np.array([UP, UP]))
    assert float(SMALL.spawn_rates(s.grid)[1]) == 0.0
    new = np.asarray(_DYNAMICS_SMALL(KEYS, s.grid, s.pos))
    np.testing.assert_array_equal(new, np.broadcast_to(np.asarray(s.grid), new.shape))


def test_rule_3_3_waste_and_apple_spawn_distribution():
    """§3.3 on SMALL with 1 of 5 cells polluted (ρ = 0.2), over 8000 keys: waste spawns on at
    most one cell, with probability 1 − 0.5^4 = 0.9375, uniformly over the 4 clean cells
    (0.234375 each), including the river cell under agent 0 (SSD issue #78). Apples spawn
    with 0.05·(1 − 0.2/0.4) = 0.025 per free apple cell, never under agent 1."""
    s = SMALL.state_from_grid(["HRRRR", "     ", "     "], np.array([(0, 2), (2, 1)]),
                              np.array([UP, UP]))
    keys = jax.random.split(jax.random.key(13), 8000)
    new = np.asarray(_DYNAMICS_SMALL(keys, s.grid, s.pos))
    waste = new[:, 0] == G.WASTE
    assert waste[:, 0].all()
    spawned = waste[:, 1:]
    assert spawned.sum(1).max() == 1
    p_any, p_cell = 1 - 0.5**4, (1 - 0.5**4) / 4
    assert abs(spawned.any(1).mean() - p_any) < 5 * np.sqrt(p_any * (1 - p_any) / 8000)
    se_cell = np.sqrt(p_cell * (1 - p_cell) / 8000)
    np.testing.assert_allclose(spawned.mean(0), p_cell, atol=5 * se_cell)
    apples = new[:, 2] == G.APPLE
    assert not apples[:, 1].any()
    free = apples[:, [0, 2, 3, 4]]
    assert abs(free.mean() - 0.025) < 5 * np.sqrt(0.025 * 0.975 / free.size)


def test_rule_3_3_cleaning_counts_before_probabilities():
    """§1.5 step 5 and §3.3 (SSD issue #110): agent 0 cleans one of 48 waste cells; the
    probabilities are computed on the 47 left, so waste spawns in the same step (48 waste
    cells afterwards under every key; computing them first would leave 47)."""
    s = build(polluted(FAR_WASTE[:47] + [(4, 5)]), [(4, 7, LEFT), PARKED[0]])
    s1, reward, _, _, info = jax.device_get(_STEP(KEYS, s, jnp.array([CLEAN, STAY], jnp.int32)))
    np.testing.assert_array_equal(info["events"]["waste_cleaned"], np.tile([1, 0], (64, 1)))
    # (4, 5) itself may get the new waste (1 in 73), so only the count is fixed.
    np.testing.assert_array_equal(count(s1.grid, G.WASTE), 48)
    np.testing.assert_array_equal(reward, 0.0)


# ------------------------------------------------------------------ §3.4 rewards

def test_rule_3_4_rewards():
    """§3.4: apple +1; CLEAN costs nothing; FIRE −1 to the firer and −50 to its victim."""
    s = build(polluted(FAR_WASTE[:48], apples=[(4, 10)]), [(4, 7, LEFT), (5, 10, UP)])
    _, reward, *_ = jax.device_get(_STEP(KEYS, s, jnp.array([CLEAN, MOVE_UP], jnp.int32)))
    np.testing.assert_array_equal(reward, np.tile([0.0, 1.0], (64, 1)))
    s = build(polluted(FAR_WASTE[:48]), [(4, 7, LEFT), (4, 3, UP)])
    _, reward, _, _, info = jax.device_get(_STEP(KEYS, s, jnp.array([FIRE, STAY], jnp.int32)))
    np.testing.assert_array_equal(reward, np.tile([-1.0, -50.0], (64, 1)))
    np.testing.assert_array_equal(info["events"]["cleans"], 0)
