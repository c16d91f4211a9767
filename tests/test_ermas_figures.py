"""Figure commands and the evaluation protocol: configs, scaling and tables (fast parts);
the tiny end-to-end runs are marked slow."""

from itertools import pairwise

import numpy as np
import pytest

from prosocial.ermas.evaluation import test_config as make_test_config
from prosocial.ermas.loop import replace_ermas
from prosocial.experiments import figures as F
from prosocial.experiments.presets.ermas import preset


def test_test_config_drops_training_changes():
    cfg = preset("ermas/bimatrix-reference-code/rr")
    test = make_test_config(cfg, 0.3, iterations=7, extra_options={"action_perturb": 0.1})
    # the RR transform is a training device: the planner is judged on its own reward
    assert test.env_options == {"ref_bimatrix_extra_step": True, "perturb_q": 0.3,
                                "action_perturb": 0.1}
    assert test.ermas.method == "marl" and not test.train_planner
    assert test.outer_iterations == 7 and test.agent_ppo == cfg.agent_ppo
    dr = make_test_config(preset("ermas/bimatrix/dr"), 0.0, 1)
    assert dr.env_options == {"perturb_q": 0.0}


def test_scaled_budget_and_epsilon():
    scale = F.Scale(seeds=2, episodes=100, episode_steps=500, eval_episodes=3)
    configs = F.fig3_configs(scale)
    assert list(configs) == ["marl", "ermas_eps-10", "ermas_eps5", "ermas_eps20"]
    e20 = configs["ermas_eps20"]
    # ε in episode-return units scales with the episode: 20 · 500 / 5000 = 2
    assert e20.ermas.epsilon == pytest.approx(2.0)
    assert e20.env == "bimatrix-constrained" and e20.env_options == {"max_steps": 500}
    # 100 episodes × 500 steps / (3 × 12 000) = 1.39 → 2 outer iterations
    assert e20.outer_iterations == 2 and e20.num_seeds == 2 and e20.ermas.eval_episodes == 3
    # 12 episodes × 500 steps / 36 000 per iteration → 1 iteration
    assert F.window(e20) == 1
    assert F.window(preset("ermas/bimatrix/ermas")) == 2  # 60 000 / 36 000 → 2
    f4 = F.fig4_configs(scale)
    fixed = f4["fixed_lambda3"].ermas
    assert (fixed.freeze_lambda, fixed.initial_lambda, fixed.use_meta, fixed.alpha_lr,
            fixed.inner_me_iterations, fixed.inner_main_iterations) == (
        True, 3.0, False, 0.001, 3, 2)
    assert f4["meta_beta1"].ermas.use_meta and f4["meta_beta1"].ermas.metascale == 1.0
    f5 = F.fig5_configs(scale)
    assert f5["oracle"].env_options == {"perturb_q": 0.5, "max_steps": 500}
    assert f5["ermas"].env == "bimatrix"



def test_deviation_flags_reach_every_ermas_config():
    plain = F.Scale(seeds=2, episodes=100, episode_steps=500, eval_episodes=3)
    trpo = F.Scale(seeds=2, episodes=100, episode_steps=500, eval_episodes=3,
                   deviation="trpo", rho=0.02)
    for make in (F.fig3_configs, F.fig4_configs, F.fig5_configs):
        before, after = make(plain), make(trpo)
        assert list(before) == list(after)
        for name, cfg in after.items():
            if cfg.ermas.method == "ermas":
                assert (cfg.ermas.deviation, cfg.ermas.rho) == ("trpo", 0.02), name
                # nothing else changes
                assert cfg == replace_ermas(before[name], deviation="trpo", rho=0.02)
            else:  # MARL, oracle, DR, RR: no deviations, config untouched (runs reused)
                assert cfg == before[name], name
        # without the flags every preset keeps its own: SRAI's PPO deviations, no ρ
        assert {(c.ermas.deviation, c.ermas.rho) for c in before.values()} == {("ppo", None)}
    assert [n for n, c in F.fig5_configs(trpo).items() if c.ermas.deviation == "trpo"] == [
        "ermas"]
    assert len(F.fig4_configs(trpo)) == 1 + 5 + 3  # every Fig. 4 run is an ERMAS run
    # ρ alone: PPO deviations stopped at mean KL 0.5
    kl = F.fig3_configs(F.Scale(rho=0.5))["ermas_eps5"].ermas
    assert (kl.deviation, kl.rho) == ("ppo", 0.5)
    with pytest.raises(ValueError, match="needs ermas.rho"):
        F.fig3_configs(F.Scale(deviation="trpo"))


