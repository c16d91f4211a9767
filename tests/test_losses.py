"""The shared losses on hand-computed examples: the clipped surrogate, PPO's loss with one
advantage (today's numbers) and with ERMAS's two weighted advantages (specs.md §9.9.5), and
V-trace targets and advantages with termination and truncation (specs.md §8.4)."""

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from prosocial.learners.losses import (
    AdvantageTerm,
    clipped_surrogate,
    ppo_loss,
    vtrace_advantages,
)
from prosocial.learners.ppo_config import PPOConfig

LN3 = 1.0986122886681098  # ln 3
LN055, LN045 = -0.5978370007556204, -0.7985076962177716  # ln 0.55, ln 0.45
H75, H55 = 0.5623351446188083, 0.6881388137135884  # H(0.75, 0.25), H(0.55, 0.45)
KL75, KL55 = 0.14384103622589042, 0.005025167926750729  # KL((½, ½) ‖ ·)

JIT = pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])


def _maybe_jit(fn, jit):
    return jax.jit(fn) if jit else fn


# --- clipped surrogate -----------------------------------------------------------------------
#
# ε = 0.2:  ρ 1.5, Â 2: min(3.0, 1.2·2) = 2.4;  ρ 1.5, Â −1: min(−1.5, −1.2) = −1.5;
#           ρ 0.9, Â 1: 0.9 (inside);  ρ 0.5, Â −2: min(−1.0, 0.8·−2) = −1.6

def test_clipped_surrogate_per_element():
    got = clipped_surrogate(jnp.asarray([1.5, 1.5, 0.9, 0.5]), jnp.asarray([2.0, -1.0, 1.0, -2.0]),
                            0.2)
    np.testing.assert_allclose(got, [2.4, -1.5, 0.9, -1.6], atol=1e-6)


def test_clipped_surrogate_keeps_shape_and_stops_advantage_gradient():
    ratio = jnp.full((2, 3, 4), 1.1)
    adv = jnp.arange(24.0).reshape(2, 3, 4) - 12
    assert clipped_surrogate(ratio, adv, 0.2).shape == (2, 3, 4)
    g_ratio, g_adv = jax.grad(lambda r, a: clipped_surrogate(r, a, 0.2).sum(), (0, 1))(ratio, adv)
    np.testing.assert_allclose(g_ratio, adv, atol=1e-6)  # inside the clip: d(ρÂ)/dρ = Â
    np.testing.assert_array_equal(g_adv, 0.0)


# --- PPO loss, one advantage: today's numbers ------------------------------------------------


def _ppo_loss_today(cfg, logits, values, batch, advantages, kl_coef):
    """prosocial.learners.ppo.ppo_loss as it was before the move (commit daeeb1d), verbatim."""
    mask = batch["mask"].astype(jnp.float32)
    count = jnp.maximum(mask.sum(axis=(1, 2)), 1.0)

    def mean(x):
        return (x * mask).sum(axis=(1, 2)) / count

    new = distrax.Categorical(logits=logits)
    old = distrax.Categorical(logits=batch["logits"])
    logp = new.log_prob(batch["action"])
    ratio = jnp.exp(logp - old.log_prob(batch["action"]))
    surrogate = jnp.minimum(ratio * advantages,
                            jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * advantages)
    kl = old.kl_divergence(new)
    entropy = new.entropy()
    v_old, target = batch["value"], batch["returns"]
    v_clipped = v_old + jnp.clip(values - v_old, -cfg.vf_clip, cfg.vf_clip)
    vf = jnp.maximum(jnp.square(values - target), jnp.square(v_clipped - target))
    terms = {"policy_loss": -mean(surrogate), "value_loss": mean(vf), "entropy": mean(entropy),
             "kl": mean(kl), "clip_fraction": mean(jnp.abs(ratio - 1) > cfg.clip_eps)}
    total = (terms["policy_loss"] + kl_coef * terms["kl"] + cfg.vf_coef * terms["value_loss"]
             - cfg.ent_coef * terms["entropy"])
    return total.sum(), terms


_IMPLS = {"losses": ppo_loss, "today_inline": _ppo_loss_today}
IMPLS = pytest.mark.parametrize("impl", list(_IMPLS.values()), ids=list(_IMPLS))


