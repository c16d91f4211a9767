"""Conformance of every registered environment to the contract of prosocial/envs/core.py.

One short eager rollout per environment (AutoReset over a MAX_STEPS-step episode, STEPS
steps, so it crosses two truncations) feeds most tests; the jitted lax.scan of the same
rollout is compiled once per environment. Eager first steps and that one compilation are
the cost of this module.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import prosocial
from prosocial.envs.core import AutoReset
from prosocial.envs.spaces import Dict, Discrete

ENV_IDS = prosocial.list_envs()
MAX_STEPS = 5
STEPS = 12  # truncations after steps 5 and 10


def _tree_equal(a, b) -> bool:
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    return tree_a == tree_b and all(
        np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(x, y)
        for x, y in zip(leaves_a, leaves_b, strict=True))


def _agent_slice(obs: dict, i: int) -> dict:
    return {k: np.asarray(v)[i] for k, v in obs.items()}


@functools.cache
def _env(env_id: str):
    return prosocial.make(env_id, max_steps=MAX_STEPS)


@functools.cache
def _inputs(env_id: str):
    """Reset key, per-step keys int32 actions[STEPS, N]."""
    env = _env(env_id)
    key_reset, key_steps, key_actions = jax.random.split(jax.random.key(42), 3)
    actions = jax.random.randint(key_actions, (STEPS, env.num_agents), 0, env.num_actions,
                                 dtype=jnp.int32)
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


@pytest.fixture(params=ENV_IDS)
def env_id(request):
    return request.param


def test_attributes_and_spaces(env_id):
    env = _env(env_id)
    assert env.env_id == env_id
    assert env.max_steps == MAX_STEPS
    assert isinstance(env.num_agents, int) and env.num_agents >= 1
    assert isinstance(env.action_space, Discrete)
    assert env.num_actions == env.action_space.n >= 2
    assert isinstance(env.observation_space, Dict)
    assert env.action_space.contains(np.int32(env.num_actions - 1))
    assert not env.action_space.contains(np.int32(env.num_actions))


def test_observations_match_space(env_id):
    env = _env(env_id)
    (obs, _), steps = _eager_rollout(env_id)
    for o in [obs] + [s["obs"] for s in steps]:
        assert set(o) == set(env.observation_space.spaces)
        for k, v in o.items():
            assert v.shape == (env.num_agents, *env.observation_space.spaces[k].shape), k
        for i in range(env.num_agents):
            assert env.observation_space.contains(_agent_slice(o, i)), (i, o)


def test_step_outputs_shapes_and_dtypes(env_id):
    env = _env(env_id)
    _, steps = _eager_rollout(env_id)
    n = env.num_agents
    for s in steps:
        assert s["reward"].shape == (n,) and s["reward"].dtype == jnp.float32
        for flag in (s["terminated"], s["truncated"]):
            assert flag.shape == () and flag.dtype == jnp.bool_
        events = s["info"]["events"]
        assert isinstance(events, dict) and events
        for name, count in events.items():
            assert count.shape == (n,) and count.dtype == jnp.int32, name
            assert np.all(np.asarray(count) >= 0), name


def test_truncated_exactly_at_max_steps(env_id):
    _, steps = _eager_rollout(env_id)
    truncated = [bool(s["truncated"]) for s in steps]
    assert truncated == [(t + 1) % MAX_STEPS == 0 for t in range(STEPS)]
    assert not any(bool(s["terminated"]) for s in steps)


def test_autoreset_starts_new_episode_and_keeps_final_state(env_id):
    """t restarts at 0 after truncation; final_state is the plain step's state (before reset)."""
    env = _env(env_id)
    _, keys, actions = _inputs(env_id)
    _, steps = _eager_rollout(env_id)
    for t, s in enumerate(steps):
        key_step, key_reset = jax.random.split(keys[t])
        plain_state = env.step_state(key_step, s["prev"], actions[t])[0]
        final = s["info"]["final_state"]
        assert _tree_equal(final, plain_state), t
        assert int(final.t) == t % MAX_STEPS + 1
        if s["truncated"]:
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


def test_unknown_env_id_lists_known_ids():
    with pytest.raises(ValueError, match="unknown env id 'harvset'") as err:
        prosocial.make("harvset")
    for known in ENV_IDS:
        assert known in str(err.value)


def test_unknown_kwargs_rejected(env_id):
    with pytest.raises(ValueError, match="num_agentz"):
        prosocial.make(env_id, num_agentz=3)
