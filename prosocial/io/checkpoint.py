"""Checkpoints of the whole training state (orbax) and parameter export (safetensors).

:class:`Checkpointer` keeps ``run_dir/checkpoints/<update>/`` with two orbax items: ``state``
(any pytree of JAX/NumPy arrays and scalars: parameters, optimiser state, env state, PRNG
keys) and ``metadata`` (a small JSON dict such as ``{"update": ..., "env_steps": ...}``).
Saves are asynchronous (training continues while the arrays are written) and atomic: orbax
writes into ``<update>.orbax-checkpoint-tmp-*`` and renames it when complete, so a crash
mid-save leaves the previous checkpoints intact and no half-written ``<update>``; such
temporary directories are ignored, and a Checkpointer opened on the directory deletes
them (in the background; its first save waits for that). Only the newest ``max_to_keep``
checkpoints are kept.

``Checkpointer(run_dir, read_only=True)`` only reads: it creates, renames and deletes
nothing, leaves a writer's unfinished ``*.orbax-checkpoint-tmp-*`` directory alone and
refuses :meth:`Checkpointer.save`, so ``prosocial eval``/``export`` may read a run while it
trains.

Every checkpoint carries a SHA-256 digest of each saved array (name, dtype, shape and
bytes) in its metadata; :meth:`Checkpointer.restore` recomputes them and raises
:class:`CorruptFileError` naming the checkpoint and array when one differs, and also when
orbax cannot read the files at all (truncated or damaged). Exported safetensors files carry
the same kind of digest in their header.

Typed PRNG keys (``jax.random.key``) are stored as their raw ``uint32`` key data and
wrapped again on restore when the target leaf is a typed key, so old-style ``uint32`` keys
(``jax.random.PRNGKey``) and typed keys both round-trip.

:func:`export_safetensors` writes a parameter pytree as one flat safetensors file with
names built from the key path (``{"agent_0": {"conv": {"kernel": x}}}`` →
``agent_0/conv/kernel``), readable from PyTorch, NumPy or JAX without this library.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

CHECKPOINT_DIR = "checkpoints"
_STATE, _METADATA = "state", "metadata"
_SAFETENSORS_META_KEY = "prosocial_metadata"
_SAFETENSORS_DIGEST_KEY = "prosocial_sha256"
# Reserved key of the metadata item: {"sha256": {array name: hex digest}, "dtype": {...}}.
_INTEGRITY_KEY = "_prosocial_integrity"


class CorruptFileError(ValueError):
    """A checkpoint or exported file that cannot be read or fails its checksum."""


class Checkpointer:
    """Saves and restores the training state under ``run_dir/checkpoints/<step>``.

    Args:
      run_dir: the run directory.
      max_to_keep: how many of the newest checkpoints to keep (``None``: all).
      async_save: write in a background thread; :meth:`save` returns once the arrays are
        copied off the device. Pending saves are finished by :meth:`wait`, :meth:`close`,
        the ``with`` block's exit, and at interpreter exit.
      read_only: only read (see the module docstring); ``max_to_keep`` and ``async_save``
        are then ignored.
    """

    def __init__(self, run_dir: str | os.PathLike, max_to_keep: int | None = 3,
                 async_save: bool = True, read_only: bool = False):
        if max_to_keep is not None and (int(max_to_keep) != max_to_keep or max_to_keep < 1):
            raise ValueError(f"max_to_keep must be a positive integer or None, got {max_to_keep}")
        self.directory = Path(run_dir).resolve() / CHECKPOINT_DIR
        self.read_only = bool(read_only)
        self._closed = False
        self._manager = None
        if self.read_only and not self.directory.is_dir():
            return  # nothing saved yet: no checkpoint, and nothing may be created
        if self.read_only:
            with _quiet_absl():  # orbax warns about each option read-only mode switches off
                options = ocp.CheckpointManagerOptions(
                    read_only=True, create=False, cleanup_tmp_directories=False,
                    max_to_keep=None, enable_async_checkpointing=False)
                self._manager = ocp.CheckpointManager(self.directory, options=options,
                                                      item_names=(_STATE, _METADATA))
        else:
            options = ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep,
                create=True,
                cleanup_tmp_directories=True,
                enable_async_checkpointing=async_save,
            )
            self._manager = ocp.CheckpointManager(self.directory, options=options,
                                                  item_names=(_STATE, _METADATA))
        _finish_at_exit(self._manager)

    def save(self, step: int, pytree: Any, metadata: Mapping[str, Any] | None = None) -> None:
        """Save ``pytree`` and the JSON-serialisable ``metadata`` as checkpoint ``step``.

        Raises ValueError if ``step`` is not newer than the latest checkpoint, and
        PermissionError on a read-only Checkpointer.
        """
        self._check_open()
        if self.read_only:
            raise PermissionError(f"this Checkpointer only reads {self.directory}")
        step = int(step)
        latest = self.latest_step()
        if latest is not None and step <= latest:
            raise ValueError(f"checkpoint step {step} is not after the latest one ({latest})")
        metadata = dict(metadata or {})
        try:
            json.dumps(metadata)
        except TypeError as e:
            raise TypeError(f"checkpoint metadata must be JSON-serialisable: {e}") from None
        if _INTEGRITY_KEY in metadata:
            raise ValueError(f"checkpoint metadata key {_INTEGRITY_KEY!r} is reserved")
        state = jax.tree_util.tree_map_with_path(_to_savable, pytree)
        metadata[_INTEGRITY_KEY] = _digests(state)
        self._manager.save(step, args=ocp.args.Composite(
            **{_STATE: ocp.args.StandardSave(state), _METADATA: ocp.args.JsonSave(metadata)}))

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None when there is none."""
        if self._manager is None:
            return None
        if self.read_only:  # a writer may have added one since this object was made
            self._manager.reload()
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Steps of all complete checkpoints, oldest first."""
        if self._manager is None:
            return []
        if self.read_only:
            self._manager.reload()
        return sorted(self._manager.all_steps())

    def metadata(self, step: int | None = None) -> dict:
        """The metadata saved with checkpoint ``step`` (default: the latest), without
        reading the arrays."""
        self._check_open()
        step = self._existing_step(step)
        path = self._step_dir(step)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                **{_METADATA: ocp.args.JsonRestore()}))
            meta = dict(restored[_METADATA])
        except Exception as e:  # any failure to read: a damaged file
            raise CorruptFileError(f"checkpoint {path} is unreadable: {_one_line(e)}") from None
        meta.pop(_INTEGRITY_KEY, None)
        return meta

    def restore(self, step: int | None = None, target: Any = None) -> tuple[Any, dict]:
        """Load checkpoint ``step`` (default: the latest) as ``(pytree, metadata)``.

        With ``target`` (a pytree of arrays, scalars or ``jax.ShapeDtypeStruct``, e.g. a
        freshly initialised train state), the result has the target's structure (flax
        dataclasses, named tuples…) and each leaf the target's dtype, as a JAX array where
        the target leaf is one (placed with its sharding) and a NumPy array otherwise.
        Without it, the stored tree comes back as nested dicts/lists.

        Raises:
          FileNotFoundError: no such checkpoint.
          ValueError: the target's structure or shapes differ from the stored state.
          CorruptFileError: the checkpoint's files are damaged, truncated or fail their
            checksum (a ``ValueError``).
        """
        self._check_open()
        if self._manager is not None and not self.read_only:
            self._manager.wait_until_finished()
        step = self._existing_step(step)
        path = self._step_dir(step)
        meta = self.metadata(step)  # raises CorruptFileError when unreadable
        integrity = self._integrity(step)
        abstract = stored = None
        if target is not None:
            abstract = jax.tree_util.tree_map_with_path(_to_abstract, target)
            # Read each array in its stored dtype so the checksum covers the stored bytes;
            # casting to the target's dtype comes after.
            stored = jax.tree_util.tree_map_with_path(
                lambda p, a: _with_dtype(a, integrity.get("dtype", {}).get(_path_name(p))),
                abstract)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**{
                _STATE: ocp.args.StandardRestore(stored)}))
        except Exception as e:
            if isinstance(e, ValueError) and target is not None and not _looks_corrupt(e):
                raise ValueError(f"checkpoint {path} does not match the target: "
                                 f"{_one_line(e)}") from None
            raise CorruptFileError(f"checkpoint {path} is unreadable: {_one_line(e)}") from None
        state = restored[_STATE]
        _verify(integrity.get("sha256"), state, f"checkpoint {path}")
        if target is not None:
            # orbax checks shapes only for arrays saved from JAX; check every leaf here.
            state = jax.tree_util.tree_map_with_path(_check_and_cast, abstract, state)
            state = jax.tree.map(_like_target, target, state)
        return state, meta

    def wait(self) -> None:
        """Block until every pending asynchronous save is on disk."""
        if self._manager is not None:
            self._manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release orbax's threads (idempotent)."""
        if not self._closed:
            self._closed = True
            if self._manager is not None:
                self._manager.wait_until_finished()
                self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Checkpointer is closed")

    def _existing_step(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
            if step is None:
                raise FileNotFoundError(f"no checkpoint in {self.directory}")
            return step
        if int(step) not in self.all_steps():
            raise FileNotFoundError(f"no checkpoint {step} in {self.directory}; "
                                    f"available: {self.all_steps()}")
        return int(step)

    def _step_dir(self, step: int) -> Path:
        return self.directory / str(step)

    def _integrity(self, step: int) -> dict:
        restored = self._manager.restore(step, args=ocp.args.Composite(
            **{_METADATA: ocp.args.JsonRestore()}))
        return dict(restored[_METADATA]).get(_INTEGRITY_KEY) or {}  # old checkpoints: none


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _looks_corrupt(error: BaseException) -> bool:
    text = str(error).lower()
    return any(w in text for w in ("corrupt", "decode", "truncat", "checksum", "unexpected end",
                                   "not found", "no such file", "invalid", "failed to read"))


def _path_name(path) -> str:
    return "/".join(_key_name(k) for k in path)


def _with_dtype(abstract: jax.ShapeDtypeStruct, dtype: str | None) -> jax.ShapeDtypeStruct:
    if dtype is None or np.dtype(dtype) == abstract.dtype:
        return abstract
    return jax.ShapeDtypeStruct(abstract.shape, np.dtype(dtype),
                                sharding=getattr(abstract, "sharding", None))


def _leaf_digest(value: Any) -> str:
    arr = np.ascontiguousarray(np.asarray(value))
    h = hashlib.sha256(f"{arr.dtype.str}{list(arr.shape)}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def _digests(tree: Any) -> dict:
    """Per-array SHA-256 digests and dtypes, keyed by the array's path name (``a/b/0``),
    which is the same whether the tree is a dataclass, dicts or lists."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    host = jax.device_get([leaf for _, leaf in leaves])
    names = [_path_name(p) for p, _ in leaves]
    return {"sha256": {n: _leaf_digest(v) for n, v in zip(names, host, strict=True)},
            "dtype": {n: np.asarray(v).dtype.name for n, v in zip(names, host, strict=True)}}


def _verify(expected: Mapping[str, str] | None, tree: Any, what: str) -> None:
    if not expected:
        return
    got = _digests(tree)["sha256"]
    missing = sorted(expected.keys() - got.keys())
    if missing:
        raise CorruptFileError(f"{what} lacks the saved array(s) {missing[:3]}")
    bad = [n for n in sorted(expected) if got[n] != expected[n]]
    if bad:
        raise CorruptFileError(f"{what} is corrupt: array {bad[0]!r} fails its sha256 "
                               f"checksum ({len(bad)} array(s) differ)")


@contextlib.contextmanager
def _quiet_absl():
    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _finish_at_exit(manager: ocp.CheckpointManager) -> None:
    """Finish ``manager``'s pending saves when the script ends, even if never closed.

    ``atexit`` is too late: by then Python has shut down the ``concurrent.futures`` pools
    that orbax's save thread submits to, and a save still in flight fails. CPython's hook
    that runs before threads are joined (the one ``concurrent.futures`` itself uses, called
    in reverse order of registration, so before its own) is early enough. Waiting on and
    closing an already closed manager does nothing.
    """
    def finish() -> None:
        manager.wait_until_finished()
        manager.close()

    getattr(threading, "_register_atexit", atexit.register)(finish)


def _is_typed_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_savable(path, x: Any) -> Any:
    if _is_typed_key(x):
        return jax.random.key_data(x)
    if isinstance(x, jax.Array):
        return x
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"cannot checkpoint leaf {jax.tree_util.keystr(path)} of type "
                         f"{type(x).__name__}; leaves must be arrays or numbers")
    return arr


def _to_abstract(path, x: Any) -> jax.ShapeDtypeStruct:
    if _is_typed_key(x):
        if not isinstance(x, jax.Array):
            raise ValueError(f"target leaf {jax.tree_util.keystr(path)} is an abstract typed "
                             "PRNG key; pass a concrete key (e.g. the initial train state)")
        x = jax.random.key_data(x)
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    arr = np.asarray(x)
    return jax.ShapeDtypeStruct(arr.shape, arr.dtype)


def _check_and_cast(path, want: jax.ShapeDtypeStruct, got: Any) -> Any:
    if tuple(np.shape(got)) != tuple(want.shape):
        raise ValueError(f"checkpoint leaf {jax.tree_util.keystr(path)} has shape "
                         f"{np.shape(got)}, the target expects {want.shape}")
    return got if got.dtype == want.dtype else got.astype(want.dtype)


def _like_target(target_leaf: Any, value: Any) -> Any:
    if _is_typed_key(target_leaf):
        return jax.random.wrap_key_data(jnp.asarray(value),
                                        impl=jax.random.key_impl(target_leaf))
    if isinstance(target_leaf, (jax.Array, jax.ShapeDtypeStruct)):
        return jnp.asarray(value)
    return np.asarray(value)


# --------------------------------------------------------------------------- safetensors
def flatten_with_names(pytree: Any) -> dict[str, np.ndarray]:
    """``{"a/b/c": array}`` from a pytree: dict keys, attribute names and sequence indices
    joined by ``/``. Typed PRNG keys become their ``uint32`` key data."""
    return {name: np.asarray(_to_savable(path, leaf))
            for name, path, leaf in _named_leaves(pytree)}


def _named_leaves(pytree: Any) -> list[tuple[str, Any, Any]]:
    out, seen = [], set()
    for path, leaf in jax.tree_util.tree_flatten_with_path(pytree)[0]:
        name = "/".join(_key_name(k) for k in path)
        if name in seen:
            raise ValueError(f"two leaves map to the name {name!r}; a key contains '/'")
        seen.add(name)
        out.append((name, path, leaf))
    return out


def export_safetensors(params: Any, path: str | os.PathLike,
                       metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a parameter pytree to a ``.safetensors`` file (see :func:`flatten_with_names`).

    ``metadata`` (JSON-serialisable) is stored as one JSON string in the file header under
    ``prosocial_metadata``, and a SHA-256 digest of the tensors under ``prosocial_sha256``
    (checked by :func:`load_safetensors`). The file is written next to its destination and
    renamed, so a reader never sees half of it. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors stores C-contiguous buffers; slices and transposes must be copied first.
    tensors = {k: np.ascontiguousarray(v) for k, v in flatten_with_names(params).items()}
    header = {_SAFETENSORS_META_KEY: json.dumps(dict(metadata or {})),
              _SAFETENSORS_DIGEST_KEY: _tensors_digest(tensors)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=header)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _tensors_digest(tensors: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode() + b"\0" + _leaf_digest(tensors[name]).encode())
    return h.hexdigest()


def load_safetensors(path: str | os.PathLike, target: Any = None) -> tuple[Any, dict]:
    """Read a file written by :func:`export_safetensors` as ``(params, metadata)``.

    Without ``target``, ``params`` is the flat ``{name: np.ndarray}`` dict. With it, the
    arrays are put back into the target's structure; names, shapes and dtypes must match
    the target exactly (a typed PRNG key target takes its ``uint32`` key data).

    Raises:
      FileNotFoundError: no such file.
      CorruptFileError: not a safetensors file, truncated, or its tensors fail the checksum
        stored in the header (a ``ValueError``).
      ValueError: the tensors do not match ``target``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        flat = load_file(str(path))
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
        metadata = json.loads(header.get(_SAFETENSORS_META_KEY, "{}"))
    except Exception as e:  # any failure to parse: a damaged or foreign file
        raise CorruptFileError(f"{path} is not a readable safetensors file: "
                               f"{_one_line(e)}") from None
    digest = header.get(_SAFETENSORS_DIGEST_KEY)
    if digest is not None and digest != _tensors_digest(flat):
        raise CorruptFileError(f"{path} is corrupt: its tensors fail the sha256 checksum "
                               "stored in its header")
    if target is None:
        return flat, metadata
    expected = {name: _to_abstract(p, leaf) for name, p, leaf in _named_leaves(target)}
    missing, unexpected = expected.keys() - flat.keys(), flat.keys() - expected.keys()
    if missing or unexpected:
        raise ValueError(f"{path} does not match the target: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")
    for name, want in expected.items():
        got = flat[name]
        if got.shape != tuple(want.shape) or got.dtype != want.dtype:
            raise ValueError(f"{path}: {name} is {got.dtype}{list(got.shape)}, the target "
                             f"expects {want.dtype}{list(want.shape)}")
    leaves = [flat[name] for name in expected]
    treedef = jax.tree_util.tree_structure(target)
    return jax.tree.map(_like_target, target, treedef.unflatten(leaves)), metadata


def _key_name(key: Any) -> str:
    if isinstance(key, jax.tree_util.DictKey):
        return str(key.key)
    if isinstance(key, jax.tree_util.GetAttrKey):
        return key.name
    if isinstance(key, jax.tree_util.SequenceKey):
        return str(key.idx)
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        return str(key.key)
    return str(key)
