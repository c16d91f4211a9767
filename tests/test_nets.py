"""The network: hand-written gradients equal JAX's autodiff of the plain definitions, and the
initialisation follows specs.md §8.1."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from prosocial import nets
from prosocial.envs.spaces import Box, Dict


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


# --- initialisation (specs.md §8.1) ----------------------------------------------------------


def assert_glorot_uniform(kernel, fan_in, fan_out):
    """Entries of U(−b, b), b = √(6 / (fan_in + fan_out)): all within b, variance b²/3, and
    the extremes near ±b (a narrower law, such as normalised columns of norm 0.01, fails)."""
    w = np.asarray(kernel).ravel()
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    assert np.all(np.abs(w) <= bound)
    # the sample variance of n uniform draws has a relative standard error √(0.8 / n)
    # (kurtosis 9/5), below 1% for the ≥ 9000 entries tested here: 5% is > 5 errors
    np.testing.assert_allclose(w.var(), bound ** 2 / 3, rtol=0.05)
    assert w.max() > 0.95 * bound and w.min() < -0.95 * bound
    assert abs(w.mean()) < 0.05 * bound


def test_policy_logits_are_glorot_uniform_and_value_head_normalised_columns():
    cfg = nets.NetConfig()  # SSD sizes: LSTM 128
    space = Dict({"rgb": Box(0, 255, (15, 15, 3), "uint8")})
    params = nets.init_stacked(cfg, jax.random.PRNGKey(0), space, 9, (8,))
    # 8 agents × 128 × 9 = 9216 entries, bound √(6 / 137) ≈ 0.209
    assert params["policy"]["kernel"].shape == (8, 128, 9)
    assert_glorot_uniform(params["policy"]["kernel"], 128, 9)
    assert np.all(np.asarray(params["policy"]["bias"]) == 0.0)
    # each agent's kernel is its own draw
    assert not np.allclose(params["policy"]["kernel"][0], params["policy"]["kernel"][1])
    # the value head keeps normalised columns of norm head_init_scale = 0.01
    norms = np.linalg.norm(np.asarray(params["value"]["kernel"]), axis=1)  # [8, 1]
    np.testing.assert_allclose(norms, 0.01, rtol=1e-5)
    assert np.all(np.asarray(params["value"]["bias"]) == 0.0)
