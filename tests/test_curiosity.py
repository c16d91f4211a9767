"""The social curiosity module (specs.md §9.5): the pure curiosity and loss functions against
hand-derived values, the model's wiring and initialisation, the alignment of its inputs over
a recorded Cleanup rollout (against the MOA and the influence assembled by hand from their
public functions), the training loss against the rollout-time values across sequence and
rollout boundaries, where its gradients go, and training with PPO and A2C from
``--motive scm``."""

from __future__ import annotations

import dataclasses
from functools import partial
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import prosocial
from prosocial import nets
from prosocial.envs.core import event_keys
from prosocial.experiments.cli_train import parse_train_args
from prosocial.experiments.train import build
from prosocial.layout import chunk_starts, chunked_scan, to_sequences
from prosocial.learners.population import all_agents
from prosocial.learners.ppo import PPO, PPOConfig
from prosocial.learners.runner import Runner
from prosocial.motives.base import PolicyView
from prosocial.motives.config import MotiveConfig
from prosocial.motives.curiosity import (
    CuriosityModel,
    SocialCuriosity,
    curiosity_reward,
    inverse_error,
    masked_mean,
    scm_loss,
    surprise,
)
from prosocial.motives.influence import SocialInfluence, influence


def assert_close(actual, expected, tol=1e-6):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=tol, atol=tol)


# --- pure functions ----------------------------------------------------------------------------


def test_surprise_is_half_the_mean_squared_error():
    # φ − f = (1, 0, −1, 2): squares 1, 0, 1, 4, mean 1.5, half 0.75; second row φ = f → 0
    encoded = jnp.array([[1.0, 2.0, 0.0, 4.0], [0.5, 0.5, 0.5, 0.5]])
    predicted = jnp.array([[0.0, 2.0, 1.0, 2.0], [0.5, 0.5, 0.5, 0.5]])
    assert_close(surprise(encoded, predicted), [0.75, 0.0])


def test_inverse_error_is_the_squared_error():
    # (0.25 − 0.5)² = 0.0625, (3 − 1)² = 4
    assert_close(inverse_error(jnp.array([0.5, 1.0]), jnp.array([0.25, 3.0])), [0.0625, 4.0])


def test_curiosity_reward_shifts_clips_and_weighs():
    # L_F computed at steps 0..5; step t gets w·clip(L_F(t + 1)): L_F(0) = 9 belongs to a
    # step before the rollout and is dropped; the next values 0.5, 30 → 10, 2, −20 → −10,
    # 4; step 2 ends an episode → 0; the last step has no next value → 0. w = 0.001.
    lf = jnp.array([9.0, 0.5, 30.0, 2.0, -20.0, 4.0])
    valid = jnp.array([True, True, False, True, True, True])
    assert_close(curiosity_reward(lf, valid, 0.001, 10.0),
                 [0.0005, 0.01, 0.0, -0.01, 0.004, 0.0])
    # leading time axis, any trailing axes: [T = 2, 2]
    out = curiosity_reward(jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.ones((2, 2), bool), 2.0, 10.0)
    assert_close(out, [[6.0, 8.0], [0.0, 0.0]])


def test_scm_loss_weighs_forward_and_inverse_over_the_valid_steps():
    # One parameter set, one sequence of 4 steps; step 0 starts an episode (weight 0).
    lf = jnp.array([[[5.0, 1.0, 2.0, 3.0]]])
    li = jnp.array([[[7.0, 4.0, 0.0, 1.0]]])
    v = jnp.array([[[False, True, True, True]]])
    # w = 0.5: 0.5·(1 + 4) = 2.5, 0.5·(2 + 0) = 1, 0.5·(3 + 1) = 2 → 5.5 / 3
    assert_close(scm_loss(lf, li, v, 0.5), [5.5 / 3])
    # w = 0.2: 0.2·1 + 0.8·4 = 3.4, 0.4 + 0 = 0.4, 0.6 + 0.8 = 1.4 → 5.2 / 3
    assert_close(scm_loss(lf, li, v, 0.2), [5.2 / 3], tol=1e-6)
    # w = 1: the forward loss alone, (1 + 2 + 3) / 3; w = 0: the inverse alone, 5 / 3
    assert_close(scm_loss(lf, li, v, 1.0), [2.0])
    assert_close(scm_loss(lf, li, v, 0.0), [5.0 / 3])
    # no valid step: 0, not NaN
    assert_close(masked_mean(lf, jnp.zeros_like(v)), [0.0])


