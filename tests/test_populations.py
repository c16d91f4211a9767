"""Populations over one rollout: the layout's reshapes, two populations with different
learners in one Cleanup run, a frozen population, shared parameters, and a motive with its
own optimiser (whose training leaves the policy's optimiser untouched)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import prosocial
from prosocial.layout import Layout
from prosocial.learners.a2c import A2C, A2CConfig
from prosocial.learners.population import ActorCritic, Population, all_agents
from prosocial.learners.ppo import PPO, PPOConfig
from prosocial.learners.runner import Runner
from prosocial.motives.base import Motive
from prosocial.nets import NetConfig

NET = NetConfig(conv_filters=2, hidden_sizes=(8,), lstm_size=8)
ENV = prosocial.make("cleanup", num_agents=3, max_steps=12)
PPO_RULE = PPO(PPOConfig(seq_len=6, num_epochs=1, num_minibatches=2))
A2C_RULE = A2C(A2CConfig(lr=1e-3))


def population(name, agents, update, shared=False, trainable=True, motive=None, seeds=1):
    layout = Layout(seeds, ENV.num_agents, agents, shared)
    return Population(name, layout, ActorCritic(NET, ENV.observation_space, ENV.num_actions),
                      update, motive or Motive(), trainable)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


# --- layout ------------------------------------------------------------------------------


@pytest.mark.parametrize("agents, shared", [((0, 1, 2), False), ((1, 2), False),
                                            ((0, 2), True)])
def test_layout_round_trip(agents, shared):
    lay = Layout(num_seeds=2, num_agents=3, agents=agents, shared=shared)
    s, e, n = 2, 4, len(agents)
    # x[s, e, i] = 100·s + 10·e + i identifies every entry
    x = jnp.asarray(100 * np.arange(s)[:, None, None] + 10 * np.arange(e)[None, :, None]
                    + np.arange(3)[None, None, :])
    p = lay.to_params(x)
    if shared:  # P = S, B = E·n: row s holds env-major (e, i) pairs
        assert p.shape == (s, e * n)
        np.testing.assert_array_equal(p[1, :4], [100, 102, 110, 112])
    else:  # P = S·n seed-major, B = E
        assert p.shape == (s * n, e)
        np.testing.assert_array_equal(p[n, :], 100 + 10 * np.arange(e) + agents[0])
    np.testing.assert_array_equal(lay.to_envs(p), x[:, :, list(agents)])
    np.testing.assert_array_equal(lay.per_param(jnp.ones((s, e))).shape, p.shape)
    full = lay.scatter(jnp.ones((s, n)))
    assert full.shape == (s, 3)
    np.testing.assert_array_equal(np.isnan(full[0]), [a not in agents for a in range(3)])


def test_runner_rejects_overlapping_or_missing_agents():
    with pytest.raises(ValueError, match=r"agent 1 is in populations 'a' and 'b'"):
        Runner(ENV, (population("a", (0, 1), PPO_RULE), population("b", (1, 2), PPO_RULE)),
               num_envs=2, num_steps=12)
    with pytest.raises(ValueError, match=r"agents \[2\] belong to no population"):
        Runner(ENV, (population("a", (0, 1), PPO_RULE),), num_envs=2, num_steps=12)
    with pytest.raises(ValueError, match="not divisible by num_minibatches"):
        Runner(ENV, (population("a", (0, 1, 2), PPO(PPOConfig(seq_len=6,
                                                                num_minibatches=3))),),
               num_envs=2, num_steps=12)


# --- two learners, a frozen population -----------------------------------------------------


def test_ppo_and_a2c_populations_train_in_one_cleanup_run():
    runner = Runner(ENV, (population("focal", (0,), PPO_RULE),
                          population("rest", (1, 2), A2C_RULE)), num_envs=2, num_steps=12)
    state = runner.init(jax.random.PRNGKey(0))
    before = [leaves(ps.params) for ps in state.pops]
    for _ in range(2):
        state, metrics = runner.iteration(state)
    # PPO's terms and A2C's, each under its population's name, per seed
    for name in ("focal/policy_loss", "focal/kl_coef", "rest/policy_loss", "rest/loss",
                 "rest/rho", "collective_return", "returns"):
        assert name in metrics, name
    assert metrics["focal/policy_loss"].shape == (1,) and metrics["returns"].shape == (1, 3)
    # on-policy A2C: the importance ratio of its single step is exactly 1
    np.testing.assert_allclose(metrics["rest/rho"], [1.0], rtol=1e-6)
    for b, ps in zip(before, state.pops, strict=True):
        assert any(not np.array_equal(x, y) for x, y in zip(b, leaves(ps.params), strict=True))
    assert state.pops[0].params["conv"]["kernel"].shape[0] == 1  # P = 1 seed × 1 agent
    assert state.pops[1].params["conv"]["kernel"].shape[0] == 2


def test_frozen_population_keeps_its_parameters_bit_for_bit():
    runner = Runner(ENV, (population("learner", (0, 2), PPO_RULE),
                          population("frozen", (1,), PPO_RULE, trainable=False)),
                    num_envs=2, num_steps=12)
    state = runner.init(jax.random.PRNGKey(1))
    frozen = leaves(state.pops[1].params)
    learner = leaves(state.pops[0].params)
    for _ in range(2):
        state, metrics = runner.iteration(state)
    for x, y in zip(frozen, leaves(state.pops[1].params), strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(learner, leaves(state.pops[0].params),
                                                          strict=True))
    assert "frozen/policy_loss" not in metrics and "learner/policy_loss" in metrics


def test_agents_draw_the_same_initial_parameters_whatever_the_populations():
    one = Runner(ENV, (population("all", (0, 1, 2), PPO_RULE),), num_envs=2, num_steps=12)
    two = Runner(ENV, (population("a", (0, 2), PPO_RULE), population("b", (1,), A2C_RULE)),
                 num_envs=2, num_steps=12)
    p1 = one.init(jax.random.PRNGKey(5)).pops[0].params
    p2 = two.init(jax.random.PRNGKey(5)).pops
    kernel = lambda p, i: np.asarray(p["conv"]["kernel"][i])  # noqa: E731
    np.testing.assert_array_equal(kernel(p1, 1), kernel(p2[1].params, 0))
    np.testing.assert_array_equal(kernel(p1, 2), kernel(p2[0].params, 1))


def test_shared_parameters_one_set_per_seed():
    runner = Runner(ENV, (population("all", (0, 1, 2), PPO_RULE, shared=True, seeds=2),),
                    num_seeds=2, num_envs=2, num_steps=12)
    state = runner.init(jax.random.PRNGKey(2))
    assert state.pops[0].params["conv"]["kernel"].shape[0] == 2  # P = S
    assert state.rollout.carries[0][0].shape == (2, 2 * 3, 8)  # B = E·n
    before = leaves(state.pops[0].params)
    state, metrics = runner.iteration(state)
    assert metrics["policy_loss"].shape == (2,) and np.all(np.isfinite(metrics["policy_loss"]))
    assert any(not np.array_equal(x, y) for x, y in zip(before, leaves(state.pops[0].params),
                                                          strict=True))


# --- a motive with its own optimiser -------------------------------------------------------


class Offset(Motive):
    """A learned scalar b per parameter set pulled towards 3 by its own RMSProp
    (loss (b − 3)², independent of the policy); no intrinsic reward."""

    name = "offset"
    learned = True

    def init_params(self, keys, env, policy):
        return {"b": jnp.zeros((keys.shape[0],), jnp.float32)}

    def optimizer(self):
        return optax.rmsprop(0.1, decay=0.9, eps=1e-8)

    def loss(self, params, minibatch, view):
        return jnp.sum((params["b"] - 3.0) ** 2), {"offset": params["b"]}


def test_motive_with_its_own_optimiser_leaves_the_policy_optimiser_untouched():
    plain = Runner(ENV, (all_agents(ENV, PPO_RULE, NET),), num_envs=2, num_steps=12)
    shaped = Runner(ENV, (all_agents(ENV, PPO_RULE, NET, Offset()),), num_envs=2, num_steps=12)
    s_plain, _ = plain.iteration(plain.init(jax.random.PRNGKey(3)))
    s_shaped, metrics = shaped.iteration(shaped.init(jax.random.PRNGKey(3)))
    a, b = s_plain.pops[0], s_shaped.pops[0]
    # The motive's loss does not touch the policy: same parameters and Adam state, bit for bit.
    for x, y in zip(leaves((a.params, a.opt_state)), leaves((b.params, b.opt_state)),
                    strict=True):
        np.testing.assert_array_equal(x, y)
    # Two minibatches of RMSProp(lr 0.1, decay 0.9) on (b − 3)²: g = 2(b − 3).
    #   step 1: g = −6, ν = 0.1·36 = 3.6,  b = 0 + 0.1·6/√3.6 = 0.316227766
    #   step 2: g = 2(0.316227766 − 3) = −5.367544468, ν = 0.9·3.6 + 0.1·28.810533 = 6.121053
    #           b = 0.316227766 + 0.1·5.367544468/√6.121053 = 0.533177
    np.testing.assert_allclose(b.motive_params["b"], [0.533177] * 3, rtol=1e-5)
    # logged: the last epoch's mean over its minibatches of b at loss time, (0 + 0.3162278)/2
    np.testing.assert_allclose(metrics["offset"], [0.158113883], rtol=1e-5)


def test_lr_scale_trains_only_the_chosen_agent():
    runner = Runner(ENV, (all_agents(ENV, PPO_RULE, NET),), num_envs=2, num_steps=12)
    state = runner.init(jax.random.PRNGKey(4))
    # Train agent 1 only (ERMAS's deviation primitive): the others' parameters stay put.
    pops = (state.pops[0].replace(lr_scale=jnp.asarray([0.0, 1.0, 0.0])),)
    state = state.replace(pops=pops)
    before = np.asarray(state.pops[0].params["policy"]["kernel"])
    state, _ = runner.iteration(state)
    after = np.asarray(state.pops[0].params["policy"]["kernel"])
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    assert not np.array_equal(after[1], before[1])


# --- several roles -----------------------------------------------------------------------


def test_populations_of_two_roles_act_and_learn_in_one_run():
    """Workers (PPO, 3 actions) and a planner (A2C, 5 actions, masked to a ≤ t) of
    ``TwoRoles``: each population reads its role's observations and acts in its role's
    action space; the planner never takes a masked action."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from two_roles_env import TwoRoles

    from prosocial.learners.population import role_population

    env = TwoRoles(max_steps=6)
    vec = NetConfig(hidden_sizes=(8,), lstm_size=8)
    workers = role_population(env, "workers", PPO(PPOConfig(seq_len=4, num_epochs=1,
                                                            num_minibatches=1)), vec,
                              num_seeds=2)
    planner = role_population(env, "planner", A2C(A2CConfig(lr=1e-3)), vec, num_seeds=2,
                              shared=True)
    assert (workers.role, workers.obs_layout.agents) == ("workers", (0, 1))
    assert (planner.role, planner.obs_layout.agents, planner.layout.agents) == (
        "planner", (0,), (2,))
    runner = Runner(env, (workers, planner), num_seeds=2, num_envs=3, num_steps=8)
    state = runner.init(jax.random.PRNGKey(0))
    before = leaves(state.pops[1].params)
    rollout_state, rollout, _, _ = runner._collect(
        tuple(ps.params for ps in state.pops), jax.tree.map(jnp.copy, state.rollout))
    assert rollout.policy[0]["logits"].shape == (8, 4, 3, 3)  # [T, S·2, E, 3 actions]
    assert rollout.policy[1]["logits"].shape == (8, 2, 3, 5)  # [T, S, E, 5 actions]
    # The planner acted on the observation holding t: its action is at most t.
    planner_t = np.asarray(rollout.obs["planner"]["t"][..., 0])
    np.testing.assert_array_less(np.asarray(rollout.action[..., 2]), planner_t + 1)
    assert planner_t.max() >= 4  # and t grew, so the mask changed along the rollout
    assert np.asarray(rollout.action[..., :2]).max() <= 2
    for _ in range(2):
        state, metrics = runner.iteration(state)
    assert all(np.isfinite(np.asarray(v)).all() for k, v in metrics.items() if "loss" in k)
    assert any(not np.array_equal(a, b) for a, b in zip(before, leaves(state.pops[1].params),
                                                        strict=True))


