"""Every preset's resolved values against specs.md §8.5 (the reference run scripts) and §8.6
(the paper presets), the short aliases, and the config round trip without per-type code."""

from __future__ import annotations

import pytest

from prosocial.envs.registry import make
from prosocial.experiments.config import from_dict, to_dict
from prosocial.experiments.presets import ALIASES, PRESETS, preset

# §8.5: (entropy, lr at 0, lr at 2e7) of each script
SCHEDULES = {
    "ssd/cleanup/baseline": (0.00176, 0.00126, 0.000012),
    "ssd/harvest/baseline": (0.000687, 0.00136, 0.000028),
    "ssd/cleanup/moa": (0.00176, 0.00126, 0.000012),
    "ssd/harvest/moa": (0.00223, 0.0012, 0.000044),
    "ssd/cleanup/scm": (0.00176, 0.00126, 0.000012),
    "ssd/harvest/scm": (0.00223, 0.0012, 0.000044),
    "emurel/cleanup/baseline": (0.00176, 0.00126, 0.000012),
    "emurel/harvest-ppo/baseline": (0.000687, 0.00136, 0.000028),
    "emurel/harvest-a3c/baseline": (0.00223, 0.0012, 0.000044),
    "emurel/cleanup-a3c/baseline": (0.00176, 0.00126, 0.000012),
}
# §8.6: (agents, budget, seeds, ref_beam_order_by_id)
RUNS = {
    "ssd/cleanup": (5, 500_000_000, None, False),
    "ssd/harvest": (5, 500_000_000, None, False),
    "emurel/cleanup": (5, 500_000_000, 15, True),
    "emurel/harvest-ppo": (5, 100_000_000, 5, True),
    "emurel/harvest-a3c": (4, 30_000_000, 5, True),
    "emurel/cleanup-a3c": (5, 500_000_000, 5, True),
}


def family(name):
    return name.rsplit("/", 1)[0]


def learner(cfg):
    return cfg.ppo if cfg.learner == "ppo" else cfg.a2c


def test_every_preset_builds_and_round_trips():
    for name in PRESETS:
        cfg = preset(name)
        assert from_dict(to_dict(cfg)) == cfg, name
        make(cfg.env, **cfg.env_kwargs())


# [ECCLES]' presets (§9.7) are pinned in test_eccles_presets.py.
@pytest.mark.parametrize("name", sorted(n for n in PRESETS
                                        if "/" in n and not n.startswith(("eccles/", "collins/"))))
def test_preset_matches_the_specs(name):
    cfg = preset(name)
    agents, budget, seeds, beam_order = RUNS[family(name)]
    assert (cfg.num_agents, cfg.total_steps) == (agents, budget)
    if seeds is not None:
        assert cfg.num_seeds == seeds
    env = cfg.env_kwargs()
    assert cfg.max_steps == 1000 and env["reference"] is True
    assert env.get("ref_beam_order_by_id", False) is beam_order
    assert cfg.num_steps == 1000  # one 1000-step fragment (an episode) per environment
    rule = learner(cfg)
    assert rule.gamma == 0.99 and rule.ref_horizon_is_terminal and rule.max_grad_norm == 40.0
    assert cfg.net.lstm_size == 128 and cfg.net.hidden_sizes == (32, 32)
    # every method of a paper family shares its baseline's entropy and schedule (§8.6);
    # SSD's MOA scripts have their own (§8.5)
    entropy, lr0, lr1 = SCHEDULES.get(name, SCHEDULES[family(name) + "/baseline"])
    assert rule.ent_coef == entropy
    assert rule.lr_schedule == ((0.0, lr0), (2e7, lr1))
    if cfg.learner == "ppo":
        moa_script = name.startswith("ssd/") and name.endswith(("/moa", "/scm"))
        batch = 192_000 if moa_script else 96_000
        assert cfg.num_envs * cfg.num_steps == batch
        assert cfg.num_envs * cfg.num_steps // cfg.ppo.num_minibatches == batch // 4
        ppo = cfg.ppo
        assert (ppo.num_epochs, ppo.seq_len, ppo.gae_lambda, ppo.clip_eps, ppo.vf_clip,
                ppo.vf_coef, ppo.kl_coef, ppo.kl_target) == (10, 20, 1.0, 0.3, 10.0, 1e-4,
                                                             0.2, 0.01)
        if name.startswith("ssd/"):
            assert cfg.num_seeds == (4 if moa_script else 5)
    else:  # §8.4, D-08: one step per 16 envs × 1000 steps, value 0.1, summed losses
        assert (cfg.num_envs, cfg.a2c.vf_coef, cfg.a2c.reduction) == (16, 0.1, "sum")


