"""The PPO learner's maths on hand-computed examples: GAE with truncation and termination,
the learning-rate schedule, the loss terms, LSTM state resets, the adaptive KL coefficient,
the sequence layout and bad configurations (specs.md §8.3)."""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial import nets
from prosocial.envs.spaces import Box, Dict
from prosocial.layout import to_sequences
from prosocial.learners.ppo import PPO, PPOConfig, gae, learning_rate, ppo_loss

LN3 = 1.0986122886681098  # ln 3
LN055, LN045 = -0.5978370007556204, -0.7985076962177716  # ln 0.55, ln 0.45




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


# --- loss ------------------------------------------------------------------------------------
#
# π_old = (0.5, 0.5) everywhere. ε = 0.2, value clip c = 0.5. Agent 0, steps 0–2 valid:
#   s0: π = (0.75, 0.25), a = 0, ρ = 1.5, Â = 2:  min(3.0, 1.2·2) = 2.4    (clipped)
#   s1: π = (0.75, 0.25), a = 0, ρ = 1.5, Â = −1: min(−1.5, −1.2) = −1.5  (unclipped)
#   s2: π = (0.55, 0.45), a = 1, ρ = 0.9, Â = 1:  0.9                     (inside the clip)
#   policy = −(2.4 − 1.5 + 0.9)/3 = −0.6,  clip fraction 2/3
#   value: s0 V_old 1, V 2, R 3: max(1, (1.5 − 3)²) = 2.25         (clipped branch)
#          s1 V_old 0, V 2, R 0.2: max(3.24, (0.5 − 0.2)²) = 3.24  (unclipped branch)
#          s2 V_old 1, V 1.2, R 1: 0.04;   mean 5.53/3
#   H(0.75, 0.25) = 0.5623351446, H(0.55, 0.45) = 0.6881388137
#   KL(old‖new): 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25) = 0.1438410362,
#                0.5 ln(0.5/0.55) + 0.5 ln(0.5/0.45) = 0.0050251679
# Step 3 is padding (mask 0) with huge values that must not count. Agent 1 sees the same
# data with only step 0 valid.

H75, H55 = 0.5623351446188083, 0.6881388137135884
KL75, KL55 = 0.14384103622589042, 0.005025167926750729


def _loss_inputs():
    new_logits = [[LN3, 0.0], [LN3, 0.0], [LN055, LN045], [5.0, -5.0]]
    logits = jnp.asarray([[new_logits]] * 2)  # [P=2, B=1, L=4, A=2]

    def pbl(x, dtype=jnp.float32):
        return jnp.asarray([[x]] * 2, dtype)

    values = pbl([2.0, 2.0, 1.2, 100.0])
    batch = {"action": pbl([0, 0, 1, 1], jnp.int32), "logits": jnp.zeros((2, 1, 4, 2)),
             "value": pbl([1.0, 0.0, 1.0, 0.0]), "returns": pbl([3.0, 0.2, 1.0, -100.0]),
             "mask": jnp.asarray([[[True, True, True, False]], [[True, False, False, False]]])}
    advantages = pbl([2.0, -1.0, 1.0, 100.0])
    return logits, values, batch, advantages


def test_ppo_loss_terms():
    cfg = PPOConfig(clip_eps=0.2, vf_clip=0.5, vf_coef=0.5, ent_coef=0.01)
    logits, values, batch, adv = _loss_inputs()
    total, terms = ppo_loss(cfg, logits, values, batch, adv, jnp.asarray([0.2, 0.2]))
    expect = {
        "policy_loss": [-0.6, -2.4],
        "value_loss": [5.53 / 3, 2.25],
        "entropy": [(2 * H75 + H55) / 3, H75],
        "kl": [(2 * KL75 + KL55) / 3, KL75],
        "clip_fraction": [2 / 3, 1.0],
    }
    for name, value in expect.items():
        np.testing.assert_allclose(terms[name], value, atol=1e-5, err_msg=name)
    # per agent: policy + 0.2·kl + 0.5·value − 0.01·entropy
    #   agent 0: −0.6 + 0.2·0.0975690801 + 0.5·1.8433333333 − 0.01·0.6042697010 = 0.3351377857
    #   agent 1: −2.4 + 0.2·0.1438410362 + 0.5·2.25 − 0.01·0.5623351446 = −1.2518551442
    assert float(total) == pytest.approx(0.3351377857 - 1.2518551442, abs=1e-5)


def test_ppo_loss_kl_coef_per_agent_and_no_value_clip():
    cfg = PPOConfig(clip_eps=0.2, vf_clip=math.inf, vf_coef=1.0, ent_coef=0.0)
    logits, values, batch, adv = _loss_inputs()
    total, terms = ppo_loss(cfg, logits, values, batch, adv, jnp.asarray([0.0, 1.0]))
    # without the value clip only (V − R)² counts: agent 0 (1 + 3.24 + 0.04)/3, agent 1 1
    np.testing.assert_allclose(terms["value_loss"], [4.28 / 3, 1.0], atol=1e-5)
    # agent 0: −0.6 + 4.28/3 = 0.8266667;  agent 1: −2.4 + 0.1438410 + 1 = −1.2561590
    assert float(total) == pytest.approx(0.8266667 - 1.2561590, abs=1e-5)


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
