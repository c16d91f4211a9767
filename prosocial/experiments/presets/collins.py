"""[COLLINS]' experiment (specs.md §8.6 ``collins/forage/*``, §5, §9.8).

- ``collins/forage/baseline``: Forage Survival with the Table 1 defaults (4×4, 2 agents,
  E = H = 8, D = 2, r_b = 0.1, 10 000-step episodes); independent DQN as §9.8 (Table 2 and
  the tutorial-lineage fills: batch 128, γ 0.999, ε 0.9 → 0.05 over 1000 actions, soft
  target τ 0.005, lr 0.001, MSE, value clip 100, AdamW with amsgrad, 2 × 128 ReLU,
  10 000-transition buffers, learning after 10 000 env steps); agents learn from r_b only.
- ``collins/forage/ir``: the same with the implicit-responsibility shaping of §5.6
  (p = 0.9, violations only, ψ1 Helpless, ψ2 as Algorithm 1 with the time condition).

One environment, as the paper: every env step is one gradient step per agent. Acting
uses parameters up to ``num_steps`` = 100 gradient steps old (the rollout's length; the
paper acts with the latest), which keeps the loop inside one compiled program. The paper's
budget is 100 000 episodes; ours is counted in env steps, 10⁸ (its episodes last from
about 16 steps, when agents starve, to the 10 000-step cap), 5 seeds (ours).
"""

from __future__ import annotations

from prosocial.experiments.config import TrainConfig
from prosocial.learners.dqn_config import DQNConfig
from prosocial.motives.config import MotiveConfig


def forage(motive: MotiveConfig | None = None) -> TrainConfig:
    return TrainConfig(
        env="forage", num_agents=2, max_steps=10_000, total_steps=100_000_000, num_seeds=5,
        checkpoint_every=1000, gif_steps=200, num_envs=1, num_steps=100, learner="dqn",
        dqn=DQNConfig(), motive=motive or MotiveConfig())


PRESETS = {
    "collins/forage/baseline": forage,
    "collins/forage/ir": lambda: forage(MotiveConfig(name="ir", responsibility_punishment=0.9)),
}
