"""Motive losses over many sequences of images, whole or in chunks (SCM and EMuReL).

SCM's and EMuReL's losses encode every image of a batch with their own convolution and run
wide forward models on the codes. On a large batch at once (A2C's 128 sequences × 129 images
per parameter set) the codes, the models' outputs and their gradients are bound by memory
traffic; in chunks of sequences (a ``lax.map``, whose body the loss rematerialises in the
backward pass) they stay small enough for the caches. Cleanup, 5 agents, A2C, 128 envs × 128
steps (``benchmarks/train_sps.py``): EMuReL 2,451 → 3,307 env steps/s (chunks of 2048
images), peak memory 5.4 → 4.1 GiB. Small batches (PPO's minibatches) run faster whole,
without the recomputed forward pass. The same values up to float rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

CHUNK_IMAGES = 1024
"""About how many images per parameter set go through at once when a batch is large (A2C,
Cleanup, interleaved runs: EMuReL 3,265 and 3,383 env steps/s at 2048, 3,363 and 3,442 at
1024; SCM 3,367 at 2048, 3,456 at 1024)."""

WHOLE_IMAGES = 8192
"""Batches of at most this many images per parameter set are not chunked: PPO's minibatches
(about 4 700 images per set at 128 envs × 128 steps and 4 minibatches) ran faster whole in
``benchmarks/train_sps.py``."""


def chunk_rows(b: int, length: int) -> int:
    """Sequences per chunk for b sequences of ``length`` + 1 images: all b when they hold at
    most ``WHOLE_IMAGES`` images; else the largest divisor of b with at most
    ``CHUNK_IMAGES`` images in a chunk, or all b where that divisor would make chunks under
    a quarter of the size (many tiny chunks cost more than they save)."""
    if b * (length + 1) <= WHOLE_IMAGES:
        return b
    target = max(1, CHUNK_IMAGES // (length + 1))
    chunk = max(c for c in range(1, min(b, target) + 1) if b % c == 0)
    return chunk if 4 * chunk >= target else b


def over_sequences(rows, inputs: tuple, length: int):
    """``rows(inputs)`` over the sequences of ``inputs`` (arrays ``[P, B, ...]`` with B
    sequences of ``length`` + 1 images), whole or in chunks of :func:`chunk_rows` sequences.

    ``rows`` takes the inputs of b sequences (``[P, b, ...]``) and returns a tuple of arrays
    ``[P, b, ...]``; the result is that tuple for all B sequences, in their order."""
    b = inputs[0].shape[1]
    chunk = chunk_rows(b, length)
    if chunk >= b:
        return rows(inputs)

    def seq_first(x):  # [P, b, ...] → [b, P, ...]: lax.map maps the leading axis
        return jnp.moveaxis(x, 1, 0)

    def body(x):
        return tuple(seq_first(y) for y in rows(tuple(seq_first(v) for v in x)))

    chunks = tuple(seq_first(v).reshape((b // chunk, chunk) + v.shape[:1] + v.shape[2:])
                   for v in inputs)
    out = jax.lax.map(jax.checkpoint(body), chunks)
    return tuple(seq_first(y.reshape((b,) + y.shape[2:])) for y in out)


__all__ = ["CHUNK_IMAGES", "WHOLE_IMAGES", "chunk_rows", "over_sequences"]
