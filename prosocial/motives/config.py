"""Choosing a motive from the command line: ``--motive ia --motive.beta 0.05``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prosocial.motives.base import Motive

MOTIVES = ("none", "collective", "ia", "si", "scm", "emurel", "ir", "reciprocity")


@dataclass(frozen=True)
class MotiveConfig:
    """The social motive shaping the agents' learning rewards (specs.md §9)."""

    name: Literal["none", "collective", "ia", "si", "scm", "emurel", "ir",
                  "reciprocity"] = "none"
    """none (extrinsic only), collective (§9.2), ia (inequity aversion, §9.3), si (social
    influence with a model of other agents, §9.4), scm (social curiosity module: SI plus
    a curiosity reward, §9.5), emurel (IA weighted by environmental impact, §9.6: also
    reads the IA and MOA fields), ir (implicit responsibility, Forage Survival only, §5.6
    and §9.8) or reciprocity ([ECCLES]' imitators, §9.7; give it to the imitators'
    populations only, ``--motive-populations imitator``)."""
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
    """SI, SCM: reproduce the reference's never-trained MOA and SCM models (specs B-01)."""
    scm_loss_weight: float = 1.0
    """SCM, EMuReL: weight of the forward and inverse models' loss (SSD scripts)."""
    scm_forward_vs_inverse_loss_weight: float = 0.5
    """SCM, EMuReL: w in w·L_F + (1 − w)·L_I, in [0, 1] (SSD scripts; their file default
    0.2)."""
    curiosity_reward_weight: float = 0.001
    """SCM: weight of the curiosity reward (SSD scripts, no schedule)."""
    curiosity_reward_clip: float = 10.0
    """SCM: the curiosity reward is clipped to [−clip, clip]."""
    scm_hidden_size: int = 32
    """SCM: width of the forward and inverse models' tanh layer."""
    impact_norm: Literal["max", "minmax_others"] = "max"
    """EMuReL: impacts normalised as L / (max L + 1e-8) or min–max over the other agents."""
    ref_impact_nan: bool = False
    """EMuReL: normalise without the 1e-8, NaN where all impacts are 0 (specs B-14)."""
    ref_inverse_relu_logits: bool = False
    """EMuReL: ReLU on the inverse model's logits (specs B-15)."""
    responsibility_punishment: float = 0.9
    """IR: p, subtracted from i's reward for each violated responsibility ([COLLINS] Table 1
    lists −0.9); 0 only records the responsibility diagnostics."""
    psi1: Literal["helpless", "alg1", "eq2_eq3"] = "helpless"
    """IR: ψ1 (j depends on help): j Helpless (D-29), Algorithm 1 line 9 as printed, or
    eqs. 2–3 (0 < h_j < H)."""
    psi2_strict: bool = False
    """IR: ψ2 (a) needs ω_i > E (App. C eq. 13) instead of ω_i ≥ E (eq. 4)."""
    psi2_require_time: bool = True
    """IR: ψ2 (b) also needs h_j > d_ij − D (App. C eq. 16: j lives until i arrives)."""
    penalise_open_responsibility: bool = False
    """IR: also charge p on every step a responsibility is open (Algorithm 1 lines 22–23 read
    literally, D-30); by default only violations are charged."""

    niceness: Literal["metric", "network"] = "metric"
    """Reciprocity: hand-coded niceness (metric matching, §9.7.3) or the learned niceness
    network (§9.7.4)."""
    innovator: int = 0
    """Reciprocity: the agent id of the innovator whose niceness the imitators match."""
    imitation_weight: float = 0.1
    """Reciprocity: c_im, the imitation reward's share of the batch's reward (eq. 2)."""
    imitation_decay: float = 0.95
    """Reciprocity: γ_im, the imitation memory decay of the trajectory niceness (eq. 4)."""
    reciprocity_norm: Literal["batch_abs", "env_relative"] = "batch_abs"
    """Reciprocity: scale r_int by c_im / mean|r_int| (D-19) or by c_im·mean|r_env| /
    mean|r_int| (``env_relative``)."""
    cleanup_niceness: Literal["binary", "cells"] = "binary"
    """Reciprocity, Cleanup metric: 1 per waste-removing action or the cells removed (D-20)."""
    policy_imitation_weight: float = 0.0
    """Reciprocity, network: c_KL of the KL(π_im ‖ π̂) policy-imitation loss (eq. 5)."""
    niceness_lr: float = 0.001
    """Reciprocity, network: learning rate of its RMSProp (decay 0.99, ε 0.01)."""
    niceness_lambda: float = 0.9
    """Reciprocity, network: λ of its TD(λ) targets."""
    niceness_gamma: float = 0.9
    """Reciprocity, network: γ_nn, the discount of the imitator's return it predicts."""
    reciprocity_reduction: Literal["mean", "sum"] = "mean"
    """Reciprocity, network: the KL and niceness-network losses averaged over the valid steps
    (specs §9.7.5) or summed, as an A2C with ``reduction="sum"`` sums its own terms."""

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
        if self.name == "scm":
            from prosocial.motives.curiosity import SocialCuriosity

            return SocialCuriosity(self)
        if self.name == "ir":
            from prosocial.motives.responsibility import ImplicitResponsibility

            return ImplicitResponsibility(self.responsibility_punishment, self.psi1,
                                          self.psi2_strict, self.psi2_require_time,
                                          self.penalise_open_responsibility)
        if self.name == "reciprocity":
            from prosocial.motives.reciprocity import Reciprocity

            return Reciprocity(self)
        if self.name == "emurel":
            from prosocial.motives.emurel import EMuReL

            return EMuReL(self)
        return Motive()
