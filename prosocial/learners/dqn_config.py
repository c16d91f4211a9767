"""Independent DQN's configuration (specs.md §9.8, [COLLINS] Table 2; decisions D-31–D-33).

The defaults are the Forage Survival run of [COLLINS]: Table 2's values, with the gaps filled
from the PyTorch DQN tutorial the table follows (the ``TUT`` source of specs §9.8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from prosocial.schedules import knots, piecewise_linear


@dataclass(frozen=True)
class DQNConfig:
    """Hyperparameters of independent DQN (one Q-network, replay buffer, target network and
    optimiser per parameter set; defaults: specs.md §9.8)."""

    gamma: float = 0.999
    """Discount factor γ (Table 2)."""
    lr: float = 1e-3
    """Learning rate when ``lr_schedule`` is empty (Table 2)."""
    lr_schedule: tuple[tuple[float, float], ...] = ()
    """Piecewise-linear learning rate as (env steps, lr) knots (as PPO's)."""
    batch_size: int = 128
    """Transitions sampled from the agent's buffer for each gradient step (Table 2)."""
    buffer_size: int = 10_000
    """Transitions each parameter set's replay buffer holds, oldest replaced first (D-31)."""
    epsilon_start: float = 0.9
    """ε at n = 0 (Table 2)."""
    epsilon_end: float = 0.05
    """ε as n → ∞ (Table 2)."""
    epsilon_decay: float = 1000.0
    """Decay constant of ε(n) = end + (start − end)·exp(−n / decay) (Table 2, TUT)."""
    epsilon_decay_unit: Literal["action", "episode"] = "action"
    """What n counts (D-32): the parameter set's action selections so far (an agent selects
    one action per environment per step while it is alive), or its finished episodes."""
    tau: float = 0.005
    """Target update θ⁻ ← τ·θ + (1 − τ)·θ⁻ (Table 2: soft, 0.005); 1 is a hard copy."""
    target_update_every: int = 1
    """Gradient steps between target updates: 1 with τ < 1 is the soft update after every
    step (specs §9.8); K with τ = 1 is the periodic copy of the DQN paper."""
    steps_before_learn: int = 10_000
    """Environment steps per seed before the first gradient step (Table 1
    ``steps_before_learn``)."""
    learn_every: int = 1
    """Vector steps (one step of every environment) between gradient steps (D-33's
    alternative flag; 1: one gradient step per step, specs §9.8)."""
    loss: Literal["mse", "huber"] = "mse"
    """Mean squared TD error (Table 2) or the Huber loss with δ = 1 (TUT)."""
    double: bool = False
    """Double DQN: the online network picks the next action, the target network values it
    (off by default: specs §9.8 gives the standard DQN target)."""
    clip_value: float = 100.0
    """Every gradient component is clipped to [−clip_value, clip_value] (TUT; ``inf``: no
    clip)."""
    weight_decay: float = 0.01
    """AdamW's decoupled weight decay (PyTorch's AdamW default, as TUT uses it)."""
    adam_eps: float = 1e-8
    """Adam ε."""
    amsgrad: bool = True
    """AMSGrad's running maximum of the second moment (TUT)."""
    hidden_sizes: tuple[int, ...] = (128, 128)
    """Widths of the Q-network's ReLU layers (D-31)."""
    ref_horizon_is_terminal: bool = False
    """Treat time-limit ends as terminal (no bootstrap) instead of the specs' truncation."""

    def __post_init__(self):
        def positive_int(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"dqn.{name} must be a positive integer, got {v!r}")

        for name in ("batch_size", "buffer_size", "target_update_every", "learn_every"):
            positive_int(name)
        if isinstance(self.steps_before_learn, bool) or not isinstance(
                self.steps_before_learn, int | np.integer) or self.steps_before_learn < 0:
            raise ValueError(f"dqn.steps_before_learn must be an integer ≥ 0, got "
                             f"{self.steps_before_learn!r}")
        if self.batch_size > self.buffer_size:
            raise ValueError(f"dqn.batch_size ({self.batch_size}) must not exceed "
                             f"dqn.buffer_size ({self.buffer_size})")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"dqn.gamma must be in [0, 1], got {self.gamma!r}")
        for name in ("epsilon_start", "epsilon_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"dqn.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"dqn.tau must be in (0, 1], got {self.tau!r}")
        for name in ("lr", "epsilon_decay", "clip_value", "adam_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"dqn.{name} must be positive, got {getattr(self, name)!r}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"dqn.weight_decay must be a finite number ≥ 0, got "
                             f"{self.weight_decay!r}")
        if self.epsilon_decay_unit not in ("action", "episode"):
            raise ValueError(f"dqn.epsilon_decay_unit must be action or episode, got "
                             f"{self.epsilon_decay_unit!r}")
        if self.loss not in ("mse", "huber"):
            raise ValueError(f"dqn.loss must be mse or huber, got {self.loss!r}")
        sizes = tuple(self.hidden_sizes)
        if any(isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1
               for s in sizes):
            raise ValueError(f"dqn.hidden_sizes must be positive integers, got {sizes!r}")
        object.__setattr__(self, "hidden_sizes", sizes)
        object.__setattr__(self, "lr_schedule",
                           knots("dqn.lr_schedule", self.lr_schedule, positive=True))

    def optimizer_transform(self) -> optax.GradientTransformation:
        """The gradient transformation of one parameter set without the learning rate: clip
        each component to ±``clip_value``, then AdamW's scaling (AMSGrad by default) and
        decoupled weight decay. The caller applies ``p − lr·u`` per parameter set, which is
        PyTorch's AdamW step ``p ← p − lr·(m̂/(√v̂ + ε) + λ·p)``."""
        scale = (optax.scale_by_amsgrad(eps=self.adam_eps) if self.amsgrad
                 else optax.scale_by_adam(eps=self.adam_eps))
        parts = [] if math.isinf(self.clip_value) else [optax.clip(self.clip_value)]
        parts += [scale, optax.add_decayed_weights(self.weight_decay)]
        return optax.chain(*parts)

    def learning_rate(self, env_steps) -> jax.Array:
        if not self.lr_schedule:
            return jnp.full(jnp.shape(env_steps), self.lr, jnp.float32)
        return piecewise_linear(self.lr_schedule, env_steps)


def epsilon(cfg: DQNConfig, n) -> jax.Array:
    """ε(n) = ε_end + (ε_start − ε_end)·exp(−n / decay) (specs §9.8; n counts action
    selections or finished episodes, ``cfg.epsilon_decay_unit``)."""
    n = jnp.asarray(n, jnp.float32)
    return cfg.epsilon_end + (cfg.epsilon_start - cfg.epsilon_end) * jnp.exp(
        -n / cfg.epsilon_decay)
