"""Rules of Forage Survival (specs §5), one test per rule, on hand-built states.

The defaults are [COLLINS] Table 1: a 4 × 4 grid, E = H = 8, D = 2, B = 4 (ours), r_b = 0.1.
The two-agent environment here punishes death with −1 so that the death reward shows. Most
states are chosen so that the step's randomness (move priority, throw order, where a
collected berry is replaced) cannot change what is checked; where it can, the test runs
several keys. Every two-agent test shares one jitted step, the three-agent ones another.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prosocial
from prosocial.envs.forage import DOWN, LEFT, RIGHT, STAY, THROW, UP, Forage

E, H, D, B, RB = 8, 8, 2, 4, 0.1
ENV = prosocial.make("forage", death_punishment=-1.0)
ENV3 = prosocial.make("forage", num_agents=3)
STEP = jax.jit(ENV.step_state)
STEP3 = jax.jit(ENV3.step_state)
FAR = ((3, 2), (3, 3))  # berry cells out of the way of the agents below


def state(env, pos, energy=None, health=None, berries=None, berry_cells=FAR, t=0):
    return env.make_state(np.array(pos), None if energy is None else np.array(energy),
                          None if health is None else np.array(health),
                          None if berries is None else np.array(berries),
                          np.array(berry_cells), t)


def step(s, actions, key=0, env=ENV):
    fn = STEP if env is ENV else STEP3
    s2, reward, term, trunc, info = fn(jax.random.key(key), s, jnp.array(actions, jnp.int32))
    ev = {k: np.asarray(v).tolist() for k, v in info["events"].items()}
    return s2, np.asarray(reward), np.asarray(term).tolist(), bool(trunc), ev, info


def ints(x):
    return np.asarray(x).tolist()


# ---------------------------------------------------------------------- parameters
def test_table1_defaults_and_energy_rules():
    env = prosocial.make("forage")
    assert (env.grid_size, env.num_agents, env.max_energy, env.max_health) == ((4, 4), 2, 8, 8)
    assert (env.throw_mdistance, env.berry_capacity, env.berry_reward) == (2, 4, 0.1)
    assert (env.death_punishment, env.max_steps) == (0.0, 10_000)
    # §5.5: for 4 × 4, eq. 11 gives N + M − 2 = 6 and eq. 9 d_max − 1 = 5.
    assert prosocial.make("forage", energy_rule="eq11").max_energy == 6
    assert prosocial.make("forage", energy_rule="eq9").max_health == 5
    assert prosocial.make("forage", grid_size=(5, 7), energy_rule="eq11").max_energy == 10
    assert prosocial.make("forage", max_energy=3, max_health=5).max_health == 5
    assert ENV.observation_space.spaces["obs"].shape == (56,)
    assert prosocial.make("forage", num_agents=3, grid_size=(3, 5)).obs_size == 15 + 3 + 2 * 20 + 15


@pytest.mark.parametrize("kwargs,match", [
    (dict(energy_rule="paper"), "energy_rule must be one of"),
    (dict(energy_rule="eq11", max_energy=6), "derives max_energy"),
    (dict(grid_size=(2, 1)), "need 4"),
    (dict(grid_size=(4,)), "grid_size must be two positive integers"),
    (dict(max_energy=0), "max_energy must be an integer ≥ 1"),
    (dict(throw_mdistance=-1), "throw_mdistance must be an integer ≥ 0"),
    (dict(berry_capacity=0), "berry_capacity must be an integer ≥ 1"),
    (dict(berry_reward=float("nan")), "berry_reward must be a finite number"),
    (dict(max_steps=0), "max_steps must be an integer ≥ 1"),
    (dict(num_agents=0), "num_agents must be an integer ≥ 1"),
])
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        prosocial.make("forage", **kwargs)


def test_make_state_rejects_impossible_states():
    with pytest.raises(ValueError, match="full health"):
        state(ENV, [(0, 0), (0, 1)], energy=[3, 8], health=[7, 8])
    with pytest.raises(ValueError, match="share a cell"):
        state(ENV, [(0, 0), (0, 0)])
    with pytest.raises(ValueError, match="free of living agents"):
        state(ENV, [(0, 0), (0, 1)], berry_cells=[(0, 0), (3, 3)])
    with pytest.raises(ValueError, match=r"berries must lie in \[0, 4\]"):
        state(ENV, [(0, 0), (0, 1)], berries=[5, 0])
    # A dead agent is off the grid: its cell may hold a berry or a living agent.
    state(ENV, [(0, 0), (0, 0)], energy=[8, 0], health=[8, 0], berry_cells=[(3, 3), (3, 2)])


# ---------------------------------------------------------------------- reset (§5.1)
def test_reset_full_energy_and_one_berry_per_agent_on_empty_cells():
    for k in range(10):
        s = ENV3.reset_state(jax.random.key(k))
        pos = {tuple(p) for p in ints(s.pos)}
        berries = {tuple(c) for c in ints(np.argwhere(np.asarray(s.berry)))}
        assert len(pos) == 3 and len(berries) == 3 and not pos & berries
        assert ints(s.energy) == [E] * 3 and ints(s.health) == [H] * 3
        assert ints(s.berries) == [0] * 3 and int(s.t) == 0


# ---------------------------------------------------------------------- automatic consumption
def test_rule1_start_of_step_consumption_then_the_agent_acts():
    """Helpless with a stored berry and h < H: eats at the start of the step (e = E, h = H),
    moves in the same step, then decays to E − 1."""
    s = state(ENV, [(1, 1), (0, 3)], energy=[0, 8], health=[5, 8], berries=[2, 0])
    assert ints(ENV.action_mask(s)[0]) == [True] * 6
    s2, reward, term, _, ev, _ = step(s, [UP, STAY])
    assert ints(s2.pos[0]) == [0, 1]
    assert ints(s2.energy) == [E - 1, E - 1] and ints(s2.health) == [H, H]
    assert ints(s2.berries) == [1, 0]
    assert ev["eaten_start"] == [1, 0] and ev["recovered"] == [1, 0]
    assert reward.tolist() == [0.0, 0.0] and term == [False, False]


def test_rule2_receiver_below_full_health_eats_the_thrown_berry():
    """Thrower at distance D = 2; the Helpless receiver (h = 5) eats at once, then decays."""
    s = state(ENV, [(0, 0), (0, 2)], energy=[5, 0], health=[8, 5], berries=[1, 0])
    s2, _, _, _, ev, _ = step(s, [THROW, UP])
    assert ints(s2.berries) == [0, 0]
    assert ints(s2.energy) == [4, E - 1] and ints(s2.health) == [H, H]
    assert ev["throws"] == [1, 0] and ev["berries_received"] == [0, 1]
    assert ev["eaten_thrown"] == [0, 1] and ev["recovered"] == [0, 1]
    assert ints(s2.pos[1]) == [0, 2]  # the Helpless agent's UP was ignored


def test_rule2_receiver_at_full_health_stores_and_eats_next_step():
    """§5.3 consequence: a Helpless agent with h = H stores the berry, loses one health in the
    decay phase, and eats it at the start of the next step (rule 1)."""
    s = state(ENV, [(0, 0), (1, 1)], energy=[5, 0], health=[8, 8], berries=[1, 0])
    s2, _, _, _, ev, _ = step(s, [THROW, STAY])
    assert ints(s2.berries) == [0, 1] and ints(s2.energy) == [4, 0]
    assert ints(s2.health) == [H, H - 1] and ev["eaten_thrown"] == [0, 0]
    s3, _, _, _, ev, _ = step(s2, [STAY, STAY])
    assert ints(s3.berries) == [0, 0] and ints(s3.energy) == [3, E - 1]
    assert ints(s3.health) == [H, H] and ev["eaten_start"] == [0, 1]


def test_healthy_receiver_stores_below_capacity_and_eats_at_capacity():
    s = state(ENV, [(0, 0), (0, 1)], energy=[5, 3], berries=[1, 2])
    s2, _, _, _, ev, _ = step(s, [THROW, STAY])
    assert ints(s2.berries) == [0, 3] and ints(s2.energy) == [4, 2]
    assert ev["eaten_thrown"] == [0, 0] and ev["berries_received"] == [0, 1]
    # Receiver inventory full (b = B): the berry is eaten (ours), e = E before the decay.
    s = state(ENV, [(0, 0), (0, 1)], energy=[5, 3], berries=[1, B])
    s2, _, _, _, ev, _ = step(s, [THROW, STAY])
    assert ints(s2.berries) == [0, B] and ints(s2.energy) == [4, E - 1]
    assert ev["eaten_thrown"] == [0, 1]


def test_collection_stores_rewards_and_replaces_the_berry():
    s = state(ENV, [(0, 0), (2, 2)], energy=[5, 5], berries=[1, 0],
              berry_cells=[(0, 1), (3, 3)])
    for key in range(5):
        s2, reward, _, _, ev, _ = step(s, [RIGHT, STAY], key)
        assert reward.tolist() == [pytest.approx(RB), 0.0]
        assert ints(s2.berries) == [2, 0] and ints(s2.energy) == [4, 4]
        assert ev["berries_collected"] == [1, 0] and ev["eaten_collected"] == [0, 0]
        berry = np.asarray(s2.berry)
        assert berry.sum() == 2 and berry[3, 3] and not berry[0, 1] and not berry[2, 2]


def test_rule3_collecting_at_full_inventory_eats_the_berry():
    s = state(ENV, [(0, 0), (2, 2)], energy=[3, 5], berries=[B, 0],
              berry_cells=[(1, 0), (3, 3)])
    s2, reward, _, _, ev, _ = step(s, [DOWN, STAY])
    assert reward.tolist() == [pytest.approx(RB), 0.0]
    assert ints(s2.berries) == [B, 0] and ints(s2.energy) == [E - 1, 4]
    assert ev["berries_collected"] == [1, 0] and ev["eaten_collected"] == [1, 0]


def test_rule4_energy_decaying_to_zero_eats_a_stored_berry():
    s = state(ENV, [(0, 0), (2, 2)], energy=[1, 5], berries=[2, 0])
    s2, _, _, _, ev, _ = step(s, [STAY, STAY])
    assert ints(s2.energy) == [E, 4] and ints(s2.berries) == [1, 0]
    assert ev["eaten_decay"] == [1, 0] and ev["became_helpless"] == [0, 0]


# ---------------------------------------------------------------------- decay and death
def test_decay_helpless_for_h_steps_then_death_and_per_agent_termination():
    """e = 1, no berry: Helpless after one step (health still H), then one health per step:
    dead H steps later, rewarded death_punishment once; the other agent plays on. The dead
    agent's later actions change nothing and its row of the mask is STAY only."""
    s = state(ENV, [(0, 0), (3, 0)], energy=[1, 8])
    s, _, term, _, ev, _ = step(s, [STAY, STAY])
    assert ints(s.energy) == [0, 7] and ints(s.health) == [H, H]
    assert ev["became_helpless"] == [1, 0] and term == [False, False]
    assert ints(ENV.action_mask(s)[0]) == [k == STAY for k in range(6)]
    for k in range(1, H + 1):
        s, reward, term, _, ev, _ = step(s, [RIGHT, STAY], k)
        assert int(s.health[0]) == H - k and ints(s.pos[0]) == [0, 0]
        assert reward.tolist() == ([-1.0, 0.0] if k == H else [0.0, 0.0])
        assert ev["died"] == [int(k == H), 0] and ev["alive"] == [1, 1]
        assert term == [k == H, False]
    for k in range(3):  # dead: nothing moves or changes, no reward, still terminated
        s2, reward, term, _, ev, _ = step(s, [RIGHT, DOWN], 50 + k)
        assert ints(s2.pos[0]) == [0, 0] and ints(s2.energy[0]) == 0 and ints(s2.health[0]) == 0
        assert reward.tolist() == [0.0, 0.0] and term == [True, False]
        assert ev["alive"] == [0, 1] and ev["died"] == [0, 0]
        assert ints(s2.pos[1]) == [3, 0]  # DOWN off the grid: stays
    vec = np.asarray(ENV.observe(s2)["obs"])
    # Agent 1 sees agent 0 as dead: alive flag, cell, stats and distance all zero (§5.7).
    assert vec[1, 19:40].tolist() == [0.0] * 21
    assert vec[0, :19].tolist() == [0.0] * 19