def _random_ppo_inputs(seed, p=3, b=4, length=5, a=4):
    ks = jax.random.split(jax.random.PRNGKey(seed), 8)
    shape = (p, b, length)
    logits = jax.random.normal(ks[0], shape + (a,))
    values = jax.random.normal(ks[1], shape)
    batch = {"action": jax.random.randint(ks[2], shape, 0, a),
             "logits": logits + 0.3 * jax.random.normal(ks[3], shape + (a,)),
             "value": values + 0.5 * jax.random.normal(ks[4], shape),
             "returns": 2.0 * jax.random.normal(ks[5], shape),
             "mask": jax.random.uniform(ks[6], shape) < 0.8}
    adv = jax.random.normal(ks[7], shape)
    kl_coef = jnp.asarray([0.0, 0.2, 1.0])[:p]
    return logits, values, batch, adv, kl_coef


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ppo_loss_equals_todays_formula_on_random_inputs(seed):
    cfg = PPOConfig(clip_eps=0.2, vf_clip=0.3, vf_coef=0.5, ent_coef=0.01)
    logits, values, batch, adv, kl_coef = _random_ppo_inputs(seed)
    total, terms = ppo_loss(cfg, logits, values, batch, adv, kl_coef)
    ref_total, ref_terms = _ppo_loss_today(cfg, logits, values, batch, adv, kl_coef)
    np.testing.assert_allclose(total, ref_total, rtol=1e-6, atol=1e-6)
    assert terms.keys() == ref_terms.keys()
    for name in terms:
        np.testing.assert_allclose(terms[name], ref_terms[name], rtol=1e-6, atol=1e-6,
                                   err_msg=name)
    # the same gradients, and an explicit single AdvantageTerm is the same objective
    grads = jax.grad(lambda lg, v: ppo_loss(cfg, lg, v, batch, adv, kl_coef)[0], (0, 1))(
        logits, values)
    ref_grads = jax.grad(lambda lg, v: _ppo_loss_today(cfg, lg, v, batch, adv, kl_coef)[0],
                         (0, 1))(logits, values)
    for g, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
    as_term, _ = ppo_loss(cfg, logits, values, batch, [AdvantageTerm(1.0, adv, 0.2)], kl_coef)
    np.testing.assert_allclose(as_term, total, rtol=1e-6, atol=1e-6)


# The hand-computed cases of tests/test_ppo_math.py, for the moved function and today's.
# π_old = (0.5, 0.5) everywhere. ε = 0.2, value clip c = 0.5. Agent 0, steps 0–2 valid:
#   s0: π = (0.75, 0.25), a = 0, ρ = 1.5, Â = 2:  min(3.0, 1.2·2) = 2.4    (clipped)
#   s1: π = (0.75, 0.25), a = 0, ρ = 1.5, Â = −1: min(−1.5, −1.2) = −1.5  (unclipped)
#   s2: π = (0.55, 0.45), a = 1, ρ = 0.9, Â = 1:  0.9                     (inside the clip)
#   policy = −(2.4 − 1.5 + 0.9)/3 = −0.6,  clip fraction 2/3
#   value: s0 V_old 1, V 2, R 3: max(1, (1.5 − 3)²) = 2.25         (clipped branch)
#          s1 V_old 0, V 2, R 0.2: max(3.24, (0.5 − 0.2)²) = 3.24  (unclipped branch)
#          s2 V_old 1, V 1.2, R 1: 0.04;   mean 5.53/3
# Step 3 is padding (mask 0) with huge values that must not count. Agent 1 sees the same
# data with only step 0 valid.

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


@IMPLS
def test_ppo_loss_terms_hand_computed(impl):
    cfg = PPOConfig(clip_eps=0.2, vf_clip=0.5, vf_coef=0.5, ent_coef=0.01)
    logits, values, batch, adv = _loss_inputs()
    total, terms = impl(cfg, logits, values, batch, adv, jnp.asarray([0.2, 0.2]))
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


