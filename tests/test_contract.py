"""Conformance of every registered environment to the contract of prosocial/envs/core.py.

One short eager rollout per environment (AutoReset over a MAX_STEPS-step episode, STEPS
steps, so it crosses two truncations) feeds most tests; the jitted lax.scan of the same
rollout is compiled once per environment. Eager first steps and that one compilation are
the cost of this module.

Besides the registry's environments, every test also runs the unregistered two-role test
environment (``tests/two_roles_env.py``: a planner with another action space, per-agent
termination, a state-dependent mask, signals), so the contract helpers are checked on what
Harvest and Cleanup do not exercise; the tests at the end pin its values.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from env_params import env_params
from two_roles_env import TwoRoles

import prosocial
from prosocial.envs.core import (
    AutoReset,
    agent_observation,
    agent_roles,
    episode_done,
    event_keys,
    num_actions_per_agent,
    role_observations,
    signal_keys,
    signal_spec,
    split_roles,
)
from prosocial.envs.registry import env_parameters
from prosocial.envs.scripted import FixedCoPlayer
from prosocial.envs.spaces import Dict, Discrete

ENV_IDS = prosocial.list_envs()
TEST_ENVS = {  # unregistered environments checked like registered ones
    "two_roles": TwoRoles,
    "ipd-vs-tft": lambda max_steps: FixedCoPlayer(prosocial.make("ipd", max_steps=max_steps)),
}
MAX_STEPS = 5
STEPS = 12  # truncations after steps 5 and 10


def _tree_equal(a, b) -> bool:
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    return tree_a == tree_b and all(
        np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(x, y)
        for x, y in zip(leaves_a, leaves_b, strict=True))


def _spec(tree):
    """A state's layout (structure, shapes, dtypes) as comparable arrays."""
    return jax.tree.map(lambda x: np.array([*x.shape, np.dtype(x.dtype).num]), tree)


def _agent_slice(obs: dict, i: int) -> dict:
    return {k: np.asarray(v)[i] for k, v in obs.items()}


@functools.cache
def _env(env_id: str):
    if env_id in TEST_ENVS:
        return TEST_ENVS[env_id](max_steps=MAX_STEPS)
    return prosocial.make(env_id, max_steps=MAX_STEPS)


@functools.cache
def _inputs(env_id: str):
    """Reset key, per-step keys, int32 actions[STEPS, N] (each in its agent's range)."""
    env = _env(env_id)
    key_reset, key_steps, key_actions = jax.random.split(jax.random.key(42), 3)
    actions = jax.random.randint(key_actions, (STEPS, env.num_agents), 0,
                                 num_actions_per_agent(env), dtype=jnp.int32)
    return key_reset, jax.random.split(key_steps, STEPS), actions


@functools.cache
def _eager_rollout(env_id: str):
    """Unjitted AutoReset rollout: the initial (obs, state) and one record per step."""
    auto = AutoReset(_env(env_id))
    key_reset, keys, actions = _inputs(env_id)
    obs, state = auto.reset(key_reset)
    first = (obs, state)
    steps = []
    for t in range(STEPS):
        prev = state
        obs, state, reward, terminated, truncated, info = auto.step(keys[t], state, actions[t])
        steps.append({"prev": prev, "obs": obs, "state": state, "reward": reward,
                      "terminated": terminated, "truncated": truncated, "info": info})
    return first, steps


@pytest.fixture(params=env_params(ENV_IDS + list(TEST_ENVS)))
def env_id(request):
    return request.param


def test_attributes_and_spaces(env_id):
    env = _env(env_id)
    assert env.env_id == env_id
    assert env.max_steps == MAX_STEPS
    assert isinstance(env.num_agents, int) and env.num_agents >= 1
    roles = agent_roles(env)  # the roles partition the agents; spaces exist for each role
    assert len(roles) == env.num_agents and set(roles) == set(env.roles)
    limits = num_actions_per_agent(env)
    assert env.num_actions == limits.max() >= 2
    for role, agents in env.roles.items():
        space = env.action_spaces[role]
        assert isinstance(space, Discrete) and np.all(limits[list(agents)] == space.n)
        assert space.contains(np.int32(space.n - 1)) and not space.contains(np.int32(space.n))
        assert isinstance(env.observation_spaces[role], Dict)
    if len(env.roles) == 1:  # one-role environments keep the single-space attributes
        assert env.action_spaces == {"agents": env.action_space}
        assert env.observation_spaces == {"agents": env.observation_space}
        assert env.roles == {"agents": tuple(range(env.num_agents))}


