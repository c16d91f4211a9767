"""Running trained policies: evaluation episodes, their metrics and GIFs.

Used at the end of training (``episode.gif``) and by ``prosocial eval``. Policies are the
run's populations with one seed's parameters (:func:`seed_params`); K episodes run in
parallel through the same acting path as training (``prosocial.learners.rollout``), each
from its own reset, for the environment's full episode length (or ``num_steps``).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from prosocial import metrics as M
from prosocial.envs.core import AutoReset, Env, event_keys
from prosocial.learners.rollout import init_rollout_state, make_collect


def seed_params(populations, state, seed_index: int) -> tuple:
    """One seed's parameters of every population (from a run state), each ``[n, ...]``
    (``[1, ...]`` for shared parameters)."""
    out = []
    for pop, ps in zip(populations, state.pops, strict=True):
        width = 1 if pop.layout.shared else pop.layout.n
        out.append(jax.tree.map(lambda x, w=width: x[seed_index * w:(seed_index + 1) * w],
                                ps.params))
    return tuple(out)


def run_episodes(env: Env, populations, params: tuple, key: jax.Array, num_episodes: int,
                 greedy: bool = False, num_steps: int | None = None,
                 record: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Run ``num_episodes`` episodes of ``num_steps`` steps (default: ``env.max_steps``)
    with one seed's ``params`` of ``populations`` (see :func:`seed_params`).

    Returns the per-episode §10 metrics ``{name: [K] or [K, N]}`` and, with ``record``,
    the rendered frames of the first episode ``uint8[T + 1, H, W, 3]``.
    """
    steps = int(num_steps or env.max_steps)
    pops = tuple(dataclasses.replace(p, layout=dataclasses.replace(p.layout, num_seeds=1))
                 for p in populations)
    for pop, p in zip(pops, params, strict=True):
        leaves = jax.tree.leaves(p)
        if leaves and leaves[0].shape[0] != pop.layout.num_params:
            raise ValueError(f"population {pop.name!r} has {leaves[0].shape[0]} parameter "
                             f"sets; its agents need {pop.layout.num_params}")
    fn = _episode_fn(env, pops, num_episodes, steps, greedy, record)
    totals, frames = fn(params, key)
    out = jax.device_get(jax.vmap(M.episode_metrics)(totals))
    return {k: np.asarray(v) for k, v in out.items()}, (np.asarray(frames) if record else None)


def _episode_fn(env, pops, k, steps, greedy, record):
    env = AutoReset(env)
    names = event_keys(env)
    collect = make_collect(env, pops, steps, bootstrap=(False,) * len(pops), greedy=greedy,
                           record=record)

    def run(params, key):
        k_reset, k_run = jax.random.split(key)
        rs = init_rollout_state(env, pops, 1, k, k_reset, k_run)
        first = env.render(jax.tree.map(lambda x: x[0, 0], rs.env_state)) if record else None
        out = collect(params, rs)
        rollout = out[1]
        # Totals over the whole window, one episode per environment (no resets counted).
        acc = jax.vmap(lambda _: M.accumulator_init(env.num_agents, names))(jnp.zeros(k))

        def add(acc, x):
            reward, events = x
            acc, _ = jax.vmap(M.accumulator_step)(acc, reward, events, jnp.zeros(k, bool))
            return acc, None

        acc, _ = jax.lax.scan(add, acc, (rollout.reward[:, 0],
                                         {e: rollout.events[e][:, 0] for e in names}))
        frames = jnp.concatenate([first[None], out[4]]) if record else None
        return acc, frames

    return jax.jit(run)


def metrics_table(results: dict[str, dict[str, np.ndarray]]) -> str:
    """A plain-text table: one row per scalar metric, one column per mode (mean ± std)."""
    modes = list(results)
    names = sorted(k for k, v in results[modes[0]].items() if np.ndim(v) == 1)
    width = max(len(n) for n in names)
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{m:>22}" for m in modes)]
    for name in names:
        cells = []
        for m in modes:
            v = np.asarray(results[m][name], np.float64)
            with warnings.catch_warnings():  # a metric undefined in every episode: nan ± nan
                warnings.simplefilter("ignore", RuntimeWarning)
                cells.append(f"{np.nanmean(v):>12.4g} ± {np.nanstd(v):<7.3g}")
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def write_episode_gif(frames: np.ndarray, path: str | Path, fps: float = 10.0) -> Path:
    from prosocial.io import write_gif

    return write_gif(frames, path, fps=fps)
