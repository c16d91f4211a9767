"""Social outcome metrics of the sequential social dilemmas (specs.md §10).

Two ways in:

1. **Pure per-episode functions** of whole-episode arrays (numpy or jax), one per metric:
   :func:`collective_return`, :func:`per_capita_return`, :func:`equality`,
   :func:`equality_aie`, :func:`sustainability_time`, :func:`sustainability_fraction`,
   :func:`peace`, :func:`cleaning_contribution`. Per-episode returns come as ``[..., N]``
   and per-step series as ``[..., T, N]`` (time then agents), with any leading batch axes.
   They return jax arrays and jit.

2. **A streaming accumulator** for learners, which run inside ``jit`` and cannot keep
   whole 1000-step episodes: :class:`EpisodeAccumulator` holds one environment's running
   per-agent sums, :func:`accumulator_step` adds a step and hands back the totals of the
   episode that ends there, and :func:`episode_metrics` turns those totals into the same
   metrics. Both paths go through the same private ``_from_totals`` formulas, so they agree.

Conventions (specs.md §0.2, §0.4): rewards are extrinsic; steps are indexed t = 0 … T−1 and
T is the episode length; a metric that is undefined for an episode (no positive reward, no
apple, a non-positive collective return for :func:`equality`) is NaN, which the metrics log
writes as an empty cell.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import struct

#: Event names the SSD metrics read (specs.md §1.8); other events are only summed.
APPLES = "apples_eaten"
HITS = "hits_received"
WASTE = "waste_cleaned"


def _as_float(x) -> jax.Array:
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _check_ndim(name: str, x: jax.Array, min_ndim: int, axes: str) -> None:
    if x.ndim < min_ndim:
        raise ValueError(f"{name}: expected an array of shape {axes}, got shape {x.shape}")


def _safe_div(num: jax.Array, den: jax.Array, valid: jax.Array) -> jax.Array:
    """num / den where ``valid``, NaN elsewhere (without dividing by zero anywhere)."""
    return jnp.where(valid, num / jnp.where(valid, den, 1), jnp.nan)


def _abs_pair_diff_sum(x: jax.Array) -> jax.Array:
    """Σ_i Σ_j |x_i − x_j| over the last axis."""
    return jnp.abs(x[..., :, None] - x[..., None, :]).sum(axis=(-2, -1))


# --- returns and equality ------------------------------------------------------------------


def collective_return(returns) -> jax.Array:
    """Collective return Σ_i R_i of per-agent episode returns ``returns[..., N]`` → ``[...]``.

    ([EMUREL] §5.2 "collective reward"; RLlib's ``episode_reward_mean`` in the reference
    harness.)
    """
    returns = _as_float(returns)
    _check_ndim("collective_return", returns, 1, "[..., N]")
    return returns.sum(-1)


def per_capita_return(returns) -> jax.Array:
    """Per-capita return (1/N) Σ_i R_i of ``returns[..., N]`` → ``[...]``."""
    returns = _as_float(returns)
    _check_ndim("per_capita_return", returns, 1, "[..., N]")
    return returns.mean(-1)


def equality(returns) -> jax.Array:
    """Equality of the SSD papers (Gini form) of episode returns ``returns[..., N]`` → ``[...]``.

    E = 1 − Σ_i Σ_j |R_i − R_j| / (2 N Σ_i R_i)   ([EMUREL] Fig. 2(f), Hughes et al. 2018).

    E = 1 when all returns are equal, and E = 1/N when one agent holds everything. The formula
    assumes non-negative returns; fines can make them negative, so E is NaN whenever
    Σ_i R_i ≤ 0 (our rule, specs.md §10). Differs from :func:`equality_aie` by the N/(N−1)
    rescaling (decision D-47).
    """
    returns = _as_float(returns)
    _check_ndim("equality", returns, 1, "[..., N]")
    n = returns.shape[-1]
    total = returns.sum(-1)
    return 1.0 - _safe_div(_abs_pair_diff_sum(returns), 2.0 * n * total, total > 0)


def equality_aie(x) -> jax.Array:
    """Equality of the AI Economist of endowments ``x[..., N]`` (N ≥ 2) → ``[...]``.

    gini = Σ_i Σ_j |x_i − x_j| / (2 N Σ_i x_i + 1e-10),   eq = 1 − N/(N − 1) · gini

    ([ERMAS] eq. 20; AIE ``scenarios/utils/social_metrics.py``). The 1e-10 makes eq = 1 when
    every endowment is 0; the N/(N − 1) factor makes eq = 0 when one agent holds everything.
    """
    x = _as_float(x)
    _check_ndim("equality_aie", x, 1, "[..., N]")
    n = x.shape[-1]
    if n < 2:
        raise ValueError(f"equality_aie: needs at least 2 agents, got N = {n}")
    gini = _abs_pair_diff_sum(x) / (2.0 * n * x.sum(-1) + 1e-10)
    return 1.0 - n / (n - 1) * gini


# --- time-series metrics -------------------------------------------------------------------


def _series(name: str, x) -> tuple[jax.Array, jax.Array]:
    """Validate a ``[..., T, N]`` series; return it and the step index t broadcastable to it."""
    x = jnp.asarray(x)
    _check_ndim(name, x, 2, "[..., T, N]")
    if x.shape[-2] == 0:
        raise ValueError(f"{name}: the episode has no steps (T = 0), shape {x.shape}")
    return x, jnp.arange(x.shape[-2], dtype=jnp.int32)[:, None]


def _sustainability_time_from_totals(time_sum: jax.Array, count: jax.Array) -> jax.Array:
    """S from per-agent Σ_t t·1[e_i(t) > 0] and #{t : e_i(t) > 0}, both ``[..., N]``."""
    has = count > 0
    mean_t = jnp.where(has, time_sum / jnp.where(has, count, 1), 0.0)
    n_with = has.sum(-1)
    return _safe_div(mean_t.sum(-1), n_with, n_with > 0)


