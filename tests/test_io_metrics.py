"""metrics.csv and TensorBoard events: exact rows, columns, NaN, resume truncation."""

import struct

import numpy as np
import pytest
from tensorboardX.proto.event_pb2 import Event

from prosocial.io import MetricsLogger, read_metrics

NAN = np.nan


def _three_updates():
    """2 seeds × 3 updates; "returns" is per-agent [2 seeds, 3 agents]."""
    return [
        (1, 100, {"collective_return": np.array([1.5, NAN], np.float32),
                  "returns": np.array([[0.5, 0.25, 0.75], [1, 2, 3]], np.float32),
                  "apples": np.array([3, 4], np.int32)}),
        (2, 200, {"returns": np.array([[0.1, 0.2, 0.3], [4, 5, 6]], np.float32),
                  "apples": np.array([5, 6]),
                  "collective_return": np.array([2.0, 3.0], np.float64)}),
        (3, 300, {"collective_return": np.array([NAN, NAN]),
                  "returns": np.zeros((2, 3)),
                  "apples": np.array([True, False])}),
    ]


def _read_events(run_dir):
    """Every (tag, step, value) in the run's TensorBoard files, by parsing the TFRecord
    framing (u64 length, u32 crc, payload, u32 crc) with tensorboardX's Event protobuf."""
    scalars, starts = [], []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            if event.HasField("session_log"):
                starts.append(event.step)
            for value in event.summary.value:
                scalars.append((value.tag, event.step, value.simple_value))
    return scalars, starts


def test_csv_exact_rows_and_read_back(tmp_path):
    with MetricsLogger(tmp_path, num_seeds=2, tensorboard=False) as log:
        for update, steps, metrics in _three_updates():
            log.log(update, steps, metrics)
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "update,seed,env_steps,apples,collective_return,returns_0,returns_1,returns_2",
        "1,0,100,3,1.5,0.5,0.25,0.75",
        "1,1,100,4,,1.0,2.0,3.0",
        "2,0,200,5,2.0,0.1,0.2,0.3",
        "2,1,200,6,3.0,4.0,5.0,6.0",
        "3,0,300,1,,0.0,0.0,0.0",
        "3,1,300,0,,0.0,0.0,0.0",
    ]
    m = read_metrics(tmp_path)
    assert set(m) == {"update", "env_steps", "apples", "collective_return",
                      "returns_0", "returns_1", "returns_2"}
    np.testing.assert_array_equal(m["update"], [1, 2, 3])
    np.testing.assert_array_equal(m["env_steps"], [100, 200, 300])
    np.testing.assert_array_equal(m["collective_return"], [[1.5, NAN], [2, 3], [NAN, NAN]])
    np.testing.assert_array_equal(m["returns_1"], [[0.25, 2], [0.2, 5], [0, 0]])
    assert m["apples"].shape == (3, 2) and m["apples"].dtype == np.float64


def test_columns_added_later_and_missing_metrics(tmp_path):
    with MetricsLogger(tmp_path, num_seeds=1, tensorboard=False) as log:
        log.log(0, 10, {"b": [1.0]})
        log.log(1, 20, {"b": [2.0], "a": [7], "c_10": [0.5], "c_2": [0.25]})
        log.log(2, 30, {"a": [8]})
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "update,seed,env_steps,b,a,c_2,c_10",
        "0,0,10,1.0,,,",
        "1,0,20,2.0,7,0.25,0.5",
        "2,0,30,,8,,",
    ]