@IMPLS
def test_ppo_loss_kl_coef_per_agent_and_no_value_clip(impl):
    cfg = PPOConfig(clip_eps=0.2, vf_clip=math.inf, vf_coef=1.0, ent_coef=0.0)
    logits, values, batch, adv = _loss_inputs()
    total, terms = impl(cfg, logits, values, batch, adv, jnp.asarray([0.0, 1.0]))
    # without the value clip only (V − R)² counts: agent 0 (1 + 3.24 + 0.04)/3, agent 1 1
    np.testing.assert_allclose(terms["value_loss"], [4.28 / 3, 1.0], atol=1e-5)
    # agent 0: −0.6 + 4.28/3 = 0.8266667;  agent 1: −2.4 + 0.1438410 + 1 = −1.2561590
    assert float(total) == pytest.approx(0.8266667 - 1.2561590, abs=1e-5)


# --- PPO loss, two weighted advantages (ERMAS's WPPO, specs §9.9.5) --------------------------
#
# The inputs above; agent advantage Â_i = (2, −1, 1) with ε_i = 0.2, planner advantage
# Â_r = (1, 3, −2) with ε_r = 0.05; ρ = (1.5, 1.5, 0.9).
#   clip-surrogate(Â_i) = (2.4, −1.5, 0.9)                              (above)
#   clip-surrogate(Â_r): min(1.5, 1.05·1) = 1.05;  min(4.5, 1.05·3) = 3.15;
#                        ρ 0.9 → clip 0.95: min(−1.8, 0.95·−2) = −1.9
# λ = 3: weights 3/4 and −1/4 (not renormalised: they sum to ½):
#   objective = 0.75·(2.4, −1.5, 0.9) − 0.25·(1.05, 3.15, −1.9)
#             = (1.8 − 0.2625, −1.125 − 0.7875, 0.675 + 0.475) = (1.5375, −1.9125, 1.15)
#   agent 0 (steps 0–2): policy = −(1.5375 − 1.9125 + 1.15)/3 = −0.775/3;  agent 1 (step 0):
#   −1.5375. With λ per agent (3, 1), agent 1's weights are ½, −½: −(1.2 − 0.525) = −0.675.

PLANNER_ADV = [1.0, 3.0, -2.0, 100.0]


@pytest.mark.parametrize("weights, expect", [
    ((0.75, -0.25), [-0.775 / 3, -1.5375]),
    ((jnp.asarray([0.75, 0.5]), jnp.asarray([-0.25, -0.5])), [-0.775 / 3, -0.675]),
], ids=["shared_lambda", "lambda_per_agent"])
def test_ppo_loss_wppo_two_terms(weights, expect):
    cfg = PPOConfig(clip_eps=0.2, vf_clip=0.5, vf_coef=0.5, ent_coef=0.01)
    logits, values, batch, adv_i = _loss_inputs()
    adv_r = jnp.asarray([[PLANNER_ADV]] * 2)
    terms_in = [AdvantageTerm(weights[0], adv_i, 0.2), AdvantageTerm(weights[1], adv_r, 0.05)]
    kl_coef = jnp.asarray([0.2, 0.2])
    total, terms = jax.jit(ppo_loss, static_argnums=0)(cfg, logits, values, batch, terms_in,
                                                       kl_coef)
    np.testing.assert_allclose(terms["policy_loss"], expect, atol=1e-5)
    # the other terms are the single-advantage ones; the total moves by the policy change only
    one_total, one = ppo_loss(cfg, logits, values, batch, adv_i, kl_coef)
    for name in ("value_loss", "entropy", "kl", "clip_fraction"):
        np.testing.assert_allclose(terms[name], one[name], atol=1e-6, err_msg=name)
    assert float(total) == pytest.approx(
        float(one_total) + sum(expect) - float(one["policy_loss"].sum()), abs=1e-5)


def test_ppo_loss_rejects_a_list_of_arrays():
    cfg = PPOConfig()
    logits, values, batch, adv = _loss_inputs()
    with pytest.raises(TypeError, match="sequence of AdvantageTerm"):
        ppo_loss(cfg, logits, values, batch, [adv], jnp.zeros(2))


