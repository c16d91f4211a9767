"""Rules of the shared gridworld engine (specs §1.2–§1.9), one test per rule.

Most tests run Cleanup (which has both beams) on ARENA, a 13×15 map without border walls, so
that moves and beams can reach the map edge; its only wall is at (2, 12) and its waste cells
are rows 9–11. The base state is fully polluted, so the Cleanup dynamics spawn nothing and a
full step is deterministic. Five agents; agents a test does not place stand parked on row 12.

Every call of ``resolve`` runs the same jitted function vmapped over 64 keys: outcomes that
the rules fix must come out identical under every key (checked by :func:`fixed`), random
ones (contests, beam order) must show each possible outcome.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import prosocial
from prosocial.envs import grid as G
from prosocial.envs.cleanup import CLEANUP_MAP

ARENA = (
    "PPPPP          ",
    "               ",
    "            @  ",
    "               ",
    "               ",
    "               ",
    "               ",
    "               ",
    "               ",
    "HHHHHHHHHHHHHHH",
    "HHHHHHHHHHHHHHH",
    "HHHHHHHHHHHHHHH",
    "SSSBBB         ",
)
N = 5
UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
MOVE_LEFT, MOVE_RIGHT, MOVE_UP, MOVE_DOWN, STAY, TURN_CW, TURN_CCW, FIRE, CLEAN = range(9)
PARK = ((12, 6), (12, 8), (12, 10), (12, 12), (12, 14))

# Unit vectors of §0.3 and §1.3, written out: forward d and right-hand side r.
FORWARD = {UP: (-1, 0), RIGHT: (0, 1), DOWN: (1, 0), LEFT: (0, -1)}
RIGHT_SIDE = {UP: (0, 1), RIGHT: (1, 0), DOWN: (0, -1), LEFT: (-1, 0)}

# Colours of §1.2.
BLACK, WALL_RGB, APPLE_RGB = (0, 0, 0), (180, 180, 180), (0, 255, 0)
FIRE_RGB, CLEAN_RGB = (255, 255, 0), (100, 255, 255)
WASTE_RGB, RIVER_RGB = (99, 156, 194), (113, 75, 24)
AGENT_RGB = [(0, 0, 255), (2, 81, 154), (204, 0, 204), (216, 30, 54), (254, 151, 0),
             (100, 255, 255), (99, 99, 255), (250, 204, 255), (238, 223, 16)]
CELL_RGB = {G.EMPTY: BLACK, G.WALL: WALL_RGB, G.APPLE: APPLE_RGB, G.WASTE: WASTE_RGB,
            G.RIVER: RIVER_RGB, G.STREAM: RIVER_RGB}

ENV = prosocial.make("cleanup", num_agents=N, map=list(ARENA))
ENV_BY_ID = prosocial.make("cleanup", num_agents=N, map=list(ARENA), ref_beam_order_by_id=True)
ENV_ROT = prosocial.make("cleanup", num_agents=N, map=list(ARENA), ref_view_rotation=True)
ENV_INVIS = prosocial.make("cleanup", num_agents=N, map=list(ARENA), ref_beams_invisible=True)
ENV_PAD = prosocial.make("cleanup", num_agents=N, map=list(ARENA), ref_prev_action_pad=True)

KEYS = jax.random.split(jax.random.key(2024), 64)
_RESOLVE = jax.jit(jax.vmap(ENV.resolve, in_axes=(0, None, None)))
_RESOLVE_BY_ID = jax.jit(jax.vmap(ENV_BY_ID.resolve, in_axes=(0, None, None)))
_STEP = jax.jit(ENV.step_state)
OBSERVE = {name: jax.jit(env.observe) for name, env in
           [("default", ENV), ("rot", ENV_ROT), ("invis", ENV_INVIS), ("pad", ENV_PAD)]}


def state(agents=(), cells=None, t=0, last_actions=None):
    """ARENA state: ``agents`` lists (row, col, orientation) of the first agents, the others
    stand parked facing UP; ``cells`` maps (row, col) to a §1.2 char."""
    rows = [list(line) for line in ARENA]
    for (r, c), ch in (cells or {}).items():
        rows[r][c] = ch
    agents = list(agents) + [(r, c, UP) for r, c in PARK[len(agents):]]
    return ENV.state_from_grid(["".join(r) for r in rows], np.array([a[:2] for a in agents]),
                               np.array([a[2] for a in agents]), t=t, last_actions=last_actions)


def acts(*first):
    """Joint action: the given actions of the first agents, STAY for the rest."""
    return jnp.array(list(first) + [STAY] * (N - len(first)), jnp.int32)


def resolve(s, a, by_id=False) -> dict:
    """Pre-dynamics outcome of one step under each of the 64 keys (leading axis)."""
    return jax.device_get((_RESOLVE_BY_ID if by_id else _RESOLVE)(KEYS, s, a))


def fixed(out: dict) -> dict:
    """The outcome, after checking that no key changes any part of it."""
    def one(x):
        assert np.all(x == x[:1]), "outcome depends on the key"
        return x[0]
    return jax.tree.map(one, out)


def beam_set(out, kind=G.FIRE_OVERLAY) -> set:
    return {tuple(rc) for rc in np.argwhere(out["beam"] == kind).tolist()}


def rgb(x) -> tuple:
    return tuple(int(v) for v in x)


# ------------------------------------------------------------------ §1.3 orientation, moves

EGOCENTRIC = {  # (orientation, move) -> displacement, from pos ± r and pos ± d of §1.3
    (UP, MOVE_LEFT): (0, -1), (UP, MOVE_RIGHT): (0, 1), (UP, MOVE_UP): (-1, 0),
    (UP, MOVE_DOWN): (1, 0),
    (RIGHT, MOVE_LEFT): (-1, 0), (RIGHT, MOVE_RIGHT): (1, 0), (RIGHT, MOVE_UP): (0, 1),
    (RIGHT, MOVE_DOWN): (0, -1),
    (DOWN, MOVE_LEFT): (0, 1), (DOWN, MOVE_RIGHT): (0, -1), (DOWN, MOVE_UP): (1, 0),
    (DOWN, MOVE_DOWN): (-1, 0),
    (LEFT, MOVE_LEFT): (1, 0), (LEFT, MOVE_RIGHT): (-1, 0), (LEFT, MOVE_UP): (0, -1),
    (LEFT, MOVE_DOWN): (0, 1),
}


@pytest.mark.parametrize("move", [MOVE_LEFT, MOVE_RIGHT, MOVE_UP, MOVE_DOWN])
def test_rule_1_3_moves_are_egocentric(move):
    """§1.3: MOVE_LEFT/RIGHT request pos ∓/± r, MOVE_UP/DOWN pos ± d; orientation is kept."""
    starts = [(2, 2), (2, 6), (6, 2), (6, 6)]
    s = state([(r, c, o) for (r, c), o in zip(starts, (UP, RIGHT, DOWN, LEFT), strict=True)])
    out = fixed(resolve(s, acts(move, move, move, move)))
    for i, ((r, c), o) in enumerate(zip(starts, (UP, RIGHT, DOWN, LEFT), strict=True)):
        dr, dc = EGOCENTRIC[(o, move)]
        assert tuple(out["pos"][i]) == (r + dr, c + dc)
        assert out["orient"][i] == o


def test_rule_1_3_ssd_test_agent_actions_example():
    """§1.3 (SSD tests/test_envs.py::test_agent_actions): an agent facing LEFT at (2, 2)
    goes to (3, 2) with MOVE_LEFT and to (2, 1) with MOVE_UP."""
    s = state([(2, 2, LEFT)])
    assert tuple(fixed(resolve(s, acts(MOVE_LEFT)))["pos"][0]) == (3, 2)
    assert tuple(fixed(resolve(s, acts(MOVE_UP)))["pos"][0]) == (2, 1)


def test_rule_1_3_turns_change_orientation_only():
    """§1.3: TURN_CLOCKWISE UP→RIGHT→DOWN→LEFT→UP, TURN_COUNTERCLOCKWISE the reverse; the
    position does not change."""
    starts = [(2, 2, UP), (2, 6, RIGHT), (6, 2, DOWN), (6, 6, LEFT)]
    s = state(starts)
    cw = fixed(resolve(s, acts(TURN_CW, TURN_CW, TURN_CW, TURN_CW)))
    ccw = fixed(resolve(s, acts(TURN_CCW, TURN_CCW, TURN_CCW, TURN_CCW)))
    np.testing.assert_array_equal(cw["orient"][:4], [RIGHT, DOWN, LEFT, UP])
    np.testing.assert_array_equal(ccw["orient"][:4], [LEFT, UP, RIGHT, DOWN])
    for out in (cw, ccw):
        np.testing.assert_array_equal(out["pos"][:4], [a[:2] for a in starts])


# ------------------------------------------------------------------ §1.4 walkability, conflicts

def test_rule_1_4_moves_onto_walls_or_off_the_map_stay_in_place():
    """§1.4: a move whose target is a wall or outside the map leaves the agent in place,
    with no penalty."""
    s = state([(3, 12, UP), (0, 9, UP), (5, 0, UP), (12, 0, DOWN)])
    out = fixed(resolve(s, acts(MOVE_UP, MOVE_UP, MOVE_LEFT, MOVE_UP)))
    np.testing.assert_array_equal(out["pos"][:4], [(3, 12), (0, 9), (5, 0), (12, 0)])
    np.testing.assert_array_equal(out["reward"], 0.0)


def test_rule_1_4_agents_walk_on_apples_waste_river_and_stream():
    """§1.4: apples, empty floor, waste, river and stream cells are walkable."""
    s = state([(4, 3, RIGHT), (8, 1, DOWN), (11, 7, UP), (11, 1, DOWN), (3, 3, DOWN)],
              cells={(4, 4): "A", (10, 7): "R"})
    out = fixed(resolve(s, acts(MOVE_UP, MOVE_UP, MOVE_UP, MOVE_UP, MOVE_RIGHT)))
    # apple, waste, river, stream, empty floor
    np.testing.assert_array_equal(out["pos"], [(4, 4), (9, 1), (10, 7), (12, 1), (3, 2)])


def test_rule_1_4_contest_random_priority_both_outcomes():
    """§1.4 steps 2–3: of two agents requesting one cell, one (uniformly random) moves and
    the other stays; over keys each wins sometimes. Three contenders: each wins sometimes."""
    s = state([(4, 3, RIGHT), (4, 5, LEFT), (3, 4, DOWN)])
    out = resolve(s, acts(MOVE_UP, MOVE_UP))
    winner_a = np.all(out["pos"][:, 0] == (4, 4), axis=1)
    winner_b = np.all(out["pos"][:, 1] == (4, 4), axis=1)
    assert np.all(winner_a ^ winner_b)
    assert np.all(np.all(out["pos"][:, 0] == (4, 3), axis=1) == winner_b)
    assert np.all(np.all(out["pos"][:, 1] == (4, 5), axis=1) == winner_a)
    assert winner_a.any() and winner_b.any()

    out = resolve(s, acts(MOVE_UP, MOVE_UP, MOVE_UP))
    winners = np.all(out["pos"][:, :3] == (4, 4), axis=2)
    np.testing.assert_array_equal(winners.sum(1), 1)
    assert winners.any(0).all()


def test_rule_1_4_move_into_staying_agent_is_cancelled():
    """§1.4 step 4: a move into the cell of a staying agent (STAY, turning, firing or
    blocked by a wall) is cancelled."""
    s = state([(4, 3, RIGHT), (4, 4, UP), (6, 3, RIGHT), (6, 4, UP)])
    for stay in (STAY, TURN_CW, FIRE, CLEAN):
        out = fixed(resolve(s, acts(MOVE_UP, stay, MOVE_UP, MOVE_UP)))
        np.testing.assert_array_equal(out["pos"][:2], [(4, 3), (4, 4)])
    # Agent 3 at (6, 4) facing UP moves to (5, 4), so agent 2 follows it.
    np.testing.assert_array_equal(out["pos"][2:4], [(6, 4), (5, 4)])
    s = state([(2, 10, RIGHT), (2, 11, RIGHT)])  # (2, 12) is a wall
    out = fixed(resolve(s, acts(MOVE_UP, MOVE_UP)))
    np.testing.assert_array_equal(out["pos"][:2], [(2, 10), (2, 11)])


def test_rule_1_4_head_on_swap_is_cancelled():
    """§1.4 step 4: two agents requesting each other's cells both stay."""
    s = state([(4, 3, RIGHT), (4, 4, LEFT), (6, 6, UP), (7, 6, UP)])
    out = fixed(resolve(s, acts(MOVE_UP, MOVE_UP, MOVE_DOWN, MOVE_UP)))
    np.testing.assert_array_equal(out["pos"][:4], [(4, 3), (4, 4), (6, 6), (7, 6)])