def test_episode_terminates_when_all_are_dead():
    s = state(ENV, [(0, 0), (3, 0)], energy=[0, 0], health=[1, 1])
    _, reward, term, trunc, ev, _ = step(s, [STAY, STAY])
    assert term == [True, True] and not trunc and ev["died"] == [1, 1]
    assert reward.tolist() == [-1.0, -1.0]


# ---------------------------------------------------------------------- moves (§5.4 step 2)
def test_moves_and_grid_edges():
    s = state(ENV, [(0, 0), (2, 2)])
    s2, *_ = step(s, [UP, LEFT])
    assert ints(s2.pos) == [[0, 0], [2, 1]]
    s2, *_ = step(s, [DOWN, RIGHT])
    assert ints(s2.pos) == [[1, 0], [2, 3]]


def test_helpless_agents_block_their_cell_and_ignore_actions():
    s = state(ENV, [(0, 0), (0, 1)], energy=[5, 0], health=[8, 4])
    for key in range(4):
        s2, *_ = step(s, [RIGHT, DOWN], key)
        assert ints(s2.pos) == [[0, 0], [0, 1]]


def test_dead_agents_block_nothing():
    s = state(ENV, [(0, 0), (0, 1)], energy=[5, 0], health=[8, 0])
    s2, *_ = step(s, [RIGHT, STAY])
    assert ints(s2.pos[0]) == [0, 1]


