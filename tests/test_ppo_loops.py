"""The two minibatch loop structures (Python-driven for XLA:CPU, lax.scan for GPUs) are the
same algorithm: from the same state they give the same parameters and metrics."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from prosocial.envs.registry import make
from prosocial.learners.ppo import PPO, PPOConfig
from prosocial.motives.config import MotiveConfig
from prosocial.nets import NetConfig


def test_python_and_scan_loops_agree():
    env = make("cleanup", num_agents=2, max_steps=12)
    cfg = PPOConfig(num_envs=2, num_steps=12, seq_len=6, num_epochs=2, num_minibatches=2,
                    kl_coef=0.2, net=NetConfig(hidden_sizes=(8,), lstm_size=8), loop="python")
    motive = MotiveConfig(name="si", moa_lstm_size=8, moa_hidden_sizes=(8,),
                          influence_schedule=((0, 1),))
    results = []
    for loop in ("python", "scan"):
        learner = PPO(dataclasses.replace(cfg, loop=loop), env, num_seeds=1,
                      motive=motive.build())
        state = learner.init(jax.random.PRNGKey(3))
        for _ in range(2):
            state, metrics = learner.iteration(state)
        results.append((state, metrics))
    (s_py, m_py), (s_scan, m_scan) = results
    for a, b in zip(jax.tree.leaves((s_py.params, s_py.motive_params, s_py.kl_coef)),
                    jax.tree.leaves((s_scan.params, s_scan.motive_params, s_scan.kl_coef)),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    for key in ("policy_loss", "value_loss", "kl", "moa_loss", "collective_return"):
        np.testing.assert_allclose(m_py[key], m_scan[key], rtol=2e-4, atol=1e-6)
