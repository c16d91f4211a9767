"""EMuReL (specs.md §9.6, D-11, D-12, B-01, B-14, B-15, B-16, B-18): the environmental impact,
its normalisation and the eq. 4 reward against hand-computed values; N = 2 is smoothed IA;
the extended ICM's layers, its alignment with the MOA's state and the rollout's transitions;
the losses and where their gradients go; training with PPO and A2C on Cleanup."""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import prosocial
from prosocial import nets
from prosocial.layout import Layout, chunked_scan
from prosocial.learners.a2c import A2C, A2CConfig
from prosocial.learners.population import all_agents
from prosocial.learners.ppo import PPO, PPOConfig
from prosocial.learners.runner import Runner
from prosocial.motives.base import PolicyView
from prosocial.motives.config import MotiveConfig
from prosocial.motives.emurel import (
    EMuReL,
    ImpactModel,
    ablated_joint_actions,
    environmental_impact,
    environmental_impact_reward,
    inverse_cross_entropy,
    normalise_impact,
)
from prosocial.motives.inequity import InequityAversion, inequity_aversion, smooth_rewards
from prosocial.motives.moa import own_first_order


def assert_close(actual, expected, tol=1e-6):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=tol, atol=tol)


# --- the pure functions (§9.6 steps 2–4, eq. 4) ---------------------------------------------


def test_ablated_joint_actions_zero_one_other_block_per_row():
    # N = 3, |A| = 2, own-first joint action (own 1, others 0 and 1)
    onehot = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert_close(ablated_joint_actions(onehot), [[0, 1, 1, 0, 0, 1],   # the joint action
                                                 [0, 1, 0, 0, 0, 1],   # first other removed
                                                 [0, 1, 1, 0, 0, 0]])  # second other removed


def test_environmental_impact_by_hand():
    # ŝ = (1, 2); ŝ^{−1} = ŝ → 0; ŝ^{−2} = (3, 2): ½·mean(4, 0) = 1
    assert_close(environmental_impact(jnp.array([1.0, 2.0]), jnp.array([[1.0, 2.0],
                                                                          [3.0, 2.0]])),
                 [0.0, 1.0])
    with pytest.raises(ValueError, match="ablated must have shape"):
        environmental_impact(jnp.zeros(3), jnp.zeros((2, 4)))


ICM = ImpactModel((5, 5, 3), conv_filters=2, conv_kernel=3, num_agents=3, num_actions=4,
                  lstm_size=6)


def test_impact_is_zero_for_an_agent_whose_action_block_the_model_ignores():
    """The forward model's input weights of the second other agent's block are 0: its
    impact is exactly 0 (the ablated input gives the same prediction), the first other's is
    positive."""
    params = ICM.init(jax.random.split(jax.random.PRNGKey(0), 2))
    q, h, a = ICM.q, 6, 4
    block = slice(q + h + 2 * a, q + h + 3 * a)  # own, other 1, other 2 → block 2
    params["forward_0"]["kernel"] = params["forward_0"]["kernel"].at[:, block].set(0.0)
    key = jax.random.split(jax.random.PRNGKey(1), 3)
    phi = jax.random.uniform(key[0], (2, 7, q))
    u = jax.random.normal(key[1], (2, 7, h))
    acts = jax.random.randint(key[2], (2, 7, 3), 0, a)
    impact = np.asarray(ICM.impacts(params, phi, u, acts))
    assert impact.shape == (2, 7, 2)
    assert np.all(impact[..., 1] == 0.0) and np.all(impact[..., 0] > 0.0)


