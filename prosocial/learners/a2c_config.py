"""The synchronous advantage actor-critic's configuration (specs.md §8.2, §8.4, D-08).

The learning rate follows the same piecewise-linear knots as PPO's: ``ppo_config.learning_rate``
reads only ``lr`` and ``lr_schedule`` and so serves this config unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import optax

from prosocial.schedules import knots


@dataclass(frozen=True)
class A2CConfig:
    """Hyperparameters of the A2C update (defaults: the reference A3C of specs.md §8.4 with the
    SSD settings of §8.2)."""

    gamma: float = 0.99
    """Discount factor γ."""
    lr: float = 1e-4
    """Learning rate when ``lr_schedule`` is empty (specs §8.2)."""
    lr_schedule: tuple[tuple[float, float], ...] = ()
    """Piecewise-linear learning rate as (env steps, lr) knots, the first knot's value before
    it and the last one's after it (EMUREL A3C Cleanup: ((0, 0.00126), (2e7, 0.000012)))."""
    optimizer: Literal["rmsprop", "adam"] = "adam"
    """Adam by default: specs §8.2 gives Adam (TF defaults) as the optimiser of every SSD
    method, the reference A3C included (RLlib's TF policies optimise with Adam unless told
    otherwise). ``"rmsprop"`` is the A3C paper's choice (Mnih et al. 2016: decay 0.99, ε 0.1)."""
    rmsprop_decay: float = 0.99
    """RMSProp decay of the squared-gradient average (``optimizer="rmsprop"``)."""
    rmsprop_eps: float = 0.1
    """RMSProp ε, added to the squared-gradient average inside the square root, as TF does."""
    adam_eps: float = 1e-8
    """Adam ε (TF default 1e-8)."""
    vf_coef: float = 0.1
    """Value loss coefficient (reference A3C: 0.1, specs §8.4)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient (the SSD scripts set it per game, specs §8.5)."""
    max_grad_norm: float = 40.0
    """Global-norm gradient clip, per parameter set (specs §8.2)."""
    reduction: Literal["sum", "mean"] = "sum"
    """How the policy, value and entropy terms reduce over each parameter set's valid steps:
    ``"sum"`` as the reference A3C (specs §8.4), ``"mean"`` to make the scale independent of
    the batch size."""
    ref_horizon_is_terminal: bool = False
    """Treat time-limit ends as terminal (no bootstrap), as RLlib did (specs B-20)."""
    clip_rho: float = 1.0
    """V-trace ρ̄: clip of the importance ratio π/μ in the value targets (1 on-policy)."""
    clip_pg_rho: float = 1.0
    """V-trace clip of the importance ratio weighting the policy-gradient advantage."""

    def __post_init__(self):
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"a2c.gamma must be in [0, 1], got {self.gamma!r}")
        for name in ("lr", "rmsprop_eps", "adam_eps", "max_grad_norm", "clip_rho",
                     "clip_pg_rho"):
            if not getattr(self, name) > 0:
                raise ValueError(f"a2c.{name} must be positive, got {getattr(self, name)!r}")
        if not 0.0 <= self.rmsprop_decay < 1.0:
            raise ValueError(f"a2c.rmsprop_decay must be in [0, 1), got {self.rmsprop_decay!r}")
        for name in ("vf_coef", "ent_coef"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"a2c.{name} must be a finite number ≥ 0, got {value!r}")
        if self.optimizer not in ("rmsprop", "adam"):
            raise ValueError(f"a2c.optimizer must be rmsprop or adam, got {self.optimizer!r}")
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"a2c.reduction must be sum or mean, got {self.reduction!r}")
        object.__setattr__(self, "lr_schedule",
                           knots("a2c.lr_schedule", self.lr_schedule, positive=True))

    def optimizer_transform(self) -> optax.GradientTransformation:
        """The gradient transformation of one parameter set, without the learning rate: the
        global-norm clip, then Adam's or RMSProp's scaling. The caller applies the learning
        rate per parameter set as ``p − lr·u`` (vmapped over P, as the PPO learner does)."""
        if self.optimizer == "adam":
            scale = optax.scale_by_adam(eps=self.adam_eps)
        else:
            scale = optax.scale_by_rms(decay=self.rmsprop_decay, eps=self.rmsprop_eps,
                                       eps_in_sqrt=True)
        return optax.chain(optax.clip_by_global_norm(self.max_grad_norm), scale)
