"""A tiny ERMAS run on the constrained bimatrix game, shared by the loop and the
trust-region tests so that both files use the same compiled programs (the compilation
cache serves the second)."""

from prosocial.ermas.loop import ErmasConfig, ErmasRunConfig
from prosocial.learners.ppo_config import PPOConfig

PPO_TINY = PPOConfig(num_epochs=1, num_minibatches=2, seq_len=10, clip_eps=0.3, gamma=0.8,
                     gae_lambda=0.9, lr=3e-3)
CFG = ErmasRunConfig(env="bimatrix-constrained", env_options={"max_steps": 20}, num_seeds=2,
                     num_envs=4, num_steps=10, agent_ppo=PPO_TINY, planner_ppo=PPO_TINY,
                     outer_iterations=3, checkpoint_every=1,
                     ermas=ErmasConfig(epsilon=0.5, alpha_lr=0.5, eval_episodes=3,
                                       inner_me_iterations=2, inner_main_iterations=1))