def test_bad_input(tmp_path):
    log = MetricsLogger(tmp_path, num_seeds=2, tensorboard=False)
    with pytest.raises(ValueError, match="leading seed axis of size 2"):
        log.log(0, 0, {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="leading seed axis"):
        log.log(0, 0, {"x": 1.0})
    with pytest.raises(ValueError, match="reserved"):
        log.log(0, 0, {"seed": np.zeros(2)})
    with pytest.raises(ValueError, match="given twice"):
        log.log(0, 0, {"r": np.zeros((2, 2)), "r_1": np.zeros(2)})
    with pytest.raises(ValueError, match="env_steps must be a non-negative integer"):
        log.log(0, 1.5, {"x": np.zeros(2)})
    log.log(4, 0, {"x": np.zeros(2)})
    with pytest.raises(ValueError, match="updates must increase"):
        log.log(4, 0, {"x": np.zeros(2)})
    log.close()
    with pytest.raises(FileExistsError, match="resume_from_update"):
        MetricsLogger(tmp_path, num_seeds=2, tensorboard=False)
    with pytest.raises(FileNotFoundError):
        MetricsLogger(tmp_path / "missing", num_seeds=2)


def test_resume_truncates_to_checkpoint_update(tmp_path):
    def metrics(update, run):
        return {"r": np.array([update + 0.25, update + 0.5]) + 10 * run}

    with MetricsLogger(tmp_path, num_seeds=2) as log:
        for update in range(1, 6):
            log.log(update, 100 * update, metrics(update, run=0))
    # the checkpoint at update 3 is restored: updates 4 and 5 are recomputed
    with MetricsLogger(tmp_path, num_seeds=2, resume_from_update=3) as log:
        with pytest.raises(ValueError, match="updates must increase"):
            log.log(3, 300, metrics(3, run=1))
        for update in (4, 5):
            log.log(update, 100 * update, metrics(update, run=1))
    m = read_metrics(tmp_path)
    np.testing.assert_array_equal(m["update"], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(
        m["r"], [[1.25, 1.5], [2.25, 2.5], [3.25, 3.5], [14.25, 14.5], [15.25, 15.5]])
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "update,seed,env_steps,r" and len(lines) == 1 + 5 * 2
    pairs = [tuple(line.split(",")[:2]) for line in lines[1:]]
    assert len(set(pairs)) == len(pairs) == 10

    # TensorBoard: the resumed session starts with a purge step just past update 3's
    # env_steps, so TensorBoard hides the first session's events for updates 4 and 5
    scalars, starts = _read_events(tmp_path)
    assert starts == [301]
    shown = {}
    for tag, step, value in scalars:  # later files override what the purge drops
        if tag == "seed1/r":
            shown[step] = value
    assert shown == {100: 1.5, 200: 2.5, 300: 3.5, 400: 14.5, 500: 15.5}


def test_resume_drops_a_torn_last_line(tmp_path):
    (tmp_path / "metrics.csv").write_text("update,seed,env_steps,r\n1,0,10,0.5\n2,0,20,0.")
    with MetricsLogger(tmp_path, num_seeds=1, resume_from_update=5, tensorboard=False) as log:
        log.log(2, 20, {"r": [0.75]})
    assert (tmp_path / "metrics.csv").read_text() == (
        "update,seed,env_steps,r\n1,0,10,0.5\n2,0,20,0.75\n")
    with pytest.raises(ValueError, match="num_seeds=1"):
        (tmp_path / "metrics.csv").write_text("update,seed,env_steps,r\n1,3,10,0.5\n")
        MetricsLogger(tmp_path, num_seeds=1, resume_from_update=5, tensorboard=False)


def test_tensorboard_scalars(tmp_path):
    with MetricsLogger(tmp_path, num_seeds=2) as log:
        for update, steps, metrics in _three_updates():
            log.log(update, steps, metrics)
    assert list(tmp_path.glob("events.out.tfevents.*"))
    scalars, starts = _read_events(tmp_path)
    assert starts == []
    by_key = {(tag, step): value for tag, step, value in scalars}
    assert len(by_key) == len(scalars)  # no duplicate (tag, step)
    tags = {tag for tag, _, _ in scalars}
    columns = ["apples", "collective_return", "returns_0", "returns_1", "returns_2"]
    assert tags == {f"{p}/{c}" for p in ("seed0", "seed1", "mean") for c in columns}
    assert by_key[("seed0/collective_return", 100)] == 1.5
    assert ("seed1/collective_return", 100) not in by_key  # NaN is not written
    assert by_key[("mean/collective_return", 100)] == 1.5  # mean over finite seeds
    assert by_key[("mean/collective_return", 200)] == 2.5
    assert not any(k[0] == "mean/collective_return" and k[1] == 300 for k in by_key)
    assert by_key[("seed1/returns_2", 200)] == 6.0
    assert by_key[("mean/returns_0", 100)] == 0.75
    assert by_key[("mean/apples", 300)] == 0.5
