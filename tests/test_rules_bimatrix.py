"""The repeated bimatrix game of ERMAS (specs §6) and its N-matrix variant (§6.7), rule by rule.

Hand-computed values use the seed-0 tables of §6.2 (quoted to 6 decimals there; the
comments give the full draws where a sum needs them):
r̃[0,0] = 0.5488135, r̃[1,0] = 0.4236548, r̃[1,1] = 0.6458941, r1[1,1] = 0.7991586,
r2[1,1] = 0.6169340.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_contract import reads_first_argument

import prosocial
from prosocial.envs.bimatrix import (
    Bimatrix,
    BimatrixState,
    ConstrainedBimatrix,
    planner_reward_paper,
    planner_reward_srai,
    risk_robust,
    srai_bimatrix_payoffs,
)
from prosocial.envs.core import AutoReset
from prosocial.envs.nmatrix import NMatrix, NMatrixState, srai_nmatrix_payoffs

SPEC_PLANNER = [[0.548814, 0.715189, 0.602763, 0.544883],
                [0.423655, 0.645894, 0.437587, 0.891773],
                [0.963663, 0.383442, 0.791725, 0.528895],
                [0.568045, 0.925597, 0.071036, 0.087129]]
SPEC_ROW = [[0.020218, 0.832620, 0.778157, 0.870012],
            [0.978618, 0.799159, 0.461479, 0.780529],
            [0.118274, 0.639921, 0.143353, 0.944669],
            [0.521848, 0.414662, 0.264556, 0.774234]]
SPEC_COLUMN = [[0.456150, 0.568434, 0.018790, 0.617635],
               [0.612096, 0.616934, 0.943748, 0.681820],
               [0.359508, 0.437032, 0.697631, 0.060225],
               [0.666767, 0.670638, 0.210383, 0.128926]]
STAY, PLUS, MINUS = 0, 1, 2


def state(i, j, officers=0, t=0, noise=(0.0, 0.0)):
    return BimatrixState(cell=jnp.array([i, j], jnp.int32), officers=jnp.int32(officers),
                         noise=jnp.asarray(noise, jnp.float32), t=jnp.int32(t))


def step(env, s, actions, key=0):
    """One plain (eager) step: (state, reward as a list, info)."""
    s, reward, terminated, truncated, info = env.step_state(
        jax.random.key(key), s, jnp.asarray(actions, jnp.int32))
    return s, np.asarray(reward).tolist(), info


ENV = Bimatrix()


# ---------------------------------------------------------------------- §6.2 payoffs
def test_seed0_payoffs_match_spec_6_2():
    """numpy's legacy generator seeded 0, three uniform(4, 4) draws: r̃, r1, r2 in that order."""
    spec = np.array([SPEC_PLANNER, SPEC_ROW, SPEC_COLUMN])
    np.testing.assert_allclose(srai_bimatrix_payoffs(0), spec, atol=1e-6)
    np.testing.assert_allclose(ENV.payoffs, spec, atol=1e-6)  # the default, payoffs="srai_seed0"
    assert ENV.payoffs.shape == (3, 4, 4) and ENV.width == 4


def test_other_seeds_and_user_tables_6_2():
    rng = np.random.RandomState(7)
    draws = np.stack([rng.uniform(size=(4, 4)) for _ in range(3)])
    np.testing.assert_array_equal(Bimatrix(payoffs="srai_seed7").payoffs, draws)
    assert Bimatrix(payoffs="srai_seed0", env_width=3).payoffs.shape == (3, 3, 3)
    tables = np.arange(27, dtype=float).reshape(3, 3, 3) / 27
    env = Bimatrix(payoffs=tables)
    assert env.width == 3
    # From (0, 0) both move +1: cell (1, 1) = flat index 4 → r1 = 13/27, r2 = 22/27, r̃ = 4/27.
    _, reward, _ = step(env, state(0, 0), [PLUS, PLUS, 2])
    np.testing.assert_allclose(reward, [13 / 27, 22 / 27, 4 / 27], rtol=1e-6)


