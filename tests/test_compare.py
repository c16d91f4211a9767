"""`prosocial compare`: the window statistic, its CI, the tables and a real two-preset run."""

import csv
import math

import numpy as np
import pytest

from prosocial.cli import main
from prosocial.experiments.compare import (
    PAPER_RESULTS,
    bootstrap_ci,
    config_differences,
    interquartile_mean,
    plan,
    summarise,
    window_means,
)
from prosocial.io import MetricsLogger

TINY = ["--env", "cleanup", "--num-agents", "2", "--max-steps", "64", "--num-envs", "2",
        "--num-steps", "64", "--num-seeds", "2", "--total-steps", "256", "--gif-steps", "0"]


def test_window_means_average_the_last_steps_per_seed_skipping_nan():
    # Iterations end at env steps 100, 200, 300, 400. A 200-step window keeps the
    # iterations with env_steps > 400 - 200, i.e. 300 and 400.
    # seed 0: (3 + 5) / 2 = 4; seed 1: NaN at 300, so only 7.
    metrics = {"env_steps": np.array([100, 200, 300, 400]),
               "r": np.array([[1.0, 1.0], [2.0, 2.0], [3.0, np.nan], [5.0, 7.0]])}
    np.testing.assert_allclose(window_means(metrics, "r", 200), [4.0, 7.0])
    # A window shorter than one iteration keeps the last iteration only.
    np.testing.assert_allclose(window_means(metrics, "r", 1), [5.0, 7.0])


def test_interquartile_mean_trims_a_quarter_each_side():
    # 8 finite values, sorted -50, 1, 2, 3, 4, 5, 6, 100: trim 2 at each end, keep
    # 2, 3, 4, 5 -> 3.5 (the outliers do not count); NaN is ignored.
    values = np.array([100.0, 1, 2, 3, 4, 5, 6, -50, np.nan])
    assert interquartile_mean(values) == pytest.approx(3.5)


def test_bootstrap_ci_brackets_the_mean_and_needs_two_seeds():
    values = np.array([10.0, 12.0, 14.0, 16.0, 18.0])
    low, high = bootstrap_ci(values)
    # A percentile CI of the mean lies within [min, max] and around the mean 14.
    assert 10.0 <= low < 14.0 < high <= 18.0
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([3.0, np.nan])))
    assert bootstrap_ci(np.array([2.0, 2.0, 2.0])) == (2.0, 2.0)


def _fake_run(run_dir, returns, intrinsic=None):
    run_dir.mkdir(parents=True)
    with MetricsLogger(run_dir, num_seeds=returns.shape[1], tensorboard=False) as log:
        for u, row in enumerate(returns, start=1):
            metrics = {"collective_return": row}
            if intrinsic is not None:
                metrics["intrinsic_return"] = intrinsic[u - 1]
            log.log(u, 1000 * u, metrics)


def test_summarise_reports_window_stats_intrinsic_and_the_paper(tmp_path):
    # a budget of 10 iterations of 128 steps, the iterations the fake run logs
    (entry,) = plan(["emurel/cleanup/ia"], [*TINY, "--total-steps", "1280"], tmp_path)
    assert entry.cfg.num_iterations == 10
    returns = np.array([[0.0, 0.0, 0.0]] * 9 + [[10.0, 20.0, 30.0]])
    # intrinsic per agent [U, S, N=2]: in the last iteration -1 and -3 per agent -> mean -2
    intrinsic = np.zeros((10, 3, 2))
    intrinsic[-1] = [[-1.0, -3.0]] * 3
    _fake_run(entry.run_dir, returns, intrinsic)
    s = summarise(entry)  # default window: last 10% of 10 000 steps = the last iteration
    np.testing.assert_allclose(s.per_seed, [10.0, 20.0, 30.0])
    assert s.mean == pytest.approx(20.0) and s.env_steps == 10_000
    assert s.ci_low >= 10.0 and s.ci_high <= 30.0
    assert s.intrinsic == pytest.approx(-2.0)
    assert (s.paper, s.source) == PAPER_RESULTS["emurel/cleanup/ia"]
    s2 = summarise(entry, window_steps=2000)  # the last two iterations: (0 + x) / 2
    np.testing.assert_allclose(s2.per_seed, [5.0, 10.0, 15.0])
    # --also: the same window mean for another metric (here the first agent's intrinsic
    # return: -1 for every seed), and NaN for a metric the run does not log
    s3 = summarise(entry, also=("intrinsic_return_0", "own_coin_share"))
    assert s3.also["intrinsic_return_0"] == (-1.0, -1.0, -1.0)
    assert all(math.isnan(v) for v in s3.also["own_coin_share"])
    # The same run in a comparison with half the budget counts its first 5 iterations only.
    (half,) = plan(["emurel/cleanup/ia"], [*TINY, "--total-steps", "640"], tmp_path)
    assert summarise(half).env_steps == 5000 and summarise(half).mean == 0.0


def test_plan_rejects_unknown_or_repeated_presets(tmp_path):
    with pytest.raises(SystemExit):
        plan(["no/such/preset"], [], tmp_path)
    with pytest.raises(ValueError, match="twice"):
        plan(["quick", "quick"], [], tmp_path)
    with pytest.raises(ValueError, match="at least one"):
        plan([], [], tmp_path)


def test_compare_command_trains_resumes_and_writes_the_table(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "quick", "emurel/cleanup/ia", "--out", str(out), "--no-progress",
            *TINY]
    main(argv)
    first = capsys.readouterr().out
    assert "quick: trained" in first and "emurel/cleanup/ia: trained" in first
    with open(out / "comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["preset"] for r in rows] == ["quick", "emurel/cleanup/ia"]
    assert all(int(r["env_steps"]) == 256 for r in rows)
    assert all(math.isfinite(float(r["mean"])) for r in rows)
    assert float(rows[1]["paper"]) == 431.7 and rows[0]["paper"] == "nan"
    assert (out / "comparison.png").stat().st_size > 0
    assert "431.7" in (out / "comparison.md").read_text()
    # Again: both runs reached their budget, so nothing is trained a second time.
    main(argv)
    assert "quick: already finished" in capsys.readouterr().out


@pytest.mark.slow
def test_compare_runs_presets_as_ray_tasks(tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    main(["compare", "quick", "emurel/cleanup/ia", "--out", str(out), "--ray", "local", *TINY])
    text = capsys.readouterr().out
    assert "quick: trained" in text and "emurel/cleanup/ia: trained" in text
    assert (out / "quick" / "metrics.csv").exists()
    assert (out / "comparison.md").exists()


def test_config_differences_name_changed_keys_and_accept_new_default_keys():
    default = {"a": 1, "m": {"x": 0, "new": 5}}
    stored = {"a": 1, "m": {"x": 0}}  # written before "m.new" existed
    assert config_differences(stored, {"a": 1, "m": {"x": 0, "new": 5}}, default) == []
    assert config_differences(stored, {"a": 1, "m": {"x": 0, "new": 6}}, default) == ["m.new"]
    assert config_differences(stored, {"a": 2, "m": {"x": 1, "new": 5}}, default) == [
        "a", "m.x"]
