"""[ECCLES]' reciprocity (specs.md §9.7): the pure functions against hand-computed values,
the motive on a hand-built 5-step Coins trajectory, the Harvest count on a hand-built map,
the niceness network's wiring and losses, per-population motives, a 2-iteration training
of innovator + imitator (MM and NN) on Coins and the niceness report on it."""

from __future__ import annotations

import dataclasses
from functools import partial
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial import metrics as M
from prosocial.envs.harvest import eaten_apple_neighbours
from prosocial.experiments.config import TrainConfig
from prosocial.layout import Layout
from prosocial.motives.base import PolicyView
from prosocial.motives.config import MotiveConfig
from prosocial.motives.reciprocity import (
    NicenessNet,
    cleanup_niceness,
    coins_niceness,
    imitation_reward,
    niceness_targets,
    normalise_imitation,
    policy_kl,
    trajectory_niceness,
)
from prosocial.nets import NetConfig

# --- a 5-step Coins trajectory through niceness, reward and normalisation ----------------
#
# γ_im = 0.5. Innovator (agent 0) takes the other's coin at steps 1 and 4, the imitator
# (agent 1) at step 2:
#   n_inv = [0, −1, 0, 0, −1]  → N_inv = [0, −1, −0.5, −0.25, −0.125 − 1 = −1.125]
#   n_im  = [0, 0, −1, 0, 0]   → N_im  = [0, 0, −1, −0.5, −0.25]
#   N_im − N_inv = [0, 1, −0.5, −0.25, 0.875]
#   r_int = −(…)² = [0, −1, −0.25, −0.0625, −0.765625]
#   mean|r_int| = 2.078125 / 5 = 0.415625; c_im = 0.1 → scale 0.1 / 0.415625 = 0.24060150…
#   scaled = [0, −0.2406015, −0.0601504, −0.0150376, −0.1842105]
# env_relative with the imitator's rewards [1, 0, −2, 0, 1] (mean|r_env| = 0.8):
#   scale 0.1 · 0.8 / 0.415625 = 0.1924812 → [0, −0.1924812, −0.0481203, −0.0120301,
#   −0.1473684]
OTHER_COINS = np.array([[0, 0], [1, 0], [0, 1], [0, 0], [1, 0]])  # [T, N]
N_INV = [0.0, -1.0, -0.5, -0.25, -1.125]
N_IM = [0.0, 0.0, -1.0, -0.5, -0.25]
R_INT = [0.0, -1.0, -0.25, -0.0625, -0.765625]
SCALED = [0.0, -0.2406015, -0.0601504, -0.0150376, -0.1842105]
ENV_RELATIVE = [0.0, -0.1924812, -0.0481203, -0.0120301, -0.1473684]
IMITATOR_REWARD = np.array([1.0, 0.0, -2.0, 0.0, 1.0])


def test_five_step_trajectory_by_hand():
    n = coins_niceness(OTHER_COINS)
    np.testing.assert_allclose(n[:, 0], [0, -1, 0, 0, -1])
    big = trajectory_niceness(n, 0.5, np.zeros(5, bool))
    np.testing.assert_allclose(big[:, 0], N_INV, atol=1e-6)
    np.testing.assert_allclose(big[:, 1], N_IM, atol=1e-6)
    r = imitation_reward(big[:, 1], big[:, 0])
    np.testing.assert_allclose(r, R_INT, atol=1e-6)
    np.testing.assert_allclose(normalise_imitation(r, 0.1, 0), SCALED, atol=1e-6)
    np.testing.assert_allclose(
        normalise_imitation(r, 0.1, 0, IMITATOR_REWARD, "env_relative"), ENV_RELATIVE,
        atol=1e-6)


