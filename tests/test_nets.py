"""The network's hand-written gradients equal JAX's autodiff of the plain definitions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prosocial import nets


def test_lstm_scan_gradient_matches_autodiff_with_resets():
    length, p, b, h = 6, 2, 3, 4
    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    kernel = 0.3 * jax.random.normal(keys[0], (p, h, 4 * h))
    gates_x = jax.random.normal(keys[1], (length, p, b, 4 * h))
    carry = (jax.random.normal(keys[2], (p, b, h)), jax.random.normal(keys[3], (p, b, h)))
    starts = jax.random.bernoulli(keys[4], 0.3, (length, p, b))
    weights = jax.random.normal(keys[5], (length, p, b, h))

    def plain(kernel, gates_x, carry):
        def body(c, x):
            gx, start = x
            return nets.lstm_cell({"lstm": {"recurrent_kernel": kernel}},
                                  nets.reset_carry(c, start), gx)

        return jax.lax.scan(body, carry, (gates_x, starts))[1]

    def fast(kernel, gates_x, carry):
        return nets.lstm_scan(kernel, gates_x, carry, starts)

    np.testing.assert_allclose(fast(kernel, gates_x, carry), plain(kernel, gates_x, carry),
                               atol=1e-6)
    grad = lambda f: jax.grad(lambda *a: jnp.sum(f(*a) * weights), argnums=(0, 1, 2))  # noqa: E731
    for want, got in zip(jax.tree.leaves(grad(plain)(kernel, gates_x, carry)),
                         jax.tree.leaves(grad(fast)(kernel, gates_x, carry)), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_sigmoid_is_the_logistic_function():
    x = jnp.linspace(-20.0, 20.0, 101)
    np.testing.assert_allclose(nets._sigmoid(x), jax.nn.sigmoid(x), atol=1e-6)
