"""Random agents in Harvest and Cleanup: an episode GIF per game and the env's speed.

The agents are a :class:`~prosocial.learners.population.UniformRandom` population acting
through the same path as training and evaluation (``prosocial.learners.rollout``), which
records the frames.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from prosocial.bench import measure
from prosocial.envs.registry import make
from prosocial.experiments.evaluate import run_episodes
from prosocial.io import write_gif
from prosocial.layout import Layout
from prosocial.learners.population import Population, UniformRandom


def random_population(env) -> Population:
    """Every agent of ``env`` acting uniformly at random (no parameters, learns nothing)."""
    layout = Layout(1, env.num_agents, tuple(range(env.num_agents)), False)
    return Population("random", layout, UniformRandom(env.num_actions), trainable=False)


def random_episode_frames(env_id: str, num_agents: int, steps: int, seed: int) -> np.ndarray:
    """uint8[steps + 1, H, W, 3]: renders of one episode of uniformly random actions (the
    reset state, then the state each step reached)."""
    env = make(env_id, num_agents=num_agents)
    _, frames = run_episodes(env, (random_population(env),), ((),), jax.random.PRNGKey(seed),
                             1, num_steps=steps, record=True)
    return frames


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
        speed = measure(env_id, num_agents, num_envs, num_steps=50, repeats=3, modes=("full",))
        results[env_id] = {"gif": str(path), **speed}
        print(f"{env_id}: {steps}-step random episode → {path}; "
              f"{speed['env_steps_per_s']:,.0f} env steps/s with {num_envs} parallel envs "
              f"(compile {speed['compile_s']:.1f} s)", flush=True)
    return results
