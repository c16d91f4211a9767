"""Learning curves from a run's metrics, rendered off-screen to PNG/PDF/SVG.

Each panel shows one metric against environment steps (or updates): the line is the mean
over seeds, and the shaded band is either the range over seeds (``band="minmax"``,
the default: every seed's curve lies inside it) or the mean ± one standard deviation over
seeds (``band="std"``, population std, ddof = 0). Statistics at each x use only the seeds
with a value there, and x positions where no seed has a value yet (e.g. before the first
episode ended) are skipped, so the line joins the points around such gaps.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, hence no global state and
no display needed: the Agg canvas renders the file).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from prosocial.io.metrics_log import read_metrics

_X_LABELS = {"env_steps": "environment steps (per seed)", "update": "update"}
_BANDS = {"minmax": "min–max over seeds", "std": "mean ± 1 std over seeds"}


def plot_learning_curves(
    metrics: Mapping[str, np.ndarray] | str | os.PathLike,
    path: str | os.PathLike,
    x: str = "env_steps",
    ys: Sequence[str] = ("collective_return",),
    band: str = "minmax",
    title: str | None = None,
) -> Path:
    """Plot one panel per metric in ``ys`` and save the figure to ``path``.

    Args:
      metrics: :func:`~prosocial.io.metrics_log.read_metrics`'s dict (x arrays ``[U]``,
        metrics ``[U, num_seeds]`` or ``[U]`` for one seed), or a run directory to read.
      path: output file; the suffix picks the format (``.png``, ``.pdf``, ``.svg``).
      x: ``"env_steps"`` or ``"update"``.
      ys: metric names. A name stored as numbered columns (per-agent ``returns_0``,
        ``returns_1``, …) may be given by its base name (``"returns"``): the panel then
        has one line per column.
      band: ``"minmax"`` or ``"std"`` (see the module docstring).
      title: figure title.

    Returns:
      The path written.
    """
    if not isinstance(metrics, Mapping):
        metrics = read_metrics(metrics)
    if x not in _X_LABELS or x not in metrics:
        raise ValueError(f"x must be one of {sorted(_X_LABELS)} and present in the metrics")
    if band not in _BANDS:
        raise ValueError(f"band must be one of {sorted(_BANDS)}, got {band!r}")
    if isinstance(ys, str) or not ys:
        raise ValueError(f"ys must be a non-empty sequence of metric names, got {ys!r}")
    # Deferred: matplotlib takes ~1 s to import and a training process may never plot.
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter, MaxNLocator

    xs = np.asarray(metrics[x], dtype=np.float64)
    panels = [(y, _series(metrics, y, len(xs))) for y in ys]
    num_seeds = max(arr.shape[1] for _, series in panels for arr in series.values())

    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(5.0 * ncols, 3.6 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (y, series) in zip(axes, panels, strict=False):
        drawn = False
        for label, values in series.items():
            centre, low, high, ok = _summary(values, band)
            if not ok.any():
                continue
            line, = ax.plot(xs[ok], centre[ok], label=label if len(series) > 1 else None)
            ax.fill_between(xs[ok], low[ok], high[ok], color=line.get_color(), alpha=0.25,
                            linewidth=0)
            drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "no values yet", ha="center", va="center",
                    transform=ax.transAxes, color="grey")
        ax.set_title(y)
        ax.set_xlabel(_X_LABELS[x])
        # step counts in the millions: "2.5M" rather than "2500000" run-on tick labels
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
        if len(series) > 1 and drawn:
            ax.legend(fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    seeds = f"{num_seeds} seed" + ("s" if num_seeds != 1 else "")
    caption = f"line: mean over {seeds}; shaded: {_BANDS[band]}"
    fig.suptitle(f"{title}\n{caption}" if title else caption, fontsize="medium")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _series(metrics: Mapping[str, np.ndarray], y: str, length: int) -> dict[str, np.ndarray]:
    """{label: float[U, S]} for metric ``y`` or, by base name, its numbered columns."""
    if y in metrics:
        names = [y]
    else:
        pattern = re.compile(re.escape(y) + r"_(\d+)")
        found = [(int(m.group(1)), k) for k in metrics if (m := pattern.fullmatch(k))]
        if not found:
            raise ValueError(f"no metric {y!r}; available: {sorted(metrics)}")
        names = [k for _, k in sorted(found)]
    out = {}
    for name in names:
        values = np.asarray(metrics[name], dtype=np.float64)
        values = values[:, None] if values.ndim == 1 else values
        if values.ndim != 2 or values.shape[0] != length:
            raise ValueError(f"metric {name!r} has shape {values.shape}; expected "
                             f"[{length}, num_seeds] to match x")
        out[name] = values
    return out


def _summary(values: np.ndarray, band: str):
    """(centre, low, high, has_value) over the seed axis, ignoring NaN."""
    ok = np.isfinite(values).any(axis=1)
    with warnings.catch_warnings():  # all-NaN rows are expected and masked by `ok`
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmean(values, axis=1)
        if band == "minmax":
            low, high = np.nanmin(values, axis=1), np.nanmax(values, axis=1)
        else:
            spread = np.nanstd(values, axis=1)
            low, high = centre - spread, centre + spread
    return centre, low, high, ok