# ---------------------------------------------------------------------- §6.1 moves and rewards
@pytest.mark.parametrize(("start", "actions", "end"), [
    ((0, 0), (MINUS, MINUS), (0, 0)),  # clamped at the top-left corner
    ((1, 1), (PLUS, MINUS), (2, 0)),  # row index +1, column index −1, simultaneously
    ((3, 3), (PLUS, PLUS), (3, 3)),  # clamped at the bottom-right corner
    ((2, 1), (STAY, PLUS), (2, 2)),
])
def test_moves_row_agent_moves_i_column_agent_moves_j_clamped_6_1(start, actions, end):
    s, _, info = step(ENV, state(*start), [*actions, 2])
    assert tuple(np.asarray(s.cell).tolist()) == end
    moved = [int(start[0] != end[0]), int(start[1] != end[1]), 0]
    assert np.asarray(info["events"]["moved"]).tolist() == moved


def test_rewards_read_at_the_new_cell_6_1():
    """(0, 0) → (1, 1): r1[1,1], r2[1,1], and the planner's r̃[1,1]·(1 + 0) − 0 with a = 0."""
    _, reward, _ = step(ENV, state(0, 0), [PLUS, PLUS, 2])
    np.testing.assert_allclose(reward, [0.799159, 0.616934, 0.645894], atol=1e-6)


# ---------------------------------------------------------------------- §6.4 augmented game
def test_planner_actions_change_officers_by_minus2_to_plus2_clamped_6_4():
    s = state(0, 0)
    seen = []
    for a in (4, 4, 3, 0, 1, 1, 0, 0):  # +2 +2 +1 −2 −1 −1 −2 −2
        s, _, info = step(ENV, s, [STAY, STAY, a])
        seen.append(int(s.officers))
        assert np.asarray(info["events"]["officers"]).tolist() == [0, 0, seen[-1]]
    assert seen == [2, 4, 5, 3, 2, 1, 0, 0]  # the last −2 is clamped at 0
    s, _, _ = step(ENV, state(0, 0, officers=11), [STAY, STAY, 4])
    assert int(s.officers) == 12  # 11 + 2 clamped at A_max = 12


def test_srai_planner_reward_uses_the_updated_officers_6_4():
    """Agents move (0, 0) → (1, 0) and a goes 0 → 2 in the same step: the planner gets
    r̃[1,0]·(1 + 3·2/12) − (2/12)² = 0.4236548·1.5 − 1/36 = 0.6077044."""
    s, reward, _ = step(ENV, state(0, 0), [PLUS, STAY, 4])
    assert int(s.officers) == 2
    assert reward[2] == pytest.approx(0.6077044, abs=1e-6)
    # a = 12 at (0, 0): r̃·(1 + 3) − 1 = 4·0.5488135 − 1 = 1.1952540.
    _, reward, _ = step(ENV, state(0, 0, officers=12), [STAY, STAY, 2])
    assert reward[2] == pytest.approx(1.1952540, abs=1e-6)
    assert float(planner_reward_srai(0.5488135, 2, 12, 3.0)) == pytest.approx(0.7954425, abs=1e-6)


def test_paper_planner_reward_a_times_r_minus_a_squared_b26():
    env = Bimatrix(planner_reward="paper")
    assert env.action_spaces["planner"].n == 13  # a ∈ {0 … 12} chosen directly
    s, reward, _ = step(env, state(0, 0, officers=7), [STAY, STAY, 3])
    assert int(s.officers) == 3
    assert reward[2] == pytest.approx(3 * 0.5488135 - 9, abs=1e-6)  # −7.3535595
    # Read literally, a = 0 is always optimal with r̃ ∈ [0, 1] (why SRAI normalised it).
    a = jnp.arange(13)[None, :]
    values = np.asarray(planner_reward_paper(jnp.asarray(ENV.payoffs[0]).reshape(-1, 1), a))
    assert np.all(values.argmax(axis=1) == 0)


def test_constrained_game_planner_is_passive_6_3():
    env = ConstrainedBimatrix()
    assert env.action_spaces == {"agents": prosocial.envs.spaces.Discrete(3),
                                 "planner": prosocial.envs.spaces.Discrete(1)}
    s = state(0, 0)
    for actions, cell_reward in (([PLUS, PLUS, 0], 0.645894), ([STAY, MINUS, 0], 0.423655)):
        s, reward, _ = step(env, s, actions)
        assert int(s.officers) == 0
        assert reward[2] == pytest.approx(cell_reward, abs=1e-6)  # r̃ at the new cell
    with pytest.raises(ValueError, match="passive planner"):
        ConstrainedBimatrix(planner_reward="paper")


