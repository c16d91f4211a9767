"""Run directories: the resolved config and where it came from, written once per run.

A run directory holds everything a training run writes (``config.json``, ``metrics.csv``,
TensorBoard events, ``checkpoints/``, GIFs). This module creates it and writes
``config.json``::

    {"config": {...resolved config...},
     "provenance": {"git_commit": ..., "git_dirty": ..., "python": ..., "versions": {...},
                    "platform": ..., "jax_backend": ..., "jax_devices": [...],
                    "timestamp": ..., "argv": [...]},
     "resumes": [{...provenance of each later session that resumed the run...}]}

A run directory that already holds files is never overwritten: starting a new run there is
an error, and resuming it requires the same config (except keys the caller names as
allowed to change, such as the total step budget), so that one directory never mixes the
results of two different experiments.

One process at a time may write a run directory: :func:`lock_run_dir` takes an exclusive
``flock`` on ``run_dir/.lock`` (which records the holder's pid and host) and a second
writer is refused with :class:`RunDirLocked`. The operating system releases the lock when
the holder exits, however it ends (even SIGKILL), so a stale lock file is harmless.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import errno
import fcntl
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"


class RunDirLocked(RuntimeError):
    """Another process holds the run directory's lock."""


class RunDirError(ValueError):
    """The run directory cannot be created or written (permissions, a file in the way)."""

# Distribution names whose versions every run records (PyPI names, as pip shows them).
_VERSIONED_PACKAGES = (
    "prosocial", "jax", "jaxlib", "flax", "optax", "numpy", "orbax-checkpoint", "distrax",
)


def create_run_dir(
    path: str | os.PathLike,
    config: Mapping[str, Any],
    resume: bool = False,
    mutable_on_resume: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> Path:
    """Create (or, with ``resume``, reopen) a run directory and write its ``config.json``.

    Args:
      path: the run directory; parents are created as needed.
      config: the resolved config, a mapping of JSON-representable values (dataclasses,
        tuples, paths, enums and NumPy scalars are converted; anything else is an error).
      resume: continue the run already in ``path``. Its stored config must equal
        ``config`` except at the top-level keys in ``mutable_on_resume``; the stored config
        is then updated to ``config`` and this session's provenance appended to
        ``"resumes"``. Resuming a directory that does not exist or is empty starts a new run.
      mutable_on_resume: top-level config keys allowed to differ on resume.
      defaults: the config's default values. On resume, a key the stored config lacks
        (one added to the program since that run started) is read as its default, so a run
        can be continued after an upgrade unless ``config`` sets such a key to another value.

    Returns:
      The run directory as a ``Path``.

    Raises:
      FileExistsError: ``path`` exists, is not empty and ``resume`` is false.
      ValueError: resuming with a different config, or a directory without ``config.json``.
      TypeError: a config value that cannot be written as JSON.
    """
    run_dir = Path(path)
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"run directory {run_dir} exists and is not a directory")
    config = to_jsonable(config)
    if not isinstance(config, dict):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    non_empty = run_dir.is_dir() and any(p.name != LOCK_FILE for p in run_dir.iterdir())
    if non_empty and not resume:
        raise FileExistsError(
            f"run directory {run_dir} already exists and is not empty; pass resume=True to "
            "continue that run, or choose a new directory")
    if non_empty:
        record = _load_record(run_dir)
        record["config"] = fill_absent(record["config"], to_jsonable(defaults or {}))
        changed = _changed_keys(record["config"], config) - set(mutable_on_resume)
        if changed:
            detail = sorted(_changed_paths(record["config"], config, sorted(changed)))
            raise ValueError(
                f"cannot resume {run_dir}: config differs from the stored one at keys "
                f"{sorted(changed)} ({', '.join(detail)}; allowed to change: "
                f"{sorted(mutable_on_resume)})")
        record["config"] = config
        record.setdefault("resumes", []).append(collect_provenance())
    else:
        make_dir(run_dir)
        record = {"config": config, "provenance": collect_provenance(), "resumes": []}
    try:
        _write_json_atomic(run_dir / CONFIG_FILE, record)
    except OSError as e:
        raise RunDirError(f"cannot write {run_dir / CONFIG_FILE}: {e.strerror or e}") from None
    return run_dir


