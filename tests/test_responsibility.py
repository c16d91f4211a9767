"""Implicit responsibility (specs §5.6, [COLLINS] Algorithm 1): each condition on hand-computed
cases, the shaping of a transition, and the motive on scripted Forage transitions.

Constants as in [COLLINS] Table 1: E = H = 8, D = 2, p = 0.9.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import prosocial
from prosocial.envs.core import event_keys
from prosocial.envs.forage import DOWN, STAY, THROW
from prosocial.layout import Layout
from prosocial.learners.rollout import Rollout
from prosocial.motives.base import PolicyView
from prosocial.motives.config import MotiveConfig
from prosocial.motives.responsibility import (
    ImplicitResponsibility,
    capability,
    dependency,
    responsibility,
    responsibility_shaping,
    spare_energy,
)

E, H, D = 8, 8, 2


def test_spare_energy_eq1():
    # ω = e + E·(b − 1): 5 + 8·1 = 13; 0 + 8·(−1) = −8; 8 + 0 = 8.
    assert spare_energy(jnp.array([5, 0, 8]), jnp.array([2, 0, 1]), E).tolist() == [13, -8, 8]
    # E per batch element ([...]) broadcasts over the agents.
    assert spare_energy(jnp.array([[1, 1], [1, 1]]), jnp.array([[2, 2], [2, 2]]),
                        jnp.array([8, 5])).tolist() == [[9, 9], [6, 6]]


def test_dependency_variants():
    # j:      Helpless  dead   Healthy  full   Helpless at h = H   (e > 0, h < H: not a Forage
    #         h = 5                     energy                      state, separates variants)
    e = jnp.array([0, 0, 3, 8, 0, 3])
    h = jnp.array([5, 0, 8, 8, 8, 5])
    assert dependency(e, h, E, H, "helpless").tolist() == [1, 0, 0, 0, 1, 0]
    assert dependency(e, h, E, H, "alg1").tolist() == [1, 0, 1, 0, 1, 1]  # e < E, h > 0
    assert dependency(e, h, E, H, "eq2_eq3").tolist() == [1, 0, 0, 0, 0, 1]  # 0 < h < H
    with pytest.raises(ValueError, match="psi1 must be one of"):
        dependency(e, h, E, H, "eq2")


def _psi2(e_i, b_i, d, h_j, e_j=0, **flags):
    """ψ2[0, 1] for agent 0 (e_i, b_i) and agent 1 (e_j, h_j) at distance d."""
    dist = jnp.array([[0, d], [d, 0]])
    return bool(capability(jnp.array([e_i, e_j]), jnp.array([H, h_j]), jnp.array([b_i, 0]),
                           dist, E, D, **flags)[0, 1])


def test_capability_in_throwing_range_eq4():
    # (a) d − D ≤ 0 and ω ≥ E. d = 2: ω = 8 + 8·0 = 8 ≥ 8 holds; strict (ω > E, eq. 13) fails.
    assert _psi2(e_i=8, b_i=1, d=2, h_j=5)
    assert not _psi2(e_i=8, b_i=1, d=2, h_j=5, strict=True)
    # d = 1, one berry, e = 7: ω = 7 < 8 (throwing its only berry would cost i itself).
    assert not _psi2(e_i=7, b_i=1, d=1, h_j=5)
    # Two berries: ω = 1 + 8 = 9 ≥ 8.
    assert _psi2(e_i=1, b_i=2, d=1, h_j=5)


def test_capability_out_of_range_eqs5_15_16():
    # (b) d_help = 5 − 2 = 3 > 0: needs ω > E − d_help = 5.
    assert _psi2(e_i=6, b_i=1, d=5, h_j=4)  # ω = 6 > 5, and h_j = 4 > 3 (eq. 16)
    assert not _psi2(e_i=5, b_i=1, d=5, h_j=4)  # ω = 5, not > 5
    assert not _psi2(e_i=6, b_i=1, d=5, h_j=3)  # j would die before i arrives (eq. 16) ...
    assert _psi2(e_i=6, b_i=1, d=5, h_j=3, require_time=False)  # ... unless that is dropped
    # As printed, the threshold falls with distance: d = 12 (d_help 10) needs ω > −2.
    assert _psi2(e_i=1, b_i=1, d=12, h_j=5, require_time=False)


def test_capability_needs_a_healthy_agent_with_a_berry():
    # Without a berry: ω = 8 − 8 = 0 > −2 would pass (b) at d = 12, but b_i ≥ 1 is required.
    assert not _psi2(e_i=8, b_i=0, d=12, h_j=5, require_time=False)
    # A Helpless i (e = 0) holding two berries: ω = 8 would pass (a), but i cannot act.
    assert not _psi2(e_i=0, b_i=2, d=1, h_j=5)


def test_responsibility_is_psi1_and_psi2_off_the_diagonal():
    # Agents: 0 Healthy with 2 berries, 1 Helpless (h = 3) one cell away, 2 Healthy with
    # 2 berries next to 0. R[0, 1] and R[2, 1] hold (ω = 5 + 8 = 13 ≥ 8, in range); nobody is
    # responsible to a Healthy agent (ψ1 false), and 1 is responsible to no one (no berry).
    e, h, b = jnp.array([5, 0, 5]), jnp.array([8, 3, 8]), jnp.array([2, 0, 2])
    dist = jnp.array([[0, 1, 1], [1, 0, 2], [1, 2, 0]])
    r = responsibility(e, h, b, dist, E, H, D)
    assert r.tolist() == [[False, True, False], [False, False, False], [False, True, False]]
    # Under the literal ψ1 of Algorithm 1 (e_j < E) the Healthy agents 0 and 2 below full
    # energy also "need help" from each other.
    r = responsibility(e, h, b, dist, E, H, D, psi1="alg1")
    assert r.tolist() == [[False, True, True], [False, False, False], [True, True, False]]


def test_shaping_violation_satisfaction_opened_and_open_charge():
    # Three agents. At s_t, 0 is responsible to 1 and to 2. At s_{t+1}: 1 is still Helpless
    # (e = 0) and R[0, 1] is gone → violation, −p to agent 0; 2 is Healthy again (e = 7)
    # → satisfied, no charge; R[2, 0] appears → opened (charged only with the open flag).
    r_now = jnp.array([[0, 1, 1], [0, 0, 0], [0, 0, 0]], bool)
    r_next = jnp.array([[0, 0, 0], [0, 0, 0], [1, 0, 0]], bool)
    e_next = jnp.array([5, 0, 7])
    out = responsibility_shaping(r_now, r_next, e_next, 0.9)
    np.testing.assert_allclose(out["penalty"], [-0.9, 0.0, 0.0])
    assert out["violated"].astype(int).tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 0]]
    assert out["satisfied"].astype(int).tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 0]]
    assert out["opened"].astype(int).tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0]]
    # Literal lines 22–23: every responsibility open at s_{t+1} costs p too; per-agent p.
    out = responsibility_shaping(r_now, r_next, e_next, jnp.array([0.9, 0.5, 0.2]),
                                 penalise_open=True)
    np.testing.assert_allclose(out["penalty"], [-0.9, 0.0, -0.2])
    # A responsibility that stays open is charged once per step with the flag, never without.
    both = jnp.array([[0, 1], [0, 0]], bool)
    np.testing.assert_allclose(
        responsibility_shaping(both, both, jnp.array([5, 0]), 0.9)["penalty"], [0.0, 0.0])
    np.testing.assert_allclose(responsibility_shaping(
        both, both, jnp.array([5, 0]), 0.9, penalise_open=True)["penalty"], [-0.9, 0.0])


def test_partner_death_while_responsible_is_one_violation():
    # s_t: 0 (e 5, two berries) next to Helpless 1 with h = 1 → R[0, 1]. 0 does not help;
    # 1 dies (e = h = 0): ψ1 fails with e_j = 0 → violated once, −0.9.
    dist = jnp.array([[0, 1], [1, 0]])
    r_now = responsibility(jnp.array([5, 0]), jnp.array([8, 1]), jnp.array([2, 0]), dist, E, H,
                           D)
    r_next = responsibility(jnp.array([4, 0]), jnp.array([8, 0]), jnp.array([2, 0]), dist, E, H,
                            D)
    assert bool(r_now[0, 1]) and not bool(r_next[0, 1])
    np.testing.assert_allclose(
        responsibility_shaping(r_now, r_next, jnp.array([4, 0]), 0.9)["penalty"], [-0.9, 0.0])


# ---------------------------------------------------------------------- the motive
ENV = prosocial.make("forage")


def _scripted_rollout():
    """Two environments, three steps each, from the same start: agent 0 (e = 8, two berries)
    at (0, 0), Helpless agent 1 (h = 3) at (0, 1), so R[0, 1] holds.

    Env 0: agent 0 walks away down column 0. Step 1 to (1, 0): d = 2, ω = 7 + 8 ≥ 8, R holds;
    step 2 to (2, 0): d_help = 1, ω = 14 > 7 but h_1 = 1 is not > 1 (eq. 16): R breaks while
    1 is Helpless → violation at t = 1; step 3: 1 dies, nothing more to charge.
    Env 1: agent 0 throws at step 1: 1 eats and is Healthy → satisfied at t = 0.
    """
    s0 = ENV.make_state(np.array([(0, 0), (0, 1)]), np.array([8, 0]), np.array([8, 3]),
                        np.array([2, 0]), np.array([(3, 2), (3, 3)]))
    actions = jnp.array([[[DOWN, STAY], [THROW, STAY]], [[DOWN, STAY], [STAY, STAY]],
                         [[DOWN, STAY], [STAY, STAY]]], jnp.int32)  # [T, E, N]
    states = jax.tree.map(lambda x: jnp.stack([x, x]), s0)

    def body(s, a):
        s, reward, term, _, info = jax.vmap(ENV.step_state)(jax.random.split(
            jax.random.key(0), 2), s, a)
        return s, (reward, term, info)

    _, (reward, term, info) = jax.jit(lambda s, a: jax.lax.scan(body, s, a))(states, actions)
    flags = jnp.zeros((3, 1, 2), bool)
    add_seed = lambda x: x[:, None]  # noqa: E731  [T, E, ...] → [T, S=1, E, ...]
    return Rollout(
        obs={}, action=add_seed(actions), reward=add_seed(reward), start=flags.at[0].set(True),
        done=flags, terminated=add_seed(term), truncated=flags,
        active=jnp.ones((3, 1, 2, 2), bool), events=jax.tree.map(add_seed, info["events"]),
        signals=jax.tree.map(add_seed, info["signals"]), action_mask=None, policy=(),
        env_steps=jnp.zeros((), jnp.int32)), info


def _intrinsic(motive, rollout, layout):
    return jax.jit(lambda r: motive.intrinsic((), (), r, PolicyView(layout=layout)))(rollout)


def test_motive_on_scripted_forage_transitions():
    rollout, info = _scripted_rollout()
    assert info["events"]["died"][2, 0].tolist() == [0, 1]  # env 0: agent 1 died at step 3
    assert info["events"]["eaten_thrown"][0, 1].tolist() == [0, 1]  # env 1: the rescue
    motive = MotiveConfig(name="ir").build()
    assert isinstance(motive, ImplicitResponsibility) and motive.punishment == 0.9
    motive.check(ENV, event_keys(ENV))
    lay = Layout(1, 2, (0, 1))
    _, reward, diag, extra = _intrinsic(motive, rollout, lay)
    expected = np.zeros((3, 1, 2, 2))
    expected[1, 0, 0, 0] = -0.9  # env 0, transition s1 → s2, agent 0
    np.testing.assert_allclose(reward, expected, atol=1e-7)
    # Means per step over T·E = 6 transitions: one violation and one satisfaction of agent 0.
    np.testing.assert_allclose(diag["ir_violations"], [[1 / 6, 0.0]])
    np.testing.assert_allclose(diag["ir_satisfactions"], [[1 / 6, 0.0]])
    np.testing.assert_allclose(diag["ir_opened"], [[0.0, 0.0]])
    np.testing.assert_allclose(diag["ir_penalty"], [[-0.15, 0.0]], rtol=1e-6)
    assert extra == {}
    # A population of agent 0 alone gets its column; the open charge adds −p at t = 0 in env 0
    # (R still holds at s1), and nothing in env 1 (satisfied).
    literal = MotiveConfig(name="ir", penalise_open_responsibility=True).build()
    _, reward, _, _ = _intrinsic(literal, rollout, Layout(1, 2, (0,)))
    assert reward.shape == (3, 1, 2, 1)
    np.testing.assert_allclose(reward[:, 0, :, 0], [[-0.9, 0.0], [-0.9, 0.0], [0.0, 0.0]],
                               atol=1e-7)
    # Dropping eq. 16 keeps R at s2 (ω = 14 > 7): no violation until agent 1 dies at step 3.
    loose = MotiveConfig(name="ir", psi2_require_time=False).build()
    _, reward, _, _ = _intrinsic(loose, rollout, lay)
    np.testing.assert_allclose(reward[:, 0, 0, 0], [0.0, 0.0, -0.9], atol=1e-7)


def test_motive_needs_forage_signals_and_valid_settings():
    motive = MotiveConfig(name="ir").build()
    harvest = prosocial.make("harvest", num_agents=2)
    with pytest.raises(ValueError, match="motive 'ir' needs the env signals"):
        motive.check(harvest, event_keys(harvest))
    with pytest.raises(ValueError, match="responsibility_punishment must be ≥ 0"):
        MotiveConfig(name="ir", responsibility_punishment=-0.9).build()
    with pytest.raises(ValueError, match="psi1 must be one of"):
        MotiveConfig(name="ir", psi1="paper").build()
    with pytest.raises(ValueError, match="one value or one per agent"):
        ImplicitResponsibility(punishment=[0.9, 0.9, 0.9]).check(ENV, event_keys(ENV))


@pytest.mark.slow  # compiles the whole acting path (~10–20 s on the shared CPUs)
def test_random_rollout_through_the_acting_path():
    """make_collect on Forage with uniformly random agents: dead agents are inactive until the
    episode restarts, Helpless agents (mask: STAY only) store STAY (D-36), and the motive's
    penalty is −p per violation it reports."""
    from prosocial.envs.core import AutoReset
    from prosocial.learners.population import Population, UniformRandom
    from prosocial.learners.rollout import init_rollout_state, make_collect

    env = AutoReset(prosocial.make("forage", max_steps=30))
    pop = Population("agents", Layout(1, 2, (0, 1)), UniformRandom(6))
    rs = init_rollout_state(env, (pop,), 1, 8, jax.random.PRNGKey(0), jax.random.PRNGKey(1))
    collect = jax.jit(make_collect(env, (pop,), 64))
    _, ro, _, _ = collect(((),), rs)
    active, term, done = (np.asarray(x)[:, 0] for x in (ro.active, ro.terminated, ro.done))
    mask, action = np.asarray(ro.action_mask)[:, 0], np.asarray(ro.action)[:, 0]
    for t in range(1, 64):  # active = not terminated earlier in the same episode
        expected = np.where(done[t - 1][:, None], True, active[t - 1] & ~term[t - 1])
        assert np.array_equal(active[t], expected), t
    assert (~active).any() and term.any()  # random agents starve within 30 steps
    stay_only = mask.sum(-1) == 1
    assert stay_only.any() and np.all(action[stay_only] == STAY)
    assert np.all(mask[..., STAY])
    motive = MotiveConfig(name="ir").build()
    out = motive.shaping(ro.signals)
    np.testing.assert_allclose(out["penalty"], -0.9 * out["violated"].sum(-1), rtol=1e-6)
    # Only agents alive at s_t can be responsible, so inactive agents are never charged.
    assert not np.any(np.asarray(out["penalty"])[~np.asarray(ro.active)])