# ---------------------------------------------------------------------- §6.5 test-time changes
def test_reward_perturbation_q_subtracts_q_times_base_planner_payoff_6_5():
    """Q = 0.5 at (1, 1) with a = 4: r1 − Q r̃ = 0.7991586 − 0.3229471 = 0.4762115,
    r2 − Q r̃ = 0.6169340 − 0.3229471 = 0.2939869; the planner's reward is unchanged."""
    env = Bimatrix(perturb_q=0.5)
    _, reward, _ = step(env, state(0, 0, officers=4), [PLUS, PLUS, 2])
    _, plain, _ = step(ENV, state(0, 0, officers=4), [PLUS, PLUS, 2])
    np.testing.assert_allclose(reward[:2], [0.4762115, 0.2939869], atol=1e-6)
    assert reward[2] == plain[2]


def test_domain_randomisation_per_episode_and_per_step_6_5():
    env = Bimatrix(dr=1.0)  # σ_i ~ U[−1, 1] at each episode start
    starts = jax.jit(jax.vmap(env.reset_state))(jax.random.split(jax.random.key(0), 400))
    noise = np.asarray(starts.noise)
    assert noise.shape == (400, 2) and np.all(np.abs(noise) <= 1.0)
    assert noise.min() < -0.9 and noise.max() > 0.9 and abs(noise.mean()) < 0.1
    s = env.reset_state(jax.random.key(3))
    sigma = np.asarray(s.noise)
    for t in range(3):  # fixed for the episode: r_i + σ_i
        s, reward, _ = step(env, s, [PLUS, PLUS, 2], key=t)
        i, j = np.asarray(s.cell)
        np.testing.assert_allclose(reward[:2], [SPEC_ROW[i][j] + sigma[0],
                                                SPEC_COLUMN[i][j] + sigma[1]], atol=2e-6)
        assert np.array_equal(np.asarray(s.noise), sigma)
    per_step = Bimatrix(dr=1.0, episode_dr=False)
    s = per_step.reset_state(jax.random.key(3))
    assert np.all(np.asarray(s.noise) == 0)
    drawn = []
    for t in range(3):
        s, reward, _ = step(per_step, s, [STAY, STAY, 2], key=t)
        drawn.append(np.asarray(s.noise))
        i, j = np.asarray(s.cell)
        np.testing.assert_allclose(reward[0], SPEC_ROW[i][j] + drawn[-1][0], atol=2e-6)
    assert len({tuple(d) for d in drawn}) == 3  # a fresh draw every step
    assert np.all(np.asarray(ENV.reset_state(jax.random.key(3)).noise) == 0)  # dr = 0: off


@pytest.mark.parametrize(("x", "eta", "ref", "expected"), [
    (0.44, 0.5, False, 0.4),  # (1.44^0.5 − 1)/0.5 = 0.2/0.5
    (1.0, 2.0, False, 0.5),  # (2^−1 − 1)/(−1)
    (0.3, 0.0, False, 0.3),  # η = 0: the identity
    (np.e - 1, 1.0, False, 1.0),  # log(1 + x)
    (np.e, 1.0, True, 1.0),  # ref_concav_log: log(x) (B-30)
    (-1.0, 0.5, False, -10.0),  # x ≤ −0.9999
    (-0.5, 1.0, True, -100.0),  # log(−0.5) is NaN
])
def test_risk_robust_transform_6_5(x, eta, ref, expected):
    assert float(risk_robust(x, eta, ref)) == pytest.approx(expected, abs=1e-6)


def test_risk_robustness_applies_to_the_planner_reward_6_5():
    """η = 0.5 at (1, 1), a = 0: (1.6458941^0.5 − 1)/0.5 = 0.5658481; agents unchanged."""
    _, reward, _ = step(Bimatrix(risk_eta=0.5), state(0, 0), [PLUS, PLUS, 2])
    np.testing.assert_allclose(reward, [0.799159, 0.616934, 0.5658481], atol=1e-6)


