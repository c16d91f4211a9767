"""`prosocial train / eval / export` end to end on a tiny config: what a run writes, SIGINT,
resume with identical metrics, evaluation and export, and bad input."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import prosocial.experiments.train as train_module
from prosocial.cli import main
from prosocial.experiments.config import from_dict, preset
from prosocial.experiments.train import NonFiniteError, TrainingInterrupted, train
from prosocial.io import Checkpointer, MetricsLogger, lock_run_dir
from prosocial.nets import NetConfig

QUICK = preset("quick")  # the CLI's default preset; TINY overrides it like CLI_TINY does
TINY = dataclasses.replace(
    QUICK, env="harvest", num_agents=2, max_steps=20, total_steps=4 * 40, num_seeds=2,
    checkpoint_every=3, gif_steps=10, num_envs=2, num_steps=20,
    net=NetConfig(hidden_sizes=(8,), lstm_size=8),
    ppo=dataclasses.replace(QUICK.ppo, seq_len=10, num_epochs=2, num_minibatches=2))
CLI_TINY = ["--env", "harvest", "--num-agents", "2", "--max-steps", "20", "--total-steps",
            "160", "--num-seeds", "2", "--checkpoint-every", "3", "--gif-steps", "10",
            "--num-envs", "2", "--num-steps", "20", "--seq-len", "10", "--num-epochs", "2",
            "--num-minibatches", "2", "--hidden-sizes", "8", "--lstm-size", "8",
            "--no-progress"]


def _checkpoints(run_dir):
    return sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())


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


def _signal_after_update(monkeypatch, signum, at):
    """Send ``signum`` to this process right after the metrics of update ``at`` are logged
    (learner-agnostic: it hooks the logger, not the learner)."""
    original = MetricsLogger.log

    def log_then_signal(self, update, *args, **kwargs):
        original(self, update, *args, **kwargs)
        if update == at:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(MetricsLogger, "log", log_then_signal)
    return original


def test_sigint_saves_and_resume_matches_uninterrupted(full_run, tmp_path, monkeypatch):
    out = tmp_path / "interrupted"
    original = _signal_after_update(monkeypatch, signal.SIGINT, at=2)
    with pytest.raises(TrainingInterrupted) as e:
        train(TINY, out, progress=False)
    assert (e.value.signum, e.value.checkpoint) == (signal.SIGINT, 2)
    assert len(_rows(out)) == 2 * 2
    assert _checkpoints(out) == [2]
    assert not (out / "episode.gif").exists()
    monkeypatch.setattr(MetricsLogger, "log", original)
    main(["train", "--resume", str(out), "--no-progress"])
    assert _rows(out) == _rows(full_run)
    assert (out / "episode.gif").exists()


def test_sigterm_saves_exits_143_and_resumes(full_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "terminated"
    original = _signal_after_update(monkeypatch, signal.SIGTERM, at=1)
    with pytest.raises(SystemExit) as e:
        main(["train", *CLI_TINY, "--out", str(out)])
    assert e.value.code == 143
    assert _checkpoints(out) == [1]
    stdout = capsys.readouterr().out
    # one summary line instead of the config as JSON; the config is in config.json
    assert [line for line in stdout.splitlines() if line.startswith("train:")] == [
        f"train: harvest, 2 agents, 160 env steps (4 iterations), 2 seed(s), motive none "
        f"-> {out} (full config in {out / 'config.json'})"]
    assert "{" not in stdout and len(stdout.splitlines()) < 8
    monkeypatch.setattr(MetricsLogger, "log", original)
    main(["train", "--resume", str(out), "--no-progress"])
    assert _rows(out) == _rows(full_run)


def test_second_sigint_exits_130(tmp_path, monkeypatch):
    # a second Ctrl-C while the first one's iteration is finishing: abort, exit status 130
    original = MetricsLogger.log

    def log_then_two_sigints(self, update, *args, **kwargs):
        original(self, update, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(MetricsLogger, "log", log_then_two_sigints)
    with pytest.raises(SystemExit) as e:
        main(["train", *CLI_TINY, "--out", str(tmp_path / "r")])
    assert e.value.code == 130


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


# --- faults: non-finite training, locked run directories, SIGKILL, damaged files ------------

ROOT = Path(__file__).resolve().parents[1]


def _subprocess_env():
    # the same persistent compilation cache as this session (conftest), so a child compiles
    # the tiny config once for all tests
    cache = jax.config.jax_compilation_cache_dir
    return {**os.environ, "PYTHONPATH": str(ROOT), "JAX_COMPILATION_CACHE_DIR": str(cache),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"}


def _fail_args(capsys, args):
    """Run the CLI expecting a bad-input exit: (exit code, the one stderr line)."""
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return e.value.code, err


def test_infinite_lr_stops_with_a_clear_error(tmp_path, capsys):
    out = tmp_path / "inf"
    code, err = _fail_args(capsys, ["train", *CLI_TINY, "--lr", "inf", "--out", str(out)])
    assert code == 1
    assert "iteration 1:" in err and "non-finite" in err and "smaller --lr" in err
    assert not out.exists()  # nothing was trained: the same --out can be used again


class _PoisonedAt:
    """A learner whose training state turns NaN at one iteration (every floating leaf)."""

    def __init__(self, learner, at):
        self._learner, self._at, self._calls = learner, at, 0

    def __getattr__(self, name):
        return getattr(self._learner, name)

    def iteration(self, state):
        state, metrics = self._learner.iteration(state)
        self._calls += 1
        if self._calls == self._at:
            state = jax.tree.map(
                lambda x: x * np.nan if jnp.issubdtype(x.dtype, jnp.floating) else x, state)
        return state, metrics


def test_non_finite_state_is_never_checkpointed(tmp_path, monkeypatch):
    original = train_module.build
    monkeypatch.setattr(train_module, "build", lambda cfg: _PoisonedAt(original(cfg), at=4))
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteError, match=r"iteration 4: the training state \(") as e:
        train(TINY, out, progress=False)
    assert "the last checkpoint is iteration 3" in str(e.value)
    assert _checkpoints(out) == [3]  # the poisoned iteration 4 (the last) was not saved
    assert sorted({int(r["update"]) for r in _rows(out)}) == [1, 2, 3]
    with Checkpointer(out, read_only=True) as ckpt:
        state, _ = ckpt.restore()
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state)
               if np.issubdtype(np.asarray(x).dtype, np.floating))


def test_non_finite_check_is_generic_over_the_state():
    state = {"a": {"w": jnp.ones(3)}, "steps": jnp.arange(3), "k": jax.random.key(0),
             "opt": [jnp.zeros(2), jnp.array([1.0, jnp.inf])]}
    metrics = {"collective_return": np.array([np.nan]), "policy_loss": np.array([0.5])}
    assert "['opt'][1]" in train_module._non_finite(state, metrics)
    state["opt"][1] = jnp.ones(2)
    assert train_module._non_finite(state, metrics) is None  # NaN return: no episode ended
    metrics["kl"] = np.array([np.nan])
    assert train_module._non_finite(state, metrics) == "the loss metric(s) kl"


def test_second_writer_is_refused_naming_the_holder(full_run, tmp_path, capsys):
    config_before = (full_run / "config.json").read_text()
    with lock_run_dir(full_run):
        code, err = _fail_args(capsys, ["train", "--resume", str(full_run), "--no-progress"])
        assert code == 2 and f"pid {os.getpid()}" in err and "in use" in err
        # a real second process, and a new run with the same --out
        fresh = tmp_path / "shared"
        fresh.mkdir()
        with lock_run_dir(fresh):
            for args in (["--resume", str(full_run)], [*CLI_TINY, "--out", str(fresh)]):
                proc = subprocess.run(
                    [sys.executable, "-m", "prosocial.cli", "train", *args, "--no-progress"],
                    capture_output=True, text=True, env=_subprocess_env(), timeout=300)
                assert proc.returncode == 2, proc.stderr
                assert f"pid {os.getpid()}" in proc.stderr
        assert list(fresh.iterdir()) == [fresh / ".lock"]
    assert (full_run / "config.json").read_text() == config_before


_KILL_SCRIPT = """
import os, signal, sys
from prosocial.io import Checkpointer, MetricsLogger
hook, at = sys.argv[1], int(sys.argv[2])
cls, name = (MetricsLogger, "log") if hook == "log" else (Checkpointer, "save")
original = getattr(cls, name)
def then_kill(self, step, *args, **kwargs):
    original(self, step, *args, **kwargs)
    if step == at:
        os.kill(os.getpid(), signal.SIGKILL)
