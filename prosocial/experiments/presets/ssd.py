"""The SSD run scripts (specs.md §8.5; presets ``ssd/{cleanup,harvest}/{baseline,moa,scm}``).

PPO as RLlib 0.8.5 ran it for SSD (§8.2, §8.3): 6 workers × 16 envs × 1000-step fragments
= 96 000-step batches (32 envs per worker, 192 000, for the MOA and SCM scripts), minibatch a
quarter of the batch, 10 epochs, clip 0.3, value clip 10, adaptive KL from 0.2 to target 0.01,
value coefficient 1e-4, GAE λ = 1, grad clip 40, the game's entropy and learning-rate schedule,
5×10⁸ steps; the reference environment flags of the game except ``ref_beam_order_by_id``,
and the horizon as a terminal state (B-20).
"""

from __future__ import annotations

import dataclasses

from prosocial.experiments.config import TrainConfig
from prosocial.learners.ppo_config import PPOConfig
from prosocial.motives.config import MotiveConfig
from prosocial.nets import NetConfig

# (entropy, lr at 0, lr at 2e7) per game and script (specs.md §8.5)
BASELINE = {"cleanup": (0.00176, 0.00126, 0.000012), "harvest": (0.000687, 0.00136, 0.000028)}
MOA = {"cleanup": (0.00176, 0.00126, 0.000012), "harvest": (0.00223, 0.0012, 0.000044)}
# (moa_loss_weight, influence_reward_weight) per game (specs.md §8.5)
MOA_WEIGHTS = {"cleanup": (0.06663557, 1.0), "harvest": (0.091650628, 2.521)}


def ppo(env: str, entropy: float, lr_start: float, lr_end: float, num_envs: int = 96,
        **changes) -> TrainConfig:
    """The SSD PPO harness for ``env`` with 5 agents (module docstring)."""
    cfg = TrainConfig(
        env=env, num_agents=5, max_steps=1000, reference=True, total_steps=500_000_000,
        num_seeds=5, checkpoint_every=20, gif_steps=1000, num_envs=num_envs, num_steps=1000,
        net=NetConfig(lstm_size=128),
        ppo=PPOConfig(num_epochs=10, num_minibatches=4, seq_len=20, gamma=0.99,
                      gae_lambda=1.0, clip_eps=0.3, vf_coef=1e-4, vf_clip=10.0,
                      ent_coef=entropy, kl_coef=0.2, kl_target=0.01, max_grad_norm=40.0,
                      lr_schedule=((0, lr_start), (2e7, lr_end)),
                      ref_horizon_is_terminal=True))
    return dataclasses.replace(cfg, **changes)


def si_motive(env: str) -> MotiveConfig:
    """Social influence with the game's MOA loss and influence weights, the schedule
    0 → 0, 1e7 → 0, 1e8 → 1, 3e8 → 0.5, clip 10, KL, visibility on (specs.md §8.5)."""
    loss_weight, reward_weight = MOA_WEIGHTS[env]
    return MotiveConfig(name="si", moa_loss_weight=loss_weight,
                        influence_reward_weight=reward_weight)


def scm_motive(env: str) -> MotiveConfig:
    """The social curiosity module: SI as :func:`si_motive` plus ``scm_loss_weight`` 1,
    forward-vs-inverse weight 0.5, curiosity reward weight 0.001 (no schedule), clip 10
    (specs.md §8.5, both games)."""
    return dataclasses.replace(si_motive(env), name="scm", scm_loss_weight=1.0,
                               scm_forward_vs_inverse_loss_weight=0.5,
                               curiosity_reward_weight=0.001, curiosity_reward_clip=10.0)


def baseline(env: str) -> TrainConfig:
    return ppo(env, *BASELINE[env])


def moa(env: str) -> TrainConfig:
    """SSD's MOA scripts: 32 envs per worker (batch 192 000, minibatch 48 000), 4 seeds."""
    return ppo(env, *MOA[env], num_envs=192, num_seeds=4, motive=si_motive(env))


def scm(env: str) -> TrainConfig:
    """SSD's SCM scripts: the MOA scripts' PPO (batch 192 000, minibatch 48 000, 4 seeds)."""
    return ppo(env, *MOA[env], num_envs=192, num_seeds=4, motive=scm_motive(env))


PRESETS = {f"ssd/{env}/{name}": (lambda env=env, build=build: build(env))
           for env in ("cleanup", "harvest") for name, build in (("baseline", baseline),
                                                                   ("moa", moa), ("scm", scm))}
