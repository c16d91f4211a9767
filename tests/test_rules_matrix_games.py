"""Iterated 2×2 matrix games (specs §7) and the scripted policies of §7.4 as oracles.

Episode returns of scripted pairs are worked out by hand from the stage payoffs (``ipd``:
R = 3, S = 0, T = 5, P = 1; 100 rounds) in the comment beside each case.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_contract import reads_first_argument

import prosocial
from prosocial.bench import measure
from prosocial.envs.core import AutoReset
from prosocial.envs.matrix_games import MatrixGameState, observation_index, preset_payoffs
from prosocial.envs.scripted import MEMORY_ONE, POLICIES, FixedCoPlayer, play, random_q

C, D = 0, 1
IPD = prosocial.make("ipd")


def joint(a, b):
    return jnp.array([a, b], jnp.int32)


# ---------------------------------------------------------------------- §7.1–7.2 payoffs
@pytest.mark.parametrize(("env_id", "rstp"), [
    ("ipd", (3, 0, 5, 1)), ("ipd-lola", (-1, -3, 0, -2)), ("stag-hunt", (4, 0, 3, 2)),
    ("chicken", (3, 1, 4, 0)),
])
def test_symmetric_stage_payoffs_per_preset_7_2(env_id, rstp):
    r, s, t, p = rstp
    env = prosocial.make(env_id)
    expected = {(C, C): [r, r], (C, D): [s, t], (D, C): [t, s], (D, D): [p, p]}
    start = env.reset_state(jax.random.key(0))
    for (a, b), pay in expected.items():
        _, reward, *_ = env.step_state(jax.random.key(0), start, joint(a, b))
        assert np.asarray(reward).tolist() == pay, (a, b)


def test_matching_pennies_is_zero_sum_7_2():
    env = prosocial.make("matching-pennies")
    start = env.reset_state(jax.random.key(0))
    for (a, b), pay in {(C, C): [1, -1], (C, D): [-1, 1], (D, C): [-1, 1],
                        (D, D): [1, -1]}.items():
        _, reward, *_ = env.step_state(jax.random.key(0), start, joint(a, b))
        assert np.asarray(reward).tolist() == pay, (a, b)


def test_custom_payoffs_and_bad_values():
    env = prosocial.make("ipd", payoffs=(2, -1, 3, 0))  # (R, S, T, P)
    _, reward, *_ = env.step_state(jax.random.key(0), env.reset_state(jax.random.key(0)),
                                   joint(C, D))
    assert np.asarray(reward).tolist() == [-1, 3]
    assert np.array_equal(prosocial.make("ipd", payoffs=preset_payoffs("chicken")).payoffs,
                          prosocial.make("chicken").payoffs)
    with pytest.raises(ValueError, match=r"\(R, S, T, P\)"):
        prosocial.make("ipd", payoffs=(1, 2, 3))
    with pytest.raises(ValueError, match="continuation_prob"):
        prosocial.make("ipd", continuation_prob=1.0)
    with pytest.raises(ValueError, match="max_steps"):
        prosocial.make("stag-hunt", max_steps=0)
    with pytest.raises(ValueError, match="unknown matrix game preset"):
        preset_payoffs("snowdrift")


# ---------------------------------------------------------------------- §7.3 observation, episodes
def test_observation_is_the_last_joint_action_from_the_observers_side_7_3():
    obs, s = IPD.reset(jax.random.key(0))
    assert np.asarray(obs["obs"]).tolist() == [[1, 0, 0, 0, 0]] * 2  # "start" for both
    obs, s, *_ = IPD.step(jax.random.key(0), s, joint(C, D))
    # Player 0 sees CD (own C first) = state 2; player 1 sees DC = state 3.
    assert np.argmax(np.asarray(obs["obs"]), axis=1).tolist() == [2, 3]
    obs, s, *_ = IPD.step(jax.random.key(0), s, joint(D, D))
    assert np.argmax(np.asarray(obs["obs"]), axis=1).tolist() == [4, 4]
    assert int(observation_index(1, 0, True)) == 3 and int(observation_index(1, 1, False)) == 0


def test_episode_of_100_rounds_truncated_7_3():
    assert IPD.max_steps == 100
    env = prosocial.make("ipd", max_steps=2)
    s = env.reset_state(jax.random.key(0))
    flags = []
    for t in range(2):
        s, _, terminated, truncated, _ = env.step_state(jax.random.key(t), s, joint(C, C))
        flags.append((np.asarray(terminated).tolist(), bool(truncated)))
    assert flags == [([False, False], False), ([False, False], True)]


def test_continuation_probability_ends_the_game_7_3():
    """δ = 0.75: the game ends after each round with probability 1/4, so episodes last
    1/(1 − δ) = 4 rounds on average; the end is terminated (both players), not truncated."""
    env = prosocial.make("ipd", continuation_prob=0.75, max_steps=1000)
    auto = AutoReset(env)

    @jax.jit
    def rounds(key):
        def body(s, k):
            s, _, terminated, truncated, _ = auto.step_state(k, s, joint(C, C))
            return s, (terminated[0], truncated)

        keys = jax.random.split(key, 4000)
        return jax.lax.scan(body, env.reset_state(key), keys)[1]

    terminated, truncated = (np.asarray(x) for x in rounds(jax.random.key(0)))
    assert not truncated.any()
    assert 4000 / terminated.sum() == pytest.approx(4.0, rel=0.1)  # ~1000 episodes
    # Without a reset the ended game pays nothing and stays terminated.
    over = MatrixGameState(last=joint(C, C), over=jnp.bool_(True), t=jnp.int32(5))
    _, reward, terminated, _, info = env.step_state(jax.random.key(0), over, joint(D, C))
    assert np.asarray(reward).tolist() == [0, 0] and np.asarray(terminated).all()
    assert all(np.asarray(v).sum() == 0 for v in info["events"].values())


def test_deterministic_start_and_continuation_draw_use_the_whole_key():
    """The start reads no key; the step reads one only for the continuation draw, so
    AutoReset hands the step its key unsplit: its episode ends are the plain step's."""
    key = jax.random.PRNGKey(0)
    start = IPD.reset_state(key)
    assert not IPD.stochastic_reset and not reads_first_argument(IPD.reset_state, key)
    assert not IPD.stochastic_step
    env = prosocial.make("ipd", continuation_prob=0.5)
    assert env.stochastic_step and reads_first_argument(env.step_state, key, start, joint(C, C))
    keys = jax.random.split(key, 64)

    def ends(step):
        return np.asarray(jax.vmap(lambda k: step(k, start, joint(C, C))[2][0])(keys))

    plain, auto = ends(env.step_state), ends(AutoReset(env).step_state)
    assert np.array_equal(auto, plain) and 0 < plain.sum() < 64