def test_contests_go_to_one_agent_and_swaps_are_blocked():
    s = state(ENV, [(1, 0), (1, 2)])
    winners = set()
    for key in range(12):
        s2, *_ = step(s, [RIGHT, LEFT], key)
        pos = ints(s2.pos)
        assert pos in ([[1, 1], [1, 2]], [[1, 0], [1, 1]])
        winners.add(pos[0] == [1, 1])
    assert winners == {True, False}
    s = state(ENV, [(1, 0), (1, 1)])
    s2, *_ = step(s, [RIGHT, LEFT])
    assert ints(s2.pos) == [[1, 0], [1, 1]]


# ---------------------------------------------------------------------- throws (§5.2, step 4)
def test_throw_goes_to_the_lowest_survival_score_in_range():
    # μ = h + e + E·b: agent 1 has 8 + 6 + 0 = 14, agent 2 has 8 + 3 + 0 = 11.
    s = state(ENV3, [(1, 1), (1, 2), (2, 1)], energy=[5, 6, 3], berries=[1, 0, 0],
              berry_cells=[(3, 1), (3, 2), (3, 3)])
    _, _, _, _, ev, _ = step(s, [THROW, STAY, STAY], env=ENV3)
    assert ev["berries_received"] == [0, 0, 1]
    # Equal μ (both 11): the lower index receives.
    s = state(ENV3, [(1, 1), (1, 2), (2, 1)], energy=[5, 3, 3], berries=[1, 0, 0],
              berry_cells=[(3, 1), (3, 2), (3, 3)])
    _, _, _, _, ev, _ = step(s, [THROW, STAY, STAY], env=ENV3)
    assert ev["berries_received"] == [0, 1, 0]
    # The lowest μ (agent 1, Helpless: μ = 2) is 3 cells away: agent 2 (in range) receives.
    s = state(ENV3, [(0, 0), (1, 2), (2, 0)], energy=[5, 0, 6], health=[8, 2, 8],
              berries=[1, 0, 0], berry_cells=[(3, 1), (3, 2), (3, 3)])
    _, _, _, _, ev, _ = step(s, [THROW, STAY, STAY], env=ENV3)
    assert ev["berries_received"] == [0, 0, 1]


