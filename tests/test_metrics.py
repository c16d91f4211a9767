"""Social outcome metrics (specs.md §10) against hand-computed values, and the streaming
episode accumulator the learners use inside jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosocial import metrics as M
from prosocial.learners.episodes import add_finished, mean_finished, zero_sums


def assert_close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-6, atol=1e-6)


# --- returns and equality ------------------------------------------------------------------


def test_collective_and_per_capita_return_over_a_batch():
    returns = np.array([[3.0, 1.0], [2.0, -4.0]])
    assert_close(M.collective_return(returns), [4.0, -2.0])
    assert_close(M.per_capita_return(returns), [2.0, -1.0])


def test_equality_hand_computed():
    # (3, 1): Σ_iΣ_j|R_i−R_j| = 2·2 = 4, 2·N·ΣR = 2·2·4 = 16 → 1 − 4/16
    assert_close(M.equality(jnp.array([3.0, 1.0])), 0.75)
    # (1, 2, 3, 4): ordered pair differences sum to 2·(1+2+3+1+2+1) = 20, 2·4·10 = 80
    assert_close(M.equality(np.array([1, 2, 3, 4])), 1 - 20 / 80)
    # one agent holds everything: 4 ordered pairs of |6 − 0| = 24, 2·3·6 = 36 → 1/N
    assert_close(M.equality([6.0, 0.0, 0.0]), 1 / 3)
    assert_close(M.equality([5.0, 5.0, 5.0]), 1.0)


def test_equality_is_nan_when_the_collective_return_is_not_positive():
    out = np.asarray(M.equality(np.array([[0.0, 0.0], [2.0, -3.0], [-1.0, -1.0], [3.0, 1.0]])))
    assert np.isnan(out[:3]).all()
    assert_close(out[3], 0.75)


def test_equality_aie_hand_computed():
    # gini = 4 / (16 + 1e-10) = 0.25 → eq = 1 − 2/1 · 0.25
    assert_close(M.equality_aie([3.0, 1.0]), 0.5)
    # gini = 20/80 = 0.25 → eq = 1 − 4/3 · 0.25
    assert_close(M.equality_aie([1.0, 2.0, 3.0, 4.0]), 2 / 3)
    # gini = 24/36 → eq = 1 − 3/2 · 2/3 = 0 (the SSD form gives 1/N here)
    assert_close(M.equality_aie([6.0, 0.0, 0.0]), 0.0)
    # the 1e-10 makes all-zero endowments perfectly equal instead of NaN
    assert_close(M.equality_aie([0.0, 0.0, 0.0]), 1.0)


def test_equality_aie_rejects_a_single_agent():
    with pytest.raises(ValueError, match="at least 2 agents"):
        M.equality_aie([1.0])


def test_scalar_returns_are_rejected():
    with pytest.raises(ValueError, match=r"\[\.\.\., N\]"):
        M.equality(3.0)


# --- time-series metrics -------------------------------------------------------------------


def test_sustainability_time_leaves_out_agents_without_positive_rewards():
    rewards = np.array(
        [
            [0.0, 1.0, 0.0],
            [2.0, 1.0, 0.0],
            [-1.0, 1.0, 0.0],
            [1.0, 0.0, -50.0],
        ]
    )
    # agent 0 positive at t = 1, 3 → 2; agent 1 at t = 0, 1, 2 → 1; agent 2 never → left out
    assert_close(M.sustainability_time(rewards), (2 + 1) / 2)
    assert np.isnan(M.sustainability_time(np.zeros((4, 3))))


def test_sustainability_fraction_hand_computed():
    apples = np.array([[1, 0], [0, 0], [1, 1], [0, 1]], np.int32)
    # Σ t·a = 0·1 + 2·1 + 2·1 + 3·1 = 7, Σ a = 4, T = 4 → 7 / 16
    assert_close(M.sustainability_fraction(apples), 7 / 16)
    # uniform collection: Σ t = 45 over T = 10 apples → (T − 1)/(2T)
    assert_close(M.sustainability_fraction(np.ones((10, 1))), 0.45)
    assert np.isnan(M.sustainability_fraction(np.zeros((4, 2))))


def test_peace_counts_an_agent_hit_by_several_beams_once():
    hits = np.array([[0, 0, 0], [2, 0, 0], [0, 1, 0], [1, 0, 0]], np.int32)
    # hit steps: agent 0 at t = 1, 3, agent 1 at t = 2 → (N·T − 3) / T = (12 − 3) / 4
    assert_close(M.peace(hits), 9 / 4)
    assert_close(M.peace(np.zeros((4, 3))), 3.0)


def test_cleaning_contribution_hand_computed():
    cleaned = np.array([[3, 0], [0, 1], [2, 0]], np.int32)
    out = M.cleaning_contribution(cleaned)
    assert_close(out["waste_cleaned_per_agent"], [5, 1])
    assert_close(out["waste_cleaned"], 6)
    assert_close(out["waste_cleaned_equality"], 1 - 8 / 24)  # Σ|diff| = 2·4, 2·2·6 = 24
    assert_close(out["effective_cleans_per_agent"], [2, 1])
    assert_close(out["effective_cleans"], 3)
    assert_close(out["effective_cleans_equality"], 1 - 2 / 12)


def test_time_series_metrics_take_leading_batch_axes():
    hits = np.zeros((2, 4, 3), np.int32)
    hits[1, 0, 2] = 1
    assert_close(M.peace(hits), [3.0, (12 - 1) / 4])


def test_time_series_metrics_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"\[\.\.\., T, N\]"):
        M.peace(np.zeros(4))
    with pytest.raises(ValueError, match="T = 0"):
        M.sustainability_fraction(np.zeros((0, 2)))


# --- streaming accumulator -----------------------------------------------------------------

# One hand-made episode, T = 4 steps, N = 2 agents; done at the last step.
EVENT_KEYS = ("apples_eaten", "fires", "hits_received", "waste_cleaned")
REWARDS = np.array([[1.0, 0.0], [-1.0, 1.0], [2.0, -1.0], [0.0, 3.0]], np.float32)
EVENTS = {
    "apples_eaten": np.array([[1, 0], [0, 1], [2, 0], [0, 2]], np.int32),
    "fires": np.array([[0, 1], [1, 0], [0, 1], [0, 0]], np.int32),
    "hits_received": np.array([[0, 0], [1, 0], [0, 0], [0, 2]], np.int32),
    "waste_cleaned": np.array([[0, 2], [0, 0], [1, 0], [0, 1]], np.int32),
}
DONES = np.array([False, False, False, True])

# Its metrics, by hand.
EPISODE = {
    "episode_length": 4,
    "returns": [2.0, 3.0],  # 1 − 1 + 2 + 0, 0 + 1 − 1 + 3
    "collective_return": 5.0,
    "per_capita_return": 2.5,
    "equality": 1 - 2 / 20,  # Σ|diff| = 2, 2·2·5 = 20
    "sustainability_time": 1.5,  # agent 0 positive at t = 0, 2 → 1; agent 1 at t = 1, 3 → 2
    "sustainability_fraction": 11 / 24,  # Σ t·a = 2·2 + 1 + 3·2 = 11, Σ a = 6, T = 4
    "peace": (2 * 4 - 2) / 4,  # one hit step each
    "apples_eaten": 6,
    "apples_eaten_per_agent": [3, 3],
    "fires": 3,
    "fires_per_agent": [1, 2],
    "hits_received": 3,
    "hits_received_per_agent": [1, 2],
    "waste_cleaned": 4,
    "waste_cleaned_per_agent": [1, 3],
    "waste_cleaned_equality": 1 - 4 / 16,
    "effective_cleans": 3,
    "effective_cleans_per_agent": [1, 2],
    "effective_cleans_equality": 1 - 2 / 12,
}


def step_events(t):
    return {k: v[t] for k, v in EVENTS.items()}


def assert_metrics(metrics, expected):
    assert set(metrics) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(np.asarray(metrics[name]), value, rtol=1e-6, err_msg=name)


def test_accumulator_streams_a_hand_made_episode_and_resets_after_done():
    acc = M.accumulator_init(2, EVENT_KEYS)
    first_step = None
    for t in range(4):
        acc, finished = M.accumulator_step(acc, REWARDS[t], step_events(t), DONES[t])
        if t == 0:
            first_step = acc
    assert_close(finished.returns, [2.0, 3.0])
    assert_close(finished.positive_reward_steps, [2, 2])
    assert_close(finished.positive_reward_time, [0 + 2, 1 + 3])
    assert_close(finished.event_totals["apples_eaten"], [3, 3])
    assert_close(finished.event_steps["hits_received"], [1, 1])
    assert_close(finished.event_time["apples_eaten"], [2 * 2, 1 + 3 * 2])
    assert_metrics(M.episode_metrics(finished), EPISODE)
    # the per-episode functions on the whole episode agree
    assert_close(M.sustainability_time(REWARDS), EPISODE["sustainability_time"])
    assert_close(M.sustainability_fraction(EVENTS["apples_eaten"]),
                 EPISODE["sustainability_fraction"])
    assert_close(M.peace(EVENTS["hits_received"]), EPISODE["peace"])
    # reset to zero after done, and the next episode counts time from t = 0 again
    for leaf in jax.tree.leaves(acc):
        assert not np.asarray(leaf).any()
    acc, _ = M.accumulator_step(acc, REWARDS[0], step_events(0), False)
    jax.tree.map(np.testing.assert_array_equal, acc, first_step)


def test_accumulator_under_jit_and_vmap_with_episodes_ending_at_different_steps():
    """Env 0 plays the episode above; env 1 plays the same steps as two 2-step episodes."""
    dones = np.stack([DONES, [False, True, False, True]], axis=1)  # [T, E]

    @jax.jit
    def run(rewards, events, dones):
        acc = jax.vmap(lambda _: M.accumulator_init(2, EVENT_KEYS))(jnp.arange(2))

        def body(acc, xs):
            acc, finished = jax.vmap(M.accumulator_step)(acc, *xs)
            return acc, M.episode_metrics(finished)

        return jax.lax.scan(body, acc, (rewards, events, dones))

    def batched(x):  # [T, ...] → [T, E, ...], both envs see the same steps
        return np.stack([x, x], axis=1)

    acc, per_step = run(batched(REWARDS), {k: batched(v) for k, v in EVENTS.items()}, dones)
    assert_metrics({k: v[3, 0] for k, v in per_step.items()}, EPISODE)
    env1_first = {k: v[1, 1] for k, v in per_step.items()}
    env1_second = {k: v[3, 1] for k, v in per_step.items()}
    assert_close(env1_first["episode_length"], 2)
    assert_close(env1_first["returns"], [0.0, 1.0])
    assert_close(env1_first["sustainability_time"], 0.5)  # agent 0 at t = 0, agent 1 at t = 1
    assert_close(env1_first["sustainability_fraction"], 1 / 4)  # Σ t·a = 1, Σ a = 2, T = 2
    assert_close(env1_second["episode_length"], 2)
    assert_close(env1_second["returns"], [2.0, 2.0])
    assert_close(env1_second["equality"], 1.0)
    assert_close(env1_second["sustainability_time"], 0.5)  # t restarts at 0 in the second episode
    assert_close(env1_second["sustainability_fraction"], 2 / 8)  # Σ t·a = 1·2, Σ a = 4, T = 2
    assert_close(env1_second["peace"], (2 * 2 - 1) / 2)
    for leaf in jax.tree.leaves(acc):
        assert not np.asarray(leaf).any()


def test_episode_metrics_without_events_has_only_the_reward_metrics():
    acc = M.accumulator_init(3)
    acc, finished = M.accumulator_step(acc, np.array([0.0, 1.0, 1.0]), {"fires": np.ones(3)}, True)
    out = M.episode_metrics(finished)
    assert set(out) == {
        "episode_length",
        "returns",
        "collective_return",
        "per_capita_return",
        "equality",
        "sustainability_time",
    }
    assert_close(out["equality"], 1 - 4 / 12)  # Σ|diff| = 4·1, 2·3·2 = 12


def test_accumulator_rejects_bad_input():
    with pytest.raises(ValueError, match="positive int"):
        M.accumulator_init(0)
    with pytest.raises(ValueError, match="tuple of names"):
        M.accumulator_init(2, "fires")
    with pytest.raises(ValueError, match="distinct"):
        M.accumulator_init(2, ("fires", "fires"))
    acc = M.accumulator_init(2, ("fires",))
    with pytest.raises(ValueError, match="reward must have shape"):
        M.accumulator_step(acc, np.zeros(3), {"fires": np.zeros(2)}, False)
    with pytest.raises(ValueError, match="lack"):
        M.accumulator_step(acc, np.zeros(2), {"hits": np.zeros(2)}, False)
    with pytest.raises(ValueError, match="'fires' must have shape"):
        M.accumulator_step(acc, np.zeros(2), {"fires": np.zeros(3)}, False)
    with pytest.raises(ValueError, match="done must be a scalar"):
        M.accumulator_step(acc, np.zeros(2), {"fires": np.zeros(2)}, np.zeros(2, bool))


# --- per-update means over finished episodes (learners/episodes.py) ---------------------------


def hand_finished(returns, positive_steps, positive_time, length):
    """Finished-episode totals [S, E] (N agents) without events."""
    returns = jnp.asarray(returns, jnp.float32)
    return M.EpisodeAccumulator(
        length=jnp.asarray(length, jnp.int32), returns=returns,
        positive_reward_steps=jnp.asarray(positive_steps, jnp.int32),
        positive_reward_time=jnp.asarray(positive_time, jnp.int32),
        event_totals={}, event_steps={}, event_time={})


def test_episode_means_leave_out_episodes_where_a_metric_is_undefined():
    # S = 2 seeds × E = 3 envs, N = 2 agents, episodes of T = 10 steps.
    # Step A: seed 0: (3, 1) equality 0.75; (0, 0) equality undefined (Σ R = 0); (2, 2)
    # equality 1. Seed 1: (−1, 0) and (0, 0) undefined; env 2 (1, 3) has not ended.
    # Sustainability (mean step of positive rewards): seed 0 env 0: agent 0 at steps 2, 4
    # (Σ t = 6, 2 steps → 3), agent 1 at step 5 → S = (3 + 5)/2 = 4; env 1: none → undefined;
    # env 2: agents at steps 1 and 7 → S = (1 + 7)/2 = 4. Seed 1's ended episodes: none.
    a = hand_finished(returns=[[[3, 1], [0, 0], [2, 2]], [[-1, 0], [0, 0], [1, 3]]],
                      positive_steps=[[[2, 1], [0, 0], [1, 1]], [[0, 0], [0, 0], [1, 1]]],
                      positive_time=[[[6, 5], [0, 0], [1, 7]], [[0, 0], [0, 0], [2, 2]]],
                      length=[[10, 10, 10], [10, 10, 10]])
    done_a = jnp.array([[True, True, True], [True, True, False]])
    # Step B: seed 0 env 1 ends again with (4, 0): equality 1 − 8/16 = 0.5, agent 0 positive
    # at step 8 → S = 8.
    b = hand_finished(returns=[[[9, 9], [4, 0], [9, 9]], [[9, 9], [9, 9], [9, 9]]],
                      positive_steps=[[[1, 1], [1, 0], [1, 1]], [[1, 1], [1, 1], [1, 1]]],
                      positive_time=[[[1, 1], [8, 0], [1, 1]], [[1, 1], [1, 1], [1, 1]]],
                      length=[[10, 10, 10], [10, 10, 10]])
    done_b = jnp.array([[False, True, False], [False, False, False]])

    shapes = jax.eval_shape(M.episode_metrics, jax.tree.map(lambda x: x[0, 0], a))
    sums = zero_sums(shapes, 2)
    sums = jax.jit(add_finished)(sums, a, done_a)
    sums = jax.jit(add_finished)(sums, b, done_b)
    out = {k: np.asarray(v) for k, v in mean_finished(sums).items()}
    # seed 0: 4 episodes ended; equality defined in 3: (0.75 + 1 + 0.5)/3 = 0.75
    # (the old mean, NaN as 0 over 4 episodes, gave 2.25/4 = 0.5625);
    # sustainability defined in 3: (4 + 4 + 8)/3 = 16/3
    # seed 1: 2 episodes ended, equality and sustainability undefined in both → NaN (not 0)
    assert_close(out["episodes"], [4.0, 2.0])
    assert_close(out["equality"][0], 0.75)
    assert_close(out["sustainability_time"][0], 16 / 3)
    assert np.isnan(out["equality"][1]) and np.isnan(out["sustainability_time"][1])
    # metrics defined in every episode still average over all ended episodes:
    # seed 0 collective returns 4, 0, 4, 4 → 3; seed 1: −1, 0 → −0.5
    assert_close(out["collective_return"], [3.0, -0.5])
    # per-agent returns: seed 0 (3 + 0 + 2 + 4)/4, (1 + 0 + 2 + 0)/4; seed 1 (−1 + 0)/2, 0
    assert_close(out["returns"], [[2.25, 0.75], [-0.5, 0.0]])
    assert_close(out["episode_length"], [10.0, 10.0])


def test_episode_means_are_nan_for_a_seed_where_no_episode_ended():
    a = hand_finished(returns=[[[3, 1]], [[2, 2]]], positive_steps=[[[1, 1]], [[1, 1]]],
                      positive_time=[[[2, 4]], [[2, 4]]], length=[[5], [5]])
    shapes = jax.eval_shape(M.episode_metrics, jax.tree.map(lambda x: x[0, 0], a))
    sums = add_finished(zero_sums(shapes, 2), a, jnp.array([[True], [False]]))
    out = mean_finished(sums)
    assert_close(out["episodes"], [1.0, 0.0])
    assert_close(out["equality"][0], 0.75)
    assert_close(out["sustainability_time"][0], 3.0)
    for k, v in out.items():
        if k != "episodes":
            assert np.all(np.isnan(np.asarray(v)[1])), k
