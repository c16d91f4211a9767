"""Per-seed training metrics: ``metrics.csv`` in the run directory plus TensorBoard events.

Each call to :meth:`MetricsLogger.log` receives the metrics of one update as
``{name: array[num_seeds, ...]}`` (seeds are batched, so every metric carries a leading
seed axis) and writes one CSV row per seed::

    update,seed,env_steps,<metric columns...>

``seed`` is the index along the seed axis (0 … num_seeds−1). A metric with trailing axes,
such as per-agent returns ``[num_seeds, N]``, becomes the columns ``name_0 … name_{N-1}``
(``name_i_j`` for two trailing axes, C order). Metric columns are sorted by metric name at
the first row and keep that order for the rest of the run; a metric first seen later is
appended as a new column and the file is rewritten with that column empty in earlier rows,
and a metric missing from a row is written empty. NaN (e.g. the return of an episode that
has not ended yet) is also written empty, so "no value" has one spelling. Floats are
written in the shortest text that reads back to the same value in their own precision.

TensorBoard receives, for every metric column ``c``, the scalars ``seed{k}/c`` and
``mean/c`` (the mean over the seeds with a finite value) at step ``env_steps``; NaN values
are not written.

Resuming from the checkpoint taken at update ``U``: ``MetricsLogger(...,
resume_from_update=U)`` keeps the CSV rows with ``update <= U``, drops the rest (they belong
to updates that will be recomputed) and tells TensorBoard to discard the dropped events
(a purge step at the kept run's last ``env_steps`` + 1), so every (update, seed) appears
exactly once.
"""

from __future__ import annotations

import atexit
import csv
import io
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tensorboardX import SummaryWriter

METRICS_FILE = "metrics.csv"
INDEX_COLUMNS = ("update", "seed", "env_steps")


