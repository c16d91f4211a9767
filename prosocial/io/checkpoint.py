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

Typed PRNG keys (``jax.random.key``) are stored as their raw ``uint32`` key data and
wrapped again on restore when the target leaf is a typed key, so old-style ``uint32`` keys
(``jax.random.PRNGKey``) and typed keys both round-trip.

:func:`export_safetensors` writes a parameter pytree as one flat safetensors file with
names built from the key path (``{"agent_0": {"conv": {"kernel": x}}}`` →
``agent_0/conv/kernel``), readable from PyTorch, NumPy or JAX without this library.
"""

from __future__ import annotations

import atexit
import json
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


class Checkpointer:
    """Saves and restores the training state under ``run_dir/checkpoints/<step>``.

    Args:
      run_dir: the run directory.
      max_to_keep: how many of the newest checkpoints to keep (``None``: all).
      async_save: write in a background thread; :meth:`save` returns once the arrays are
        copied off the device. Pending saves are finished by :meth:`wait`, :meth:`close`,
        the ``with`` block's exit, and at interpreter exit.
    """

    def __init__(self, run_dir: str | os.PathLike, max_to_keep: int | None = 3,
                 async_save: bool = True):
        if max_to_keep is not None and (int(max_to_keep) != max_to_keep or max_to_keep < 1):
            raise ValueError(f"max_to_keep must be a positive integer or None, got {max_to_keep}")
        self.directory = Path(run_dir).resolve() / CHECKPOINT_DIR
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            cleanup_tmp_directories=True,
            enable_async_checkpointing=async_save,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=(_STATE, _METADATA))
        self._closed = False
        _finish_at_exit(self._manager)

    def save(self, step: int, pytree: Any, metadata: Mapping[str, Any] | None = None) -> None:
        """Save ``pytree`` and the JSON-serialisable ``metadata`` as checkpoint ``step``.

        Raises ValueError if ``step`` is not newer than the latest checkpoint.
        """
        self._check_open()
        step = int(step)
        latest = self.latest_step()
        if latest is not None and step <= latest:
            raise ValueError(f"checkpoint step {step} is not after the latest one ({latest})")
        metadata = dict(metadata or {})
        try:
            json.dumps(metadata)
        except TypeError as e:
            raise TypeError(f"checkpoint metadata must be JSON-serialisable: {e}") from None
        state = jax.tree_util.tree_map_with_path(_to_savable, pytree)
        self._manager.save(step, args=ocp.args.Composite(
            **{_STATE: ocp.args.StandardSave(state), _METADATA: ocp.args.JsonSave(metadata)}))

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None when there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """Steps of all complete checkpoints, oldest first."""
        return sorted(self._manager.all_steps())

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
        """
        self._check_open()
        self._manager.wait_until_finished()
        if step is None:
            step = self.latest_step()
            if step is None:
                raise FileNotFoundError(f"no checkpoint in {self.directory}")
        elif int(step) not in self._manager.all_steps():
            raise FileNotFoundError(f"no checkpoint {step} in {self.directory}; "
                                    f"available: {self.all_steps()}")
        abstract = None
        if target is not None:
            abstract = jax.tree_util.tree_map_with_path(_to_abstract, target)
        restored = self._manager.restore(int(step), args=ocp.args.Composite(**{
            _STATE: ocp.args.StandardRestore(abstract), _METADATA: ocp.args.JsonRestore()}))
        state = restored[_STATE]
        if target is not None:
            # orbax checks shapes only for arrays saved from JAX; check every leaf here.
            state = jax.tree_util.tree_map_with_path(_check_and_cast, abstract, state)
            state = jax.tree.map(_like_target, target, state)
        return state, dict(restored[_METADATA])

    def wait(self) -> None:
        """Block until every pending asynchronous save is on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release orbax's threads (idempotent)."""
        if not self._closed:
            self._closed = True
            self._manager.wait_until_finished()
            self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Checkpointer is closed")


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
    ``prosocial_metadata``. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {_SAFETENSORS_META_KEY: json.dumps(dict(metadata or {}))}
    # safetensors stores C-contiguous buffers; slices and transposes must be copied first.
    tensors = {k: np.ascontiguousarray(v) for k, v in flatten_with_names(params).items()}
    save_file(tensors, str(path), metadata=header)
    return path


def load_safetensors(path: str | os.PathLike, target: Any = None) -> tuple[Any, dict]:
    """Read a file written by :func:`export_safetensors` as ``(params, metadata)``.

    Without ``target``, ``params`` is the flat ``{name: np.ndarray}`` dict. With it, the
    arrays are put back into the target's structure; names, shapes and dtypes must match
    the target exactly (a typed PRNG key target takes its ``uint32`` key data).
    """
    path = Path(path)
    flat = load_file(str(path))
    with safe_open(str(path), framework="numpy") as f:
        header = f.metadata() or {}
    metadata = json.loads(header.get(_SAFETENSORS_META_KEY, "{}"))
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