def test_events_per_player():
    _, _, _, _, info = IPD.step_state(jax.random.key(0), IPD.reset_state(jax.random.key(0)),
                                      joint(C, D))
    events = {k: np.asarray(v).tolist() for k, v in info["events"].items()}
    assert events == {"cooperated": [1, 0], "defected": [0, 1], "exploited": [1, 0],
                      "exploiting": [0, 1]}


# ---------------------------------------------------------------------- §7.4 scripted policies
def test_memory_one_tables_7_4():
    """Each rule's action after start, CC, CD, DC, DD (own action first)."""
    obs = jnp.eye(5)
    expected = {"allc": [C] * 5, "alld": [D] * 5, "tft": [C, C, D, C, D],
                "stft": [D, C, D, C, D], "grim": [C, C, D, D, D], "wsls": [C, C, D, D, C]}
    for name, actions in expected.items():
        assert list(MEMORY_ONE[name]) == actions, name
        assert np.asarray(POLICIES[name](obs)).tolist() == actions, name


@pytest.mark.parametrize(("row", "column", "returns"), [
    ("tft", "tft", (300, 300)),  # spec: CC every round, 3 × 100
    ("tft", "alld", (99, 104)),  # spec: (C, D) = (0, 5) once, then (D, D) 99 times
    ("allc", "alld", (0, 500)),  # spec
    ("wsls", "wsls", (300, 300)),  # spec
    ("grim", "tft", (300, 300)),  # spec
    ("stft", "tft", (250, 250)),  # (D, C), (C, D) alternate: 50 × 5 each
    ("wsls", "alld", (50, 300)),  # WSLS alternates C (0 vs 5) and D (1 vs 1): 50 of each
    ("grim", "stft", (103, 103)),  # (C, D) 0/5, (D, C) 5/0, then (D, D) × 98
])
def test_scripted_pairs_exact_returns_7_4(row, column, returns):
    assert np.asarray(play(IPD, row, column)).tolist() == list(returns)


