"""ERMAS's trust-region deviations (specs §9.9.3, D-40; ``prosocial.ermas.trpo``): conjugate
gradients, Fisher-vector products, the TRPO step and its line search on problems small enough
to solve by hand, the KL early stop of PPO deviations, and the configuration's checks.

The tiny problem used throughout: one state with features x, two actions, a linear softmax
policy z = x·W (W ``[D, 2]``, starting at 0, so π_old = (½, ½)), a batch of two steps taking
actions 0 and 1 with advantages +1 and −1. Then

    L(W) = mean(π(a)/π_old(a)·Â) = (2p₀ − 2p₁)/2 = p₀ − p₁ = 2σ(z₀ − z₁) − 1,
    D(W) = KL((½, ½) ‖ (p₀, p₁)) = −½·log(4 p₀ p₁).
"""

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ermas_tiny import CFG

from prosocial.ermas.loop import Ermas, ErmasConfig
from prosocial.ermas.train import ermas_main
from prosocial.ermas.trpo import (
    CG_DAMPING,
    TRPO,
    KLStopPPO,
    conjugate_gradient,
    deviation_rule,
    fisher_vector_product,
    line_search,
    mean_kl,
    surrogate,
    trpo_step,
)
from prosocial.layout import Layout
from prosocial.learners.population import Population
from prosocial.learners.ppo import PPO
from prosocial.learners.ppo_config import PPOConfig
from prosocial.learners.runner import PopState


def test_conjugate_gradient_solves_2x2_spd_system():
    # A = [[4, 1], [1, 3]], b = (1, 2): det A = 11, A⁻¹ = [[3, −1], [−1, 4]]/11, so
    # x = (3 − 2, −1 + 8)/11 = (1/11, 7/11), reached in 2 iterations.
    a = jnp.array([[4.0, 1.0], [1.0, 3.0]])
    b = jnp.array([1.0, 2.0])
    x = conjugate_gradient(lambda v: a @ v, b, iters=2)
    np.testing.assert_allclose(x, [1 / 11, 7 / 11], rtol=1e-6)
    # One iteration is steepest descent: α = bᵀb / bᵀAb = 5 / (1·6 + 2·7) = 1/4.
    np.testing.assert_allclose(conjugate_gradient(lambda v: a @ v, b, iters=1), [0.25, 0.5],
                               rtol=1e-6)
    # A zero right-hand side (no gradient) gives no step.
    np.testing.assert_array_equal(conjugate_gradient(lambda v: a @ v, jnp.zeros(2)), 0.0)


@partial(jax.jit, static_argnames="damping")
def _fvp(x, old_w, v, damping=0.0):
    return fisher_vector_product(_linear_kl(x, old_w), old_w, v, damping)


def _linear_kl(x, old_w):
    """D(W) of a linear softmax policy on states x ``[M, D]`` against π_old = softmax(x·W_old)."""
    old = x @ old_w
    return lambda w: mean_kl(old, x @ w, jnp.ones(x.shape[0]))


def test_fisher_vector_product_of_linear_softmax_policy():
    # One state x = (1, 2), W = 0, p = (½, ½): F[(d, a), (d', a')] = x_d x_d' M[a, a'] with
    # M = diag(p) − ppᵀ = [[¼, −¼], [−¼, ¼]]. For v = e_(0,0):
    # (Fv)[d, a] = x_d · x_0 · M[a, 0] = x_d · (¼, −¼) → [[¼, −¼], [½, −½]].
    x = jnp.array([[1.0, 2.0]])
    w0 = jnp.zeros((2, 2))
    v = jnp.array([[1.0, 0.0], [0.0, 0.0]])
    fv = _fvp(x, w0, v)
    np.testing.assert_allclose(fv, [[0.25, -0.25], [0.5, -0.5]], atol=1e-6)
    # Damping adds c·v.
    fv_damped = _fvp(x, w0, v, damping=0.1)
    np.testing.assert_allclose(fv_damped, [[0.35, -0.25], [0.5, -0.5]], atol=1e-6)
    # Two states x₁ = (1, 0), x₂ = (0, 1); W = [[ln 3, 0], [0, 0]]: p₁ = (¾, ¼), p₂ = (½, ½).
    # F = ½ Σ_s (M_s ⊗ x_s x_sᵀ); for v = e_(0,0) only state 1 contributes:
    # (Fv)[0, ·] = ½ · M₁[·, 0] = ½ · (3/16, −3/16) = (0.09375, −0.09375), (Fv)[1, ·] = 0.
    x2 = jnp.eye(2)
    w = jnp.array([[np.log(3.0), 0.0], [0.0, 0.0]])
    fv2 = _fvp(x2, w, v)
    np.testing.assert_allclose(fv2, [[0.09375, -0.09375], [0.0, 0.0]], atol=1e-6)
    # Shifting every logit of a state by the same amount leaves the policy: F·1 = 0.
    np.testing.assert_allclose(_fvp(x2, w, jnp.ones((2, 2))),
                               0.0, atol=1e-6)


