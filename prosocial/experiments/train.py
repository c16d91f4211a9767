"""A training run from its config to a finished run directory.

``train(cfg, out)`` writes to ``out``: ``config.json`` (resolved config, git commit,
package versions), ``metrics.csv`` and TensorBoard events (one row per iteration and seed),
``checkpoints/<iteration>/`` (every ``checkpoint_every`` iterations and at the end),
``learning_curves.png`` (seed bands) and ``episode.gif`` (an evaluation episode of seed
0's agents). ``train(cfg, out, resume=True)`` continues from the last checkpoint: the
metrics rows written after it are dropped and the run goes on with the same random keys,
so an interrupted and resumed run ends exactly like an uninterrupted one; a run killed
before its first checkpoint starts again from the beginning. SIGINT (Ctrl-C) or SIGTERM
finishes the current iteration, saves a checkpoint and raises :class:`TrainingInterrupted`.

The run directory is locked for the whole session (a second writer is refused). A loss or
any floating-point leaf of the training state that becomes NaN/inf stops the run with
:class:`NonFiniteError` before that state is logged or checkpointed. A fresh run that fails
before logging its first iteration removes what it wrote, so the same command can be rerun.

Compiled programs are kept in JAX's persistent compilation cache (``cfg.compile_cache``,
default ``~/.cache/prosocial/jax``), so that running the same config again skips most of
the compile time (:func:`use_compile_cache`).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import time
import warnings
from pathlib import Path

import jax
import numpy as np

from prosocial.envs.registry import make
from prosocial.experiments.config import PopulationSpec, TrainConfig, to_dict
from prosocial.experiments.evaluate import run_episodes, seed_params, write_episode_gif
from prosocial.io import (
    Checkpointer,
    MetricsLogger,
    TrainingProgress,
    create_run_dir,
    lock_run_dir,
    make_dir,
    plot_learning_curves,
)
from prosocial.io.rundir import LOCK_FILE
from prosocial.learners.population import Population, role_population
from prosocial.learners.ppo import PPO
from prosocial.learners.runner import Runner
from prosocial.motives.base import Motive

# Config keys that may change when a run is resumed (a longer budget, a different cadence).
MUTABLE_ON_RESUME = ("total_steps", "checkpoint_every", "keep_checkpoints", "gif_steps",
                     "compile_cache")
# Programs that compile faster than this are not written to the persistent cache.
COMPILE_CACHE_MIN_SECONDS = 0.5
PLOTTED = ("collective_return", "returns", "intrinsic_return", "equality",
           "sustainability_time", "peace", "moa_accuracy")


def update_rule(name: str, cfg: TrainConfig):
    """The update rule called ``name`` with its settings from ``cfg``."""
    if name == "a2c":
        from prosocial.learners.a2c import A2C

        return A2C(cfg.a2c)
    if name == "dqn":
        from prosocial.learners.dqn import DQN

        return DQN(cfg.dqn)
    return PPO(cfg.ppo)


def populations(cfg: TrainConfig, env) -> tuple[Population, ...]:
    """The config's populations (``TrainConfig.population_specs``) for ``env``."""
    roles = env.roles
    specs = cfg.population_specs()
    if not cfg.populations and len(roles) > 1:  # default: one population per role
        specs = tuple(PopulationSpec(role, tuple(agents), cfg.learner)
                      for role, agents in roles.items())
    out = []
    for spec in specs:
        role = next((r for r, members in roles.items() if set(spec.agents) <= set(members)),
                    None)
        if role is None:
            raise ValueError(f"population {spec.name!r}: agents {list(spec.agents)} play "
                             f"different roles of {cfg.env} ({dict(roles)}); give one "
                             "population per role")
        shaped = not cfg.motive_populations or spec.name in cfg.motive_populations
        out.append(role_population(env, role, update_rule(spec.learner, cfg), cfg.net,
                                   cfg.motive.build() if shaped else Motive(), cfg.num_seeds,
                                   spec.shared, spec.name, spec.trainable, agents=spec.agents))
    return tuple(out)


def build(cfg: TrainConfig) -> Runner:
    """The environment, populations and runner of a config (nothing compiled yet)."""
    env = make(cfg.env, **cfg.env_kwargs())
    return Runner(env, populations(cfg, env), cfg.num_seeds, cfg.num_envs, cfg.num_steps)


