"""Bad input to Harvest and Cleanup raises a ValueError that says what is wrong (design.md:
"Clear ValueErrors for bad input"): construction, custom maps, hand-built states, the
registry, the joint action and states of another environment. Checks run before any array
work, so nothing here compiles a step; one eager Cleanup step shows that CLEAN is valid."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import prosocial
from prosocial.envs.cleanup import CLEANUP_MAP
from prosocial.envs.harvest import HARVEST_MAP

HARVEST = prosocial.make("harvest", num_agents=2)
CLEANUP = prosocial.make("cleanup", num_agents=2)
GOOD_POS = np.array([(1, 2), (1, 6)])  # two Harvest spawn cells
GOOD_ORIENT = np.array([0, 1])


# ------------------------------------------------------------------ construction

@pytest.mark.parametrize(("env_id", "n", "spawns"), [("harvest", 21, 20), ("cleanup", 11, 10)])
def test_too_many_agents_for_spawn_points(env_id, n, spawns):
    with pytest.raises(ValueError, match=f"num_agents={n} exceeds the map's {spawns} spawn"):
        prosocial.make(env_id, num_agents=n)


@pytest.mark.parametrize("env_id", ["harvest", "cleanup"])
@pytest.mark.parametrize("n", [0, -1, 2.5, "3"])
def test_num_agents_must_be_a_positive_integer(env_id, n):
    with pytest.raises(ValueError, match="num_agents must be a positive integer"):
        prosocial.make(env_id, num_agents=n)


@pytest.mark.parametrize("env_id", ["harvest", "cleanup"])
def test_max_steps_must_be_a_positive_integer(env_id):
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        prosocial.make(env_id, max_steps=0)


@pytest.mark.parametrize("probs", [(0, 0.005, 0.02, 1.5), (-0.1, 0.005, 0.02, 0.05),
                                   (0, float("nan"), 0.02, 0.05), (0, 0.005, 0.02)])
def test_harvest_regrowth_probabilities_outside_unit_interval(probs):
    with pytest.raises(ValueError, match=r"regrowth_probs must be 4 probabilities in \[0, 1\]"):
        prosocial.make("harvest", regrowth_probs=probs)


@pytest.mark.parametrize(("name", "value"), [
    ("waste_spawn_prob", 1.5), ("waste_spawn_prob", float("nan")),
    ("apple_respawn_prob", -0.1), ("depletion_threshold", 2.0),
    ("restoration_threshold", -0.5)])
def test_cleanup_probabilities_outside_unit_interval(name, value):
    with pytest.raises(ValueError, match=rf"{name} must lie in \[0, 1\]"):
        prosocial.make("cleanup", **{name: value})


def test_cleanup_restoration_threshold_below_depletion():
    with pytest.raises(ValueError, match="restoration_threshold must be below"):
        prosocial.make("cleanup", restoration_threshold=0.5, depletion_threshold=0.4)


# ------------------------------------------------------------------ custom maps (map=)

@pytest.mark.parametrize(("rows", "message"), [
    (["@@@@", "@P@", "@@@@"], r"rectangular; row lengths are \[3, 4\]"),
    (["@@@@", "@PX@", "@@@@"], r"unknown map characters \['X'\]"),
    (["@@@@", "@P1@", "@@@@"], r"unknown map characters \['1'\]"),
    ([], "a map must be a non-empty list of strings"),
    ([""], "rectangular"),
    (["@P@", 3], "a map must be a non-empty list of strings"),
    ("@P@P@", "map must be a list of row strings, not one string"),
])
@pytest.mark.parametrize("env_id", ["harvest", "cleanup"])
def test_malformed_custom_map(env_id, rows, message):
    with pytest.raises(ValueError, match=message):
        prosocial.make(env_id, num_agents=1, map=rows)


def test_custom_map_without_spawn_cells():
    with pytest.raises(ValueError, match="exceeds the map's 0 spawn points"):
        prosocial.make("harvest", num_agents=1, map=["@@@", "@A@", "@@@"])


def test_cleanup_custom_map_without_waste_cells():
    with pytest.raises(ValueError, match=r"no waste cells \('H' or 'R'\)"):
        prosocial.make("cleanup", num_agents=1, map=["@@@@", "@PB@", "@@@@"])


# ------------------------------------------------------------------ state_from_grid

def _harvest_rows():
    return [list(line) for line in HARVEST_MAP]


def _text(rows):
    return ["".join(r) for r in rows]


def test_state_from_grid_accepts_the_map_itself():
    """The baseline of this group: a valid state builds."""
    s = HARVEST.state_from_grid(list(HARVEST_MAP), GOOD_POS, GOOD_ORIENT)
    np.testing.assert_array_equal(s.pos, GOOD_POS)


@pytest.mark.parametrize(("grid", "message"), [
    (list(HARVEST_MAP[:-1]), r"grid has shape \(15, 38\), the environment's map \(16, 38\)"),
    ([line[:-1] for line in HARVEST_MAP], r"grid has shape \(16, 37\)"),
    ([HARVEST_MAP[0]] + [line[:-1] for line in HARVEST_MAP[1:]], "rectangular"),
    (list(HARVEST_MAP[:-1]) + [HARVEST_MAP[-1].replace("@", "Q", 1)], "unknown map characters"),
    ([], "non-empty"),
    ("".join(HARVEST_MAP), "grid must be a list of row strings"),
])
def test_state_from_grid_malformed_grid(grid, message):
    with pytest.raises(ValueError, match=message):
        HARVEST.state_from_grid(grid, GOOD_POS, GOOD_ORIENT)


@pytest.mark.parametrize("cell", [(5, 5), (0, 10)])
def test_state_from_grid_walls_differ(cell):
    rows = _harvest_rows()
    rows[cell[0]][cell[1]] = "@" if rows[cell[0]][cell[1]] != "@" else " "
    with pytest.raises(ValueError, match="grid walls differ from the environment's map"):
        HARVEST.state_from_grid(_text(rows), GOOD_POS, GOOD_ORIENT)


def test_state_from_grid_waste_outside_waste_cells():
    rows = [list(line) for line in CLEANUP_MAP]
    rows[4][8] = "H"  # a spawn cell, not a waste cell
    with pytest.raises(ValueError, match=r"waste \('H'\) and river \('R'\) may only lie"):
        CLEANUP.state_from_grid(_text(rows), np.array([(4, 9), (5, 10)]), GOOD_ORIENT)


@pytest.mark.parametrize(("pos", "orient", "message"), [
    ([(0, 0), (1, 6)], [0, 1], "an agent stands on a wall"),
    ([(1, 2), (15, 6)], [0, 1], "an agent stands on a wall"),
    ([(-1, 2), (1, 6)], [0, 1], r"agent positions must lie inside the 16×38 map"),
    ([(1, 2), (1, 38)], [0, 1], "must lie inside"),
    ([(16, 2), (1, 6)], [0, 1], "must lie inside"),
    ([(1, 2), (1, 2)], [0, 1], "two agents share a cell"),
    ([(1, 2), (1, 6)], [0, 4], r"orientations must be 0 \(UP\), 1 \(RIGHT\)"),
    ([(1, 2), (1, 6)], [-1, 0], "orientations must be 0"),
    ([(1, 2), (1, 6), (1, 7)], [0, 1, 2], r"positions must have shape \(2, 2\)"),
    ([(1, 2), (1, 6)], [0], r"orientations \(2,\)"),
    ([(1.0, 2.0), (1.0, 6.0)], [0, 1], "positions and orientations must be integers"),
    ([(1, 2), (1, 6)], [0.0, 1.0], "must be integers"),
])
def test_state_from_grid_bad_agents(pos, orient, message):
    with pytest.raises(ValueError, match=message):
        HARVEST.state_from_grid(list(HARVEST_MAP), np.array(pos), np.array(orient))


# ------------------------------------------------------------------ registry

def test_make_unknown_kwarg():
    with pytest.raises(ValueError, match=r"harvest: unknown arguments \['num_agent'\]; "
                                         r"accepted: \[.*'num_agents'"):
        prosocial.make("harvest", num_agent=3)


def test_make_kwarg_of_the_other_game():
    with pytest.raises(ValueError, match=r"unknown arguments \['waste_spawn_prob'\]"):
        prosocial.make("harvest", waste_spawn_prob=0.5)
    with pytest.raises(ValueError, match=r"unknown arguments \['regrowth_probs'\]"):
        prosocial.make("cleanup", regrowth_probs=(0, 0.005, 0.02, 0.05))


def test_make_unknown_env_id_lists_known_ids():
    known = ", ".join(prosocial.list_envs())
    assert "cleanup" in known and "harvest" in known
    with pytest.raises(ValueError, match=rf"unknown env id 'harvset'; known ids: {known}"):
        prosocial.make("harvset")


# ------------------------------------------------------------------ actions

@pytest.mark.parametrize(("actions", "message"), [
    (jnp.zeros(3, jnp.int32), r"actions must have shape \(2,\) \(one action per agent\), "
                              r"got \(3,\)"),
    (jnp.zeros((2, 1), jnp.int32), r"got \(2, 1\)"),
    (jnp.zeros((), jnp.int32), r"got \(\)"),
    ([4, 4], "got None"),
    (jnp.zeros(2, jnp.float32), "actions must be integers, got dtype float32"),
    (jnp.zeros(2, bool), "actions must be integers, got dtype bool"),
])
@pytest.mark.parametrize("env", [HARVEST, CLEANUP], ids=["harvest", "cleanup"])
def test_step_wrong_action_shape_or_dtype(env, actions, message):
    """The joint action is checked when ``step`` is called or traced (here eagerly: the
    check runs before any array work)."""
    state = env.state_from_grid(list(env.map_lines), env.spawn_points[:2], GOOD_ORIENT)
    with pytest.raises(ValueError, match=message):
        env.step(jax.random.key(0), state, actions)


@pytest.mark.parametrize(("env", "bad", "valid"), [
    (HARVEST, -1, 7), (HARVEST, 8, 7), (HARVEST, 99, 7),  # Harvest: ids 0–7 (§1.3)
    (CLEANUP, -1, 8), (CLEANUP, 9, 8), (CLEANUP, 99, 8),  # Cleanup: ids 0–8, CLEAN = 8
], ids=lambda x: getattr(x, "env_id", str(x)))
def test_step_out_of_range_action(env, bad, valid):
    """Concrete (eager) actions outside 0 … n − 1 raise, naming the agent and the range."""
    state = env.state_from_grid(list(env.map_lines), env.spawn_points[:2], GOOD_ORIENT)
    with pytest.raises(ValueError, match=rf"{env.env_id}: actions must lie in \[0, {valid}\] "
                                         rf"\({valid + 1} actions\); agent 1 \(agents\) got "
                                         rf"{bad}, valid 0 … {valid}"):
        env.step(jax.random.key(0), state, jnp.array([0, bad], jnp.int32))


def test_cleanup_accepts_clean_harvest_does_not():
    """Action 8 (CLEAN) exists in Cleanup only."""
    state = CLEANUP.state_from_grid(list(CLEANUP.map_lines), CLEANUP.spawn_points[:2],
                                    GOOD_ORIENT)
    out = CLEANUP.step_state(jax.random.key(0), state, jnp.array([8, 8], jnp.int32))
    assert out[0].last_actions.tolist() == [8, 8]
    with pytest.raises(ValueError, match=r"\[0, 7\]"):
        HARVEST.step_state(jax.random.key(0), HARVEST.reset_state(jax.random.key(0)),
                           jnp.array([8, 8], jnp.int32))


# ------------------------------------------------------------------ states of another env

def test_step_rejects_a_state_of_another_game():
    state = CLEANUP.reset_state(jax.random.key(0))
    with pytest.raises(ValueError, match=r"harvest: state\.grid has shape \(25, 18\) and dtype "
                                         r"int8, this environment's \(16, 38\)"):
        HARVEST.step(jax.random.key(0), state, jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match=r"cleanup: state\.grid"):
        CLEANUP.observe(HARVEST.reset_state(jax.random.key(0)))


def test_step_rejects_a_state_with_another_number_of_agents():
    five = prosocial.make("harvest", num_agents=5)
    three = prosocial.make("harvest", num_agents=3).reset_state(jax.random.key(0))
    with pytest.raises(ValueError, match=r"harvest: state\.pos has shape \(3, 2\) .* "
                                         r"\(5, 2\).*num_agents=5"):
        jax.jit(five.step).trace(jax.random.key(0), three, jnp.zeros(5, jnp.int32))


# ------------------------------------------------------ state_from_grid: t, last_actions

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"t": -1}, r"t must be an integer in \[0, 999\] \(max_steps=1000\), got -1"),
    ({"t": 1000}, r"t must be an integer in \[0, 999\]"),
    ({"t": 2.0}, "t must be an integer"),
    ({"t": True}, "t must be an integer"),
    ({"last_actions": [0, 8]}, r"last_actions must lie in \[0, 7\], got \[0, 8\]"),
    ({"last_actions": [-1, 0]}, r"last_actions must lie in \[0, 7\]"),
    ({"last_actions": [0, 0, 0]}, r"last_actions must be 2 integers \(one per agent\)"),
    ({"last_actions": [0.0, 1.0]}, "last_actions must be 2 integers"),
])
def test_state_from_grid_bad_time_or_last_actions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HARVEST.state_from_grid(list(HARVEST_MAP), GOOD_POS, GOOD_ORIENT, **kwargs)


def test_state_from_grid_wrong_number_of_agents_names_num_agents():
    with pytest.raises(ValueError, match=r"positions must have shape \(2, 2\) and orientations "
                                         r"\(2,\) \(num_agents=2\); got \(1, 2\) and \(1,\)"):
        HARVEST.state_from_grid(list(HARVEST_MAP), GOOD_POS[:1], GOOD_ORIENT[:1])
