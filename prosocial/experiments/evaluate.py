"""Running trained policies: evaluation episodes, their metrics and GIFs.

Used at the end of training (``episode.gif``) and by ``prosocial eval``. Policies are one
seed's parameter sets stacked on the agent axis ``[N, ...]``; K episodes run in parallel,
each from its own reset, for the environment's full episode length (or ``num_steps``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from prosocial import metrics as M
from prosocial import nets
from prosocial.envs.core import Env, event_keys


def run_episodes(env: Env, net_cfg: nets.NetConfig, params: Any, key: jax.Array,
                 num_episodes: int, greedy: bool = False, num_steps: int | None = None,
                 record: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Run ``num_episodes`` episodes of ``num_steps`` steps (default: ``env.max_steps``).

    Returns the per-episode §10 metrics ``{name: [K] or [K, N]}`` and, with ``record``,
    the rendered frames of the first episode ``uint8[T + 1, H, W, 3]``.
    """
    steps = int(num_steps or env.max_steps)
    n = env.num_agents
    first = jax.tree.leaves(params)[0].shape[0]
    if first != n:
        raise ValueError(f"the policy has {first} agents' parameters, the environment "
                         f"{n} agents")
    fn = _episode_fn(env, net_cfg, num_episodes, steps, greedy, record)
    totals, frames = fn(params, key)
    out = jax.device_get(jax.vmap(M.episode_metrics)(totals))
    return {k: np.asarray(v) for k, v in out.items()}, (np.asarray(frames) if record else None)


def _episode_fn(env, net_cfg, k, steps, greedy, record):
    names = event_keys(env)

    def run(params, key):
        k_reset, k_run = jax.random.split(key)
        obs, state = jax.vmap(env.reset)(jax.random.split(k_reset, k))
        acc = jax.vmap(lambda _: M.accumulator_init(env.num_agents, names))(jnp.zeros(k))
        carry = nets.initial_carry(net_cfg, (env.num_agents, k))

        def body(c, key):
            obs, state, carry, acc = c
            k_act, k_env = jax.random.split(key)
            obs_p = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), obs)  # [N, K, ...]
            logits, _, carry = nets.step(net_cfg, params, obs_p, carry,
                                         jnp.zeros((env.num_agents, k), bool))
            if greedy:
                action = jnp.argmax(logits, axis=-1)
            else:
                action = jax.random.categorical(k_act, logits)
            action = jnp.swapaxes(action, 0, 1).astype(jnp.int32)  # [K, N]
            obs, state, reward, term, trunc, info = jax.vmap(env.step)(
                jax.random.split(k_env, k), state, action)
            events = info.get("events", {})
            acc, _ = jax.vmap(M.accumulator_step)(
                acc, reward, {e: events[e] for e in names}, jnp.zeros(k, bool))
            frame = env.render(jax.tree.map(lambda x: x[0], state)) if record else None
            return (obs, state, carry, acc), frame

        first = env.render(jax.tree.map(lambda x: x[0], state)) if record else None
        (_, _, _, acc), frames = jax.lax.scan(body, (obs, state, carry, acc),
                                              jax.random.split(k_run, steps))
        if record:
            frames = jnp.concatenate([first[None], frames])
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
