"""The model of other agents on its own (specs.md §9.4): its initialisation, the counterfactual
step, the episode-start reset, the hidden state SCM/EMuReL read, the training targets and
the cross-entropy loss, against values checked by hand.

Hand-built models use small dyadic numbers (multiples of 1/8) and a zero tower kernel, so
that every gate is an exact float32 sum and equalities can be exact."""

from __future__ import annotations

import math
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial.motives.base import PolicyView
from prosocial.motives.config import MotiveConfig
from prosocial.motives.influence import SocialInfluence
from prosocial.motives.moa import (
    ModelOfOtherAgents,
    cross_entropy_loss,
    next_action_targets,
    own_first_order,
    prediction_accuracy,
)

N, A, H, D = 3, 3, 2, 4  # agents, actions, LSTM units, feature width
MOA = ModelOfOtherAgents(hidden_sizes=(2,), lstm_size=H, num_agents=N, num_actions=A)


def dyadic(key, shape, scale=8):
    """Random multiples of 1/8 in [−1, 1]: exact in float32, and so are their small sums."""
    return jax.random.randint(key, shape, -scale, scale + 1).astype(jnp.float32) / scale


def hand_params(key=jax.random.PRNGKey(0), p=1):
    """P = ``p`` MOAs whose tower outputs 0 (zero kernel and bias): the gates are
    onehot(a)·W_x + b, exact sums of dyadic numbers."""
    k = jax.random.split(key, 5)
    return {
        "moa_0": {"kernel": jnp.zeros((p, D, 2)), "bias": jnp.zeros((p, 2))},
        "lstm": {"input_kernel": dyadic(k[0], (p, 2 + N * A, 4 * H)),
                 "recurrent_kernel": dyadic(k[1], (p, H, 4 * H)),
                 "bias": dyadic(k[2], (p, 4 * H))},
        "out": {"kernel": dyadic(k[3], (p, H, (N - 1) * A)),
                "bias": dyadic(k[4], (p, (N - 1) * A))}}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_lstm_step(params, carry, gates_x):
    """c' = σ(f)·c + σ(i)·tanh(g), h' = σ(o)·tanh(c') for P = 1, in float64."""
    c, h = (np.asarray(x, np.float64) for x in carry)
    gates = np.asarray(gates_x, np.float64) + h @ np.asarray(
        params["lstm"]["recurrent_kernel"][0], np.float64)
    i, f, g, o = np.split(gates, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return c, sigmoid(o) * np.tanh(c)


# --- initialisation ---------------------------------------------------------------------------


def test_init_shapes_and_keras_lstm_init():
    moa = ModelOfOtherAgents((32, 32), 128, num_agents=5, num_actions=9)
    params = moa.init(jax.random.split(jax.random.PRNGKey(0), 2), 1014)
    shapes = jax.tree.map(lambda x: x.shape, params)
    assert shapes == {
        "moa_0": {"kernel": (2, 1014, 32), "bias": (2, 32)},
        "moa_1": {"kernel": (2, 32, 32), "bias": (2, 32)},
        # input: the tower's 32 outputs and 5 one-hot blocks of 9 actions
        "lstm": {"input_kernel": (2, 32 + 45, 512), "recurrent_kernel": (2, 128, 512),
                 "bias": (2, 512)},
        "out": {"kernel": (2, 128, 4 * 9), "bias": (2, 36)}}
    # the tower has normalised columns of norm 1, the biases are 0 except the forget gate's 1
    np.testing.assert_allclose(np.linalg.norm(params["moa_1"]["kernel"], axis=1), 1.0,
                               rtol=1e-5)
    bias = np.asarray(params["lstm"]["bias"])
    assert np.all(bias[:, 128:256] == 1.0) and np.all(bias[:, :128] == 0.0)
    assert np.all(bias[:, 256:] == 0.0)
    # the recurrent kernel [128, 512] is orthogonal: orthonormal rows
    w = np.asarray(params["lstm"]["recurrent_kernel"][0])
    np.testing.assert_allclose(w @ w.T, np.eye(128), atol=1e-5)
    # the two parameter sets are independent draws
    assert not np.allclose(params["out"]["kernel"][0], params["out"]["kernel"][1])


def test_social_influence_params_are_the_moa_params():
    """SI's parameters are the MOA's, same keys, same draws (tests index them by name)."""

    policy = SimpleNamespace(cfg=SimpleNamespace(conv_kernel=3, conv_filters=2,
                                                 hidden_init_scale=0.5))
    env = SimpleNamespace(observation_space=SimpleNamespace(
        spaces={"rgb": SimpleNamespace(shape=(7, 6, 3))}))
    si = SocialInfluence(MotiveConfig(name="si", moa_lstm_size=H, moa_hidden_sizes=(2,)))
    si.num_agents, si.num_actions = N, A
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    got = si.init_params(keys, env, policy)
    # conv 3×3 valid with 2 filters on 7×6 → 5·4·2 = 40 features
    want = MOA.init(keys, 40, tower_init_scale=0.5)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)


