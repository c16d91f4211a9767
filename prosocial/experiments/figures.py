"""Paper figures as commands: ``prosocial figure ermas-fig3|ermas-fig4|ermas-fig5``.

Each command trains (or resumes, or reuses when finished) one run per configuration under
``--out``, all seeds batched in a run, then writes ``<figure>.csv`` and ``<figure>.md``
(mean and 95% percentile-bootstrap CI over seeds, ``compare.bootstrap_ci``) and
``<figure>.png``, and prints the paper's qualitative claim (specs §11.4) beside the measured
outcome.

Scale. ``--episodes`` training episodes of ``--episode-steps`` steps (paper: 50 000 × 5000)
give the outer iterations of each run (``presets.ermas.outer_iterations``). ε is in units of
episode return, so the ε values are scaled by episode-steps / 5000 at shorter episodes
(printed). Final values are means over the last outer iterations covering 12 episodes
(the paper's "final 12 episodes"), at least one iteration.

Parallel runs. ``--ray local`` trains the figure's runs side by side as Ray tasks of one
CPU each (``--ray ADDRESS``: on a cluster whose workers see ``--out``).

Deviations. ``--deviation ppo|trpo`` and ``--rho R`` set how the ERMAS runs of a figure
search each agent's deviation (``ErmasConfig.deviation``/``rho``, §9.9.3): ``trpo`` takes
the paper's TRPO steps of radius R/n_inner (needs ``--rho``), ``--rho`` with ``ppo`` stops
a deviation past mean KL R. Runs without deviations (MARL, DR, RR) are unchanged, and
without the flags every run keeps its preset's setting, so finished runs are reused.

- Fig. 3 (R-17; [ERMAS] §5.1): constrained bimatrix (passive planner), MARL and ERMAS at
  ε ∈ {−10, 5, 20}: final per-step regret and planner return against ε.
- Fig. 4 (R-18, R-19; §5.2): constrained bimatrix with the ablation settings of
  ``coop_bimatrix_3_fixed`` (ε 20, α_λ 0.001, n_inner 3, n_main 2): fixed λ_0 ∈ {0.1, 1, 3,
  5, 10} against learned λ (no meta step), and meta step β ∈ {0.05, 0.2, 1.0} (learned λ).
- Fig. 5 (R-20; §5.3): augmented bimatrix; MARL (Q = 0), MARL (Q = 0.5), ERMAS, DR, RR
  trained at Q = 0 (the oracle at 0.5), each planner then frozen and evaluated with fresh
  agents trained ``--test-episodes`` episodes at each test Q ∈ {0, 0.1, …, 0.6}
  (``prosocial.ermas.evaluation``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from prosocial.ermas.loop import ErmasRunConfig, replace_ermas
from prosocial.ermas.train import from_dict, train_ermas
from prosocial.experiments.compare import bootstrap_ci
from prosocial.experiments.jobs import add_ray_argument, run_jobs
from prosocial.experiments.presets import ermas as P

PAPER_STEPS = P.EPISODE_STEPS
Q_TEST = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


@dataclasses.dataclass(frozen=True)
class Scale:
    """How a figure's runs are sized, and the deviation search of its ERMAS runs.

    Args:
        seeds: Seeds of every run (batched in one run).
        episodes: Training episodes of each run (paper: 50 000).
        episode_steps: Steps per episode (paper: 5000); ε scales with it (:meth:`eps`).
        test_episodes: Fig. 5: episodes of fresh agents at each test Q.
        eval_episodes: E_eval, whole episodes behind each J estimate.
        deviation: ``"ppo"`` or ``"trpo"``, set on every run that has ERMAS deviations
            (``ermas.method == "ermas"``); ``None`` keeps each preset's own.
        rho: ρ, the deviations' trust-region radius (nats), set likewise; ``None`` keeps
            each preset's own.
    """

    seeds: int = 5
    episodes: int = P.TRAIN_EPISODES
    episode_steps: int = PAPER_STEPS
    test_episodes: int = 3000
    eval_episodes: int = 10
    deviation: str | None = None
    rho: float | None = None

    def eps(self, paper_eps: float) -> float:
        return paper_eps * self.episode_steps / PAPER_STEPS


def scaled(cfg: ErmasRunConfig, scale: Scale, env: str | None = None, **ermas) -> ErmasRunConfig:
    """A preset at ``scale``: seeds, episode length, budget, E_eval; ERMAS fields changed.

    ``scale.deviation`` and ``scale.rho``, where given, are set only on a config that runs
    ERMAS deviations (``method == "ermas"``): a MARL, DR or RR config has none, and
    changing its fields would only stop its finished runs from being reused. Raises
    ``ValueError`` (from :class:`ErmasConfig`) for a bad deviation or ρ, e.g. ``"trpo"``
    without ρ.
    """
    deviation = {k: v for k, v in (("deviation", scale.deviation), ("rho", scale.rho))
                 if v is not None}
    if ermas.get("method", cfg.ermas.method) == "ermas":
        ermas = dict(deviation, **ermas)
    cfg = replace_ermas(cfg, eval_episodes=scale.eval_episodes, **ermas)
    options = dict(cfg.env_options, max_steps=scale.episode_steps)
    iters = P.outer_iterations(scale.episodes, scale.episode_steps,
                               cfg.ermas.inner_main_iterations,
                               cfg.num_envs * cfg.num_steps)
    return dataclasses.replace(cfg, env=env or cfg.env, env_options=options,
                               num_seeds=scale.seeds, outer_iterations=iters,
                               checkpoint_every=max(1, min(cfg.checkpoint_every, iters)))


def window(cfg: ErmasRunConfig, episodes: int = 12) -> int:
    """Outer iterations whose main updates cover ``episodes`` episodes (≥ 1)."""
    steps = cfg.ermas.inner_main_iterations * cfg.num_envs * cfg.num_steps
    return max(1, math.ceil(episodes * cfg.env_options.get("max_steps", PAPER_STEPS) / steps))


def train_all(configs: dict[str, ErmasRunConfig], out: Path, progress: bool,
              ray_address: str | None = None) -> dict[str, Path]:
    """Train, resume or reuse one run per configuration under ``out/runs/<name>``, here one
    after another or side by side as Ray tasks (``ray_address``, ``experiments.jobs``)."""
    from prosocial.io import Checkpointer
    from prosocial.io.rundir import load_run_config

    dirs, jobs, starts = {}, {}, {}
    for name, cfg in configs.items():
        run_dir = (out / "runs" / name.replace("/", "_")).resolve()
        resume = (run_dir / "config.json").is_file()
        if resume:
            with Checkpointer(run_dir, read_only=True) as ckpt:
                steps = ckpt.latest_step() or 0
            if steps >= cfg.outer_iterations and from_dict(load_run_config(run_dir)) == cfg:
                print(f"{name}: finished run reused ({run_dir})")
                dirs[name] = run_dir
                continue
        starts[name] = (f"{name}: {'resuming' if resume else 'training'} "
                        f"{cfg.outer_iterations} outer iterations × {cfg.num_seeds} seeds in "
                        f"{run_dir}" + (" (Ray task)" if ray_address else ""))
        jobs[name] = (cfg, run_dir, resume, progress and ray_address is None)
    done = run_jobs(train_ermas, jobs, ray_address, before=lambda name: print(starts[name]),
                    after=lambda name, _: print(f"{name}: finished"))
    dirs.update({name: Path(path) for name, path in done.items()})
    return {name: dirs[name] for name in configs}


def final(run_dir: Path, column: str, last: int) -> np.ndarray:
    """Per-seed mean of ``column`` over the last ``last`` outer iterations: ``[S]``."""
    from prosocial.io import read_metrics

    values = np.asarray(read_metrics(run_dir)[column], np.float64)
    return np.nanmean(values[-last:], axis=0)


def stats(values) -> dict[str, float]:
    values = np.asarray(values, np.float64)
    lo, hi = bootstrap_ci(values)
    return {"mean": float(np.nanmean(values)), "ci_low": lo, "ci_high": hi,
            "seeds": int(np.isfinite(values).sum())}


def write_table(rows: list[dict], out: Path, name: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))  # every column, first-seen order
    rows = [{k: r.get(k, float("nan")) for k in keys} for r in rows]
    csv_path, md_path = out / f"{name}.csv", out / f"{name}.md"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(rows)

    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def _errorbar(ax, xs, rows, key, label, color):
    mean = np.array([r[f"{key}_mean"] for r in rows])
    lo = np.array([r[f"{key}_ci_low"] for r in rows])
    hi = np.array([r[f"{key}_ci_high"] for r in rows])
    yerr = np.vstack([mean - lo, hi - mean])
    yerr = np.where(np.isfinite(yerr), yerr, 0.0)
    ax.errorbar(xs, mean, yerr=yerr, marker="o", capsize=3, label=label, color=color)


def _row(name: str, **groups) -> dict:
    row = {"config": name}
    for key, values in groups.items():
        s = stats(values)
        row.update({f"{key}_mean": s["mean"], f"{key}_ci_low": s["ci_low"],
                    f"{key}_ci_high": s["ci_high"]})
        row["seeds"] = s["seeds"]
    return row


def _claim(text: str, measured: str, holds: bool | None) -> str:
    verdict = {True: "HOLDS", False: "DOES NOT HOLD", None: "UNDECIDED"}[holds]
    return f"paper: {text}\nmeasured: {measured}\n=> {verdict}"


# --- Fig. 3 ------------------------------------------------------------------------------

FIG3_EPS = (-10.0, 5.0, 20.0)


def fig3_configs(scale: Scale, epsilons=FIG3_EPS) -> dict[str, ErmasRunConfig]:
    env = "bimatrix-constrained"
    configs = {"marl": scaled(P.marl(), scale, env)}
    for e in epsilons:
        configs[f"ermas_eps{e:g}"] = scaled(P.ermas(), scale, env, epsilon=scale.eps(e))
    return configs


def fig3(out: Path, scale: Scale, progress: bool = True, epsilons=FIG3_EPS,
         ray_address: str | None = None) -> str:
    configs = fig3_configs(scale, epsilons)
    dirs = train_all(configs, out, progress, ray_address)
    rows = []
    for name, cfg in configs.items():
        last = window(cfg)
        groups = {"planner_return_per_step": final(dirs[name], "planner_return", last)
                  / scale.episode_steps}
        if cfg.ermas.method == "ermas":
            reg = np.nanmean([final(dirs[name], f"regret_per_step_{i}", last)
                              for i in (0, 1)], axis=0)
            groups["regret_per_step"] = reg
        row = _row(name, **groups)
        row["epsilon"] = cfg.ermas.epsilon if cfg.ermas.method == "ermas" else float("nan")
        rows.append(row)
    write_table(rows, out, "ermas_fig3")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_r, ax_p = fig.subplots(1, 2)
    ermas_rows = rows[1:]
    xs = list(epsilons)
    _errorbar(ax_r, xs, ermas_rows, "regret_per_step", "ERMAS", "C1")
    _errorbar(ax_p, xs, ermas_rows, "planner_return_per_step", "ERMAS", "C1")
    ax_p.axhline(rows[0]["planner_return_per_step_mean"], color="C0", label="MARL")
    ax_r.set(xlabel="ε (paper units, 5000-step episodes)", ylabel="agents' per-step regret")
    ax_p.set(xlabel="ε (paper units, 5000-step episodes)", ylabel="planner reward per step")
    ax_p.legend()
    fig.savefig(out / "ermas_fig3.png", dpi=120)
    regrets = [r["regret_per_step_mean"] for r in ermas_rows]
    planner = [r["planner_return_per_step_mean"] for r in ermas_rows]
    grows = all(b >= a for a, b in zip(regrets, regrets[1:], strict=False))
    falls = planner[-1] < planner[0]
    small_close = abs(planner[0] - rows[0]["planner_return_per_step_mean"]) <= max(
        rows[0]["planner_return_per_step_ci_high"] - rows[0]["planner_return_per_step_ci_low"],
        1e-9)
    return _claim(
        "R-17: MARL reaches the NE (high planner reward); ERMAS with small ε too; larger ε "
        "gives lower planner reward; per-step regret grows with ε",
        f"ε {xs}: regret/step {np.round(regrets, 5).tolist()}, planner/step "
        f"{np.round(planner, 4).tolist()}, MARL planner/step "
        f"{rows[0]['planner_return_per_step_mean']:.4f}; regret grows: {grows}; planner "
        f"lower at largest ε: {falls}; smallest ε within MARL's CI width: {small_close}",
        grows and falls and small_close)


# --- Fig. 4 ------------------------------------------------------------------------------

FIG4_LAMBDAS = (0.1, 1.0, 3.0, 5.0, 10.0)
FIG4_BETAS = (0.05, 0.2, 1.0)
ABLATION = {"epsilon": 20.0, "alpha_lr": 0.001, "inner_me_iterations": 3,
            "inner_main_iterations": 2}


def fig4_configs(scale: Scale) -> dict[str, ErmasRunConfig]:
    env = "bimatrix-constrained"
    base = dict(ABLATION, epsilon=scale.eps(ABLATION["epsilon"]))
    configs = {"learned_lambda": scaled(P.ermas(), scale, env, use_meta=False, **base)}
    for lam in FIG4_LAMBDAS:
        configs[f"fixed_lambda{lam:g}"] = scaled(P.ermas(), scale, env, use_meta=False,
                                                 freeze_lambda=True, initial_lambda=lam,
                                                 **base)
    for beta in FIG4_BETAS:
        configs[f"meta_beta{beta:g}"] = scaled(P.ermas(), scale, env, use_meta=True,
                                               metascale=beta, **base)
    return configs


def _time_to(run_dir: Path, column_prefix: str, frac: float = 0.9) -> float:
    """Mean over seeds of the first outer iteration whose agent return (mean over agents)
    reaches ``frac`` of the run's final value."""
    from prosocial.io import read_metrics

    m = read_metrics(run_dir)
    cols = [k for k in m if k.startswith(column_prefix)]
    curve = np.nanmean([m[c] for c in cols], axis=0)  # [U, S]
    out = []
    for s in range(curve.shape[1]):
        target = frac * curve[-1, s]
        hit = np.nonzero(curve[:, s] >= target)[0]
        out.append(float(m["update"][hit[0]]) if hit.size else np.nan)
    return float(np.nanmean(out))