def test_observations_match_space(env_id):
    env = _env(env_id)
    (obs, _), steps = _eager_rollout(env_id)
    for o in [obs] + [s["obs"] for s in steps]:
        by_role = role_observations(env, o)
        assert set(by_role) == set(env.roles)
        for role, agents in env.roles.items():
            space = env.observation_spaces[role]
            assert set(by_role[role]) == set(space.spaces)
            for k, v in by_role[role].items():
                assert v.shape == (len(agents), *space.spaces[k].shape), (role, k)
            for row, i in enumerate(agents):
                single = agent_observation(env, o, i)
                assert space.contains(jax.device_get(single)), (i, single)
                assert _tree_equal(single, _agent_slice(by_role[role], row))


def test_step_outputs_shapes_and_dtypes(env_id):
    env = _env(env_id)
    _, steps = _eager_rollout(env_id)
    n = env.num_agents
    for s in steps:
        assert s["reward"].shape == (n,) and s["reward"].dtype == jnp.float32
        assert s["terminated"].shape == (n,) and s["terminated"].dtype == jnp.bool_
        assert s["truncated"].shape == () and s["truncated"].dtype == jnp.bool_
        events = s["info"]["events"]
        assert isinstance(events, dict) and events
        assert tuple(sorted(events)) == event_keys(env)
        for name, count in events.items():
            assert count.shape == (n,) and count.dtype == jnp.int32, name
            assert np.all(np.asarray(count) >= 0), name


def test_signals_match_their_spec(env_id):
    env = _env(env_id)
    _, steps = _eager_rollout(env_id)
    spec = signal_spec(env)
    assert signal_keys(env) == tuple(spec)
    for s in steps:
        signals = s["info"]["signals"]
        assert tuple(sorted(signals)) == tuple(spec)
        for name, value in signals.items():
            assert (value.shape, value.dtype) == (spec[name].shape, spec[name].dtype), name


def test_truncated_exactly_at_max_steps(env_id):
    """truncated iff the step reached max_steps (t counts steps since the last reset)."""
    _, steps = _eager_rollout(env_id)
    for s in steps:
        assert bool(s["truncated"]) == (int(s["info"]["final_state"].t) == MAX_STEPS)


def test_terminated_stays_true_until_the_episode_ends(env_id):
    """terminated[i] never returns to False within an environment episode."""
    env = _env(env_id)
    _, steps = _eager_rollout(env_id)
    previous = np.zeros(env.num_agents, bool)
    for s in steps:
        terminated = np.asarray(s["terminated"])
        assert np.all(terminated[previous]), (previous, terminated)
        done = bool(episode_done(s["terminated"], s["truncated"]))
        assert done == (terminated.all() or bool(s["truncated"]))
        previous = np.zeros_like(previous) if done else terminated


def test_action_mask(env_id):
    """bool[N, num_actions]; at least the agent's own range allows something, and nothing
    beyond it is allowed."""
    env = _env(env_id)
    (_, state), steps = _eager_rollout(env_id)
    limits = num_actions_per_agent(env)
    for st in [state] + [s["state"] for s in steps]:
        mask = np.asarray(env.action_mask(st))
        assert mask.shape == (env.num_agents, env.num_actions) and mask.dtype == bool
        assert mask.any(axis=1).all()
        assert not np.any(mask & (np.arange(env.num_actions)[None] >= limits[:, None]))
        assert np.array_equal(np.asarray(AutoReset(env).action_mask(st)), mask)


def test_autoreset_starts_new_episode_and_keeps_final_state(env_id):
    """t restarts at 0 when the episode ends (all agents terminated, or truncated);
    final_state is the plain step's state (before reset)."""
    env = _env(env_id)
    _, keys, actions = _inputs(env_id)
    _, steps = _eager_rollout(env_id)
    for t, s in enumerate(steps):
        # The two halves of the step's key, or the key itself for both when one piece is
        # declared deterministic (core.py, "Keys").
        if env.stochastic_step and env.stochastic_reset:
            key_step, key_reset = jax.random.split(keys[t])
        else:
            key_step = key_reset = keys[t]
        plain_state = env.step_state(key_step, s["prev"], actions[t])[0]
        final = s["info"]["final_state"]
        assert _tree_equal(final, plain_state), t
        assert int(final.t) == int(s["prev"].t) + 1
        if episode_done(s["terminated"], s["truncated"]):
            assert int(s["state"].t) == 0
            assert _tree_equal(s["state"], env.reset_state(key_reset))
            assert _tree_equal(s["obs"], env.observe(s["state"]))
        else:
            assert _tree_equal(s["state"], final)
            assert int(s["state"].t) == int(s["prev"].t) + 1


