"""The A2C learner's maths on hand-computed examples (specs.md §8.4): the summed losses on
V-trace targets with termination, truncation, padding and off-policy data, the reductions,
the optimiser and the configuration's validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial.learners.a2c_config import A2CConfig
from prosocial.learners.losses import a2c_loss
from prosocial.learners.ppo_config import learning_rate

LN3 = 1.0986122886681098  # ln 3
JIT = pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])

# --- loss ------------------------------------------------------------------------------------
#
# γ = 0.9, one sequence of 4 steps, on-policy (μ = π), vf_coef 0.1, ent_coef 0.01.
#   π = (0.75, 0.25), (½, ½), (0.75, 0.25), (½, ½);  a = 0, 1, 1, 0
#   log π(a) = ln 0.75, ln ½, ln 0.25, ln ½ = −0.2876821, −0.6931472, −1.3862944, −0.6931472
#   r = (1, 2, 0, 3),  V = (0.5, 1.0, 2.0, 1.5),  bootstrap after step 3: 2.0
# Termination at step 1:
#   returns v_s = (1 + 0.9·2, 2, 0.9·(3 + 0.9·2), 3 + 0.9·2) = (2.8, 2, 4.32, 4.8)
#   Â = v_s − V = (2.3, 1.0, 2.32, 3.3)
#   policy  = −(2.3·−0.2876821 + 1.0·−0.6931472 + 2.32·−1.3862944 + 3.3·−0.6931472)
#           = 0.6616688 + 0.6931472 + 3.2162029 + 2.2873857 = 6.8584046
#   value   = ½·(2.3² + 1² + 2.32² + 3.3²) = ½·(5.29 + 1 + 5.3824 + 10.89) = 11.2812
#   entropy = 2·H(0.75, 0.25) + 2·ln 2 = 2·0.5623351 + 2·0.6931472 = 2.5109647
#   loss    = 6.8584046 + 0.1·11.2812 − 0.01·2.5109647 = 7.9614149
# Set 1 sees the same data with step 3 padding (mask 0, junk value 100, reward 50) and its
# bootstrap after step 2 set to 4.8, so steps 0–2 keep the same targets:
#   policy 0.6616688 + 0.6931472 + 3.2162029 = 4.5710189, value ½·(5.29 + 1 + 5.3824) = 5.8362,
#   entropy 2·0.5623351 + 0.6931472 = 1.8178175, loss 4.5710189 + 0.58362 − 0.0181782
#   = 5.1364607

POLICY = [6.8584046, 4.5710189]
VALUE = [11.2812, 5.8362]
ENTROPY = [2.5109647, 1.8178175]
LOSS = [7.9614149, 5.1364607]
COUNT = [4, 3]


def _a2c_inputs(terminated=(False, True, False, False), truncated=(False,) * 4,
                final_value=(0.0,) * 4):
    step_logits = [[LN3, 0.0], [0.0, 0.0], [LN3, 0.0], [0.0, 0.0]]
    logits = jnp.asarray([[step_logits]] * 2)  # [P=2, B=1, L=4, A=2]

    def pbl(x, dtype=jnp.float32):
        return jnp.asarray([[x]] * 2, dtype)

    values = jnp.asarray([[[0.5, 1.0, 2.0, 1.5]], [[0.5, 1.0, 2.0, 100.0]]])
    batch = {"action": pbl([0, 1, 1, 0], jnp.int32), "logits": logits,
             "reward": jnp.asarray([[[1.0, 2.0, 0.0, 3.0]], [[1.0, 2.0, 0.0, 50.0]]]),
             "terminated": pbl(terminated, bool), "truncated": pbl(truncated, bool),
             "final_value": pbl(final_value), "bootstrap_value": jnp.asarray([[2.0], [4.8]]),
             "mask": jnp.asarray([[[True] * 4], [[True, True, True, False]]])}
    return logits, values, batch


def _maybe_jit(cfg, jit):
    fn = lambda lg, v, b: a2c_loss(cfg, lg, v, b)  # noqa: E731
    return jax.jit(fn) if jit else fn


@JIT
def test_a2c_loss_summed_terms(jit):
    cfg = A2CConfig(gamma=0.9, vf_coef=0.1, ent_coef=0.01)
    logits, values, batch = _a2c_inputs()
    total, terms = _maybe_jit(cfg, jit)(logits, values, batch)
    np.testing.assert_allclose(terms["loss"], LOSS, atol=1e-5)
    assert float(total) == pytest.approx(sum(LOSS), abs=1e-4)
    # the logged terms are means per valid step whatever the reduction
    np.testing.assert_allclose(terms["policy_loss"], np.divide(POLICY, COUNT), atol=1e-5)
    np.testing.assert_allclose(terms["value_loss"], np.divide(VALUE, COUNT), atol=1e-5)
    np.testing.assert_allclose(terms["entropy"], np.divide(ENTROPY, COUNT), atol=1e-5)
    # Â: (2.3 + 1 + 2.32 + 3.3)/4 = 2.23, (2.3 + 1 + 2.32)/3 = 1.8733333
    np.testing.assert_allclose(terms["advantage"], [2.23, 5.62 / 3], atol=1e-5)
    np.testing.assert_allclose(terms["rho"], [1.0, 1.0], atol=1e-6)


def test_a2c_loss_mean_reduction():
    cfg = A2CConfig(gamma=0.9, vf_coef=0.1, ent_coef=0.01, reduction="mean")
    total, terms = a2c_loss(cfg, *_a2c_inputs())
    # set 0: 7.9614149/4 = 1.9903537;  set 1: 5.1364607/3 = 1.7121536
    np.testing.assert_allclose(terms["loss"], [1.9903537, 1.7121536], atol=1e-5)
    assert float(total) == pytest.approx(1.9903537 + 1.7121536, abs=1e-5)


def _value_grad(cfg, logits, values, batch):
    return jax.grad(lambda v: a2c_loss(cfg, logits, v, batch)[0])(values)


# ∂loss/∂V = vf_coef·(V − v_s) on valid steps (the targets are constants), 0 on padding:
#   terminated at step 1: v_s = (2.8, 2, 4.32, 4.8)
#   truncated at step 1 with final value 4.0: v_s1 = 2 + 0.9·4.0 = 5.6,
#     v_s0 = 1 + 0.9·5.6 = 6.04; steps 2, 3 unchanged
#   truncated but ref_horizon_is_terminal: as the termination
@pytest.mark.parametrize("kind, ref_terminal, targets", [
    ("terminated", False, [2.8, 2.0, 4.32, 4.8]),
    ("truncated", False, [6.04, 5.6, 4.32, 4.8]),
    ("truncated", True, [2.8, 2.0, 4.32, 4.8]),
], ids=["terminated", "truncated", "truncated_ref_terminal"])
def test_a2c_value_targets(kind, ref_terminal, targets):
    cfg = A2CConfig(gamma=0.9, vf_coef=0.1, ref_horizon_is_terminal=ref_terminal)
    flags = (False, True, False, False)
    if kind == "terminated":
        inputs = _a2c_inputs()
    else:
        inputs = _a2c_inputs(terminated=(False,) * 4, truncated=flags,
                             final_value=(0.0, 4.0, 0.0, 0.0))
    grad = _value_grad(cfg, *inputs)
    v = np.asarray([0.5, 1.0, 2.0, 1.5])
    np.testing.assert_allclose(grad[0, 0], 0.1 * (v - targets), atol=1e-5)
    np.testing.assert_allclose(grad[1, 0], 0.1 * np.append(v[:3] - targets[:3], 0.0), atol=1e-5)


# Off-policy, 2 steps, no episode end, γ = 0.9, V = (1, 2), r = (1, 1), bootstrap 3:
#   π = (0.75, 0.25), a = 0, μ = (½, ½): ρ0 = 1.5 (clipped to 1 everywhere);
#   π = (½, ½), a = 0, μ = (0.75, 0.25): ρ1 = 2/3
#   e1 = ρ1·(1 + 0.9·3 − 2) = 1.7·2/3 = 1.1333333,  v_s1 = 3.1333333
#   e0 = 1·(1 + 0.9·2 − 1) + 0.9·1·1.1333333 = 1.8 + 1.02 = 2.82,  v_s0 = 3.82
#   Â0 = 1·(1 + 0.9·3.1333333 − 1) = 2.82,  Â1 = ρ1·(1 + 0.9·3 − 2) = 1.1333333
#   ∂loss/∂V = 0.1·(V − v_s) = (−0.282, −0.1133333);  mean ρ = (1.5 + 2/3)/2 = 1.0833333
def test_a2c_off_policy():
    cfg = A2CConfig(gamma=0.9, vf_coef=0.1)
    logits = jnp.asarray([[[[LN3, 0.0], [0.0, 0.0]]]])  # [1, 1, 2, 2]
    values = jnp.asarray([[[1.0, 2.0]]])
    batch = {"action": jnp.zeros((1, 1, 2), jnp.int32),
             "logits": jnp.asarray([[[[0.0, 0.0], [LN3, 0.0]]]]),
             "reward": jnp.ones((1, 1, 2)), "terminated": jnp.zeros((1, 1, 2), bool),
             "truncated": jnp.zeros((1, 1, 2), bool), "final_value": jnp.zeros((1, 1, 2)),
             "bootstrap_value": jnp.asarray([[3.0]]), "mask": jnp.ones((1, 1, 2), bool)}
    _, terms = a2c_loss(cfg, logits, values, batch)
    np.testing.assert_allclose(terms["rho"], [1.0833333], atol=1e-6)
    np.testing.assert_allclose(terms["advantage"], [(2.82 + 1.1333333) / 2], atol=1e-5)
    np.testing.assert_allclose(_value_grad(cfg, logits, values, batch)[0, 0],
                               [-0.282, -0.1133333], atol=1e-5)


def test_a2c_policy_gradient_is_minus_advantage_times_score():
    """∂loss/∂logits = −Σ Â·∂log π(a)/∂logits − c_H·∂H/∂logits: with c_H = 0 and ½/½ logits
    the score of action a is onehot(a) − π, so the gradient on step t is −Â_t·(onehot − ½)."""
    cfg = A2CConfig(gamma=0.9, vf_coef=0.1, ent_coef=0.0)
    logits, values, batch = _a2c_inputs()
    logits = jnp.zeros_like(logits)
    batch = dict(batch, logits=logits)
    grad = jax.grad(lambda lg: a2c_loss(cfg, lg, values, batch)[0])(logits)
    adv = np.asarray([2.3, 1.0, 2.32, 3.3])
    score = np.eye(2)[[0, 1, 1, 0]] - 0.5
    np.testing.assert_allclose(grad[0, 0], -adv[:, None] * score, atol=1e-5)
    np.testing.assert_allclose(grad[1, 0, 3], 0.0)  # padding


# --- optimiser and learning rate -------------------------------------------------------------


def test_optimizer_transform_rmsprop_clips_then_scales():
    cfg = A2CConfig(optimizer="rmsprop", max_grad_norm=1.0, rmsprop_decay=0.99, rmsprop_eps=0.1)
    tx = cfg.optimizer_transform()
    g = {"w": jnp.asarray([3.0, 4.0])}
    updates, _ = tx.update(g, tx.init(g))
    # clip to norm 1: (0.6, 0.8); ν = 0.01·(0.36, 0.64); u = g/√(ν + 0.1)
    #   0.6/√0.1036 = 1.8641093,  0.8/√0.1064 = 2.4525574
    np.testing.assert_allclose(updates["w"], [1.8641093, 2.4525574], rtol=1e-5)


def test_optimizer_transform_adam_default():
    cfg = A2CConfig()
    assert cfg.optimizer == "adam"
    tx = cfg.optimizer_transform()
    g = {"w": jnp.asarray([300.0, -4.0])}
    updates, _ = tx.update(g, tx.init(g))
    # Adam's first step: m̂/(√v̂ + ε) = g/|g| (up to ε and float32 bias corrections)
    np.testing.assert_allclose(updates["w"], [1.0, -1.0], rtol=1e-4)


def test_learning_rate_schedule_serves_a2c():
    cfg = A2CConfig(lr_schedule=((0, 1e-3), (100, 1e-5)))
    got = learning_rate(cfg, jnp.array([0, 50, 100, 1000]))
    np.testing.assert_allclose(got, [1e-3, 5.05e-4, 1e-5, 1e-5], rtol=1e-5)
    assert float(learning_rate(A2CConfig(), 10**7)) == pytest.approx(1e-4, rel=1e-6)


# --- bad configurations ----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"gamma": 1.5}, r"a2c.gamma must be in \[0, 1\]"),
    ({"lr": 0.0}, "a2c.lr must be positive"),
    ({"max_grad_norm": -1.0}, "a2c.max_grad_norm must be positive"),
    ({"clip_rho": 0.0}, "a2c.clip_rho must be positive"),
    ({"rmsprop_decay": 1.0}, r"a2c.rmsprop_decay must be in \[0, 1\)"),
    ({"vf_coef": -0.1}, "a2c.vf_coef must be a finite number ≥ 0"),
    ({"ent_coef": math.inf}, "a2c.ent_coef must be a finite number ≥ 0"),
    ({"optimizer": "sgd"}, "a2c.optimizer must be rmsprop or adam, got 'sgd'"),
    ({"reduction": "max"}, "a2c.reduction must be sum or mean, got 'max'"),
    ({"lr_schedule": ((10, 1e-3), (5, 1e-4))}, "a2c.lr_schedule steps must be"),
    ({"lr_schedule": ((0, 1e-3), (5, 0.0))}, "a2c.lr_schedule values must be positive"),
], ids=["gamma", "lr", "grad_norm", "clip_rho", "decay", "vf_coef", "ent_coef", "optimizer",
        "reduction", "schedule_order", "schedule_lr"])
def test_a2c_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        A2CConfig(**kwargs)


def test_a2c_config_defaults_follow_the_reference():
    cfg = A2CConfig(lr_schedule=[[0, 0.00126], [2e7, 0.000012]])
    assert (cfg.gamma, cfg.lr, cfg.vf_coef, cfg.max_grad_norm, cfg.reduction) == (
        0.99, 1e-4, 0.1, 40.0, "sum")
    assert cfg.lr_schedule == ((0.0, 0.00126), (2e7, 0.000012))  # normalised to float tuples
    hash(cfg)  # frozen and hashable: usable as a static jit argument