# --- V-trace ---------------------------------------------------------------------------------
#
# γ = 0.9, one trajectory of 4 steps, on-policy (ρ = 1), λ = 1 within episodes:
#   r = (1, 2, 0, 3),  V = (0.5, 1.0, 2.0, 1.5),  bootstrap after step 3: 2.0.
# Termination at step 1 (discount 0, trace cut; its next value 0 is unused):
#   G3 = 3 + 0.9·2.0 = 4.8,  G2 = 0 + 0.9·4.8 = 4.32,  G1 = 2,  G0 = 1 + 0.9·2 = 2.8
#   targets = (2.8, 2, 4.32, 4.8),  advantages G − V = (2.3, 1.0, 2.32, 3.3)
# Truncation at step 1 with final-observation value 4.0 (discount 0.9, trace cut):
#   G1 = 2 + 0.9·4.0 = 5.6,  G0 = 1 + 0.9·5.6 = 6.04 (steps 2, 3 as before)
#   targets = (6.04, 5.6, 4.32, 4.8),  advantages = (5.54, 4.6, 2.32, 3.3)
# rlax alone bootstraps the truncated step's advantage from V(o_2) = 2.0, the next episode's
# first value: 2 + 0.9·2.0 − 1.0 = 2.8; vtrace_advantages corrects it to 4.6.

G = 0.9
V4 = [0.5, 1.0, 2.0, 1.5]
R4 = [1.0, 2.0, 0.0, 3.0]
CASES = {
    "terminated": dict(next_values=[1.0, 0.0, 1.5, 2.0], discounts=[G, 0.0, G, G],
                       targets=[2.8, 2.0, 4.32, 4.8], adv=[2.3, 1.0, 2.32, 3.3]),
    "truncated": dict(next_values=[1.0, 4.0, 1.5, 2.0], discounts=[G, G, G, G],
                      targets=[6.04, 5.6, 4.32, 4.8], adv=[5.54, 4.6, 2.32, 3.3]),
}
LAMBDAS4 = [1.0, 0.0, 1.0, 1.0]  # 1 − done


@JIT
@pytest.mark.parametrize("case", list(CASES))
def test_vtrace_hand_computed(case, jit):
    c = CASES[case]
    fn = _maybe_jit(vtrace_advantages, jit)
    targets, adv = fn(jnp.asarray(V4), jnp.asarray(c["next_values"]), jnp.asarray(R4),
                      jnp.asarray(c["discounts"]), jnp.ones(4), jnp.asarray(LAMBDAS4))
    np.testing.assert_allclose(targets, c["targets"], atol=1e-5)
    np.testing.assert_allclose(adv, c["adv"], atol=1e-5)


def test_vtrace_truncation_needs_the_correction_of_rlax_advantage():
    c = CASES["truncated"]
    raw = rlax.vtrace_td_error_and_advantage(
        jnp.asarray(V4), jnp.asarray(c["next_values"]), jnp.asarray(R4),
        jnp.asarray(c["discounts"]), jnp.ones(4), jnp.asarray(LAMBDAS4))
    np.testing.assert_allclose(raw.errors + jnp.asarray(V4), c["targets"], atol=1e-5)
    np.testing.assert_allclose(raw.pg_advantage, [5.54, 2.8, 2.32, 3.3], atol=1e-5)


@JIT
def test_vtrace_batch_axes(jit):
    """Trailing batch axes [T, 2, 3]: every column is its own trajectory."""
    cols = [CASES["terminated"], CASES["truncated"]]

    def stack(key):  # [T, 2, 3]: the two cases, three copies each
        return jnp.asarray(np.repeat(np.stack([c[key] for c in cols], 1)[:, :, None], 3, 2))

    tile = lambda x: jnp.broadcast_to(jnp.asarray(x)[:, None, None], (4, 2, 3))  # noqa: E731
    fn = _maybe_jit(vtrace_advantages, jit)
    targets, adv = fn(tile(V4), stack("next_values"), tile(R4), stack("discounts"),
                      jnp.ones((4, 2, 3)), tile(LAMBDAS4))
    assert targets.shape == adv.shape == (4, 2, 3)
    np.testing.assert_allclose(targets, stack("targets"), atol=1e-5)
    np.testing.assert_allclose(adv, stack("adv"), atol=1e-5)


