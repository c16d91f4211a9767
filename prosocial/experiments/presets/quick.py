"""The demonstration run of the README."""

from __future__ import annotations

from prosocial.experiments.config import TrainConfig
from prosocial.learners.ppo_config import PPOConfig
from prosocial.nets import NetConfig


def quick() -> TrainConfig:
    """A short demonstration: Harvest with 5 agents and 100-step episodes; a few minutes on
    a 2-core CPU, long enough for the agents to stop wasting steps on beams and eat."""
    return TrainConfig(
        env="harvest", num_agents=5, max_steps=100, total_steps=200_000, num_seeds=1,
        checkpoint_every=25, gif_steps=100, num_envs=16, num_steps=100,
        net=NetConfig(lstm_size=128),
        ppo=PPOConfig(num_epochs=4, num_minibatches=4, lr=1e-3, ent_coef=0.01,
                      gae_lambda=0.95, max_grad_norm=0.5))


PRESETS = {"quick": quick}
