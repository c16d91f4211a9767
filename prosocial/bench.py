"""Environment throughput: env steps per second for batches of parallel environments.

One timed call runs ``num_steps`` steps of ``num_envs`` environments (wrapped in
``AutoReset``) with random actions, as one jitted ``lax.scan`` over a ``vmap``-ed step.
Throughput is the median of ``repeats`` timed calls, compile time is measured separately.
Two variants of what the rollout returns, so that XLA cannot drop work it does not need:

- ``full``: a checksum of *every* element of every observation leaf (integer leaves summed
  as int32, float leaves as float32, accumulated through the scan), so each agent's whole
  view is built on every step: the honest number for a learner, which reads every
  observation.
- ``pixel``: the older variant, a checksum of at most three elements per agent of each
  leaf (the RGB view's top-left pixel); XLA may then skip most of the view gathering, so it
  measures the dynamics more than the observations.

``prosocial bench envs`` and ``benchmarks/env_sps.py`` both print the table of
:func:`envs_main`; its last line is ``env_steps_per_s=<number>``, the first variant's
throughput of the last configuration measured.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from prosocial.envs.core import AutoReset, num_actions_per_agent
from prosocial.envs.registry import env_parameters, list_envs, make

MODES = ("full", "pixel")


def make_for_bench(env_id: str, num_agents: int | None):
    """The environment with ``num_agents`` agents where the game has that parameter; games
    with a fixed number of players (the matrix games, the bimatrix with its planner) ignore
    ``--num-agents``."""
    if num_agents is not None and "num_agents" in env_parameters(env_id):
        return make(env_id, num_agents=num_agents)
    return make(env_id)


def observation_checksum(obs, mode: str) -> tuple[jax.Array, jax.Array]:
    """(int32, float32) sums of a batch of observations (leaves ``[E, N, ...]``): every
    element (``full``) or at most the first three elements per agent of each leaf
    (``pixel``)."""
    total_int, total_float = jnp.int32(0), jnp.float32(0)
    for leaf in jax.tree.leaves(obs):
        if mode == "pixel" and leaf.ndim > 2:
            leaf = leaf.reshape(leaf.shape[:2] + (-1,))[..., :3]
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            total_float = total_float + jnp.sum(leaf, dtype=jnp.float32)
        else:
            total_int = total_int + jnp.sum(leaf.astype(jnp.int32))
    return total_int, total_float


def random_actions(key: jax.Array, num_envs: int, limits: jax.Array) -> jax.Array:
    """Uniform actions ``int32[num_envs, N]``, agent i's below ``limits[i]``, from one 32-bit
    draw each (the modulo bias is below 2^-28 for any game here); randint's two draws per
    action cost more than a matrix game's whole step."""
    bits = jax.random.bits(key, (num_envs, limits.shape[0]), jnp.uint32)
    return (bits % limits.astype(jnp.uint32)).astype(jnp.int32)


