"""``prosocial train``, ``prosocial eval`` and ``prosocial export``.

Every config field is a flag (tyro): ``--env``, ``--num-agents``, ``--total-steps``,
``--num-envs``, ``--lr``, ``--lstm-size``, … on top of a preset (``--preset NAME``,
default ``quick``). Every keyword of the environment is reachable as ``--env.NAME VALUE``
(dashes or underscores; a true/false option given without a value means true, e.g.
``--env.ref-beam-order-by-id`` or ``--env.ref-view-rotation false``): they become
``env_options`` entries after the preset's own (a later one wins for the same name);
``--env.num-agents``, ``--env.max-steps`` and ``--env.reference`` are the flags
``--num-agents``, ``--max-steps`` and ``--reference``. The resolved config is saved to the
run's ``config.json`` (``--resume`` uses its env options) and one summary line printed before
anything compiles; an invalid value, env or preset is reported as a
one-line error (exit status 2) without writing anything. A run stopped by SIGINT exits
with 130, by SIGTERM with 143 (after saving a checkpoint); a run whose loss or parameters
became non-finite exits with 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import tyro

from prosocial.experiments.config import TrainConfig, convert_env_value, from_dict, to_dict
from prosocial.experiments.presets import PRESETS, preset
from prosocial.io.checkpoint import CorruptFileError


def _fail(prog: str, message: str, code: int = 2) -> None:
    """One line on standard error and exit ``code`` (2: bad input, as argparse does)."""
    message = " ".join(str(message).split())
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


TRAIN_USAGE = "prosocial train [--preset NAME] [--out DIR] [--resume DIR] [--no-progress] " \
    "[config flags]"


def _train_help(default: TrainConfig) -> str:
    presets = textwrap.fill(", ".join(sorted(PRESETS)), width=88,
                            initial_indent=" " * 18, subsequent_indent=" " * 18)
    env_opts = textwrap.fill(", ".join(n.replace("_", "-") for n in env_option_names(
        default.env)), width=88, initial_indent=" " * 18, subsequent_indent=" " * 18)
    return f"""usage: {TRAIN_USAGE}

Train agents into a run directory: config.json (resolved config), metrics.csv, TensorBoard
events, checkpoints/, learning_curves.png and episode.gif. Ctrl-C (or SIGTERM) saves a
checkpoint and stops; --resume continues from it.

run options:
  --preset NAME   the config to start from; the config flags below override it
                  (default: quick); presets:
{presets}
  --out DIR       the new run's directory; must not exist or be empty
                  (default: runs/<preset>-<YYYYmmdd-HHMMSS>)
  --resume DIR    continue the run in DIR from its last checkpoint with its stored config
                  (default: none, start a new run); takes no --preset or --out; only
                  --total-steps, --checkpoint-every, --keep-checkpoints, --gif-steps and
                  --compile-cache may change
  --no-progress   no progress bar (default: a bar when the output is a terminal)
  --motive NAME   short for --motive.name
  --env.NAME [VALUE]
                  any keyword of the environment (dashes or underscores), added to the
                  preset's env options, a later one winning; a true/false option without a
                  value means true: --env.ref-beam-order-by-id, --env.ref-view-rotation false,
                  --env.waste-spawn-prob 0.3; options of {default.env}:
{env_opts}
                  (--env.num-agents, --env.max-steps, --env.reference are --num-agents, …)