# --- the model ----------------------------------------------------------------------------------


def test_init_sizes_at_the_reference_scale():
    """SSD sizes (5 agents, 9 actions, 15×15×3 views, conv 6@3×3, MOA LSTM 128): φ has
    13·13·6 = 1014 features; f reads 1014 + 5·9 + 128 + 1 = 1188 inputs, g 2·1014 + 45 + 128
    = 2201; the Dense layers have normalised columns of norm 1, zero biases; the conv is
    Glorot-uniform with bound √(6 / (9·3 + 9·6)) = √(6/81)."""
    model = CuriosityModel((15, 15, 3), 6, 3, num_agents=5, num_actions=9, lstm_size=128,
                           hidden_size=32)
    params = model.init(jax.random.split(jax.random.PRNGKey(0), 2))
    shapes = jax.tree.map(lambda x: x.shape, params)
    assert shapes == {
        "encoder": {"kernel": (2, 3, 3, 3, 6), "bias": (2, 6)},
        "forward_0": {"kernel": (2, 1188, 32), "bias": (2, 32)},
        "forward_1": {"kernel": (2, 32, 1014), "bias": (2, 1014)},
        "inverse_0": {"kernel": (2, 2201, 32), "bias": (2, 32)},
        "inverse_1": {"kernel": (2, 32, 1), "bias": (2, 1)}}
    for name in ("forward_0", "forward_1", "inverse_0", "inverse_1"):
        assert_close(np.linalg.norm(params[name]["kernel"], axis=1), 1.0, tol=1e-5)
        assert np.all(np.asarray(params[name]["bias"]) == 0.0)
    conv = np.asarray(params["encoder"]["kernel"])
    bound = np.sqrt(6 / 81)
    assert np.abs(conv).max() <= bound and np.abs(conv).max() > 0.9 * bound
    # independent draws per parameter set
    assert not np.array_equal(conv[0], conv[1])


# A hand-sized model: 3×3×1 images and a 3×3 kernel give one position, so φ has F = 2
# features; N = 2 agents, |A| = 3, H = 2, one hidden unit. f reads [φ (2), a (6), h (2), c]
# = 11 inputs, g reads [φ (2), φ' (2), a (6), h (2)] = 12.
HAND = CuriosityModel((3, 3, 1), 2, 3, num_agents=2, num_actions=3, lstm_size=2,
                      hidden_size=1)


def one_input(n_in, slot, n_out, out_weights, out_bias):
    """Parameters of a two-layer head (one hidden unit) that reads only input ``slot``:
    hidden = tanh(x[slot]), output = hidden·out_weights + out_bias."""
    return ({"kernel": jnp.zeros((1, n_in, 1)).at[0, slot, 0].set(1.0), "bias": jnp.zeros((1, 1))},
            {"kernel": jnp.asarray(out_weights, jnp.float32).reshape(1, 1, n_out),
             "bias": jnp.asarray(out_bias, jnp.float32).reshape(1, n_out)})


def test_encoder_by_hand():
    """φ_f = ReLU(Σ kernel_f · rgb / 255 + b_f): filter 0 averages the image, filter 1 is
    0.5 minus the average. Image of 51s and 255s: mean (6·51 + 3·255) / 9 / 255 = 0.4667."""
    rgb = jnp.array([[51, 51, 255], [51, 255, 51], [255, 51, 51]], jnp.uint8)[None, None, :, :,
                                                                               None]
    kernel = jnp.stack([jnp.full((3, 3, 1), 1 / 9), jnp.full((3, 3, 1), -1 / 9)], axis=-1)
    params = {"encoder": {"kernel": kernel[None], "bias": jnp.array([[0.0, 0.5]])}}
    mean = (6 * 51 + 3 * 255) / 9 / 255
    assert_close(HAND.encode(params, rgb), [[[mean, 0.5 - mean]]], tol=1e-6)
    # a bright image: 0.5 − 1 < 0 is cut by the ReLU
    assert_close(HAND.encode(params, jnp.full((1, 1, 3, 3, 1), 255, jnp.uint8)), [[[1.0, 0.0]]],
                 tol=1e-6)