def sustainability_time(rewards) -> jax.Array:
    """Sustainability as the mean time of positive rewards, ``rewards[..., T, N]`` → ``[...]``.

    S = (1/|I|) Σ_{i∈I} mean{t : e_i(t) > 0},  I = the agents with at least one positive
    reward (Perolat et al. 2017, Hughes et al. 2018, as commonly used; specs.md §10).
    Steps are t = 0 … T−1. Agents with no positive reward are left out; S is NaN when no
    agent has one.
    """
    rewards, t = _series("sustainability_time", rewards)
    positive = rewards > 0
    return _sustainability_time_from_totals(jnp.where(positive, t, 0).sum(-2), positive.sum(-2))


def _sustainability_fraction_from_totals(
    time_sum: jax.Array, apples: jax.Array, length: jax.Array
) -> jax.Array:
    """From per-agent Σ_t t·a_i(t) and Σ_t a_i(t) ``[..., N]`` and the episode length ``[...]``."""
    total = apples.sum(-1)
    return _safe_div(time_sum.sum(-1), length * total, total > 0)


def sustainability_fraction(apples_eaten) -> jax.Array:
    """Sustainability as the mean episode fraction at which apples are eaten → ``[...]``.

    ``apples_eaten[..., T, N]`` counts the apples agent i ate at step t.

    S = Σ_t Σ_i t · a_i(t) / (T · Σ_t Σ_i a_i(t)): the mean of t/T over every apple
    collected in the episode, with t = 0 … T−1 its step and T the episode length ([ECCLES]
    §3.3.2, "the average proportion of the episode that had passed when each apple was
    collected"). Uniform collection gives (T − 1)/(2T) ≈ 0.5. NaN when no apple is eaten.
    """
    apples, t = _series("sustainability_fraction", apples_eaten)
    return _sustainability_fraction_from_totals(
        (t * apples).sum(-2), apples.sum(-2), apples.shape[-2]
    )


def _peace_from_totals(hit_steps: jax.Array, length: jax.Array) -> jax.Array:
    """From per-agent #{t : hit_i(t)} ``[..., N]`` and the episode length ``[...]``."""
    n = hit_steps.shape[-1]
    return (n * length - hit_steps.sum(-1)) / length


def peace(hits_received) -> jax.Array:
    """Peace from per-step hit counts ``hits_received[..., T, N]`` → ``[...]``.

    P = (N·T − Σ_i Σ_t hit_i(t)) / T, hit_i(t) = 1 if agent i was hit by at least one FIRE
    beam at step t (after Perolat et al. 2017; specs.md §10). Several beams hitting the
    same agent at the same step count once. P = N when nobody is ever hit.
    """
    hits, _ = _series("peace", hits_received)
    return _peace_from_totals((hits > 0).sum(-2), hits.shape[-2])


def _cleaning_from_totals(cells: jax.Array, effective: jax.Array) -> dict[str, jax.Array]:
    return {
        "waste_cleaned_per_agent": cells,
        "waste_cleaned": cells.sum(-1),
        "waste_cleaned_equality": equality(cells),
        "effective_cleans_per_agent": effective,
        "effective_cleans": effective.sum(-1),
        "effective_cleans_equality": equality(effective),
    }