def test_rule_1_4_chain_moves_all_happen():
    """§1.4 step 5: a chain (each agent moves into the cell the next one leaves) moves."""
    s = state([(4, 2, RIGHT), (4, 3, RIGHT), (4, 4, RIGHT), (4, 5, RIGHT)])
    out = fixed(resolve(s, acts(MOVE_UP, MOVE_UP, MOVE_UP, MOVE_UP)))
    np.testing.assert_array_equal(out["pos"][:4], [(4, 3), (4, 4), (4, 5), (4, 6)])


@pytest.mark.parametrize("head", ["wall", "edge", "staying"])
def test_rule_1_4_blocked_chain_stays(head):
    """§1.4 step 4, repeated: when the head of a chain cannot move (wall, map edge, staying
    agent), every agent behind it stays."""
    if head == "wall":  # (2, 12) is a wall
        agents, moves = [(2, 9, RIGHT), (2, 10, RIGHT), (2, 11, RIGHT)], [MOVE_UP] * 3
    elif head == "edge":
        agents, moves = [(5, 12, RIGHT), (5, 13, RIGHT), (5, 14, RIGHT)], [MOVE_UP] * 3
    else:
        agents = [(4, 2, RIGHT), (4, 3, RIGHT), (4, 4, RIGHT), (4, 5, RIGHT)]
        moves = [MOVE_UP] * 3 + [STAY]
    out = fixed(resolve(state(agents), acts(*moves)))
    np.testing.assert_array_equal(out["pos"][:len(agents)], [a[:2] for a in agents])