@pytest.mark.parametrize("slot, expected", [
    (0, 0.25),  # φ_0
    (1, -0.5),  # φ_1
    (2 + 0, 0.0), (2 + 2, 1.0),  # own action 2 (own first): one-hot slots 2..4
    (5 + 0, 1.0), (5 + 1, 0.0),  # the other's action 0: slots 5..7
    (8, 0.125), (9, -0.75),  # h
    (10, 0.375),  # the influence value c
])
def test_forward_model_reads_its_inputs_in_order(slot, expected):
    """f = ReLU(tanh(x W₁ + b₁) W₂ + b₂) with x = [φ, onehot(own, other), h, c]: a W₁ that
    reads one slot and W₂ = (1, −1), b₂ = (0, 0.5) give f = (ReLU(tanh x_s), ReLU(0.5 −
    tanh x_s))."""
    fc, out = one_input(11, slot, 2, [1.0, -1.0], [0.0, 0.5])
    params = {"forward_0": fc, "forward_1": out}
    f = HAND.forward(params, jnp.array([[[0.25, -0.5]]]), jnp.array([[[2, 0]]]),
                     jnp.array([[[0.125, -0.75]]]), jnp.array([[0.375]]))
    t = np.tanh(expected)
    assert_close(f, [[[max(t, 0.0), max(0.5 - t, 0.0)]]], tol=1e-6)


@pytest.mark.parametrize("slot, expected", [
    (0, 0.25), (1, -0.5),  # φ (before)
    (2, 0.75), (3, 0.0),  # φ' (after)
    (4 + 1, 1.0), (4 + 3 + 2, 1.0), (4 + 3 + 1, 0.0),  # own action 1, the other's 2
    (10, 0.125), (11, -0.75),  # h
])
def test_inverse_model_reads_its_inputs_in_order(slot, expected):
    """ĉ = ReLU(tanh(x V₁ + d₁) V₂ + d₂), x = [φ, φ', onehot(own, other), h]; V₂ = 2,
    d₂ = 0.5: ĉ = ReLU(2·tanh x_s + 0.5), e.g. x_s = −0.75 → ReLU(−0.77) = 0."""
    fc, out = one_input(12, slot, 1, [2.0], [0.5])
    params = {"inverse_0": fc, "inverse_1": out}
    c = HAND.inverse(params, jnp.array([[[0.25, -0.5]]]), jnp.array([[[0.75, 0.0]]]),
                     jnp.array([[[1, 2]]]), jnp.array([[[0.125, -0.75]]]))
    assert_close(c, [[max(2 * np.tanh(expected) + 0.5, 0.0)]], tol=1e-6)


# --- over a recorded Cleanup rollout ------------------------------------------------------------
N, E, T, L = 2, 2, 8, 4  # agents, envs, rollout steps, sequence length
MAX_STEPS = 12  # two rollouts: an episode of steps 0–11, the next one from step 12
NET = nets.NetConfig(conv_filters=2, hidden_sizes=(4,), lstm_size=4)
CFG = MotiveConfig(name="scm", moa_lstm_size=4, moa_hidden_sizes=(4,), scm_hidden_size=4,
                   influence_schedule=((0, 1.0),), curiosity_reward_weight=2.0,
                   curiosity_reward_clip=1e3)


def view_of(runner, ps, rollout):
    lay = runner.populations[0].layout
    return PolicyView(layout=lay, logits=rollout.policy[0]["logits"],
                      features=partial(runner.populations[0].policy.features, ps.params),
                      scan=partial(chunked_scan, seq_len=L))


