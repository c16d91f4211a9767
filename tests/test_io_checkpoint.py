"""Orbax checkpoints of a train-state pytree and safetensors parameter export."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from prosocial.io import (
    Checkpointer,
    CorruptFileError,
    export_safetensors,
    flatten_with_names,
    load_safetensors,
)


@struct.dataclass
class _TrainState:
    params: dict
    opt_count: jax.Array
    rng: jax.Array  # uint32 PRNGKey data
    typed_key: jax.Array  # jax.random.key
    env_t: np.ndarray
    lr: float


def _state(scale):
    return _TrainState(
        params={"agent_0": {"conv": {"kernel": scale * jnp.arange(12.0).reshape(2, 2, 3),
                                     "bias": jnp.full(3, scale, jnp.bfloat16)}},
                "agent_1": [jnp.arange(4, dtype=jnp.int32) * int(scale)]},
        opt_count=jnp.asarray(7 * int(scale), jnp.int32),
        rng=jax.random.PRNGKey(int(scale)),
        typed_key=jax.random.key(100 + int(scale)),
        env_t=np.arange(5, dtype=np.int64) + int(scale),
        lr=0.5 * scale,
    )


def _assert_same(restored, expected):
    assert jax.tree.structure(restored) == jax.tree.structure(expected)
    for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(expected), strict=True):
        if jnp.issubdtype(want.dtype, jax.dtypes.prng_key):
            assert jnp.issubdtype(got.dtype, jax.dtypes.prng_key)
            got, want = jax.random.key_data(got), jax.random.key_data(want)
        assert isinstance(got, jax.Array) == isinstance(want, jax.Array)
        assert np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_save_restore_latest_and_keep_k(tmp_path):
    with Checkpointer(tmp_path, max_to_keep=2) as ckpt:
        assert ckpt.latest_step() is None
        with pytest.raises(FileNotFoundError, match="no checkpoint"):
            ckpt.restore(target=_state(0.0))
        for update in (10, 20, 30, 40):
            ckpt.save(update, _state(float(update)), {"update": update, "env_steps": update * 64})
        ckpt.wait()
        assert ckpt.latest_step() == 40
        assert ckpt.all_steps() == [30, 40]
        assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()
                      if p.is_dir()) == ["30", "40"]
        with pytest.raises(ValueError, match="not after the latest"):
            ckpt.save(40, _state(1.0))

        restored, meta = ckpt.restore(target=_state(0.0))
        assert meta == {"update": 40, "env_steps": 2560}
        # restored values are the saved ones, with the target's dtypes/types (lr: NumPy)
        expected = _state(40.0).replace(lr=np.asarray(20.0))
        _assert_same(restored, expected)
        # the restored keys continue the same random streams
        np.testing.assert_array_equal(jax.random.uniform(restored.rng, (3,)),
                                      jax.random.uniform(jax.random.PRNGKey(40), (3,)))
        np.testing.assert_array_equal(jax.random.uniform(restored.typed_key, (3,)),
                                      jax.random.uniform(jax.random.key(140), (3,)))

        older, meta = ckpt.restore(30, target=_state(0.0))
        assert meta["update"] == 30 and float(older.lr) == 15.0
        with pytest.raises(FileNotFoundError, match=r"available: \[30, 40\]"):
            ckpt.restore(10, target=_state(0.0))


def test_reopen_ignores_and_cleans_interrupted_save(tmp_path):
    with Checkpointer(tmp_path, max_to_keep=3, async_save=False) as ckpt:
        ckpt.save(1, {"w": np.ones(3, np.float32)}, {"update": 1})
    # what a crash in the middle of saving update 2 leaves behind
    partial = tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp-1234"
    partial.mkdir()
    (partial / "junk").write_text("half written")
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.latest_step() == 1
        state, meta = ckpt.restore()  # no target: the stored tree as plain containers
        assert meta == {"update": 1}
        np.testing.assert_array_equal(state["w"], np.ones(3, np.float32))
        ckpt.save(2, {"w": np.zeros(3, np.float32)}, {"update": 2})
        ckpt.wait()
        assert not partial.exists()  # the leftover is removed before the next save
        assert ckpt.all_steps() == [1, 2]
        np.testing.assert_array_equal(ckpt.restore()[0]["w"], np.zeros(3, np.float32))


def test_restore_rejects_a_different_structure(tmp_path):
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(0, {"w": np.arange(6, dtype=np.float32).reshape(2, 3),
                      "j": jnp.ones((2, 3), jnp.float32)})
        target = {"w": np.zeros((2, 3), np.float16), "j": jnp.zeros((2, 3), jnp.bfloat16)}
        state, _ = ckpt.restore(target=target)  # dtypes follow the target
        assert state["w"].dtype == np.float16 and state["j"].dtype == jnp.bfloat16
        np.testing.assert_array_equal(state["w"], [[0, 1, 2], [3, 4, 5]])
        with pytest.raises(ValueError, match=r"\['w'\] has shape \(2, 3\)"):
            ckpt.restore(target=dict(target, w=np.zeros((3, 3), np.float32)))
        with pytest.raises(ValueError):
            ckpt.restore(target=dict(target, j=jnp.zeros((1, 3))))
        with pytest.raises(ValueError):
            ckpt.restore(target=dict(target, extra=np.zeros(1)))
        with pytest.raises(ValueError, match="leaves must be arrays or numbers"):
            ckpt.save(1, {"name": "harvest"})
        with pytest.raises(TypeError, match="JSON-serialisable"):
            ckpt.save(1, {"w": np.zeros(1)}, {"bad": object()})
    with pytest.raises(ValueError, match="max_to_keep"):
        Checkpointer(tmp_path, max_to_keep=0)


def test_safetensors_round_trip(tmp_path):
    params = _state(2.0).params
    params["agent_1"].append(np.arange(6, dtype=np.float32).reshape(2, 3).T)  # not contiguous
    params["key"] = jax.random.key(5)
    path = export_safetensors(params, tmp_path / "out" / "params.safetensors",
                              {"update": 40, "env": "harvest"})
    flat, meta = load_safetensors(path)
    assert meta == {"update": 40, "env": "harvest"}
    assert sorted(flat) == ["agent_0/conv/bias", "agent_0/conv/kernel", "agent_1/0",
                            "agent_1/1", "key"]
    np.testing.assert_array_equal(flat["agent_0/conv/kernel"],
                                  2 * np.arange(12.0).reshape(2, 2, 3))
    assert flat["agent_0/conv/bias"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(flat["agent_1/1"], [[0, 3], [1, 4], [2, 5]])
    np.testing.assert_array_equal(flat["key"], jax.random.key_data(jax.random.key(5)))

    tree, _ = load_safetensors(path, target=params)
    _assert_same(tree, params)

    wrong = dict(params, agent_0={"conv": {"kernel": params["agent_0"]["conv"]["kernel"]}})
    with pytest.raises(ValueError, match=r"unexpected \['agent_0/conv/bias'\]"):
        load_safetensors(path, target=wrong)
    wrong = dict(params, key=jnp.zeros(2, jnp.float32))
    with pytest.raises(ValueError, match="key is uint32"):
        load_safetensors(path, target=wrong)
    with pytest.raises(ValueError, match="contains '/'"):
        flatten_with_names({"a/b": 1, "a": {"b": 2}})


def test_pending_async_save_finishes_at_exit(tmp_path):
    script = (
        "import numpy as np, sys\n"
        "from prosocial.io import Checkpointer\n"
        "ckpt = Checkpointer(sys.argv[1])\n"
        "ckpt.save(5, {'w': np.arange(200_000, dtype=np.float32)}, {'update': 5})\n"
    )  # ends without wait() or close()
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, cwd=root,
                   env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    with Checkpointer(tmp_path) as ckpt:
        state, meta = ckpt.restore(target={"w": np.zeros(200_000, np.float32)})
    assert meta == {"update": 5}
    np.testing.assert_array_equal(state["w"], np.arange(200_000, dtype=np.float32))


def _files(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in Path(root).rglob("*"))


def test_read_only_never_touches_a_writers_files(tmp_path):
    assert Checkpointer(tmp_path, read_only=True).latest_step() is None
    assert not (tmp_path / "checkpoints").exists()  # nothing created
    with Checkpointer(tmp_path, max_to_keep=1, async_save=False) as ckpt:
        ckpt.save(1, {"w": np.ones(3, np.float32)}, {"update": 1})
    # a writer's save in progress, as another process leaves it while it writes
    partial = tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp-99"
    partial.mkdir()
    (partial / "half").write_text("being written")
    before = _files(tmp_path)
    with Checkpointer(tmp_path, max_to_keep=1, read_only=True) as reader:
        assert reader.all_steps() == [1]
        state, meta = reader.restore()
        assert meta == {"update": 1} and reader.metadata() == {"update": 1}
        np.testing.assert_array_equal(state["w"], np.ones(3, np.float32))
        with pytest.raises(PermissionError, match="only reads"):
            reader.save(3, {"w": np.zeros(3, np.float32)})
    assert _files(tmp_path) == before
    assert (partial / "half").read_text() == "being written"


def _saved(tmp_path):
    with Checkpointer(tmp_path, async_save=False) as ckpt:
        ckpt.save(7, {"w": np.arange(1000, dtype=np.float32), "k": jax.random.key(3)},
                  {"update": 7})
    return tmp_path / "checkpoints" / "7"


def _biggest_file(directory):
    return max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def test_checksum_detects_changed_array_bytes(tmp_path):
    step_dir = _saved(tmp_path)
    target = {"w": np.zeros(1000, np.float32), "k": jax.random.key(0)}
    with Checkpointer(tmp_path, read_only=True) as ckpt:
        state, _ = ckpt.restore(target=target)  # intact: restores and verifies
    np.testing.assert_array_equal(state["w"], np.arange(1000, dtype=np.float32))
    # The arrays are zstd-compressed, so a flipped byte there fails decompression (the
    # truncation test); make the stored bytes disagree with the recorded digest instead.
    meta_file = step_dir / "metadata" / "metadata"
    record = json.loads(meta_file.read_text())
    record["_prosocial_integrity"]["sha256"]["w"] = "0" * 64
    meta_file.write_text(json.dumps(record))
    with Checkpointer(tmp_path, read_only=True) as ckpt:
        with pytest.raises(CorruptFileError, match=r"checkpoints/7 is corrupt: array 'w'"):
            ckpt.restore(target=target)
        with pytest.raises(CorruptFileError, match="'w'"):
            ckpt.restore()


def test_truncated_checkpoint_is_a_one_line_error(tmp_path):
    step_dir = _saved(tmp_path)
    victim = _biggest_file(step_dir)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    with Checkpointer(tmp_path, read_only=True) as ckpt:
        with pytest.raises(CorruptFileError) as e:
            ckpt.restore(target={"w": np.zeros(1000, np.float32), "k": jax.random.key(0)})
    assert str(step_dir) in str(e.value) and "\n" not in str(e.value)
    (step_dir / "metadata" / "metadata").write_text("{trunc")
    with Checkpointer(tmp_path, read_only=True) as ckpt:
        with pytest.raises(CorruptFileError, match="unreadable"):
            ckpt.metadata()


def test_safetensors_checksum_and_truncation(tmp_path):
    params = {"a": np.arange(64, dtype=np.float32), "b": np.ones((2, 3), np.int32)}
    path = export_safetensors(params, tmp_path / "p.safetensors", {"x": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["p.safetensors"]  # no temporary left
    raw = bytearray(path.read_bytes())
    assert load_safetensors(path)[1] == {"x": 1}
    raw[-10] ^= 0xFF  # one damaged byte inside the last tensor's data
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match=r"p\.safetensors is corrupt"):
        load_safetensors(path)
    path.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(CorruptFileError, match=r"p\.safetensors is not a readable"):
        load_safetensors(path)
    with pytest.raises(FileNotFoundError):
        load_safetensors(tmp_path / "missing.safetensors")