def test_rule_1_4_chain_head_losing_contest_blocks_chain():
    """§1.4 steps 3–4: a chain whose head loses a contest stays entirely; when the head wins
    the whole chain moves. Both happen over keys."""
    # Chain (4, 2) → (4, 3) → (4, 4) → (4, 5); agent 3 at (3, 5) contests (4, 5) with agent 2.
    s = state([(4, 2, RIGHT), (4, 3, RIGHT), (4, 4, RIGHT), (3, 5, DOWN)])
    out = resolve(s, acts(MOVE_UP, MOVE_UP, MOVE_UP, MOVE_UP))
    pos = out["pos"][:, :4]
    chain_moved = np.all(pos == np.array([(4, 3), (4, 4), (4, 5), (3, 5)]), axis=(1, 2))
    rival_moved = np.all(pos == np.array([(4, 2), (4, 3), (4, 4), (4, 5)]), axis=(1, 2))
    assert np.all(chain_moved ^ rival_moved)
    assert chain_moved.any() and rival_moved.any()


def test_rule_1_4_four_cycle_all_move():
    """§1.4 step 5 (SSD issue #118): four agents rotating around a 2×2 block all move."""
    s = state([(4, 4, UP), (4, 5, UP), (5, 5, UP), (5, 4, UP)])
    out = fixed(resolve(s, acts(MOVE_RIGHT, MOVE_DOWN, MOVE_LEFT, MOVE_UP)))
    np.testing.assert_array_equal(out["pos"][:4], [(4, 5), (5, 5), (5, 4), (4, 4)])