def _tiny_problem():
    """L and D of the module docstring's problem (x = (1), W ``[1, 2]``)."""
    x = jnp.ones((2, 1))
    old = jnp.zeros((2, 2))
    action, adv, mask = jnp.array([0, 1]), jnp.array([1.0, -1.0]), jnp.ones(2)

    def sur(w):
        return surrogate(old, x @ w, action, adv, mask)

    def kl(w):
        return mean_kl(old, x @ w, mask)

    return sur, kl


def test_trpo_step_respects_radius_and_improves_surrogate():
    # At W = 0: g = ∇L = (σ'·2, −σ'·2) = (½, −½); F = [[¼, −¼], [−¼, ¼]] has g as an
    # eigenvector with eigenvalue ½, so CG (no damping) gives x = (1, −1) and xᵀFx = 1.
    # Δ = sqrt(2δ/1)·x; δ = 0.01: Δ = (0.141421, −0.141421), z₀ − z₁ = 0.282843,
    # D = −½ log(4σ(0.2828)σ(−0.2828)) = 0.0099668 ≤ δ (accepted at once),
    # L = 2σ(0.282843) − 1 = 0.140486.
    sur, kl = _tiny_problem()
    w0 = jnp.zeros((1, 2))
    # One compiled program for every call (scale s and damping c are traced).
    step = jax.jit(lambda w, radius, s, c: trpo_step(sur, kl, w, radius, scale=s, damping=c))
    w1, info = step(w0, 0.01, 1.0, 0.0)
    np.testing.assert_allclose(w1, [[0.1414214, -0.1414214]], rtol=1e-5)
    assert bool(info["accepted"]) and float(info["fraction"]) == 1.0
    np.testing.assert_allclose(info["kl"], 0.0099668, rtol=1e-4)
    assert float(info["kl"]) <= 0.01
    np.testing.assert_allclose(info["improvement"], 0.140486, rtol=1e-4)
    np.testing.assert_allclose(kl(w1), info["kl"], rtol=1e-6)
    # With the default damping c = 0.01: x = g/(½ + c), xᵀ(F + cI)x = xᵀg = 1/(½ + c)·½ =
    # 0.980392, so Δ₀ = sqrt(0.02/0.980392)·0.980392 = 0.140028 (a slightly shorter step).
    w2, info2 = step(w0, 0.01, 1.0, CG_DAMPING)
    np.testing.assert_allclose(w2, [[0.140028, -0.140028]], rtol=1e-4)
    assert float(info2["kl"]) <= 0.01 and float(info2["improvement"]) > 0
    # A set whose scale is 0 keeps its parameters bit for bit.
    start = jnp.array([[0.3, -0.2]])
    w3, info3 = step(start, 0.01, 0.0, CG_DAMPING)
    np.testing.assert_array_equal(w3, start)
    assert not bool(info3["accepted"])