@pytest.fixture(scope="module")
def rec():
    """Two consecutive 8-step rollouts of 2 near-random agents in Cleanup (2 envs), the SCM's
    rewards on them, and the record of both as 16 steps [G, P, E, ...]."""
    env = prosocial.make("cleanup", num_agents=N, max_steps=MAX_STEPS)
    motive = CFG.build()
    rule = PPO(PPOConfig(seq_len=L, num_epochs=1, num_minibatches=1,
                         ref_horizon_is_terminal=True))
    runner = Runner(env, (all_agents(env, rule, NET, motive),), num_envs=E, num_steps=T)
    state = runner.init(jax.random.PRNGKey(3))
    ps, lay = state.pops[0], runner.populations[0].layout
    si = SocialInfluence(dataclasses.replace(CFG, name="si"))
    si.check(runner.env, event_keys(runner.env))

    scm_run = jax.jit(lambda mp, c, r: motive.intrinsic(mp, c, r, view_of(runner, ps, r)))
    rollout_state = jax.tree.map(jnp.copy, state.rollout)
    carry = ps.motive_carry
    rollouts = []
    for _ in range(2):
        rollout_state, rollout, _, _ = runner._collect((ps.params,), rollout_state)
        carry_in = carry
        carry, reward, diagnostics, extras = scm_run(ps.motive_params, carry, rollout)
        rollouts.append(SimpleNamespace(rollout=rollout, carry_in=carry_in, reward=reward,
                                        diagnostics=diagnostics, extras=extras))
    cat = lambda f: jnp.concatenate([f(r) for r in rollouts])  # noqa: E731
    record = SimpleNamespace(
        rgb=cat(lambda r: lay.time_to_params(r.rollout.obs["rgb"])),
        own_first=cat(lambda r: r.extras["own_first_actions"]),
        starts=cat(lambda r: jax.vmap(lay.per_param)(r.rollout.start)),
        done=cat(lambda r: jax.vmap(lay.per_param)(r.rollout.done)),
        logits=cat(lambda r: r.rollout.policy[0]["logits"]),
        visible=cat(lambda r: lay.time_to_params(r.rollout.obs["visible"])))
    starts = np.asarray(record.starts[:, 0, 0])
    assert starts[0] and starts[12] and starts.sum() == 2
    return SimpleNamespace(env=runner.env, runner=runner, motive=motive, si=si, ps=ps, lay=lay,
                           rollouts=rollouts, record=record)


def by_hand(rec, params):
    return SimpleNamespace(**jax.tree.map(np.asarray, _by_hand(rec.motive, rec.ps.params,
                                                               params, vars(rec.record))))


@partial(jax.jit, static_argnums=0)
def _by_hand(motive, policy_params, params, r):
    """What each transition g → g + 1 of the 16-step record should give, from the MOA's and
    the SCM's public functions: the MOA state carried into g (u_{g−1}), the influence c_g of
    a_g, L_F and L_I of the transition (the forward model on [φ_g, a_g, u_{g−1}, c_g]
    predicting φ_{g+1}, the inverse model predicting c_g)."""
    r = SimpleNamespace(**r)
    mp, sp = params["moa"], params["scm"]
    moa, scm = motive.moa, motive.scm
    p = r.rgb.shape[1]
    feats = jax.vmap(lambda x: nets.conv_features(NET, policy_params, {"rgb": x}))(r.rgb)
    gates = jax.vmap(lambda f, a: moa.gates(mp, f, a))(feats, r.own_first)
    _, (carried, _) = moa.unroll(mp, gates, moa.initial_carry(p, E), r.starts)
    own = r.own_first[..., 0]
    no_start = jnp.zeros((p, E), bool)
    h_cf = jax.vmap(lambda c, g, a: moa.counterfactual_step(mp, c, g, a, no_start))(
        carried, gates, own)
    c = influence(jax.vmap(lambda h: moa.predict(mp, h))(h_cf), r.logits, own, r.visible)
    u = moa.hidden(carried)
    phi = jax.vmap(lambda x: scm.encode(sp, x))(r.rgb)
    f = jax.vmap(lambda *x: scm.forward(sp, *x))(phi[:-1], r.own_first[:-1], u[:-1], c[:-1])
    g = jax.vmap(lambda *x: scm.inverse(sp, *x))(phi[:-1], phi[1:], r.own_first[:-1], u[:-1])
    return {"c": c, "lf": surprise(phi[1:], f), "li": inverse_error(c[:-1], g)}