class NonFiniteError(FloatingPointError):
    """A loss or the training state became NaN or infinite; nothing of it was saved."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped training after saving a checkpoint.

    Attributes: ``signum`` (the signal), ``run_dir``, ``checkpoint`` (the iteration saved).
    """

    def __init__(self, signum: int, run_dir: Path, checkpoint: int | None):
        self.signum, self.run_dir, self.checkpoint = signum, run_dir, checkpoint
        super().__init__(f"{signal.Signals(signum).name}: checkpoint saved at iteration "
                         f"{checkpoint}; continue with `prosocial train --resume {run_dir}`")


def train(cfg: TrainConfig, out: str | Path, resume: bool = False,
          progress: bool | None = None, max_iterations: int | None = None) -> Path:
    """Train ``cfg`` into the run directory ``out`` (see the module docstring).

    ``max_iterations`` stops after that many iterations in this session (as an interrupt
    would; for tests and time-boxed jobs). Returns the run directory.

    Raises:
      TrainingInterrupted: SIGINT/SIGTERM stopped the run (after saving a checkpoint).
      NonFiniteError: a loss or the state became non-finite (nothing of it is saved).
      RunDirLocked: another process is writing ``out``.
      FileExistsError, ValueError: ``out`` cannot hold this run (see :func:`create_run_dir`),
        or the config does not fit in memory.
    """
    use_compile_cache(cfg.compile_cache)
    learner = build(cfg)
    run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"run directory {run_dir} exists and is not a directory")
    _check_fits_in_memory(learner, cfg)
    created = not run_dir.exists()
    make_dir(run_dir)
    with lock_run_dir(run_dir):
        # Looked at under the lock: another process may have filled it since the mkdir.
        was_empty = not any(p.name != LOCK_FILE for p in run_dir.iterdir())
        logged = []
        try:
            return _train_locked(cfg, learner, run_dir, resume, progress, max_iterations,
                                 logged)
        except BaseException:
            if was_empty and not logged:  # failed before any result: leave no trace
                _remove_new_run(run_dir, remove_dir=created)
            raise


def use_compile_cache(directory: str) -> str | None:
    """Make JAX keep compiled programs in ``directory`` (``~`` expanded, created) and reuse
    them in later processes. A cache directory the process already set (the test suite's,
    ``JAX_COMPILATION_CACHE_DIR``) is left as it is; an empty ``directory`` or one that
    cannot be created means no cache (with a warning for the latter). Returns the cache
    directory in use, or None."""
    current = jax.config.jax_compilation_cache_dir
    if current or not directory:
        return current or None
    path = Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        warnings.warn(f"compilation cache {path} cannot be created ({e.strerror or e}); "
                      "compiling without it", stacklevel=2)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", COMPILE_CACHE_MIN_SECONDS)
    # Programs compiled before in this process found no cache directory and marked the cache
    # as checked; start it afresh so that the next compilation opens the directory.
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()
    return str(path)