@pytest.mark.parametrize("name, alpha, beta", [
    ("emurel/cleanup/ia", 0.0, 0.05), ("emurel/harvest-ppo/ia", 0.0, 0.05),
    ("emurel/harvest-a3c/ia-adv", 0.0, 0.05), ("emurel/harvest-a3c/ia-dis", 5.0, 0.0)])
def test_inequity_aversion_presets(name, alpha, beta):
    motive = preset(name).motive
    assert (motive.name, motive.alpha, motive.beta) == ("ia", alpha, beta)
    assert motive.ia_gamma * motive.ia_lambda == pytest.approx(0.81)


@pytest.mark.parametrize("name, loss_weight, reward_weight", [
    ("ssd/cleanup/moa", 0.06663557, 1.0), ("ssd/harvest/moa", 0.091650628, 2.521),
    ("emurel/cleanup/si", 0.06663557, 1.0), ("emurel/harvest-ppo/si", 0.091650628, 2.521),
    ("emurel/harvest-a3c/si", 0.091650628, 2.521)])
def test_social_influence_presets(name, loss_weight, reward_weight):
    m = preset(name).motive
    assert (m.name, m.moa_loss_weight, m.influence_reward_weight) == ("si", loss_weight,
                                                                      reward_weight)
    assert m.influence_schedule == ((0.0, 0.0), (1e7, 0.0), (1e8, 1.0), (3e8, 0.5))
    assert (m.influence_reward_clip, m.influence_divergence) == (10.0, "kl")
    assert m.influence_only_when_visible and m.train_moa_only_when_visible


def test_aliases_point_at_the_paper_presets():
    for alias, name in ALIASES.items():
        assert preset(alias) == preset(name)
    assert preset("cleanup-ia").num_seeds == 15


def test_quick_preset():
    cfg = preset("quick")
    assert (cfg.env, cfg.num_agents, cfg.max_steps, cfg.total_steps) == ("harvest", 5, 100,
                                                                         200_000)
    assert cfg.num_envs * cfg.num_steps == 1600 and cfg.learner == "ppo"


@pytest.mark.parametrize("name, loss_weight, reward_weight", [
    ("ssd/cleanup/scm", 0.06663557, 1.0), ("ssd/harvest/scm", 0.091650628, 2.521)])
def test_social_curiosity_presets(name, loss_weight, reward_weight):
    """§8.5: the SCM scripts are the MOA scripts (batch 192 000, minibatch 48 000, 4 seeds,
    the game's MOA extras) plus scm_loss_weight 1, forward-vs-inverse 0.5 (not the file
    default 0.2), curiosity weight 0.001 without schedule, curiosity clip 10."""
    cfg = preset(name)
    m = cfg.motive
    assert (m.name, m.moa_loss_weight, m.influence_reward_weight) == ("scm", loss_weight,
                                                                       reward_weight)
    assert m.influence_schedule == ((0.0, 0.0), (1e7, 0.0), (1e8, 1.0), (3e8, 0.5))
    assert (m.influence_reward_clip, m.influence_divergence) == (10.0, "kl")
    assert m.influence_only_when_visible and m.train_moa_only_when_visible
    assert (m.scm_loss_weight, m.scm_forward_vs_inverse_loss_weight,
            m.curiosity_reward_weight, m.curiosity_reward_clip) == (1.0, 0.5, 0.001, 10.0)
    assert (m.moa_lstm_size, m.moa_hidden_sizes, m.scm_hidden_size) == (128, (32, 32), 32)
    assert not m.ref_aux_losses_detached
    assert cfg.num_envs * cfg.num_steps == 192_000 and cfg.ppo.num_minibatches == 4
    assert cfg.num_seeds == 4
    moa = preset(name.replace("/scm", "/moa"))
    # everything else as the MOA script
    without_motive = lambda c: {k: v for k, v in to_dict(c).items() if k != "motive"}  # noqa: E731
    assert without_motive(cfg) == without_motive(moa)