def test_motive_on_the_five_step_trajectory():
    """The Reciprocity motive (metric matching) gives the same numbers from a rollout of one
    seed, one env, innovator 0 and imitator 1; the trace is carried into the next rollout."""
    cfg = MotiveConfig(name="reciprocity", imitation_weight=0.1, imitation_decay=0.5)
    motive = cfg.build()
    motive.kind = "coins"
    t = 5
    rollout = SimpleNamespace(
        events={"other_coins_collected": jnp.asarray(OTHER_COINS)[:, None, None]},
        start=jnp.zeros((t, 1, 1), bool),
        reward=jnp.stack([jnp.zeros(t), jnp.asarray(IMITATOR_REWARD)], -1)[:, None, None],
        done=jnp.zeros((t, 1, 1), bool))
    lay = Layout(1, 2, (1,), False)
    carry = motive.init_carry(lay, 1)
    carry, reward, diag, extras = motive.intrinsic((), carry, rollout, PolicyView(layout=lay))
    assert reward.shape == (t, 1, 1, 1) and extras == {}
    np.testing.assert_allclose(reward[:, 0, 0, 0], SCALED, atol=1e-6)
    np.testing.assert_allclose(carry[0][0, 0, 0], N_IM[-1])
    np.testing.assert_allclose(carry[1][0, 0, 0], N_INV[-1])
    np.testing.assert_allclose(diag["imitation_reward_raw"][0, 0], np.mean(R_INT), rtol=1e-6)
    # The next rollout: no coins, no episode start → both traces halve each step.
    rollout2 = SimpleNamespace(**{**vars(rollout), "events": {
        "other_coins_collected": jnp.zeros((t, 1, 1, 2), jnp.int32)}})
    _, _, diag2, _ = motive.intrinsic((), carry, rollout2, PolicyView(layout=lay))
    diffs = (N_IM[-1] - N_INV[-1]) * 0.5 ** np.arange(1, 6)  # 0.875 · 0.5^k
    np.testing.assert_allclose(diag2["imitation_reward_raw"][0, 0], -np.mean(diffs ** 2),
                               rtol=1e-5)


def test_innovator_in_the_imitators_population_is_rejected():
    motive = MotiveConfig(name="reciprocity").build()
    motive.kind = "coins"
    rollout = SimpleNamespace(events={"other_coins_collected": jnp.zeros((2, 1, 1, 2))},
                              start=jnp.zeros((2, 1, 1), bool), reward=jnp.zeros((2, 1, 1, 2)))
    lay = Layout(1, 2, (0, 1), False)
    with pytest.raises(ValueError, match="innovator"):
        motive.intrinsic((), motive.init_carry(lay, 1), rollout, PolicyView(layout=lay))


def test_episode_start_resets_and_harvest_ticks():
    # Per step, γ 0.5, n = [1, 1, 1, 1] with an episode starting at step 2: [1, 1.5, 1, 1.5].
    np.testing.assert_allclose(
        trajectory_niceness(jnp.ones(4), 0.5, jnp.array([1, 0, 1, 0], bool)), [1, 1.5, 1, 1.5])
    # Harvest (eq. 8): the trace moves only on steps with an apple: sus 3 then 1, γ 0.5:
    # N = [0, 3, 3, 0.5·3 + 1 = 2.5, 2.5].
    n = jnp.array([0.0, 3, 0, 1, 0])
    tick = jnp.array([0, 1, 0, 1, 0], bool)
    np.testing.assert_allclose(trajectory_niceness(n, 0.5, jnp.zeros(5, bool), tick=tick),
                               [0, 3, 3, 2.5, 2.5])
    # A carried trace of 2 enters the first step: 0.5·2 + 1 = 2.
    np.testing.assert_allclose(trajectory_niceness(jnp.ones(1), 0.5, jnp.zeros(1, bool),
                                                   initial=jnp.asarray(2.0)), [2.0])


