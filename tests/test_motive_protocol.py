"""The learner-neutral motive protocol: weighted composition of motives, per-agent
coefficients over a population's agents, members with their own optimisers; and a full PPO
iteration's learning-rate timing and KL-adaptation input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from prosocial import nets
from prosocial.envs.adapters.gymnax import GymnaxEnv
from prosocial.layout import Layout
from prosocial.learners.population import all_agents
from prosocial.learners.ppo import PPO, PPOConfig
from prosocial.learners.rollout import Rollout
from prosocial.learners.runner import Runner
from prosocial.motives.base import Motive, PolicyView, Weighted
from prosocial.motives.collective import CollectiveReward
from prosocial.motives.inequity import InequityAversion


def rollout(rewards):
    """S = E = 1, rewards [T, N], one episode starting at step 0."""
    r = jnp.asarray(rewards, jnp.float32)[:, None, None]
    t = r.shape[0]
    flags = jnp.zeros((t, 1, 1), bool)
    return Rollout(obs={}, action=jnp.zeros(r.shape, jnp.int32), reward=r,
                   start=flags.at[0].set(True), done=flags, terminated=jnp.zeros(r.shape, bool),
                   truncated=flags, active=jnp.ones(r.shape, bool), events={}, signals={},
                   action_mask=None, policy=(), env_steps=jnp.zeros((), jnp.int32))


def view(agents, n=3):
    return PolicyView(layout=Layout(1, n, agents))


REWARDS = [[1.0, 0.0, 3.0], [0.0, 2.0, 2.0]]


def test_weighted_motives_sum_their_rewards():
    # collective: others' rewards, step 0: (3, 4, 1), step 1: (4, 2, 2);
    # IA instantaneous, α = 0, β = 1, N − 1 = 2: −Σ_j max(e_i − e_j, 0)/2
    #   step 0: e = (1, 0, 3): (−0.5, 0, −(2 + 3)/2 = −2.5); step 1: e = (0, 2, 2): (0, −1, −1)
    # 0.5·collective − 2·IA: step 0 (1.5 + 1, 2 + 0, 0.5 + 5), step 1 (2, 1 + 2, 1 + 2)
    motive = Weighted([CollectiveReward(), InequityAversion(0.0, 1.0, smoothed=False)],
                      [0.5, -2.0])
    lay = Layout(1, 3, (0, 1, 2))
    carry = motive.init_carry(lay, 1)
    _, reward, diagnostics, extras = motive.intrinsic(((), ()), carry, rollout(REWARDS),
                                                      view((0, 1, 2)))
    np.testing.assert_allclose(reward[:, 0, 0], [[2.5, 2.0, 5.5], [2.0, 3.0, 3.0]], rtol=1e-6)
    assert "inequity_aversion_reward" in diagnostics and set(extras) == {"0", "1"}
    assert motive.name == "collective+ia" and motive.min_agents == 2


def test_per_agent_coefficients_follow_global_agent_ids():
    # β per agent (0, 1, 0.5), α = 0, instantaneous. Population {1, 2} gets agents 1 and 2:
    #   step 0: agent 1 (e = 0) guilt 0; agent 2 (e = 3): 0.5·((3 − 1) + (3 − 0))/2 = 1.25
    #   step 1: agent 1 (e = 2): 1·(2 − 0)/2 = 1; agent 2 (e = 2): 0.5·2/2 = 0.5
    motive = InequityAversion(0.0, jnp.asarray([0.0, 1.0, 0.5]), smoothed=False)
    _, reward, _, _ = motive.intrinsic((), jnp.zeros((1, 1, 3)), rollout(REWARDS),
                                       view((1, 2)))
    assert reward.shape == (2, 1, 1, 2)
    np.testing.assert_allclose(reward[:, 0, 0], [[0.0, -1.25], [-1.0, -0.5]], rtol=1e-6)


class Scalar(Motive):
    """A learned scalar per parameter set with a given optimiser (or none)."""

    learned = True

    def __init__(self, name, tx):
        self.name, self.tx = name, tx

    def optimizer(self):
        return self.tx

    def init_params(self, keys, env, policy):
        return {"b": jnp.zeros((keys.shape[0],))}


def test_weighted_members_keep_their_own_optimisers():
    sgd, adam = optax.sgd(0.5), optax.adam(0.1)
    motive = Weighted([Scalar("a", sgd), CollectiveReward(), Scalar("b", adam)], [1, 1, 1])
    tx = motive.optimizer()
    params = ({"b": jnp.zeros(())}, (), {"b": jnp.zeros(())})
    grads = ({"b": jnp.asarray(2.0)}, (), {"b": jnp.asarray(2.0)})
    updates, _ = tx.update(grads, tx.init(params), params)
    # SGD: −0.5·2 = −1; Adam's first step: −lr·sign = −0.1 (bias-corrected m/√v = 1)
    np.testing.assert_allclose(updates[0]["b"], -1.0, rtol=1e-6)
    np.testing.assert_allclose(updates[2]["b"], -0.1, rtol=1e-4)
    assert Weighted([Scalar("a", None), CollectiveReward()], [1, 1]).optimizer() is None
    with pytest.raises(ValueError, match="either every learned motive has its own"):
        Weighted([Scalar("a", sgd), Scalar("b", None)], [1, 1]).optimizer()


# --- a full PPO iteration: learning-rate timing and the KL adaptation's input -------------

FF = nets.NetConfig(lstm_size=None, hidden_sizes=(8,), hidden_init_scale=math.sqrt(2))
CARTPOLE = GymnaxEnv("CartPole-v1")
STEPS = 2 * 16  # env steps per iteration: 2 envs × 16 steps


def ppo_run(kl_target, iterations=1):
    cfg = PPOConfig(seq_len=4, num_epochs=3, num_minibatches=2, kl_coef=0.2,
                    kl_target=kl_target, lr_schedule=((0, 1e-2), (STEPS, 1e-4)))
    runner = Runner(CARTPOLE, (all_agents(CARTPOLE, PPO(cfg), FF),), num_envs=2, num_steps=16)
    state = runner.init(jax.random.PRNGKey(0))
    out = []
    for _ in range(iterations):
        state, metrics = runner.iteration(state)
        out.append((float(state.pops[0].learner["kl_coef"][0]),
                    {k: float(np.asarray(v).reshape(-1)[0]) for k, v in metrics.items()
                     if k in ("kl", "kl_coef", "learning_rate")}))
    return out


def test_ppo_iteration_learning_rate_is_taken_before_the_batch():
    (_, first), (_, second) = ppo_run(0.01, iterations=2)
    # iteration 1 starts at 0 env steps (lr 1e-2); iteration 2 at 32 steps, the last knot
    assert first["learning_rate"] == pytest.approx(1e-2, rel=1e-6)
    assert second["learning_rate"] == pytest.approx(1e-4, rel=1e-5)
    # the logged coefficient is the one the iteration's loss used (before its adaptation)
    assert first["kl_coef"] == pytest.approx(0.2)


def test_ppo_kl_adaptation_reads_the_last_epochs_mean_kl():
    [(_, metrics)] = ppo_run(1e-12)
    kl = metrics["kl"]  # the last epoch's mean KL over its minibatches
    assert kl > 0
    # Targets on either side of the thresholds computed from that very KL: the coefficient
    # grows when kl > 2·target, shrinks when kl < target/2, and stays otherwise. Another
    # input (the first epoch's KL, a single minibatch's) would cross other thresholds.
    for target, expected in ((kl / 2 * 0.999, 0.3), (kl / 2 * 1.001, 0.2),
                             (kl * 2 * 0.999, 0.2), (kl * 2 * 1.001, 0.1)):
        [(coef, m)] = ppo_run(target)
        assert m["kl"] == pytest.approx(kl, rel=1e-6)  # the target does not change iteration 1
        assert coef == pytest.approx(expected, rel=1e-6), (target, kl)