def test_random_q_cooperates_with_probability_q_7_4():
    actions = np.asarray(random_q(jax.random.key(0), jnp.zeros((20000, 5)), 0.3))
    assert (actions == C).mean() == pytest.approx(0.3, abs=0.01)
    # Random(1) is AllC: against AllD it earns S = 0 each round, AllD T = 5.
    assert np.asarray(play(IPD, "random_1.0", "alld")).tolist() == [0, 500]


def test_fixed_co_player_wrapper_7_4():
    """A one-agent game against TFT: always defecting earns 5 + 99 × 1 = 104 (TFT vs AllD
    from the defector's side); always cooperating 300."""
    env = FixedCoPlayer(IPD, "tft", seat=1)
    assert env.num_agents == 1 and env.roles == {"agents": (0,)} and env.num_actions == 2
    assert env.env_id == "ipd-vs-tft"

    @jax.jit
    def episode_return(action):
        obs, s = env.reset(jax.random.key(0))

        def body(carry, k):
            s, total = carry
            obs, s, reward, terminated, truncated, info = env.step(k, s, action)
            return (s, total + reward), (obs["obs"], truncated)

        (_, total), (obs, truncated) = jax.lax.scan(
            body, (s, jnp.zeros(1)), jax.random.split(jax.random.key(1), 100))
        return total, obs, truncated

    total, obs, truncated = episode_return(jnp.array([D], jnp.int32))
    assert np.asarray(total).tolist() == [104]
    assert obs.shape == (100, 1, 5) and bool(truncated[-1]) and not truncated[:-1].any()
    assert int(np.argmax(obs[0, 0])) == 3  # the learner's view of (D, C): own D first
    assert np.asarray(episode_return(jnp.array([C], jnp.int32))[0]).tolist() == [300]
    with pytest.raises(ValueError, match="seat"):
        FixedCoPlayer(IPD, "tft", seat=2)
    with pytest.raises(ValueError, match="unknown scripted policy"):
        FixedCoPlayer(IPD, "titfortat")


def test_bench_builds_fixed_player_games():
    """--num-agents does not apply to games with a fixed number of players."""
    r = measure("ipd", num_agents=5, num_envs=2, num_steps=2, repeats=1, modes=("full",))
    assert r["num_agents"] == 2 and r["env_steps_per_s"] > 0


@pytest.mark.slow
def test_ppo_runs_on_the_ipd_and_logs_its_events():
    """The learners' acting path reads the vector observation ("obs") and the events."""
    from prosocial.learners.population import all_agents
    from prosocial.learners.ppo import PPO, PPOConfig
    from prosocial.learners.runner import Runner
    from prosocial.nets import NetConfig

    env = prosocial.make("ipd", max_steps=6)
    population = all_agents(env, PPO(PPOConfig(seq_len=4, num_epochs=1, num_minibatches=1)),
                            NetConfig(hidden_sizes=(4,), lstm_size=4))
    runner = Runner(env, (population,), num_seeds=1, num_envs=2, num_steps=8)
    state = runner.init(jax.random.PRNGKey(0))
    before = [np.asarray(x) for x in jax.tree.leaves(state.pops[0].params)]
    state, metrics = runner.iteration(state)
    assert np.all(np.isfinite(metrics["policy_loss"])) and np.all(np.isfinite(metrics["entropy"]))
    # Every round is one C or one D per player: 6-round episodes give 6 of them per agent.
    per_agent = np.asarray(metrics["cooperated_per_agent"]) + np.asarray(
        metrics["defected_per_agent"])
    assert per_agent.size == 2  # one seed, two agents
    np.testing.assert_allclose(per_agent, 6.0)
    after = [np.asarray(x) for x in jax.tree.leaves(state.pops[0].params)]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