def test_forward_and_inverse_are_the_dense_layers_on_the_concatenated_inputs():
    params = ICM.init(jax.random.split(jax.random.PRNGKey(2), 1))
    key = jax.random.split(jax.random.PRNGKey(3), 4)
    phi, phi_next = (jax.random.uniform(k, (1, 3, ICM.q)) for k in key[:2])
    u = jax.random.normal(key[2], (1, 3, 6))
    joint = ablated_joint_actions(jax.nn.one_hot(jax.random.randint(key[3], (1, 3, 3), 0, 4),
                                                 4))  # [1, 3, V = 3, 12]

    def dense(layer, x):
        return np.asarray(x, np.float64) @ np.asarray(layer["kernel"][0], np.float64) \
            + np.asarray(layer["bias"][0], np.float64)

    for v in range(3):
        x = np.concatenate([phi[0], u[0], joint[0, :, v]], axis=-1)
        want = np.maximum(dense(params["forward_1"], np.tanh(dense(params["forward_0"], x))), 0)
        assert_close(ICM.forward(params, phi, u, joint)[0, :, v], want, tol=1e-4)
    x = np.concatenate([phi[0], phi_next[0], u[0]], axis=-1)
    logits = dense(params["inverse_1"], np.tanh(dense(params["inverse_0"], x)))
    assert_close(ICM.inverse(params, phi, phi_next, u)[0], logits.reshape(3, 3, 4), tol=1e-4)
    # B-15: the reference's ReLU on the logits
    relu = ImpactModel((5, 5, 3), 2, 3, 3, 4, 6, relu_logits=True)
    assert_close(relu.inverse(params, phi, phi_next, u)[0],
                 np.maximum(logits, 0).reshape(3, 3, 4), tol=1e-4)
    assert (logits < 0).any()


def test_inverse_cross_entropy_sums_over_all_agents():
    # uniform logits: N·ln|A|; one agent's logit +ln 3 on its action (p = 3/(3+3) = ½)
    logits = jnp.zeros((3, 4)).at[1, 2].set(math.log(3.0))
    assert_close(inverse_cross_entropy(logits, jnp.array([0, 2, 3])),
                 2 * math.log(4.0) + math.log(2.0), tol=1e-6)


# Three agents: raw impacts L_kj, row k for the others j ≠ k in increasing index.
L3 = np.array([[0.4, 0.8],    # agent 0 about agents 1, 2
               [0.5, 0.1],    # agent 1 about agents 0, 2
               [0.03, 0.12]])  # agent 2 about agents 0, 1


def test_normalise_impact_three_agents_by_hand():
    # d = L / (max L + 1e-8): [0.5, 1], [1, 0.2], [0.25, 1] (1e-8 moves them by < 1e-6)
    assert_close(normalise_impact(L3), [[0.5, 1.0], [1.0, 0.2], [0.25, 1.0]])
    # min–max over the others: the larger 1, the smaller 0 when there are two
    assert_close(normalise_impact(L3, "minmax_others"), [[0, 1], [1, 0], [0, 1]])
    four = np.array([0.2, 0.6, 1.0])
    assert_close(normalise_impact(four, "minmax_others"), [0.0, 0.5, 1.0])
    # B-14: all impacts 0 give 0 with the guard, NaN without it (the reference)
    assert_close(normalise_impact(np.zeros(2)), [0.0, 0.0])
    assert np.all(np.isnan(np.asarray(normalise_impact(np.zeros(2), eps=0.0))))
    with pytest.raises(ValueError, match="unknown impact_norm"):
        normalise_impact(L3, "sum")


