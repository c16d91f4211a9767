"""Every motive with every learner on every registered environment whose events, signals and
observations the motive accepts (its ``check``): one iteration runs, its losses are finite,
the motive's diagnostics and the intrinsic returns are logged, and the policies change.

The default suite runs every (motive, learner) pair on one environment (the environments
taken in turn); ``-m slow`` runs the whole product."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import prosocial
from prosocial.envs.core import event_keys
from prosocial.envs.registry import env_parameters
from prosocial.learners.a2c import A2C, A2CConfig
from prosocial.learners.dqn import DQN, DQNConfig
from prosocial.learners.population import all_agents, role_population
from prosocial.learners.ppo import PPO, PPOConfig
from prosocial.learners.runner import Runner
from prosocial.motives.config import MOTIVES, MotiveConfig
from prosocial.nets import NetConfig

NET = NetConfig(conv_filters=2, hidden_sizes=(4,), lstm_size=4)
LEARNERS = {"ppo": lambda: PPO(PPOConfig(seq_len=4, num_epochs=1, num_minibatches=1)),
            "a2c": lambda: A2C(A2CConfig(lr=1e-3)),
            "dqn": lambda: DQN(DQNConfig(steps_before_learn=0, batch_size=4, buffer_size=16,
                                         hidden_sizes=(4,)))}
# Per learner: metrics that must be finite ([S]) after one iteration.
LOSSES = {"ppo": ("policy_loss", "entropy"), "a2c": ("policy_loss", "entropy"),
          "dqn": ("td_loss", "q_mean")}
DIAGNOSTICS = {"none": (), "collective": (), "ia": ("inequity_aversion_reward",),
               "si": ("influence_reward", "moa_accuracy", "moa_loss"),
               "scm": ("influence_reward", "moa_accuracy", "moa_loss", "curiosity_reward",
                       "scm_loss"),
               "emurel": ("environmental_impact", "emurel_reward", "moa_loss", "forward_loss",
                          "inverse_loss"),
               "ir": ("ir_penalty", "ir_violations", "ir_satisfactions", "ir_opened"),
               "reciprocity": ("imitator_niceness",)}


def _supports(motive, env) -> bool:
    """The motive's own check accepts the environment (events, signals, observations)."""
    try:
        motive.check(env, event_keys(env))
    except ValueError:
        return False
    return True


def combinations():
    # One population of 2 agents: environments with a num_agents parameter and one role
    # (the matrix games have a fixed number of players, the bimatrix a planner role).
    envs = [e for e in prosocial.list_envs() if "num_agents" in env_parameters(e)
            and len(prosocial.make(e, num_agents=2).roles) == 1]
    for m, name in enumerate(MOTIVES):
        motive = MotiveConfig(name=name, moa_lstm_size=4, moa_hidden_sizes=(4,),
                              influence_schedule=((0, 1.0),)).build()
        supported = [env_id for env_id in envs
                     if _supports(motive, prosocial.make(env_id, num_agents=2, max_steps=6))]
        for n, learner in enumerate(LEARNERS):
            for k, env_id in enumerate(supported):
                # By default each motive runs with one learner (in turn) on one env (in
                # turn): every motive and every learner is covered; the product under slow.
                default = n == m % len(LEARNERS) and k == m % len(supported)
                marks = () if default else (pytest.mark.slow,)
                yield pytest.param(env_id, name, learner, id=f"{env_id}-{name}-{learner}",
                                   marks=marks)


@pytest.mark.parametrize("env_id, motive_name, learner", list(combinations()))
def test_motive_and_learner_compose(env_id, motive_name, learner):
    env = prosocial.make(env_id, num_agents=2, max_steps=6)
    motive = MotiveConfig(name=motive_name, moa_lstm_size=4, moa_hidden_sizes=(4,),
                          influence_schedule=((0, 1.0),)).build()
    if motive_name == "reciprocity":  # an innovator of its own, the imitator shaped
        pops = (role_population(env, "agents", LEARNERS[learner](), NET, name="innovator",
                                agents=(0,)),
                role_population(env, "agents", LEARNERS[learner](), NET, motive,
                                name="imitator", agents=(1,)))
        prefix, shaped = "imitator/", [1]
    else:
        pops, prefix, shaped = (all_agents(env, LEARNERS[learner](), NET, motive),), "", [0, 1]
    runner = Runner(env, pops, num_seeds=1, num_envs=2, num_steps=8)
    state = runner.init(jax.random.PRNGKey(0))
    before = [np.asarray(x) for x in jax.tree.leaves(state.pops[-1].params)]
    state, metrics = runner.iteration(state)
    for name in LOSSES[learner]:
        name = prefix + name
        assert np.all(np.isfinite(metrics[name])) and metrics[name].shape == (1,), name
    for name in DIAGNOSTICS[motive_name]:
        assert np.all(np.isfinite(metrics[prefix + name])), name
    if motive_name == "none":
        assert "intrinsic_return" not in metrics
    else:  # the 6-step episodes end inside the 8-step rollout
        assert metrics["intrinsic_return"].shape == (1, 2)
        assert np.all(np.isfinite(metrics["intrinsic_return"][:, shaped]))
    after = [np.asarray(x) for x in jax.tree.leaves(state.pops[-1].params)]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