def _random_trajectories(seed, t=9, batch=(3, 2)):
    rng = np.random.default_rng(seed)
    shape = (t,) + batch
    values = rng.normal(size=shape)
    rewards = rng.normal(size=shape)
    term = rng.random(shape) < 0.15
    trunc = ~term & (rng.random(shape) < 0.15)
    # V(o_{t+1}) inside an episode, the final observation's value where truncated, 0 where
    # terminated; a bootstrap after the last step
    next_values = np.concatenate([values[1:], rng.normal(size=(1,) + batch)])
    next_values = np.where(trunc, rng.normal(size=shape), next_values)
    next_values = np.where(term, 0.0, next_values)
    return values, next_values, rewards, term, trunc


def _returns_loop(next_values, rewards, term, trunc, gamma):
    """Discounted return to the episode end, or to the bootstrap/final value, step by step."""
    ret = np.zeros_like(rewards)
    for t in reversed(range(len(rewards))):
        done = term[t] | trunc[t]
        follow = next_values[t] if t == len(rewards) - 1 else np.where(
            done, next_values[t], ret[t + 1])
        ret[t] = rewards[t] + gamma * (1 - term[t]) * follow
    return ret


@JIT
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vtrace_on_policy_is_the_discounted_return(seed, jit):
    values, next_values, rewards, term, trunc = _random_trajectories(seed)
    gamma = 0.95
    ret = _returns_loop(next_values, rewards, term, trunc, gamma)
    fn = _maybe_jit(vtrace_advantages, jit)
    targets, adv = fn(jnp.asarray(values, jnp.float32), next_values, rewards,
                      gamma * (1.0 - term), jnp.ones(values.shape), 1.0 - (term | trunc))
    np.testing.assert_allclose(targets, ret, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(adv, ret - values, rtol=1e-5, atol=1e-5)


def _vtrace_loop(values, next_values, rewards, discounts, rhos, lambdas, clip_rho,
                 clip_pg_rho):
    """IMPALA's targets and advantages (Espeholt et al. 2018, eq. 1 and §4.2) step by step,
    with v_{s+1} replaced by V(o_{s+1}) in proportion 1 − λ_s where the trace is cut."""
    t_len = len(values)
    targets = np.zeros_like(values)
    adv = np.zeros_like(values)
    for t in reversed(range(t_len)):
        delta = min(clip_rho, rhos[t]) * (rewards[t] + discounts[t] * next_values[t]
                                          - values[t])
        later = 0.0 if t == t_len - 1 else targets[t + 1] - values[t + 1]
        targets[t] = values[t] + delta + discounts[t] * lambdas[t] * min(1.0, rhos[t]) * later
        follow = next_values[t] if t == t_len - 1 else (
            lambdas[t] * targets[t + 1] + (1 - lambdas[t]) * next_values[t])
        adv[t] = min(clip_pg_rho, rhos[t]) * (rewards[t] + discounts[t] * follow - values[t])
    return targets, adv


@JIT
@pytest.mark.parametrize("seed", [0, 1])
def test_vtrace_off_policy_matches_a_loop(seed, jit):
    values, next_values, rewards, term, trunc = _random_trajectories(seed, batch=(4,))
    rng = np.random.default_rng(100 + seed)
    rhos = np.exp(rng.normal(scale=0.7, size=values.shape))
    discounts = 0.9 * (1.0 - term)
    lambdas = 0.8 * (1.0 - (term | trunc))  # a trace λ of 0.8, cut at episode ends
    fn = _maybe_jit(vtrace_advantages, jit)
    targets, adv = fn(jnp.asarray(values, jnp.float32), next_values, rewards, discounts, rhos,
                      lambdas, 1.2, 0.8)
    for i in range(values.shape[1]):
        ref_t, ref_a = _vtrace_loop(values[:, i], next_values[:, i], rewards[:, i],
                                    discounts[:, i], rhos[:, i], lambdas[:, i], 1.2, 0.8)
        np.testing.assert_allclose(targets[:, i], ref_t, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(adv[:, i], ref_a, rtol=1e-5, atol=1e-5)


def test_vtrace_outputs_carry_no_gradient():
    c = CASES["truncated"]

    def f(v):
        targets, adv = vtrace_advantages(v, jnp.asarray(c["next_values"]), jnp.asarray(R4),
                                         jnp.asarray(c["discounts"]), jnp.ones(4),
                                         jnp.asarray(LAMBDAS4))
        return targets.sum() + adv.sum()

    np.testing.assert_array_equal(jax.grad(f)(jnp.asarray(V4)), 0.0)