config flags (defaults shown are those of the preset chosen):
"""


def _strip_spec_refs(text: str) -> str:
    """Help text without references into the design documents (``§8.3``, ``specs B-20``),
    which mean nothing to a user of the command."""
    ref = r"(?:§\s*[\w.\-–]+|B-\d+)"
    text = re.sub(rf"\s*\((?:see\s+)?(?:specs(?:\.md)?\s*)?{ref}(?:\s*[,;]\s*{ref})*\)", "",
                  text)
    text = re.sub(rf"[,;]\s*(?:specs(?:\.md)?\s*)?{ref}", "", text)
    text = re.sub(rf"\s*\bspecs(?:\.md)?(?:\s*{ref})?", "", text)
    return re.sub(r"\s*§\s*[\w.\-–]+", "", text)


@contextlib.contextmanager
def _plain_field_docs():
    """While tyro builds the help, hand it the field docstrings without design-document
    references (tyro reads them through ``tyro._docstrings.get_field_docstring``; if a tyro
    version moves it, the help is shown unchanged)."""
    try:
        from tyro import _docstrings

        original = _docstrings.get_field_docstring
    except (ImportError, AttributeError):
        yield
        return

    def cleaned(*args, **kwargs):
        doc = original(*args, **kwargs)
        return _strip_spec_refs(doc) if isinstance(doc, str) else doc

    _docstrings.get_field_docstring = cleaned
    try:
        yield
    finally:
        _docstrings.get_field_docstring = original


def _print_config_help(default: TrainConfig) -> None:
    with _plain_field_docs(), contextlib.suppress(SystemExit):
        tyro.cli(TrainConfig, default=default, args=["--help"], prog="prosocial train",
                 description="")


# Environment keywords that are TrainConfig fields of their own, with their flags.
HOISTED_ENV_FLAGS = {"num_agents": "--num-agents", "max_steps": "--max-steps",
                     "reference": "--reference"}
_BOOL_WORDS = ("true", "false", "1", "0", "yes", "no")


def env_option_names(env_id: str) -> list[str]:
    """The keywords of ``env_id`` that ``--env.NAME`` / ``env_options`` may set."""
    import inspect

    from prosocial.envs.registry import env_parameters

    return [name for name, default in env_parameters(env_id).items()
            if default is not inspect.Parameter.empty and name not in HOISTED_ENV_FLAGS]


def split_env_flags(argv: list[str]) -> tuple[list[str], list[tuple[str, str | None, str]]]:
    """Take the ``--env.NAME [VALUE]`` / ``--env.NAME=VALUE`` arguments out of ``argv``.

    Returns the other arguments (``--env.num-agents N`` and the other hoisted keywords
    rewritten in place to their own flags) and ``(name, value or None, flag)`` for the rest,
    in order. A token after ``--env.NAME`` is its value unless it starts with ``--``
    (``prosocial train`` takes no positional arguments)."""
    rest: list[str] = []
    found: list[tuple[str, str | None, str]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--env."):
            rest.append(arg)
            continue
        flag, eq, value = arg.partition("=")
        name = flag[len("--env."):].replace("-", "_")
        if not name:
            raise ValueError(f"{arg}: give the option's name, e.g. --env.max-steps 100")
        if not eq:
            value = None
            if i < len(argv) and not argv[i].startswith("--"):
                value = argv[i]
                i += 1
        if name in HOISTED_ENV_FLAGS:
            own = HOISTED_ENV_FLAGS[name]
            if name == "reference":
                word = "true" if value is None else value.strip().lower()
                if word not in _BOOL_WORDS:
                    raise ValueError(f"{flag} must be true or false, got {value!r}")
                rest.append(own if word in ("true", "1", "yes") else "--no-reference")
            elif value is None:
                raise ValueError(f"{flag} needs a value (it is the flag {own})")
            else:
                rest += [own, value]
            continue
        found.append((name, value, flag))
    return rest, found


def merge_env_flags(env_id: str, options: tuple[str, ...],
                    flags: list[tuple[str, str | None, str]]) -> tuple[str, ...]:
    """``options`` (``NAME=VALUE``) with the ``--env.NAME`` settings of
    :func:`split_env_flags` applied in order: one entry per name, where it first appeared,
    holding its last setting; each value checked against the environment's parameter."""
    from prosocial.envs.registry import env_parameters

    params = env_parameters(env_id)
    allowed = env_option_names(env_id)
    merged: dict[str, str] = {}
    for text in options:
        name, _, value = str(text).partition("=")
        merged[name.strip().replace("-", "_")] = value.strip()
    for name, value, flag in flags:
        if name not in allowed:
            names = ", ".join(n.replace("_", "-") for n in allowed)
            raise ValueError(f"{flag}: {env_id} has no option {name.replace('_', '-')!r}; "
                             f"its options: {names} (and --num-agents, --max-steps, "
                             f"--reference)")
        default = params[name]
        if value is None and not isinstance(default, bool):
            raise ValueError(f"{flag} needs a value (default {default!r})")
        try:
            converted = convert_env_value(name, "" if value is None else value, default)
        except ValueError as e:
            raise ValueError(f"{flag}: {e}") from None
        merged[name] = (str(converted).lower() if isinstance(converted, bool)
                        else str(value).strip())
    return tuple(f"{name}={value}" for name, value in merged.items())


