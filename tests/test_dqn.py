"""Independent DQN (specs.md §9.8): the ε schedule, the ε-greedy logits, TD targets and losses
by hand, the replay buffer's valid-only writes, soft and periodic target updates, that dead
agents' steps never reach the loss, and a run mixing a DQN population with a PPO one."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import prosocial
from prosocial import nets
from prosocial.layout import Layout
from prosocial.learners.dqn import (
    DQN,
    DQNConfig,
    add_valid,
    buffer_size,
    epsilon,
    epsilon_greedy_logits,
    make_buffer,
    td_loss,
    td_targets,
)
from prosocial.learners.population import ActorCritic, Population
from prosocial.learners.ppo import PPO, PPOConfig
from prosocial.learners.rollout import MASKED
from prosocial.learners.runner import Runner

# --- ε ----------------------------------------------------------------------------------------


def test_epsilon_schedule_values():
    # ε(n) = 0.05 + 0.85·exp(−n/1000): n = 0 → 0.9; n = 1000 → 0.05 + 0.85/e = 0.362697;
    # n = 3000 → 0.05 + 0.85·e⁻³ = 0.05 + 0.85·0.049787 = 0.092319; n → ∞ → 0.05.
    cfg = DQNConfig()
    got = np.asarray(epsilon(cfg, jnp.asarray([0, 1000, 3000, 1e7])))
    np.testing.assert_allclose(got, [0.9, 0.362697, 0.092319, 0.05], atol=1e-6)


def test_epsilon_greedy_logits_give_the_epsilon_greedy_policy():
    # q = (1, 3, 2), ε = 0.3, A = 3: π = (0.1, 0.8, 0.1). ε = 0: only the greedy action.
    q = jnp.asarray([[1.0, 3.0, 2.0], [1.0, 3.0, 2.0]])
    logits = epsilon_greedy_logits(q, jnp.asarray([0.3, 0.0]))
    np.testing.assert_allclose(np.asarray(jax.nn.softmax(logits[0])), [0.1, 0.8, 0.1],
                               atol=1e-6)
    np.testing.assert_array_equal(np.asarray(logits[1]), [MASKED, 0.0, MASKED])


# --- targets and losses -------------------------------------------------------------------------


def test_td_targets_by_hand():
    # γ = 0.9. Row 0: y = 1 + 0.9·max(1, 2) = 2.8. Row 1 terminal: y = 0.5. Row 2 time-limit
    # end: y = 2 + 0.9·final_value 4 = 5.6 (its Q⁻(o') is ignored).
    r = jnp.asarray([1.0, 0.5, 2.0])
    terminal = jnp.asarray([False, True, False])
    final = jnp.asarray([False, False, True])
    final_value = jnp.asarray([0.0, 0.0, 4.0])
    q_next = jnp.asarray([[1.0, 2.0], [3.0, 5.0], [7.0, 0.0]])
    y = td_targets(r, terminal, final, final_value, q_next, 0.9)
    np.testing.assert_allclose(np.asarray(y), [2.8, 0.5, 5.6], rtol=1e-6)
    # Double DQN: the online net picks action 0 in row 0 → y = 1 + 0.9·Q⁻(o', 0) = 1.9.
    online = jnp.asarray([[5.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y = td_targets(r, terminal, final, final_value, q_next, 0.9, online)
    np.testing.assert_allclose(np.asarray(y), [1.9, 0.5, 5.6], rtol=1e-6)


def test_td_loss_by_hand():
    # Q(o, a) = (2, 0) for actions (1, 0); targets (4, 0.5): errors (−2, −0.5).
    # MSE = (4 + 0.25)/2 = 2.125; Huber(δ=1) = ((2 − 0.5) + 0.5·0.25)/2 = 0.8125.
    q = jnp.asarray([[1.0, 2.0], [0.0, 4.0]])
    a = jnp.asarray([1, 0])
    y = jnp.asarray([4.0, 0.5])
    loss, q_sa = td_loss(q, a, y, "mse")
    assert float(loss) == pytest.approx(2.125)
    np.testing.assert_array_equal(np.asarray(q_sa), [2.0, 0.0])
    assert float(td_loss(q, a, y, "huber")[0]) == pytest.approx(0.8125)
    # The gradient flows into Q only: d MSE / d Q(o0, 1) = 2·(−2)/2 = −2.
    grad = jax.grad(lambda q: td_loss(q, a, y, "mse")[0])(q)
    np.testing.assert_allclose(np.asarray(grad), [[0.0, -2.0], [-0.5, 0.0]])


# --- replay ---------------------------------------------------------------------------------


def test_add_valid_keeps_a_fifo_of_the_valid_transitions_only():
    cfg = DQNConfig(buffer_size=5, batch_size=5)
    buffer = make_buffer(cfg)
    state = buffer.init({"id": jnp.zeros((), jnp.int32)})
    fifo: list[int] = []
    rng = np.random.default_rng(0)
    next_id = 1
    for _ in range(12):
        ids = np.arange(next_id, next_id + 3)
        next_id += 3
        valid = rng.random(3) < 0.5
        state = add_valid(buffer, state, {"id": jnp.asarray(ids, jnp.int32)},
                          jnp.asarray(valid))
        fifo = (fifo + list(ids[valid]))[-5:]
        size = int(buffer_size(state))
        assert size == len(fifo)
        stored = np.asarray(state.experience["id"][0])
        # The buffer in age order (oldest first) is the FIFO.
        start = int(state.current_index) if bool(state.is_full) else 0
        order = [(start + j) % 5 for j in range(size)]
        assert list(stored[order]) == fifo
        if size:
            sample = np.asarray(buffer.sample(state, jax.random.PRNGKey(next_id))
                                .experience["id"])
            assert set(sample) <= set(fifo)


# --- through the runner ---------------------------------------------------------------------


def _cartpole_runner(cfg: DQNConfig, num_envs=4, num_steps=1):
    gymnax_env = pytest.importorskip("prosocial.envs.adapters.gymnax")
    env = gymnax_env.GymnaxEnv("CartPole-v1")
    rule = DQN(cfg)
    pop = Population("agents", Layout(1, 1, (0,)),
                     rule.policy(nets.NetConfig(), env.observation_space, env.num_actions), rule)
    return Runner(env, (pop,), num_seeds=1, num_envs=num_envs, num_steps=num_steps)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_soft_target_update_and_epsilon_from_the_action_count():
    # steps_before_learn 0, batch 4 = one step's transitions of 4 envs: the first iteration
    # (2 steps) stores step 0 after the empty pending slot and takes exactly one gradient
    # step, so θ⁻ = τ·θ₁ + (1 − τ)·θ₀ with θ₀ the initial (= initial target) parameters.
    # ε: the agent acts in 4 envs per step and is alive on its first 4 steps in CartPole
    # (an episode lasts ≥ 8 steps): n = 8, 16 → ε(n) = 0.05 + 0.85·exp(−n/1000).
    runner = _cartpole_runner(DQNConfig(steps_before_learn=0, batch_size=4, buffer_size=16,
                                        tau=0.25), num_steps=2)
    state = runner.init(jax.random.PRNGKey(0))
    assert float(state.pops[0].params["epsilon"][0]) == pytest.approx(0.9)
    theta0 = _leaves(state.pops[0].params["q"])
    for a, b in zip(theta0, _leaves(state.pops[0].learner["target"]), strict=True):
        np.testing.assert_array_equal(a, b)
    state, metrics = runner.iteration(state)
    assert float(metrics["gradient_steps"][0]) == 1.0
    theta1 = _leaves(state.pops[0].params["q"])
    target = _leaves(state.pops[0].learner["target"])
    assert any(not np.allclose(a, b) for a, b in zip(theta0, theta1, strict=True))
    for t0, t1, tgt in zip(theta0, theta1, target, strict=True):
        np.testing.assert_allclose(tgt, 0.25 * t1 + 0.75 * t0, rtol=1e-5, atol=1e-7)
    for n in (8, 16):
        if n > 8:
            state, metrics = runner.iteration(state)
        assert float(state.pops[0].learner["count"][0]) == n
        expected = 0.05 + 0.85 * math.exp(-n / 1000)
        assert float(state.pops[0].params["epsilon"][0]) == pytest.approx(expected, rel=1e-6)
        assert float(metrics["epsilon"][0]) == pytest.approx(expected, rel=1e-6)


def _handmade_rollout(key, valid, poison):
    """Sequences ``[P=1, B=4, T]`` as the runner prepares them; steps not ``valid`` carry
    NaN observations and rewards when ``poison``. A valid step followed by an invalid one
    is the agent's terminal step (as an agent's death is)."""
    t = valid.shape[-1]
    k1, k2 = jax.random.split(key)
    obs = jax.random.normal(k1, (1, 4, t, 4))
    reward = jnp.ones((1, 4, t))
    if poison:
        obs = jnp.where(valid[..., None], obs, jnp.nan)
        reward = jnp.where(valid, reward, jnp.nan)
    terminated = valid & ~jnp.concatenate([valid[..., 1:], valid[..., -1:]], axis=-1)
    zeros = jnp.zeros((1, 4, t))
    return {"obs": {"obs": obs}, "action": jax.random.randint(k2, (1, 4, t), 0, 2),
            "mask": valid, "start": jnp.zeros((1, 4, t), bool), "reward": reward,
            "terminated": terminated, "truncated": jnp.zeros((1, 4, t), bool),
            "final_value": zeros, "logits": jnp.zeros((1, 4, t, 2)), "value": zeros,
            "motive": {}}


@pytest.fixture(scope="module")
def handmade():
    """A one-agent DQN population's update and initial state (learning from the first
    step, batch 4, a periodic target copy every 2 gradient steps)."""
    runner = _cartpole_runner(DQNConfig(steps_before_learn=0, batch_size=4, buffer_size=64,
                                        tau=1.0, target_update_every=2))
    return runner._sgd[0], runner.init(jax.random.PRNGKey(3)).pops[0]


def test_periodic_target_copy(handmade):
    # 3 steps per rollout, all valid. Iteration 1: the pending slot is empty, then 4 and 8
    # stored transitions → gradient steps 1, 2 (copy at 2): θ⁻ = θ. Iteration 2: steps
    # 3, 4 (copy), 5: θ⁻ = θ₄ ≠ θ. Iteration 3: steps 6 (copy), 7, 8 (copy): θ⁻ = θ.
    update, ps = handmade
    ps = jax.tree.map(jnp.copy, ps)  # the update donates its input
    valid = jnp.ones((1, 4, 3), bool)
    for i, (steps, same) in enumerate([(2, True), (3, False), (3, True)]):
        seqs = _handmade_rollout(jax.random.PRNGKey(i), valid, poison=False)
        ps, metrics = update(ps, seqs, ((), ()), jax.random.PRNGKey(10 + i), jnp.float32(1e-2))
        assert float(metrics["gradient_steps"][0]) == steps
        equal = all(np.array_equal(a, b) for a, b in zip(
            _leaves(ps.learner["target"]), _leaves(ps.params["q"]), strict=True))
        assert equal == same, i


@pytest.mark.parametrize("mark_all_active", [False, True])
def test_inactive_steps_never_reach_the_loss(handmade, mark_all_active):
    # Steps where the agent is not active carry NaN observations and rewards. They are
    # never stored, so losses and parameters stay finite and the buffer holds exactly the
    # active steps (minus the rollout's last, which waits for its next observation).
    # Control: the same rollouts with every step marked active make the loss NaN.
    update, ps = handmade
    ps = jax.tree.map(jnp.copy, ps)
    rng = np.random.default_rng(0)
    active_total, losses = 0, []
    for i in range(6):
        valid = jnp.asarray(rng.random((1, 4, 3)) < 0.5)
        # The first and last steps are active (rollouts join without a death between).
        valid = valid.at[..., 0].set(True).at[..., -1].set(True)
        seqs = _handmade_rollout(jax.random.PRNGKey(i), valid, poison=True)
        if mark_all_active:
            seqs["mask"] = jnp.ones_like(valid)
            seqs["terminated"] = jnp.zeros_like(valid)
        active_total += int(seqs["mask"].sum())
        ps, metrics = update(ps, seqs, ((), ()), jax.random.PRNGKey(10 + i), jnp.float32(1e-3))
        losses.append(float(metrics["td_loss"][0]))
        assert int(buffer_size(ps.learner["buffer"])[0]) == min(active_total - 4, 64)
    if mark_all_active:
        assert np.isnan(losses[-1])
    else:
        assert np.all(np.isfinite(losses)) and losses[-1] > 0
        assert all(np.isfinite(x).all() for x in _leaves(ps.params))


def test_mixed_dqn_and_ppo_populations():
    # Cleanup, 2 agents: agent 0 learns with DQN, agent 1 with PPO, over one rollout.
    env = prosocial.make("cleanup", num_agents=2, max_steps=6)
    net = nets.NetConfig(conv_filters=2, hidden_sizes=(4,), lstm_size=4)
    rule = DQN(DQNConfig(steps_before_learn=0, batch_size=8, buffer_size=32,
                         hidden_sizes=(8,)))
    dqn_pop = Population("dqn", Layout(1, 2, (0,)),
                         rule.policy(net, env.observation_space, env.num_actions), rule)
    ppo_pop = Population("ppo", Layout(1, 2, (1,)),
                         ActorCritic(net, env.observation_space, env.num_actions),
                         PPO(PPOConfig(seq_len=4, num_epochs=1, num_minibatches=1)))
    runner = Runner(env, (dqn_pop, ppo_pop), num_seeds=1, num_envs=4, num_steps=4)
    state = runner.init(jax.random.PRNGKey(0))
    before = [_leaves(p.params) for p in state.pops]
    for _ in range(3):
        state, metrics = runner.iteration(state)
    for name in ("dqn/td_loss", "dqn/q_mean", "ppo/policy_loss", "ppo/value_loss"):
        assert np.all(np.isfinite(np.asarray(metrics[name]))), name
    assert float(metrics["dqn/gradient_steps"][0]) == 4.0
    for pop_before, ps in zip(before, state.pops, strict=True):
        after = _leaves(ps.params)
        assert all(np.isfinite(a).all() for a in after)
        assert any(not np.array_equal(a, b) for a, b in zip(pop_before, after, strict=True))


def test_train_config_builds_dqn_populations():
    from prosocial.experiments.config import TrainConfig
    from prosocial.experiments.train import build
    from prosocial.learners.dqn import QNetwork

    cfg = TrainConfig(env="cleanup", num_agents=2, num_envs=4, num_steps=1,
                      populations=("q:0:dqn", "pg:1:ppo"),
                      ppo=PPOConfig(seq_len=1, num_minibatches=1))
    runner = build(cfg)
    assert isinstance(runner.populations[0].policy, QNetwork)
    assert isinstance(runner.populations[0].update, DQN)
    assert isinstance(runner.populations[1].policy, ActorCritic)
    with pytest.raises(ValueError, match="dqn.buffer_size"):
        TrainConfig(env="cleanup", num_agents=2, num_envs=4, learner="dqn",
                    dqn=DQNConfig(buffer_size=2, batch_size=2))
