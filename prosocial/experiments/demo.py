"""Random agents in Harvest and Cleanup: an episode GIF per game and the env's speed."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from prosocial.bench import measure
from prosocial.envs.registry import make
from prosocial.io import write_gif


def random_episode_frames(env_id: str, num_agents: int, steps: int, seed: int) -> np.ndarray:
    """uint8[steps + 1, H, W, 3]: renders of one episode of uniformly random actions."""
    env = make(env_id, num_agents=num_agents)

    def one_step(carry, key):
        state = carry
        key_act, key_step = jax.random.split(key)
        actions = jax.random.randint(key_act, (env.num_agents,), 0, env.num_actions)
        state, *_ = env.step_state(key_step, state, actions)
        return state, env.render(state)

    @jax.jit
    def run(key):
        key_reset, key_steps = jax.random.split(key)
        state = env.reset_state(key_reset)
        _, frames = jax.lax.scan(one_step, state, jax.random.split(key_steps, steps))
        return env.render(state)[None], frames

    first, rest = run(jax.random.PRNGKey(seed))
    return np.concatenate([np.asarray(first), np.asarray(rest)])


def check_demo_args(out: Path, num_agents: int, steps: int,
                    envs=("harvest", "cleanup")) -> None:
    """ValueError (one line, naming the flag) for arguments the demo cannot run with;
    nothing is written."""
    if steps < 1:
        raise ValueError(f"--steps must be a positive integer, got {steps}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    for env_id in envs:
        try:
            make(env_id, num_agents=num_agents)
        except ValueError as e:
            raise ValueError(f"--num-agents {num_agents}: {e}") from None


def run_demo(out: Path, envs=("harvest", "cleanup"), num_agents: int = 5, steps: int = 200,
             seed: int = 0, num_envs: int = 512) -> dict[str, dict]:
    """Write ``out/<env>_random.gif`` for each game and print its env steps/s."""
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for env_id in envs:
        frames = random_episode_frames(env_id, num_agents, steps, seed)
        path = write_gif(frames, out / f"{env_id}_random.gif", fps=10, scale=8)
        speed = measure(env_id, num_agents, num_envs, num_steps=50, repeats=3)
        results[env_id] = {"gif": str(path), **speed}
        print(f"{env_id}: {steps}-step random episode → {path}; "
              f"{speed['env_steps_per_s']:,.0f} env steps/s with {num_envs} parallel envs "
              f"(compile {speed['compile_s']:.1f} s)", flush=True)
    return results
