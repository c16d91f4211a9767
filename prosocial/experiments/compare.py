"""Train several presets at one budget and compare their collective return with the papers'.

    prosocial compare emurel/cleanup/baseline emurel/cleanup/ia emurel/cleanup/si \\
        --out runs/compare --total-steps 2000000 --num-seeds 3 --num-envs 16

Every preset is trained into ``OUT/<preset with / replaced by _>`` by the same code as
``prosocial train``, with the given training flags applied on top of each preset. A run that
already finished is not trained again and an interrupted one is resumed from its checkpoint,
so the command can be stopped and started again without losing work. ``--ray`` runs the
presets as Ray tasks (``--ray local`` starts a local Ray, ``--ray ADDRESS`` joins a cluster
whose workers see ``OUT``); without it they run one after the other in this process.

Statistic (specs.md §10, "evaluation windows"): for each seed, the mean collective return
(extrinsic, summed over agents) of the logged iterations in the last ``--window-steps``
environment steps of training (default: the last 10% of the budget); then, over seeds, the
mean, the interquartile mean, and a 95% percentile-bootstrap confidence interval of the mean
(``scipy.stats.bootstrap``, 10 000 resamples; none with fewer than two seeds). The mean
intrinsic (shaped minus extrinsic) return per agent is reported beside it when the motive
has one, so shaped and extrinsic returns are never mixed up.

Outputs in ``OUT``: ``comparison.csv`` (one row per preset, plus the per-seed values),
``comparison.md`` (the same table with the paper's number and its source beside ours) and
``comparison.png`` (left: collective return against environment steps, mean over seeds with
a 95% bootstrap band; right: the window statistic with its CI, the paper's value marked).
The paper's numbers come from budgets of 10⁷–10⁹ steps; at a smaller budget they are context,
not a target.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prosocial.experiments.jobs import add_ray_argument, run_jobs

# The papers' headline numbers for presets (specs.md §11): (value, source).
PAPER_RESULTS: dict[str, tuple[float, str]] = {
    "emurel/cleanup/baseline": (484.4, "[EMUREL] Table 1, R-01, 5e8 steps"),
    "emurel/cleanup/ia": (431.7, "[EMUREL] Table 1, R-01, 5e8 steps"),
    "emurel/cleanup/si": (554.2, "[EMUREL] Table 1, R-01, 5e8 steps"),
    "emurel/cleanup/emurel": (663.2, "[EMUREL] Table 1, R-01, 5e8 steps"),
    "emurel/harvest-a3c/baseline": (622.2, "[EMUREL] Table 1, R-02, 3e7 steps"),
    "emurel/harvest-a3c/ia-adv": (494.7, "[EMUREL] Table 1, R-02, 3e7 steps"),
    "emurel/harvest-a3c/si": (475.5, "[EMUREL] Table 1, R-02, 3e7 steps"),
    "emurel/harvest-a3c/emurel-adv": (685.5, "[EMUREL] Table 1, R-02, 3e7 steps"),
    "emurel/harvest-a3c/ia-dis": (143.0, "[EMUREL] SVG, R-03 (approximate), 3e7 steps"),
    "emurel/harvest-a3c/emurel-dis": (163.0, "[EMUREL] SVG, R-03 (approximate), 3e7 steps"),
    "emurel/harvest-ppo/baseline": (230.5, "[EMUREL] Fig. A.3, R-08, 1e8 steps"),
    "emurel/harvest-ppo/ia": (240.6, "[EMUREL] Fig. A.3, R-08, 1e8 steps"),
    "emurel/harvest-ppo/si": (227.7, "[EMUREL] Fig. A.3, R-08, 1e8 steps"),
    "emurel/harvest-ppo/emurel": (231.1, "[EMUREL] Fig. A.3, R-08, 1e8 steps"),
    "ssd/cleanup/baseline": (625.0, "SSD plot, R-09 (approximate), 5e8 steps"),
    "ssd/cleanup/moa": (675.0, "SSD plot, R-09 (approximate), 5e8 steps"),
    "ssd/cleanup/scm": (543.0, "SSD plot, R-09 (approximate), 5e8 steps"),
}
METRIC = "collective_return"
BOOTSTRAP_RESAMPLES = 10_000


@dataclasses.dataclass(frozen=True)
class Entry:
    """One preset of a comparison: its name, resolved config and run directory."""

    name: str
    cfg: object  # TrainConfig
    run_dir: Path


@dataclasses.dataclass(frozen=True)
class Summary:
    """The window statistic of one preset over its seeds."""

    name: str
    per_seed: np.ndarray  # [S] window mean per seed (NaN: no episode ended in the window)
    mean: float
    iqm: float
    ci_low: float
    ci_high: float
    intrinsic: float  # mean intrinsic return per agent in the window (NaN: no motive reward)
    env_steps: int  # env steps per seed reached by the run
    paper: float  # NaN when the paper has no number for this preset
    source: str
    also: dict = dataclasses.field(default_factory=dict)  # metric -> (mean, ci_low, ci_high)


def run_dir_name(preset: str) -> str:
    return preset.replace("/", "_")


def plan(presets: Sequence[str], flags: Sequence[str], out: Path) -> list[Entry]:
    """Resolve each preset with the training flags on top (as ``prosocial train`` would)."""
    from prosocial.experiments.cli_train import parse_train_args

    if not presets:
        raise ValueError("give at least one preset")
    if len(set(presets)) != len(presets):
        raise ValueError(f"a preset is listed twice: {list(presets)}")
    entries = []
    for name in presets:
        run_dir = out / run_dir_name(name)
        cfg, _, _, _ = parse_train_args(["--preset", name, "--out", str(run_dir), *flags])
        entries.append(Entry(name, cfg, run_dir))
    return entries


def config_differences(stored: dict, wanted: dict, default: dict) -> list:
    """Keys where a stored run config differs from the wanted one. A key the stored config
    lacks (added to prosocial since) counts only if the wanted value is not its default."""
    from prosocial.io.rundir import changed_leaves, fill_absent

    return changed_leaves(fill_absent(stored, default), wanted)


def finished(entry: Entry) -> bool:
    """Whether the run directory holds a run of this config that reached its budget
    (ValueError when it holds a run of another config)."""
    from prosocial.experiments.config import TrainConfig, to_dict
    from prosocial.experiments.train import MUTABLE_ON_RESUME
    from prosocial.io import load_run_config, read_metrics

    try:
        metrics = read_metrics(entry.run_dir)
    except (ValueError, FileNotFoundError):
        return False
    as_json = lambda d: json.loads(json.dumps(d))  # noqa: E731  (tuples read back as lists)
    stored = {k: v for k, v in load_run_config(entry.run_dir).items()
              if k not in MUTABLE_ON_RESUME}
    wanted = {k: v for k, v in as_json(to_dict(entry.cfg)).items()
              if k not in MUTABLE_ON_RESUME}
    default = {k: v for k, v in as_json(to_dict(TrainConfig())).items()
               if k not in MUTABLE_ON_RESUME}
    differ = config_differences(stored, wanted, default)
    if differ:
        raise ValueError(f"{entry.run_dir} holds a run of {entry.name} with another config "
                         f"(differs at {', '.join(differ)}); choose another --out")
    return int(metrics["update"][-1]) >= entry.cfg.num_iterations


def train_entry(entry: Entry, progress: bool = True) -> str:
    """Train (or resume, or skip when finished) one preset; returns what was done."""
    from prosocial.experiments.train import train
    from prosocial.io.checkpoint import Checkpointer

    if finished(entry):
        return "already finished"
    resume = False
    if entry.run_dir.is_dir() and any(entry.run_dir.iterdir()):
        with Checkpointer(entry.run_dir) as ckpt:
            resume = True if ckpt.latest_step() is not None else resume
        if not resume:
            raise ValueError(f"{entry.run_dir} holds files but no checkpoint of a run; "
                             "remove it or choose another --out")
    train(entry.cfg, entry.run_dir, resume=resume, progress=progress)
    return "resumed" if resume else "trained"


def bootstrap_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap CI of the mean over the finite ``values`` (NaN, NaN when
    fewer than two; the value itself twice when all are equal)."""
    from scipy.stats import bootstrap

    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return math.nan, math.nan
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    result = bootstrap((values,), np.mean, confidence_level=0.95, method="percentile",
                       n_resamples=BOOTSTRAP_RESAMPLES, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def interquartile_mean(values: np.ndarray) -> float:
    from scipy.stats import trim_mean

    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(trim_mean(values, 0.25)) if values.size else math.nan


def window_means(metrics: dict, column: str, window_steps: int) -> np.ndarray:
    """Per seed, the mean of ``column`` over the logged iterations whose env-step count lies
    in the last ``window_steps`` steps of the run (NaN where none has a value)."""
    steps = metrics["env_steps"]
    values = np.asarray(metrics[column], np.float64)
    values = values[:, None] if values.ndim == 1 else values
    inside = steps > steps[-1] - window_steps
    with warnings.catch_warnings():  # a seed with no finished episode in the window is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values[inside], axis=0)


def _intrinsic_columns(metrics: dict) -> list[str]:
    return sorted(k for k in metrics if k.startswith("intrinsic_return_"))


def budget_metrics(entry: Entry) -> dict:
    """The run's logged metrics up to this comparison's budget (a run trained further
    before, with a larger budget, counts only up to it)."""
    from prosocial.io import read_metrics

    metrics = read_metrics(entry.run_dir)
    keep = metrics["update"] <= entry.cfg.num_iterations
    return {k: v[keep] for k, v in metrics.items()}


def summarise(entry: Entry, window_steps: int | None = None,
              also: Sequence[str] = ()) -> Summary:
    """The window statistic of a trained preset (see the module docstring), and the same
    window mean with its CI for each metric in ``also`` (``own_coin_share``,
    ``episode_length``, …; NaN where the run has no such metric)."""

    metrics = budget_metrics(entry)
    reached = int(metrics["env_steps"][-1])
    window = window_steps if window_steps is not None else max(1, reached // 10)
    per_seed = window_means(metrics, METRIC, window)
    intrinsic = math.nan
    columns = _intrinsic_columns(metrics)
    if columns:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            intrinsic = float(np.nanmean([window_means(metrics, c, window) for c in columns]))
    low, high = bootstrap_ci(per_seed)
    paper, source = PAPER_RESULTS.get(entry.name, (math.nan, ""))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = float(np.nanmean(per_seed))
    extra = {}
    for name in also:
        if name not in metrics:
            extra[name] = (math.nan, math.nan, math.nan)
            continue
        values = window_means(metrics, name, window)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            extra[name] = (float(np.nanmean(values)), *bootstrap_ci(values))
    return Summary(entry.name, per_seed, mean, interquartile_mean(per_seed), low, high,
                   intrinsic, reached, paper, source, extra)


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return "–"
    return f"{x:.3f}" if abs(x) < 10 else f"{x:.1f}"


def write_tables(summaries: Sequence[Summary], out: Path) -> tuple[Path, Path]:
    also = tuple(summaries[0].also) if summaries else ()
    """``comparison.csv`` (machine-readable) and ``comparison.md`` (for reading)."""
    out.mkdir(parents=True, exist_ok=True)
    num_seeds = max(len(s.per_seed) for s in summaries)
    csv_path = out / "comparison.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["preset", "env_steps", "mean", "iqm", "ci_low", "ci_high",
                         "intrinsic_per_agent", "paper", "paper_source",
                         *[f"seed{k}" for k in range(num_seeds)],
                         *[f"{m}_{part}" for m in also for part in ("mean", "ci_low",
                                                                    "ci_high")]])
        for s in summaries:
            writer.writerow([s.name, s.env_steps, s.mean, s.iqm, s.ci_low, s.ci_high,
                             s.intrinsic, s.paper, s.source,
                             *[repr(float(v)) for v in s.per_seed],
                             *[v for m in also for v in s.also[m]]])
    md_path = out / "comparison.md"
    lines = ["| preset | env steps / seed | seeds | collective return (mean) | IQM | 95% CI "
             "| intrinsic / agent | paper | paper source |"
             + "".join(f" {m} (mean, 95% CI) |" for m in also),
             "|---|---|---|---|---|---|---|---|---|" + "---|" * len(also)]
    for s in summaries:
        seeds = int(np.isfinite(s.per_seed).sum())
        extra = "".join(f" {_fmt(s.also[m][0])} [{_fmt(s.also[m][1])}, {_fmt(s.also[m][2])}] |"
                        for m in also)
        lines.append(f"| {s.name} | {s.env_steps:,} | {seeds} | {_fmt(s.mean)} | {_fmt(s.iqm)} "
                     f"| [{_fmt(s.ci_low)}, {_fmt(s.ci_high)}] | {_fmt(s.intrinsic)} "
                     f"| {_fmt(s.paper)} | {s.source or '–'} |" + extra)
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def _curve_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and a 95% bootstrap band at each logged iteration (cheap: 500
    resamples of the seed axis, shared across iterations)."""
    rng = np.random.default_rng(0)
    num_seeds = values.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmean(values, axis=1)
        if num_seeds < 2:
            return centre, centre, centre
        picks = rng.integers(0, num_seeds, size=(500, num_seeds))
        means = np.nanmean(values[:, picks], axis=2)  # [U, 500]
        return centre, np.nanpercentile(means, 2.5, axis=1), np.nanpercentile(means, 97.5,
                                                                             axis=1)


def plot(entries: Sequence[Entry], summaries: Sequence[Summary], path: Path) -> Path:
    from matplotlib.figure import Figure


    fig = Figure(figsize=(12, 4.5), layout="constrained")
    curves, bars = fig.subplots(1, 2, width_ratios=(3, 2))
    for k, entry in enumerate(entries):
        metrics = budget_metrics(entry)
        centre, low, high = _curve_band(np.asarray(metrics[METRIC], np.float64))
        ok = np.isfinite(centre)
        x = metrics["env_steps"][ok]
        curves.plot(x, centre[ok], color=f"C{k}", label=entry.name)
        curves.fill_between(x, low[ok], high[ok], color=f"C{k}", alpha=0.2, linewidth=0)
    curves.set_xlabel("environment steps (per seed)")
    curves.set_ylabel("collective return (extrinsic)")
    curves.set_title("mean over seeds, 95% bootstrap band")
    curves.legend(fontsize="small")
    labelled = False
    for k, s in enumerate(summaries):
        err = ([[s.mean - s.ci_low], [s.ci_high - s.mean]] if np.isfinite(s.ci_low)
               else None)
        bars.bar(k, s.mean, color=f"C{k}", alpha=0.7, yerr=err, capsize=4)
        bars.scatter(np.full(len(s.per_seed), k), s.per_seed, color="k", s=10, zorder=3)
        if np.isfinite(s.paper):
            bars.scatter([k], [s.paper], marker="D", facecolor="none", edgecolor="r", s=60,
                         zorder=4, label=None if labelled else "paper (its own budget)")
            labelled = True
    bars.set_xticks(range(len(summaries)), [s.name.rsplit("/", 1)[-1] for s in summaries])
    bars.set_title("last-window mean, 95% CI; dots: seeds")
    if labelled:
        bars.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def train_all(entries: Sequence[Entry], ray_address: str | None, progress: bool) -> None:
    """Train every entry: in this process one after the other, or as Ray tasks."""
    by_name = {entry.name: entry for entry in entries}
    run_jobs(train_entry, {e.name: (e, progress and ray_address is None) for e in entries},
             ray_address,
             before=lambda name: print(f"== {name} -> {by_name[name].run_dir}"),
             after=lambda name, done: print(f"   {name}: {done}"))


def compare_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="prosocial compare", description=__doc__.split("\n\n")[0],
        epilog="Any other flag is a training flag (as for prosocial train) applied to every "
               "preset, e.g. --total-steps 2000000 --num-seeds 3 --num-envs 16.")
    parser.add_argument("presets", nargs="+", help="preset names (prosocial train --help)")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"),
                        help="(default: runs/compare)")
    parser.add_argument("--window-steps", type=int, default=None,
                        help="env steps at the end of training averaged per seed "
                             "(default: the last 10%% of the budget)")
    add_ray_argument(parser, "the presets")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--also", nargs="+", default=(), metavar="METRIC",
                        help="more logged metrics to tabulate the same way (e.g. "
                             "own_coin_share, episode_length, alive)")
    parser.add_argument("--summarise-only", action="store_true",
                        help="write the table and plot from the existing runs")
    args, flags = parser.parse_known_args(argv)
    if args.window_steps is not None and args.window_steps <= 0:
        parser.error(f"--window-steps must be positive, got {args.window_steps}")
    try:
        entries = plan(args.presets, flags, args.out)
    except ValueError as e:
        parser.error(" ".join(str(e).split()))
    if not args.summarise_only:
        train_all(entries, args.ray, not args.no_progress)
    missing = [e.name for e in entries if not (e.run_dir / "metrics.csv").exists()]
    if missing:
        parser.error(f"no results yet for {missing}; run without --summarise-only")
    summaries = [summarise(e, args.window_steps, args.also) for e in entries]
    _, md = write_tables(summaries, args.out)
    png = plot(entries, summaries, args.out / "comparison.png")
    sys.stdout.write(md.read_text())
    print(f"table: {md} and {args.out / 'comparison.csv'}; plot: {png}")
