"""[ECCLES]' presets against specs.md §9.7 and Table 2 (§8.6 ``eccles/*``), written out
value by value from the paper's table rather than from the preset module."""

from __future__ import annotations

import pytest

from prosocial.experiments.config import from_dict, to_dict
from prosocial.experiments.presets import PRESETS, preset

# Table 2: (c_im, c_KL, entropy, RL lr, niceness lr, TD-λ, γ_nn); None: not used (MM).
TABLE2 = {
    ("coins", "mm"): (0.1, None, 0.003, 0.0005, None, None, None),
    ("coins", "nn"): (0.02, 0.03, 0.003, 0.0001, 0.001, 0.9, 0.9),
    ("cleanup", "mm"): (0.1, None, 0.001, 0.0001, None, None, None),
    ("cleanup", "nn"): (0.1, 0.1, 0.001, 0.0001, 0.0001, 0.95, 0.99),
    ("harvest", "mm"): (3.0, None, 0.003, 0.0005, None, None, None),
    ("harvest", "nn"): (0.1, 0.1, 0.003, 0.0001, 0.0001, 0.95, 0.99),
}
# env, agents, episode length, budget (D-22)
GAMES = {"coins": ("coins", 2, 500, 100_000_000), "cleanup": ("cleanup", 5, 1000, 500_000_000),
         "harvest": ("harvest", 5, 1000, 500_000_000)}
VARIANTS = ("selfish", "mm", "nn", "nn-kl-only", "nn-niceness-only")


def test_every_eccles_preset_is_registered():
    names = {n for n in PRESETS if n.startswith("eccles/")}
    assert names == {f"eccles/{g}/{v}" for g in GAMES for v in VARIANTS}


@pytest.mark.parametrize("game", sorted(GAMES))
@pytest.mark.parametrize("variant", VARIANTS)
def test_eccles_preset(game, variant):
    cfg = preset(f"eccles/{game}/{variant}")
    assert from_dict(to_dict(cfg)) == cfg
    env, agents, length, budget = GAMES[game]
    assert (cfg.env, cfg.num_agents, cfg.max_steps, cfg.total_steps, cfg.num_seeds) == (
        env, agents, length, budget, 5)
    assert not cfg.reference and cfg.env_options == ()
    # §9.7.6 / D-21: A2C with V-trace, 32 envs × unroll 100, RMSProp (0.99, ε 0.01),
    # baseline cost 0.5, clip 40, discount 0.99, on-policy clips 1.
    assert (cfg.learner, cfg.num_envs, cfg.num_steps) == ("a2c", 32, 100)
    a2c = cfg.a2c
    assert (a2c.optimizer, a2c.rmsprop_decay, a2c.rmsprop_eps, a2c.vf_coef, a2c.max_grad_norm,
            a2c.gamma, a2c.clip_rho, a2c.clip_pg_rho, a2c.lr_schedule) == (
        "rmsprop", 0.99, 0.01, 0.5, 40.0, 0.99, 1.0, 1.0, ())
    assert not a2c.ref_horizon_is_terminal
    # App. A: Conv 6@3×3 (also on the Coins planes) → 32, 32 ReLU → LSTM 32.
    net = cfg.net
    assert (net.conv_filters, net.conv_kernel, net.hidden_sizes, net.lstm_size,
            net.activation, net.conv_on_planes) == (6, 3, (32, 32), 32, "relu", True)
    column = "mm" if variant in ("selfish", "mm") else "nn"
    c_im, c_kl, entropy, lr, nn_lr, nn_lambda, nn_gamma = TABLE2[(game, column)]
    assert (a2c.ent_coef, a2c.lr) == (entropy, lr)  # selfish: the MM column (D-25)
    if variant == "selfish":
        assert cfg.populations == () and cfg.motive.name == "none"
        return
    imitators = "1" if agents == 2 else "1-4"
    assert cfg.populations == ("innovator:0:a2c", f"imitator:{imitators}:a2c")
    assert cfg.motive_populations == ("imitator",)
    m = cfg.motive
    assert (m.name, m.innovator, m.imitation_decay, m.reciprocity_norm) == (
        "reciprocity", 0, 0.95, "batch_abs")
    if variant == "mm":
        assert (m.niceness, m.imitation_weight, m.policy_imitation_weight) == ("metric", c_im,
                                                                               0.0)
        return
    assert m.niceness == "network"
    assert (m.niceness_lr, m.niceness_lambda, m.niceness_gamma) == (nn_lr, nn_lambda, nn_gamma)
    # §9.7.7 ablations: KL only (c_im = 0), niceness reward only (c_KL = 0).
    expected = {"nn": (c_im, c_kl), "nn-kl-only": (0.0, c_kl),
                "nn-niceness-only": (c_im, 0.0)}[variant]
    assert (m.imitation_weight, m.policy_imitation_weight) == expected
