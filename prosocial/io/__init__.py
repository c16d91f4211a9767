"""Everything a training run writes to its run directory.

A run directory holds ``config.json`` (resolved config and provenance, :mod:`.rundir`),
``metrics.csv`` and TensorBoard events (:mod:`.metrics_log`), ``checkpoints/<update>/``
(:mod:`.checkpoint`), and the GIFs and plots made from the run (:mod:`.render`,
:mod:`.plots`). :mod:`.progress` draws the terminal progress bar.
"""

from prosocial.io.checkpoint import (
    Checkpointer,
    CorruptFileError,
    export_safetensors,
    flatten_with_names,
    load_safetensors,
)
from prosocial.io.metrics_log import MetricsLogger, read_metrics
from prosocial.io.plots import plot_learning_curves
from prosocial.io.progress import TrainingProgress
from prosocial.io.render import upscale, write_gif
from prosocial.io.rundir import (
    RunDirError,
    RunDirLocked,
    collect_provenance,
    create_run_dir,
    load_provenance,
    load_run_config,
    lock_run_dir,
    make_dir,
)

__all__ = [
    "Checkpointer",
    "CorruptFileError",
    "MetricsLogger",
    "RunDirError",
    "RunDirLocked",
    "TrainingProgress",
    "collect_provenance",
    "create_run_dir",
    "export_safetensors",
    "flatten_with_names",
    "load_provenance",
    "load_run_config",
    "load_safetensors",
    "lock_run_dir",
    "make_dir",
    "plot_learning_curves",
    "read_metrics",
    "upscale",
    "write_gif",
]