def cleaning_contribution(waste_cleaned) -> dict[str, jax.Array]:
    """Cleaning contributions in Cleanup from ``waste_cleaned[..., T, N]`` ([ECCLES] Fig. 4).

    ``waste_cleaned[t, i]`` is the number of waste cells agent i's CLEAN beam removed at step
    t. Returns:

    - ``waste_cleaned_per_agent`` ``[..., N]``: Σ_t waste cells removed by each agent;
      ``waste_cleaned`` ``[...]``: their total; ``waste_cleaned_equality``: their
      :func:`equality`.
    - ``effective_cleans_per_agent`` ``[..., N]``: the number of CLEAN actions that removed at
      least one cell (an agent acts once per step, so the steps with waste_cleaned > 0);
      ``effective_cleans`` and ``effective_cleans_equality`` likewise.
    """
    cells, _ = _series("cleaning_contribution", waste_cleaned)
    return _cleaning_from_totals(cells.sum(-2), (cells > 0).sum(-2))


# --- streaming accumulator -----------------------------------------------------------------


@struct.dataclass
class EpisodeAccumulator:
    """Running per-agent sums of one environment's current episode (specs.md §10 inputs).

    One instance per environment; learners ``jax.vmap`` :func:`accumulator_init` /
    :func:`accumulator_step` over their environments, which gives every field a leading
    env axis. Integer sums are int32, exact while Σ_t t < 2³¹ (episodes of up to ~65 000
    steps). With e_i(t) the extrinsic reward and ev_i(t) an event count at step t:

    Attributes:
      length: int32[] — steps added so far; the step index t of the next step, and the
        episode length T in a finished episode's totals.
      returns: float[N] — R_i = Σ_t e_i(t).
      positive_reward_steps: int32[N] — #{t : e_i(t) > 0}.
      positive_reward_time: int32[N] — Σ_t t · 1[e_i(t) > 0].
      event_totals: {event: int32[N]} — Σ_t ev_i(t).
      event_steps: {event: int32[N]} — #{t : ev_i(t) > 0}.
      event_time: {event: int32[N]} — Σ_t t · ev_i(t).
    """

    length: jax.Array
    returns: jax.Array
    positive_reward_steps: jax.Array
    positive_reward_time: jax.Array
    event_totals: dict[str, jax.Array]
    event_steps: dict[str, jax.Array]
    event_time: dict[str, jax.Array]


OWN_COINS, OTHER_COINS = "own_coins_collected", "other_coins_collected"


def own_coin_share(own, other) -> dict[str, jax.Array]:
    """[ECCLES] Fig. 2's own-coin ratio (specs.md §10) from per-agent episode totals of coins
    collected of the agent's own colour (``own``) and of the other's (``other``), ``[..., N]``.

    - ``own_coin_share`` ``[...]``: coins collected by their owner / all coins collected,
      Σ_i own_i / Σ_i (own_i + other_i); NaN when no coin was collected.
    - ``own_coin_share_per_agent`` ``[..., N]``: own_i / (own_i + other_i); NaN for an agent
      that collected none.
    """
    own, other = _as_float(own), _as_float(other)
    _check_ndim("own", own, 1, "[..., N]")
    total = own.sum(-1) + other.sum(-1)
    per_agent = own + other
    return {"own_coin_share": _safe_div(own.sum(-1), total, total > 0),
            "own_coin_share_per_agent": _safe_div(own, per_agent, per_agent > 0)}


def accumulator_init(
    num_agents: int, event_keys: tuple[str, ...] = (), reward_dtype=jnp.float32
) -> EpisodeAccumulator:
    """A zeroed :class:`EpisodeAccumulator` for ``num_agents`` agents tracking ``event_keys``.

    ``event_keys`` name the entries of ``info["events"]`` to sum (e.g.
    ``tuple(info["events"])``); ``apples_eaten``, ``hits_received`` and ``waste_cleaned``
    enable the metrics that need them in :func:`episode_metrics`.
    """
    if isinstance(num_agents, bool) or int(num_agents) != num_agents or num_agents < 1:
        raise ValueError(f"accumulator_init: num_agents must be a positive int, got {num_agents!r}")
    if isinstance(event_keys, str):
        raise ValueError(
            f"accumulator_init: event_keys must be a tuple of names, got the string {event_keys!r}"
        )
    keys = tuple(event_keys)
    if not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
        raise ValueError(f"accumulator_init: event_keys must be distinct strings, got {keys!r}")
    zeros = jnp.zeros((int(num_agents),), jnp.int32)
    return EpisodeAccumulator(
        length=jnp.zeros((), jnp.int32),
        returns=jnp.zeros((int(num_agents),), reward_dtype),
        positive_reward_steps=zeros,
        positive_reward_time=zeros,
        event_totals={k: zeros for k in keys},
        event_steps={k: zeros for k in keys},
        event_time={k: zeros for k in keys},
    )