def parse_train_args(argv: list[str]) -> tuple[TrainConfig, Path, bool, bool]:
    """``(config, run directory, resume, progress)`` from ``prosocial train`` arguments."""
    try:
        argv, env_flags = split_env_flags(list(argv))
    except ValueError as e:
        _fail("prosocial train", str(e))
    pre = argparse.ArgumentParser(prog="prosocial train", add_help=False)
    pre.add_argument("--preset", default=None)
    pre.add_argument("--resume", type=Path, default=None)
    pre.add_argument("--out", type=Path, default=None)
    pre.add_argument("--no-progress", action="store_true")
    pre.add_argument("--motive", default=None, help="alias of --motive.name")
    known, rest = pre.parse_known_args(argv)
    if known.motive is not None:
        rest = ["--motive.name", known.motive, *rest]
    wants_help = "-h" in rest or "--help" in rest
    try:
        if known.resume is not None:
            if known.preset is not None:
                raise ValueError("--resume continues a run with its stored config; "
                                 "it takes no --preset")
            if known.out is not None:
                raise ValueError("--resume DIR continues the run in DIR; it takes no --out "
                                 f"(got --out {known.out})")
            default = load_run_dir_config(known.resume)
            out, resume = known.resume, True
        else:
            name = known.preset or "quick"
            default = preset(name)
            out = known.out or Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
            if str(out).strip() == "":
                raise ValueError("--out is empty; give the run directory")
            resume = False
        if wants_help:
            print(_train_help(default))
            _print_config_help(default)
            raise SystemExit(0)
        cfg = tyro.cli(TrainConfig, default=default, args=rest, prog="prosocial train",
                       description="Train agents (prosocial train --help).")
        if env_flags:
            cfg = dataclasses.replace(cfg, env_options=merge_env_flags(
                cfg.env, cfg.env_options, env_flags))
    except ValueError as e:
        _fail("prosocial train", str(e))
    return cfg, out, resume, not known.no_progress


def load_run_dir_config(run_dir: Path) -> TrainConfig:
    """The :class:`TrainConfig` stored in a run directory's ``config.json``, checked to be
    complete and of this version's shape (ValueError naming the file otherwise)."""
    from prosocial.io import load_run_config

    if not run_dir.is_dir():
        raise ValueError(f"{run_dir} is not a run directory: no such directory")
    return config_from_json(load_run_config(run_dir), run_dir / "config.json")


# Top-level config keys newer than the first run directories: a config.json without them
# is read with their defaults (none of them changes what a run computes).
ADDED_KEYS = ("compile_cache",)