def test_normalisation_edge_cases():
    # No imitation signal in the batch (mean|r_int| < 1e-8): the term is 0, not NaN.
    np.testing.assert_array_equal(normalise_imitation(jnp.zeros(4), 0.1, 0), np.zeros(4))
    # Per imitator: axis 0 only, each column scaled by its own mean: [−1, −3] → mean|·| 2
    # → ×0.05; [−4, 0] → mean|·| 2 → ×0.05 too, giving [−0.2, 0].
    r = jnp.array([[-1.0, -4.0], [-3.0, 0.0]])
    np.testing.assert_allclose(normalise_imitation(r, 0.1, 0), [[-0.05, -0.2], [-0.15, 0.0]])
    r2 = jnp.array([[-1.0, -4.0], [-1.0, 0.0]])  # first column mean 1 → ×0.1
    np.testing.assert_allclose(normalise_imitation(r2, 0.1, 0), [[-0.1, -0.2], [-0.1, 0.0]])
    with pytest.raises(ValueError, match="env_relative"):
        normalise_imitation(r, 0.1, 0, mode="other")


def test_cleanup_niceness():
    np.testing.assert_array_equal(cleanup_niceness(jnp.array([0, 1, 3])), [0, 1, 1])
    np.testing.assert_array_equal(cleanup_niceness(jnp.array([0, 1, 3]), "cells"), [0, 1, 3])


def test_harvest_count_on_a_hand_built_map():
    # Apples (A) on a 5×5 map; the 12-cell ℓ1 ball of radius 2, the eaten cell excluded:
    #   . A . . .      agent 0 eats at (1, 1): (0,1) (1,0) (1,2) (2,1) → 4, capped at 3
    #   A A A . .      agent 1 eats at (3, 4): only (2,3) → 1
    #   . A . A .      agent 2 eats at (2, 3): (1,2) (2,1) (3,4) → 3 (not capped)
    #   . . . . A      agent 3 stands at (0, 1) without eating → 0
    #   . . . . .
    apples = np.zeros((5, 5), bool)
    for r, c in [(0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 3), (3, 4)]:
        apples[r, c] = True
    pos = jnp.array([[1, 1], [3, 4], [2, 3], [0, 1]])
    eaten = jnp.array([True, True, True, False])
    np.testing.assert_array_equal(eaten_apple_neighbours(jnp.asarray(apples), pos, eaten),
                                  [3, 1, 3, 0])


def test_harvest_offers_the_signal():
    from prosocial.envs.core import signal_spec
    from prosocial.envs.registry import make

    spec = signal_spec(make("harvest", num_agents=3))
    assert spec["eaten_apple_neighbours"].shape == (3,)


def test_niceness_targets_by_hand():
    # γ 0.9, λ 0.5, r = [1, 0, 2, 0], V = [0.5, 1, 0, 2], step 2 ends its episode:
    # G3 = V3 = 2 (bootstrap); G2 = 2 (done); G1 = 0.9·(0.5·V2 + 0.5·G2) = 0.9;
    # G0 = 1 + 0.9·(0.5·V1 + 0.5·G1) = 1 + 0.9·0.95 = 1.855
    g = niceness_targets(jnp.array([1.0, 0, 2, 0]), jnp.array([0.5, 1, 0, 2]),
                         jnp.array([0, 0, 1, 0], bool), 0.9, 0.5)
    np.testing.assert_allclose(g, [1.855, 0.9, 2.0, 2.0], rtol=1e-6)
    # Extra axes are independent columns.
    g2 = niceness_targets(jnp.ones((3, 2)), jnp.zeros((3, 2)), jnp.zeros((3, 2)), 0.5, 1.0)
    np.testing.assert_allclose(g2, [[1.5, 1.5], [1, 1], [0, 0]])


def test_policy_kl_by_hand():
    # KL([.5, .5] ‖ [.25, .75]) = .5 ln 2 + .5 ln(2/3) = 0.1438410
    kl = policy_kl(jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.25, 0.75])))
    np.testing.assert_allclose(kl, 0.1438410, rtol=1e-6)


def _coins_net():
    from prosocial.envs.registry import make

    env = make("coins")
    cfg = NetConfig(conv_filters=2, hidden_sizes=(4,), lstm_size=8, activation="relu",
                    conv_on_planes=True)
    return env, NicenessNet(cfg, env.observation_space, env.num_actions)


