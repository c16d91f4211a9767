"""[EMUREL]'s experiments (specs.md §8.6 ``emurel/*``).

- ``emurel/cleanup/{baseline,ia,si,emurel}``: Cleanup, 5 agents, PPO as SSD's with a
  96 000-step batch and 24 000-step minibatches for every method (D-06), entropy 0.00176,
  lr 0.00126 → 0.000012 over 2×10⁷ steps, 5×10⁸ steps, 15 seeds; IA and EMuReL
  advantageous (α = 0, β = 0.05); SI with the Cleanup extras (§8.5); EMuReL with the
  Cleanup ``moa_loss_weight`` and the SCM loss weights 1.0 and 0.5 (§9.6).
- ``emurel/harvest-ppo/{baseline,ia,si,emurel}``: Harvest, 5 agents, the same PPO with
  entropy 0.000687, lr 0.00136 → 0.000028, 10⁸ steps, 5 seeds; Harvest MOA extras.
- ``emurel/harvest-a3c/{baseline,ia-adv,ia-dis,si,emurel-adv,emurel-dis}``: Harvest,
  4 agents, synchronous A2C (§8.4, D-08: one step per 16 envs × 1000 steps), entropy 0.00223,
  lr 0.0012 → 0.000044 over 2×10⁷ (D-07), 3×10⁷ steps, 5 seeds; IA and EMuReL advantageous
  (α = 0, β = 0.05) or disadvantageous (α = 5, β = 0).
- ``emurel/cleanup-a3c/baseline``: EMUREL-CODE's A3C Cleanup baseline (§8.5): 5 agents,
  16 envs × 1000 steps per step, entropy 0.00176, lr 0.00126 → 0.000012, 5×10⁸, 5 seeds.
- ``<any of the above>-reference-code``: the same with the reference code's model defects,
  ``ref_aux_losses_detached`` (B-01: MOA, φ, f, g never train) and
  ``ref_inverse_relu_logits`` (B-15). The NaN of B-14 (``ref_impact_nan``) is left off: a
  run that meets it stops at the NaN guard, which reproduces nothing useful.

Every preset switches on the reference flags of the game (``reference=True``) and
``ref_beam_order_by_id``, and treats the horizon as terminal (B-20).
"""

from __future__ import annotations

import dataclasses

from prosocial.experiments.config import TrainConfig
from prosocial.experiments.presets.ssd import MOA_WEIGHTS, ppo, si_motive
from prosocial.learners.a2c_config import A2CConfig
from prosocial.motives.config import MotiveConfig
from prosocial.nets import NetConfig

BEAM_ORDER = ("ref_beam_order_by_id=true",)
IA_ADV = MotiveConfig(name="ia", alpha=0.0, beta=0.05)
IA_DIS = MotiveConfig(name="ia", alpha=5.0, beta=0.0)
ADVANTAGEOUS, DISADVANTAGEOUS = (0.0, 0.05), (5.0, 0.0)  # (α, β), [EMUREL] §5.1


def emurel_motive(env: str, alpha: float, beta: float) -> MotiveConfig:
    """EMuReL (specs.md §9.6) with the game's ``moa_loss_weight`` (§8.5), the SCM loss
    weights 1.0 and 0.5, γλ = 0.81, impacts normalised by their maximum."""
    return MotiveConfig(name="emurel", alpha=alpha, beta=beta,
                        moa_loss_weight=MOA_WEIGHTS[env][0], scm_loss_weight=1.0,
                        scm_forward_vs_inverse_loss_weight=0.5)


def reference_code(build):
    """The preset ``build`` with the reference code's model defects (B-01, B-15)."""

    def variant() -> TrainConfig:
        cfg = build()
        return dataclasses.replace(cfg, motive=dataclasses.replace(
            cfg.motive, ref_aux_losses_detached=True, ref_inverse_relu_logits=True))

    return variant


def cleanup(motive: MotiveConfig | None = None) -> TrainConfig:
    return ppo("cleanup", 0.00176, 0.00126, 0.000012, num_seeds=15, env_options=BEAM_ORDER,
               motive=motive or MotiveConfig())


def harvest_ppo(motive: MotiveConfig | None = None) -> TrainConfig:
    return ppo("harvest", 0.000687, 0.00136, 0.000028, num_seeds=5, total_steps=100_000_000,
               env_options=BEAM_ORDER, motive=motive or MotiveConfig())


def a2c(env: str, num_agents: int, entropy: float, lr_start: float, lr_end: float,
        total_steps: int, motive: MotiveConfig | None = None) -> TrainConfig:
    """The synchronous A2C harness (specs.md §8.4): 16 envs × 1000 steps per step, value
    coefficient 0.1, summed losses, Adam, grad clip 40."""
    return TrainConfig(
        env=env, num_agents=num_agents, max_steps=1000, reference=True,
        env_options=BEAM_ORDER, total_steps=total_steps, num_seeds=5, checkpoint_every=20,
        gif_steps=1000, num_envs=16, num_steps=1000, learner="a2c",
        net=NetConfig(lstm_size=128),
        a2c=A2CConfig(gamma=0.99, ent_coef=entropy, lr=lr_start,
                      lr_schedule=((0, lr_start), (2e7, lr_end)), vf_coef=0.1,
                      max_grad_norm=40.0, reduction="sum", ref_horizon_is_terminal=True),
        motive=motive or MotiveConfig())


def harvest_a3c(motive: MotiveConfig | None = None) -> TrainConfig:
    return a2c("harvest", 4, 0.00223, 0.0012, 0.000044, 30_000_000, motive)


PRESETS = {
    "emurel/cleanup/baseline": cleanup,
    "emurel/cleanup/ia": lambda: cleanup(IA_ADV),
    "emurel/cleanup/si": lambda: cleanup(si_motive("cleanup")),
    "emurel/cleanup/emurel": lambda: cleanup(emurel_motive("cleanup", *ADVANTAGEOUS)),
    "emurel/harvest-ppo/baseline": harvest_ppo,
    "emurel/harvest-ppo/ia": lambda: harvest_ppo(IA_ADV),
    "emurel/harvest-ppo/si": lambda: harvest_ppo(si_motive("harvest")),
    "emurel/harvest-ppo/emurel": lambda: harvest_ppo(emurel_motive("harvest", *ADVANTAGEOUS)),
    "emurel/harvest-a3c/baseline": harvest_a3c,
    "emurel/harvest-a3c/ia-adv": lambda: harvest_a3c(IA_ADV),
    "emurel/harvest-a3c/ia-dis": lambda: harvest_a3c(IA_DIS),
    "emurel/harvest-a3c/si": lambda: harvest_a3c(si_motive("harvest")),
    "emurel/harvest-a3c/emurel-adv": lambda: harvest_a3c(
        emurel_motive("harvest", *ADVANTAGEOUS)),
    "emurel/harvest-a3c/emurel-dis": lambda: harvest_a3c(
        emurel_motive("harvest", *DISADVANTAGEOUS)),
    "emurel/cleanup-a3c/baseline": lambda: a2c("cleanup", 5, 0.00176, 0.00126, 0.000012,
                                               500_000_000),
}
PRESETS.update({f"{name}-reference-code": reference_code(build)
                for name, build in list(PRESETS.items())})
