"""SRAI's small feed-forward policies (specs §9.9.6), with the policy interface of
``prosocial.learners.population`` (``init``, ``initial_carry``, ``step``, ``unroll``).

- linear (``KerasLinear``, the bimatrix runs): logits and value each one Dense layer on the
  flattened observation — ``prosocial.nets`` with ``NetConfig(hidden_sizes=(),
  lstm_size=None)`` (``prosocial.ermas.loop.LINEAR``);
- :class:`SeparateMLP` (the N-matrix runs): separate policy and value MLPs, each with one
  hidden layer of ``hidden`` ReLU units (32) on the flattened observation ``"obs"``.
  Kernels Glorot-uniform (Keras's default Dense init), biases zero.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prosocial.nets import dense, glorot_dense


class SeparateMLP:
    """Policy and value towers ``obs → ReLU(hidden) → out``, not sharing parameters."""

    def __init__(self, obs_space, num_actions: int, hidden: int = 32):
        spaces = obs_space.spaces
        if "obs" not in spaces:
            raise ValueError(f"SeparateMLP reads the vector observation 'obs'; got keys "
                             f"{sorted(spaces)}")
        if isinstance(hidden, bool) or int(hidden) != hidden or hidden < 1:
            raise ValueError(f"SeparateMLP: hidden must be a positive integer, got {hidden!r}")
        self.obs_size = int(np.prod(spaces["obs"].shape))
        self.num_actions, self.hidden = int(num_actions), int(hidden)

    def _init_one(self, key):
        k = jax.random.split(key, 4)
        d, h = self.obs_size, self.hidden
        return {"pi_hidden": glorot_dense(k[0], d, h),
                "pi_out": glorot_dense(k[1], h, self.num_actions),
                "vf_hidden": glorot_dense(k[2], d, h), "vf_out": glorot_dense(k[3], h, 1)}

    def init(self, keys):
        return jax.vmap(self._init_one)(keys)

    def initial_carry(self, batch_shape):
        return ()

    def apply(self, params, x):
        """x ``[P, ..., D]`` → logits ``[P, ..., A]``, value ``[P, ...]``."""
        logits = dense(params["pi_out"], jax.nn.relu(dense(params["pi_hidden"], x)))
        value = dense(params["vf_out"], jax.nn.relu(dense(params["vf_hidden"], x)))[..., 0]
        return logits, value

    def step(self, params, obs, carry, start):
        x = obs["obs"].reshape(obs["obs"].shape[:2] + (-1,)).astype(jnp.float32)
        logits, value = self.apply(params, x)
        return {"logits": logits, "value": value}, carry

    def unroll(self, params, obs, carry, starts, return_features: bool = False):
        x = obs["obs"].reshape(obs["obs"].shape[:3] + (-1,)).astype(jnp.float32)
        logits, value = self.apply(params, x)
        return (logits, value, x.reshape(x.shape[0], -1, x.shape[-1])) if return_features \
            else (logits, value)


__all__ = ["SeparateMLP"]