def test_reward_three_agents_by_hand():
    """Eq. 4 from the impacts of L3, per-agent α and β, smoothed rewards w = (1, 3, 0.5):

    k = 0: d·w = (0.5·3, 1·0.5) = (1.5, 0.5): envy 0.5, guilt 0.5
           i_0 = −(1.0·0.5 + 0.1·0.5)/2 = −0.275
    k = 1: d·w = (1·1, 0.2·0.5) = (1, 0.1): envy 0, guilt 2 + 2.9 = 4.9
           i_1 = −(0.5·0 + 0.2·4.9)/2 = −0.49
    k = 2: d·w = (0.25·1, 1·3) = (0.25, 3): envy 2.5, guilt 0.25
           i_2 = −(2.0·2.5 + 0.3·0.25)/2 = −2.5375
    """
    w = np.array([1.0, 3.0, 0.5])
    alpha, beta = np.array([1.0, 0.5, 2.0]), np.array([0.1, 0.2, 0.3])
    reward = environmental_impact_reward(w, normalise_impact(L3), alpha, beta)
    assert_close(reward, [-0.275, -0.49, -2.5375], tol=1e-6)
    # with every d = 1 it is inequity aversion
    assert_close(environmental_impact_reward(w, np.ones((3, 2)), alpha, beta),
                 inequity_aversion(w, alpha, beta))
    with pytest.raises(ValueError, match=r"impact must have shape \(3, 2\)"):
        environmental_impact_reward(w, np.ones((3, 3)), 0.0, 0.05)
    with pytest.raises(ValueError, match=r"alpha must be a scalar or have shape \(3,\)"):
        environmental_impact_reward(w, np.ones((3, 2)), np.ones(2), 0.05)


def test_two_agents_reduce_to_smoothed_inequity_aversion():
    """N = 2: the single other agent's normalised impact is L/(L + 1e-8) ≈ 1 for any L > 0,
    so eq. 4 on the smoothed rewards is IA's eq. 2 on them (α = 5, β = 0.05, γλ = 0.81)."""
    key = jax.random.split(jax.random.PRNGKey(4), 2)
    rewards = jax.random.choice(key[0], jnp.array([-1.0, 0.0, 1.0]), (50, 3, 2))
    impact = jax.random.uniform(key[1], (50, 3, 2, 1), minval=1e-3, maxval=1.0)
    w = smooth_rewards(rewards, 0.81)
    got = environmental_impact_reward(w, normalise_impact(impact), 5.0, 0.05)
    assert_close(got, inequity_aversion(w, 5.0, 0.05), tol=1e-5)
    assert np.asarray(got).min() < -1.0


# --- the motive on a Cleanup rollout -----------------------------------------------------------
T, E, N, MAX = 8, 2, 3, 6  # steps, envs, agents, episode length: an episode ends at step 5
CORRIDOR = ["@@@@@@@@@@@@@@@@@@@@@@@@",
            "@HRRRRRRRRRRRRRRRRRRRRH@",
            "@P   P         P     P @",
            "@BBBBBBBBBBBBBBBBBBBBBB@",
            "@@@@@@@@@@@@@@@@@@@@@@@@"]
NET = nets.NetConfig(conv_filters=2, hidden_sizes=(8,), lstm_size=8)
CFG = MotiveConfig(name="emurel", alpha=5.0, beta=0.05, moa_lstm_size=8, moa_hidden_sizes=(8,))


def make_runner(cfg=CFG, learner="ppo", num_agents=N):
    env = prosocial.make("cleanup", num_agents=num_agents, max_steps=MAX, map=CORRIDOR)
    rule = (PPO(PPOConfig(seq_len=4, num_epochs=1, num_minibatches=1,
                          ref_horizon_is_terminal=True)) if learner == "ppo"
            else A2C(A2CConfig(lr=1e-3, ref_horizon_is_terminal=True)))
    return Runner(env, (all_agents(env, rule, NET, cfg.build()),), num_envs=E, num_steps=T)


def view_of(policy_params, num_agents=N, seq_len=4):
    return PolicyView(layout=Layout(1, num_agents, tuple(range(num_agents))),
                      features=partial(nets.conv_features, NET, policy_params),
                      scan=partial(chunked_scan, seq_len=seq_len))