class MetricsLogger:
    """Writes each update's per-seed metrics to ``metrics.csv`` and TensorBoard.

    Every :meth:`log` call flushes its rows to the operating system, so an interrupted run
    loses no logged row; TensorBoard events are flushed by :meth:`flush`, :meth:`close` and
    every ``tensorboard_flush_secs`` seconds.

    Args:
      run_dir: the run directory (must exist).
      num_seeds: size of the leading seed axis of every metric.
      resume_from_update: continue an interrupted run from its checkpoint at this update
        (see the module docstring). Without it, an existing non-empty ``metrics.csv`` is an
        error rather than being overwritten.
      tensorboard: also write TensorBoard events into ``run_dir``.
      tensorboard_flush_secs: how often TensorBoard's writer thread flushes to disk.
    """

    def __init__(self, run_dir: str | os.PathLike, num_seeds: int,
                 resume_from_update: int | None = None, tensorboard: bool = True,
                 tensorboard_flush_secs: int = 10):
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise FileNotFoundError(f"run directory {self.run_dir} does not exist")
        if int(num_seeds) != num_seeds or num_seeds < 1:
            raise ValueError(f"num_seeds must be a positive integer, got {num_seeds!r}")
        self.num_seeds = int(num_seeds)
        self.path = self.run_dir / METRICS_FILE
        self._columns: list[str] | None = None
        self._last_update: int | None = None
        purge_step = None
        if resume_from_update is None:
            if self.path.exists() and self.path.stat().st_size > 0:
                raise FileExistsError(
                    f"{self.path} already exists; pass resume_from_update=<the checkpoint's "
                    "update> to continue that run")
        elif self.path.exists():
            purge_step = self._truncate(int(resume_from_update))
        self._file = open(self.path, "a", newline="")
        self._writer = None
        if tensorboard:
            # The file name has whole seconds only; the suffix keeps a session resumed within
            # the same second from overwriting the previous file, and keeps files in order.
            self._writer = SummaryWriter(logdir=str(self.run_dir), purge_step=purge_step,
                                         flush_secs=tensorboard_flush_secs,
                                         filename_suffix=f".{time.time_ns()}")
        # Queued TensorBoard events would be lost if the script ended without close().
        atexit.register(self.close)

    def log(self, update: int, env_steps: int, metrics: Mapping[str, Any]) -> None:
        """Write one update's metrics: ``{name: array[num_seeds, ...]}`` (NumPy or JAX).

        ``update`` must increase from call to call; ``env_steps`` is the total number of
        environment steps per seed so far (the TensorBoard step).
        """
        update, env_steps = _as_int(update, "update"), _as_int(env_steps, "env_steps")
        if self._last_update is not None and update <= self._last_update:
            raise ValueError(f"update {update} logged after update {self._last_update}; "
                             "updates must increase (resume with resume_from_update)")
        values = self._expand(metrics)
        if self._columns is None:
            self._columns = list(INDEX_COLUMNS) + sorted(values, key=_column_sort_key)
            _write_rows(self._file, [self._columns])
        new = sorted((c for c in values if c not in self._columns), key=_column_sort_key)
        if new:
            self._add_columns(new)
        rows = [[str(update), str(seed), str(env_steps)]
                + [_format(values[c][seed]) if c in values else "" for c in self._columns[3:]]
                for seed in range(self.num_seeds)]
        _write_rows(self._file, rows)
        self._file.flush()
        self._last_update = update
        if self._writer is not None:
            self._log_tensorboard(env_steps, values)

    def flush(self) -> None:
        self._file.flush()
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the CSV file and the TensorBoard writer (idempotent)."""
        if not self._file.closed:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        atexit.unregister(self.close)

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------- internals
    def _expand(self, metrics: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """{column: array[num_seeds]}, splitting trailing axes into numbered columns."""
        out: dict[str, np.ndarray] = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or not name or "\n" in name or "\r" in name:
                raise ValueError(f"metric names must be non-empty one-line strings: {name!r}")
            arr = np.asarray(value)
            if arr.ndim == 0 or arr.shape[0] != self.num_seeds:
                raise ValueError(f"metric {name!r} has shape {arr.shape}; expected a leading "
                                 f"seed axis of size {self.num_seeds}")
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) \
                    or np.iscomplexobj(arr):
                raise ValueError(f"metric {name!r} has dtype {arr.dtype}; expected real numbers")
            if arr.ndim == 1:
                parts = {name: arr}
            else:
                parts = {f"{name}_{'_'.join(map(str, idx))}": arr[(slice(None), *idx)]
                         for idx in np.ndindex(arr.shape[1:])}
            for column, col_values in parts.items():
                if column in out or column in INDEX_COLUMNS:
                    raise ValueError(f"metric column {column!r} is given twice or is reserved")
                out[column] = col_values
        return out

    def _add_columns(self, new: list[str]) -> None:
        """Append columns by rewriting the file (earlier rows get empty cells)."""
        self._file.close()
        header, rows = read_table(self.path)
        pad = [""] * len(new)
        _write_table_atomic(self.path, header + new, [row + pad for row in rows])
        self._columns = header + new
        self._file = open(self.path, "a", newline="")

    def _truncate(self, update: int) -> int | None:
        """Keep rows with ``update <= update``; return the TensorBoard purge step."""
        header, rows = read_table(self.path)
        if header is None:
            return None
        kept = [row for row in rows if int(row[0]) <= update]
        seeds = {int(row[1]) for row in kept}
        if seeds and max(seeds) >= self.num_seeds:
            raise ValueError(f"{self.path} has seed {max(seeds)} but num_seeds={self.num_seeds}")
        _write_table_atomic(self.path, header, kept)
        self._columns = header
        if not kept:
            return 0 if rows else None
        self._last_update = max(int(row[0]) for row in kept)
        return max(int(row[2]) for row in kept) + 1

    def _log_tensorboard(self, env_steps: int, values: Mapping[str, np.ndarray]) -> None:
        for column, col_values in values.items():
            as_float = col_values.astype(np.float64)
            finite = np.isfinite(as_float)
            for seed in np.flatnonzero(finite):
                self._writer.add_scalar(f"seed{seed}/{column}", as_float[seed], env_steps)
            if finite.any():
                self._writer.add_scalar(f"mean/{column}", as_float[finite].mean(), env_steps)


def read_metrics(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read ``metrics.csv`` as arrays indexed by (update, seed).

    Returns:
      ``{"update": int64[U], "env_steps": int64[U], <column>: float64[U, S], ...}`` with the
      updates in increasing order, ``S`` = 1 + the largest seed index, and NaN where a
      value is empty or a row is missing (e.g. a run interrupted between two seeds' rows).
    """
    header, rows = read_table(Path(run_dir) / METRICS_FILE)
    if header is None:
        raise ValueError(f"{run_dir} has no metrics rows")
    updates = sorted({int(row[0]) for row in rows})
    num_seeds = 1 + max((int(row[1]) for row in rows), default=-1)
    position = {u: i for i, u in enumerate(updates)}
    env_steps = np.zeros(len(updates), np.int64)
    table = np.full((len(header) - 3, len(updates), num_seeds), np.nan)
    for row in rows:
        i, seed = position[int(row[0])], int(row[1])
        env_steps[i] = int(row[2])
        table[:, i, seed] = [float(cell) if cell else np.nan for cell in row[3:]]
    out = {"update": np.asarray(updates, np.int64), "env_steps": env_steps}
    out.update(zip(header[3:], table, strict=True))
    return out


def read_table(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    """(header, rows) of a metrics CSV; (None, []) when empty or absent.

    A final line without its newline is the torn end of an interrupted write and is dropped.
    """
    if not path.exists():
        return None, []
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        return None, []
    header = lines[0]
    if tuple(header[:3]) != INDEX_COLUMNS:
        raise ValueError(f"{path} is not a metrics file: its header starts with {header[:3]}")
    rows = [row for row in lines[1:] if len(row) == len(header)]
    return header, rows


def _write_rows(file, rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    file.write(buffer.getvalue())  # one write per call: a crash tears at most one line


def _write_table_atomic(path: Path, header: list[str], rows: list[list[str]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        _write_rows(f, [header, *rows])
    os.replace(tmp, path)


def _format(value: np.generic) -> str:
    if isinstance(value, np.floating):
        return "" if np.isnan(value) else str(value)  # NumPy's shortest round-trip text
    return str(int(value))


def _as_int(value: Any, what: str) -> int:
    arr = np.asarray(value)
    if arr.ndim != 0 or not np.issubdtype(arr.dtype, np.integer) or int(arr) < 0:
        raise ValueError(f"{what} must be a non-negative integer scalar, got {value!r}")
    return int(arr)


def _column_sort_key(column: str) -> tuple:
    """Sort by name with numeric suffixes compared as numbers: r_2 before r_10."""
    parts = column.split("_")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)
