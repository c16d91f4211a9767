"""`prosocial train / eval / export` end to end on a tiny config: what a run writes, SIGINT,
resume with identical metrics, evaluation and export, and bad input."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal

import numpy as np
import pytest

from prosocial.cli import main
from prosocial.experiments.config import from_dict, preset, to_dict
from prosocial.experiments.train import train
from prosocial.learners.ppo import PPO
from prosocial.nets import NetConfig

QUICK = preset("quick")  # the CLI's default preset; TINY overrides it like CLI_TINY does
TINY = dataclasses.replace(
    QUICK, env="harvest", num_agents=2, max_steps=20, total_steps=4 * 40, num_seeds=2,
    checkpoint_every=3, gif_steps=10,
    ppo=dataclasses.replace(QUICK.ppo, num_envs=2, num_steps=20, seq_len=10, num_epochs=2,
                            num_minibatches=2, net=NetConfig(hidden_sizes=(8,), lstm_size=8)))
CLI_TINY = ["--env", "harvest", "--num-agents", "2", "--max-steps", "20", "--total-steps",
            "160", "--num-seeds", "2", "--checkpoint-every", "3", "--gif-steps", "10",
            "--num-envs", "2", "--num-steps", "20", "--seq-len", "10", "--num-epochs", "2",
            "--num-minibatches", "2", "--hidden-sizes", "8", "--lstm-size", "8",
            "--no-progress"]


def _rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "sps"} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    main(["train", *CLI_TINY, "--out", str(out)])
    return out


def test_train_writes_the_run_directory(full_run):
    record = json.loads((full_run / "config.json").read_text())
    assert from_dict(record["config"]) == TINY
    assert record["provenance"]["versions"]["jax"] and "git_commit" in record["provenance"]
    rows = _rows(full_run)
    assert [(int(r["update"]), int(r["seed"])) for r in rows] == [
        (u, s) for u in range(1, 5) for s in range(2)]
    assert [int(r["env_steps"]) for r in rows[::2]] == [40, 80, 120, 160]
    for column in ("collective_return", "returns_0", "returns_1", "equality", "peace",
                   "sustainability_time", "policy_loss", "value_loss", "entropy", "kl"):
        assert column in rows[0], column
    # 20-step episodes in 20-step rollouts: every iteration ends 2 episodes per seed.
    assert all(float(r["episodes"]) == 2 for r in rows)
    returns = [float(r["returns_0"]) + float(r["returns_1"]) for r in rows]
    np.testing.assert_allclose(returns, [float(r["collective_return"]) for r in rows],
                               rtol=1e-5)
    with open(full_run / "metrics.csv") as f:
        sps = [float(r["sps"]) for r in csv.DictReader(f)]
    assert all(s > 0 for s in sps)
    assert sorted(int(p.name) for p in (full_run / "checkpoints").iterdir()
                  if p.name.isdigit()) == [3, 4]
    assert (full_run / "learning_curves.png").stat().st_size > 0
    assert (full_run / "episode.gif").read_bytes()[:6] == b"GIF89a"
    assert any(p.name.startswith("events.out.tfevents") for p in full_run.iterdir())


def test_sigint_saves_and_resume_matches_uninterrupted(full_run, tmp_path, monkeypatch):
    out = tmp_path / "interrupted"
    original = PPO.iteration
    calls = []

    def iteration_then_interrupt(self, state):
        result = original(self, state)
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(PPO, "iteration", iteration_then_interrupt)
    train(TINY, out, progress=False)
    assert len(_rows(out)) == 2 * 2
    assert not (out / "episode.gif").exists()
    monkeypatch.setattr(PPO, "iteration", original)
    main(["train", "--resume", str(out), "--no-progress"])
    assert _rows(out) == _rows(full_run)
    assert (out / "episode.gif").exists()


def test_eval_and_export(full_run, capsys):
    main(["eval", str(full_run), "--episodes", "2", "--steps", "12"])
    out = capsys.readouterr().out
    assert "sampled" in out and "greedy" in out and "collective_return" in out
    assert (full_run / "eval.gif").exists()
    main(["export", str(full_run), "--checkpoint", "3"])
    exported = full_run / "policy.safetensors"
    assert exported.exists()
    main(["eval", str(exported), "--episodes", "2", "--steps", "12", "--gif",
          str(full_run / "exported.gif")])
    assert "checkpoint 3" in capsys.readouterr().out
    assert (full_run / "exported.gif").exists()


@pytest.mark.parametrize("args, message", [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--env", "nope"], "unknown env 'nope'"),
    (["--lr", "-0.1"], "ppo.lr must be positive"),
    (["--num-envs", "3", "--num-minibatches", "4"], "not divisible by num_minibatches"),
    (["--lstm-size", "0"], "lstm_size must be a positive integer"),
    (["--total-steps", "0"], "total_steps must be a positive integer"),
])
def test_bad_input_fails_before_writing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(["train", *args, "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.replace("│", " ").split())  # tyro draws a wrapped box
    assert not out.exists()


def test_existing_run_directory_is_not_overwritten(full_run, capsys):
    with pytest.raises(SystemExit):
        main(["train", *CLI_TINY, "--out", str(full_run)])
    assert "already exists" in capsys.readouterr().err


def test_presets_resolve_and_round_trip():
    for name in ("quick", "harvest-baseline", "cleanup-baseline"):
        cfg = preset(name)
        assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg
    ssd = preset("cleanup-baseline")
    assert ssd.ppo.num_envs * ssd.ppo.num_steps == 96_000
    assert ssd.ppo.num_envs * ssd.ppo.num_steps // ssd.ppo.num_minibatches == 24_000
    assert (ssd.ppo.clip_eps, ssd.ppo.vf_coef, ssd.ppo.kl_coef, ssd.ppo.gae_lambda) == (
        0.3, 1e-4, 0.2, 1.0)
    assert ssd.ppo.lr_schedule == ((0.0, 0.00126), (2e7, 0.000012))
    assert ssd.ppo.ref_horizon_is_terminal and ssd.reference
