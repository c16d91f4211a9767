"""Rules of Harvest (specs §2), one test per rule.

Regrowth probabilities are checked on hand-built maps through ``spawn_probabilities`` (the
per-cell probability of this step's draw), against frequencies over many keys through the
jitted, vmapped ``dynamics``, and through full steps of an environment whose regrowth
probabilities are (0, 1, 1, 1), which makes the dynamics deterministic.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import prosocial
from prosocial.envs import grid as G
from prosocial.envs.harvest import HARVEST_MAP

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
MOVE_UP, STAY, FIRE = 2, 4, 7
P = (0.0, 0.005, 0.02, 0.05)  # §2.2, for 0, 1, 2, ≥3 neighbouring apples

# §2.3 neighbourhoods, written out: the 3×3 block, and ours adds the four cells two away.
MOORE = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
TWELVE = MOORE + [(-2, 0), (2, 0), (0, -2), (0, 2)]

HARVEST = prosocial.make("harvest", num_agents=2)
HARVEST_MOORE = prosocial.make("harvest", num_agents=2, ref_harvest_moore_neighbourhood=True)
# Regrowth certain wherever at least one apple is near: every step is deterministic.
CERTAIN = prosocial.make("harvest", num_agents=2, regrowth_probs=(0.0, 1.0, 1.0, 1.0))
_STEP_CERTAIN = jax.jit(CERTAIN.step_state)
_DYNAMICS = jax.jit(jax.vmap(HARVEST.dynamics, in_axes=(0, None, None)))
APPLE_CELLS = [(r, c) for r, line in enumerate(HARVEST_MAP) for c, ch in enumerate(line)
               if ch == "A"]
PARKED = ((14, 8), (14, 24))  # two spawn cells far from the apples used below


def empty_map(apples=()) -> list[list[str]]:
    """The Harvest map with no apples but the given cells (walls unchanged)."""
    rows = [list(line.replace("A", " ")) for line in HARVEST_MAP]
    for r, c in apples:
        rows[r][c] = "A"
    return rows


def build(env, rows, agents=()):
    agents = list(agents) + [(r, c, UP) for r, c in PARKED[len(agents):]]
    return env.state_from_grid(["".join(r) for r in rows], np.array([a[:2] for a in agents]),
                               np.array([a[2] for a in agents]))


def apples_of(grid) -> set:
    return {tuple(rc) for rc in np.argwhere(np.asarray(grid) == G.APPLE).tolist()}


def probability_at(env, s, cell) -> float:
    probs = np.asarray(env.spawn_probabilities(s.grid, s.pos))
    return float(probs[APPLE_CELLS.index(cell)])


# ------------------------------------------------------------------ §2.1, §2.2 map and actions

def test_rule_2_1_map_counts():
    """§2.1: 16×38 map with 155 apple cells, 20 spawn cells, 104 walls, 329 empty floor; at
    reset every apple cell holds an apple and no other cell does (§2.3)."""
    text = "".join(HARVEST_MAP)
    assert len(HARVEST_MAP) == 16 and {len(line) for line in HARVEST_MAP} == {38}
    assert (text.count("A"), text.count("P"), text.count("@"), text.count(" ")) == (
        155, 20, 104, 329)
    env = prosocial.make("harvest")
    assert len(env.apple_cells) == 155 and len(env.spawn_points) == 20
    assert int(np.sum(env.base_grid == G.WALL)) == 104
    s = env.reset_state(jax.random.key(0))
    assert apples_of(s.grid) == set(APPLE_CELLS)


def test_rule_2_2_eight_actions():
    """§2.2: Harvest has the 8 actions 0–7 (no CLEAN)."""
    env = prosocial.make("harvest")
    assert env.num_actions == 8 and env.action_space.n == 8
    assert env.max_steps == 1000 and env.num_agents == 5


# ------------------------------------------------------------------ §2.3 regrowth probabilities

T = (6, 8)  # an apple cell whose 5×5 surroundings are inside the walls

NEIGHBOUR_CASES = [  # apples at these offsets from T -> (p ours, p with the 3×3 block)
    ((), 0.0, 0.0),
    (((0, 1),), 0.005, 0.005),
    (((2, 0),), 0.005, 0.0),
    (((0, -2),), 0.005, 0.0),
    (((2, 1),), 0.0, 0.0),
    (((2, 2),), 0.0, 0.0),
    (((1, 1), (-1, -1)), 0.02, 0.02),
    (((1, 1), (-2, 0)), 0.02, 0.005),
    (((1, 1), (-1, -1), (0, 1)), 0.05, 0.05),
    (((-2, 0), (2, 0), (0, 2), (0, -2)), 0.05, 0.0),
    (tuple(TWELVE), 0.05, 0.05),
]


@pytest.mark.parametrize(("offsets", "p_ours", "p_moore"), NEIGHBOUR_CASES)
def test_rule_2_3_regrowth_probability_by_neighbour_count(offsets, p_ours, p_moore):
    """§2.3 and B-04: p = 0, 0.005, 0.02, 0.05 for n = 0, 1, 2, ≥3 apples among the 12 cells
    within Euclidean distance 2 (ours) or among the 8 cells of the 3×3 block
    (``ref_harvest_moore_neighbourhood``)."""
    apples = [(T[0] + dr, T[1] + dc) for dr, dc in offsets]
    for env, p in ((HARVEST, p_ours), (HARVEST_MOORE, p_moore)):
        s = build(env, empty_map(apples))
        assert probability_at(env, s, T) == pytest.approx(p, abs=1e-9)


def test_rule_2_3_only_empty_cells_regrow():
    """§2.3: a cell that already holds an apple gets no draw."""
    s = build(HARVEST, empty_map([T] + [(T[0] + dr, T[1] + dc) for dr, dc in MOORE]))
    assert probability_at(HARVEST, s, T) == 0.0


def test_rule_2_3_off_map_cells_count_as_empty():
    """§2.3: cells outside the map count as empty. On a map without border walls whose top
    row is apple cells ' A A ': the corner (0, 0) has one apple near (p = 0.005) and (0, 2)
    two (p = 0.02); reading off-map cells as their nearest edge cells would count more."""
    edge = prosocial.make("harvest", num_agents=2, map=["AAAAA", "     ", "PP   "])
    s = edge.state_from_grid([" A A ", "     ", "     "], np.array([(2, 0), (2, 1)]),
                             np.array([UP, UP]))
    np.testing.assert_allclose(edge.spawn_probabilities(s.grid, s.pos),
                               [0.005, 0.0, 0.02, 0.0, 0.005], atol=1e-9)


def test_rule_2_3_no_regrowth_probability_under_an_agent():
    """§2.3: an empty apple cell with an agent on it gets no draw, whatever its neighbours."""
    apples = [(T[0] + dr, T[1] + dc) for dr, dc in MOORE]
    s = build(HARVEST, empty_map(apples), agents=[(*T, UP)])
    assert probability_at(HARVEST, s, T) == 0.0


def test_rule_2_3_no_regrowth_under_agent_in_a_step():
    """§2.3: with regrowth certain near apples, a step regrows every free apple cell near
    the apple at (1, 22) (ours: (1, 20), (1, 21), (1, 24)) but not (1, 23), under agent 1."""
    s = build(CERTAIN, empty_map([(1, 22)]), agents=[(2, 22, UP), (1, 23, UP)])
    s1 = _STEP_CERTAIN(jax.random.key(0), s, jnp.array([STAY, STAY], jnp.int32))[0]
    assert apples_of(s1.grid) == {(1, 20), (1, 21), (1, 22), (1, 24)}


def test_rule_2_3_counts_use_the_post_eating_map():
    """§2.3 and §1.5: neighbours are counted after this step's eating. Agent 0 eats the only
    apple, so no cell has an apple near and nothing regrows, though regrowth near apples is
    certain (counting before eating would regrow (1, 20), (1, 21), (1, 24))."""
    s = build(CERTAIN, empty_map([(1, 22)]), agents=[(2, 22, UP), (1, 23, UP)])
    s1, reward, *_ = _STEP_CERTAIN(jax.random.key(0), s, jnp.array([MOVE_UP, STAY], jnp.int32))
    assert apples_of(s1.grid) == set()
    np.testing.assert_array_equal(reward, [1.0, 0.0])


def test_rule_2_3_all_cells_update_from_one_snapshot():
    """§2.3: all cells regrow from the same snapshot: with regrowth certain near apples and
    one apple at (1, 20), exactly the apple cells in its neighbourhood appear in one step —
    (1, 21), (1, 22), (3, 20) with ours, (1, 21) with the 3×3 block — not (1, 23), which
    only becomes near an apple through this step's growth."""
    s = build(CERTAIN, empty_map([(1, 20)]))
    s1 = _STEP_CERTAIN(jax.random.key(0), s, jnp.array([STAY, STAY], jnp.int32))[0]
    assert apples_of(s1.grid) == {(1, 20), (1, 21), (1, 22), (3, 20)}
    moore = prosocial.make("harvest", num_agents=2, regrowth_probs=(0.0, 1.0, 1.0, 1.0),
                           ref_harvest_moore_neighbourhood=True)
    grid = moore.dynamics(jax.random.key(0), s.grid, s.pos)
    assert apples_of(grid) == {(1, 20), (1, 21)}


