"""The forward-model loss with its hand-written gradient (prosocial.motives.forward_loss)."""

import jax
import jax.numpy as jnp
import numpy as np

from prosocial.motives.curiosity import surprise
from prosocial.motives.forward_loss import relu_dense_surprise


def _plain(hidden, layer, target):
    """The same loss through autodiff: surprise(φ, relu(h W + b))."""
    pre = jnp.einsum("p...k,pkd->p...d", hidden, layer["kernel"])
    pre = pre + layer["bias"].reshape(layer["bias"].shape[:1] + (1,) * (pre.ndim - 2) + (-1,))
    return surprise(target, jax.nn.relu(pre))


def test_hand_case_value_and_gradients():
    # P = M = K = 1, D = 2: h = 1, W = [2, −1], b = [0.5, 0.5], φ = [3, 1].
    # pre = [2.5, −0.5], relu = [2.5, 0], e = φ − relu = [0.5, 1]; L = ½·(0.25 + 1)/2 = 0.3125.
    # With s = 1/D = 0.5 and u = −e·1[pre > 0] = [−0.5, 0]:
    # ∂φ = s·e = [0.25, 0.5]; ∂h = s·(u·Wᵀ) = 0.5·(−1) = −0.5; ∂W = s·h·u = [−0.25, 0];
    # ∂b = s·u = [−0.25, 0].
    hidden = jnp.array([[[1.0]]])
    layer = {"kernel": jnp.array([[[2.0, -1.0]]]), "bias": jnp.array([[0.5, 0.5]])}
    target = jnp.array([[[3.0, 1.0]]])
    value = relu_dense_surprise(hidden, layer, target)
    np.testing.assert_allclose(np.asarray(value), [[0.3125]], rtol=1e-6)
    dh, dl, dt = jax.grad(lambda h, lay, t: relu_dense_surprise(h, lay, t).sum(),
                          argnums=(0, 1, 2))(hidden, layer, target)
    np.testing.assert_allclose(np.asarray(dh), [[[-0.5]]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(dl["kernel"]), [[[-0.25, 0.0]]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(dl["bias"]), [[-0.25, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(dt), [[[0.25, 0.5]]], rtol=1e-6)


def test_matches_autodiff_of_the_plain_loss_on_sequences():
    """[P, B, L, ·] inputs, about half the pre-activations ≤ 0, a weighted sum of the losses
    (as the masked means of the SCM and EMuReL losses): values and all four gradients equal
    autodiff's up to float rounding."""
    k = jax.random.split(jax.random.PRNGKey(3), 5)
    p, b, length, width, d = 2, 3, 4, 5, 7
    hidden = jnp.tanh(jax.random.normal(k[0], (p, b, length, width)))
    layer = {"kernel": jax.random.normal(k[1], (p, width, d)),
             "bias": 0.3 * jax.random.normal(k[2], (p, d))}
    target = jax.nn.relu(jax.random.normal(k[3], (p, b, length, d)))
    weights = jax.random.uniform(k[4], (p, b, length))
    pre = jnp.einsum("pblk,pkd->pbld", hidden, layer["kernel"]) + layer["bias"][:, None, None]
    assert 0.25 < float((pre > 0).mean()) < 0.75

    def total(fn):
        return lambda h, lay, t: (fn(h, lay, t) * weights).sum()

    np.testing.assert_allclose(np.asarray(relu_dense_surprise(hidden, layer, target)),
                               np.asarray(_plain(hidden, layer, target)), rtol=1e-6)
    ours = jax.grad(total(relu_dense_surprise), argnums=(0, 1, 2))(hidden, layer, target)
    theirs = jax.grad(total(_plain), argnums=(0, 1, 2))(hidden, layer, target)
    for a, c in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert a.shape == c.shape
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-5, atol=1e-7)