def test_throw_distance_is_measured_after_the_moves():
    s = state(ENV, [(0, 0), (0, 3)], energy=[5, 0], health=[8, 3], berries=[1, 0])
    s2, _, _, _, ev, _ = step(s, [THROW, STAY])  # distance 3 > D
    assert ev["throws_failed"] == [1, 0] and ints(s2.berries) == [1, 0]
    assert ev["throws"] == [0, 0] and ev["berries_received"] == [0, 0]
    s = state(ENV, [(0, 0), (0, 3)], energy=[5, 0], health=[8, 3], berries=[1, 0])
    s2, *_ = step(s, [RIGHT, STAY])
    s3, _, _, _, ev, _ = step(s2, [THROW, STAY])  # now 2 apart
    assert ev["throws"] == [1, 0] and ev["eaten_thrown"] == [0, 1]


def test_throw_without_a_berry_or_a_living_target_fails():
    s = state(ENV, [(0, 0), (0, 1)], energy=[5, 5], berries=[0, 0])
    s2, _, _, _, ev, _ = step(s, [THROW, STAY])
    assert ev["throws_failed"] == [1, 0] and ints(s2.berries) == [0, 0]
    s = state(ENV, [(0, 0), (0, 1)], energy=[5, 0], health=[8, 0], berries=[2, 0])
    s2, _, _, _, ev, _ = step(s, [THROW, STAY])  # the only other agent is dead
    assert ev["throws_failed"] == [1, 0] and ints(s2.berries) == [2, 0]