def test_reward_is_influence_plus_shifted_curiosity_by_hand(rec):
    """r_t = c_t (SI's influence reward with weight 1, no value near the clip) + 2·L_F of the
    transition t → t + 1; both parts 0 on the last step of an episode (step 11), the
    curiosity part also on each rollout's last step (steps 7, 15)."""
    hand = by_hand(rec, rec.ps.motive_params)
    done = np.asarray(rec.record.done)
    assert done[11].all() and done.sum() == done[11].size  # only step 11 ends an episode
    assert np.abs(hand.c).max() < CFG.influence_reward_clip
    for k, part in enumerate(rec.rollouts):
        reward = np.asarray(rec.lay.time_to_params(part.reward))  # [T, P, E]
        steps = range(k * T, (k + 1) * T)
        influence_part = np.array([0.0 * hand.c[g] if done[g].any() else hand.c[g]
                                   for g in steps])
        want = np.array([np.zeros_like(hand.lf[0]) if g == (k + 1) * T - 1 or done[g].any()
                         else 2.0 * hand.lf[g] for g in steps])
        assert_close(reward - influence_part, want, tol=2e-5)
        # the influence value stored for the loss is c_t of the step's own action
        assert_close(part.extras["influence"], hand.c[k * T:(k + 1) * T], tol=1e-5)
        assert_close(part.diagnostics["curiosity_reward"][0], want.mean(axis=(0, 2)), tol=2e-5)
    assert hand.lf.min() > 0.0 and np.abs(hand.c).max() > 0.0  # both parts are live


def sequences(rec, part):
    """The learner's minibatch of one rollout (all its sequences) and the loss's view."""
    lay, rollout = rec.lay, part.rollout
    to_seq = partial(to_sequences, seq_len=L)
    mb = {k: to_seq(v) for k, v in part.extras.items() if k != "initial_carry"}
    mb["initial_carry"] = jax.tree.map(chunk_starts, part.extras["initial_carry"])
    starts = to_seq(jax.vmap(lay.per_param)(rollout.start))
    mask = to_seq(lay.time_to_params(rollout.active))
    p, b = starts.shape[:2]
    rgb = to_seq(lay.time_to_params(rollout.obs["rgb"]))
    features = nets.conv_features(NET, rec.ps.params,
                                  {"rgb": rgb.reshape((p, b * L) + rgb.shape[3:])})
    return mb, PolicyView(features=features, starts=starts, mask=mask, obs={"rgb": rgb})


