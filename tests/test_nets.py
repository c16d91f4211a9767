"""The network: hand-written gradients equal JAX's autodiff of the plain definitions, and the
initialisation follows specs.md §8.1."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


# --- convolution's hand-written backward pass ------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_direct_conv_gradient_matches_autodiff_of_lax_conv(dtype):
    """``_conv_direct``'s custom VJP (kernel and bias) against autodiff of ``lax.conv`` (the
    ``xla`` impl), including outputs where the ReLU is off: filter 0 has a bias so low that
    it never fires (its gradient is exactly 0), the others fire on part of the map."""
    p, m, h, w, c, k, f = 2, 3, 7, 6, 3, 3, 4
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    if dtype == "uint8":  # observations as the learner feeds them
        x = jax.random.randint(keys[0], (p, m, h, w, c), 0, 256).astype(jnp.uint8)
        scale = 1.0 / 255.0
    else:
        x = jax.random.normal(keys[0], (p, m, h, w, c))
        scale = 1.0
    kernel = scale * jax.random.normal(keys[1], (p, k, k, c, f))
    # Biases from the pre-activations z: filter 0 below its max (never fires), filters 1–3
    # at their 50th, 30th and 70th percentile (fire on half, 70% and 30% of the map).
    z = jax.vmap(lambda x, k: jax.lax.conv_general_dilated(
        x.astype(jnp.float32), k, (1, 1), "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC")))(x, kernel)
    z = np.asarray(z).reshape(p, -1, f)
    bias = jnp.asarray(np.stack([[-z[i, :, 0].max() - 1.0]
                                 + [-np.percentile(z[i, :, j], q)
                                    for j, q in ((1, 50), (2, 30), (3, 70))]
                                 for i in range(p)]), jnp.float32)
    weights = jax.random.normal(keys[2], (p, m, h - k + 1, w - k + 1, f))

    def loss(impl):
        return lambda kernel, bias: jnp.sum(nets.conv_relu(impl, x, kernel, bias) * weights)

    y = np.asarray(nets.conv_relu("direct", x, kernel, bias))
    np.testing.assert_allclose(y, nets.conv_relu("xla", x, kernel, bias), rtol=1e-5, atol=1e-5)
    assert np.all(y[..., 0] == 0.0)  # ReLU off everywhere
    assert 0.3 < (y[..., 1:] > 0).mean() < 0.7  # ReLU on in part of the map
    want = jax.grad(loss("xla"), argnums=(0, 1))(kernel, bias)
    got = jax.grad(loss("direct"), argnums=(0, 1))(kernel, bias)
    for g, wnt in zip(got, want, strict=True):
        assert g.shape == wnt.shape
        np.testing.assert_allclose(g, wnt, rtol=1e-5, atol=1e-5 * float(jnp.abs(wnt).max()))
    assert np.all(np.asarray(got[0])[..., 0] == 0.0) and np.all(np.asarray(got[1])[:, 0] == 0.0)
    assert float(jnp.abs(got[0][..., 1]).max()) > 0.0


# --- layer initialisers shared with the motives' models --------------------------------------


def test_layer_initialisers():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    lstm = nets.lstm_params(k1, k2, 100, 64)
    assert lstm["input_kernel"].shape == (100, 256) and lstm["recurrent_kernel"].shape == (64, 256)
    # Keras: forget-gate bias 1 (gate order i, f, g, o), else 0; orthogonal recurrent kernel
    np.testing.assert_array_equal(lstm["bias"], np.repeat([0.0, 1.0, 0.0, 0.0], 64))
    w = np.asarray(lstm["recurrent_kernel"])
    np.testing.assert_allclose(w @ w.T, np.eye(64), atol=1e-5)
    assert_glorot_uniform(lstm["input_kernel"], 100, 256)
    mlp = nets.mlp_params([k1, k2], 10, (6, 4), 0.5, prefix="tower")
    assert sorted(mlp) == ["tower_0", "tower_1"]
    assert mlp["tower_1"]["kernel"].shape == (6, 4)
    np.testing.assert_array_equal(mlp["tower_0"]["kernel"], nets.dense_params(k1, 10, 6, 0.5)[
        "kernel"])
    np.testing.assert_allclose(np.linalg.norm(mlp["tower_1"]["kernel"], axis=0), 0.5, rtol=1e-5)
    with pytest.raises(ValueError, match="one key per layer"):
        nets.mlp_params([k3], 10, (6, 4), 0.5)


def test_init_params_builds_its_layers_with_the_shared_initialisers():
    cfg = nets.NetConfig(conv_filters=2, hidden_sizes=(8, 4), lstm_size=8)
    space = Dict({"obs": Box(-1.0, 1.0, (5,), "float32")})
    params = nets.init_params(cfg, jax.random.PRNGKey(1), space, 3)
    # 5 + 2 keys, used in order: (conv, only for images), mlp × 2, lstm × 2, policy, value
    keys = jax.random.split(jax.random.PRNGKey(1), 5 + 2)
    want = {**nets.mlp_params(keys[0:2], 5, (8, 4), cfg.hidden_init_scale),
            "lstm": nets.lstm_params(keys[2], keys[3], 4, 8),
            "policy": nets.glorot_dense(keys[4], 8, 3),
            "value": nets.dense_params(keys[5], 8, 1, cfg.head_init_scale)}
    assert jax.tree.structure(params) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)


def test_conv_kernel_is_glorot_uniform_with_keras_fans():
    cfg = nets.NetConfig()  # 6 filters of 3 × 3 over RGB
    space = Dict({"rgb": Box(0, 255, (15, 15, 3), "uint8")})
    params = nets.init_stacked(cfg, jax.random.PRNGKey(1), space, 9, (64,))
    # Keras: fan_in = 3·3·3 = 27, fan_out = 3·3·6 = 54, bound √(6 / 81) ≈ 0.272 (not the
    # √(6 / 33) of fan_out = 6); 64 agents × 162 = 10 368 entries
    assert params["conv"]["kernel"].shape == (64, 3, 3, 3, 6)
    assert_glorot_uniform(params["conv"]["kernel"], 27, 54)