def test_simultaneous_throws_in_random_order():
    """0 holds one berry, 1 none, both throw. 0 first: 1 receives (stores it, h = H) and
    throws it straight back. 1 first: 1's throw fails, then 0's succeeds. Both orders occur."""
    s = state(ENV, [(0, 0), (0, 1)], energy=[5, 5], berries=[1, 0])
    outcomes = set()
    for key in range(16):
        s2, _, _, _, ev, _ = step(s, [THROW, THROW], key)
        outcomes.add((tuple(ints(s2.berries)), tuple(ev["throws"]), tuple(ev["throws_failed"])))
    assert outcomes == {((1, 0), (1, 1), (0, 0)), ((0, 1), (1, 0), (0, 1))}


# ---------------------------------------------------------------------- berry replacement
def test_replacement_is_uniform_over_cells_without_living_agents_or_berries():
    """Agent 0 collects at (0, 1); agent 1 (Helpless) stands on (1, 1); the other berry is at
    (3, 3). The new berry lands uniformly on the 16 − 3 = 13 other cells."""
    s = state(ENV, [(0, 0), (1, 1)], energy=[5, 0], health=[8, 5],
              berry_cells=[(0, 1), (3, 3)])
    keys = jax.random.split(jax.random.key(0), 2600)
    out = jax.jit(jax.vmap(ENV.step_state, in_axes=(0, None, None)))(
        keys, s, jnp.array([RIGHT, STAY]))
    berry = np.asarray(out[0].berry).reshape(len(keys), -1)
    assert np.all(berry.sum(1) == 2) and np.all(berry[:, 15])
    counts = berry.sum(0) - len(keys) * np.eye(16)[15]
    assert counts[[1, 5]].tolist() == [0, 0]  # the collector's and the Helpless agent's cells
    free = np.delete(counts, [1, 5, 15])
    assert free.sum() == len(keys) and free.min() > 0
    # 200 expected per cell; ±4.5 standard deviations (σ ≈ 13.6).
    assert np.all(np.abs(free - 200) < 62), free


# ---------------------------------------------------------------------- observation and signals
def test_observation_vector_layout():
    s = state(ENV, [(0, 1), (2, 3)], energy=[4, 0], health=[8, 6], berries=[2, 0],
              berry_cells=[(1, 0), (3, 3)])
    vec = np.asarray(ENV.observe(s)["obs"])
    assert vec.shape == (2, 56) and vec.dtype == np.float32
    own0 = np.eye(16)[1].tolist() + [4 / 8, 1.0, 2 / 4]
    own1 = np.eye(16)[11].tolist() + [0.0, 6 / 8, 0.0]
    berry = np.zeros(16)
    berry[[4, 15]] = 1
    d = 4 / 6  # |0 − 2| + |1 − 3| over d_max = 4 + 4 − 2
    np.testing.assert_allclose(vec[0], own0 + [1.0] + own1 + [d] + berry.tolist())
    np.testing.assert_allclose(vec[1], own1 + [1.0] + own0 + [d] + berry.tolist())


def test_signals_describe_both_states_of_the_transition():
    s = state(ENV, [(0, 0), (0, 3)], energy=[5, 0], health=[8, 3], berries=[1, 0])
    _, _, _, _, _, info = step(s, [RIGHT, STAY])
    sig = {k: ints(v) for k, v in info["signals"].items()}
    assert sig["prev_energy"] == [5, 0] and sig["energy"] == [4, 0]
    assert sig["prev_health"] == [8, 3] and sig["health"] == [8, 2]
    assert sig["prev_berries"] == [1, 0] and sig["berries"] == [1, 0]
    assert sig["prev_distance"] == [[0, 3], [3, 0]] and sig["distance"] == [[0, 2], [2, 0]]
    assert (sig["max_energy"], sig["max_health"], sig["throw_distance"]) == (E, H, D)


