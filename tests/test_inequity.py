"""Inequity aversion ([EMUREL] eqs. 2–3, specs.md §9.3) and the collective reward (§9.2)
against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial.motives import collective_reward, inequity_aversion, smooth_rewards


def assert_close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-6, atol=1e-6)


# --- inequity_aversion (eq. 2) -------------------------------------------------------------


def test_equal_rewards_give_no_penalty():
    assert_close(inequity_aversion(jnp.array([2.0, 2.0]), alpha=5.0, beta=0.05), [0.0, 0.0])


def test_two_agents_envy_and_guilt():
    # w = (3, 1): agent 0 is ahead by 2 (guilt), agent 1 behind by 2 (envy); N − 1 = 1
    assert_close(inequity_aversion(jnp.array([3.0, 1.0]), alpha=5.0, beta=0.05),
                 [-0.05 * 2, -5.0 * 2])


def test_one_outlier_among_four():
    # w = (0, 0, 0, 4), α = 1, β = 0.5: each low agent envies one gap of 4 → −1·4/3;
    # the outlier is ahead of three agents by 4 → −0.5·12/3
    out = inequity_aversion(jnp.array([0.0, 0.0, 0.0, 4.0]), alpha=1.0, beta=0.5)
    assert_close(out, [-4 / 3, -4 / 3, -4 / 3, -2.0])


def test_alpha_only_and_beta_only():
    w = jnp.array([1.0, 2.0, 4.0])
    # envy sums: agent 0: 1 + 3 = 4, agent 1: 2, agent 2: 0; divided by N − 1 = 2
    assert_close(inequity_aversion(w, alpha=0.6, beta=0.0), [-0.6 * 4 / 2, -0.6 * 2 / 2, 0.0])
    # guilt sums: agent 0: 0, agent 1: 1, agent 2: 3 + 2 = 5
    assert_close(inequity_aversion(w, alpha=0.0, beta=0.3), [0.0, -0.3 * 1 / 2, -0.3 * 5 / 2])


def test_per_agent_weights_and_leading_batch_axes():
    w = jnp.array([[3.0, 1.0], [1.0, 3.0]])
    assert_close(inequity_aversion(w, alpha=jnp.array([1.0, 2.0]), beta=0.0),
                 [[0.0, -4.0], [-2.0, 0.0]])


def test_inequity_aversion_rejects_bad_input():
    with pytest.raises(ValueError, match="N >= 2"):
        inequity_aversion(jnp.array([1.0]), 1.0, 1.0)
    with pytest.raises(ValueError, match="alpha must be a scalar or have shape"):
        inequity_aversion(jnp.array([1.0, 2.0]), jnp.ones(3), 1.0)


# --- smooth_rewards (eq. 3) ----------------------------------------------------------------

E = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], np.float32)  # [T = 3, N = 2]


def test_smoothing_with_gamma_lambda_081():
    # w(0) = e(0); w(1) = 0.81·(1, 0) + (0, 2); w(2) = 0.81·(0.81, 2) + (1, 1)
    assert_close(smooth_rewards(E, 0.81), [[1.0, 0.0], [0.81, 2.0], [1.6561, 2.62]])


def test_smoothing_from_a_carried_trace():
    # w(−1) = (1, −1): w(0) = (1.81, −0.81), w(1) = (1.4661, 1.3439), w(2) = 0.81·w(1) + (1, 1)
    assert_close(
        smooth_rewards(E, 0.81, initial=jnp.array([1.0, -1.0])),
        [[1.81, -0.81], [1.4661, 1.3439], [2.187541, 2.088559]],
    )


def test_smoothing_restarts_after_a_done_step():
    # step 1 ends an episode: w(1) still includes e(1), and w(2) starts from zero
    out = smooth_rewards(E, 0.81, dones=np.array([False, True, False]))
    assert_close(out, [[1.0, 0.0], [0.81, 2.0], [1.0, 1.0]])
    # a done at step 0 also discards the carried trace for step 1
    out = smooth_rewards(E, 0.81, initial=jnp.array([5.0, 5.0]), dones=[True, False, False])
    assert_close(out, [[0.81 * 5 + 1, 0.81 * 5], [0.0, 2.0], [1.0, 2.62]])


def test_smoothing_over_envs_under_jit():
    rewards = np.stack([E, E], axis=1)  # [T, E = 2, N]
    dones = np.array([[False, False], [False, True], [False, False]])
    out = jax.jit(smooth_rewards)(rewards, 0.81, dones=dones)
    assert_close(out[:, 0], [[1.0, 0.0], [0.81, 2.0], [1.6561, 2.62]])
    assert_close(out[:, 1], [[1.0, 0.0], [0.81, 2.0], [1.0, 1.0]])


def test_learning_reward_is_extrinsic_plus_shaping():
    # advantageous IA (α = 0, β = 0.05) at t = 2: w = (1.6561, 2.62); agent 1 is ahead by 0.9639
    w = smooth_rewards(E, 0.81)
    reward = E + inequity_aversion(w, alpha=0.0, beta=0.05)
    assert_close(reward[2], [1.0, 1.0 - 0.05 * 0.9639])


def test_smooth_rewards_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[T, \.\.\., N\]"):
        smooth_rewards(np.zeros(3), 0.81)
    with pytest.raises(ValueError, match=r"gamma_lambda must be in \[0, 1\]"):
        smooth_rewards(E, 1.5)
    with pytest.raises(ValueError, match="initial must have shape"):
        smooth_rewards(E, 0.81, initial=np.zeros(3))
    with pytest.raises(ValueError, match="dones must have shape"):
        smooth_rewards(E, 0.81, dones=np.zeros((3, 2), bool))


# --- collective_reward (§9.2) --------------------------------------------------------------


def test_collective_reward_gives_every_agent_the_sum():
    rewards = np.array([[1.0, -1.0, 3.0], [0.0, 0.0, 2.0]])
    assert_close(collective_reward(rewards), [[3.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    with pytest.raises(ValueError, match=r"\[\.\.\., N\]"):
        collective_reward(1.0)