@pytest.mark.parametrize(("start", "actions", "end"), [
    # Column moves to j' = 1; row options i' = 0, 1, 0 pay the planner 0.715, 0.646, 0.715.
    ((0, 0), (STAY, PLUS), (1, 1)),
    # j' = 2; i' = 2, 3, 1 pay 0.792, 0.071, 0.438: the row agent's −1 becomes +1.
    ((2, 2), (MINUS, STAY), (3, 2)),
    # j' = 3; i' = 0, 1, 0 pay 0.545, 0.892, 0.545: stay and −1 tie, the lower id wins.
    ((0, 3), (PLUS, STAY), (0, 3)),
])
def test_action_perturbation_row_agent_minimises_planner_payoff_6_5(start, actions, end):
    env = Bimatrix(action_perturb=1.0)
    s, _, info = step(env, state(*start), [*actions, 2])
    assert tuple(np.asarray(s.cell).tolist()) == end
    assert np.asarray(info["events"]["action_perturbed"]).tolist() == [1, 0, 0]
    s, _, info = step(ENV, state(*start), [*actions, 2])  # p = 0: the chosen actions
    assert np.asarray(info["events"]["action_perturbed"]).tolist() == [0, 0, 0]


def test_action_perturbation_probability_6_5():
    env = Bimatrix(action_perturb=0.3)
    keys = jax.random.split(jax.random.key(1), 4000)
    out = jax.jit(jax.vmap(env.step_state, in_axes=(0, None, None)))(
        keys, state(1, 1), jnp.array([STAY, STAY, 2], jnp.int32))
    rate = float(np.mean(np.asarray(out[4]["events"]["action_perturbed"])[:, 0]))
    assert rate == pytest.approx(0.3, abs=0.03)  # 4.1 standard errors


# ---------------------------------------------------------------------- §6.6 observations, episodes
def test_observations_one_hot_cell_and_officers_6_6():
    obs = ENV.observe(state(2, 3, officers=5))
    agents, planner = np.asarray(obs["agents"]["obs"]), np.asarray(obs["planner"]["obs"])
    assert agents.shape == (2, 16) and planner.shape == (1, 29)
    assert agents.dtype == np.float32
    assert np.array_equal(np.nonzero(agents)[1], [11, 11])  # both see cell 2·4 + 3
    assert np.nonzero(planner[0])[0].tolist() == [11, 16 + 5]


def test_start_cell_uniform_and_officers_zero_6_1():
    starts = jax.jit(jax.vmap(ENV.reset_state))(jax.random.split(jax.random.key(0), 16000))
    cells = np.asarray(starts.cell[:, 0] * 4 + starts.cell[:, 1])
    counts = np.bincount(cells, minlength=16)
    chi2 = float(((counts - 1000) ** 2 / 1000).sum())
    assert chi2 < 37.7  # 15 degrees of freedom, p = 0.001
    assert np.all(np.asarray(starts.officers) == 0) and np.all(np.asarray(starts.t) == 0)


