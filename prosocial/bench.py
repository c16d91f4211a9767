"""Environment throughput: env steps per second for batches of parallel environments.

One timed call runs ``num_steps`` steps of ``num_envs`` environments with random actions,
as one jitted ``lax.scan`` over a ``vmap``-ed step that generates every observation (so the
observations cannot be optimised away, their checksum is part of the output). Compile time
is measured separately, throughput is the median of ``repeats`` timed calls.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from prosocial.envs.core import AutoReset
from prosocial.envs.registry import list_envs, make


def make_rollout(env, num_envs: int, num_steps: int):
    env = AutoReset(env)

    def one_step(carry, _):
        key, state, checksum = carry
        key, key_act, key_step = jax.random.split(key, 3)
        actions = jax.random.randint(key_act, (num_envs, env.num_agents), 0, env.num_actions)
        obs, state, reward, *_ = jax.vmap(env.step)(
            jax.random.split(key_step, num_envs), state, actions)
        checksum = checksum + jnp.sum(obs["rgb"][..., 0, 0, :].astype(jnp.int32)) + jnp.sum(
            reward).astype(jnp.int32)
        return (key, state, checksum), None

    @jax.jit
    def rollout(key, state):
        (key, state, checksum), _ = jax.lax.scan(
            one_step, (key, state, jnp.int32(0)), None, length=num_steps)
        return state, checksum

    def init(key):
        return jax.vmap(env.reset_state)(jax.random.split(key, num_envs))

    return jax.jit(init), rollout


def measure(env_id: str, num_agents: int, num_envs: int, num_steps: int = 100,
            repeats: int = 3, seed: int = 0) -> dict:
    """Time ``repeats`` rollouts; returns compile seconds, median steps/s and peak memory."""
    env = make(env_id, num_agents=num_agents)
    init, rollout = make_rollout(env, num_envs, num_steps)
    key = jax.random.PRNGKey(seed)
    state = init(key)
    start = time.perf_counter()
    state, checksum = rollout(key, state)
    jax.block_until_ready(checksum)
    compile_s = time.perf_counter() - start
    rates = []
    for r in range(repeats):
        start = time.perf_counter()
        state, checksum = rollout(jax.random.PRNGKey(seed + r + 1), state)
        jax.block_until_ready(checksum)
        rates.append(num_envs * num_steps / (time.perf_counter() - start))
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    obs_bytes = num_envs * num_agents * sum(
        int(jnp.prod(jnp.array(s.shape or (1,)))) * jnp.dtype(s.dtype).itemsize
        for s in env.observation_space.spaces.values())
    return {
        "env": env_id, "num_agents": num_agents, "num_envs": num_envs,
        "compile_s": compile_s + 0.0, "env_steps_per_s": statistics.median(rates),
        "runs": rates, "state_plus_obs_mib": (state_bytes + obs_bytes) / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _fail(message: str) -> None:
    print(f"prosocial bench envs: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def envs_main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="prosocial bench envs",
        description="Environment steps per second (jit + vmap + scan, random actions, "
                    "full observations generated every step).")
    parser.add_argument("--env", default="all", help=f"one of {list_envs()} or 'all'")
    parser.add_argument("--num-agents", type=int, default=5)
    parser.add_argument("--num-envs", type=int, nargs="*", default=None,
                        help="parallel environments (default: 1 64 512 2048)")
    parser.add_argument("--num-steps", type=int, default=100, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (median)")
    args = parser.parse_args(argv)
    if args.env != "all" and args.env not in list_envs():
        _fail(f"--env {args.env!r} is not an environment; choose one of "
                     f"{', '.join(list_envs())} or 'all'")
    for flag, values in (("--num-agents", [args.num_agents]), ("--num-envs", args.num_envs or []),
                         ("--num-steps", [args.num_steps]), ("--repeats", [args.repeats])):
        bad = [v for v in values if v < 1]
        if bad:
            _fail(f"{flag} must be a positive integer, got {bad[0]}")
    envs = list_envs() if args.env == "all" else [args.env]
    for env_id in envs:
        try:
            make(env_id, num_agents=args.num_agents)
        except ValueError as e:
            _fail(f"--num-agents {args.num_agents}: {e}")
    sizes = args.num_envs or [1, 64, 512, 2048]
    print(f"{'env':<8} {'N':>5} {'compile s':>10} {'steps/s (median)':>17} "
          f"{'state+obs MiB':>14} {'peak RSS MiB':>13}")
    for env_id in envs:
        for n in sizes:
            r = measure(env_id, args.num_agents, n, args.num_steps, args.repeats)
            print(f"{env_id:<8} {n:>5} {r['compile_s']:>10.2f} {r['env_steps_per_s']:>17,.0f} "
                  f"{r['state_plus_obs_mib']:>14.1f} {r['peak_rss_mib']:>13.0f}", flush=True)
    print(f"env_steps_per_s={r['env_steps_per_s']:.0f}")