def _neighbour_counts(grid: np.ndarray, offsets) -> np.ndarray:
    """Independent count of §2.3: apples at ``offsets`` of each apple cell, off-map empty."""
    h, w = grid.shape
    counts = []
    for r, c in APPLE_CELLS:
        counts.append(sum(1 for dr, dc in offsets if 0 <= r + dr < h and 0 <= c + dc < w
                          and grid[r + dr, c + dc] == G.APPLE))
    return np.array(counts)


def _thinned_state():
    """A Harvest state with 60 % of the apples eaten at random and agent 0 on an empty apple
    cell with apples near: every neighbour class occurs."""
    rng = np.random.default_rng(0)
    keep = [cell for cell in APPLE_CELLS if rng.random() < 0.4]
    rows = empty_map(keep)
    grid = np.array([[G.APPLE if ch == "A" else G.EMPTY for ch in row] for row in rows])
    counts = _neighbour_counts(grid, TWELVE)
    agent_cell = next(cell for cell, n in zip(APPLE_CELLS, counts, strict=True)
                      if n >= 3 and cell not in keep)
    return build(HARVEST, rows, agents=[(*agent_cell, UP)]), agent_cell


@pytest.mark.parametrize(("env", "offsets"), [(HARVEST, TWELVE), (HARVEST_MOORE, MOORE)])
def test_rule_2_3_probabilities_on_a_whole_map(env, offsets):
    """§2.3 and B-04 on every apple cell of a thinned map: p[min(n, 3)] with n counted
    independently here, 0 for cells holding an apple or an agent."""
    s, agent_cell = _thinned_state()
    grid = np.asarray(s.grid)
    n = _neighbour_counts(grid, offsets)
    free = np.array([grid[r, c] != G.APPLE and (r, c) != agent_cell for r, c in APPLE_CELLS])
    expected = np.where(free, np.array(P)[np.minimum(n, 3)], 0.0)
    np.testing.assert_allclose(env.spawn_probabilities(s.grid, s.pos), expected, atol=1e-9)
    assert set(np.minimum(n[free], 3).tolist()) == {0, 1, 2, 3}


