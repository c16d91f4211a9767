"""The two minibatch loop structures (Python-driven for XLA:CPU, lax.scan for GPUs) are the
same algorithm: from the same state they give the same parameters and metrics."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from prosocial.envs.registry import make
from prosocial.learners.population import all_agents
from prosocial.learners.ppo import PPO, PPOConfig
from prosocial.learners.runner import Runner
from prosocial.motives.config import MotiveConfig
from prosocial.nets import NetConfig


def test_python_and_scan_loops_agree():
    env = make("cleanup", num_agents=2, max_steps=12)
    cfg = PPOConfig(seq_len=6, num_epochs=2, num_minibatches=2, kl_coef=0.2, loop="python")
    net = NetConfig(hidden_sizes=(8,), lstm_size=8)
    motive = MotiveConfig(name="si", moa_lstm_size=8, moa_hidden_sizes=(8,),
                          influence_schedule=((0, 1),))
    results = []
    for loop in ("python", "scan"):
        pop = all_agents(env, PPO(dataclasses.replace(cfg, loop=loop)), net, motive.build())
        learner = Runner(env, (pop,), num_seeds=1, num_envs=2, num_steps=12)
        state = learner.init(jax.random.PRNGKey(3))
        for _ in range(2):
            state, metrics = learner.iteration(state)
        results.append((state, metrics))
    (s_py, m_py), (s_scan, m_scan) = results
    py, scan = s_py.pops[0], s_scan.pops[0]
    for a, b in zip(jax.tree.leaves((py.params, py.motive_params, py.learner)),
                    jax.tree.leaves((scan.params, scan.motive_params, scan.learner)),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    for key in ("policy_loss", "value_loss", "kl", "moa_loss", "collective_return"):
        np.testing.assert_allclose(m_py[key], m_scan[key], rtol=2e-4, atol=1e-6)