def to_time(x):
    """Sequences ``[P, chunks·E, L]`` → ``[T, P, E]``."""
    p = x.shape[0]
    return jnp.moveaxis(x.reshape(p, T // L, E, L), (1, 3), (0, 1)).reshape(T, p, E)


def test_training_loss_recomputes_the_rollouts_transitions(rec):
    """The loss's L_F and L_I of the transition into step g equal the by-hand values of the
    transition g − 1 → g: inside sequences, at a sequence start (g = 4, read from the stored
    state) and at the second rollout's first step (g = 8, from the first rollout's last step
    through the carry). Its MOA cross-entropy is SI's."""
    params = rec.ps.motive_params
    hand = by_hand(rec, params)
    starts = np.asarray(rec.record.starts)
    def jitted(method):
        return jax.jit(lambda params, mb, features, starts, mask, obs: method(
            params, mb, PolicyView(features=features, starts=starts, mask=mask, obs=obs)))

    losses, scm_loss_terms = jitted(rec.motive.transition_losses), jitted(rec.motive.loss)
    si_loss = jitted(rec.si.loss)
    for k, part in enumerate(rec.rollouts):
        mb, view = sequences(rec, part)
        moa_loss, lf, li = losses(params, mb, view.features, view.starts, view.mask,
                                  view.obs)
        lf, li = np.asarray(to_time(lf)), np.asarray(to_time(li))
        for t in range(T):
            g = k * T + t
            if starts[g].any():
                continue
            assert_close(lf[t], hand.lf[g - 1], tol=2e-5)
            assert_close(li[t], hand.li[g - 1], tol=2e-5)
        si_mb = dict(mb, initial_carry=mb["initial_carry"][0])
        _, terms = si_loss(params["moa"], si_mb, view.features, view.starts, view.mask,
                           view.obs)
        assert_close(moa_loss, terms["moa_loss"], tol=1e-6)
        total, terms = scm_loss_terms(params, mb, view.features, view.starts, view.mask,
                                      view.obs)
        weights = np.asarray(view.mask & ~view.starts)
        want = (0.5 * (lf + li) * to_time(weights)).sum(axis=(0, 2)) / to_time(weights).sum(
            axis=(0, 2))
        assert_close(terms["scm_loss"], want, tol=1e-5)
        assert_close(total, CFG.moa_loss_weight * terms["moa_loss"].sum() + want.sum(),
                     tol=1e-5)


def test_chunked_training_losses_equal_the_whole_batch(rec, monkeypatch):
    """With chunks of 2 of the 4 sequences (CHUNK_IMAGES = 10, sequences of L + 1 = 5
    images, WHOLE_IMAGES = 0 so that even this small batch is chunked), L_F, L_I and the
    gradient of the loss are those of the whole batch at once."""
    from prosocial.motives import chunking

    params = rec.ps.motive_params
    mb, view = sequences(rec, rec.rollouts[1])
    assert view.starts.shape[1] == 4 and L + 1 == 5

    def run():
        def total(params):
            loss, _ = rec.motive.loss(params, mb, view)
            return loss
        _, lf, li = jax.jit(lambda p: rec.motive.transition_losses(p, mb, view))(params)
        return lf, li, jax.jit(jax.grad(total))(params)

    whole = run()
    monkeypatch.setattr(chunking, "CHUNK_IMAGES", 10)
    monkeypatch.setattr(chunking, "WHOLE_IMAGES", 0)
    assert chunking.chunk_rows(4, L) == 2
    chunked = run()
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(chunked), strict=True):
        assert_close(b, a, tol=1e-6)
    assert np.abs(np.asarray(whole[2]["scm"]["encoder"]["kernel"])).max() > 0.0


def test_chunk_rows():
    """Sequences per chunk: the whole batch up to WHOLE_IMAGES = 8192 images; above, the
    largest divisor of B within CHUNK_IMAGES = 1024 images, unless that is under a quarter
    of the target (then the whole batch)."""
    from prosocial.motives.chunking import chunk_rows as _chunk_rows

    assert _chunk_rows(224, 20) == 224    # 224 · 21 = 4704 images ≤ 8192: whole (PPO)
    assert _chunk_rows(390, 20) == 390    # 8190 images: whole
    assert _chunk_rows(392, 20) == 28     # 8232 > 8192; 1024 // 21 = 48 → divisor 28 ≥ 48/4
    assert _chunk_rows(128, 128) == 4     # 16512 images; 1024 // 129 = 7 → divisor 4 ≥ 7/4
    assert _chunk_rows(8, 4) == 8         # 40 images: whole
    assert _chunk_rows(127, 128) == 127   # prime: chunks of 1 < 7/4, so the whole batch


def test_scm_gradients_reach_its_models_not_the_moa_or_the_policy(rec):
    part = rec.rollouts[1]
    mb, view = sequences(rec, part)
    rgb = to_sequences(rec.lay.time_to_params(part.rollout.obs["rgb"]), L)
    rgb = rgb.reshape((rgb.shape[0], -1) + rgb.shape[3:])
    params = rec.ps.motive_params
    # a live ReLU on the inverse model's output, whatever its draw
    params = {**params, "scm": {**params["scm"], "inverse_1": {
        **params["scm"]["inverse_1"], "bias": jnp.ones_like(params["scm"]["inverse_1"]["bias"])}}}
    norm = lambda tree: float(sum(jnp.sum(x * x) for x in jax.tree.leaves(tree)))  # noqa: E731

    weights = view.mask & ~view.starts

    def losses(motive, params, policy_params):
        v = dataclasses.replace(view, features=nets.conv_features(NET, policy_params,
                                                                  {"rgb": rgb}))
        if motive.cfg.ref_aux_losses_detached:
            return motive.loss(params, mb, v)[0]
        moa_loss, lf, li = motive.transition_losses(params, mb, v)
        return jnp.stack([moa_loss.sum(), scm_loss(lf, li, weights, 0.5).sum()])

    g, policy = jax.jit(jax.jacrev(partial(losses, rec.motive), argnums=(0, 1)))(
        params, rec.ps.params)
    row = lambda tree, i: jax.tree.map(lambda x: x[i], tree)  # noqa: E731
    # the SCM loss: its own models only (stop-gradient on u; c is data)
    g_scm = row(g, 1)
    for name in ("encoder", "forward_0", "forward_1", "inverse_0", "inverse_1"):
        assert norm(g_scm["scm"][name]) > 0.0, name
    assert norm(g_scm["moa"]) == 0.0 and norm(row(policy, 1)) == 0.0
    # the MOA loss: the MOA and the policy's shared conv, not the SCM
    g_moa = row(g, 0)
    assert norm(g_moa["moa"]) > 0.0 and norm(row(policy, 0)["conv"]) > 0.0
    assert norm(g_moa["scm"]) == 0.0
    # B-01: the reference's models never train
    detached = SocialCuriosity(dataclasses.replace(CFG, ref_aux_losses_detached=True))
    detached.check(rec.env, event_keys(rec.env))
    detached.scm = rec.motive.scm
    g, policy = jax.jit(jax.grad(partial(losses, detached), argnums=(0, 1)))(
        params, rec.ps.params)
    assert norm(g) == 0.0 and norm(policy) == 0.0


# --- training --------------------------------------------------------------------------------
TINY_ARGS = ["--motive", "scm", "--env", "cleanup", "--num-agents", "2", "--max-steps", "6",
             "--num-envs", "2", "--num-steps", "8", "--seq-len", "4", "--num-epochs", "1",
             "--num-minibatches", "1", "--conv-filters", "2", "--hidden-sizes", "4",
             "--lstm-size", "4", "--motive.moa-lstm-size", "4", "--motive.moa-hidden-sizes",
             "4", "--motive.scm-hidden-size", "4", "--motive.curiosity-reward-weight", "1.0"]


# A2C's single iteration with SCM is in the default suite's compose contract; its three
# iterations here run with -m slow.
@pytest.mark.slow  # the compose contract trains SCM by default (tiny nets)
@pytest.mark.parametrize("learner", ["ppo", "a2c"])
def test_motive_scm_trains_without_nan(learner, tmp_path):
    cfg, _, _, _ = parse_train_args([*TINY_ARGS, "--learner", learner,
                                     "--out", str(tmp_path / "run")])
    assert cfg.motive.name == "scm" and cfg.learner == learner
    runner = build(cfg)
    state = runner.init(jax.random.PRNGKey(0))
    before = jax.tree.map(np.asarray, state.pops[0].motive_params)
    for _ in range(3):
        state, metrics = runner.iteration(state)
        for name in ("policy_loss", "moa_loss", "scm_loss", "scm_forward_loss",
                     "scm_inverse_loss", "curiosity_reward", "influence_reward",
                     "intrinsic_return"):
            assert np.all(np.isfinite(np.asarray(metrics[name]))), name
    assert np.all(np.asarray(metrics["curiosity_reward"]) > 0.0)
    after = state.pops[0].motive_params
    for name in ("encoder", "forward_0", "forward_1", "inverse_0"):
        assert not np.array_equal(before["scm"][name]["kernel"], after["scm"][name]["kernel"])
    assert not np.array_equal(before["moa"]["out"]["kernel"], after["moa"]["out"]["kernel"])


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("change, message", [
    ({"scm_forward_vs_inverse_loss_weight": 1.5}, "must be in \\[0, 1\\]"),
    ({"curiosity_reward_weight": -1.0}, "curiosity_reward_weight must be ≥ 0"),
    ({"curiosity_reward_clip": float("nan")}, "curiosity_reward_clip must be ≥ 0"),
    ({"scm_loss_weight": -0.1}, "scm_loss_weight must be ≥ 0"),
    ({"scm_hidden_size": 0}, "scm_hidden_size must be a positive integer"),
])
def test_rejects_bad_values(change, message):
    with pytest.raises(ValueError, match=message):
        MotiveConfig(name="scm", **change).build()


def test_init_carry_needs_the_model_sizes():
    from prosocial.layout import Layout

    with pytest.raises(ValueError, match="init_params first"):
        MotiveConfig(name="scm").build().init_carry(Layout(1, 2, (0, 1)), 2)