def test_own_first_order():
    np.testing.assert_array_equal(own_first_order(3), [[0, 1, 2], [1, 0, 2], [2, 0, 1]])


# --- one step ---------------------------------------------------------------------------------


def test_gates_are_the_one_hot_rows_of_the_input_kernel():
    params = hand_params()
    acts = jnp.array([[[2, 0, 1]]])  # [P = 1, M = 1, N]: own action 2, others 0 and 1
    gx = MOA.gates(params, jnp.ones((1, 1, D)), acts)
    w, b = np.asarray(params["lstm"]["input_kernel"][0]), np.asarray(params["lstm"]["bias"][0])
    # rows after the 2 tower outputs: own block 2..4, then the others' blocks 5..7, 8..10
    want = w[2 + 2] + w[2 + 3 + 0] + w[2 + 6 + 1] + b
    np.testing.assert_array_equal(gx[0, 0], want)
    np.testing.assert_array_equal(MOA.own_action_rows(params)[0], w[2:2 + A])


def test_counterfactual_step_for_every_own_action_is_the_step_with_that_action():
    """Swapping the own-action rows of the input projection gives, for each a', exactly the
    ordinary step with the own action set to a' (the others' actions kept); for a' = a_t it
    is the ordinary step itself."""
    params = hand_params()
    k = jax.random.split(jax.random.PRNGKey(1), 2)
    b = 4
    carry = (dyadic(k[0], (1, b, H)), dyadic(k[1], (1, b, H)))
    acts = jnp.array([[[0, 1, 2], [1, 1, 1], [2, 0, 0], [2, 2, 1]]])  # [1, B, N]
    start = jnp.array([[False, True, False, False]])
    features = jnp.ones((1, b, D))
    h_cf = MOA.counterfactual_step(params, carry, MOA.gates(params, features, acts), acts[..., 0],
                                   start)
    assert h_cf.shape == (1, b, A, H)
    for a in range(A):
        with_a = acts.at[..., 0].set(a)
        _, h = MOA.step(params, carry, MOA.gates(params, features, with_a), start)
        np.testing.assert_array_equal(h_cf[:, :, a], h)
    # and the actions matter: different own actions give different outputs
    assert not np.allclose(h_cf[:, :, 0], h_cf[:, :, 1])


def test_counterfactual_step_for_the_taken_action_with_random_init():
    """With the random init (non-dyadic gates) the taken action's entry equals the ordinary
    step up to the rounding of g − r + r."""
    moa = ModelOfOtherAgents((8,), 8, num_agents=N, num_actions=A)
    params = moa.init(jax.random.split(jax.random.PRNGKey(2), 2), D)
    k = jax.random.split(jax.random.PRNGKey(3), 4)
    carry = tuple(jax.random.normal(key, (2, 5, 8)) for key in k[:2])
    acts = jax.random.randint(k[2], (2, 5, N), 0, A)
    gx = moa.gates(params, jax.random.normal(k[3], (2, 5, D)), acts)
    start = jnp.zeros((2, 5), bool)
    h_cf = moa.counterfactual_step(params, carry, gx, acts[..., 0], start)
    _, h = moa.step(params, carry, gx, start)
    taken = jnp.take_along_axis(h_cf, acts[..., 0, None, None], axis=2)[:, :, 0]
    np.testing.assert_allclose(taken, h, atol=1e-6)


def test_step_is_the_lstm_by_hand_and_hidden_is_its_output():
    params = hand_params()
    carry = (jnp.array([[[0.5, -0.25]]]), jnp.array([[[0.125, 1.0]]]))
    gx = MOA.gates(params, jnp.zeros((1, 1, D)), jnp.array([[[1, 0, 2]]]))
    new, h = MOA.step(params, carry, gx, jnp.array([[False]]))
    c_want, h_want = numpy_lstm_step(params, (carry[0][0], carry[1][0]), gx[0])
    np.testing.assert_allclose(new[0][0], c_want, rtol=1e-6)
    np.testing.assert_allclose(h[0], h_want, rtol=1e-6)
    np.testing.assert_array_equal(MOA.hidden(new), h)