def _train_locked(cfg: TrainConfig, learner: Runner, run_dir: Path, resume: bool,
                  progress: bool | None, max_iterations: int | None, logged: list) -> Path:
    if resume:
        _check_budget_covers_checkpoint(cfg, run_dir)
    run_dir = create_run_dir(run_dir, to_dict(cfg), resume=resume,
                             mutable_on_resume=MUTABLE_ON_RESUME, defaults=to_dict(TrainConfig()))
    print(f"run directory: {run_dir}")
    state = learner.init(jax.random.PRNGKey(cfg.seed))
    with Checkpointer(run_dir, max_to_keep=cfg.keep_checkpoints) as ckpt:
        start = None
        if resume and ckpt.latest_step() is not None:
            state, _ = ckpt.restore(target=state)
            start = int(state.update)
            print(f"resuming from iteration {start} ({int(state.env_steps)} env steps)")
        elif resume:
            # Killed before its first checkpoint: start again, dropping the rows it logged.
            start = 0
            print("no checkpoint yet: starting the run from the beginning")
        logger = MetricsLogger(run_dir, cfg.num_seeds, resume_from_update=start)
        stop = _StopFlag()
        saved_at = ckpt.latest_step()
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
                bad = _non_finite(state, metrics)
                if bad:
                    kept = (f"the last checkpoint is iteration {saved_at}" if saved_at
                            is not None else "no checkpoint was saved")
                    raise NonFiniteError(
                        f"iteration {update}: {bad} became non-finite (NaN or inf); the run "
                        f"stopped without logging or saving it ({kept}); the learning rate "
                        "is probably too large: try a smaller --lr")
                metrics["sps"] = np.full(cfg.num_seeds, sps)
                logged.append(update)  # from here on the run directory holds results
                logger.log(update, env_steps, metrics)
                returns = np.asarray(metrics["collective_return"], np.float64)
                shown = returns[np.isfinite(returns)]  # NaN: no episode ended this time
                bar.update(env_steps, float(shown.mean()) if shown.size else math.nan,
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
        print(f"interrupted ({signal.Signals(stop.signum).name}): checkpoint saved at "
              f"iteration {saved_at}; continue with `prosocial train --resume {run_dir}`")
        raise TrainingInterrupted(stop.signum, run_dir, saved_at)
    _finish(cfg, learner, state, run_dir)
    return run_dir


# Metrics that must stay finite: losses and optimisation statistics. Episode metrics may be
# NaN by design (no episode ended in the iteration).
_CHECKED_METRICS = ("loss", "entropy", "kl")


def _non_finite(state, metrics) -> str | None:
    """What became NaN/inf: checked metrics by name, then every floating-point leaf of the
    state (whatever the learner's state pytree is). None when all is finite."""
    bad = sorted(name for name, value in metrics.items()
                 if any(word in name for word in _CHECKED_METRICS)
                 and np.issubdtype(np.asarray(value).dtype, np.inexact)
                 and not np.isfinite(np.asarray(value)).all())
    if bad:
        return f"the loss metric(s) {', '.join(bad)}"
    if bool(_state_is_finite(state)):
        return None
    paths = [jax.tree_util.keystr(p)
             for p, x in jax.tree_util.tree_flatten_with_path(state)[0]
             if _is_float(x) and not np.isfinite(np.asarray(jax.device_get(x))).all()]
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return f"the training state ({', '.join(paths[:3])}{more})"


def _is_float(x) -> bool:
    return hasattr(x, "dtype") and jax.numpy.issubdtype(x.dtype, jax.numpy.inexact)


@jax.jit
def _state_is_finite(state) -> jax.Array:
    flags = [jax.numpy.isfinite(x).all() for x in jax.tree.leaves(state) if _is_float(x)]
    return jax.numpy.stack(flags).all() if flags else jax.numpy.bool_(True)


def _check_fits_in_memory(learner: Runner, cfg: TrainConfig) -> None:
    """Refuse a config whose training state alone exceeds the device's memory, before
    anything is allocated or written (shapes only, from ``jax.eval_shape``)."""
    abstract = jax.eval_shape(learner.init, jax.random.PRNGKey(cfg.seed))
    need = sum(int(np.prod(x.shape)) * _itemsize(x.dtype) for x in jax.tree.leaves(abstract))
    have, where = _memory_bytes()
    if need > have:
        raise ValueError(
            f"this config's training state alone needs {need / 2**30:,.1f} GiB, more than the "
            f"{have / 2**30:,.1f} GiB of {where} (--num-envs {cfg.num_envs}, --num-seeds "
            f"{cfg.num_seeds}, --num-agents {cfg.num_agents}); use a smaller --num-envs")


def _itemsize(dtype) -> int:
    try:
        return np.dtype(dtype).itemsize
    except TypeError:  # typed PRNG keys
        return 8


def _memory_bytes() -> tuple[int, str]:
    device = jax.devices()[0]
    stats = None
    with contextlib.suppress(Exception):
        stats = device.memory_stats()
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), f"{device.platform.upper()} memory"
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "memory"


def _check_budget_covers_checkpoint(cfg: TrainConfig, run_dir: Path) -> None:
    """``--resume`` with a budget below what was already trained would make config.json
    claim less than the checkpoints hold: refuse it (a smaller budget that is still ahead of
    the latest checkpoint is fine: the run then ends there)."""
    with Checkpointer(run_dir, read_only=True) as ckpt:
        step = ckpt.latest_step()
        if step is None or cfg.num_iterations >= step:
            return
        done = ckpt.metadata(step).get("env_steps", step * cfg.steps_per_iteration)
    raise ValueError(f"--total-steps {cfg.total_steps} is less than the {done} env steps this "
                     f"run has already trained (checkpoint {step}); resume with --total-steps "
                     f"{done} or more")


def _remove_new_run(run_dir: Path, remove_dir: bool) -> None:
    """Delete what a fresh run wrote before failing, so that the same command can be run
    again (the caller holds the run directory's lock)."""
    if remove_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for p in run_dir.iterdir():
        if p.name == LOCK_FILE:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


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
    """The first SIGINT or SIGTERM asks the loop to stop after the current iteration (and
    save a checkpoint); a second one interrupts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self):
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: no handler, signals behave as usual
                break
        return self

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        self.requested, self.signum = True, signum
        print(f"\n{name}: finishing this iteration, then saving a checkpoint "
              f"(send {name} again to abort without saving)", flush=True)

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        return False