def make_dir(run_dir: str | os.PathLike) -> Path:
    """``mkdir -p`` with an error that names the directory and says why it failed."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunDirError(f"cannot create the run directory {run_dir}: it or one of its "
                          "parents is a file") from None
    except NotADirectoryError:
        raise RunDirError(f"cannot create the run directory {run_dir}: one of its parents "
                          "is a file") from None
    except OSError as e:
        raise RunDirError(f"cannot create the run directory {run_dir}: "
                          f"{e.strerror or e}") from None
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise RunDirError(f"the run directory {run_dir} is not writable")
    return run_dir


@contextlib.contextmanager
def lock_run_dir(run_dir: str | os.PathLike):
    """Hold an exclusive lock on ``run_dir`` (which must exist) for the ``with`` block.

    Raises:
      RunDirLocked: another process holds it; the message names its pid and host.
      RunDirError: the lock file cannot be created.
    """
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RunDirError(f"cannot create {path}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirLocked(f"{run_dir} is in use by another process ({holder}); wait for "
                               "it to finish or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def load_run_config(path: str | os.PathLike) -> dict[str, Any]:
    """The resolved config stored in a run directory's ``config.json``."""
    return _load_record(Path(path))["config"]


def load_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance of the session that created the run (see the module docstring)."""
    return _load_record(Path(path))["provenance"]


def collect_provenance() -> dict[str, Any]:
    """Where and with what this process runs: git commit, versions, platform, devices, time."""
    import jax  # deferred: reading versions must not depend on initialising a backend first

    commit, dirty = _git_state(Path(__file__).resolve().parents[2])
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "versions": {name: _package_version(name) for name in _VERSIONED_PACKAGES},
        "platform": platform.platform(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
    }


def to_jsonable(value: Any, where: str = "config") -> Any:
    """Convert a config value to plain JSON types, naming the offending key on failure."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings, got {key!r}")
            out[key] = to_jsonable(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, where)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{where}: cannot write a {type(value).__name__} to config.json")


def _git_state(package_root: Path) -> tuple[str, bool | None]:
    """(commit, dirty) of the git checkout holding ``prosocial/``, or ("unknown", None).

    Dirty means tracked files differ from the commit (untracked files do not count, as in
    ``git describe --dirty``). An installed copy inside some other repository reports
    "unknown": the commit must be the one of the prosocial sources that ran.
    """
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(package_root), *args], capture_output=True,
                             text=True, timeout=10, check=True)
        return out.stdout.strip()

    try:
        top = Path(git("rev-parse", "--show-toplevel")).resolve()
        if top != package_root.resolve():
            return "unknown", None
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, dirty


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        if name == "prosocial":  # a source checkout used without `pip install`
            import prosocial

            return prosocial.__version__
        return "not installed"


def fill_absent(stored: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``stored`` with every key it lacks, at any depth, taken from ``defaults``: how a
    config written before a key existed reads today."""
    out = dict(stored)
    for key, value in defaults.items():
        if key not in out:
            out[key] = value
        elif isinstance(out[key], Mapping) and isinstance(value, Mapping):
            out[key] = fill_absent(out[key], value)
    return out


def changed_leaves(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the leaves where two configs differ (compared as JSON text)."""
    return [path for path, _, _ in _changes(old, new, sorted(_changed_keys(old, new)), prefix)]


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    # Compared as JSON text so that NaN equals NaN and 1 differs from 1.0 and True.
    def text(cfg, key):
        return json.dumps(cfg[key], sort_keys=True) if key in cfg else None

    return {k for k in set(old) | set(new) if text(old, k) != text(new, k)}


_ABSENT = object()


def _changes(old: Mapping[str, Any], new: Mapping[str, Any], keys: Iterable[str],
             prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted path, old value, new value)`` of the leaves that differ under ``keys``
    (a key missing on one side gives ``_ABSENT`` there)."""
    out = []
    for key in keys:
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _changes(a, b, sorted(_changed_keys(a, b)), f"{prefix}{key}.")
        else:
            out.append((prefix + key, a, b))
    return out


def _changed_paths(old: Any, new: Any, keys: Iterable[str]) -> list[str]:
    """``path: old -> new`` of the leaves that differ under the top-level ``keys``, e.g.
    ``ppo.lr: 0.001 -> 0.0003``."""
    def text(v):
        return '"<absent>"' if v is _ABSENT else json.dumps(v)

    return [f"{path}: {text(a)} -> {text(b)}" for path, a, b in _changes(old, new, keys)]


def _load_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a run directory: it has no {CONFIG_FILE}")
    try:
        with open(path) as f:
            record = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is damaged: not valid JSON ({e})") from None
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError(f"{path} is not a prosocial run record: it has no \"config\" object")
    return record


def _write_json_atomic(path: Path, record: Mapping[str, Any]) -> None:
    """Write then rename, so a crash leaves either the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