def test_step_resets_the_state_where_an_episode_starts():
    params = hand_params()
    ones = (jnp.ones((1, 2, H)), jnp.ones((1, 2, H)))
    zeros = MOA.initial_carry(1, 2)
    assert zeros[0].shape == (1, 2, H) and not np.any(np.asarray(zeros))
    gx = MOA.gates(params, jnp.zeros((1, 2, D)), jnp.array([[[0, 1, 2], [0, 1, 2]]]))
    start = jnp.array([[True, False]])
    new, h = MOA.step(params, ones, gx, start)
    _, h_from_zero = MOA.step(params, zeros, gx, jnp.zeros((1, 2), bool))
    _, h_from_ones = MOA.step(params, ones, gx, jnp.zeros((1, 2), bool))
    np.testing.assert_array_equal(h[0, 0], h_from_zero[0, 0])  # reset: as from zero
    np.testing.assert_array_equal(h[0, 1], h_from_ones[0, 1])  # carried
    assert not np.allclose(h_from_zero[0, 1], h_from_ones[0, 1])


def test_predict_orders_the_others_logits():
    params = hand_params()
    h = jnp.zeros((1, 2, 5, H))  # any leading shape after P
    logits = MOA.predict(params, h)
    assert logits.shape == (1, 2, 5, N - 1, A)
    # zero input: the bias, other j's logits in row j
    bias = np.asarray(params["out"]["bias"][0]).reshape(N - 1, A)
    np.testing.assert_array_equal(logits[0, 1, 3], bias)
    h = jnp.array([[[1.0, 0.0]]])
    want = np.asarray(params["out"]["kernel"][0, 0] + params["out"]["bias"][0]).reshape(N - 1, A)
    np.testing.assert_array_equal(MOA.predict(params, h)[0, 0], want)


# --- sequences --------------------------------------------------------------------------------