def fig4_plot(rows: list[dict], path: Path):
    """Fig. 4's plot of the rows of ``fig4`` (one per config, ``_row`` columns), saved to
    ``path``; returns the matplotlib ``Figure``.

    Left: final per-step regret against planner return, one point per fixed λ_0 (labelled
    with its λ_0) and a star for learned λ. Regrets differ by as little as 1e-5, so both
    axes use few ticks (``MaxNLocator(4)``) and scientific notation with an offset (the
    common exponent and the common part written once at the axis end), which keeps the
    tick labels short. Right: final agent return (95% CI) against the meta weight β.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_l, ax_b = fig.subplots(1, 2)
    by = {r["config"]: r for r in rows}
    fixed = [by[f"fixed_lambda{lam:g}"] for lam in FIG4_LAMBDAS]
    ax_l.scatter([r["regret_per_step_mean"] for r in fixed],
                 [r["planner_return_mean"] for r in fixed], label="fixed λ_0")
    for lam, r in zip(FIG4_LAMBDAS, fixed, strict=True):
        ax_l.annotate(f"λ_0={lam:g}", (r["regret_per_step_mean"], r["planner_return_mean"]),
                      xytext=(4, 4), textcoords="offset points", fontsize="small")
    learned = by["learned_lambda"]
    ax_l.scatter([learned["regret_per_step_mean"]], [learned["planner_return_mean"]],
                 marker="*", s=150, label="learned λ")
    for axis in (ax_l.xaxis, ax_l.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=4))
    ax_l.ticklabel_format(axis="both", style="sci", scilimits=(-2, 3), useOffset=True)
    ax_l.margins(0.15)  # room for the λ_0 labels
    ax_l.set(xlabel="per-step regret", ylabel="planner return")
    ax_l.legend()
    metas = [by[f"meta_beta{b:g}"] for b in FIG4_BETAS]
    _errorbar(ax_b, list(FIG4_BETAS), metas, "agent_return", "final agent return", "C2")
    ax_b.set(xscale="log", xlabel="meta weight β", ylabel="agent return")
    fig.savefig(path, dpi=120)
    return fig


def fig4(out: Path, scale: Scale, progress: bool = True,
         ray_address: str | None = None) -> str:
    configs = fig4_configs(scale)
    dirs = train_all(configs, out, progress, ray_address)
    rows = []
    for name, cfg in configs.items():
        last = window(cfg)
        agent = np.nanmean([final(dirs[name], f"agent_return_{i}", last) for i in (0, 1)],
                           axis=0)
        reg = np.nanmean([final(dirs[name], f"regret_per_step_{i}", last) for i in (0, 1)],
                         axis=0)
        row = _row(name, planner_return=final(dirs[name], "planner_return", last),
                   agent_return=agent, regret_per_step=reg)
        row["iterations_to_90pct_agent_return"] = _time_to(dirs[name], "agent_return_")
        rows.append(row)
    write_table(rows, out, "ermas_fig4")
    fig4_plot(rows, out / "ermas_fig4.png")
    by = {r["config"]: r for r in rows}
    fixed = [by[f"fixed_lambda{lam:g}"] for lam in FIG4_LAMBDAS]
    learned = by["learned_lambda"]
    metas = [by[f"meta_beta{b:g}"] for b in FIG4_BETAS]
    lower = all(learned["planner_return_mean"] < r["planner_return_ci_low"] for r in fixed)
    speeds = [r["iterations_to_90pct_agent_return"] for r in metas]
    claim18 = _claim(
        "R-18: the equilibria found with learned λ (lower planner reward, low regret) are not "
        "reached by any fixed λ_0",
        f"learned λ planner {learned['planner_return_mean']:.4g} (regret/step "
        f"{learned['regret_per_step_mean']:.3g}); fixed λ_0 {FIG4_LAMBDAS}: planner "
        f"{[round(r['planner_return_mean'], 4) for r in fixed]}; learned below every fixed "
        f"λ_0's CI: {lower}", lower)
    claim19 = _claim(
        "R-19: a middle β converges fast and stays adversarial; β > 1/N and β ≈ 0 fail; "
        "larger β reaches higher agent reward ~half an order of magnitude faster",
        f"β {FIG4_BETAS}: final agent return "
        f"{[round(r['agent_return_mean'], 4) for r in metas]}, planner "
        f"{[round(r['planner_return_mean'], 4) for r in metas]}, iterations to 90% of final "
        f"agent return {speeds}", None)
    return claim18 + "\n\n" + claim19


# --- Fig. 5 ------------------------------------------------------------------------------

FIG5_METHODS = ("marl", "oracle", "ermas", "dr", "rr")
FIG5_LABELS = {"marl": "MARL (Q=0)", "oracle": "MARL (Q=0.5)", "ermas": "ERMAS",
               "dr": "DR", "rr": "RR"}


def fig5_configs(scale: Scale) -> dict[str, ErmasRunConfig]:
    return {m: scaled(P.PRESETS[f"ermas/bimatrix/{m}"](), scale, "bimatrix")
            for m in FIG5_METHODS}


def fig5(out: Path, scale: Scale, progress: bool = True, q_values=Q_TEST,
         ray_address: str | None = None) -> str:
    from prosocial.ermas.evaluation import evaluate_planner, load_run

    configs = fig5_configs(scale)
    dirs = train_all(configs, out, progress, ray_address)
    test_iters = P.outer_iterations(scale.test_episodes, scale.episode_steps, 1,
                                    P.BATCH)
    results_path = out / "ermas_fig5_eval.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    rows = []
    for name in FIG5_METHODS:
        if name not in results:
            cfg, state = load_run(dirs[name])
            print(f"{name}: evaluating the frozen planner at Q {list(q_values)} "
                  f"({test_iters} iterations of fresh agents each)")
            got = evaluate_planner(cfg, state.main.pops[1].params, q_values, test_iters)
            results[name] = {str(q): v["planner_return"].tolist() for q, v in got.items()}
            results_path.write_text(json.dumps(results))
        for q in q_values:
            row = _row(name, planner_return=np.asarray(results[name][str(float(q))]))
            row["q_test"] = float(q)
            rows.append(row)
    write_table(rows, out, "ermas_fig5")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for k, name in enumerate(FIG5_METHODS):
        _errorbar(ax, list(q_values), [r for r in rows if r["config"] == name],
                  "planner_return", FIG5_LABELS[name], f"C{k}")
    ax.set(xlabel="test Q", ylabel="planner return (frozen planner, fresh agents)")
    ax.legend(fontsize="small")
    fig.savefig(out / "ermas_fig5.png", dpi=120)

    def curve(name):
        return np.array([r["planner_return_mean"] for r in rows if r["config"] == name])

    qs = np.asarray(q_values)
    m0, m5, er = curve("marl"), curve("oracle"), curve("ermas")
    cross = bool(np.all(m5[qs < 0.3] < m0[qs < 0.3]) and np.all(m5[qs >= 0.3] > m0[qs >= 0.3]))
    ermas_ok = bool(np.all(er >= m5))
    return _claim(
        "R-20: MARL(Q=0.5) worse than MARL(Q=0) for Q < 0.3 and better above; ERMAS (trained "
        "at Q=0) at least as good as MARL(Q=0.5); DR and RR give no meaningful robustness",
        f"Q {list(q_values)}: MARL(0) {np.round(m0, 3).tolist()}, MARL(0.5) "
        f"{np.round(m5, 3).tolist()}, ERMAS {np.round(er, 3).tolist()}, DR "
        f"{np.round(curve('dr'), 3).tolist()}, RR {np.round(curve('rr'), 3).tolist()}; "
        f"crossing at 0.3: {cross}; ERMAS ≥ MARL(0.5) everywhere: {ermas_ok}",
        cross and ermas_ok)


FIGURES = {"ermas-fig3": fig3, "ermas-fig4": fig4, "ermas-fig5": fig5}
FIGURE_CONFIGS = {"ermas-fig3": fig3_configs, "ermas-fig4": fig4_configs,
                  "ermas-fig5": fig5_configs}


def deviation_header(configs: dict[str, ErmasRunConfig]) -> str:
    """One line naming the deviation search (and ρ) of the ERMAS runs among ``configs``."""
    ermas = [c.ermas for c in configs.values() if c.ermas.method == "ermas"]
    kinds = sorted({(e.deviation, "none" if e.rho is None else f"{e.rho:g}") for e in ermas})
    text = "; ".join(f"{d}, ρ {r}" for d, r in kinds) or "none (no ERMAS runs)"
    return f"ERMAS deviations: {text}"


def figure_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="prosocial figure", description="Reproduce a paper figure: train its runs "
        "(resumable), write the table (mean, 95% CI over seeds) and the plot, and print "
        "the paper's claim beside the measured outcome.")
    parser.add_argument("figure", choices=sorted(FIGURES))
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=P.TRAIN_EPISODES,
                        help="training episodes per run (paper: 50000)")
    parser.add_argument("--episode-steps", type=int, default=PAPER_STEPS,
                        help="steps per episode (paper: 5000); ε scales with it")
    parser.add_argument("--test-episodes", type=int, default=3000,
                        help="Fig. 5: episodes of fresh agents at each test Q (paper: 3000)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="E_eval")
    parser.add_argument("--deviation", choices=("ppo", "trpo"),
                        help="deviation search of the figure's ERMAS runs: ppo = SRAI's PPO "
                             "iterations; trpo = the paper's TRPO steps of radius "
                             "rho/inner iterations, needs --rho (default: the presets', ppo)")
    parser.add_argument("--rho", type=float,
                        help="trust-region radius ρ (mean KL, nats) of the ERMAS runs' "
                             "deviations: the TRPO radius, or with ppo the KL at which a "
                             "deviation stops (default: the presets', none)")
    add_ray_argument(parser, "the figure's runs")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for name in ("seeds", "episodes", "episode_steps", "test_episodes", "eval_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if args.rho is not None and not (math.isfinite(args.rho) and args.rho > 0):
        parser.error(f"--rho must be a positive number (nats), got {args.rho:g}")
    scale = Scale(args.seeds, args.episodes, args.episode_steps, args.test_episodes,
                  args.eval_episodes, args.deviation, args.rho)
    try:
        configs = FIGURE_CONFIGS[args.figure](scale)
    except ValueError as err:
        hint = " (give --rho)" if args.deviation == "trpo" and args.rho is None else ""
        parser.error(f"{err}{hint}")
    print(deviation_header(configs))
    if scale.episode_steps != PAPER_STEPS:
        print(f"episodes of {scale.episode_steps} steps: ε values scaled by "
              f"{scale.episode_steps / PAPER_STEPS:g}")
    print(FIGURES[args.figure](args.out, scale, progress=not args.no_progress,
                               ray_address=args.ray))


__all__ = ["FIGURES", "FIGURE_CONFIGS", "Scale", "deviation_header", "fig3", "fig3_configs",
           "fig4", "fig4_configs", "fig4_plot", "fig5", "fig5_configs", "figure_main",
           "scaled", "window"]
