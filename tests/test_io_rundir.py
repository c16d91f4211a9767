"""Run directories: config.json round trip, provenance, refusing to overwrite, resume."""

import dataclasses
import datetime
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from prosocial.io import (
    RunDirError,
    RunDirLocked,
    create_run_dir,
    load_provenance,
    load_run_config,
    lock_run_dir,
    make_dir,
)
from prosocial.io.rundir import _git_state


@dataclasses.dataclass
class _Net:
    hidden: tuple = (64, 64)
    lstm: bool = True


def _config():
    return {"env": "harvest", "num_agents": 5, "lr": np.float32(0.25), "seeds": (0, 1),
            "net": _Net(), "out": Path("/tmp/x"), "clip": float("inf"), "note": None}


def test_config_round_trip_and_provenance(tmp_path):
    run = create_run_dir(tmp_path / "runs" / "a", _config())
    assert run == tmp_path / "runs" / "a"
    assert load_run_config(run) == {
        "env": "harvest", "num_agents": 5, "lr": 0.25, "seeds": [0, 1],
        "net": {"hidden": [64, 64], "lstm": True}, "out": "/tmp/x", "clip": float("inf"),
        "note": None}
    prov = load_provenance(run)
    assert set(prov) == {"git_commit", "git_dirty", "python", "versions", "platform",
                         "jax_backend", "jax_devices", "timestamp", "argv"}
    assert set(prov["versions"]) >= {"jax", "jaxlib", "flax", "optax", "numpy", "prosocial",
                                     "orbax-checkpoint"}
    assert (prov["git_commit"], prov["git_dirty"]) == _git_state(
        Path(__file__).resolve().parents[1])
    assert prov["versions"]["jax"] == jax.__version__
    assert prov["versions"]["numpy"] == np.__version__
    assert prov["jax_backend"] == jax.default_backend()
    assert prov["jax_devices"] == [str(d) for d in jax.devices()]
    stamp = datetime.datetime.fromisoformat(prov["timestamp"])
    assert abs((datetime.datetime.now(datetime.UTC) - stamp).total_seconds()) < 60
    assert json.loads((run / "config.json").read_text())["resumes"] == []


def test_git_commit_is_the_checkouts():
    root = Path(__file__).resolve().parents[1]
    commit, dirty = _git_state(root)
    probe = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        assert (commit, dirty) == ("unknown", None)
    else:
        assert commit == probe.stdout.strip()
        assert isinstance(dirty, bool)


def test_git_state_dirty_and_unknown(tmp_path):
    assert _git_state(tmp_path) == ("unknown", None)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "f.txt").write_text("1")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    (tmp_path / "untracked.txt").write_text("u")
    assert _git_state(tmp_path) == (head, False)
    (tmp_path / "f.txt").write_text("2")
    assert _git_state(tmp_path) == (head, True)
    # a package that merely sits inside another repository is not that repository's commit
    (tmp_path / "sub").mkdir()
    assert _git_state(tmp_path / "sub") == ("unknown", None)


def test_refuses_to_overwrite(tmp_path):
    (tmp_path / "empty").mkdir()
    create_run_dir(tmp_path / "empty", {"a": 1})  # an empty directory is fine
    with pytest.raises(FileExistsError, match="not empty"):
        create_run_dir(tmp_path / "empty", {"a": 1})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="resume=True"):
        create_run_dir(tmp_path / "other", {"a": 1})
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError, match="not a directory"):
        create_run_dir(tmp_path / "file", {"a": 1})


def test_resume_requires_same_config(tmp_path):
    run = create_run_dir(tmp_path / "r", {"lr": 0.1, "steps": 100})
    first = load_provenance(run)
    create_run_dir(run, {"lr": 0.1, "steps": 100}, resume=True)
    with pytest.raises(ValueError, match=r"\['lr'\]"):
        create_run_dir(run, {"lr": 0.2, "steps": 100}, resume=True)
    with pytest.raises(ValueError, match=r"\['steps'\]"):
        create_run_dir(run, {"lr": 0.1, "steps": 100.0}, resume=True)
    create_run_dir(run, {"lr": 0.1, "steps": 200}, resume=True, mutable_on_resume=["steps"])
    record = json.loads((run / "config.json").read_text())
    assert record["config"] == {"lr": 0.1, "steps": 200}
    assert record["provenance"] == first
    assert len(record["resumes"]) == 2
    # resuming where nothing exists yet starts the run
    create_run_dir(tmp_path / "fresh", {"lr": 0.1}, resume=True)
    assert load_run_config(tmp_path / "fresh") == {"lr": 0.1}
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x").write_text("")
    with pytest.raises(ValueError, match="no config.json"):
        create_run_dir(tmp_path / "junk", {"lr": 0.1}, resume=True)


