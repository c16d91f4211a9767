"""``prosocial train``, ``prosocial eval`` and ``prosocial export``.

Every config field is a flag (tyro): ``--env``, ``--num-agents``, ``--total-steps``,
``--num-envs``, ``--lr``, ``--lstm-size``, … on top of a preset (``--preset NAME``,
default ``quick``). The resolved config is printed and saved before anything compiles; an
invalid value, env or preset is reported as an error without writing anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np
import tyro

from prosocial.experiments.config import TrainConfig, from_dict, to_dict
from prosocial.experiments.presets import PRESETS, preset


def _fail(prog: str, message: str) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_train_args(argv: list[str]) -> tuple[TrainConfig, Path, bool, bool]:
    """``(config, run directory, resume, progress)`` from ``prosocial train`` arguments."""
    pre = argparse.ArgumentParser(prog="prosocial train", add_help=False)
    pre.add_argument("--preset", default=None)
    pre.add_argument("--resume", type=Path, default=None)
    pre.add_argument("--out", type=Path, default=None)
    pre.add_argument("--no-progress", action="store_true")
    pre.add_argument("--motive", default=None, help="alias of --motive.name")
    known, rest = pre.parse_known_args(argv)
    if known.motive is not None:
        rest = ["--motive.name", known.motive, *rest]
    if "-h" in rest or "--help" in rest:
        print("prosocial train [--preset NAME] [--out DIR] [--resume DIR] [--no-progress] "
              "[config flags]\n\npresets: " + ", ".join(sorted(PRESETS)) + "\n")
    try:
        if known.resume is not None:
            if known.preset is not None:
                raise ValueError("--resume continues a run with its stored config; "
                                 "it takes no --preset")
            from prosocial.io import load_run_config

            config_file = known.resume / "config.json"
            if not config_file.is_file():
                raise ValueError(f"cannot resume {known.resume}: no config.json there")
            default = from_dict(load_run_config(known.resume))
            out, resume = known.resume, True
        else:
            name = known.preset or "quick"
            default = preset(name)
            out = known.out or Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
            resume = False
        cfg = tyro.cli(TrainConfig, default=default, args=rest, prog="prosocial train",
                       description="Train independent PPO agents (see the module docs).")
    except ValueError as e:
        _fail("prosocial train", str(e))
    return cfg, out, resume, not known.no_progress


def train_main(argv: list[str]) -> None:
    cfg, out, resume, progress = parse_train_args(argv)
    print("config:", json.dumps(to_dict(cfg), indent=1, default=str))
    from prosocial.experiments.train import train

    try:
        train(cfg, out, resume=resume, progress=True if progress else False)
    except (FileExistsError, ValueError) as e:
        _fail("prosocial train", str(e))


# --- loading trained policies ---------------------------------------------------------------


def load_policy(path: Path, checkpoint: int | None = None, seed_index: int = 0):
    """``(config, populations, params, description)`` from a run directory or a safetensors
    file: the run's populations laid out for one seed and that seed's parameters (a tuple,
    one entry per population)."""
    import dataclasses

    from prosocial.envs.registry import make
    from prosocial.experiments.evaluate import seed_params
    from prosocial.experiments.train import populations
    from prosocial.io import Checkpointer, load_run_config, load_safetensors

    if path.is_file() and path.suffix == ".safetensors":
        _, meta = load_safetensors(path)
        if "config" not in meta:
            raise ValueError(f"{path} has no prosocial config in its metadata")
        cfg = from_dict(meta["config"])
        env = make(cfg.env, **cfg.env_kwargs())
        pops = tuple(dataclasses.replace(p, layout=dataclasses.replace(p.layout, num_seeds=1))
                     for p in populations(cfg, env))
        target = tuple(p.policy.init(jax.random.split(jax.random.PRNGKey(0),
                                                      p.layout.num_params)) for p in pops)
        params, _ = load_safetensors(path, target)
        return cfg, pops, params, f"{path} ({meta.get('source', 'exported policy')})"
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} is neither a run directory (no config.json) nor a "
                         ".safetensors file")
    cfg = from_dict(load_run_config(path))
    if not 0 <= seed_index < cfg.num_seeds:
        raise ValueError(f"--seed-index must be in [0, {cfg.num_seeds}), got {seed_index}")
    from prosocial.experiments.train import build

    learner = build(cfg)
    abstract = jax.eval_shape(learner.init, jax.random.PRNGKey(0))
    with Checkpointer(path) as ckpt:
        if ckpt.latest_step() is None:
            raise ValueError(f"{path} has no checkpoint yet")
        state, _ = ckpt.restore(checkpoint, target=abstract)
        step = checkpoint if checkpoint is not None else ckpt.latest_step()
    params = seed_params(learner.populations, state, seed_index)
    pops = tuple(dataclasses.replace(p, layout=dataclasses.replace(p.layout, num_seeds=1))
                 for p in learner.populations)
    return cfg, pops, params, f"{path} checkpoint {step}, seed {seed_index}"


def eval_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="prosocial eval", description=(
        "Run episodes of a trained policy, sampled and greedy, print their metrics and write "
        "a GIF of one sampled episode."))
    parser.add_argument("path", type=Path, help="run directory or exported .safetensors")
    parser.add_argument("--checkpoint", type=int, default=None, help="default: the latest")
    parser.add_argument("--seed-index", type=int, default=0, help="which seed's agents")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="default: the episode length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gif", type=Path, default=None,
                        help="default: eval.gif next to the run / file")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        _fail("prosocial eval", f"--episodes must be positive, got {args.episodes}")
    from prosocial.envs.registry import make
    from prosocial.experiments.evaluate import metrics_table, run_episodes, write_episode_gif

    try:
        cfg, pops, params, what = load_policy(args.path, args.checkpoint, args.seed_index)
    except (ValueError, FileNotFoundError) as e:
        _fail("prosocial eval", str(e))
    env = make(cfg.env, **cfg.env_kwargs())
    key = jax.random.PRNGKey(args.seed)
    results, frames = {}, None
    for mode in ("sampled", "greedy"):
        results[mode], rec = run_episodes(env, pops, params, key, args.episodes,
                                          greedy=mode == "greedy", num_steps=args.steps,
                                          record=mode == "sampled")
        frames = rec if rec is not None else frames
    print(f"{what}: {cfg.env}, {cfg.num_agents} agents, {args.episodes} episodes per mode")
    print(metrics_table(results))
    gif = args.gif or (args.path if args.path.is_dir() else args.path.parent) / "eval.gif"
    print(f"GIF of a sampled episode: {write_episode_gif(frames, gif)}")


def export_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="prosocial export", description=(
        "Write one seed's trained policy as safetensors (with its config in the metadata); "
        "`prosocial eval FILE` reads it."))
    parser.add_argument("path", type=Path, help="run directory")
    parser.add_argument("--checkpoint", type=int, default=None, help="default: the latest")
    parser.add_argument("--seed-index", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="default: DIR/policy.safetensors")
    args = parser.parse_args(argv)
    from prosocial.io import export_safetensors

    try:
        cfg, _, params, what = load_policy(args.path, args.checkpoint, args.seed_index)
    except (ValueError, FileNotFoundError) as e:
        _fail("prosocial export", str(e))
    out = args.out or args.path / "policy.safetensors"
    params = jax.tree.map(np.asarray, params)
    export_safetensors(params, out, {"config": to_dict(cfg), "source": what})
    print(f"exported {what} to {out}")
