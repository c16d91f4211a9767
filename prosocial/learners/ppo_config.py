"""PPO's configuration and learning-rate schedule (specs.md §8.2–8.3)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from prosocial.schedules import knots, piecewise_linear


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters of recurrent PPO (defaults: a general-purpose setting; the SSD
    presets set specs.md §8.3's values)."""

    gamma: float = 0.99
    """Discount factor γ."""
    gae_lambda: float = 0.95
    """GAE λ (RLlib and SSD: 1.0)."""
    lr: float = 3e-4
    """Adam learning rate when ``lr_schedule`` is empty."""
    lr_schedule: tuple[tuple[float, float], ...] = ()
    """Piecewise-linear learning rate as (env steps, lr) knots, held after the last knot
    (SSD: ((0, 0.00126), (2e7, 0.000012)))."""
    num_epochs: int = 4
    """Passes over each train batch."""
    num_minibatches: int = 4
    """Minibatches per epoch; the batch's sequences are split evenly into them."""
    seq_len: int = 20
    """Length of the stored-state sequences the LSTM is replayed on (RLlib max_seq_len)."""
    clip_eps: float = 0.2
    """Clip ε of the probability ratio (RLlib: 0.3)."""
    vf_coef: float = 0.5
    """Value loss coefficient c_v (SSD: 1e-4)."""
    vf_clip: float = 10.0
    """Clip of V − V_old in the value loss (RLlib: 10); ``inf`` disables it."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient c_H."""
    kl_coef: float = 0.0
    """Initial KL penalty coefficient β_KL (RLlib: 0.2); 0 disables the penalty."""
    kl_target: float = 0.01
    """Target KL(π_old ‖ π) of the adaptive KL coefficient."""
    max_grad_norm: float = 0.5
    """Global-norm gradient clip, per agent (SSD: 40)."""
    adam_eps: float = 1e-8
    """Adam ε (TF default 1e-8)."""
    normalize_advantages: bool = True
    """Standardise advantages over each agent's whole train batch."""
    ref_horizon_is_terminal: bool = False
    """Treat time-limit ends as terminal (no bootstrap), as RLlib did (specs B-20)."""
    loop: Literal["auto", "python", "scan"] = "auto"
    """Minibatch loop: compiled with lax.scan (auto: fastest measured) or driven from Python."""

    def __post_init__(self):
        def positive_int(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"ppo.{name} must be a positive integer, got {v!r}")

        for name in ("num_epochs", "num_minibatches", "seq_len"):
            positive_int(name)
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ppo.{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("lr", "clip_eps", "vf_clip", "max_grad_norm", "adam_eps", "kl_target"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ppo.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("vf_coef", "ent_coef", "kl_coef"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"ppo.{name} must be a finite number ≥ 0, got {value!r}")
        object.__setattr__(self, "lr_schedule",
                           knots("ppo.lr_schedule", self.lr_schedule, positive=True))
        if self.loop not in ("auto", "python", "scan"):
            raise ValueError(f"ppo.loop must be auto, python or scan, got {self.loop!r}")

    def check_batch(self, num_rows: int, num_steps: int) -> None:
        """Raise if a rollout of ``num_rows`` batch rows (environments, or environments ×
        agents with shared parameters) × ``num_steps`` steps does not split into
        ``num_minibatches`` minibatches of whole sequences."""
        chunks = -(-num_steps // self.seq_len)
        if (num_rows * chunks) % self.num_minibatches:
            raise ValueError(
                f"the train batch does not split into minibatches: num_envs × "
                f"ceil(num_steps / seq_len) = {num_rows} × {chunks} = "
                f"{num_rows * chunks} sequences is not divisible by num_minibatches = "
                f"{self.num_minibatches}")

    def resolved_loop(self) -> str:
        if self.loop != "auto":
            return self.loop
        return "scan"  # measured fastest on CPU and the natural choice on GPUs


def learning_rate(cfg: PPOConfig, env_steps) -> jax.Array:
    """The learning rate after ``env_steps`` steps: piecewise linear between the schedule's
    knots, the first knot's value before it and the last one's after it."""
    if not cfg.lr_schedule:
        return jnp.full(jnp.shape(env_steps), cfg.lr, jnp.float32)
    return piecewise_linear(cfg.lr_schedule, env_steps)
