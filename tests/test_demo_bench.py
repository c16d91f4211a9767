"""`prosocial demo` acting through the rollout path, and the environment benchmark shared by
`prosocial bench envs` and benchmarks/env_sps.py."""

from __future__ import annotations

import runpy
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from prosocial.bench import make_rollout, measure, observation_checksum, random_actions
from prosocial.envs.core import AutoReset, num_actions_per_agent
from prosocial.envs.registry import make
from prosocial.experiments.demo import random_episode_frames

ROOT = Path(__file__).resolve().parents[1]


def test_demo_frames_come_from_the_rollout_path():
    env = make("cleanup", num_agents=3)
    frames = random_episode_frames("cleanup", 3, 12, seed=0)
    reset = np.asarray(env.render(env.reset_state(jax.random.PRNGKey(0))))
    assert frames.shape == (13,) + reset.shape and frames.dtype == np.uint8
    changed = [not np.array_equal(a, b) for a, b in zip(frames[:-1], frames[1:], strict=True)]
    assert sum(changed) >= 6, changed  # random agents move and turn
    np.testing.assert_array_equal(frames, random_episode_frames("cleanup", 3, 12, seed=0))
    assert not np.array_equal(frames, random_episode_frames("cleanup", 3, 12, seed=1))


def test_observation_checksums():
    obs = {"rgb": jnp.arange(2 * 3 * 2 * 2 * 3, dtype=jnp.uint8).reshape(2, 3, 2, 2, 3),
           "scalar": jnp.full((2, 3), 0.5, jnp.float32)}
    rgb = np.asarray(obs["rgb"], np.int64)
    assert [int(x) for x in observation_checksum(obs, "full")[:1]] == [rgb.sum()]
    assert float(observation_checksum(obs, "full")[1]) == 3.0
    # pixel: the first three elements per agent (the top-left pixel), scalars whole
    assert int(observation_checksum(obs, "pixel")[0]) == rgb[:, :, 0, 0, :].sum()
    assert float(observation_checksum(obs, "pixel")[1]) == 3.0


def test_random_actions_are_uniform_below_each_agents_limit():
    # agents with 2 and 5 actions, 20 000 draws each: every action appears with frequency
    # 1/n within 4 standard errors (√(p(1−p)/20 000) ≤ 0.0036), none at or above n
    a = np.asarray(random_actions(jax.random.PRNGKey(0), 20_000, jnp.asarray([2, 5])))
    for i, n in enumerate((2, 5)):
        freq = np.bincount(a[:, i], minlength=8) / len(a)
        assert np.all(freq[n:] == 0)
        np.testing.assert_allclose(freq[:n], 1 / n, atol=4 * 0.0036)


def test_full_rollout_checksum_reads_every_observation_element():
    env = make("harvest", num_agents=2)
    init, rollout = make_rollout(env, num_envs=3, num_steps=1, mode="full")
    key = jax.random.PRNGKey(4)
    state = init(key)
    _, (sum_int, sum_float) = rollout(key, state)
    # the same step by hand
    _, key_act, key_step = jax.random.split(key, 3)
    actions = random_actions(key_act, 3, jnp.asarray(num_actions_per_agent(env)))
    obs, _, reward, *_ = jax.vmap(AutoReset(env).step)(jax.random.split(key_step, 3), state,
                                                       actions)
    ints = sum(int(np.asarray(x, np.int64).sum()) for x in jax.tree.leaves(obs)
               if not jnp.issubdtype(x.dtype, jnp.floating))
    floats = sum(float(np.asarray(x, np.float64).sum()) for x in jax.tree.leaves(obs)
                 if jnp.issubdtype(x.dtype, jnp.floating)) + float(np.sum(reward))
    assert int(sum_int) == ints and ints > 0
    np.testing.assert_allclose(float(sum_float), floats, rtol=1e-5)


def test_measure_and_env_sps_script(capsys):
    r = measure("harvest", num_agents=2, num_envs=2, num_steps=3, repeats=2)
    for mode in ("full", "pixel"):
        assert r[f"{mode}_steps_per_s"] > 0 and r[f"{mode}_compile_s"] > 0
        assert len(r[f"{mode}_runs"]) == 2
    assert r["env_steps_per_s"] == r["full_steps_per_s"] and r["state_plus_obs_mib"] > 0
    script = runpy.run_path(str(ROOT / "benchmarks" / "env_sps.py"), run_name="env_sps")
    script["main"](["--env", "harvest", "--num-agents", "2", "--num-envs", "2",
                    "--num-steps", "3", "--repeats", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert "full steps/s" in lines[0] and "pixel steps/s" in lines[0]
    assert lines[1].split()[:2] == ["harvest", "2"]
    assert lines[-1].startswith("env_steps_per_s=") and float(lines[-1].split("=")[1]) > 0
