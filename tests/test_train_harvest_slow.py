"""Slow: a short Harvest run learns — its collective return clearly beats random agents'."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from prosocial.envs.registry import make
from prosocial.experiments.config import preset
from prosocial.experiments.evaluate import run_episodes
from prosocial.learners.ppo import PPO
from prosocial.nets import init_stacked


@pytest.mark.slow
def test_short_harvest_run_beats_random_agents():
    cfg = dataclasses.replace(preset("quick"), total_steps=96_000)
    env = make(cfg.env, **cfg.env_kwargs())
    learner = PPO(cfg.ppo, env, num_seeds=1)
    state = learner.init(jax.random.PRNGKey(0))
    returns = []
    for _ in range(cfg.num_iterations):
        state, metrics = learner.iteration(state)
        returns.append(float(metrics["collective_return"][0]))
    trained = float(np.mean(returns[-5:]))

    # Random agents: the same network with zero policy heads gives uniform logits.
    params = init_stacked(cfg.ppo.net, jax.random.PRNGKey(1), env.observation_space,
                          env.num_actions, (env.num_agents,))
    params["policy"] = jax.tree.map(lambda x: x * 0, params["policy"])
    random_metrics, _ = run_episodes(env, cfg.ppo.net, params, jax.random.PRNGKey(2), 32)
    random_return = float(np.mean(random_metrics["collective_return"]))
    print(f"collective return: trained {trained:.1f}, random {random_return:.1f}")
    assert trained > random_return + 100
    assert trained > 0