# ---------------------------------------------------------------------- §0.6 keys and draws
def test_start_cell_is_one_bits_draw():
    """The start cell is one jax.random.bits(key, (), uint32) draw: modulo W² (bimatrix), its
    base-W digits (N-matrix)."""
    key = jax.random.PRNGKey(11)
    bits = int(jax.random.bits(key, (), jnp.uint32))
    # The start cells are that draw modulo W² (bimatrix) and its base-W digits (N-matrix).
    assert np.asarray(ENV.reset_state(key).cell).tolist() == [bits % 16 // 4, bits % 4]
    index = bits % 7**4
    digits = [index // 343 % 7, index // 49 % 7, index // 7 % 7, index % 7]
    assert np.asarray(NMatrix().reset_state(key).pos).tolist() == digits


@pytest.mark.parametrize(("make", "stochastic"), [
    (Bimatrix, False),
    (ConstrainedBimatrix, False),
    (lambda: Bimatrix(dr=0.5), False),  # DR drawn at each episode start, by the reset
    (lambda: Bimatrix(dr=0.5, episode_dr=False), True),
    (lambda: Bimatrix(action_perturb=0.1), True),
    (NMatrix, False),
    (lambda: NMatrix(dr=0.5, episode_dr=False), True),
    (lambda: NMatrix(action_perturb=0.1), True),
])
def test_step_reads_its_key_only_for_per_step_draws_6_5(make, stochastic):
    """``stochastic_step`` is True exactly when the step draws (per-step DR, the action
    perturbation), and agrees with the traced program; AutoReset's reset at an episode end
    then comes from the step's key itself, otherwise from the second half of its split."""
    env = make()
    key = jax.random.PRNGKey(7)
    s0 = env.reset_state(jax.random.PRNGKey(0))
    actions = jnp.zeros(env.num_agents, jnp.int32)
    assert env.stochastic_step is stochastic and env.stochastic_reset
    assert reads_first_argument(env.step_state, key, s0, actions) is stochastic
    last = s0.replace(t=jnp.int32(env.max_steps - 1))  # this step truncates
    reset = AutoReset(env).step_state(key, last, actions)[0]
    key_reset = jax.random.split(key)[1] if stochastic else key
    assert jax.tree.all(jax.tree.map(np.array_equal, reset, env.reset_state(key_reset)))


@pytest.mark.parametrize(("extra", "length"), [(False, 3), (True, 4)])
def test_episodes_truncate_at_max_steps_or_srai_extra_step_b31(extra, length):
    assert Bimatrix().max_steps == 5000
    env = Bimatrix(max_steps=3, ref_bimatrix_extra_step=extra)
    s = state(0, 0)
    ends = []
    for t in range(length):
        s, _, terminated, truncated, _ = env.step_state(jax.random.key(t), s,
                                                        jnp.array([0, 0, 2], jnp.int32))
        ends.append(bool(truncated))
        assert not np.any(np.asarray(terminated))
    assert ends == [False] * (length - 1) + [True]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"payoffs": "seed0"}, "srai_seed<k>"),
    ({"payoffs": np.zeros((3, 4, 5))}, r"shape \(3, W, W\)"),
    ({"payoffs": np.full((3, 2, 2), np.nan)}, "finite"),
    ({"planner_reward": "linear"}, "planner_reward"),
    ({"max_officers": 0}, "max_officers"),
    ({"perturb_q": float("nan")}, "perturb_q"),
    ({"dr": -1.0}, "dr must be ≥ 0"),
    ({"risk_eta": -0.1}, "risk_eta"),
    ({"action_perturb": 1.5}, "action_perturb"),
    ({"max_steps": 0}, "max_steps"),
    ({"env_width": 0}, "env_width"),
    ({"payoffs": np.zeros((3, 3, 3)), "env_width": 5}, "disagrees"),
])
def test_bad_config_values_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        prosocial.make("bimatrix", **kwargs)


# ---------------------------------------------------------------------- §6.7 N-matrix
def nstate(pos, t=0, n=3, drift=None, noise=None):
    zeros = jnp.zeros(n, jnp.float32)
    return NMatrixState(pos=jnp.asarray(pos, jnp.int32),
                        noise=zeros if noise is None else jnp.asarray(noise, jnp.float32),
                        drift=zeros if drift is None else jnp.asarray(drift, jnp.float32),
                        t=jnp.int32(t))


def test_nmatrix_seed0_tables_are_normal_draws_planner_first_6_7():
    tables = NMatrix().payoffs
    assert tables.shape == (4, 7, 7, 7, 7)
    # The first standard normal draws of RandomState(0): 1.7640524, 0.4001572, 0.9787380.
    np.testing.assert_allclose(tables[0].reshape(-1)[:3], [1.7640524, 0.4001572, 0.9787380],
                               atol=1e-6)
    draws = np.random.RandomState(0).normal(size=4 * 7**4)
    np.testing.assert_array_equal(tables.reshape(-1), draws)  # planner, agent 0, 1, 2
    assert np.array_equal(srai_nmatrix_payoffs(0, 7, 3), tables)