def test_unroll_resets_at_episode_starts_and_returns_the_states_carried_in():
    params = hand_params()
    t, b = 5, 2
    acts = jax.random.randint(jax.random.PRNGKey(4), (t, 1, b, N), 0, A)
    gates = jax.vmap(lambda a: MOA.gates(params, jnp.zeros((1, b, D)), a))(acts)  # [T, 1, B, 4H]
    carry = (jnp.full((1, b, H), 0.5), jnp.full((1, b, H), -0.5))
    # row 0: an episode starts at step 3; row 1: none
    starts = jnp.zeros((t, 1, b), bool).at[3, 0, 0].set(True)
    final, (states, outputs) = MOA.unroll(params, gates, carry, starts)
    assert outputs.shape == (t, 1, b, H) and states[0].shape == (t, 1, b, H)
    # stepping one step at a time gives the same states and outputs
    c = carry
    for s in range(t):
        c_in = jax.tree.map(lambda x, s=s: jnp.where(starts[s][..., None], 0.0, x), c)
        # (equal up to rounding: XLA fuses the scan's step differently from a lone step)
        np.testing.assert_allclose(states[0][s], c_in[0], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(states[1][s], c_in[1], rtol=1e-6, atol=1e-7)
        c, h = MOA.step(params, c, gates[s], starts[s])
        np.testing.assert_allclose(outputs[s], h, rtol=1e-6, atol=1e-7)
    # the state carried into the start step is zero; the hidden carried into step s + 1 is
    # the output of step s (what SCM / EMuReL read as u_{t−1}); the final carry the last one
    assert not np.any(np.asarray(states[0][3, 0, 0])) and not np.any(
        np.asarray(MOA.hidden(states)[3, 0, 0]))
    np.testing.assert_array_equal(MOA.hidden(states)[1:, 0, 1], outputs[:-1, 0, 1])
    np.testing.assert_array_equal(MOA.hidden(states)[[1, 2, 4], 0, 0],
                                  outputs[[0, 1, 3], 0, 0])
    np.testing.assert_array_equal(MOA.hidden(final), outputs[-1])
    # after the reset, row 0 continues as an unroll of steps 3… from the zero state
    _, (_, fresh) = MOA.unroll(params, gates[3:], MOA.initial_carry(1, b),
                               jnp.zeros((t - 3, 1, b), bool))
    np.testing.assert_allclose(outputs[3:, 0, 0], fresh[:, 0, 0], rtol=1e-6, atol=1e-7)


# --- training targets and loss ----------------------------------------------------------------


def test_next_action_targets_shift_by_one_step():
    # T = 3, P = B = 1, N = 3: own-first actions per step, visibility of the two others
    own_first = jnp.array([[0, 1, 2], [1, 2, 0], [2, 0, 1]])[:, None, None]
    visible = jnp.array([[1, 0], [0, 1], [1, 1]])[:, None, None]
    valid = jnp.array([True, False, True])[:, None, None]  # step 1 ends an episode
    others, weights = next_action_targets(own_first, visible, valid)
    # step t's targets are the others' actions at t + 1; the last step has none (0)
    np.testing.assert_array_equal(others[:, 0, 0], [[2, 0], [0, 1], [0, 0]])
    # visibility at t + 1, zeroed at the episode's last step and at the rollout's last
    np.testing.assert_array_equal(weights[:, 0, 0], [[0, 1], [0, 0], [0, 0]])
    _, weights = next_action_targets(own_first, visible, valid, only_when_visible=False)
    np.testing.assert_array_equal(weights[:, 0, 0], [[1, 1], [0, 0], [0, 0]])


def test_prediction_accuracy_counts_weighted_hits():
    predicted = jnp.array([[[[1, 2]]], [[[0, 0]]]])  # [T = 2, P = 1, B = 1, N − 1 = 2]
    targets = jnp.array([[[[1, 0]]], [[[0, 1]]]])
    weights = jnp.array([[[[1, 1]]], [[[1, 0]]]])
    # 3 weighted entries: hit, miss, hit → 2/3
    np.testing.assert_allclose(prediction_accuracy(predicted, targets, weights), [2 / 3])
    np.testing.assert_array_equal(prediction_accuracy(predicted, targets, 0 * weights), [0.0])


def loss_minibatch():
    """N = 3 (two others), |A| = 3, P = 1 agent, B = 2 sequences of L = 3 steps; sequence
    1's last step is padding. With zero kernels the MOA predicts its output bias at every
    step: other 0 logits (0, 0, 0) → uniform, CE = ln 3 whatever the action; other 1 logits
    (ln 2, 0, 0) → (1/2, 1/4, 1/4), CE = ln 2 for action 0 and ln 4 otherwise."""
    params = {
        "moa_0": {"kernel": jnp.zeros((1, D, 2)), "bias": jnp.zeros((1, 2))},
        "lstm": {"input_kernel": jnp.zeros((1, 2 + 3 * 3, 4 * H)),
                 "recurrent_kernel": jnp.zeros((1, H, 4 * H)), "bias": jnp.zeros((1, 4 * H))},
        "out": {"kernel": jnp.zeros((1, H, 6)),
                "bias": jnp.array([[0.0, 0.0, 0.0, math.log(2.0), 0.0, 0.0]])}}
    mask = jnp.array([[[True, True, True], [True, True, False]]])
    next_others = jnp.array([[[[0, 0], [1, 1], [2, 0]], [[0, 2], [1, 0], [0, 1]]]])
    next_visible = jnp.array([[[[1, 1], [0, 1], [1, 0]], [[1, 0], [0, 1], [1, 1]]]])
    mb = {"own_first_actions": jnp.zeros((1, 2, 3, 3), jnp.int32),
          "initial_carry": (jnp.zeros((1, 2, H)), jnp.zeros((1, 2, H))),
          "next_others": next_others, "next_visible": next_visible}
    # Counted (visible, valid) entries: seq 0 t0: ln 3 + ln 2; t1: other 1 action 1 → ln 4;
    # t2: ln 3; seq 1 t0: ln 3; t1: other 1 action 0 → ln 2; t2 is padding (not counted).
    # Sum 3 ln 3 + 4 ln 2 over all entries = 5 valid steps × 2 others = 10 (the 6 visible
    # entries alone would give /6).
    expected = (3 * math.log(3.0) + 4 * math.log(2.0)) / 10
    return params, mb, mask, expected


def test_moa_loss_averages_over_all_valid_entries_by_hand():
    params, mb, mask, expected = loss_minibatch()
    features, starts = jnp.zeros((1, 6, D)), jnp.zeros((1, 2, 3), bool)
    loss = MOA.loss(params, features, mb["own_first_actions"], mb["initial_carry"], starts,
                    mb["next_others"], mb["next_visible"], mask)
    np.testing.assert_allclose(loss, [expected], rtol=1e-6)
    # the same from the logits
    logits = MOA.sequence_logits(params, features, mb["own_first_actions"],
                                 mb["initial_carry"], starts)
    assert logits.shape == (1, 2, 3, N - 1, A)
    np.testing.assert_allclose(
        cross_entropy_loss(logits, mb["next_others"], mb["next_visible"], mask), [expected],
        rtol=1e-6)
    # SI's loss is moa_loss_weight × the MOA's, with the per-agent term as a diagnostic
    si = SocialInfluence(MotiveConfig(name="si", moa_lstm_size=H, moa_hidden_sizes=(2,),
                                      moa_loss_weight=0.5))
    si.num_agents, si.num_actions = N, A
    total, terms = si.loss(params, mb, PolicyView(features=features, starts=starts, mask=mask))
    np.testing.assert_allclose(terms["moa_loss"], [expected], rtol=1e-6)
    np.testing.assert_allclose(total, 0.5 * expected, rtol=1e-6)


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match="positive"):
        ModelOfOtherAgents((0,), 4, 2, 3)
    with pytest.raises(ValueError, match="≥ 2 agents"):
        ModelOfOtherAgents((4,), 4, 1, 3)