@pytest.fixture(scope="module")
def run():
    """A 3-agent Cleanup EMuReL learner at init and one rollout of its policies (from the
    learner's own compiled collection step): 8 steps, the first episode ends at step 5 and
    the second starts at step 6."""
    runner = make_runner()
    state = runner.init(jax.random.PRNGKey(0))
    params = tuple(ps.params for ps in state.pops)
    _, rollout, _, _ = runner._collect(params, jax.tree.map(jnp.copy, state.rollout))
    motive = runner.populations[0].motive
    intrinsic = jax.jit(lambda p, c, r, pp: motive.intrinsic(p, c, r, view_of(pp)))
    lay = Layout(1, N, tuple(range(N)))
    return SimpleNamespace(runner=runner, state=state, ps=state.pops[0], rollout=rollout,
                           motive=motive, lay=lay, intrinsic=intrinsic,
                           out=intrinsic(state.pops[0].motive_params,
                                         motive.init_carry(lay, E), rollout,
                                         state.pops[0].params))


def hand_moa_state_and_impacts(run):
    """u_τ (the MOA state carried into step τ, [T, P, E, H]) and L ([T, P, E, N − 1]) step by
    step with the model's own pieces, parameter set p = agent k."""
    lay, mp, pp, moa = run.lay, run.ps.motive_params, run.ps.params, run.motive.moa
    own_first = lay.time_to_params(run.rollout.action[..., own_first_order(N)])
    rgb = lay.time_to_params(run.rollout.obs["rgb"])
    starts = jax.vmap(lay.per_param)(run.rollout.start)
    gates = jnp.stack([moa.gates(mp["moa"], nets.conv_features(NET, pp, {"rgb": rgb[t]}),
                                 own_first[t]) for t in range(T)])
    _, (carried, _) = moa.unroll(mp["moa"], gates, moa.initial_carry(N, E), starts)
    u = carried[1]
    icm = run.motive.impact_model(mp, rgb.shape[-3:])
    impact = jnp.stack([icm.impacts(mp["icm"], icm.encode(mp["icm"], rgb[t]), u[t],
                                    own_first[t]) for t in range(T)])
    return own_first, rgb, u, icm, np.asarray(impact, np.float64)


def numpy_eq4(rewards, done, d, gamma_lambda, alpha, beta):
    """Eq. 4 by hand for one seed: rewards [T, E, N], done [T, E], d [T, E, N, N − 1]."""
    t_len, e_len, n = rewards.shape
    out = np.zeros(rewards.shape)
    for e in range(e_len):
        w = np.zeros(n)
        for t in range(t_len):
            w = gamma_lambda * w + rewards[t, e]
            for k in range(n):
                others = [j for j in range(n) if j != k]
                dw = [d[t, e, k, i] * w[j] for i, j in enumerate(others)]
                envy = sum(max(x - w[k], 0.0) for x in dw)
                guilt = sum(max(w[k] - x, 0.0) for x in dw)
                out[t, e, k] = -(alpha * envy + beta * guilt) / (n - 1)
            if done[t, e]:
                w = np.zeros(n)
    return out


