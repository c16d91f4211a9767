"""Properties of one Harvest or Cleanup step from random valid states (specs §1.4–§1.8, §2.3,
§3.3), checked with hypothesis.

A scenario puts five agents on distinct cells of a small random window (so they often
contest cells, swap, chain and hit each other), fills apple and waste cells at random
densities and draws a joint action and a key. Every example runs the same jitted
``step_state`` per game, so the module compiles two programs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prosocial
from prosocial.envs import grid as G

N = 5
FIRE, CLEAN = 7, 8
ENVS = {env_id: prosocial.make(env_id, num_agents=N) for env_id in ("harvest", "cleanup")}
STEPS = {env_id: jax.jit(env.step_state) for env_id, env in ENVS.items()}
APPLE_CHAR = {"harvest": "A", "cleanup": "B"}
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


def cells_with(env, chars) -> np.ndarray:
    """bool[H, W]: the map-file cells holding one of ``chars``."""
    return np.array([[ch in chars for ch in line] for line in env.map_lines])


@st.composite
def scenarios(draw, env_id):
    """(env_id, state, actions, key) with agents in a w×w window inside the walls."""
    env = ENVS[env_id]
    h, w = env.base_grid.shape
    size = draw(st.integers(3, 8))
    r0 = draw(st.integers(1, h - 1 - size))
    # Cleanup's waste cells are its columns 1–6: put half of the windows next to them.
    c_max = w - 1 - size if env_id == "harvest" or draw(st.booleans()) else 4
    c0 = draw(st.integers(1, c_max))
    slots = draw(st.lists(st.integers(0, size * size - 1), min_size=N, max_size=N, unique=True))
    pos = np.array([(r0 + k // size, c0 + k % size) for k in slots])
    orient = np.array(draw(st.lists(st.integers(0, 3), min_size=N, max_size=N)))
    # Beams twice as likely as other actions, so that rays often meet agents and waste.
    beams = [FIRE, FIRE] + ([CLEAN, CLEAN] if env.num_actions > CLEAN else [])
    actions = draw(st.lists(st.sampled_from(list(range(env.num_actions)) + beams),
                            min_size=N, max_size=N))
    apple_density, waste_density = draw(st.floats(0, 1)), draw(st.floats(0, 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))

    rows = [list(line) for line in env.map_lines]
    for r, line in enumerate(env.map_lines):
        for c, ch in enumerate(line):
            if ch == APPLE_CHAR[env_id]:
                rows[r][c] = "A" if rng.random() < apple_density else " "
            elif ch in "HR":
                rows[r][c] = "H" if rng.random() < waste_density else "R"
    state = env.state_from_grid(["".join(r) for r in rows], pos, orient)
    key = jax.random.key(draw(st.integers(0, 2**31 - 1)))
    return env_id, state, jnp.array(actions, jnp.int32), key


def step(scenario):
    env_id, state, actions, key = scenario
    next_state, reward, terminated, truncated, info = jax.device_get(
        STEPS[env_id](key, state, actions))
    return jax.device_get(state), np.asarray(actions), next_state, reward, info


@pytest.mark.parametrize("env_id", sorted(ENVS))
@SETTINGS
@given(data=st.data())
def test_property_1_4_agents_never_share_a_cell(env_id, data):
    """§1.4: after any joint action agents stand on distinct walkable cells, each at most one
    cell from where it stood."""
    env = ENVS[env_id]
    s0, _, s1, _, _ = step(data.draw(scenarios(env_id)))
    before = np.asarray(s0.pos)
    assert len({tuple(p) for p in s1.pos.tolist()}) == N
    assert np.all(np.asarray(env.walkable)[s1.pos[:, 0], s1.pos[:, 1]])
    assert np.all(np.abs(s1.pos - before).sum(1) <= 1)


@pytest.mark.parametrize("env_id", sorted(ENVS))
@SETTINGS
@given(data=st.data())
def test_property_2_3_3_3_apples_only_on_apple_cells_and_vanish_only_when_eaten(env_id, data):
    """§2.3, §3.3, §1.5 step 3: apples appear only on the game's apple cells (A in Harvest,
    B in Cleanup) and never under an agent; an apple disappears only where an agent now
    stands, and that agent is credited with eating it."""
    env = ENVS[env_id]
    s0, _, s1, _, info = step(data.draw(scenarios(env_id)))
    had, has = s0.grid == G.APPLE, s1.grid == G.APPLE
    apple_cells = cells_with(env, APPLE_CHAR[env_id])
    assert not np.any(has & ~apple_cells)
    occupied = np.zeros_like(has)
    occupied[s1.pos[:, 0], s1.pos[:, 1]] = True
    assert not np.any(has & ~had & occupied)
    assert np.array_equal(had & ~has, had & occupied)
    eaten = had[s1.pos[:, 0], s1.pos[:, 1]].astype(np.int32)
    np.testing.assert_array_equal(info["events"]["apples_eaten"], eaten)


@SETTINGS
@given(scenarios("cleanup"))
def test_property_3_3_waste_changes_only_by_clean_or_one_spawn(scenario):
    """§1.6, §3.3: outside waste cells the map changes only by apples; waste becomes river
    only under a CLEAN beam, with one cleaned cell per waste_cleaned event; at most one cell
    turns into waste per step (possibly a cell cleaned in the same step)."""
    env = ENVS["cleanup"]
    s0, _, s1, _, info = step(scenario)
    waste_cells = cells_with(env, "HR")
    apple_cells = cells_with(env, "B")
    fixed_cells = ~waste_cells & ~apple_cells
    np.testing.assert_array_equal(s1.grid[fixed_cells], s0.grid[fixed_cells])
    assert set(np.unique(s1.grid[waste_cells]).tolist()) <= {G.WASTE, G.RIVER}
    cleaned = (s0.grid == G.WASTE) & (s1.grid == G.RIVER)
    dirtied = (s0.grid == G.RIVER) & (s1.grid == G.WASTE)
    assert np.all(s1.beam[cleaned] == G.CLEAN_OVERLAY)
    credited = int(info["events"]["waste_cleaned"].sum())
    respawned = credited - int(cleaned.sum())  # cleaned this step, waste again by the spawn
    assert respawned in (0, 1)
    assert int(dirtied.sum()) + respawned <= 1


@SETTINGS
@given(scenarios("harvest"))
def test_property_2_3_harvest_map_changes_only_on_apple_cells(scenario):
    """§2.3: in Harvest only apple cells ever change (walls and floor stay as they are)."""
    env = ENVS["harvest"]
    s0, _, s1, _, _ = step(scenario)
    other = ~cells_with(env, "A")
    np.testing.assert_array_equal(s1.grid[other], s0.grid[other])


@pytest.mark.parametrize("env_id", sorted(ENVS))
@SETTINGS
@given(data=st.data())
def test_property_1_8_rewards_in_allowed_set(env_id, data):
    """§1.8: reward = k − 1·fire − 50·hits with k ∈ {0, 1} apples eaten, fire = the agent
    issued FIRE, hits the FIRE hits it received; hits given come only from firers (at most
    three each, one per ray) and balance the hits received; the three parallel rays of one
    FIRE cannot hit the same agent twice."""
    _, actions, _, reward, info = step(data.draw(scenarios(env_id)))
    ev = info["events"]
    fires = (actions == FIRE).astype(np.int32)
    np.testing.assert_array_equal(ev["fires"], fires)
    assert set(ev["apples_eaten"].tolist()) <= {0, 1}
    np.testing.assert_array_equal(
        reward, ev["apples_eaten"] - fires - 50.0 * ev["hits_received"])
    assert np.all(ev["hits_given"] <= 3 * fires)
    assert ev["hits_given"].sum() == ev["hits_received"].sum()
    assert np.all(ev["hits_received"] <= fires.sum())


@pytest.mark.parametrize("env_id", sorted(ENVS))
@SETTINGS
@given(data=st.data())
def test_property_0_6_same_key_same_result(env_id, data):
    """§0.6: the same key, state and actions give the same step."""
    scenario = data.draw(scenarios(env_id))
    first, second = step(scenario)[2:], step(scenario)[2:]
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True):
        np.testing.assert_array_equal(a, b)