def test_render_colours():
    s = state(ENV, [(0, 0), (1, 1)], energy=[5, 0], health=[8, 2], berry_cells=[(3, 3), (2, 2)])
    image = np.asarray(ENV.render(s))
    assert image.shape == (4, 4, 3) and image.dtype == np.uint8
    assert image[3, 3].tolist() == [220, 20, 60] and image[0, 3].tolist() == [0, 0, 0]
    assert image[0, 0].tolist() == [0, 0, 255]  # agent 0's colour; agent 1 Helpless: dimmed
    assert image[1, 1].tolist() == [1, 40, 77]


# ---------------------------------------------------------------------- properties
@st.composite
def scenarios(draw, env=ENV):
    """A valid random state (any mix of Healthy, Helpless and dead agents), actions, key."""
    n = env.num_agents
    cells = draw(st.permutations(list(range(16))))
    pos = [(c // 4, c % 4) for c in cells[:n]]
    berry_cells = [(c // 4, c % 4) for c in cells[n:2 * n]]
    status = draw(st.lists(st.sampled_from(["healthy", "helpless", "dead"]), min_size=n,
                           max_size=n))
    energy = [draw(st.integers(1, E)) if k == "healthy" else 0 for k in status]
    health = [H if k == "healthy" else draw(st.integers(1, H)) if k == "helpless" else 0
              for k in status]
    berries = draw(st.lists(st.integers(0, B), min_size=n, max_size=n))
    actions = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    return (state(env, pos, energy, health, berries, berry_cells), actions,
            draw(st.integers(0, 2**30)))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(scenarios())
def test_property_ranges_berries_and_status(case):
    s, actions, key = case
    s2, reward, term, _, ev, _ = step(s, actions, key)
    e, h, b = (np.asarray(x) for x in (s2.energy, s2.health, s2.berries))
    assert np.all((0 <= e) & (e <= E)) and np.all((0 <= h) & (h <= H))
    assert np.all((0 <= b) & (b <= B))
    assert np.all(h[e > 0] == H)  # Healthy means full health
    alive = (e > 0) | (h > 0)
    pos = np.asarray(s2.pos)
    berry = np.asarray(s2.berry)
    assert berry.sum() == ENV.num_agents  # §5.1: |I| berries on the grid
    assert not berry[pos[alive, 0], pos[alive, 1]].any()
    assert len({tuple(p) for p in pos[alive].tolist()}) == alive.sum()
    # Stored berries change only by the rules: + collected, − every consumption.
    eaten = sum(np.array(ev[k]) for k in ("eaten_start", "eaten_thrown", "eaten_collected",
                                          "eaten_decay"))
    assert b.sum() == np.asarray(s.berries).sum() + sum(ev["berries_collected"]) - eaten.sum()
    assert sum(ev["throws"]) == sum(ev["berries_received"])
    np.testing.assert_allclose(reward, RB * np.array(ev["berries_collected"])
                               - np.array(ev["died"]), rtol=1e-6)
    assert term == (~alive).tolist()
    dead0 = ~((np.asarray(s.energy) > 0) | (np.asarray(s.health) > 0))
    assert np.all(pos[dead0] == np.asarray(s.pos)[dead0]) and np.all(b[dead0] ==
                                                                     np.asarray(s.berries)[dead0])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(scenarios())
def test_property_actions_of_agents_that_cannot_act_are_ignored(case):
    s, actions, key = case
    mask = np.asarray(ENV.action_mask(s))
    other = [a if mask[i].all() else (a + 1) % 6 for i, a in enumerate(actions)]
    first, second = step(s, actions, key)[0], step(s, other, key)[0]
    for x, y in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True):
        assert np.array_equal(x, y)


def test_forage_class_is_the_registered_one():
    assert isinstance(ENV, Forage) and prosocial.make("forage").env_id == "forage"