# §8.6: the EMuReL paper presets, and their reference-code variants
EMUREL_METHODS = {
    "emurel/cleanup": ("baseline", "ia", "si", "emurel"),
    "emurel/harvest-ppo": ("baseline", "ia", "si", "emurel"),
    "emurel/harvest-a3c": ("baseline", "ia-adv", "ia-dis", "si", "emurel-adv", "emurel-dis"),
}


def test_emurel_paper_presets_are_the_spec_table():
    names = {n for n in PRESETS if family(n) in EMUREL_METHODS}
    want = {f"{family}/{method}{suffix}" for family, methods in EMUREL_METHODS.items()
            for method in methods for suffix in ("", "-reference-code")}
    assert names == want


@pytest.mark.parametrize("name, alpha, beta, moa_loss_weight", [
    ("emurel/cleanup/emurel", 0.0, 0.05, 0.06663557),
    ("emurel/harvest-ppo/emurel", 0.0, 0.05, 0.091650628),
    ("emurel/harvest-a3c/emurel-adv", 0.0, 0.05, 0.091650628),
    ("emurel/harvest-a3c/emurel-dis", 5.0, 0.0, 0.091650628)])
def test_emurel_presets(name, alpha, beta, moa_loss_weight):
    """§9.6: eq. 4 with the §9.3 settings, γλ = 0.81; the game's MOA loss weight (§8.5); SCM
    weighting 1.0 × (0.5·L_F + 0.5·L_I); impacts L / (max L + 1e-8); every defect flag off."""
    m = preset(name).motive
    assert (m.name, m.alpha, m.beta, m.moa_loss_weight) == ("emurel", alpha, beta,
                                                            moa_loss_weight)
    assert m.ia_gamma * m.ia_lambda == pytest.approx(0.81) and m.ia_smoothed
    assert (m.scm_loss_weight, m.scm_forward_vs_inverse_loss_weight) == (1.0, 0.5)
    assert (m.moa_lstm_size, m.moa_hidden_sizes, m.train_moa_only_when_visible) == (
        128, (32, 32), True)
    assert m.impact_norm == "max"
    assert not (m.ref_aux_losses_detached or m.ref_inverse_relu_logits or m.ref_impact_nan)


def test_reference_code_variants_add_only_the_model_defect_flags():
    """§8.6 ``emurel/*-reference-code``: the same run with ``ref_aux_losses_detached`` (B-01)
    and ``ref_inverse_relu_logits`` (B-15) switched on, nothing else changed."""
    import dataclasses

    variants = [n for n in PRESETS if n.startswith("emurel/") and n.endswith("-reference-code")]
    assert len(variants) == 15
    for name in variants:
        ref, base = preset(name), preset(name.removesuffix("-reference-code"))
        assert ref.motive.ref_aux_losses_detached and ref.motive.ref_inverse_relu_logits
        assert not ref.motive.ref_impact_nan
        assert dataclasses.replace(ref, motive=dataclasses.replace(
            ref.motive, ref_aux_losses_detached=False, ref_inverse_relu_logits=False)) == base
