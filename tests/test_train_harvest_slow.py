"""Slow: a short Harvest run learns — its collective return clearly beats random agents'."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from prosocial.experiments.config import preset
from prosocial.experiments.evaluate import run_episodes
from prosocial.experiments.train import build
from prosocial.learners.population import Population, UniformRandom


@pytest.mark.slow
def test_short_harvest_run_beats_random_agents():
    cfg = dataclasses.replace(preset("quick"), total_steps=96_000)
    learner = build(cfg)
    env = learner.env.env
    state = learner.init(jax.random.PRNGKey(0))
    returns = []
    for _ in range(cfg.num_iterations):
        state, metrics = learner.iteration(state)
        returns.append(float(metrics["collective_return"][0]))
    trained = float(np.mean(returns[-5:]))

    # Random agents: a population acting uniformly at random.
    rand = Population("random", learner.populations[0].layout, UniformRandom(env.num_actions))
    random_metrics, _ = run_episodes(env, (rand,), ((),), jax.random.PRNGKey(2), 32)
    random_return = float(np.mean(random_metrics["collective_return"]))
    print(f"collective return: trained {trained:.1f}, random {random_return:.1f}")
    assert trained > random_return + 100
    assert trained > 0