def test_bad_config_names_the_key(tmp_path):
    with pytest.raises(TypeError, match=r"config\.net\.act"):
        create_run_dir(tmp_path / "b", {"net": {"act": object()}})
    with pytest.raises(TypeError, match="keys must be strings"):
        create_run_dir(tmp_path / "b", {1: 2})
    assert not (tmp_path / "b").exists()


def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    run = create_run_dir(tmp_path / "r", {"a": 1})
    with lock_run_dir(run) as path:
        assert path.read_text() == f"pid {os.getpid()} on host {socket.gethostname()}\n"
        with pytest.raises(RunDirLocked, match=f"in use by another process \\(pid {os.getpid()}"):
            with lock_run_dir(run):
                pass
        # another process is refused too
        probe = subprocess.run(
            [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "except OSError:\n    sys.exit(3)", str(path)], timeout=60)
        assert probe.returncode == 3
    with lock_run_dir(run):  # released at the end of the block
        pass
    # the lock file does not make a run directory "non-empty" for a new run
    (tmp_path / "only-lock").mkdir()
    with lock_run_dir(tmp_path / "only-lock"):
        create_run_dir(tmp_path / "only-lock", {"a": 1})


def test_unusable_paths_and_damaged_config_are_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match="parents is a file"):
        create_run_dir(tmp_path / "f" / "run", {"a": 1})
    with pytest.raises(RunDirError, match="parents is a file"):
        make_dir(tmp_path / "f" / "run")
    run = create_run_dir(tmp_path / "r", {"a": 1})
    (run / "config.json").write_text('{"config": {"a": ')
    with pytest.raises(ValueError, match=r"r/config.json is damaged: not valid JSON"):
        load_run_config(run)
    (run / "config.json").write_text('[1, 2]')
    with pytest.raises(ValueError, match="has no \"config\" object"):
        load_run_config(run)


def test_resume_mismatch_names_the_nested_value(tmp_path):
    run = create_run_dir(tmp_path / "r", {"ppo": {"lr": 0.1, "net": {"h": [8]}}, "n": 1})
    with pytest.raises(ValueError, match=r"ppo\.lr: 0\.1 -> 0\.5, ppo\.net\.h: \[8\] -> \[9\]"):
        create_run_dir(run, {"ppo": {"lr": 0.5, "net": {"h": [9]}}, "n": 1}, resume=True)


def test_resume_after_an_upgrade_reads_absent_keys_as_their_defaults(tmp_path):
    # The run was written before "ppo.clip" and "dqn" existed; today's defaults are clip 0.2
    # and dqn {"lr": 1e-3}. Resuming with those defaults is the same run; setting clip to
    # 0.3 is not, and the error names that leaf.
    run = create_run_dir(tmp_path / "r", {"ppo": {"lr": 0.1}, "n": 1})
    defaults = {"ppo": {"lr": 3e-4, "clip": 0.2}, "dqn": {"lr": 1e-3}, "n": 1}
    today = {"ppo": {"lr": 0.1, "clip": 0.2}, "dqn": {"lr": 1e-3}, "n": 1}
    with pytest.raises(ValueError, match=r"ppo\.clip: \"<absent>\" -> 0\.2"):
        create_run_dir(run, today, resume=True)  # without defaults: a change
    create_run_dir(run, today, resume=True, defaults=defaults)
    assert load_run_config(run) == today
    run2 = create_run_dir(tmp_path / "r2", {"ppo": {"lr": 0.1}, "n": 1})
    with pytest.raises(ValueError, match=r"ppo\.clip: 0\.2 -> 0\.3"):
        create_run_dir(run2, {**today, "ppo": {"lr": 0.1, "clip": 0.3}}, resume=True,
                       defaults=defaults)


def test_changed_leaves_names_every_differing_leaf():
    # b.c changed, e is new, f is gone, g went from a number to a mapping (one leaf), 1 and
    # 1.0 differ as JSON; equal subtrees (b.d, h) are not named.
    from prosocial.io.rundir import changed_leaves

    old = {"a": 1, "b": {"c": 1, "d": {"x": 2}}, "f": 0, "g": 1, "h": {"y": [1]}, "i": 1}
    new = {"a": 1, "b": {"c": 2, "d": {"x": 2}}, "e": 3, "g": {"z": 1}, "h": {"y": [1]},
           "i": 1.0}
    assert changed_leaves(old, new) == ["b.c", "e", "f", "g", "i"]
    assert changed_leaves(old, old) == []