def test_nmatrix_each_player_moves_its_own_axis_planner_last_6_7():
    env = NMatrix()
    assert env.roles == {"agents": (0, 1, 2), "planner": (3,)} and env.max_steps == 500
    s, reward, _, _, info = env.step_state(jax.random.key(0), nstate([0, 3, 6, 2]),
                                           jnp.array([MINUS, PLUS, PLUS, PLUS], jnp.int32))
    assert np.asarray(s.pos).tolist() == [0, 4, 6, 3]  # 0 − 1 and 6 + 1 are clamped
    assert np.asarray(info["events"]["moved"]).tolist() == [0, 1, 0, 1]
    tables = env.payoffs
    np.testing.assert_allclose(np.asarray(reward), [tables[1 + k][0, 4, 6, 3] for k in range(3)]
                               + [tables[0][0, 4, 6, 3]], atol=1e-6)
    obs = env.observe(s)
    assert np.asarray(obs["agents"]["obs"]).tolist() == [[0.0, 4.0, 6.0, 3.0]] * 3
    assert np.asarray(obs["planner"]["obs"]).tolist() == [[0.0, 4.0, 6.0, 3.0]]


# One agent and a planner on a 2 × 2 grid: r̃ = [[1, 2], [3, 4]], r_0 = [[10, 20], [30, 40]].
SMALL = np.array([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]])


def test_nmatrix_perturbation_mixes_rewards_6_7():
    """At (1, 0) with Q = 0.25: −0.25·3 + 0.75·30 = 21.75 for the agent, r̃ = 3 for the planner."""
    env = NMatrix(num_players=1, payoffs=SMALL, perturb_q=0.25)
    _, reward, *_ = env.step_state(jax.random.key(0), nstate([0, 0], n=1),
                                   jnp.array([PLUS, STAY], jnp.int32))
    assert np.asarray(reward).tolist() == [21.75, 3.0]


def test_nmatrix_risk_robustness_applies_to_agents_6_7():
    """η = 0.5 on the agent's 30: (31^0.5 − 1)/0.5 = 9.1355287; the planner's 3 unchanged."""
    env = NMatrix(num_players=1, payoffs=SMALL, risk_eta=0.5)
    _, reward, *_ = env.step_state(jax.random.key(0), nstate([0, 0], n=1),
                                   jnp.array([PLUS, STAY], jnp.int32))
    np.testing.assert_allclose(np.asarray(reward), [9.1355287, 3.0], atol=1e-5)


def test_nmatrix_dr_noise_fresh_by_default_drifting_tables_with_ref_flag_b27():
    """σ = 0.5 for the episode, agent staying on 30: fresh noise pays 30.5 every step; SRAI
    adds σ into the table after each read, so it pays 30, 30.5, 31."""
    for ref, expected in ((False, [30.5, 30.5, 30.5]), (True, [30.0, 30.5, 31.0])):
        env = NMatrix(num_players=1, payoffs=SMALL, dr=1.0, ref_nmatrix_dr_drift=ref)
        s = nstate([1, 0], n=1, noise=[0.5])
        paid = []
        for t in range(3):
            s, reward, *_ = env.step_state(jax.random.key(t), s,
                                           jnp.array([STAY, STAY], jnp.int32))
            paid.append(float(reward[0]))
        assert paid == expected, ref


def test_nmatrix_action_perturbation_probability_and_ref_all_random_b29():
    keys = jax.random.split(jax.random.key(2), 2000)
    start = nstate([3, 3, 3, 3])
    stay = jnp.zeros(4, jnp.int32)

    def perturbed(env):
        out = jax.jit(jax.vmap(env.step_state, in_axes=(0, None, None)))(keys, start, stay)
        return np.asarray(out[4]["events"]["action_perturbed"])

    default = perturbed(NMatrix(action_perturb=0.1))
    assert default[:, 3].sum() == 0  # the planner is never perturbed
    assert default[:, :3].mean() == pytest.approx(0.1, abs=0.015)
    reference = perturbed(NMatrix(action_perturb=0.1, ref_nmatrix_action_perturb=True))
    assert np.all(reference[:, :3] == 1) and reference[:, 3].sum() == 0
    assert perturbed(NMatrix()).sum() == 0


def test_nmatrix_bad_config_values_raise():
    with pytest.raises(ValueError, match="num_players"):
        NMatrix(num_players=0)
    with pytest.raises(ValueError, match=r"shape \(2, W, …, W\)"):
        NMatrix(num_players=1, payoffs=np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="action_perturb"):
        NMatrix(action_perturb=-0.1)