def test_jitted_scan_matches_eager_loop(env_id):
    """Same key, same trajectory: a jitted lax.scan and a Python loop of unjitted steps."""
    auto = AutoReset(_env(env_id))
    key_reset, keys, actions = _inputs(env_id)
    (obs0, state0), steps = _eager_rollout(env_id)

    @jax.jit
    def rollout(key_reset, keys, actions):
        obs, state = auto.reset(key_reset)

        def body(state, xs):
            key, action = xs
            obs, state, reward, terminated, truncated, info = auto.step(key, state, action)
            return state, (obs, state, reward, terminated, truncated, info["events"])

        return (obs, state), jax.lax.scan(body, state, (keys, actions))[1]

    (obs, state), (obs_t, state_t, reward, terminated, truncated, events) = rollout(
        key_reset, keys, actions)
    assert _tree_equal((obs, state), (obs0, state0))

    def stack(name):
        return jax.tree.map(lambda *xs: jnp.stack(xs), *[s[name] for s in steps])

    assert _tree_equal(obs_t, stack("obs"))
    assert _tree_equal(state_t, stack("state"))
    assert _tree_equal(reward, stack("reward"))
    assert _tree_equal((terminated, truncated), (stack("terminated"), stack("truncated")))
    assert _tree_equal(events, jax.tree.map(lambda *xs: jnp.stack(xs),
                                            *[s["info"]["events"] for s in steps]))


def reads_first_argument(fn, *args) -> bool:
    """Whether the traced program of ``fn(*args)`` reads its first argument: a backward
    pass over the jaxpr's equations marks every input of an equation whose outputs are
    read (or that has effects); a nested call counts as reading all of its inputs."""
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    live = {v for v in jaxpr.outvars if isinstance(v, jax.extend.core.Var)}
    for eqn in reversed(jaxpr.eqns):
        if eqn.effects or any(v in live for v in eqn.outvars):
            live.update(v for v in eqn.invars if isinstance(v, jax.extend.core.Var))
    return jaxpr.invars[0] in live


def test_reads_first_argument_sees_a_key_read_and_ignores_a_dead_split():
    key = jax.random.PRNGKey(0)
    assert reads_first_argument(lambda k, x: x + jax.random.uniform(k), key, 1.0)
    assert not reads_first_argument(lambda k, x: (jax.random.split(k), x)[1] + 1.0, key, 1.0)


def test_deterministic_pieces_do_not_read_their_key(env_id):
    """``stochastic_reset`` / ``stochastic_step`` False promise that the piece never reads
    its key (AutoReset then hands that key to the other piece unsplit)."""
    env = _env(env_id)
    key = jax.random.PRNGKey(0)
    state = env.reset_state(key)
    actions = jnp.zeros(env.num_agents, jnp.int32)
    for wrapped in (env, AutoReset(env)):
        if not wrapped.stochastic_reset:
            assert not reads_first_argument(wrapped.reset_state, key)
        if not wrapped.stochastic_step:
            assert not reads_first_argument(wrapped.step_state, key, state, actions)


def test_render_is_rgb_uint8(env_id):
    env = _env(env_id)
    (_, state), steps = _eager_rollout(env_id)
    for s in (state, steps[-1]["state"]):
        image = env.render(s)
        assert image.dtype == jnp.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.shape[0] > 0 and image.shape[1] > 0
        assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 1


@pytest.mark.parametrize("bad", ["short", "long", "matrix", "float", "bool"])
def test_bad_actions_fail_at_trace_time(env_id, bad):
    env = _env(env_id)
    (_, state), _ = _eager_rollout(env_id)
    n = env.num_agents
    actions = {"short": jnp.zeros(n - 1, jnp.int32), "long": jnp.zeros(n + 1, jnp.int32),
               "matrix": jnp.zeros((n, 1), jnp.int32), "float": jnp.zeros(n, jnp.float32),
               "bool": jnp.zeros(n, jnp.bool_)}[bad]
    match = "shape" if bad in ("short", "long", "matrix") else "integers"
    with pytest.raises(ValueError, match=match):
        jax.jit(env.step).trace(jax.random.key(0), state, actions)