def test_deviation_header():
    trpo = F.fig5_configs(F.Scale(deviation="trpo", rho=0.02))
    assert F.deviation_header(trpo) == "ERMAS deviations: trpo, ρ 0.02"
    assert F.deviation_header(F.fig3_configs(F.Scale())) == "ERMAS deviations: ppo, ρ none"
    marl = {"marl": preset("ermas/bimatrix/marl")}
    assert F.deviation_header(marl) == "ERMAS deviations: none (no ERMAS runs)"


def test_figure_cli_passes_deviation(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake(out, scale, progress, ray_address):
        seen.update(out=out, scale=scale, ray=ray_address)
        return "claims"

    monkeypatch.setitem(F.FIGURES, "ermas-fig4", fake)
    F.figure_main(["ermas-fig4", "--out", str(tmp_path), "--deviation", "trpo", "--rho",
                   "0.05", "--no-progress"])
    assert seen["scale"].deviation == "trpo" and seen["scale"].rho == 0.05
    assert capsys.readouterr().out.splitlines() == ["ERMAS deviations: trpo, ρ 0.05",
                                                    "claims"]
    F.figure_main(["ermas-fig4", "--out", str(tmp_path), "--no-progress"])
    assert seen["scale"].deviation is None and seen["scale"].rho is None
    assert capsys.readouterr().out.splitlines()[0] == "ERMAS deviations: ppo, ρ none"
    assert seen["ray"] is None
    F.figure_main(["ermas-fig4", "--out", str(tmp_path), "--ray", "local", "--no-progress"])
    assert seen["ray"] == "local"


@pytest.mark.parametrize("flags, message", [
    (["--deviation", "sgd"], "invalid choice: 'sgd'"),
    (["--rho", "0"], "--rho must be a positive number"),
    (["--rho", "-0.1"], "--rho must be a positive number"),
    (["--rho", "nan"], "--rho must be a positive number"),
    (["--rho", "inf"], "--rho must be a positive number"),
    (["--deviation", "trpo"], "needs ermas.rho"),
])
def test_figure_cli_bad_deviation(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        F.figure_main(["ermas-fig3", "--out", str(tmp_path / "out"), *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing trained or written


def _fig4_rows(regrets, planner):
    names = ["learned_lambda"] + [f"fixed_lambda{lam:g}" for lam in F.FIG4_LAMBDAS]
    rows = [{"config": n, "regret_per_step_mean": r, "planner_return_mean": p}
            for n, r, p in zip(names, regrets, planner, strict=True)]
    return rows + [{"config": f"meta_beta{b:g}", "agent_return_mean": 1.0,
                    "agent_return_ci_low": 0.5, "agent_return_ci_high": 1.5}
                   for b in F.FIG4_BETAS]


@pytest.mark.parametrize("centre, spread", [(-1e-3, 1e-6), (3e-5, 1e-6), (12.3, 1e-5)])
def test_fig4_plot_tick_labels_readable(tmp_path, centre, spread):
    """Regrets a few 1e-6 apart: the left panel's x tick labels are short and do not
    overlap (with matplotlib's defaults, −0.001002 … −0.000986 in steps of 2e-6 do), and
    each fixed-λ_0 point carries its λ_0."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    regrets = [centre + k * spread for k in (0, 1, 4, 7, 9, 12)]
    planner = [0.60001, 0.60003, 0.60004, 0.60002, 0.60005, 0.60006]
    fig = F.fig4_plot(_fig4_rows(regrets, planner), tmp_path / "f4.png")
    assert (tmp_path / "f4.png").stat().st_size > 0
    renderer = FigureCanvasAgg(fig).get_renderer()
    ax = fig.axes[0]
    for axis in (ax.xaxis, ax.yaxis):
        labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
        assert 2 <= len(labels) <= 6
        assert all(len(t.get_text()) <= 6 for t in labels), [t.get_text() for t in labels]
        boxes = [t.get_window_extent(renderer) for t in labels]
        assert not any(a.overlaps(b) for a, b in pairwise(boxes))
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        f"λ_0={lam:g}" for lam in F.FIG4_LAMBDAS)

def test_table_rows(tmp_path):
    row = F._row("x", planner_return=np.array([1.0, 2.0, 3.0]))
    assert row["planner_return_mean"] == 2.0 and row["seeds"] == 3
    assert row["planner_return_ci_low"] <= 2.0 <= row["planner_return_ci_high"]
    csv_path, md_path = F.write_table([row], tmp_path, "t")
    assert csv_path.read_text().splitlines()[0].startswith("config,planner_return_mean")
    assert "| x | 2 |" in md_path.read_text()


@pytest.mark.slow
def test_fig3_tiny_end_to_end(tmp_path):
    scale = F.Scale(seeds=2, episodes=2, episode_steps=40, eval_episodes=2)
    text = F.fig3(tmp_path, scale, progress=False, epsilons=(-10.0, 20.0))
    assert "paper: R-17" in text and "measured:" in text
    assert (tmp_path / "ermas_fig3.png").is_file() and (tmp_path / "ermas_fig3.csv").is_file()


@pytest.mark.slow
def test_fig3_as_ray_tasks_gives_the_same_table(tmp_path, capsys):
    """--ray local trains the runs as Ray tasks: the same runs, bit for bit, as training
    them one after another here, and a second call reuses them all."""
    pytest.importorskip("ray")
    scale = F.Scale(seeds=2, episodes=2, episode_steps=40, eval_episodes=2)
    F.fig3(tmp_path / "here", scale, progress=False, epsilons=(5.0,))
    F.fig3(tmp_path / "ray", scale, progress=False, epsilons=(5.0,), ray_address="local")
    out = capsys.readouterr().out
    assert "(Ray task)" in out and "ermas_eps5: finished" in out
    here, ray = (tmp_path / d / "ermas_fig3.csv" for d in ("here", "ray"))
    assert ray.read_text() == here.read_text()
    F.fig3(tmp_path / "ray", scale, progress=False, epsilons=(5.0,), ray_address="local")
    assert capsys.readouterr().out.count("finished run reused") == 2  # marl, ermas_eps5


@pytest.mark.slow
def test_evaluation_protocol_tiny(tmp_path):
    import dataclasses

    from prosocial.ermas.evaluation import evaluate_planner, load_run
    from prosocial.ermas.train import train_ermas

    cfg = F.scaled(preset("ermas/bimatrix/marl"), F.Scale(seeds=2, episodes=1,
                                                          episode_steps=40, eval_episodes=2))
    cfg = dataclasses.replace(cfg, num_envs=4, num_steps=40)
    run = train_ermas(cfg, tmp_path / "run", progress=False)
    loaded, state = load_run(run)
    assert loaded == cfg
    out = evaluate_planner(loaded, state.main.pops[1].params, (0.0, 0.5), iterations=1)
    assert set(out) == {0.0, 0.5}
    assert out[0.5]["planner_return"].shape == (2,)
    assert np.all(np.isfinite(out[0.5]["agent_return"]))
    # the test game's Q reaches the agents: r_i − 0.5·r̃ with r̃ > 0 lowers their return
    assert np.all(out[0.5]["agent_return"] < out[0.0]["agent_return"])
