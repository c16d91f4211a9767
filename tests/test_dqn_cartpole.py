"""Slow: independent DQN solves gymnax CartPole-v1 (a mean return ≥ 475 of 500 within
5×10⁵ env steps), through the same runner and population path as the multi-agent runs.

Setting (a common DQN configuration for CartPole, not the Forage defaults): 8 envs × 8 steps
per iteration, one gradient step per vector step (8 per iteration) on batches of 128 from a
10 000-transition buffer once 10 000 env steps are done, γ = 0.99, Huber loss, AdamW lr 5e-4,
soft target τ = 0.005, ε = 0.01 + 0.99·exp(−n / 25 000) over the agent's action selections,
a 128-128 ReLU network; time-limit ends bootstrap from the stored final value.
"""

import sys

import jax
import numpy as np
import pytest

from prosocial import nets
from prosocial.layout import Layout
from prosocial.learners.dqn import DQN, DQNConfig
from prosocial.learners.population import Population
from prosocial.learners.runner import Runner

pytest.importorskip("gymnax")

TOTAL_STEPS = 500_000
TARGET = 475.0
WINDOW = 100  # iterations of 64 env steps (~13 episodes once it balances)

CONFIG = DQNConfig(gamma=0.99, lr=5e-4, batch_size=128, buffer_size=10_000,
                   epsilon_start=1.0, epsilon_end=0.01, epsilon_decay=25_000.0, tau=0.005,
                   steps_before_learn=10_000, loss="huber", hidden_sizes=(128, 128))


def train(seed: int = 0, cfg: DQNConfig = CONFIG, verbose: bool = False) -> list[float]:
    """Every iteration's mean episode return (NaN where no episode ended)."""
    from prosocial.envs.adapters.gymnax import GymnaxEnv

    env = GymnaxEnv("CartPole-v1")
    rule = DQN(cfg)
    pop = Population("agents", Layout(1, 1, (0,)),
                     rule.policy(nets.NetConfig(), env.observation_space, env.num_actions), rule)
    runner = Runner(env, (pop,), num_seeds=1, num_envs=8, num_steps=8)
    state = runner.init(jax.random.PRNGKey(seed))
    returns = []
    for i in range(TOTAL_STEPS // runner.steps_per_iteration):
        state, metrics = runner.iteration(state)
        returns.append(float(np.asarray(metrics["returns"]).reshape(-1)[0]))
        if verbose and i % 500 == 0:
            print(i * runner.steps_per_iteration, np.nanmean(returns[-WINDOW:]),
                  float(metrics["td_loss"][0]), float(metrics["epsilon"][0]), flush=True)
    return returns


def best_window(returns) -> float:
    returns = np.asarray(returns)
    return float(np.nanmax([np.nanmean(returns[i - WINDOW:i])
                            for i in range(WINDOW, len(returns) + 1)]))


@pytest.mark.slow
def test_dqn_solves_cartpole():
    best = best_window(train())
    assert best >= TARGET, f"best {WINDOW}-iteration mean return {best:.1f} < {TARGET}"


if __name__ == "__main__":
    print("best", best_window(train(int(sys.argv[1]) if len(sys.argv) > 1 else 0,
                                    verbose=True)))