def make_rollout(env, num_envs: int, num_steps: int, mode: str = "full"):
    """Jitted ``init(key) -> states`` and ``rollout(key, states) -> (states, checksums)``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    limits = jnp.asarray(num_actions_per_agent(env))
    env = AutoReset(env)

    def one_step(carry, _):
        key, state, sum_int, sum_float = carry
        key, key_act, key_step = jax.random.split(key, 3)
        actions = random_actions(key_act, num_envs, limits)
        obs, state, reward, *_ = jax.vmap(env.step)(
            jax.random.split(key_step, num_envs), state, actions)
        obs_int, obs_float = observation_checksum(obs, mode)
        return (key, state, sum_int + obs_int,
                sum_float + obs_float + jnp.sum(reward, dtype=jnp.float32)), None

    @jax.jit
    def rollout(key, state):
        (_, state, sum_int, sum_float), _ = jax.lax.scan(
            one_step, (key, state, jnp.int32(0), jnp.float32(0)), None, length=num_steps)
        return state, (sum_int, sum_float)

    @jax.jit
    def init(key):
        return jax.vmap(env.reset_state)(jax.random.split(key, num_envs))

    return init, rollout


def time_rollout(env, num_envs: int, num_steps: int, repeats: int, seed: int, mode: str):
    """(compile seconds, [steps/s of each timed call], final states)."""
    init, rollout = make_rollout(env, num_envs, num_steps, mode)
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
    return compile_s, rates, state


def measure(env_id: str, num_agents: int | None, num_envs: int, num_steps: int = 100,
            repeats: int = 3, seed: int = 0, modes=MODES) -> dict:
    """Per checksum mode ``{mode}_steps_per_s`` (median), ``{mode}_compile_s`` and
    ``{mode}_runs``; ``env_steps_per_s`` and ``compile_s`` of the first mode; the size of
    the states and observations and the peak memory of the process."""
    env = make_for_bench(env_id, num_agents)
    result = {"env": env_id, "num_agents": env.num_agents, "num_envs": num_envs}
    for mode in modes:
        compile_s, rates, state = time_rollout(env, num_envs, num_steps, repeats, seed, mode)
        result[f"{mode}_compile_s"] = compile_s
        result[f"{mode}_steps_per_s"] = statistics.median(rates)
        result[f"{mode}_runs"] = rates
    result["env_steps_per_s"] = result[f"{modes[0]}_steps_per_s"]
    result["compile_s"] = result[f"{modes[0]}_compile_s"]
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    obs_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(
        jax.eval_shape(jax.vmap(env.observe), state)))
    result["state_plus_obs_mib"] = (state_bytes + obs_bytes) / 2**20
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def envs_main(argv=None, prog: str = "prosocial bench envs") -> None:
    """The throughput table for the ``argv`` options (``--help``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Environment steps per second (jit + vmap + scan, random actions, "
                    "AutoReset), with a checksum of every observation element (full) and "
                    "of one pixel (pixel).")
    parser.add_argument("--env", default="all", help=f"one of {list_envs()} or 'all'")
    parser.add_argument("--num-agents", type=int, default=None,
                        help="agents per environment (default: each environment's own, e.g. "
                             "5 in Harvest, 2 in Coins and Forage)")
    parser.add_argument("--num-envs", type=int, nargs="*", default=None,
                        help="parallel environments (default: 1 64 512 2048)")
    parser.add_argument("--num-steps", type=int, default=100, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (median)")
    parser.add_argument("--mode", choices=("both",) + MODES, default="both",
                        help="which checksum variants to time (default: both)")
    args = parser.parse_args(argv)

    def fail(message: str) -> None:
        print(f"{prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    if args.env != "all" and args.env not in list_envs():
        fail(f"--env {args.env!r} is not an environment; choose one of "
             f"{', '.join(list_envs())} or 'all'")
    for flag, values in (("--num-agents", [] if args.num_agents is None else [args.num_agents]),
                         ("--num-envs", args.num_envs or []),
                         ("--num-steps", [args.num_steps]), ("--repeats", [args.repeats])):
        bad = [v for v in values if v < 1]
        if bad:
            fail(f"{flag} must be a positive integer, got {bad[0]}")
    envs = list_envs() if args.env == "all" else [args.env]
    for env_id in list(envs) if args.num_agents is not None else ():
        try:
            make_for_bench(env_id, args.num_agents)
        except ValueError as e:
            if args.env != "all":
                fail(f"--num-agents {args.num_agents}: {e}")
            # 'all' skips the games for another number of players (Coins: 2)
            print(f"skipping {env_id}: {e}", file=sys.stderr)
            envs.remove(env_id)
    if not envs:
        fail(f"no environment takes --num-agents {args.num_agents}")
    sizes = args.num_envs or [1, 64, 512, 2048]
    modes = MODES if args.mode == "both" else (args.mode,)
    head = "".join(f" {m + ' steps/s':>16} {m + ' compile s':>15}" for m in modes)
    print(f"{'env':<20} {'envs':>5}{head} {'state+obs MiB':>14} {'peak RSS MiB':>13}")
    for env_id in envs:
        for n in sizes:
            r = measure(env_id, args.num_agents, n, args.num_steps, args.repeats, modes=modes)
            cols = "".join(f" {r[f'{m}_steps_per_s']:>16,.0f} {r[f'{m}_compile_s']:>15.2f}"
                           for m in modes)
            print(f"{env_id:<20} {n:>5}{cols} {r['state_plus_obs_mib']:>14.1f} "
                  f"{r['peak_rss_mib']:>13.0f}", flush=True)
    print(f"env_steps_per_s={r['env_steps_per_s']:.0f}")