def test_rule_2_3_empirical_regrowth_frequency_matches_p():
    """§2.3: over 2000 keys, each neighbour class regrows at frequency p within 5 standard
    errors; cells with no apple near (a locally exhausted patch) and the agent's cell never
    regrow; apples are never removed by the dynamics."""
    s, agent_cell = _thinned_state()
    grid = np.asarray(s.grid)
    keys = jax.random.split(jax.random.key(7), 2000)
    new = np.asarray(_DYNAMICS(keys, s.grid, s.pos))
    cells = np.array(APPLE_CELLS)
    before = grid[cells[:, 0], cells[:, 1]] == G.APPLE
    after = new[:, cells[:, 0], cells[:, 1]] == G.APPLE
    assert np.all(after[:, before])
    grown = after & ~before
    assert not grown[:, APPLE_CELLS.index(agent_cell)].any()
    n = np.minimum(_neighbour_counts(grid, TWELVE), 3)
    free = ~before & (np.arange(len(cells)) != APPLE_CELLS.index(agent_cell))
    assert not grown[:, free & (n == 0)].any()
    for k in (1, 2, 3):
        trials = grown[:, free & (n == k)]
        se = np.sqrt(P[k] * (1 - P[k]) / trials.size)
        assert abs(trials.mean() - P[k]) < 5 * se, (k, trials.mean())
    # Nothing but apple cells changes.
    other = np.ones(grid.shape, bool)
    other[cells[:, 0], cells[:, 1]] = False
    assert np.all(new[:, other] == grid[other])


# ------------------------------------------------------------------ §2.4 rewards

def test_rule_2_4_rewards():
    """§2.4: apple +1; FIRE −1 to the firer; −50 per hit received. Agent 0 steps onto an
    apple into agent 1's beam: 1 − 50 = −49; agent 1: −1. A step of STAYs pays 0."""
    s = build(CERTAIN, empty_map([(1, 22)]), agents=[(2, 22, UP), (1, 26, LEFT)])
    _, reward, _, _, info = _STEP_CERTAIN(jax.random.key(1), s,
                                          jnp.array([MOVE_UP, FIRE], jnp.int32))
    np.testing.assert_array_equal(reward, [-49.0, -1.0])
    ev = info["events"]
    np.testing.assert_array_equal(ev["apples_eaten"], [1, 0])
    np.testing.assert_array_equal(ev["fires"], [0, 1])
    np.testing.assert_array_equal(ev["hits_received"], [1, 0])
    np.testing.assert_array_equal(ev["hits_given"], [0, 1])
    _, reward, *_ = _STEP_CERTAIN(jax.random.key(1), s, jnp.array([STAY, STAY], jnp.int32))
    np.testing.assert_array_equal(reward, [0.0, 0.0])