def test_line_search_rejects_steps_outside_radius():
    # Full step Δ = (3, −3): z₀ − z₁ = 6·b^j. D at differences 6, 3, 1.5 is 2.309, 0.855,
    # 0.258 — all above δ = 0.01, so with 3 trials nothing is accepted and W stays.
    sur, kl = _tiny_problem()
    w0 = jnp.zeros((1, 2))
    full = jnp.array([[3.0, -3.0]])
    search = jax.jit(partial(line_search, sur, kl), static_argnames="steps")
    w, info = search(w0, full, 0.01, steps=3)
    np.testing.assert_array_equal(w, w0)
    assert not bool(info["accepted"]) and float(info["fraction"]) == 0.0
    assert float(info["improvement"]) == 0.0 and float(info["kl"]) == 0.0
    # With 8 trials the first inside the radius is j = 5 (difference 0.1875:
    # D = 0.0043881; j = 4, difference 0.375, has D = 0.017476 > δ); L = 2σ(0.1875) − 1.
    w, info = search(w0, full, 0.01, steps=8)
    assert bool(info["accepted"])
    np.testing.assert_allclose(info["fraction"], 0.5 ** 5)
    np.testing.assert_allclose(w, [[0.09375, -0.09375]], rtol=1e-6)
    np.testing.assert_allclose(info["kl"], 0.0043881, rtol=1e-4)
    np.testing.assert_allclose(info["improvement"], 0.0934763, rtol=1e-4)
    # A small step that lowers the surrogate is rejected although inside the radius.
    w, info = search(w0, jnp.array([[-0.05, 0.05]]), 0.01, steps=3)
    np.testing.assert_array_equal(w, w0)
    assert not bool(info["accepted"])


class TinyLinear:
    """A feed-forward linear policy with the policy interface: obs ``{"x": [P, B, L, D]}``,
    logits x·W, value x·v."""

    def __init__(self, dim, num_actions):
        self.dim, self.num_actions = dim, num_actions

    def init(self, keys):
        p = keys.shape[0]
        return {"w": jnp.zeros((p, self.dim, self.num_actions)), "v": jnp.zeros((p, self.dim))}

    def initial_carry(self, batch_shape):
        return ()

    def unroll(self, params, obs, carry, starts, return_features=False):
        x = obs["x"]
        return (jnp.einsum("pbld,pda->pbla", x, params["w"]),
                jnp.einsum("pbld,pd->pbl", x, params["v"]))


def _tiny_population(rule, num_params=2):
    layout = Layout(num_seeds=1, num_agents=num_params, agents=tuple(range(num_params)))
    return Population("agents", layout, TinyLinear(1, 2), rule)


def _tiny_batch(p=2):
    """Four steps in one state (x = 1): actions 0, 0, 1, 1 with advantages 1, 1, −1, −1, taken
    by π_old = (½, ½); every set has the same batch ``[P, B = 4, L = 1]``."""
    shape = (p, 4, 1)
    return {"obs": {"x": jnp.ones(shape + (1,))}, "start": jnp.ones(shape, bool),
            "action": jnp.broadcast_to(jnp.array([0, 0, 1, 1])[None, :, None], shape),
            "logits": jnp.zeros(shape + (2,)), "value": jnp.zeros(shape),
            "mask": jnp.ones(shape, bool), "returns": jnp.ones(shape),
            "advantages": jnp.broadcast_to(jnp.array([1.0, 1, -1, -1])[None, :, None], shape),
            "motive": {}}


def _pop_state(rule, pop, lr_scale):
    params = pop.policy.init(jnp.zeros((pop.layout.num_params, 2)))
    opt_state, learner = rule.init_learner(params, pop.layout, None, 4)
    return PopState(params=params, opt_state=opt_state, learner=learner, motive_params=(),
                    motive_opt_state=(), motive_carry=(),
                    intrinsic_running=jnp.zeros((1, 4, 2)), lr_scale=jnp.asarray(lr_scale))


PPO_TINY = PPOConfig(num_epochs=1, num_minibatches=1, seq_len=1, lr=0.1, kl_coef=0.0)


