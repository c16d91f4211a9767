"""A training run from its config to a finished run directory.

``train(cfg, out)`` writes to ``out``: ``config.json`` (resolved config, git commit,
package versions), ``metrics.csv`` and TensorBoard events (one row per iteration and seed),
``checkpoints/<iteration>/`` (every ``checkpoint_every`` iterations and at the end),
``learning_curves.png`` (seed bands) and ``episode.gif`` (an evaluation episode of seed
0's agents). ``train(cfg, out, resume=True)`` continues from the last checkpoint: the
metrics rows written after it are dropped and the run goes on with the same random keys,
so an interrupted and resumed run ends exactly like an uninterrupted one. SIGINT (Ctrl-C)
finishes the current iteration, saves a checkpoint and returns.
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import jax
import numpy as np

from prosocial.envs.registry import make
from prosocial.experiments.config import TrainConfig, to_dict
from prosocial.experiments.evaluate import run_episodes, seed_params, write_episode_gif
from prosocial.io import (
    Checkpointer,
    MetricsLogger,
    TrainingProgress,
    create_run_dir,
    plot_learning_curves,
)
from prosocial.layout import Layout
from prosocial.learners.population import ActorCritic, Population
from prosocial.learners.ppo import PPO
from prosocial.learners.runner import Runner

# Config keys that may change when a run is resumed (a longer budget, a different cadence).
MUTABLE_ON_RESUME = ("total_steps", "checkpoint_every", "keep_checkpoints", "gif_steps")
PLOTTED = ("collective_return", "returns", "intrinsic_return", "equality",
           "sustainability_time", "peace", "moa_accuracy")


def update_rule(name: str, cfg: TrainConfig):
    """The update rule called ``name`` with its settings from ``cfg``."""
    if name == "a2c":
        from prosocial.learners.a2c import A2C

        return A2C(cfg.a2c)
    return PPO(cfg.ppo)


def populations(cfg: TrainConfig, env) -> tuple[Population, ...]:
    """The config's populations (``TrainConfig.population_specs``) for ``env``."""
    out = []
    for spec in cfg.population_specs():
        layout = Layout(cfg.num_seeds, env.num_agents, spec.agents, spec.shared)
        policy = ActorCritic(cfg.net, env.observation_space, env.num_actions)
        out.append(Population(spec.name, layout, policy, update_rule(spec.learner, cfg),
                              cfg.motive.build(), spec.trainable))
    return tuple(out)


def build(cfg: TrainConfig) -> Runner:
    """The environment, populations and runner of a config (nothing compiled yet)."""
    env = make(cfg.env, **cfg.env_kwargs())
    return Runner(env, populations(cfg, env), cfg.num_seeds, cfg.num_envs, cfg.num_steps)


def train(cfg: TrainConfig, out: str | Path, resume: bool = False,
          progress: bool | None = None, max_iterations: int | None = None) -> Path:
    """Train ``cfg`` into the run directory ``out`` (see the module docstring).

    ``max_iterations`` stops after that many iterations in this session (as an interrupt
    would; for tests and time-boxed jobs). Returns the run directory.
    """
    learner = build(cfg)
    run_dir = create_run_dir(out, to_dict(cfg), resume=resume,
                             mutable_on_resume=MUTABLE_ON_RESUME)
    print(f"run directory: {run_dir}")
    state = learner.init(jax.random.PRNGKey(cfg.seed))
    with Checkpointer(run_dir, max_to_keep=cfg.keep_checkpoints) as ckpt:
        start = None
        if resume and ckpt.latest_step() is not None:
            state, _ = ckpt.restore(target=state)
            start = int(state.update)
            print(f"resuming from iteration {start} ({int(state.env_steps)} env steps)")
        logger = MetricsLogger(run_dir, cfg.num_seeds, resume_from_update=start)
        stop = _StopFlag()
        saved_at = start
        with logger, stop, TrainingProgress(cfg.num_iterations * cfg.steps_per_iteration,
                                            int(state.env_steps), disable=_disable(progress)
                                            ) as bar:
            done_here = 0
            while int(state.update) < cfg.num_iterations:
                t0 = time.perf_counter()
                state, metrics = learner.iteration(state)
                metrics = jax.device_get(metrics)
                sps = cfg.steps_per_iteration / (time.perf_counter() - t0)
                update, env_steps = int(state.update), int(state.env_steps)
                metrics["sps"] = np.full(cfg.num_seeds, sps)
                logger.log(update, env_steps, metrics)
                bar.update(env_steps, float(np.nanmean(metrics["collective_return"])),
                           sps=f"{sps:,.0f}")
                done_here += 1
                last = update >= cfg.num_iterations
                interrupted = stop.requested or (max_iterations is not None
                                                 and done_here >= max_iterations)
                if update % cfg.checkpoint_every == 0 or last or interrupted:
                    ckpt.save(update, state, {"env_steps": env_steps})
                    saved_at = update
                if interrupted:
                    break
        ckpt.wait()
    if stop.requested:
        print(f"interrupted: checkpoint saved at iteration {saved_at}; continue with "
              f"`prosocial train --resume {run_dir}`")
        return run_dir
    _finish(cfg, learner, state, run_dir)
    return run_dir


def _finish(cfg: TrainConfig, learner: Runner, state, run_dir: Path) -> None:
    """Learning-curve plot and an evaluation GIF (also after a partial session)."""
    with contextlib.suppress(ValueError):  # nothing to plot before an episode ended
        plot_learning_curves(run_dir, run_dir / "learning_curves.png", ys=_plotted(run_dir),
                             title=f"{cfg.env}, {cfg.num_agents} agents")
        print(f"learning curves: {run_dir / 'learning_curves.png'}")
    if cfg.gif_steps:
        params = seed_params(learner.populations, state, 0)
        _, frames = run_episodes(learner.env.env, learner.populations, params,
                                 jax.random.PRNGKey(cfg.seed + 1), 1,
                                 num_steps=min(cfg.gif_steps, cfg.max_steps), record=True)
        path = write_episode_gif(frames, run_dir / "episode.gif")
        print(f"evaluation episode: {path}")


def _plotted(run_dir: Path) -> tuple[str, ...]:
    from prosocial.io import read_metrics

    names = set(read_metrics(run_dir))
    return tuple(y for y in PLOTTED if y in names or f"{y}_0" in names)


def _disable(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


class _StopFlag(contextlib.AbstractContextManager):
    """The first SIGINT asks the loop to stop after the current iteration; a second one
    interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nSIGINT: finishing this iteration, then saving a checkpoint "
              "(press Ctrl-C again to abort without saving)", flush=True)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
