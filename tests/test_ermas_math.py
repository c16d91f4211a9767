"""ERMAS's pure steps with hand-computed values (specs §9.9.2–9.9.5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial.ermas.dual import dual_step, per_step_regret, regret
from prosocial.ermas.meta import meta_scale, reptile_per_agent, reptile_shared
from prosocial.ermas.objective import standardise, wppo_loss, wppo_terms
from prosocial.learners.ppo_config import PPOConfig


def test_regret_and_per_step_regret():
    # Δ = J_new − J_old = [12 − 10, 3 − 5]; per step over T = 1000.
    d = regret(jnp.array([12.0, 3.0]), jnp.array([10.0, 5.0]))
    np.testing.assert_allclose(d, [2.0, -2.0])
    np.testing.assert_allclose(per_step_regret(d, 1000), [0.002, -0.002])


def test_dual_step_two_agents_with_clipping():
    # λ = [8, 0.5], Δ = [30, −10], ε = 5, α = 0.1:
    # agent 0: 8 + 0.1·(30 − 5) = 10.5; agent 1: 0.5 + 0.1·(−10 − 5) = −1 → clipped to 0.
    lam = dual_step(jnp.array([8.0, 0.5]), jnp.array([30.0, -10.0]), epsilon=5.0, alpha=0.1)
    np.testing.assert_allclose(lam, [10.5, 0.0])
    # Upper clip: 99 + 0.1·(100 − 5) = 108.5 → 100.
    np.testing.assert_allclose(dual_step(jnp.array([99.0]), jnp.array([100.0]), 5.0, 0.1),
                               [100.0])
    # Negative ε: zero regret still raises λ by α·|ε| (2 + 0.5·10 = 7).
    np.testing.assert_allclose(dual_step(jnp.array([2.0]), jnp.array([0.0]), -10.0, 0.5), [7.0])
    # freeze_lambda keeps λ.
    np.testing.assert_allclose(dual_step(jnp.array([8.0, 0.5]), jnp.array([30.0, -10.0]),
                                         5.0, 0.1, freeze=True), [8.0, 0.5])


def test_meta_step_per_agent():
    # θ = [1, 2], θ' = [0.5, 2.5], λ = [1, 20], β = 0.2: b = [0.2, min(4, 2) = 2];
    # θ_0 = 1 + 0.2·(1 − 0.5) = 1.1; θ_1 = 2 + 2·(2 − 2.5) = 1.0.
    np.testing.assert_allclose(meta_scale(jnp.array([1.0, 20.0]), 0.2), [0.2, 2.0])
    theta = {"w": jnp.array([[1.0], [2.0]])}
    dev = {"w": jnp.array([[0.5], [2.5]])}
    out = reptile_per_agent(theta, dev, jnp.array([1.0, 20.0]), beta=0.2)
    np.testing.assert_allclose(out["w"][:, 0], [1.1, 1.0])


def test_meta_step_shared_is_sequential():
    # θ = 1, θ'_0 = 0.5, θ'_1 = 2, λ = [1, 5], β = 0.2: b = [0.2, 1.0].
    # i = 0: 1 + 0.2·(1 − 0.5) = 1.1; i = 1: 1.1 + 1.0·(1.1 − 2) = 0.2
    # (the other order would give 0 then −0.1).
    out = reptile_shared({"w": jnp.array(1.0)}, {"w": jnp.array([0.5, 2.0])},
                         jnp.array([1.0, 5.0]), beta=0.2)
    np.testing.assert_allclose(out["w"], 0.2, rtol=1e-6)


def _two_step_batch():
    # Old policy uniform over 2 actions. Step 0: action 0, new π = (0.6, 0.4) → ρ = 1.2;
    # step 1: action 1, new π = (0.3, 0.7) → ρ = 1.4.
    logits = jnp.log(jnp.array([[[[0.6, 0.4], [0.3, 0.7]]]]))
    batch = {"action": jnp.array([[[0, 1]]]), "logits": jnp.zeros((1, 1, 2, 2)),
             "value": jnp.zeros((1, 1, 2)), "returns": jnp.zeros((1, 1, 2)),
             "mask": jnp.ones((1, 1, 2), bool),
             "advantages": jnp.array([[[2.0, -1.0]]]),
             "planner_advantages": jnp.array([[[1.0, -2.0]]])}
    return logits, batch


@pytest.mark.parametrize("normalised,expected", [
    # λ = 3, ε_i = 0.3, ε_r = 0.1. S(ρ, Â, ε) = min(ρÂ, clip(ρ, 1 ± ε)Â):
    # step 0: S(1.2, 2, .3) = 2.4, S(1.2, 1, .1) = min(1.2, 1.1) = 1.1;
    # step 1: S(1.4, −1, .3) = min(−1.4, −1.3) = −1.4, S(1.4, −2, .1) = min(−2.8, −2.2) = −2.8.
    # normalised (w = 3/4, −1/4): 0.75·2.4 − 0.25·1.1 = 1.525; −1.05 + 0.7 = −0.35;
    #   policy loss = −(1.525 − 0.35)/2 = −0.5875.
    # paper's form (w = 3, −1): 7.2 − 1.1 = 6.1; −4.2 + 2.8 = −1.4; loss = −2.35.
    (True, -0.5875), (False, -2.35)])
def test_wppo_loss_two_clipped_terms(normalised, expected):
    cfg = PPOConfig(clip_eps=0.3, vf_coef=0.0, ent_coef=0.0, kl_coef=0.0)
    logits, batch = _two_step_batch()
    total, terms = wppo_loss(cfg, logits, jnp.zeros((1, 1, 2)), batch, jnp.array([3.0]),
                             jnp.zeros(1), clip_planner=0.1, normalised=normalised)
    np.testing.assert_allclose(terms["policy_loss"], [expected], rtol=1e-5)
    np.testing.assert_allclose(total, expected, rtol=1e-5)


def test_wppo_weights_per_sample():
    # λ per sample [P, B, L]: λ = 0 gives the pure adversary −S(Â_r), λ → large the agent's own.
    lam = jnp.array([[[0.0, 1.0]]])
    own, planner = wppo_terms(lam, jnp.ones((1, 1, 2)), jnp.ones((1, 1, 2)), 0.3, 0.3)
    np.testing.assert_allclose(own.weight, [[[0.0, 0.5]]])
    np.testing.assert_allclose(planner.weight, [[[-1.0, -0.5]]])


def test_standardise():
    x = jnp.array([[1.0, 3.0], [5.0, 7.0]])
    # per column: mean 3 and 5, std 2 → ±1.
    np.testing.assert_allclose(standardise(x, axis=0), [[-1, -1], [1, 1]], atol=1e-6)


def test_separate_mlp_policy_values():
    from prosocial.envs.spaces import Box, Dict
    from prosocial.ermas.policy import SeparateMLP

    pol = SeparateMLP(Dict({"obs": Box(0.0, 1.0, (2,), "float32")}), num_actions=2, hidden=2)
    params = pol.init(jax.random.split(jax.random.PRNGKey(0), 1))
    eye = jnp.eye(2)[None]
    # π: hidden relu([1, −2]·I + [0, 1]) = relu([1, −1]) = [1, 0]; logits [1, 0]·W + b.
    params = {"pi_hidden": {"kernel": eye, "bias": jnp.array([[0.0, 1.0]])},
              "pi_out": {"kernel": jnp.array([[[2.0, 3.0], [5.0, 7.0]]]),
                         "bias": jnp.array([[0.5, 0.0]])},
              "vf_hidden": {"kernel": -eye, "bias": jnp.zeros((1, 2))},
              "vf_out": {"kernel": jnp.array([[[1.0], [10.0]]]), "bias": jnp.array([[0.25]])}}
    obs = {"obs": jnp.array([[[1.0, -2.0]]])}  # [P=1, B=1, 2]
    out, carry = pol.step(params, obs, (), jnp.zeros((1, 1), bool))
    np.testing.assert_allclose(out["logits"], [[[2.5, 3.0]]])
    # value: relu([−1, 2]) = [0, 2] → 0·1 + 2·10 + 0.25 = 20.25
    np.testing.assert_allclose(out["value"], [[20.25]])
    logits, values = pol.unroll(params, {"obs": obs["obs"][:, :, None]}, (),
                                jnp.zeros((1, 1, 1), bool))
    np.testing.assert_allclose(logits[:, :, 0], out["logits"])
    np.testing.assert_allclose(values[:, :, 0], out["value"])
