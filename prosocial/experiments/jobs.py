"""Independent training jobs, run in this process one after another or as Ray tasks.

``prosocial compare`` and ``prosocial figure`` train several runs that share nothing; with
``--ray local`` (a Ray instance on this machine) or ``--ray ADDRESS`` (a running cluster)
each run is one Ray task of one CPU, so the runs proceed side by side, as many at once as
the cluster has CPUs. Workers need prosocial installed and must see the output directory
(a shared filesystem on a cluster); run directories are passed as absolute paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def add_ray_argument(parser, what: str) -> None:
    """The ``--ray local|ADDRESS`` option of a command that trains ``what``."""
    parser.add_argument("--ray", default=None, metavar="local|ADDRESS",
                        help=f"train {what} side by side as Ray tasks, one CPU each (local: "
                             f"a Ray on this machine; ADDRESS: a cluster whose workers see "
                             f"--out); default: one after another in this process")


def run_jobs(fn: Callable[..., Any], jobs: dict[str, tuple], ray_address: str | None,
             before: Callable[[str], None] | None = None,
             after: Callable[[str, Any], None] | None = None) -> dict[str, Any]:
    """``{name: fn(*args)}`` for ``jobs = {name: args}``.

    Without ``ray_address`` the jobs run in order in this process; with it, as Ray tasks
    (``"local"`` starts or joins a Ray on this machine, anything else is a cluster address),
    all submitted at once. ``before(name)`` is called as each starts (Ray: as it is
    submitted), ``after(name, result)`` as each finishes. ``fn`` must be a module-level
    function so that Ray can ship it. A failed job raises here (Ray: once it is collected,
    after the jobs that finished before it).
    """
    results: dict[str, Any] = {}
    if ray_address is None:
        for name, args in jobs.items():
            if before is not None:
                before(name)
            results[name] = fn(*args)
            if after is not None:
                after(name, results[name])
        return results
    if not jobs:
        return results
    import ray

    ray.init(address=None if ray_address == "local" else ray_address,
             ignore_reinit_error=True, log_to_driver=True)
    task = ray.remote(num_cpus=1)(fn)
    pending = {}
    for name, args in jobs.items():
        if before is not None:
            before(name)
        pending[task.remote(*args)] = name
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        name = pending.pop(done[0])
        results[name] = ray.get(done[0])
        if after is not None:
            after(name, results[name])
    return results


__all__ = ["add_ray_argument", "run_jobs"]