def test_intrinsic_is_eq4_of_the_impacts_from_the_moas_carried_state(run):
    rollout = run.rollout
    done = np.asarray(rollout.done)[:, 0]
    assert done[MAX - 1].all() and not done[:MAX - 1].any()
    rewards = np.asarray(rollout.reward, np.float64)[:, 0]  # [T, E, N]
    assert (rewards != 0).any(), "the rollout needs rewards (FIRE fines) to compare"
    _, _, u, _, impact = hand_moa_state_and_impacts(run)
    # u is 0 where an episode starts (steps 0 and 6) and not elsewhere
    norms = np.abs(np.asarray(u)).sum(axis=(1, 2, 3))
    assert norms[0] == 0 and norms[MAX] == 0 and np.all(norms[[1, 2, 3, 4, 5, 7]] > 0)
    d = impact / (impact.max(axis=-1, keepdims=True) + 1e-8)  # [T, P = k, E, N − 1]
    d_env = np.moveaxis(d, 1, 2)  # [T, E, N, N − 1]
    want = numpy_eq4(rewards, done, d_env, 0.81, 5.0, 0.05)
    carry, reward, diagnostics, extras = run.out
    assert reward.shape == (T, 1, E, N)
    assert_close(np.asarray(reward)[:, 0], want, tol=1e-4)
    assert np.abs(want).max() > 0.01
    assert_close(diagnostics["environmental_impact"][0], d_env.mean(axis=(0, 1, 3)), tol=1e-5)
    assert_close(diagnostics["emurel_reward"][0], want.mean(axis=(0, 1)), tol=1e-4)
    # the trace carried into the next rollout: the second episode's w after steps 6 and 7
    assert_close(carry["trace"][0], 0.81 * rewards[MAX] + rewards[MAX + 1], tol=1e-5)
    # step 5 (the last of an episode) and step 7 (the last of the rollout) have their impact
    # too (B-18), but no transition to train on
    assert np.all(d[[MAX - 1, T - 1]] > 0)
    has_next = np.asarray(extras["has_next"])
    assert np.all(has_next[[0, 1, 2, 3, 4, 6]]) and not has_next[[MAX - 1, T - 1]].any()
    # the image after each step, beside the policy's own images (which the loss reads)
    rgb = np.asarray(run.lay.time_to_params(rollout.obs["rgb"]))
    next_rgb = np.asarray(extras["next_rgb"])
    np.testing.assert_array_equal(next_rgb[:-1], rgb[1:])
    assert "rgb" not in extras


def test_intrinsic_with_two_agents_is_smoothed_ia():
    """The EMuReL motive on a 2-agent rollout gives IA's rewards (γλ = 0.81, α = 5,
    β = 0.05): the normalised impact of the one other agent is L/(L + 1e-8). At init L is
    of order 1e-5 to 1e-4, so d is within ~1e-3 of 1 and the rewards (|w| ≤ 3, α = 5)
    within 1e-2 of IA's; with the guard's ε scaled away (L ≫ 1e-8) they would be equal."""
    env = prosocial.make("cleanup", num_agents=2, max_steps=MAX, map=CORRIDOR)
    motive = CFG.build()
    motive.check(env, ("apples_eaten",))
    keys = jax.random.split(jax.random.PRNGKey(5), 4)
    policy = all_agents(env, None, NET, motive).policy
    pp = policy.init(keys[:2])
    mp = motive.init_params(keys[2:], env, policy)
    k = jax.random.split(jax.random.PRNGKey(6), 4)
    rollout = SimpleNamespace(
        obs={"rgb": jax.random.randint(k[0], (T, 1, E, 2, 15, 15, 3), 0, 256).astype(jnp.uint8),
             "visible": jnp.ones((T, 1, E, 2, 1))},
        action=jax.random.randint(k[1], (T, 1, E, 2), 0, env.num_actions),
        reward=jax.random.choice(k[2], jnp.array([-1.0, 0.0, 1.0]), (T, 1, E, 2)),
        start=jnp.zeros((T, 1, E), bool).at[0].set(True).at[MAX].set(True),
        done=jnp.zeros((T, 1, E), bool).at[MAX - 1].set(True))
    lay = Layout(1, 2, (0, 1))
    _, reward, diagnostics, _ = jax.jit(lambda: motive.intrinsic(
        mp, motive.init_carry(lay, E), rollout, view_of(pp, 2)))()
    ia = InequityAversion(alpha=5.0, beta=0.05)
    _, want, _, _ = ia.intrinsic((), ia.init_carry(lay, E), rollout, view_of(pp, 2))
    d = np.asarray(diagnostics["environmental_impact"])
    assert np.all(d > 0.99) and np.all(d < 1.0)
    np.testing.assert_allclose(np.asarray(reward), np.asarray(want), rtol=1e-3, atol=1e-2)
    assert np.asarray(want).min() < -4.0


