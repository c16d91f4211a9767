"""The PettingZoo ParallelEnv adapter and the JaxMARL-style dict view.

One environment object per id (MAX_STEPS-step episodes, so every test's episode ends) is
shared by all adapters here: the adapter's jitted functions are keyed on the environment
object, so each id compiles its reset and step once for the whole module.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from env_params import env_params
from pettingzoo.test import parallel_api_test, parallel_seed_test
from two_roles_env import TwoRoles

import prosocial
from prosocial.envs.adapters.dict_view import DictView
from prosocial.envs.adapters.pettingzoo import PettingZooEnv

MAX_STEPS = 30
ALL = [f"agent_{i}" for i in range(5)]
RENDER_SHAPES = {"harvest": (16 * 8, 38 * 8, 3), "cleanup": (25 * 8, 18 * 8, 3),  # map × scale
                 "coins": (5 * 8, 5 * 8, 3), "coins-torus": (5 * 8, 5 * 8, 3),
                 "coin-game-lola": (3 * 8, 3 * 8, 3), "coin-game-2coin": (3 * 8, 3 * 8, 3),
                 "bimatrix": (4 * 8, 4 * 8, 3), "bimatrix-constrained": (4 * 8, 4 * 8, 3),
                 "coop_bimatrix_3": (4 * 8, 7 * 8, 3), "ipd": (2 * 8, 2 * 8, 3),
                 "ipd-lola": (2 * 8, 2 * 8, 3), "stag-hunt": (2 * 8, 2 * 8, 3),
                 "chicken": (2 * 8, 2 * 8, 3), "matching-pennies": (2 * 8, 2 * 8, 3),
                 "forage": (4 * 8, 4 * 8, 3)}


@functools.cache
def _env(env_id: str):
    return prosocial.make(env_id, max_steps=MAX_STEPS)


@pytest.fixture(params=env_params(prosocial.list_envs()))
def env_id(request):
    return request.param


def _episode(pz: PettingZooEnv, seed, action_seed: int):
    """One whole episode with seeded random actions: (reset output, [(actions, step output)])."""
    rng = np.random.default_rng(action_seed)
    first = pz.reset(seed=seed)
    steps = []
    while pz.agents:
        actions = {a: int(rng.integers(pz.env.num_actions)) for a in pz.agents}
        steps.append((actions, pz.step(actions)))
    return first, steps


def _same(a, b) -> bool:
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    return tree_a == tree_b and all(
        type(x) is type(y) and np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b,
                                                                     strict=True))


# ---------------------------------------------------------------------- PettingZoo adapter
def test_parallel_api(env_id):
    pz = PettingZooEnv(_env(env_id), render_mode="rgb_array")
    parallel_api_test(pz, num_cycles=MAX_STEPS + 5)
    assert pz.agents == []  # the episode ended inside the test
    assert pz.possible_agents == [f"agent_{i}" for i in range(_env(env_id).num_agents)]
    assert pz.metadata["name"] == f"prosocial_{env_id}"
    assert pz.metadata["render_modes"] == ["rgb_array"]


def test_parallel_seed(env_id):
    parallel_seed_test(lambda: PettingZooEnv(_env(env_id)), num_cycles=MAX_STEPS + 5)


def _ssd_values(a, obs, actions, rewards, events, agents):
    # Agent a's row: its own last action, then the others' in agent order (§1.7).
    assert obs[a]["own_prev_action"] == actions[a]
    assert obs[a]["others_actions"].tolist() == [actions[b] for b in agents if b != a]
    # Both games reward +1 per apple, −1 per beam fired, −50 per hit taken (§1.8).
    assert rewards[a] == (events["apples_eaten"] - events["fires"]
                          - 50 * events["hits_received"])


def _coins_values(a, obs, actions, rewards, events, agents):
    # One cell in each player plane (§4.2); +1 per coin taken, −2 per own coin lost.
    planes = obs[a]["obs"]
    assert planes[..., 0].sum() == 1 and planes[..., 1].sum() == 1
    assert rewards[a] == (events["own_coins_collected"] + events["other_coins_collected"]
                          - 2 * events["own_coins_lost"])


CONTRACT_VALUES = {"harvest": _ssd_values, "cleanup": _ssd_values, "coins": _coins_values,
                   "coins-torus": _coins_values, "coin-game-lola": _coins_values,
                   "coin-game-2coin": _coins_values}


@pytest.mark.parametrize("env_id", sorted(CONTRACT_VALUES) + ["forage"])
def test_same_seed_same_episode_and_contract_values(env_id):
    """Whole episodes: identical under the same seed, in the spaces, rewards = events (§1.8,
    §4.2; Forage §5.4: r_b per berry, agents leave when they die)."""
    pz1, pz2 = PettingZooEnv(_env(env_id)), PettingZooEnv(_env(env_id))
    first1, steps1 = _episode(pz1, seed=7, action_seed=0)
    first2, steps2 = _episode(pz2, seed=7, action_seed=0)
    assert _same((first1, steps1), (first2, steps2))
    if env_id == "forage":
        _check_forage_episode(pz1, steps1)
    else:
        _check_fixed_length_episode(pz1, steps1, CONTRACT_VALUES[env_id])
    # Without a seed, reset carries on the seeded key chain: reproducible, yet a new episode.
    again1, again2 = pz1.reset(), pz2.reset()
    assert _same(again1, again2)
    assert not _same(again1[0], first1[0])
    assert not _same(pz1.reset(seed=8)[0], first1[0])


def _check_forage_episode(pz, steps):
    """Agents leave ``agents`` on the step they die; rewards are r_b per collected berry."""
    live = list(pz.possible_agents)
    for t, (actions, (obs, rewards, terminations, truncations, infos)) in enumerate(steps):
        assert sorted(actions) == sorted(live) == sorted(obs)
        for a in live:
            assert pz.observation_space(a).contains(obs[a])
            assert rewards[a] == pytest.approx(0.1 * infos[a]["berries_collected"])
            assert terminations[a] is bool(infos[a]["died"])
            assert truncations[a] is (t == MAX_STEPS - 1)
        live = [a for a in live if not (terminations[a] or truncations[a])]
    assert live == [] and (len(steps) == MAX_STEPS or all(terminations.values()))


def _check_fixed_length_episode(pz, steps, values):
    """Games that end by time limit only: every agent every step, ``values`` per agent."""
    assert len(steps) == MAX_STEPS
    for t, (actions, (obs, rewards, terminations, truncations, infos)) in enumerate(steps):
        last = t == MAX_STEPS - 1
        for a in pz.possible_agents:
            assert pz.observation_space(a).contains(obs[a])
            assert type(rewards[a]) is float
            assert terminations[a] is False and truncations[a] is last
            events = infos[a]
            assert all(type(v) is int for v in events.values())
            values(a, obs, actions, rewards, events, pz.possible_agents)


def test_registry_entry_point():
    pz = prosocial.pettingzoo_env("cleanup", num_agents=3, max_steps=10, render_mode="rgb_array")
    assert isinstance(pz, PettingZooEnv)
    assert pz.possible_agents == ["agent_0", "agent_1", "agent_2"]
    assert pz.render_mode == "rgb_array" and pz.env.max_steps == 10
    assert pz.action_space("agent_2").n == 9
    assert pz.observation_space("agent_0")["others_actions"].shape == (2,)


def test_render(env_id):
    pz = PettingZooEnv(_env(env_id), render_mode="rgb_array")
    pz.reset(seed=3)
    image = pz.render()
    assert image.shape == RENDER_SHAPES[env_id] and image.dtype == np.uint8
    small = PettingZooEnv(_env(env_id), render_mode="rgb_array", render_scale=1)
    small.reset(seed=3)
    cell = small.render()
    assert cell.shape == (image.shape[0] // 8, image.shape[1] // 8, 3)
    assert np.array_equal(image, np.kron(cell, np.ones((8, 8, 1), np.uint8)))


def test_render_modes():
    with pytest.raises(ValueError, match="unsupported render_mode 'human'"):
        PettingZooEnv(_env("harvest"), render_mode="human")
    with pytest.raises(ValueError, match="render_scale"):
        PettingZooEnv(_env("harvest"), render_scale=0)
    pz = PettingZooEnv(_env("harvest"))
    pz.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert pz.render() is None


BAD_ACTIONS = {
    "missing": ({a: 0 for a in ALL[:4]}, r"missing \['agent_4'\], unknown \[\]"),
    "unknown": (dict({a: 0 for a in ALL}, agent_9=0), r"missing \[\], unknown \['agent_9'\]"),
    "float": ({"agent_2": 1.0}, r"action of agent_2 must be an integer in \[0, 7\], got 1\.0"),
    "bool": ({"agent_2": True}, r"action of agent_2 must be an integer in \[0, 7\], got True"),
    "string": ({"agent_2": "1"}, r"action of agent_2 must be an integer in \[0, 7\], got '1'"),
    "vector": ({"agent_2": np.array([1, 2])},
               r"action of agent_2 must be a scalar, an integer in \[0, 7\]; got shape \(2,\)"),
    "negative": ({"agent_2": -1}, r"action of agent_2 must be an integer in \[0, 7\], got -1$"),
    "too large": ({"agent_2": np.int64(8)},
                  r"action of agent_2 must be an integer in \[0, 7\], got 8$"),
}


@pytest.mark.parametrize("case", list(BAD_ACTIONS))
def test_bad_actions_rejected(case):
    pz = PettingZooEnv(_env("harvest"))
    pz.reset(seed=0)
    actions, message = BAD_ACTIONS[case]
    if case not in ("missing", "unknown"):
        actions = dict({a: 0 for a in ALL}, **actions)
    with pytest.raises(ValueError, match=message):
        pz.step(actions)
    # A rejected step changes nothing: the episode goes on from the same state.
    assert pz.agents == ALL
    pz.step({a: np.int32(0) for a in ALL})


def test_step_outside_an_episode():
    pz = PettingZooEnv(_env("harvest"))
    with pytest.raises(RuntimeError, match=re.escape("call reset() before step()")):
        pz.step({a: 0 for a in ALL})
    pz.reset(seed=1)
    with pytest.raises(ValueError, match="a dict keyed by agent"):
        pz.step([0] * 5)
    with pytest.raises(ValueError, match="unknown agent 'agent_5'"):
        pz.action_space("agent_5")
    with pytest.raises(ValueError, match="seed must be None or a non-negative integer, got -1"):
        pz.reset(seed=-1)
    _episode(pz, seed=1, action_seed=1)
    with pytest.raises(RuntimeError, match="the episode is over"):
        pz.step({})


# ---------------------------------------------------------------------- dict view
def test_dict_view_matches_array_env():
    """Same key → the same values as the array env, jitted, agent i = row i."""
    env = _env("harvest")
    view = DictView(env)
    assert view.agents == ALL and view.num_agents == 5
    actions = jnp.array([0, 2, 4, 7, 5], jnp.int32)

    @jax.jit
    def both(key, t0):
        key_reset, key_step = jax.random.split(key)
        obs_d, state_d = view.reset(key_reset)
        obs, state = env.reset(key_reset)
        state_d, state = state_d.replace(t=t0), state.replace(t=t0)
        step_d = view.step(key_step, state_d, {a: actions[i] for i, a in enumerate(ALL)})
        return (obs_d, state_d, step_d), (obs, state, env.step(key_step, state, actions))

    for t0, done in ((0, False), (MAX_STEPS - 1, True)):
        (obs_d, state_d, step_d), (obs, state, step) = both(jax.random.key(5), t0)
        obs2_d, state2_d, rewards, dones, infos = step_d
        obs2, state2, reward, terminated, truncated, info = step
        assert _same(state_d, state) and _same(state2_d, state2)
        for i, a in enumerate(ALL):
            assert _same(obs_d[a], {k: v[i] for k, v in obs.items()})
            assert _same(obs2_d[a], {k: v[i] for k, v in obs2.items()})
            assert rewards[a] == reward[i]
            assert bool(dones[a]) is done
        assert bool(dones["__all__"]) is done and set(dones) == {*ALL, "__all__"}
        assert bool(infos["truncated"]) is done
        assert infos["terminated"].shape == (5,) and not infos["terminated"].any()
        assert _same(infos["events"], info["events"])
        assert view.observation_space("agent_1").contains(jax.device_get(obs2_d["agent_1"]))


@pytest.mark.parametrize("bad,message", [
    ({a: 0 for a in ALL[1:]}, r"missing \['agent_0'\]"),
    (dict({a: 0 for a in ALL}, agent_5=0), r"unknown \['agent_5'\]"),
    (dict({a: 0 for a in ALL}, agent_3=jnp.zeros(2, jnp.int32)), "agent_3.*shape \\(2,\\)"),
    (dict({a: 0 for a in ALL}, agent_3=jnp.float32(1)), "agent_3.*dtype float32"),
])
def test_dict_view_bad_actions_fail_at_trace_time(bad, message):
    view = DictView(_env("harvest"))
    _, state = jax.eval_shape(view.reset, jax.random.key(0))
    with pytest.raises(ValueError, match=message):
        jax.jit(view.step).trace(jax.random.key(0), state, bad)
    with pytest.raises(ValueError, match="unknown agent"):
        view.action_space("agent_7")


# ---------------------------------------------------------------------- roles and per-agent ends
@functools.cache
def _two_roles():
    return TwoRoles(max_steps=10)


def test_parallel_api_with_roles_and_per_agent_termination():
    """Agents leave ``agents`` one by one as they terminate; spaces follow the roles."""
    pz = PettingZooEnv(_two_roles())
    parallel_api_test(pz, num_cycles=20)
    assert pz.action_space("agent_0").n == 3 and pz.action_space("agent_2").n == 5
    assert set(pz.observation_space("agent_0").spaces) == {"energy", "level", "obs"}
    assert set(pz.observation_space("agent_2").spaces) == {"energies", "t", "obs"}


def test_pettingzoo_per_agent_terminations():
    pz = PettingZooEnv(_two_roles())
    obs, _ = pz.reset(seed=0)
    assert obs["agent_2"]["energies"].tolist() == [2, 3] and obs["agent_1"]["energy"] == 3
    live = [pz.agents]
    ends = []
    for _ in range(2):  # worker 0 (energy 2) works twice: terminated at the second step
        obs, rewards, terms, truncs, infos = pz.step({"agent_0": 1, "agent_1": 0, "agent_2": 0})
        live.append(pz.agents)
        ends.append(terms)
    assert ends[0] == {"agent_0": False, "agent_1": False, "agent_2": False}
    assert ends[1] == {"agent_0": True, "agent_1": False, "agent_2": False}
    assert live[-1] == ["agent_1", "agent_2"]
    assert infos["agent_0"] == {"work": 1}
    with pytest.raises(ValueError, match=r"unknown \['agent_0'\]"):
        pz.step({"agent_0": 1, "agent_1": 1, "agent_2": 0})
    with pytest.raises(ValueError, match=r"action of agent_1 must be an integer in \[0, 2\], "
                                         r"got 4"):
        pz.step({"agent_1": 4, "agent_2": 0})
    for _ in range(3):  # worker 1 (energy 3) works three times; the planner ends with it
        obs, rewards, terms, truncs, infos = pz.step({"agent_1": 1, "agent_2": 4})
    assert set(obs) == {"agent_1", "agent_2"}  # the agents live at the step's start
    assert terms == {"agent_1": True, "agent_2": True} and not any(truncs.values())
    assert pz.agents == []


def test_dict_view_per_agent_dones():
    env = _two_roles()
    view = DictView(env)
    assert view.observation_space("agent_2") == env.observation_spaces["planner"]
    assert view.action_space("agent_1") == env.action_spaces["workers"]
    obs, state = view.reset(jax.random.key(0))
    assert obs["agent_2"]["energies"].tolist() == [2, 3]
    assert int(obs["agent_0"]["energy"]) == 2 and int(obs["agent_1"]["energy"]) == 3
    step = jax.jit(view.step)
    for t in range(2):
        obs, state, rewards, dones, infos = step(
            jax.random.key(t), state, {"agent_0": 1, "agent_1": 0, "agent_2": 0})
    assert {a: bool(d) for a, d in dones.items()} == {
        "agent_0": True, "agent_1": False, "agent_2": False, "__all__": False}
    assert infos["terminated"].tolist() == [True, False, False]
    assert infos["signals"]["energy"].tolist() == [0.0, 3.0, 0.0]


# ---------------------------------------------------------------------- gymnax adapter
def test_gymnax_adapter_follows_the_contract():
    """One agent: terminated bool[1] (the fall), truncated bool[] (the time limit),
    empty events and signals, the default role and mask."""
    pytest.importorskip("gymnax")
    from prosocial.envs.adapters.gymnax import GymnaxEnv
    from prosocial.envs.core import AutoReset, episode_done, signal_spec

    env = GymnaxEnv("CartPole-v1", max_steps_in_episode=50)
    assert env.roles == {"agents": (0,)} and signal_spec(env) == {}
    step = jax.jit(AutoReset(env).step)
    obs, state = env.reset(jax.random.PRNGKey(0))
    assert np.asarray(env.action_mask(state)).tolist() == [[True, True]]
    for t in range(50):  # always push right: the pole falls within ~10 steps
        obs, state, reward, term, trunc, info = step(jax.random.PRNGKey(t), state,
                                                     jnp.asarray([1]))
        assert term.shape == (1,) and term.dtype == jnp.bool_ and trunc.shape == ()
        assert info["events"] == {} and info["signals"] == {}
        if bool(term[0]):
            break
    assert bool(episode_done(term, trunc)) and not bool(trunc)
    assert int(state.time) == 0  # AutoReset started a new episode
    with pytest.raises(ValueError, match=r"CartPole-v1: actions must lie in \[0, 1\]"):
        env.step(jax.random.PRNGKey(0), state, jnp.asarray([2]))