def test_a_population_across_roles_is_rejected():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from two_roles_env import TwoRoles

    env = TwoRoles()
    mixed = Population("mixed", Layout(1, 3, (0, 1, 2)), None)
    with pytest.raises(ValueError, match="one role"):
        Runner(env, (mixed,), num_envs=1, num_steps=4)


# --- the motives' scan over a rollout -----------------------------------------------------


@pytest.mark.parametrize("length, seq_len", [(13, 5), (10, 5), (3, 5)])
def test_chunked_scan_is_a_scan_that_records_the_chunk_starts(length, seq_len):
    from prosocial.layout import chunked_scan

    xs = {"a": jnp.arange(length, dtype=jnp.float32), "b": jnp.ones((length, 2))}

    def body(c, x):  # c_t = 2·c_{t−1} + a_t + Σb_t
        c = 2.0 * c + x["a"] + x["b"].sum()
        return c, c * 10.0

    carry, ys, starts = chunked_scan(body, jnp.float32(1.0), xs, seq_len)
    want_c, want_ys = jax.lax.scan(body, jnp.float32(1.0), xs)
    np.testing.assert_array_equal(ys, want_ys)
    assert carry == want_c
    # the carry entering steps 0, seq_len, 2·seq_len, …: 1, then ys[t − 1] / 10
    entering = np.concatenate([[1.0], np.asarray(want_ys) / 10.0])
    np.testing.assert_array_equal(starts, entering[::seq_len][:-(-length // seq_len)])