def test_out_of_range_actions_raise_eagerly_and_clip_under_jit(env_id):
    """Concrete out-of-range actions: ValueError naming the range. Traced: clipped, so the
    step equals the step with the nearest valid action (one vmapped compilation)."""
    env = _env(env_id)
    (_, state), _ = _eager_rollout(env_id)
    limits = num_actions_per_agent(env)
    i = env.num_agents - 1
    rows = []
    for bad_value, nearest in ((-1, 0), (limits[i] + 3, limits[i] - 1), (99, limits[i] - 1)):
        bad = np.zeros(env.num_agents, np.int32)
        bad[i] = bad_value
        with pytest.raises(ValueError, match=rf"agent {i} \(\w+\) got {bad_value}, "
                                             rf"valid 0 … {limits[i] - 1}"):
            env.step(jax.random.key(1), state, jnp.asarray(bad))
        clipped = bad.copy()
        clipped[i] = nearest
        rows += [bad, clipped]
    step = jax.jit(jax.vmap(env.step_state, in_axes=(None, None, 0)))
    out = step(jax.random.key(1), state, jnp.asarray(np.stack(rows)))
    for k in range(0, len(rows), 2):
        assert _tree_equal(jax.tree.map(lambda x, k=k: x[k], out),
                           jax.tree.map(lambda x, k=k: x[k + 1], out)), rows[k]


def test_state_of_another_environment_is_rejected(env_id):
    """A state of another game or another number of agents fails at trace time."""
    env = _env(env_id)
    actions = jnp.zeros(env.num_agents, jnp.int32)
    own = jax.eval_shape(env.reset_state, jax.random.key(0))
    for other_id in ENV_IDS + list(TEST_ENVS):
        other = jax.eval_shape(_env(other_id).reset_state, jax.random.key(0))
        if other_id == env_id or _tree_equal(_spec(other), _spec(own)):
            continue  # presets of one game (ipd, stag-hunt) share their state's layout
        with pytest.raises(ValueError, match=rf"{env_id}: (the )?state"):
            jax.jit(env.step).trace(jax.random.key(0), other, actions)
    if (env_id in ENV_IDS and env.num_agents > 1
            and "num_agents" in env_parameters(env_id)):
        try:
            fewer = prosocial.make(env_id, num_agents=env.num_agents - 1, max_steps=MAX_STEPS)
        except ValueError as err:  # a game for a fixed number of players (Coins: 2)
            assert f"num_agents must be {env.num_agents}" in str(err)
        else:
            small = jax.eval_shape(fewer.reset_state, jax.random.key(0))
            with pytest.raises(ValueError, match=rf"num_agents={env.num_agents}"):
                jax.jit(env.step).trace(jax.random.key(0), small, actions)
    batched = jax.eval_shape(jax.vmap(env.reset_state), jax.random.split(jax.random.key(0), 2))
    with pytest.raises(ValueError, match="batch axis"):
        jax.jit(AutoReset(env).step).trace(jax.random.key(0), batched, actions)


def test_unknown_env_id_lists_known_ids():
    with pytest.raises(ValueError, match="unknown env id 'harvset'") as err:
        prosocial.make("harvset")
    for known in ENV_IDS:
        assert known in str(err.value)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_unknown_kwargs_rejected(env_id):
    with pytest.raises(ValueError, match="num_agentz"):
        prosocial.make(env_id, num_agentz=3)


# ---------------------------------------------------------------------- the two-role env
def test_two_roles_helpers():
    env = _env("two_roles")
    assert env.roles == {"workers": (0, 1), "planner": (2,)}
    assert agent_roles(env) == ("workers", "workers", "planner")
    assert num_actions_per_agent(env).tolist() == [3, 3, 5] and env.num_actions == 5
    wrapped = AutoReset(env)
    assert wrapped.roles == env.roles and wrapped.num_actions == 5
    assert wrapped.action_spaces == env.action_spaces
    split = split_roles(env, {"r": jnp.array([1.0, 2.0, 3.0])})
    assert split["workers"]["r"].tolist() == [1.0, 2.0] and split["planner"]["r"].tolist() == [3.0]
    assert event_keys(env) == ("work",)
    assert signal_keys(env) == ("energy", "energy_gap")
    spec = signal_spec(env)
    assert spec["energy"].shape == (3,) and spec["energy_gap"].shape == (3, 3)
    assert not hasattr(env, "observation_space")  # several roles: no single space