def test_ppo_early_stop_freezes_agent_past_rho():
    # Adam's first step moves every weight by lr·scale against the gradient's sign: set 0
    # (scale 1) gets W = (0.1, −0.1), z₀ − z₁ = 0.2, KL from the start
    # −½ log(4σ(0.2)σ(−0.2)) = 0.0049917 > ρ = 1e-3, so it stops; set 1 (scale 0.01) moves
    # 100 times less (KL ≈ 5e-7) and keeps learning.
    rule = KLStopPPO(PPO_TINY, rho=1e-3)
    pop = _tiny_population(rule)
    update = rule.make_update(pop)
    ps = _pop_state(rule, pop, [1.0, 0.01])
    batch, carry0, lr = _tiny_batch(), ((), ()), jnp.float32(0.1)
    ps, metrics = update(ps, batch, carry0, jax.random.PRNGKey(0), lr)
    np.testing.assert_allclose(ps.params["w"][0, 0], [0.1, -0.1], rtol=1e-5)
    kl = np.asarray(ps.learner["kl_from_start"])
    np.testing.assert_allclose(kl[0], 0.0049917, rtol=1e-3)
    assert kl[1] < 1e-5
    np.testing.assert_array_equal(ps.lr_scale, np.float32([0.0, 0.01]))
    np.testing.assert_allclose(metrics["stopped"], [0.5])
    after_stop = jax.tree.map(np.asarray, ps.params)
    for _ in range(2):
        ps, _ = update(ps, batch, carry0, jax.random.PRNGKey(1), lr)
    for a, b in zip(jax.tree.leaves(after_stop), jax.tree.leaves(ps.params), strict=True):
        np.testing.assert_array_equal(np.asarray(b)[0], a[0])  # stopped: bit for bit
        assert not np.array_equal(np.asarray(b)[1], a[1])  # still learning
    np.testing.assert_array_equal(ps.lr_scale, np.float32([0.0, 0.01]))
    np.testing.assert_allclose(ps.learner["kl_from_start"][0], 0.0049917, rtol=1e-3)
    # A new deviation starts from the current parameters with zero KL.
    restarted = KLStopPPO.restart(ps.learner, ps.params)
    np.testing.assert_array_equal(restarted["start"]["w"], ps.params["w"])
    np.testing.assert_array_equal(restarted["kl_from_start"], 0.0)


def test_trpo_rule_steps_each_set_within_radius():
    # The rule on the tiny batch: the value fit moves only v (the policy's weights have zero
    # value gradient), then each set's TRPO step of radius 0.01 (the default damping's step
    # of the test above); set 1 has scale 0 and keeps its parameters bit for bit.
    rule = TRPO(PPO_TINY, radius=0.01)
    pop = _tiny_population(rule)
    ps = _pop_state(rule, pop, [1.0, 0.0])
    ps, metrics = rule.make_update(pop)(ps, _tiny_batch(), ((), ()), jax.random.PRNGKey(0),
                                        jnp.float32(0.1))
    np.testing.assert_allclose(ps.params["w"][0, 0], [0.140028, -0.140028], rtol=1e-4)
    np.testing.assert_array_equal(ps.params["w"][1], 0.0)
    np.testing.assert_array_equal(ps.params["v"][1], 0.0)
    assert float(metrics["kl"][0]) <= 0.01 / 2 + 1e-9  # seed mean over the two sets
    np.testing.assert_allclose(metrics["accepted"], [0.5])


def test_deviation_rule_selection():
    cfg = PPOConfig()
    assert type(deviation_rule(cfg)) is PPO
    assert isinstance(deviation_rule(cfg, "ppo", 0.02), KLStopPPO)
    rule = deviation_rule(cfg, "trpo", 0.02, n_inner=4)
    assert isinstance(rule, TRPO) and rule.radius == pytest.approx(0.005)  # ρ / n_inner
    with pytest.raises(ValueError, match="needs rho"):
        deviation_rule(cfg, "trpo", None)
    with pytest.raises(ValueError, match="'ppo' or 'trpo'"):
        deviation_rule(cfg, "sgd")
    with pytest.raises(ValueError, match="radius"):
        TRPO(cfg, radius=0.0)
    with pytest.raises(ValueError, match="rho"):
        KLStopPPO(cfg, rho=-1.0)