setattr(cls, name, then_kill)
from prosocial.cli import main
main(sys.argv[3:])
"""


@pytest.mark.parametrize("hook, at, checkpoints_left", [
    ("log", 2, []),  # killed before the first checkpoint (every 3 iterations)
    ("save", 4, [3]),  # killed while the final checkpoint is being written (async)
])
def test_sigkill_then_resume_matches_uninterrupted(full_run, tmp_path, hook, at,
                                                   checkpoints_left):
    out = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, hook, str(at), "train", *CLI_TINY, "--out",
         str(out)], capture_output=True, text=True, env=_subprocess_env(), timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert sorted({int(r["update"]) for r in _rows(out)}) == list(range(1, at + 1))
    complete = [c for c in _checkpoints(out) if c < at]  # the one being written may be done
    assert complete == checkpoints_left
    main(["train", "--resume", str(out), "--no-progress"])
    assert _rows(out) == _rows(full_run)
    assert _checkpoints(out) == [3, 4]
    assert (out / "episode.gif").exists()


def test_resume_refuses_out_and_a_budget_below_what_was_trained(full_run, tmp_path, capsys):
    code, err = _fail_args(capsys, ["train", "--resume", str(full_run), "--out",
                                    str(tmp_path / "x")])
    assert code == 2 and "takes no --out" in err
    before = (full_run / "config.json").read_text()
    code, err = _fail_args(capsys, ["train", "--resume", str(full_run), "--total-steps", "80",
                                    "--no-progress"])
    assert code == 2
    assert "--total-steps 80 is less than the 160 env steps" in err and "checkpoint 4" in err
    assert (full_run / "config.json").read_text() == before
    assert not (tmp_path / "x").exists()


def _edited_run(full_run, tmp_path, edit):
    run = tmp_path / "edited"
    shutil.copytree(full_run, run)
    record = json.loads((run / "config.json").read_text())
    edit(record["config"])
    (run / "config.json").write_text(json.dumps(record))
    return run


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(frobnicate=1), r"unknown keys \['frobnicate'\]"),
    (lambda c: c["ppo"].pop("lr"), r"missing keys \['ppo.lr'\]"),
    (lambda c: c["net"].update(width=3), r"unknown keys \['net.width'\]"),
])
def test_config_json_of_another_version(full_run, tmp_path, capsys, edit, message):
    run = _edited_run(full_run, tmp_path, edit)
    for command in (["train", "--resume", str(run)], ["eval", str(run)],
                    ["export", str(run)]):
        code, err = _fail_args(capsys, command)
        assert code == 2 and "config.json does not match this version" in err
        assert re.search(message, err), err


def test_damaged_config_json(full_run, tmp_path, capsys):
    run = tmp_path / "damaged"
    shutil.copytree(full_run, run)
    text = (run / "config.json").read_text()
    (run / "config.json").write_text(text[: len(text) // 2])
    code, err = _fail_args(capsys, ["eval", str(run)])
    assert code == 2 and f"{run / 'config.json'} is damaged" in err


def test_truncated_checkpoint_and_policy_files(full_run, tmp_path, capsys):
    run = tmp_path / "truncated"
    shutil.copytree(full_run, run)
    step = run / "checkpoints" / "4"
    victim = max((p for p in step.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[:100])
    code, err = _fail_args(capsys, ["eval", str(run), "--episodes", "1", "--steps", "2"])
    assert code == 2 and f"checkpoint {step}" in err
    main(["export", str(run), "--checkpoint", "3", "--out", str(tmp_path / "p.safetensors")])
    capsys.readouterr()
    policy = tmp_path / "p.safetensors"
    policy.write_bytes(policy.read_bytes()[:-50])
    code, err = _fail_args(capsys, ["eval", str(policy)])
    assert code == 2 and f"{policy} is not a readable safetensors file" in err


def test_policy_file_of_another_env_is_rejected(full_run, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    main(["export", str(full_run), "--out", str(tmp_path / "harvest.safetensors")])
    capsys.readouterr()
    with safe_open(str(tmp_path / "harvest.safetensors"), framework="numpy") as f:
        header = f.metadata()
    meta = json.loads(header["prosocial_metadata"])
    meta["config"]["env"] = "cleanup"  # Harvest's parameters labelled as a Cleanup policy
    header["prosocial_metadata"] = json.dumps(meta)
    save_file(load_file(str(tmp_path / "harvest.safetensors")),
              str(tmp_path / "relabelled.safetensors"), metadata=header)
    code, err = _fail_args(capsys, ["eval", str(tmp_path / "relabelled.safetensors")])
    assert code == 2 and "do not fit the config stored with them (env cleanup" in err


def test_bad_run_directories(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    code, err = _fail_args(capsys, ["train", *CLI_TINY, "--out", str(tmp_path / "file")])
    assert code == 2 and "exists and is not a directory" in err
    code, err = _fail_args(capsys, ["train", *CLI_TINY, "--out",
                                    str(tmp_path / "file" / "run")])
    assert code == 2 and "one of its parents is a file" in err
    assert (tmp_path / "file").read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only directories")
def test_unwritable_out(tmp_path, capsys):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    code, err = _fail_args(capsys, ["train", *CLI_TINY, "--out", str(locked / "run")])
    assert code == 2 and "cannot create the run directory" in err


def test_config_too_big_for_memory_writes_nothing(tmp_path, capsys):
    out = tmp_path / "huge"
    code, err = _fail_args(capsys, ["train", *CLI_TINY, "--num-envs", str(10**9),
                                    "--num-minibatches", "1", "--out", str(out)])
    assert code == 2 and "--num-envs 1000000000" in err and "GiB" in err
    assert not out.exists()


def test_failed_start_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(train_module, "MetricsLogger", broken)
    for out in (tmp_path / "new", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        with pytest.raises(OSError, match="No space"):
            train(TINY, out, progress=False)
        # a rerun is not blocked by a half-made run directory
        assert not out.exists() if out.name == "new" else [p.name for p in out.iterdir()] == [
            ".lock"]


@pytest.mark.parametrize("args, message", [
    (["eval", "RUN", "--steps", "-5"], "--steps must be a positive integer, got -5"),
    (["eval", "RUN", "--episodes", "0"], "--episodes must be a positive integer, got 0"),
    (["eval", "RUN", "--checkpoint", "99"], "no checkpoint 99"),
    (["eval", "RUN", "--seed-index", "2"], "--seed-index must be in [0, 2)"),
    (["eval", "RUN", "--gif", "OUTDIR"], "give a file name ending in .gif"),
    (["export", "RUN", "--out", "OUTDIR"], "is a directory"),
    (["export", "RUN", "--out", "OUTDIR/policy.txt"], "must end in .safetensors"),
    (["eval", "OUTDIR/nothing-here"], "no such run directory or file"),
    (["train", "--resume", "OUTDIR"], "is not a run directory"),
    (["demo", "--num-agents", "0"], "--num-agents 0"),
    (["demo", "--steps", "0"], "--steps must be a positive integer"),
    (["bench", "envs", "--env", "nosuch"], "--env 'nosuch' is not an environment"),
    (["bench", "envs", "--num-envs", "0"], "--num-envs must be a positive integer"),
    (["frobnicate"], "unknown command 'frobnicate'"),
])
def test_cli_mistakes_are_one_line_errors(full_run, tmp_path, capsys, args, message):
    args = [a.replace("RUN", str(full_run)).replace("OUTDIR", str(tmp_path)) for a in args]
    code, err = _fail_args(capsys, args)
    assert code == 2 and message in err, err


def test_help_lists_run_options_with_defaults(capsys):
    main(["--help"])
    top = capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    train_help = capsys.readouterr().out
    for text in (top, train_help):
        for flag in ("--preset", "--out", "--resume"):
            assert flag in text
        assert "default: quick" in text and "runs/<preset>-<YYYYmmdd-HHMMSS>" in text
        assert "§" not in text and "specs" not in text
    assert "--env.NAME [VALUE]" in train_help and "ref-beam-order-by-id" in train_help
    assert "--total-steps" in train_help and "(default: 200000)" in train_help
    assert "default: none, start a new run" in train_help


def test_eval_and_export_leave_a_training_runs_files_alone(full_run, tmp_path, capsys):
    run = tmp_path / "training"
    shutil.copytree(full_run, run)
    # what a trainer writing its next checkpoint has on disk at this moment
    partial = run / "checkpoints" / "5.orbax-checkpoint-tmp-42"
    partial.mkdir()
    (partial / "being-written").write_text("x")
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    main(["eval", str(run), "--episodes", "1", "--steps", "2", "--gif", str(tmp_path / "e.gif")])
    main(["export", str(run), "--out", str(tmp_path / "p.safetensors")])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before
    assert (partial / "being-written").read_text() == "x"


# --- --env.NAME flags and the compilation cache ---------------------------------------------


def test_env_flags_resolve_on_top_of_a_preset():
    from prosocial.experiments.cli_train import parse_train_args

    base = preset("emurel/cleanup/baseline")
    assert base.env_options == ("ref_beam_order_by_id=true",)
    cfg, *_ = parse_train_args([
        "--preset", "emurel/cleanup/baseline", "--env.ref-view-rotation", "false",
        "--env.waste_spawn_prob", "0.25", "--env.ref-beams-invisible",
        "--env.ref-beam-order-by-id=false", "--env.ref-view-rotation", "--env.max-steps", "77",
        "--env.num-agents", "3", "--env.reference", "false"])
    # one entry per name where it first appeared (the preset's first) with its last
    # setting: ref_view_rotation's bare flag (true) wins over its earlier false
    assert cfg.env_options == ("ref_beam_order_by_id=false", "ref_view_rotation=true",
                               "waste_spawn_prob=0.25", "ref_beams_invisible=true")
    assert (cfg.num_agents, cfg.max_steps, cfg.reference) == (3, 77, False)
    kwargs = cfg.env_kwargs()
    assert kwargs["waste_spawn_prob"] == 0.25 and kwargs["ref_view_rotation"] is True
    assert kwargs["ref_beam_order_by_id"] is False and kwargs["ref_beams_invisible"] is True
    assert dataclasses.replace(cfg, env_options=base.env_options, num_agents=5,
                               max_steps=1000, reference=True) == base
    # no --env.* flags: the preset's options untouched
    assert parse_train_args(["--preset", "emurel/cleanup/baseline"])[0] == base


@pytest.mark.parametrize("args, message", [
    (["--env", "cleanup", "--env.nope", "3"],
     "--env.nope: cleanup has no option 'nope'; its options: map, ref-view-rotation,"),
    (["--env", "cleanup", "--env.args", "3"], "cleanup has no option 'args'"),
    (["--env", "harvest", "--env.waste-spawn-prob", "0.3"], "harvest has no option"),
    (["--env", "cleanup", "--env.waste-spawn-prob"], "--env.waste-spawn-prob needs a value"),
    (["--env", "cleanup", "--env.ref-view-rotation", "maybe"], "must be true or false"),
    (["--env", "cleanup", "--env.depletion-threshold", "lots"], "must be a number"),
    (["--env.max-steps"], "--env.max-steps needs a value (it is the flag --max-steps)"),
])
def test_bad_env_flags_are_one_line_errors(tmp_path, capsys, args, message):
    code, err = _fail_args(capsys, ["train", *args, "--out", str(tmp_path / "r")])
    assert code == 2 and message in err, err
    assert not (tmp_path / "r").exists()


@pytest.fixture
def no_process_cache():
    """This process without the test suite's compilation cache (restored afterwards)."""
    from jax.experimental.compilation_cache import compilation_cache

    before = jax.config.jax_compilation_cache_dir
    min_time = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_compilation_cache_dir", None)
    compilation_cache.reset_cache()
    yield
    jax.config.update("jax_compilation_cache_dir", before)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_time)
    compilation_cache.reset_cache()


