"""Running an ERMAS (or MARL) configuration in a run directory, resumable.

``train_ermas(cfg, out)`` writes ``config.json`` (with provenance), ``metrics.csv`` (one row
per outer iteration and seed: λ_i, J_i^old, J_i^new, regret Δ_i and Δ_i/T, agent and
planner returns, seconds) and checkpoints of the whole :class:`~prosocial.ermas.loop.
ErmasState` every ``checkpoint_every`` outer iterations and at the end. ``resume=True``
continues from the latest checkpoint (the rows logged after it are dropped and redone);
because the state holds every key and the environments' states, a resumed run continues
exactly as the uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import numpy as np

from prosocial.ermas.loop import Ermas, ErmasRunConfig
from prosocial.experiments.config import _build
from prosocial.io import (
    Checkpointer,
    MetricsLogger,
    TrainingProgress,
    create_run_dir,
    lock_run_dir,
)
from prosocial.io.rundir import make_dir

MUTABLE_ON_RESUME = ("outer_iterations", "checkpoint_every")


def to_dict(cfg: ErmasRunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(data) -> ErmasRunConfig:
    """Rebuild an :class:`ErmasRunConfig` from :func:`to_dict`'s output (``config.json``)."""
    return _build(ErmasRunConfig, data, "config")


def train_ermas(cfg: ErmasRunConfig, out, resume: bool = False,
                progress: bool | None = None, max_iterations: int | None = None,
                ermas: Ermas | None = None) -> Path:
    """Run ``cfg.outer_iterations`` outer iterations (at most ``max_iterations`` in this
    call) in run directory ``out``; returns the run directory."""
    run_dir = Path(out)
    make_dir(run_dir)
    with lock_run_dir(run_dir):
        run_dir = create_run_dir(run_dir, to_dict(cfg), resume=resume,
                                 mutable_on_resume=MUTABLE_ON_RESUME,
                                 defaults=to_dict(ErmasRunConfig()))
        er = ermas if ermas is not None else Ermas(cfg)
        state = er.init()
        with Checkpointer(run_dir) as ckpt:
            start = 0
            if resume and ckpt.latest_step() is not None:
                state, _ = ckpt.restore(target=state)
                start = int(state.iteration)
            steps = er.env_steps_per_iteration
            logger = MetricsLogger(run_dir, cfg.num_seeds, resume_from_update=start,
                                   tensorboard=False)
            total = cfg.outer_iterations * steps
            with logger, TrainingProgress(total, start * steps, disable=progress is False
                                          if progress is not None else None,
                                          desc=f"ermas {cfg.ermas.method}") as bar:
                done = 0
                while int(state.iteration) < cfg.outer_iterations and (
                        max_iterations is None or done < max_iterations):
                    state, metrics = er.iteration(state)
                    it = int(state.iteration)
                    done += 1
                    logger.log(it, it * steps, metrics)
                    planner = float(np.nanmean(metrics["planner_return"]))
                    bar.update(it * steps, planner_return=f"{planner:.4g}")
                    if it % cfg.checkpoint_every == 0 or it == cfg.outer_iterations:
                        ckpt.save(it, state, {"iteration": it})
                if int(state.iteration) % cfg.checkpoint_every and \
                        ckpt.latest_step() != int(state.iteration):
                    ckpt.save(int(state.iteration), state, {"iteration": int(state.iteration)})
    jax.effects_barrier()
    return run_dir


def ermas_main(argv: list[str]) -> None:
    """``prosocial ermas --preset NAME --out DIR [--seeds S] [--outer-iterations K]
    [--episode-steps T] [--deviation ppo|trpo] [--rho R] [--resume]``."""
    import argparse

    from prosocial.experiments.presets.ermas import PRESETS, preset

    parser = argparse.ArgumentParser(prog="prosocial ermas",
                                     description="train an ERMAS or baseline preset")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="ermas/bimatrix/ermas")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--outer-iterations", type=int)
    parser.add_argument("--episode-steps", type=int)
    parser.add_argument("--env", help="e.g. bimatrix-constrained")
    parser.add_argument("--deviation", choices=("ppo", "trpo"),
                        help="deviation search: ppo = SRAI's PPO iterations (the presets); "
                             "trpo = the paper's TRPO steps of radius rho/inner iterations "
                             "(10 conjugate-gradient iterations, damping 0.01, line search "
                             "of 10 steps halving each time); needs --rho")
    parser.add_argument("--rho", type=float,
                        help="trust-region radius ρ (mean KL, nats) of the deviations: "
                             "with trpo each TRPO step has radius rho/inner iterations, "
                             "with ppo an agent's deviation stops once its mean KL from "
                             "the deviation's start exceeds rho (default: the preset's, "
                             "none)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    cfg = preset(args.preset)
    changes: dict[str, Any] = {}
    if args.seeds is not None:
        changes["num_seeds"] = args.seeds
    if args.outer_iterations is not None:
        changes["outer_iterations"] = args.outer_iterations
    if args.env is not None:
        changes["env"] = args.env
    if args.episode_steps is not None:
        changes["env_options"] = dict(cfg.env_options, max_steps=args.episode_steps)
    ermas_changes = {k: v for k, v in (("deviation", args.deviation), ("rho", args.rho))
                     if v is not None}
    try:
        if ermas_changes:
            changes["ermas"] = dataclasses.replace(cfg.ermas, **ermas_changes)
    except ValueError as err:
        parser.error(str(err))
    cfg = dataclasses.replace(cfg, **changes)
    for name in ("num_seeds", "outer_iterations"):
        if getattr(cfg, name) < 1:
            parser.error(f"{name} must be a positive integer")
    run_dir = train_ermas(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    print(f"run directory: {run_dir}")


__all__ = ["ermas_main", "from_dict", "to_dict", "train_ermas"]