def test_config_validation():
    assert ErmasConfig().deviation == "ppo" and ErmasConfig().rho is None  # SRAI's
    ErmasConfig(deviation="trpo", rho=0.05)
    ErmasConfig(deviation="ppo", rho=0.05)
    with pytest.raises(ValueError, match="deviation must be 'ppo'"):
        ErmasConfig(deviation="a2c")
    for bad in (0.0, -0.1, float("nan"), float("inf"), True, "0.1"):
        with pytest.raises(ValueError, match="rho must be a positive number"):
            ErmasConfig(rho=bad)
    with pytest.raises(ValueError, match="needs ermas.rho"):
        ErmasConfig(deviation="trpo")


def test_cli_sets_deviation_and_rho(tmp_path, monkeypatch):
    seen = {}

    def fake_train(cfg, out, **kw):
        seen["cfg"] = cfg
        return out

    monkeypatch.setattr("prosocial.ermas.train.train_ermas", fake_train)
    ermas_main(["--out", str(tmp_path / "run"), "--deviation", "trpo", "--rho", "0.05"])
    assert seen["cfg"].ermas.deviation == "trpo" and seen["cfg"].ermas.rho == 0.05
    ermas_main(["--out", str(tmp_path / "run"), "--rho", "0.1"])  # PPO with the early stop
    assert seen["cfg"].ermas.deviation == "ppo" and seen["cfg"].ermas.rho == 0.1
    ermas_main(["--out", str(tmp_path / "run")])  # the preset's: SRAI's PPO, no ρ
    assert seen["cfg"].ermas.deviation == "ppo" and seen["cfg"].ermas.rho is None


def test_cli_rejects_trpo_without_rho(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        ermas_main(["--out", str(tmp_path / "run"), "--deviation", "trpo"])
    assert exc.value.code == 2
    assert "needs ermas.rho" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        ermas_main(["--out", str(tmp_path / "run"), "--rho", "-1"])
    assert exc.value.code == 2


def _deviation_params(er, iterations):
    state = er.init()
    dev = er.deviation_start(state.main, state.dev_rollout)
    out = [jax.tree.map(np.asarray, dev.pops[0].params)]
    for _ in range(iterations):
        dev, _ = er.dev.iteration(dev)
        out.append(jax.tree.map(np.asarray, dev.pops[0].params))
    return out, dev


@pytest.mark.parametrize("deviation, rho", [("trpo", 0.05), ("ppo", 1e-9)])
def test_loop_deviations_with_trust_region(deviation, rho):
    # In the ERMAS loop: copy i trains only agent i (co-players bit for bit); TRPO moves
    # agent i; with ρ = 1e-9 the PPO deviations stop after their first iteration.
    cfg = dataclasses.replace(CFG, ermas=dataclasses.replace(CFG.ermas, deviation=deviation,
                                                              rho=rho))
    er = Ermas(cfg)
    params, dev = _deviation_params(er, 2)
    n, s = er.n, CFG.num_seeds
    for k, leaf in enumerate(jax.tree.leaves(params[0])):
        seq = [jax.tree.leaves(p)[k].reshape((s, n, n) + leaf.shape[1:]) for p in params]
        for i in range(n):
            for j in range(n):
                assert np.array_equal(seq[0][:, i, j], seq[2][:, i, j]) == (i != j), (i, j)
                if deviation == "ppo":  # stopped after the first iteration
                    np.testing.assert_array_equal(seq[1][:, i, j], seq[2][:, i, j])
    if deviation == "ppo":
        np.testing.assert_array_equal(dev.pops[0].lr_scale, 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("deviation, rho", [("trpo", 0.05), ("ppo", 0.01)])
def test_loop_outer_iteration_with_trust_region(deviation, rho):
    cfg = dataclasses.replace(CFG, ermas=dataclasses.replace(CFG.ermas, deviation=deviation,
                                                              rho=rho))
    er = Ermas(cfg)
    state, metrics = er.iteration(er.init())
    state, metrics = er.iteration(state)
    assert int(state.iteration) == 2
    for k in ("j_old", "j_new", "lam", "regret"):
        assert np.all(np.isfinite(metrics[k])), k