def accumulator_step(
    acc: EpisodeAccumulator, reward, events: Mapping[str, jax.Array], done
) -> tuple[EpisodeAccumulator, EpisodeAccumulator]:
    """Add one env step to the running sums; return ``(acc_next, finished)``.

    Args:
      acc: the accumulator of one environment (vmap for many).
      reward: float[N], this step's extrinsic rewards e(t), with t = ``acc.length``.
      events: the step's ``info["events"]``, ``{name: int[N]}``; it must hold every key the
        accumulator tracks, and other keys are ignored.
      done: bool[], True when this step is the last of its episode (terminated or
        truncated).

    Returns:
      acc_next: the sums including this step, or all zeros when ``done`` (the next step
        starts a new episode at t = 0).
      finished: the sums including this step. They are the completed episode's totals
        where ``done`` and a partial episode's elsewhere, so mask them with ``done``
        before using :func:`episode_metrics`.
    """
    n = acc.returns.shape[-1]
    reward = jnp.asarray(reward)
    if reward.shape != (n,):
        raise ValueError(
            f"accumulator_step: reward must have shape ({n},) for this accumulator, "
            f"got {reward.shape} (vmap the accumulator over environments)"
        )
    missing = sorted(set(acc.event_totals) - set(events))
    if missing:
        raise ValueError(
            f"accumulator_step: events lack {missing} (tracked: {sorted(acc.event_totals)}, "
            f"given: {sorted(events)})"
        )
    done = jnp.asarray(done)
    if done.shape != ():
        raise ValueError(f"accumulator_step: done must be a scalar, got shape {done.shape}")

    t = acc.length
    positive = reward > 0
    totals, steps, times = {}, {}, {}
    for k in acc.event_totals:
        ev = jnp.asarray(events[k])
        if ev.shape != (n,):
            raise ValueError(
                f"accumulator_step: event {k!r} must have shape ({n},), got {ev.shape}"
            )
        ev = ev.astype(jnp.int32)
        totals[k] = acc.event_totals[k] + ev
        steps[k] = acc.event_steps[k] + (ev > 0)
        times[k] = acc.event_time[k] + t * ev
    finished = EpisodeAccumulator(
        length=t + 1,
        returns=acc.returns + reward.astype(acc.returns.dtype),
        positive_reward_steps=acc.positive_reward_steps + positive,
        positive_reward_time=acc.positive_reward_time + jnp.where(positive, t, 0),
        event_totals=totals,
        event_steps=steps,
        event_time=times,
    )
    acc_next = jax.tree.map(lambda x: jnp.where(done, jnp.zeros_like(x), x), finished)
    return acc_next, finished


def episode_metrics(finished: EpisodeAccumulator) -> dict[str, jax.Array]:
    """The specs.md §10 metrics of finished episodes' totals (any leading batch axes ``[...]``).

    Always:

    - ``episode_length`` ``[...]``: T.
    - ``returns`` ``[..., N]``: per-agent extrinsic returns R_i (the metrics log flattens it
      to ``returns_0 … returns_{N-1}``).
    - ``collective_return``, ``per_capita_return``, ``equality`` (SSD Gini form),
      ``sustainability_time`` ``[...]``.
    - for every tracked event ``name``: ``name`` ``[...]`` (total over agents and steps) and
      ``name_per_agent`` ``[..., N]`` (e.g. ``fires``, ``hits_received``, specs.md §10 peace
      row).

    When the event is tracked:

    - ``apples_eaten`` → ``sustainability_fraction``.
    - ``hits_received`` → ``peace``.
    - ``own_coins_collected`` and ``other_coins_collected`` (Coins) → :func:`own_coin_share`.
    - ``waste_cleaned`` → the :func:`cleaning_contribution` entries (``waste_cleaned``,
      ``waste_cleaned_per_agent``, ``waste_cleaned_equality``, ``effective_cleans``,
      ``effective_cleans_per_agent``, ``effective_cleans_equality``).
    """
    length = finished.length.astype(jnp.float32)
    returns = finished.returns
    out = {
        "episode_length": finished.length,
        "returns": returns,
        "collective_return": collective_return(returns),
        "per_capita_return": per_capita_return(returns),
        "equality": equality(returns),
        "sustainability_time": _sustainability_time_from_totals(
            finished.positive_reward_time, finished.positive_reward_steps
        ),
    }
    for k, total in finished.event_totals.items():
        out[k] = total.sum(-1)
        out[f"{k}_per_agent"] = total
    if APPLES in finished.event_totals:
        out["sustainability_fraction"] = _sustainability_fraction_from_totals(
            finished.event_time[APPLES], finished.event_totals[APPLES], length
        )
    if HITS in finished.event_totals:
        out["peace"] = _peace_from_totals(finished.event_steps[HITS], length)
    if WASTE in finished.event_totals:
        out.update(_cleaning_from_totals(finished.event_totals[WASTE], finished.event_steps[WASTE]))
    if OWN_COINS in finished.event_totals and OTHER_COINS in finished.event_totals:
        out.update(own_coin_share(finished.event_totals[OWN_COINS],
                                  finished.event_totals[OTHER_COINS]))
    return out
