"""prosocial.experiments.jobs: independent jobs in this process or as Ray tasks."""

import argparse
import statistics

import pytest

from prosocial.experiments.jobs import add_ray_argument, run_jobs


def _square_plus(x, y):
    return x * x + y


def test_jobs_in_this_process_run_in_order_with_their_callbacks():
    calls = []
    out = run_jobs(_square_plus, {"a": (3, 1), "b": (2, 0)}, None,
                   before=lambda name: calls.append(("before", name)),
                   after=lambda name, result: calls.append(("after", name, result)))
    assert out == {"a": 10, "b": 4}
    assert calls == [("before", "a"), ("after", "a", 10), ("before", "b"), ("after", "b", 4)]


def test_a_failing_job_raises():
    with pytest.raises(ZeroDivisionError):
        run_jobs(lambda x: 1 / x, {"ok": (1,), "bad": (0,)}, None)


def test_ray_argument():
    parser = argparse.ArgumentParser()
    add_ray_argument(parser, "the runs")
    assert parser.parse_args([]).ray is None
    assert parser.parse_args(["--ray", "local"]).ray == "local"
    assert "train the runs side by side" in parser.format_help()


@pytest.mark.slow
def test_jobs_as_ray_tasks():
    pytest.importorskip("ray")
    finished = []
    # A function the workers can import (this test module is not on their path).
    out = run_jobs(statistics.mean, {"a": ([1, 2, 3],), "b": ([4, 6],)}, "local",
                   after=lambda name, result: finished.append(name))
    assert out == {"a": 2, "b": 5} and sorted(finished) == ["a", "b"]
