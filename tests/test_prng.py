"""prosocial.prng: JAX's Threefry-2x32 hash written out as the CPU lowering gives the same
bits as JAX's own (looped) lowering; compiled programs lose their loops and compute each
hash once however many kernels read it."""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry2x32_p

import prosocial  # noqa: F401  (installs the lowering)
from prosocial import prng

KNOWN = [
    # The known-answer vectors of Random123's threefry2x32_20 (kat_vectors).
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize(("key", "count", "expected"), KNOWN)
def test_threefry2x32_known_answers(key, count, expected):
    args = [jnp.uint32(x) for x in (*key, *count)]
    assert [int(x) for x in prng.threefry2x32(*args)] == list(expected)
    # Through JAX's primitive, i.e. the installed lowering (with its kept outputs).
    assert [int(x) for x in jax.jit(threefry2x32_p.bind)(*args)] == list(expected)


# Draws that go through the hash, jitted with whichever lowering is installed.
DRAWS = """
import json, sys, jax, jax.numpy as jnp, numpy as np
import prosocial
from prosocial import prng
out = {"installed": prng._installed}
for part in (True, False):
    with jax.threefry_partitionable(part):
        key = jax.random.PRNGKey(7)
        logits = jnp.log(jnp.array([0.2, 0.5, 0.3]))
        f = jax.jit(lambda k: (jax.random.split(k, 5), jax.random.bits(k, (40, 30), jnp.uint32),
                               jax.random.uniform(k, (6,)),
                               jax.random.categorical(k, logits, shape=(64,)),
                               jax.vmap(lambda kk: jax.random.split(kk, 3))(
                                   jax.random.split(k, 4)),
                               jax.random.fold_in(k, 3)))
        out[str(part)] = [np.asarray(x).astype(np.float64).ravel().tolist() for x in f(key)]
        out["loops_" + str(part)] = f.lower(key).compile().as_text().count(" while(")
json.dump(out, sys.stdout)
"""


def _draws(rolled: bool) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop(prng.ROLLED_ENV, None)
    if rolled:
        env[prng.ROLLED_ENV] = "1"
    done = subprocess.run([sys.executable, "-c", DRAWS], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(done.stdout)


def test_written_out_hash_gives_jax_bits_without_loops():
    """split, bits, uniform, categorical, a vmapped split and fold_in, jitted on CPU in both
    counter layouts: bit for bit the values of JAX's own lowering (a process started with
    PROSOCIAL_ROLLED_THREEFRY=1), and no while loop left in the compiled program."""
    ours, jaxs = _draws(rolled=False), _draws(rolled=True)
    assert ours["installed"] and not jaxs["installed"]
    for part in ("True", "False"):
        assert jaxs["loops_" + part] > 0  # JAX's lowering: a loop per hash
        assert ours["loops_" + part] == 0
        for a, b in zip(ours[part], jaxs[part], strict=True):
            assert np.array_equal(np.asarray(a), np.asarray(b))
    assert ours["True"][0] != ours["False"][0]  # the two layouts draw differently


def _hash_kernels(f, *args) -> list[tuple[str, int]]:
    """(output shape, xor count) of every fused kernel of ``jit(f)`` that computes xors. One
    hash has 21-23 (one per round, the key's third word, a draw's b1 ^ b2)."""
    text = jax.jit(f).lower(*args).compile().as_text()
    xors = {m.group(1): m.group(2).count(" xor(")
            for m in re.finditer(r"^(%[\w.\-]+) .*?\{\n(.*?)\n\}", text, re.S | re.M)}
    kernels = [(m.group(1), xors.get(m.group(2), 0)) for m in re.finditer(
        r"= (\w+\[[\d,]*\])\S* fusion\(.*?calls=(%[\w.\-]+)", text)]
    return [k for k in kernels if k[1]]


def test_each_hash_stays_in_kernels_of_its_own_shape():
    """XLA does not copy a hash into the kernels that read it: a split whose key words feed
    a second draw and a sum, and a scalar draw broadcast into 256 × 256 elements, compile to
    kernels that each hold at most one hash, of the hash's own shape. (Without the divide
    of prng._kept_hash, the second draw's kernel holds both hashes and the broadcast
    computes the scalar hash in each of the 65 536 elements.)"""
    key = jax.random.PRNGKey(0)
    assert _hash_kernels(lambda k: jax.random.bits(k, (8,), jnp.uint32), key) == [
        ("u32[8]", 23)]

    def two_readers(k):
        keys = jax.random.split(k, 512)
        bits = jax.vmap(lambda kk: jax.random.bits(kk, (), jnp.uint32))(keys)
        return bits, keys[:, 0] + keys[:, 1]

    kernels = _hash_kernels(two_readers, key)
    assert sum(x for _, x in kernels) >= 2 * 21  # both hashes are there
    assert all(shape == "u32[512]" and x <= 23 for shape, x in kernels)

    def broadcast(k, x):
        u = jax.random.uniform(k, ())
        return jnp.sum(x * u, axis=1), jnp.max(x + u, axis=0)

    kernels = _hash_kernels(broadcast, key, jnp.ones((256, 256)))
    rounds = [shape for shape, x in kernels if x >= 20]
    assert rounds and all(shape == "u32[]" for shape in rounds)


def test_install_is_idempotent_and_respects_the_switch(monkeypatch):
    assert prng.install() is True  # already installed by `import prosocial`
    monkeypatch.setattr(prng, "_installed", False)
    monkeypatch.setenv(prng.ROLLED_ENV, "1")
    assert prng.install() is False


def test_a_jax_without_the_hooks_keeps_its_loop(monkeypatch):
    """If a JAX version lacks the primitive or the lowering hooks, importing prosocial still
    works: install() warns and leaves JAX's own lowering."""
    import jax.interpreters.mlir as mlir

    monkeypatch.setattr(prng, "_installed", False)
    monkeypatch.delenv(prng.ROLLED_ENV, raising=False)
    monkeypatch.delattr(mlir, "lower_fun")
    with pytest.warns(UserWarning, match="Threefry lowering kept"):
        assert prng.install() is False