def test_rule_1_4_four_cycle_with_a_contest_moves_or_stays_as_a_whole():
    """§1.4 steps 3–5: a fifth agent contesting a cell of the cycle. If the cycle member wins,
    the cycle moves and the rival stays; if the rival wins, the member stays, so every cycle
    move is blocked in turn and the rival is blocked too: nobody moves."""
    start = [(4, 4), (4, 5), (5, 5), (5, 4), (3, 5)]
    s = state([(r, c, UP) for r, c in start])
    out = resolve(s, acts(MOVE_RIGHT, MOVE_DOWN, MOVE_LEFT, MOVE_UP, MOVE_DOWN))
    cycle = np.all(out["pos"] == np.array([(4, 5), (5, 5), (5, 4), (4, 4), (3, 5)]), axis=(1, 2))
    still = np.all(out["pos"] == np.array(start), axis=(1, 2))
    assert np.all(cycle ^ still)
    assert cycle.any() and still.any()


def test_rule_1_4_three_cycle_all_move():
    """§1.4 step 5: a closed cycle of three agents all move. Grid moves only form even cycles
    (4-adjacency has no triangles), so this checks the rule on ``grid.resolve_moves`` with
    three pairwise-distant cells, under every priority order; a 2-cycle (swap) stays."""
    pos = jnp.array([(0, 0), (0, 2), (2, 0)], jnp.int32)
    walkable = jnp.ones((3, 3), bool)
    key = jax.random.key(0)
    for order in itertools.permutations(range(3)):
        priority = jnp.array(order, jnp.int32)
        new = G.resolve_moves(key, pos, pos[jnp.array([1, 2, 0])], walkable, priority)
        np.testing.assert_array_equal(new, pos[jnp.array([1, 2, 0])])
        new = G.resolve_moves(key, pos, pos[jnp.array([1, 0, 2])], walkable, priority)
        np.testing.assert_array_equal(new, pos)


# ------------------------------------------------------------------ §1.5 step order

def test_rule_1_5_eat_then_beams_on_new_positions():
    """§1.5 steps 2–4: moves first, then eating at the new cell, then beams traced against
    the new positions. Agent 0 steps onto an apple into agent 1's FIRE (+1 − 50); agent 2
    steps out of the beam and is not hit; the beam stops on agent 0's new cell."""
    s = state([(4, 3, RIGHT), (4, 7, LEFT), (5, 5, UP)], cells={(4, 4): "A"})
    out = fixed(resolve(s, acts(MOVE_UP, FIRE, MOVE_DOWN)))
    np.testing.assert_array_equal(out["pos"][:3], [(4, 4), (4, 7), (6, 5)])
    np.testing.assert_array_equal(out["reward"], [1 - 50, -1, 0, 0, 0])
    assert out["grid"][4, 4] == G.EMPTY
    assert out["beam_hits"][1, 0] == 1 and out["beam_hits"][1, 2] == 0
    covered = beam_set(out)
    assert {(4, 6), (4, 5), (4, 4), (5, 5), (5, 4), (5, 3)} <= covered
    assert (4, 3) not in covered


def test_rule_1_5_beam_overlay_is_cleared_each_step():
    """§1.5 step 1: the previous step's beam overlay is cleared before the next step."""
    s = state([(6, 6, UP)])
    s1 = _STEP(jax.random.key(1), s, acts(FIRE))[0]
    assert np.sum(np.asarray(s1.beam) > 0) == 15
    s2 = _STEP(jax.random.key(2), s1, acts(STAY))[0]
    assert np.sum(np.asarray(s2.beam)) == 0


# ------------------------------------------------------------------ §1.6 beams

@pytest.mark.parametrize("orientation", [UP, RIGHT, DOWN, LEFT])
def test_rule_1_6_three_rays_geometry_and_lengths(orientation):
    """§1.6: centre ray pos + k·d for k = 1…5; side rays pos ± r + k·d for k = 0…4 (they
    start beside the agent and reach 4 ahead). On open floor: 15 cells. FIRE costs the
    firer 1 even when it hits nobody."""
    s = state([(6, 6, orientation)])
    out = fixed(resolve(s, acts(FIRE)))
    (dr, dc), (rr, rc) = FORWARD[orientation], RIGHT_SIDE[orientation]
    expected = {(6 + k * dr, 6 + k * dc) for k in range(1, 6)}
    expected |= {(6 + side * rr + k * dr, 6 + side * rc + k * dc)
                 for side in (1, -1) for k in range(5)}
    assert beam_set(out) == expected and len(expected) == 15
    assert (6 + 5 * dr, 6 + 5 * dc) in expected and (6 + rr + 4 * dr, 6 + rc + 4 * dc) in expected
    np.testing.assert_array_equal(out["reward"], [-1, 0, 0, 0, 0])
    np.testing.assert_array_equal(out["events"]["fires"], [1, 0, 0, 0, 0])


