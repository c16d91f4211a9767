"""Choosing a motive from the command line: ``--motive ia --motive.beta 0.05``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prosocial.motives.base import Motive

MOTIVES = ("none", "collective", "ia", "si", "emurel")


@dataclass(frozen=True)
class MotiveConfig:
    """The social motive shaping the agents' learning rewards (specs.md §9)."""

    name: Literal["none", "collective", "ia", "si", "emurel"] = "none"
    """none (extrinsic only), collective (§9.2), ia (inequity aversion, §9.3), si (social
    influence with a model of other agents, §9.4) or emurel (IA weighted by environmental
    impact, §9.6: also reads the IA and MOA fields)."""
    alpha: float = 0.0
    """IA: weight α of disadvantageous inequity (envy)."""
    beta: float = 0.05
    """IA: weight β of advantageous inequity (guilt)."""
    ia_gamma: float = 0.9
    """IA: γ of the smoothed-reward trace (decay γ·λ)."""
    ia_lambda: float = 0.9
    """IA: λ of the smoothed-reward trace."""
    ia_smoothed: bool = True
    """IA: compare smoothed rewards (the papers) rather than each step's rewards."""
    moa_loss_weight: float = 0.06663557
    """SI: weight of the MOA's cross-entropy loss (SSD Cleanup; Harvest 0.091650628)."""
    influence_reward_weight: float = 1.0
    """SI: weight of the influence reward (SSD Cleanup; Harvest 2.521)."""
    influence_schedule: tuple[tuple[float, float], ...] = (
        (0.0, 0.0), (1e7, 0.0), (1e8, 1.0), (3e8, 0.5))
    """SI: (env steps, multiplier of the weight) knots, piecewise linear, held after."""
    influence_reward_clip: float = 10.0
    """SI: the influence reward is clipped to [−clip, clip]."""
    influence_divergence: Literal["kl", "js"] = "kl"
    """SI: KL(p ‖ m) (the papers) or Jensen–Shannon divergence."""
    influence_only_when_visible: bool = True
    """SI: count influence only on agents that were visible."""
    train_moa_only_when_visible: bool = True
    """SI: train the MOA only on visible agents' actions."""
    moa_lstm_size: int = 128
    """SI: units of the MOA's LSTM."""
    moa_hidden_sizes: tuple[int, ...] = (32, 32)
    """SI: widths of the MOA tower on the shared convolution."""
    ref_aux_losses_detached: bool = False
    """SI: reproduce the reference's never-trained MOA (specs B-01)."""
    scm_loss_weight: float = 1.0
    """EMuReL: weight of the extended ICM's forward and inverse losses."""
    scm_forward_vs_inverse_loss_weight: float = 0.5
    """EMuReL: share w of the forward loss in w·L_F + (1 − w)·L_I (the scripts' 0.5)."""
    impact_norm: Literal["max", "minmax_others"] = "max"
    """EMuReL: impacts normalised as L / (max L + 1e-8) or min–max over the other agents."""
    ref_impact_nan: bool = False
    """EMuReL: normalise without the 1e-8, NaN where all impacts are 0 (specs B-14)."""
    ref_inverse_relu_logits: bool = False
    """EMuReL: ReLU on the inverse model's logits (specs B-15)."""

    def __post_init__(self):
        if self.name not in MOTIVES:
            raise ValueError(f"unknown motive {self.name!r}; motives: {', '.join(MOTIVES)}")
        object.__setattr__(self, "influence_schedule",
                           tuple((float(a), float(b)) for a, b in self.influence_schedule))
        object.__setattr__(self, "moa_hidden_sizes", tuple(self.moa_hidden_sizes))

    def build(self) -> Motive:
        if self.name == "collective":
            from prosocial.motives.collective import CollectiveReward

            return CollectiveReward()
        if self.name == "ia":
            from prosocial.motives.inequity import InequityAversion

            return InequityAversion(self.alpha, self.beta, self.ia_gamma, self.ia_lambda,
                                    self.ia_smoothed)
        if self.name == "si":
            from prosocial.motives.influence import SocialInfluence

            return SocialInfluence(self)
        if self.name == "emurel":
            from prosocial.motives.emurel import EMuReL

            return EMuReL(self)
        return Motive()
