"""JAX's Threefry-2x32 hash as straight-line code on CPU: the same bits, fewer kernels.

Every ``jax.random`` draw with the default keys (``split``, ``bits``, ``uniform``,
``categorical``, …) evaluates the Threefry-2x32 block cipher (20 rounds, Salmon et al.
2011). On CPU, JAX lowers it as a loop of 5 iterations of 4 rounds: short compiles, but a
while loop with its kernels and launches for every draw. A rollout step draws several
times (key splits, each population's actions, the environments' own draws), so on small
batches those loops are a large part of a step.

:func:`install` registers :func:`threefry2x32` (the rounds written out, which XLA fuses into
one elementwise kernel) as the CPU lowering of JAX's ``threefry2x32`` primitive. It is the
same function, so every draw gives the same bits as JAX's own lowering, bit for bit (a test
compares the two in separate processes); only the compiled program changes.

Written out, XLA would also fuse the hash into each of its consumers and compute it again
in every one (both words of a split key, every element of a broadcast): on ``ipd`` that
made steps 3× slower. So each hash output ends with a division by a runtime 1, an integer
divide by a non-constant, which XLA's fusion counts as expensive and does not duplicate: the
hash stays one kernel whose result its consumers read.

``import prosocial`` installs it unless the environment variable
``PROSOCIAL_ROLLED_THREEFRY=1`` is set, which keeps JAX's loop. It applies to programs
compiled after the import; on GPU and TPU JAX's own lowering is already straight-line.
``benchmarks/env_sps.py`` measured it (``--mode full``, env steps/s, JAX's loop → written
out): ipd at 4096 envs 27.1 M → 37.1 M, coins at 512 1.57 M → 2.82 M, forage at 512
1.33 M → 2.12 M, harvest at 512 120 k → 145 k; Cleanup PPO training 8.5 k → 9.8 k.
"""

from __future__ import annotations

import os
import warnings

import jax.numpy as jnp

THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))  # Threefry-2x32, rounds 1-4 and 5-8
ROLLED_ENV = "PROSOCIAL_ROLLED_THREEFRY"

_installed = False


def threefry2x32(key1, key2, count1, count2):
    """The Threefry-2x32 block cipher (20 rounds) on uint32 arrays (broadcast together):
    ``(x1, x2)`` for the key ``(key1, key2)`` and the counter ``(count1, count2)``.

    Five groups of four rounds; each round is ``x1 += x2; x2 = rotl(x2, r) ^ x1`` with the
    rotations r = 13, 15, 26, 6 (groups 1, 3, 5) and 17, 29, 16, 24 (groups 2, 4); after
    group g the key words ``k[g mod 3]`` and ``k[(g + 1) mod 3] + g`` are added, where
    ``k = (key1, key2, key1 ^ key2 ^ 0x1BD11BDA)``; before the first the counter gets
    ``k[0], k[1]``."""
    keys = (key1, key2, key1 ^ key2 ^ jnp.uint32(0x1BD11BDA))
    x1, x2 = count1 + keys[0], count2 + keys[1]
    for i in range(5):
        for rotation in THREEFRY_ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = ((x2 << jnp.uint32(rotation)) | (x2 >> jnp.uint32(32 - rotation))) ^ x1
        x1 = x1 + keys[(i + 1) % 3]
        x2 = x2 + keys[(i + 2) % 3] + jnp.uint32(i + 1)
    return x1, x2


def _kept_hash(key1, key2, count1, count2):
    """:func:`threefry2x32`, each output divided by a 1 that XLA cannot see is 1 (module
    docstring): the same values, computed once however many kernels read them."""
    x1, x2 = threefry2x32(key1, key2, count1, count2)
    one = jnp.minimum(key1 | jnp.uint32(1), jnp.uint32(1))
    return [x1 // one, x2 // one]


def install() -> bool:
    """Make :func:`threefry2x32` (with its outputs kept, :func:`_kept_hash`) the CPU
    lowering of JAX's ``threefry2x32`` primitive, once. Returns whether it is installed:
    False when ``PROSOCIAL_ROLLED_THREEFRY=1`` asks for JAX's loop, or (with a warning) when
    this JAX lacks the hooks it uses."""
    global _installed
    if _installed:
        return True
    if os.environ.get(ROLLED_ENV, "").strip() not in ("", "0"):
        return False
    try:
        from jax.extend.random import threefry2x32_p
        from jax.interpreters import mlir

        rule = mlir.lower_fun(_kept_hash, multiple_results=True)
        mlir.register_lowering(threefry2x32_p, rule, platform="cpu")
    except (ImportError, AttributeError) as err:  # a JAX without these hooks: its own loop
        warnings.warn(f"prosocial.prng: JAX's Threefry lowering kept ({err})", stacklevel=2)
        return False
    _installed = True
    return True


__all__ = ["ROLLED_ENV", "THREEFRY_ROTATIONS", "install", "threefry2x32"]
