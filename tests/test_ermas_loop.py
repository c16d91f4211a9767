"""The ERMAS outer loop end to end on a tiny bimatrix-constrained run (specs §9.9.5):
deviations leave co-players bit for bit, the planner's advantages reach the agents' batch,
λ follows the dual step of the logged regrets, and a run resumed from a checkpoint
continues exactly as an uninterrupted one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ermas_tiny import CFG

from prosocial.ermas.loop import Ermas
from prosocial.ermas.train import from_dict, to_dict, train_ermas
from prosocial.io import read_metrics


@pytest.fixture(scope="module")
def ermas():
    return Ermas(CFG)


def test_deviations_train_only_agent_i(ermas):
    state = ermas.init()
    dev = ermas._dev_start(state.main, state.dev_rollout)
    start = jax.tree.map(np.asarray, dev.pops)
    for _ in range(2):
        dev, _ = ermas.dev.iteration(dev)
    n = ermas.n
    # copy (s, i) at index s·n + i; its agent j at parameter set (s·n + i)·n + j.
    for leaf0, leaf1 in zip(jax.tree.leaves(start[0].params), jax.tree.leaves(dev.pops[0].params),
                            strict=True):
        a0 = leaf0.reshape((CFG.num_seeds, n, n) + leaf0.shape[1:])
        a1 = np.asarray(leaf1).reshape(a0.shape)
        for i in range(n):
            for j in range(n):
                same = np.array_equal(a0[:, i, j], a1[:, i, j])
                assert same == (i != j), (i, j)
    for a, b in zip(jax.tree.leaves(start[1].params), jax.tree.leaves(dev.pops[1].params),
                    strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))  # the planner is frozen


def test_deviation_copies_start_from_theta0(ermas):
    state = ermas.init()
    dev = ermas._dev_start(state.main, state.dev_rollout)
    n = ermas.n
    for main_leaf, dev_leaf in zip(jax.tree.leaves(state.main.pops[0].params),
                                   jax.tree.leaves(dev.pops[0].params), strict=True):
        main = np.asarray(main_leaf).reshape((CFG.num_seeds, 1, n) + main_leaf.shape[1:])
        d = np.asarray(dev_leaf).reshape((CFG.num_seeds, n, n) + main_leaf.shape[1:])
        np.testing.assert_array_equal(d, np.broadcast_to(main, d.shape))
    for main_leaf, dev_leaf in zip(jax.tree.leaves(state.main.pops[1].params),
                                   jax.tree.leaves(dev.pops[1].params), strict=True):
        np.testing.assert_array_equal(np.repeat(np.asarray(main_leaf), n, axis=0),
                                      np.asarray(dev_leaf))


def test_planner_advantages_in_agents_batch(ermas):
    runner = ermas.main
    state = ermas.init().main
    params = tuple(ps.params for ps in state.pops)
    _, rollout, carries, _ = runner._collect(params, jax.tree.map(jnp.copy, state.rollout))
    rule = runner.populations[0].update
    inputs = rule.inputs(runner, 0, state.pops[0], rollout)
    adv = np.asarray(inputs["planner_advantages"])  # [T, P = S·n, B = E]
    t = CFG.num_steps
    per_seed = adv.reshape(t, CFG.num_seeds, ermas.n, CFG.num_envs)
    np.testing.assert_array_equal(per_seed[:, :, 0], per_seed[:, :, 1])  # same Â_r
    np.testing.assert_allclose(per_seed[:, :, 0].mean(axis=(0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(per_seed[:, :, 0].std(axis=(0, 2)), 1.0, atol=1e-4)
    # λ per sample: parameter set s·n + i carries λ[s, i].
    lam = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    agents = state.pops[0].replace(learner=dict(state.pops[0].learner, lam=lam))
    got = np.asarray(rule.inputs(runner, 0, agents, rollout)["lam"])
    np.testing.assert_array_equal(got, np.broadcast_to(
        np.array([1.0, 2.0, 3.0, 4.0])[None, :, None], got.shape))


def test_loop_dual_step_and_resume(ermas, tmp_path):
    full = train_ermas(CFG, tmp_path / "full", progress=False, ermas=ermas)
    part = tmp_path / "part"
    train_ermas(CFG, part, progress=False, max_iterations=2, ermas=ermas)
    train_ermas(CFG, part, resume=True, progress=False, ermas=ermas)
    a, b = read_metrics(full), read_metrics(part)
    assert list(a["update"]) == [1, 2, 3]
    for col in ("lam_0", "lam_1", "j_old_0", "j_new_1", "regret_0", "planner_return"):
        np.testing.assert_array_equal(a[col], b[col])
    # λ_k = clip(λ_{k−1} + α(Δ_k − ε), 0, 100) per seed and agent, from λ_0 = 8.
    e = CFG.ermas
    for agent in (0, 1):
        for seed in (0, 1):
            lam_prev = e.initial_lambda
            for lam, gain in zip(a[f"lam_{agent}"][:, seed], a[f"regret_{agent}"][:, seed],
                                 strict=True):
                want = min(max(lam_prev + e.alpha_lr * (gain - e.epsilon), 0.0), 100.0)
                assert lam == pytest.approx(want, abs=1e-4)
                lam_prev = lam
    assert np.abs(a["lam_0"] - e.initial_lambda).max() > 0.01  # the dual step acted
    np.testing.assert_allclose(a["regret_0"], a["j_new_0"] - a["j_old_0"], atol=1e-4)
    assert from_dict(to_dict(CFG)) == CFG


@pytest.mark.slow
def test_shared_policy_and_paper_form_run():
    """SRAI's shared agent policy (B-32) with the meta step on shared parameters, and the
    paper's form (unnormalised objective, warm-up) run and keep finite values."""
    import dataclasses

    cfg = dataclasses.replace(CFG, share_agent_policy=True, ermas=dataclasses.replace(
        CFG.ermas, objective_normalised=False, warmup_steps=2,
        ref_deviation_planner_untrained=True))
    er = Ermas(cfg)
    state = er.init()
    before = jax.tree.map(np.asarray, state.main.pops[0].params)
    state, metrics = er.iteration(state)
    assert int(state.warm) == 2 and int(state.iteration) == 1
    assert all(np.all(np.isfinite(v)) for v in metrics.values())
    after = state.main.pops[0].params
    assert jax.tree.leaves(after)[0].shape[0] == CFG.num_seeds  # one set per seed
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(
        jax.tree.leaves(before), jax.tree.leaves(after), strict=True))


@pytest.mark.slow
def test_nmatrix_with_separate_mlps():
    """The N-matrix game (3 agents, an active planner) with SRAI's separate ReLU MLPs:
    three deviations per seed, λ per agent."""
    import dataclasses

    cfg = dataclasses.replace(CFG, env="coop_bimatrix_3", agent_mlp_hidden=32,
                              planner_mlp_hidden=32, outer_iterations=1)
    er = Ermas(cfg)
    assert er.n == 3 and er.dev.num_seeds == 3 * CFG.num_seeds
    state, metrics = er.iteration(er.init())
    assert metrics["lam"].shape == (CFG.num_seeds, 3)
    assert all(np.all(np.isfinite(v)) for v in metrics.values())
    assert set(state.main.pops[0].params) == {"pi_hidden", "pi_out", "vf_hidden", "vf_out"}