def config_from_json(data, source) -> TrainConfig:
    """A :class:`TrainConfig` from its JSON form; unknown or missing keys (a file from
    another version of prosocial, or edited by hand) are errors naming ``source``."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: the config is not a JSON object")
    # Keys added since a config.json may have been written, read as their defaults.
    defaults = to_dict(TrainConfig())
    data = {**{k: defaults[k] for k in ADDED_KEYS}, **data}
    unknown, missing = [], []
    _diff_keys(to_dict(TrainConfig()), data, "", unknown, missing)
    if unknown or missing:
        parts = [f"unknown keys {unknown}" if unknown else "",
                 f"missing keys {missing}" if missing else ""]
        raise ValueError(f"{source} does not match this version of prosocial "
                         f"({prosocial_version()}): {'; '.join(p for p in parts if p)}")
    try:
        return from_dict(data)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: invalid config: {e}") from None


def _diff_keys(reference: dict, data: dict, prefix: str, unknown: list, missing: list) -> None:
    for key in sorted(set(reference) | set(data)):
        name = f"{prefix}{key}"
        if key not in reference:
            unknown.append(name)
        elif key not in data:
            missing.append(name)
        elif isinstance(reference[key], dict):
            if not isinstance(data[key], dict):
                unknown.append(f"{name} (not an object)")
            else:
                _diff_keys(reference[key], data[key], f"{name}.", unknown, missing)


def prosocial_version() -> str:
    import prosocial

    return f"version {prosocial.__version__}"


def _summary(cfg: TrainConfig, out: Path, resume: bool) -> str:
    motive = getattr(cfg.motive, "name", "none")
    what = "resume" if resume else "train"
    return (f"{what}: {cfg.env}, {cfg.num_agents} agents, {cfg.total_steps:,} env steps "
            f"({cfg.num_iterations} iterations), {cfg.num_seeds} seed(s), motive {motive} "
            f"-> {out} (full config in {out / 'config.json'})")


def train_main(argv: list[str]) -> None:
    cfg, out, resume, progress = parse_train_args(argv)
    print(_summary(cfg, out, resume), flush=True)
    from prosocial.experiments.train import NonFiniteError, TrainingInterrupted, train
    from prosocial.io import RunDirLocked

    try:
        train(cfg, out, resume=resume, progress=True if progress else False)
    except TrainingInterrupted as e:
        raise SystemExit(128 + e.signum) from None
    except NonFiniteError as e:
        _fail("prosocial train", str(e), code=1)
    except KeyboardInterrupt:
        _fail("prosocial train", "interrupted by Ctrl-C; checkpoints saved before it are "
              f"kept (continue with `prosocial train --resume {out}` if {out} exists)",
              code=130)
    except (FileExistsError, ValueError, RunDirLocked) as e:
        _fail("prosocial train", str(e))


# --- loading trained policies ---------------------------------------------------------------


def load_policy(path: Path, checkpoint: int | None = None, seed_index: int = 0):
    """``(config, populations, params, description)`` from a run directory or a safetensors
    file: the run's populations laid out for one seed and that seed's parameters (a tuple,
    one entry per population).

    Only reads: a run directory may be training at the same time (its checkpoints are
    opened read-only). Raises ValueError (or FileNotFoundError) with a one-line message.
    """
    from prosocial.envs.registry import make
    from prosocial.experiments.evaluate import seed_params
    from prosocial.experiments.train import populations
    from prosocial.io import Checkpointer, load_safetensors

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run directory or file")
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ValueError(f"{path} is neither a run directory nor a .safetensors file")
        _, meta = load_safetensors(path)
        if "config" not in meta:
            raise ValueError(f"{path} has no prosocial config in its metadata")
        cfg = config_from_json(meta["config"], f"{path} (its config)")
        env = make(cfg.env, **cfg.env_kwargs())
        pops = tuple(dataclasses.replace(p, layout=dataclasses.replace(p.layout, num_seeds=1))
                     for p in populations(cfg, env))
        target = tuple(p.policy.init(jax.random.split(jax.random.PRNGKey(0),
                                                      p.layout.num_params)) for p in pops)
        try:
            params, _ = load_safetensors(path, target)
        except ValueError as e:
            if isinstance(e, CorruptFileError):
                raise
            raise ValueError(f"{path}: its parameters do not fit the config stored with them "
                             f"(env {cfg.env}, {cfg.num_agents} agents): a policy for another "
                             f"env or size? ({_first_line(e)})") from None
        return cfg, pops, params, f"{path} ({meta.get('source', 'exported policy')})"
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} is neither a run directory (no config.json) nor a "
                         ".safetensors file")
    cfg = load_run_dir_config(path)
    if not 0 <= seed_index < cfg.num_seeds:
        raise ValueError(f"--seed-index must be in [0, {cfg.num_seeds}), got {seed_index}")
    from prosocial.experiments.train import build

    learner = build(cfg)
    abstract = jax.eval_shape(learner.init, jax.random.PRNGKey(0))
    with Checkpointer(path, read_only=True) as ckpt:
        if ckpt.latest_step() is None:
            raise ValueError(f"{path} has no checkpoint yet")
        step = checkpoint if checkpoint is not None else ckpt.latest_step()
        try:
            state, _ = ckpt.restore(step, target=abstract)
        except FileNotFoundError as e:
            raise ValueError(str(e)) from None
    params = seed_params(learner.populations, state, seed_index)
    pops = tuple(dataclasses.replace(p, layout=dataclasses.replace(p.layout, num_seeds=1))
                 for p in learner.populations)
    return cfg, pops, params, f"{path} checkpoint {step}, seed {seed_index}"


def _first_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]


def _positive(prog: str, flag: str, value: int | None) -> None:
    if value is not None and value < 1:
        _fail(prog, f"{flag} must be a positive integer, got {value}")


def eval_main(argv: list[str]) -> None:
    prog = "prosocial eval"
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Run episodes of a trained policy, sampled and greedy, print their metrics and write "
        "a GIF of one sampled episode. Safe to run on a directory that is still training."))
    parser.add_argument("path", type=Path, help="run directory or exported .safetensors")
    parser.add_argument("--checkpoint", type=int, default=None,
                        help="iteration of the checkpoint (default: the latest)")
    parser.add_argument("--seed-index", type=int, default=0,
                        help="which seed's agents (default: 0)")
    parser.add_argument("--episodes", type=int, default=8, help="per mode (default: 8)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per episode (default: the episode length)")
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    parser.add_argument("--gif", type=Path, default=None,
                        help="default: eval.gif next to the run / file")
    args = parser.parse_args(argv)
    _positive(prog, "--episodes", args.episodes)
    _positive(prog, "--steps", args.steps)
    if args.gif is not None and (args.gif.is_dir() or args.gif.suffix.lower() != ".gif"):
        _fail(prog, f"--gif {args.gif}: give a file name ending in .gif")
    from prosocial.envs.registry import make
    from prosocial.experiments.evaluate import metrics_table, run_episodes, write_episode_gif

    try:
        cfg, pops, params, what = load_policy(args.path, args.checkpoint, args.seed_index)
    except (ValueError, FileNotFoundError) as e:
        _fail(prog, str(e))
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
    try:
        print(f"GIF of a sampled episode: {write_episode_gif(frames, gif)}")
    except OSError as e:
        _fail(prog, f"cannot write the GIF {gif}: {e.strerror or e}")


def export_main(argv: list[str]) -> None:
    prog = "prosocial export"
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Write one seed's trained policy as safetensors (with its config in the metadata); "
        "`prosocial eval FILE` reads it. Safe to run on a directory that is still training."))
    parser.add_argument("path", type=Path, help="run directory")
    parser.add_argument("--checkpoint", type=int, default=None,
                        help="iteration of the checkpoint (default: the latest)")
    parser.add_argument("--seed-index", type=int, default=0,
                        help="which seed's agents (default: 0)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the .safetensors file to write (default: DIR/policy.safetensors)")
    args = parser.parse_args(argv)
    out = args.out or args.path / "policy.safetensors"
    if out.is_dir():
        _fail(prog, f"--out {out} is a directory; give a file name ending in .safetensors")
    if out.suffix != ".safetensors":
        _fail(prog, f"--out {out}: the file name must end in .safetensors")
    if args.path.is_file():
        _fail(prog, f"{args.path} is a file; export reads a run directory")
    from prosocial.io import export_safetensors

    try:
        cfg, _, params, what = load_policy(args.path, args.checkpoint, args.seed_index)
    except (ValueError, FileNotFoundError) as e:
        _fail(prog, str(e))
    params = jax.tree.map(np.asarray, params)
    try:
        export_safetensors(params, out, {"config": to_dict(cfg), "source": what})
    except OSError as e:
        _fail(prog, f"cannot write --out {out}: {e.strerror or e}")
    print(f"exported {what} to {out}")
