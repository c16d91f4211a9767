"""The ERMAS bimatrix presets pinned to specs §8.6, §9.9.6–9.9.8 (SRAI's bimatrix configs)."""

import pytest

from prosocial.envs import registry
from prosocial.experiments.presets.ermas import PRESETS, outer_iterations, preset


def test_preset_names():
    base = {"marl", "oracle", "dr", "rr", "ermas", "ermas-nometa", "fixed-lambda"}
    assert set(PRESETS) == ({f"ermas/bimatrix/{k}" for k in base}
                            | {f"ermas/bimatrix-reference-code/{k}" for k in base})


def test_ermas_preset_values():
    cfg = preset("ermas/bimatrix/ermas")
    e = cfg.ermas
    assert (e.method, e.epsilon, e.alpha_lr, e.initial_lambda, e.lambda_max) == (
        "ermas", 5.0, 0.005, 8.0, 100.0)
    assert (e.inner_me_iterations, e.inner_main_iterations, e.metascale, e.meta_cap) == (
        2, 3, 0.2, 2.0)
    assert (e.use_meta, e.eval_episodes, e.freeze_lambda, e.objective_normalised) == (
        True, 10, False, True)
    assert (e.warmup_steps, e.ref_deviation_planner_untrained) == (0, False)
    a, p = cfg.agent_ppo, cfg.planner_ppo
    assert (a.lr, a.gamma, a.gae_lambda, a.ent_coef) == (3e-4, 0.8, 0.9, 0.025)
    assert (p.lr, p.ent_coef) == (1e-4, 0.1)
    for c in (a, p):
        assert (c.clip_eps, c.vf_coef, c.vf_clip, c.max_grad_norm, c.kl_coef) == (
            0.3, 0.05, 50.0, 10.0, 0.0)
        assert (c.num_epochs, c.num_minibatches) == (1, 4)
        c.check_batch(cfg.num_envs, cfg.num_steps)
    # batch 12 000 = 60 envs × fragments of 200; minibatch 3000 = 12 000 / 4
    assert (cfg.num_envs, cfg.num_steps) == (60, 200)
    assert cfg.agent_net.hidden_sizes == () and cfg.agent_net.lstm_size is None  # linear
    assert cfg.planner_net.hidden_sizes == () and cfg.planner_net.lstm_size is None
    assert (cfg.env, cfg.env_options, cfg.share_agent_policy, cfg.num_seeds) == (
        "bimatrix", {}, False, 5)
    # 50 000 episodes × 5000 steps / (3 × 12 000) = 6944.4 → 6945 outer iterations
    assert cfg.outer_iterations == outer_iterations(50_000, 5000, 3) == 6945


@pytest.mark.parametrize("name,method,options,changes", [
    ("marl", "marl", {}, {}),
    ("oracle", "marl", {"perturb_q": 0.5}, {}),
    ("dr", "marl", {"dr": 1.0, "episode_dr": True}, {}),
    ("rr", "marl", {"risk_eta": 0.2}, {}),
    ("ermas-nometa", "ermas", {}, {"use_meta": False}),
    ("fixed-lambda", "ermas", {}, {"freeze_lambda": True}),
])
def test_baselines_and_ablations(name, method, options, changes):
    cfg = preset(f"ermas/bimatrix/{name}")
    assert cfg.ermas.method == method and cfg.env_options == options
    for k, v in changes.items():
        assert getattr(cfg.ermas, k) == v
    registry.make(cfg.env, **cfg.env_options)


def test_reference_code_flags():
    cfg = preset("ermas/bimatrix-reference-code/rr")
    assert cfg.share_agent_policy and cfg.ermas.ref_deviation_planner_untrained
    assert cfg.env_options == {"risk_eta": 0.2, "ref_bimatrix_extra_step": True,
                               "ref_concav_log": True}
    env = registry.make(cfg.env, **cfg.env_options)
    assert env.ref_concav_log and env.ref_bimatrix_extra_step
    assert preset("ermas/bimatrix-reference-code/ermas").env_options == {
        "ref_bimatrix_extra_step": True}
    with pytest.raises(ValueError, match="unknown ERMAS preset"):
        preset("ermas/bimatrix/nope")