def test_rule_1_6_rays_stop_before_walls_and_map_edge():
    """§1.6 rule 1: a ray stops without covering a wall or an off-map cell, and covers
    nothing beyond it."""
    out = fixed(resolve(state([(2, 9, RIGHT)]), acts(FIRE)))  # wall at (2, 12)
    assert beam_set(out) == ({(2, 10), (2, 11)} | {(3, c) for c in range(9, 14)}
                             | {(1, c) for c in range(9, 14)})
    out = fixed(resolve(state([(6, 13, RIGHT)]), acts(FIRE)))  # right edge is column 14
    assert beam_set(out) == {(6, 14), (7, 13), (7, 14), (5, 13), (5, 14)}
    out = fixed(resolve(state([(0, 7, UP)]), acts(FIRE)))  # top edge
    assert beam_set(out) == {(0, 6), (0, 8)}


def test_rule_1_6_ray_stops_on_first_agent_and_fines():
    """§1.6 rule 4 and the reward table: the ray covers and hits the first agent on it and
    stops; the agent behind is not hit. Firer −1, victim −50."""
    s = state([(6, 2, RIGHT), (6, 5, UP), (6, 6, UP)])
    out = fixed(resolve(s, acts(FIRE)))
    centre = {(6, c) for c in range(3, 8)} & beam_set(out)
    assert centre == {(6, 3), (6, 4), (6, 5)}
    np.testing.assert_array_equal(out["reward"], [-1, -50, 0, 0, 0])
    np.testing.assert_array_equal(out["beam_hits"][0], [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(out["events"]["hits_received"], [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(out["events"]["hits_given"], [1, 0, 0, 0, 0])


def test_rule_1_6_one_fire_hits_up_to_three_agents_including_beside():
    """§1.6: side rays start beside the firer, so agents right next to it are hit; one FIRE
    hits up to three agents (one per ray), −50 each."""
    s = state([(6, 6, UP), (6, 7, UP), (6, 5, UP), (1, 6, UP)])
    out = fixed(resolve(s, acts(FIRE)))
    np.testing.assert_array_equal(out["reward"], [-1, -50, -50, -50, 0])
    np.testing.assert_array_equal(out["events"]["hits_given"], [3, 0, 0, 0, 0])
    assert beam_set(out) == {(6, 7), (6, 5)} | {(6 - k, 6) for k in range(1, 6)}


def test_rule_1_6_two_fines_cost_one_hundred():
    """§1.6: −50 per hit, so an agent hit by two beams gets −100; both firers pay 1."""
    s = state([(6, 2, RIGHT), (6, 5, UP), (6, 8, LEFT)])
    out = fixed(resolve(s, acts(FIRE, STAY, FIRE)))
    np.testing.assert_array_equal(out["reward"], [-1, -100, -1, 0, 0])
    np.testing.assert_array_equal(out["events"]["hits_received"], [0, 2, 0, 0, 0])


def test_rule_1_6_fire_passes_over_apples_and_waste():
    """§1.6 rule 5: FIRE covers apples and waste without stopping or changing them."""
    s = state([(7, 4, DOWN)], cells={(8, 4): "A"})
    out = fixed(resolve(s, acts(FIRE)))
    assert {(8, 4), (9, 4), (10, 4), (11, 4), (12, 4)} <= beam_set(out)
    assert out["grid"][8, 4] == G.APPLE
    np.testing.assert_array_equal(out["grid"][9:12, 3:6], G.WASTE)


def test_rule_1_6_clean_stops_at_first_waste_and_makes_it_river():
    """§1.6 rules 3 and 5 (SSD issue #111): each CLEAN ray turns the first waste cell it meets
    into river and stops there; waste behind it stays. CLEAN costs nothing."""
    s = state([(7, 4, DOWN)], cells={(9, 5): "R"})
    out = fixed(resolve(s, acts(CLEAN)))
    # Centre column 4 and right ray (column 3) stop on row 9; the left ray (column 5) passes
    # the river at (9, 5) and cleans (10, 5).
    assert beam_set(out, G.CLEAN_OVERLAY) == (
        {(8, 4), (9, 4)} | {(r, 3) for r in range(7, 10)} | {(r, 5) for r in range(7, 11)})
    assert out["grid"][9, 4] == G.RIVER and out["grid"][9, 3] == G.RIVER
    assert out["grid"][10, 5] == G.RIVER
    assert out["grid"][10, 4] == G.WASTE and out["grid"][10, 3] == G.WASTE
    assert out["grid"][11, 5] == G.WASTE
    np.testing.assert_array_equal(out["events"]["waste_cleaned"], [3, 0, 0, 0, 0])
    np.testing.assert_array_equal(out["events"]["cleans"], [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(out["reward"], 0.0)


def test_rule_1_6_clean_stops_on_agents_without_effect():
    """§1.6 rule 4: a CLEAN ray stops on the first agent; the agent gets nothing."""
    s = state([(7, 4, DOWN), (8, 5, UP)])
    out = fixed(resolve(s, acts(CLEAN)))
    assert {(7, 5), (8, 5)} <= beam_set(out, G.CLEAN_OVERLAY)
    assert (9, 5) not in beam_set(out, G.CLEAN_OVERLAY)
    assert out["grid"][9, 5] == G.WASTE
    np.testing.assert_array_equal(out["reward"], 0.0)
    np.testing.assert_array_equal(out["events"]["hits_received"], 0)
    assert out["beam_hits"][0, 1] == 1


def test_rule_1_6_clean_converts_waste_under_an_agent_then_stops():
    """§1.6 rules 3–5 (golden README note 7): a CLEAN ray reaching an agent on waste cleans
    that cell, then stops on the agent; the waste behind stays. An agent on river stops the
    ray before it reaches the waste behind."""
    s = state([(7, 4, DOWN), (9, 4, UP), (7, 8, DOWN), (9, 8, UP)], cells={(9, 8): "R"})
    out = fixed(resolve(s, acts(CLEAN, STAY, CLEAN)))
    assert out["grid"][9, 4] == G.RIVER and out["grid"][10, 4] == G.WASTE
    assert out["grid"][10, 8] == G.WASTE
    assert (9, 4) in beam_set(out, G.CLEAN_OVERLAY)
    assert (10, 4) not in beam_set(out, G.CLEAN_OVERLAY)
    assert (10, 8) not in beam_set(out, G.CLEAN_OVERLAY)
    np.testing.assert_array_equal(out["events"]["waste_cleaned"], [3, 0, 2, 0, 0])


def _race(first_left: bool):
    """Two CLEANers facing DOWN whose side rays share column 5, where (9, 5) is the only
    waste within reach: whoever goes first cleans it (3 cells), the other 2."""
    left, right = (6, 4, DOWN), (6, 6, DOWN)
    return state([left, right] if first_left else [right, left], cells={(10, 5): "R"})


def test_rule_1_5_clean_race_random_order_gives_both_outcomes():
    """§1.5 step 4: beams are resolved one agent at a time in a uniformly random order, and
    a beam sees the waste earlier beams removed; over keys both agents win the race."""
    out = resolve(_race(True), acts(CLEAN, CLEAN))
    cleaned = out["events"]["waste_cleaned"][:, :2]
    first = np.all(cleaned == (3, 2), axis=1)
    second = np.all(cleaned == (2, 3), axis=1)
    assert np.all(first ^ second) and first.any() and second.any()
    np.testing.assert_array_equal(out["grid"][:, 9, 3:8], G.RIVER)
    np.testing.assert_array_equal(out["grid"][:, 10, 5], G.RIVER)


def test_rule_1_5_later_beams_see_exactly_what_earlier_beams_cleaned():
    """§1.5 step 4, §1.6: a beam traced after another sees the cells that one cleaned as
    river and every other waste cell as waste. Agent 0's centre ray cleans (9, 5) and stops
    before (10, 5); agent 1's centre ray (facing LEFT along row 10) stops on and cleans
    (10, 5), leaving (10, 4), whichever beam goes first."""
    s = state([(7, 5, DOWN), (10, 7, LEFT)], cells={(10, 6): "R", (10, 7): "R", (11, 5): "R"})
    for by_id in (False, True):
        out = fixed(resolve(s, acts(CLEAN, CLEAN), by_id=by_id))
        assert out["grid"][9, 5] == G.RIVER and out["grid"][10, 5] == G.RIVER
        assert out["grid"][10, 4] == G.WASTE and out["grid"][10, 3] == G.WASTE
        np.testing.assert_array_equal(out["events"]["waste_cleaned"], [3, 3, 0, 0, 0])


@pytest.mark.parametrize("first_left", [True, False])
def test_rule_1_5_ref_beam_order_by_id_gives_index_order(first_left):
    """§1.5 step 4, flag ``ref_beam_order_by_id`` (B-06): ascending index, so agent 0 wins
    the race under every key wherever it stands."""
    out = fixed(resolve(_race(first_left), acts(CLEAN, CLEAN), by_id=True))
    np.testing.assert_array_equal(out["events"]["waste_cleaned"][:2], [3, 2])


# ------------------------------------------------------------------ §1.7 observations

def _colour_map(s) -> np.ndarray:
    """Independent renderer of §1.2/§1.7: cells, then agents, then beams (if drawn)."""
    codes = np.asarray(s.grid)
    img = np.array([[CELL_RGB[int(v)] for v in row] for row in codes], np.uint8)
    for i, (r, c) in enumerate(np.asarray(s.pos)):
        img[r, c] = AGENT_RGB[i]
    return img


def _window(img: np.ndarray, r: int, c: int, turns: int) -> np.ndarray:
    """15×15 window centred on (r, c), black outside the map, rotated ``turns``×90° CCW."""
    padded = np.zeros((img.shape[0] + 14, img.shape[1] + 14, 3), np.uint8)
    padded[7:-7, 7:-7] = img
    return np.rot90(padded[r:r + 15, c:c + 15], turns)


# Quarter turns counter-clockwise that put the facing direction at the top (ours) and SSD's.
TURNS_OURS = {UP: 0, RIGHT: 1, DOWN: 2, LEFT: -1}
TURNS_REF = {UP: 0, RIGHT: -1, DOWN: 2, LEFT: 1}
# Pixel of the apple two cells north and of agent 1 three cells east of agent 0.
MARKERS_OURS = {UP: ((5, 7), (7, 10)), RIGHT: ((7, 5), (4, 7)), DOWN: ((9, 7), (7, 4)),
                LEFT: ((7, 9), (10, 7))}
MARKERS_REF = {UP: ((5, 7), (7, 10)), RIGHT: ((7, 9), (10, 7)), DOWN: ((9, 7), (7, 4)),
               LEFT: ((7, 5), (4, 7))}


@pytest.mark.parametrize("flag", ["default", "rot"])
@pytest.mark.parametrize("orientation", [UP, RIGHT, DOWN, LEFT])
def test_rule_1_7_view_rotation(orientation, flag):
    """§1.7: 15×15 views centred on the agent. Default: facing direction at the top (RIGHT
    rotated 90° CCW, DOWN 180°, LEFT 90° CW). ``ref_view_rotation`` (B-02): UP none, DOWN
    180°, LEFT 90° CCW, RIGHT 90° CW (facing direction at the bottom for LEFT and RIGHT)."""
    s = state([(6, 6, orientation), (6, 9, UP)], cells={(4, 6): "A"})
    view = np.asarray(OBSERVE[flag](s)["rgb"][0])
    assert view.shape == (15, 15, 3) and view.dtype == np.uint8
    turns = (TURNS_OURS if flag == "default" else TURNS_REF)[orientation]
    np.testing.assert_array_equal(view, _window(_colour_map(s), 6, 6, turns))
    apple, other = (MARKERS_OURS if flag == "default" else MARKERS_REF)[orientation]
    assert rgb(view[apple]) == APPLE_RGB
    assert rgb(view[other]) == AGENT_RGB[1]
    assert rgb(view[7, 7]) == AGENT_RGB[0]


def test_rule_1_7_own_colour_at_centre_and_outside_is_black():
    """§1.7: each agent sees itself in its own colour at pixel (7, 7); cells outside the map
    are black (an agent in the top-left corner facing UP sees 7 black rows and columns)."""
    s = state([(0, 0, UP), (2, 5, RIGHT), (6, 6, DOWN), (8, 12, LEFT), (12, 14, UP)])
    views = np.asarray(OBSERVE["default"](s)["rgb"])
    for i in range(N):
        assert rgb(views[i, 7, 7]) == AGENT_RGB[i]
    np.testing.assert_array_equal(views[0, :7], 0)
    np.testing.assert_array_equal(views[0, :, :7], 0)
    np.testing.assert_array_equal(views[4, 8:], 0)  # below the bottom row
    np.testing.assert_array_equal(views[4, :, 8:], 0)  # right of the last column
    # Agent 1 at (2, 5) facing RIGHT: the wall (2, 12) is 7 ahead, the view's top row.
    assert rgb(views[1, 0, 7]) == WALL_RGB and rgb(views[1, 1, 7]) == BLACK


def test_rule_1_7_beams_drawn_on_top_of_agents_and_invisible_with_flag():
    """§1.7: beam cells are drawn in the beam colour over the map and over agents (FIRE
    yellow, CLEAN cyan). ``ref_beams_invisible`` (B-03): beams are not drawn."""
    s = state([(6, 2, RIGHT), (6, 5, UP), (7, 10, DOWN)])
    s1 = _STEP(jax.random.key(3), s, acts(FIRE, STAY, CLEAN))[0]
    seen = np.asarray(OBSERVE["default"](s1)["rgb"])
    hidden = np.asarray(OBSERVE["invis"](s1)["rgb"])
    # Agent 0 looks right: (6, 3), (6, 4) beam, agent 1 at (6, 5) three cells ahead.
    assert rgb(seen[0, 6, 7]) == FIRE_RGB and rgb(seen[0, 4, 7]) == FIRE_RGB
    assert rgb(seen[1, 7, 7]) == FIRE_RGB
    assert rgb(hidden[0, 6, 7]) == BLACK and rgb(hidden[0, 4, 7]) == AGENT_RGB[1]
    assert rgb(hidden[1, 7, 7]) == AGENT_RGB[1]
    # Agent 2 looks down: (8, 10) one ahead, (9, 10) cleaned to river two ahead.
    assert rgb(seen[2, 6, 7]) == CLEAN_RGB and rgb(seen[2, 5, 7]) == CLEAN_RGB
    assert rgb(hidden[2, 6, 7]) == BLACK and rgb(hidden[2, 5, 7]) == RIVER_RGB
    assert rgb(hidden[2, 4, 7]) == WASTE_RGB


def test_rule_1_7_other_agents_orientation_not_shown():
    """§1.7 (SSD issue #22): another agent's orientation does not change what an agent sees."""
    views = [np.asarray(OBSERVE["default"](state([(6, 6, UP), (6, 8, o)]))["rgb"])
             for o in (UP, RIGHT, DOWN, LEFT)]
    for v in views[1:]:
        np.testing.assert_array_equal(v[0], views[0][0])
    assert rgb(views[0][0, 7, 9]) == AGENT_RGB[1]


def test_rule_1_7_visibility_square_and_prev_visible():
    """§1.7: ``visible[i]`` lists 1 iff the other agent is within |Δrow| ≤ 7 and |Δcol| ≤ 7,
    others in increasing index; ``prev_visible`` equals it at reset and holds the previous
    step's value after a step."""
    s = state([(0, 0, UP), (7, 7, UP), (8, 0, UP), (0, 8, UP), (12, 14, UP)])
    obs = OBSERVE["default"](s)
    expected = [[1, 0, 0, 0],  # agent 0 at (0, 0): (7, 7) yes; (8, 0), (0, 8), (12, 14) no
                [1, 1, 1, 1],  # agent 1 at (7, 7): Δ (7, 7), (1, 7), (7, 1), (5, 7)
                [0, 1, 0, 0],  # agent 2 at (8, 0): Δ (8, 0), (1, 7), (8, 8), (4, 14)
                [0, 1, 0, 0],  # agent 3 at (0, 8): Δ (0, 8), (7, 1), (8, 8), (12, 6)
                [0, 1, 0, 0]]  # agent 4 at (12, 14): Δ (12, 14), (5, 7), (4, 14), (12, 6)
    np.testing.assert_array_equal(obs["visible"], expected)
    np.testing.assert_array_equal(obs["prev_visible"], expected)
    # Agent 1 steps down to (8, 7): now Δ = 8 rows from agent 0.
    s1 = _STEP(jax.random.key(4), s, acts(STAY, MOVE_DOWN))[0]
    obs1 = OBSERVE["default"](s1)
    assert obs1["visible"][0, 0] == 0 and obs1["visible"][1, 0] == 0
    np.testing.assert_array_equal(obs1["prev_visible"], expected)


def test_rule_1_7_previous_actions_stay_at_reset_then_last_joint_action():
    """§1.7: ``own_prev_action`` and ``others_actions`` (others in increasing index) are STAY
    at reset and the last joint action afterwards."""
    s = state([(2, 2, UP), (2, 6, UP), (6, 2, UP), (6, 6, UP)])
    obs = OBSERVE["default"](s)
    np.testing.assert_array_equal(obs["own_prev_action"], [STAY] * N)
    np.testing.assert_array_equal(obs["others_actions"], np.full((N, N - 1), STAY))
    a = jnp.array([MOVE_LEFT, TURN_CW, FIRE, CLEAN, MOVE_DOWN], jnp.int32)
    obs1 = OBSERVE["default"](_STEP(jax.random.key(5), s, a)[0])
    np.testing.assert_array_equal(obs1["own_prev_action"], a)
    np.testing.assert_array_equal(obs1["others_actions"][2], [MOVE_LEFT, TURN_CW, CLEAN,
                                                              MOVE_DOWN])
    np.testing.assert_array_equal(obs1["others_actions"][0], a[1:])


def test_rule_1_7_ref_prev_action_pad():
    """§1.7, flag ``ref_prev_action_pad`` (B-05): own previous action 0 (MOVE_LEFT) at reset
    while the others' are STAY; after a step the real action."""
    obs = OBSERVE["pad"](state([(2, 2, UP)]))
    np.testing.assert_array_equal(obs["own_prev_action"], [MOVE_LEFT] * N)
    np.testing.assert_array_equal(obs["others_actions"], np.full((N, N - 1), STAY))
    later = state([(2, 2, UP)], t=1, last_actions=jnp.full(N, TURN_CW, jnp.int32))
    np.testing.assert_array_equal(OBSERVE["pad"](later)["own_prev_action"], [TURN_CW] * N)


def test_rule_1_2_extended_palette_beyond_nine_agents():
    """§1.2 (B-10): the first nine agents have the reference colours; more agents get further
    distinct colours, different from every cell and beam colour."""
    env = prosocial.make("harvest", num_agents=12)
    obs, _ = jax.jit(env.reset)(jax.random.key(0))
    centre = [rgb(c) for c in np.asarray(obs["rgb"][:, 7, 7])]
    assert centre[:9] == AGENT_RGB
    assert len(set(centre)) == 12
    cell_colours = set(CELL_RGB.values()) | {FIRE_RGB, CLEAN_RGB}
    assert not set(centre[9:]) & cell_colours


# ------------------------------------------------------------------ §1.9 reset

def test_rule_1_9_reset_distinct_spawns_and_random_orientations():
    """§1.9: agents on distinct spawn cells ('P') drawn without replacement, orientations
    uniform in {0…3}; over keys every spawn cell and every orientation occurs."""
    env = prosocial.make("cleanup", num_agents=5)
    states = jax.jit(jax.vmap(env.reset_state))(jax.random.split(jax.random.key(9), 256))
    pos, orient = np.asarray(states.pos), np.asarray(states.orient)
    spawns = {(r, c) for r, line in enumerate(CLEANUP_MAP) for c, ch in enumerate(line)
              if ch == "P"}
    assert len(spawns) == 10
    for p in pos:
        cells = {tuple(x) for x in p.tolist()}
        assert len(cells) == 5 and cells <= spawns
    assert {tuple(x) for x in pos.reshape(-1, 2).tolist()} == spawns
    assert {tuple(x) for x in pos[:, 0].tolist()} == spawns
    assert orient.min() >= 0 and orient.max() <= 3
    for i in range(5):
        assert set(orient[:, i].tolist()) == {0, 1, 2, 3}