# --- the losses (eqs. 8, 10; B-01, B-16) -------------------------------------------------------


def loss_and_grads(run, cfg):
    """The EMuReL loss, its terms and its gradients (motive, policy parameters) on one T-step
    sequence per env of the fixture's rollout."""
    extras = run.out[3]
    seq = lambda x: jnp.moveaxis(x, 0, 2)  # noqa: E731  [T, P, E, ...] → [P, E, T, ...]
    mb = {k: seq(extras[k]) for k in ("own_first_actions", "next_others", "next_visible",
                                      "next_rgb", "has_next")}
    mb["initial_carry"] = jax.tree.map(lambda x: x[0], extras["initial_carry"])
    starts = seq(jax.vmap(run.lay.per_param)(run.rollout.start))
    rgb = seq(run.lay.time_to_params(run.rollout.obs["rgb"]))  # the minibatch's observations
    flat_rgb = rgb.reshape((N, E * T) + rgb.shape[-3:])

    def loss(mp, pp):
        motive = EMuReL(cfg)
        motive.check(run.runner.env, ("apples_eaten",))
        view = PolicyView(features=nets.conv_features(NET, pp, {"rgb": flat_rgb}),
                          starts=starts, mask=jnp.ones((N, E, T), bool), obs={"rgb": rgb})
        return motive.loss(mp, mb, view)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
        run.ps.motive_params, run.ps.params)


def test_chunked_losses_equal_the_whole_batch(run, monkeypatch):
    """In chunks of one of the E = 2 sequences (CHUNK_IMAGES = T + 1 = 9 images,
    WHOLE_IMAGES = 0 so that even this small batch is chunked), the loss, its terms and its
    gradients are those of the whole batch at once."""
    from prosocial.motives import chunking

    whole = loss_and_grads(run, CFG)
    monkeypatch.setattr(chunking, "CHUNK_IMAGES", T + 1)
    monkeypatch.setattr(chunking, "WHOLE_IMAGES", 0)
    assert chunking.chunk_rows(E, T) == 1
    chunked = loss_and_grads(run, CFG)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(chunked), strict=True):
        assert_close(b, a, tol=1e-6)
    assert float(np.abs(np.asarray(whole[1][0]["icm"]["phi"]["kernel"])).max()) > 0.0


def test_losses_on_the_rollouts_transitions_and_where_their_gradients_go(run):
    """The loss on one T-step sequence per env: L_F and L_I by hand over the transitions
    τ → τ + 1 inside an episode (not steps 5 and 7), their weighting, and the gradients: the
    MOA loss reaches the MOA and the policy's conv; the ICM losses reach φ, f and g but not
    the MOA (u is under a stop-gradient); ``ref_aux_losses_detached`` passes none (B-01)."""
    own_first, rgb, u, icm, _ = hand_moa_state_and_impacts(run)
    mp = run.ps.motive_params
    grads = partial(loss_and_grads, run)
    (total, terms), (g_model, g_policy) = grads(CFG)
    # by hand: valid transitions are steps 0–4 and 6 of each env
    valid = [0, 1, 2, 3, 4, 6]
    phi = jnp.stack([icm.encode(mp["icm"], rgb[t]) for t in range(T)])  # [T, P, E, q]
    forward, inverse = [], []
    for t in valid:
        joint = jax.nn.one_hot(own_first[t], 9).reshape(N, E, 1, -1)
        pred = icm.forward(mp["icm"], phi[t], u[t], joint)[:, :, 0]
        forward.append(0.5 * np.mean(np.square(np.asarray(pred - phi[t + 1])), axis=-1))
        logits = np.asarray(icm.inverse(mp["icm"], phi[t], phi[t + 1], u[t]), np.float64)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        acts = np.asarray(own_first[t])
        inverse.append(-np.take_along_axis(logp, acts[..., None], -1)[..., 0].sum(-1))
    want_f = np.mean(forward, axis=(0, 2))  # [P]
    want_i = np.mean(inverse, axis=(0, 2))
    assert_close(terms["forward_loss"], want_f, tol=1e-5)
    assert_close(terms["inverse_loss"], want_i, tol=1e-4)
    # the inverse model at init predicts all N actions near uniformly: ≈ N·ln 9 ≈ 6.6
    assert np.all(np.abs(want_i - N * math.log(9)) < 1.0)
    assert_close(total, CFG.moa_loss_weight * np.sum(terms["moa_loss"])
                 + CFG.scm_loss_weight * np.sum(0.5 * want_f + 0.5 * want_i), tol=1e-4)

    norm = lambda tree: float(sum(jnp.sum(x * x) for x in jax.tree.leaves(tree)))  # noqa: E731
    for part in ("phi", "forward_0", "forward_1", "inverse_0", "inverse_1"):
        assert norm(g_model["icm"][part]) > 0, part
    assert norm(g_model["moa"]) > 0 and norm(g_policy["conv"]) > 0
    # Without the MOA loss nothing reaches the MOA or the policy: u is a stop-gradient input
    _, (g_model, g_policy) = grads(dataclasses.replace(CFG, moa_loss_weight=0.0))
    assert norm(g_model["moa"]) == 0 and norm(g_policy) == 0 and norm(g_model["icm"]) > 0
    # B-01: the reference's losses carry no gradient
    _, (g_model, g_policy) = grads(dataclasses.replace(CFG, ref_aux_losses_detached=True))
    assert norm(g_model) == 0 and norm(g_policy) == 0


