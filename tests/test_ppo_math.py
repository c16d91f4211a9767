"""The PPO learner's maths on hand-computed examples: GAE with truncation and termination,
the learning-rate schedule, LSTM state resets, the adaptive KL coefficient,
the sequence layout and bad configurations (specs.md §8.3)."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial import nets
from prosocial.envs.spaces import Box, Dict
from prosocial.layout import to_sequences
from prosocial.learners.ppo import PPO, PPOConfig, gae, learning_rate

# --- GAE -------------------------------------------------------------------------------------
#
# γ = 0.9, λ = 0.5 (γλ = 0.45), one env. Step 1 ends its episode by the time limit: its
# next value is the final observation's value 2.0 (what PPO puts there), and the trace is cut;
# step 3 ends by termination (no bootstrap); step 4 bootstraps from the last value 1.5.
#   r  = [1, 0, 2, 1, 0.5]      V  = [0.5, 1.0, 0.2, 0.4, 0.8]
#   V' = [1.0, 2.0, 0.4, 0.8, 1.5]
#   δ  = [1 + 0.9·1.0 − 0.5, 0 + 0.9·2.0 − 1.0, 2 + 0.9·0.4 − 0.2, 1 − 0.4, 0.5 + 0.9·1.5 − 0.8]
#      = [1.4, 0.8, 2.16, 0.6, 1.05]
#   Â4 = 1.05, Â3 = 0.6 (cut), Â2 = 2.16 + 0.45·0.6 = 2.43, Â1 = 0.8 (cut),
#   Â0 = 1.4 + 0.45·0.8 = 1.76;  R = Â + V = [2.26, 1.8, 2.63, 1.0, 1.85]

REWARDS = [1.0, 0.0, 2.0, 1.0, 0.5]
VALUES = [0.5, 1.0, 0.2, 0.4, 0.8]
TERMINATED = [False, False, False, True, False]
TRUNCATED = [False, True, False, False, False]
NEXT_VALUES = [1.0, 2.0, 0.4, 0.8, 1.5]  # V(o_{t+1}), but 2.0 = V(final obs) at step 1
ADV = [1.76, 0.8, 2.43, 0.6, 1.05]
RET = [2.26, 1.8, 2.63, 1.0, 1.85]


def _col(x, dtype=jnp.float32):
    return jnp.asarray(x, dtype)[:, None]


def test_gae_truncation_and_termination():
    term = _col(TERMINATED, bool)
    done = _col([a or b for a, b in zip(TERMINATED, TRUNCATED, strict=True)], bool)
    adv, ret = gae(_col(REWARDS), _col(VALUES), _col(NEXT_VALUES), term, done, 0.9, 0.5)
    np.testing.assert_allclose(adv[:, 0], ADV, atol=1e-5)
    np.testing.assert_allclose(ret[:, 0], RET, atol=1e-5)


@pytest.mark.parametrize("ref_terminal, expected", [
    (False, ADV),
    # RLlib's horizon (B-20): step 1 is terminal, δ1 = 0 − 1.0 = −1.0, Â0 = 1.4 + 0.45·(−1.0)
    (True, [0.95, -1.0, 2.43, 0.6, 1.05]),
])
def test_prepare_bootstraps_truncation_from_the_final_value(ref_terminal, expected):
    cfg = PPOConfig(seq_len=5, num_minibatches=1, gamma=0.9, gae_lambda=0.5,
                    normalize_advantages=False, ref_horizon_is_terminal=ref_terminal)
    col = lambda x, dtype=jnp.float32: jnp.asarray(x, dtype).reshape(5, 1, 1)  # noqa: E731
    batch = {"value": col(VALUES), "reward": col(REWARDS), "terminated": col(TERMINATED, bool),
             "truncated": col(TRUNCATED, bool), "final_value": col([0, 2.0, 0, 0, 0]),
             "bootstrap_value": jnp.full((1, 1), 1.5)}
    out = PPO(cfg).prepare(batch)
    np.testing.assert_allclose(out["advantages"][:, 0, 0], expected, atol=1e-5)
    np.testing.assert_allclose(out["returns"][:, 0, 0], np.add(expected, VALUES), atol=1e-5)


# --- learning rate ---------------------------------------------------------------------------


def test_learning_rate_constant_without_schedule():
    cfg = PPOConfig(lr=3e-4)
    assert float(learning_rate(cfg, 0)) == pytest.approx(3e-4, rel=1e-6)
    assert float(learning_rate(cfg, 10**7)) == pytest.approx(3e-4, rel=1e-6)


def test_learning_rate_two_knots_held_after_last():
    cfg = PPOConfig(lr_schedule=((0, 1e-3), (100, 1e-5)))
    got = learning_rate(cfg, jnp.array([0, 50, 100, 1000]))
    # halfway: (1e-3 + 1e-5)/2 = 5.05e-4
    np.testing.assert_allclose(got, [1e-3, 5.05e-4, 1e-5, 1e-5], rtol=1e-5)


def test_learning_rate_three_knots():
    cfg = PPOConfig(lr_schedule=((10, 1.0), (20, 0.5), (40, 0.1)))
    got = learning_rate(cfg, jnp.array([0, 10, 15, 20, 30, 40, 50]))
    # before the first knot: its value; 15: 1 − 0.5·0.5; 30: 0.5 − 0.4·0.5
    np.testing.assert_allclose(got, [1.0, 1.0, 0.75, 0.5, 0.3, 0.1, 0.1], rtol=1e-6)


# --- loss: the hand-computed cases are in tests/test_losses.py (PPO's loss lives in
# prosocial.learners.losses, shared with the A2C and ERMAS objectives).


# --- LSTM state reset ------------------------------------------------------------------------

LSTM = nets.NetConfig(hidden_sizes=(4,), lstm_size=3)


def _lstm_setup(batch=2, length=None):
    space = Dict({"obs": Box(-1.0, 1.0, (3,))})
    k_p, k_o, k_c, k_h = jax.random.split(jax.random.PRNGKey(7), 4)
    params = nets.init_stacked(LSTM, k_p, space, 2, (1,))
    shape = (1, batch) if length is None else (1, batch, length)
    obs = {"obs": jax.random.normal(k_o, shape + (3,))}
    carry = (jax.random.normal(k_c, (1, batch, 3)), jax.random.normal(k_h, (1, batch, 3)))
    return params, obs, carry


def test_step_start_equals_zero_carry():
    params, obs, carry = _lstm_setup()
    zero = nets.initial_carry(LSTM, (1, 2))
    start = jnp.asarray([[True, False]])
    logits, value, new = nets.step(LSTM, params, obs, carry, start)
    z_logits, z_value, z_new = nets.step(LSTM, params, obs, zero, jnp.zeros((1, 2), bool))
    c_logits, c_value, c_new = nets.step(LSTM, params, obs, carry, jnp.zeros((1, 2), bool))
    # element 0 started: as from a zero carry; element 1 did not: as from its own carry
    np.testing.assert_allclose(logits[:, 0], z_logits[:, 0], atol=1e-6)
    np.testing.assert_allclose(value[:, 0], z_value[:, 0], atol=1e-6)
    np.testing.assert_allclose(logits[:, 1], c_logits[:, 1], atol=1e-6)
    for a, z, c in zip(new, z_new, c_new, strict=True):
        np.testing.assert_allclose(a[:, 0], z[:, 0], atol=1e-6)
        np.testing.assert_allclose(a[:, 1], c[:, 1], atol=1e-6)
    # the reset matters: the carry changes the output
    assert float(jnp.abs(c_logits[:, 0] - z_logits[:, 0]).max()) > 1e-4


def test_unroll_equals_stepping_with_reset_mid_sequence():
    length = 5
    params, obs, carry0 = _lstm_setup(length=length)
    # element 0: an episode starts at t = 2; element 1: no start
    starts = jnp.asarray([[[False, False, True, False, False], [False] * length]])
    logits, values = nets.unroll(LSTM, params, obs, carry0, starts)
    assert logits.shape == (1, 2, length, 2) and values.shape == (1, 2, length)
    carry, no_start = carry0, jnp.zeros((1, 2), bool)
    for t in range(length):
        carry = jax.tree.map(lambda x, t=t: jnp.where(starts[:, :, t, None], 0.0, x), carry)
        lg, v, carry = nets.step(LSTM, params, {"obs": obs["obs"][:, :, t]}, carry, no_start)
        np.testing.assert_allclose(logits[:, :, t], lg, atol=1e-5, err_msg=f"t={t}")
        np.testing.assert_allclose(values[:, :, t], v, atol=1e-5, err_msg=f"t={t}")
    no_reset, _ = nets.unroll(LSTM, params, obs, carry0, jnp.zeros_like(starts))
    assert float(jnp.abs(no_reset[0, 0, 2:] - logits[0, 0, 2:]).max()) > 1e-4
    np.testing.assert_allclose(no_reset[0, 1], logits[0, 1], atol=1e-6)


# --- adaptive KL coefficient, sequence layout ------------------------------------------------


def test_adapt_kl():
    ppo = PPO(PPOConfig(kl_target=0.01))
    kl = jnp.asarray([0.03, 0.0201, 0.02, 0.01, 0.005, 0.0049, 0.0])
    got = ppo.after_update({"kl_coef": jnp.full((7,), 0.2)}, {"kl": kl})["kl_coef"]
    # > 2·target: ×1.5; < target/2: ×0.5; the bounds themselves keep it
    np.testing.assert_allclose(got, [0.3, 0.3, 0.2, 0.2, 0.2, 0.1, 0.1], rtol=1e-6)


def test_to_sequences_layout_and_padding():
    to_seq = partial(to_sequences, seq_len=2)  # P = 1 seed × 2 agents, 3 envs, 5 steps
    t, p, e = np.meshgrid(np.arange(5), np.arange(2), np.arange(3), indexing="ij")
    x = jnp.asarray(100 * t + 10 * p + e + 1, jnp.int32)  # [T=5, P=2, E=3]
    got = np.asarray(to_seq(x))
    # [P, chunks·E = 3·3, L = 2]: row c·E + e holds steps 2c, 2c + 1 of env e; t = 5 is padding
    expect0 = [[1, 101], [2, 102], [3, 103],
               [201, 301], [202, 302], [203, 303],
               [401, 0], [402, 0], [403, 0]]
    expect1 = [[11, 111], [12, 112], [13, 113],
               [211, 311], [212, 312], [213, 313],
               [411, 0], [412, 0], [413, 0]]
    np.testing.assert_array_equal(got, [expect0, expect1])
    # trailing feature axes ride along; bool padding is False (the mask)
    feats = jnp.stack([x, -x], axis=-1)
    got_f = np.asarray(to_seq(feats))
    assert got_f.shape == (2, 9, 2, 2)
    np.testing.assert_array_equal(got_f[1, 4], [[212, -212], [312, -312]])
    mask = np.asarray(to_seq(jnp.ones((5, 2, 3), bool)))
    assert mask.dtype == bool and mask[:, :6].all() and mask[:, 6:, 0].all()
    assert not mask[:, 6:, 1].any()


# --- bad configurations ----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": -1e-3}, "ppo.lr must be positive"),
    ({"seq_len": 0}, "ppo.seq_len must be a positive integer"),
    ({"gamma": 1.5}, r"ppo.gamma must be in \[0, 1\]"),
], ids=["negative_lr", "seq_len_0", "gamma_1.5"])
def test_ppo_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PPOConfig(**kwargs)


def test_batch_that_does_not_split_into_minibatches_is_rejected():
    cfg = PPOConfig(seq_len=20, num_minibatches=4)
    with pytest.raises(ValueError, match="3 × 7 = 21 sequences is not divisible by "
                                         "num_minibatches = 4"):
        PPO(cfg).check(3, 128)
    PPO(cfg).check(4, 128)  # 4 × 7 = 28 sequences: 4 minibatches of 7


def test_net_config_rejects_zero_lstm():
    with pytest.raises(ValueError, match="NetConfig.lstm_size must be a positive integer or None"):
        nets.NetConfig(lstm_size=0)
