"""The forward-model loss of SCM and EMuReL with a hand-written gradient.

Both motives' forward models end in a Dense layer with a ReLU whose output is as wide as
the encoder's code (Cleanup: q = 13·13·6 = 1014), and their loss compares that output with
the next observation's code (specs.md §9.5, §9.6 eq. 8):

    L(m) = ½ · mean_d (φ_{m,d} − relu(h_m W + b)_d)²

On a training minibatch these q-wide arrays are the largest the loss touches, and on a CPU
each pass over them costs about as much as a matmul. Autodiff of the expression above makes
several such passes (the ReLU's mask, the error, their product, the product's transpose for
∂W); :func:`relu_dense_surprise` gives the same gradients from two q-wide arrays saved by the
forward pass, with

    s_m = ḡ_m / q (ḡ the cotangent of L),   e = φ − relu(hW + b),   u = −e·1[hW + b > 0]
    ∂φ = s·e,   ∂h = s·(u Wᵀ),   [∂W; ∂b] = [s·h, s]ᵀ u

(the bias's gradient rides along as one more row of the weights' matmul).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _parts(hidden, kernel, bias, target):
    pre = jnp.einsum("pmk,pkd->pmd", hidden, kernel) + bias[:, None, :]
    err = target - jax.nn.relu(pre)
    return 0.5 * jnp.mean(jnp.square(err), axis=-1), err, jnp.where(pre > 0, -err, 0.0)


@jax.custom_vjp
def _surprise(hidden, kernel, bias, target):
    return _parts(hidden, kernel, bias, target)[0]


def _surprise_fwd(hidden, kernel, bias, target):
    loss, err, masked = _parts(hidden, kernel, bias, target)
    return loss, (hidden, kernel, err, masked)


def _surprise_bwd(res, g):
    hidden, kernel, err, masked = res
    s = (g / err.shape[-1])[..., None]  # [P, M, 1]
    d_hidden = s * jnp.einsum("pmd,pkd->pmk", masked, kernel)
    # ∂[W; b] as [D, K + 1] and then swapped: XLA:CPU then reads u in its own layout instead
    # of transposing it first.
    scaled = jnp.concatenate([hidden * s, s], axis=-1)  # [P, M, K + 1]
    d_wb = jnp.swapaxes(jnp.einsum("pmd,pmk->pdk", masked, scaled), 1, 2)
    return d_hidden, d_wb[:, :-1], d_wb[:, -1], s * err


_surprise.defvjp(_surprise_fwd, _surprise_bwd)


def relu_dense_surprise(hidden: jax.Array, layer: dict, target: jax.Array) -> jax.Array:
    """L = ½ · mean_d (target_d − relu(hidden W + b)_d)² per row (module docstring).

    Args:
      hidden: ``[P, ..., K]``, the forward model's last hidden layer.
      layer: ``{"kernel": [P, K, D], "bias": [P, D]}``, its output layer.
      target: ``[P, ..., D]``, the codes it predicts.
    Returns: ``[P, ...]``. Differentiable in all four arrays.
    """
    lead = target.shape[:-1]
    p = lead[0]
    loss = _surprise(hidden.reshape(p, -1, hidden.shape[-1]), layer["kernel"], layer["bias"],
                     target.reshape(p, -1, target.shape[-1]))
    return loss.reshape(lead)


__all__ = ["relu_dense_surprise"]