def test_niceness_is_q_minus_v():
    env, net = _coins_net()
    params = net.init(jax.random.split(jax.random.PRNGKey(0), 1))
    assert params["conv"]["kernel"].shape == (1, 3, 3, 4, 2)  # conv on the Coins planes
    # Zero heads with known biases: V = 0.3, Q = [1, 2, 3, 4, 5] → n(a = 2) = 2.7.
    params["value"] = {"kernel": jnp.zeros_like(params["value"]["kernel"]),
                       "bias": jnp.full((1, 1), 0.3)}
    params["q"] = {"kernel": jnp.zeros_like(params["q"]["kernel"]),
                   "bias": jnp.arange(1.0, 6.0)[None]}
    obs = {"obs": jnp.zeros((1, 2, 3, 5, 5, 4))}
    n, v, logits = jax.jit(net.niceness)(params, obs, jnp.full((1, 2, 3), 2))
    np.testing.assert_allclose(n, np.full((1, 2, 3), 2.7), rtol=1e-6)
    assert logits.shape == (1, 2, 3, 5)


def test_loss_gradients_go_where_they_should():
    """The KL term reaches the policy's logits and not the network; the network's loss does
    not reach the logits."""
    env, net = _coins_net()
    base = MotiveConfig(name="reciprocity", niceness="network", policy_imitation_weight=0.5)
    motive = base.build()
    motive.check(env, ("own_coins_collected", "other_coins_collected", "own_coins_lost"))
    params = motive.init_params(jax.random.split(jax.random.PRNGKey(1), 1), env,
                                SimpleNamespace(cfg=net.cfg))
    k = jax.random.split(jax.random.PRNGKey(2), 4)
    mb = {"inv_obs": {"obs": jax.random.bernoulli(k[0], 0.3, (1, 2, 3, 5, 5, 4)).astype(
        jnp.float32)}, "inv_action": jax.random.randint(k[1], (1, 2, 3), 0, 5),
          "target": jax.random.normal(k[2], (1, 2, 3)), "weight": jnp.ones((1, 2, 3)),
          "prior_logits": jax.random.normal(k[3], (1, 2, 3, 5))}
    mask = jnp.ones((1, 2, 3), bool)

    def loss(p, logits, m):
        return m.loss(p, mb, PolicyView(logits=logits, mask=mask))[0]

    logits = jnp.zeros((1, 2, 3, 5))
    g_p, g_l = jax.jit(jax.grad(partial(loss, m=motive), argnums=(0, 1)))(params, logits)
    assert float(jnp.abs(g_l).sum()) > 0
    no_kl = dataclasses.replace(base, policy_imitation_weight=0.0).build()
    no_kl.check(env, ("own_coins_collected", "other_coins_collected", "own_coins_lost"))
    no_kl.policy_cfg = motive.policy_cfg
    g_p0, g_l0 = jax.jit(jax.grad(partial(loss, m=no_kl), argnums=(0, 1)))(params, logits)
    np.testing.assert_array_equal(g_l0, 0.0)
    for a, b in zip(jax.tree.leaves(g_p), jax.tree.leaves(g_p0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # KL of uniform logits against the prior, c_KL = 0.5, mean over the 6 steps.
    _, terms = motive.loss(params, mb, PolicyView(logits=logits, mask=mask))
    expected = policy_kl(logits, mb["prior_logits"]).mean()
    np.testing.assert_allclose(terms["policy_imitation_kl"][0], expected, rtol=1e-5)
    # The "sum" reduction: both terms summed over the 6 valid steps instead of averaged.
    summed = dataclasses.replace(base, reciprocity_reduction="sum").build()
    summed.check(env, ("own_coins_collected", "other_coins_collected", "own_coins_lost"))
    summed.policy_cfg = motive.policy_cfg
    total_mean = jax.jit(partial(loss, m=motive))(params, logits)
    total_sum = jax.jit(partial(loss, m=summed))(params, logits)
    np.testing.assert_allclose(total_sum, 6 * total_mean, rtol=1e-5)


def test_bad_configs():
    with pytest.raises(ValueError, match="niceness network"):
        MotiveConfig(name="reciprocity", policy_imitation_weight=0.1).build()
    with pytest.raises(ValueError, match="imitation_decay"):
        MotiveConfig(name="reciprocity", imitation_decay=1.5).build()
    with pytest.raises(ValueError, match="niceness"):
        TrainConfig(env="coins", num_agents=2, motive=MotiveConfig(name="reciprocity",
                                                                   niceness="learned"))
    with pytest.raises(ValueError, match="motive_populations"):
        TrainConfig(env="coins", num_agents=2, populations=("innovator:0", "imitator:1"),
                    motive_populations=("imitators",))


def test_own_coin_share():
    # own [3, 1], other [1, 0]: 4 of 5 coins by their owner; per agent 3/4 and 1/1.
    out = M.own_coin_share(jnp.array([3, 1]), jnp.array([1, 0]))
    np.testing.assert_allclose(out["own_coin_share"], 0.8)
    np.testing.assert_allclose(out["own_coin_share_per_agent"], [0.75, 1.0])
    none = M.own_coin_share(jnp.array([0, 0]), jnp.array([0, 0]))
    assert np.isnan(none["own_coin_share"])


# --- training -------------------------------------------------------------------------------

TINY_NET = NetConfig(conv_filters=2, hidden_sizes=(4,), lstm_size=4, activation="relu",
                     conv_on_planes=True)


def tiny(niceness: str) -> TrainConfig:
    from prosocial.experiments.presets import preset

    cfg = preset(f"eccles/coins/{'mm' if niceness == 'metric' else 'nn'}")
    return dataclasses.replace(cfg, max_steps=6, total_steps=2 * 2 * 4, num_seeds=1,
                               num_envs=2, num_steps=4, net=TINY_NET, gif_steps=0,
                               checkpoint_every=2, compile_cache="",
                               env_options=("spawn_prob=0.3",))  # coins to pick up at once


def test_metric_matching_imitator_trains_on_coins():
    """Two iterations of 1 innovator + 1 metric-matching imitator: finite losses, only the
    imitator shaped, the own-coin share logged."""
    from prosocial.experiments.train import build

    runner = build(tiny("metric"))
    assert [p.motive.name for p in runner.populations] == ["none", "reciprocity"]
    state = runner.init(jax.random.PRNGKey(0))
    for _ in range(2):
        state, metrics = runner.iteration(state)
    for k, v in metrics.items():
        if "loss" in k:
            assert np.all(np.isfinite(v)), k
    assert "imitator/imitation_reward_raw" in metrics
    assert not any(k.startswith("innovator/imitation") for k in metrics)
    # An episode (6 steps) ended with coins picked up (seeded: a fixed outcome).
    assert np.isfinite(metrics["own_coin_share"]).all()
    assert np.abs(metrics["imitator/imitation_reward_raw"]).sum() > 0


def test_niceness_network_imitator_trains_and_reports(tmp_path, capsys):
    """Two iterations of 1 innovator + 1 niceness-network imitator through ``train`` (finite
    losses, the network's own losses logged), then the niceness report on the run."""
    from prosocial.cli import main
    from prosocial.experiments.train import train
    from prosocial.io import read_metrics

    out = train(tiny("network"), tmp_path / "nn", progress=False)
    cols = read_metrics(out)
    assert list(cols["update"]) == [1, 2]
    for k in ("imitator/niceness_loss", "imitator/policy_imitation_kl", "imitator/loss",
              "innovator/loss"):
        assert np.all(np.isfinite(cols[k])), k
    capsys.readouterr()
    main(["niceness", str(out), "--episodes", "2"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.split()[:1] == ["1"]]
    # imitator 1 scores the innovator's trajectory and its own, 3 action classes each; every
    # one of the 2 × 6 steps falls in exactly one class.
    assert [(r[1], " ".join(r[2:4])) for r in rows] == [
        (w, c) for w in ("innovator", "own") for c in ("other's coin", "own coin", "no coin")]
    for who in ("innovator", "own"):
        assert sum(int(r[-4]) for r in rows if r[1] == who) == 2 * 6