# --- training with both learners -----------------------------------------------------------


def train(runner, iterations=3):
    state = runner.init(jax.random.PRNGKey(1))
    before = jax.tree.map(np.asarray, (state.pops[0].params, state.pops[0].motive_params))
    for _ in range(iterations):
        state, metrics = runner.iteration(state)
        for name in ("policy_loss", "entropy", "moa_loss", "forward_loss", "inverse_loss",
                     "moa_accuracy", "environmental_impact", "emurel_reward",
                     "intrinsic_return"):
            assert np.all(np.isfinite(np.asarray(metrics[name]))), name
    after = jax.tree.map(np.asarray, (state.pops[0].params, state.pops[0].motive_params))
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), before, after)
    return metrics, changed


@pytest.mark.slow  # the compose contract trains EMuReL by default (tiny nets)
@pytest.mark.parametrize("learner", ["ppo", "a2c"])
def test_emurel_trains_without_nan_and_moves_every_model(run, learner):
    runner = run.runner if learner == "ppo" else make_runner(learner="a2c")
    metrics, (policy, model) = train(runner)
    for name in ("moa_loss", "forward_loss", "inverse_loss", "moa_accuracy"):
        assert metrics[name].shape == (1,), name
    assert metrics["environmental_impact"].shape == (1, N)
    assert all(jax.tree.leaves(policy))
    assert all(jax.tree.leaves(model)), model


@pytest.mark.slow
def test_ref_aux_losses_detached_keeps_every_model_at_init():
    cfg = dataclasses.replace(CFG, ref_aux_losses_detached=True, ref_inverse_relu_logits=True)
    _, (policy, model) = train(make_runner(cfg), iterations=2)
    assert all(jax.tree.leaves(policy))
    assert not any(jax.tree.leaves(model)), model


@pytest.mark.parametrize("changes, match", [
    ({"impact_norm": "sum"}, "impact_norm"), ({"scm_loss_weight": -1.0}, "scm_loss_weight"),
    ({"scm_forward_vs_inverse_loss_weight": 1.5}, "scm_forward_vs_inverse_loss_weight"),
    ({"alpha": -1.0}, "alpha"), ({"ia_gamma": 2.0}, "ia_gamma")])
def test_rejects_bad_settings(changes, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(CFG, **changes).build()