def test_two_roles_trajectory_and_per_agent_termination():
    """The hand-computed trajectory of tests/two_roles_env.py, then AutoReset's reset once
    every agent terminated (before max_steps)."""
    env = TwoRoles(max_steps=10)
    auto = AutoReset(env)
    state = env.reset_state(jax.random.key(0))
    mask0 = np.asarray(env.action_mask(state))
    assert mask0.tolist() == [[True, True, True, False, False]] * 2 + [
        [True, False, False, False, False]]
    expected = [  # level, energy, reward, terminated, signals["energy"]
        (0, [1, 2], [0, 0, 0], [False, False, False], [1, 2, 0]),
        (1, [0, 2], [0, 0, 0], [True, False, False], [0, 2, 0]),
        (1, [0, 1], [0, 1, 1], [True, False, False], [0, 1, 0]),
        (1, [0, 0], [0, 1, 1], [True, True, True], [0, 0, 0]),
    ]
    actions = [[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]]
    for t, (a, (level, energy, reward, terminated, sig)) in enumerate(
            zip(actions, expected, strict=True)):
        obs, state, r, term, trunc, info = auto.step(jax.random.key(t), state, jnp.array(a))
        final = info["final_state"]
        assert int(final.level) == level and final.energy.tolist() == energy, t
        assert r.tolist() == reward and term.tolist() == terminated and not bool(trunc), t
        assert info["signals"]["energy"].tolist() == sig, t
        gap = np.abs(np.subtract.outer(sig, sig))
        assert np.array_equal(info["signals"]["energy_gap"], gap), t
        assert info["events"]["work"].tolist() == [
            int(a[i] == 1 and (t == 0 or expected[t - 1][1][i] > 0)) for i in range(2)] + [0]
        if t < 3:
            assert _tree_equal(state, final)
            assert int(state.t) == t + 1
            # The planner may choose levels up to t: the mask grows with the step count.
            assert np.asarray(env.action_mask(state))[2].tolist() == [
                k <= t + 1 for k in range(5)]
    # All three terminated at step 4: the returned state is a fresh episode.
    assert int(state.t) == 0 and state.energy.tolist() == [2, 3]
    by_role = role_observations(env, obs)
    assert by_role["workers"]["energy"].tolist() == [2, 3]
    assert by_role["planner"]["energies"].tolist() == [[2, 3]]


def test_autoreset_waits_for_every_agent():
    """One agent terminated is not the end of the environment episode."""
    env = TwoRoles(max_steps=10)
    auto = AutoReset(env)
    state = env.reset_state(jax.random.key(0))
    for t in range(2):  # worker 0 works twice: terminated from step 2 on
        _, state, _, term, trunc, _ = auto.step(jax.random.key(t), state, jnp.array([1, 0, 0]))
    assert term.tolist() == [True, False, False] and not bool(trunc)
    assert int(state.t) == 2 and state.energy.tolist() == [0, 3]  # no reset
    _, state, _, term, _, _ = auto.step(jax.random.key(2), state, jnp.array([1, 0, 0]))
    assert term.tolist() == [True, False, False] and state.energy.tolist() == [0, 3]


def test_scalar_terminated_is_rejected_with_a_migration_message():
    """terminated used to be a scalar; an environment still returning one fails clearly."""

    class OldStyle(TwoRoles):
        env_id = "old_style"

        def step_state(self, key, state, actions):
            state, reward, terminated, truncated, info = super().step_state(key, state, actions)
            return state, reward, jnp.all(terminated), truncated, info

    env = OldStyle()
    state = jax.eval_shape(env.reset_state, jax.random.key(0))
    for wrapped in (env, AutoReset(env)):
        assert wrapped.env_id == "old_style"
        with pytest.raises(ValueError, match=r"old_style: step_state must return terminated "
                                             r"bool\[N\] .*N=3.*got shapes \(\) and \(\)"):
            jax.jit(wrapped.step).trace(jax.random.key(0), state, jnp.zeros(3, jnp.int32))