def test_env_flag_run_records_it_and_fills_the_compile_cache(tmp_path, no_process_cache,
                                                            capsys):
    from prosocial.experiments.cli_train import parse_train_args

    out, cache = tmp_path / "run", tmp_path / "cache"
    main(["train", *CLI_TINY, "--total-steps", "40", "--gif-steps", "0",
          "--env.ref-beam-order-by-id", "--compile-cache", str(cache), "--out", str(out)])
    record = json.loads((out / "config.json").read_text())["config"]
    assert record["env_options"] == ["ref_beam_order_by_id=true"]
    assert record["compile_cache"] == str(cache)
    assert jax.config.jax_compilation_cache_dir == str(cache)
    assert any(p.is_file() for p in cache.rglob("*")), "the run compiled nothing into it"
    resumed, _, resume, _ = parse_train_args(["--resume", str(out), "--total-steps", "80"])
    assert resume and resumed.env_kwargs()["ref_beam_order_by_id"] is True


def test_compile_cache_keeps_the_process_cache(tmp_path):
    from prosocial.experiments.train import use_compile_cache

    suite = jax.config.jax_compilation_cache_dir
    assert suite  # conftest's
    assert use_compile_cache(str(tmp_path / "other")) == suite
    assert jax.config.jax_compilation_cache_dir == suite and not (tmp_path / "other").exists()


def test_config_json_without_compile_cache_is_read(full_run, tmp_path):
    from prosocial.experiments.cli_train import load_run_dir_config

    run = tmp_path / "old"
    shutil.copytree(full_run, run)
    record = json.loads((run / "config.json").read_text())
    del record["config"]["compile_cache"]
    (run / "config.json").write_text(json.dumps(record))
    assert load_run_dir_config(run) == TINY
