"""Implicit responsibility (IR): reward shaping for violated responsibilities to a partner.

specs.md §5.6 and §9.8, [COLLINS] §2.2, App. C and Algorithm 1. For an ordered pair of
distinct agents (i, j) in a state s, with e, h, b energy, health and stored berries, E the
maximum energy, D the throwing distance and d_ij the Manhattan distance:

    ω_i = e_i + E · (b_i − 1)                  spare effective energy              (eq. 1)
    d_help = d_ij − D                           distance i still has to cover

    ψ1 (j depends on help), by variant:
      helpless (default):  e_j = 0 and h_j > 0          (the stated meaning of eqs. 2–3)
      alg1:                e_j < E and h_j > 0          (Algorithm 1 line 9, as printed)
      eq2_eq3:             0 < h_j < H                  (eq. 2 with eq. 3's h_j = H exclusion)

    ψ2 (i can bring j back to Healthy): i Healthy (e_i > 0), b_i ≥ 1, and
      (a) d_help ≤ 0 and ω_i ≥ E                        (eq. 4; ω_i > E with ``strict``, eq. 13)
      (b) d_help > 0 and ω_i > E − d_help               (eqs. 5, 15)
          and h_j > d_help                               (eq. 16; dropped without ``require_time``)

    R_ij(s) = ψ1 ∧ ψ2                           (ψ3, awareness, holds: full observability)

Shaping of a transition s_t → s_{t+1} (Algorithm 1 lines 13–25), for each ordered pair:

    violation:    R_ij(s_t) ∧ ¬R_ij(s_{t+1}) ∧ e_j(t+1) = 0   →  r_i −= p   (line 20)
    open charge:  R_ij(s_{t+1})                               →  r_i −= p   (lines 22–23,
                  read literally; only with ``penalise_open_responsibility``, D-30)
    satisfaction: R_ij(s_t) ∧ e_j(t+1) > 0 (j Healthy again): closed, no reward change
    opened:       ¬R_ij(s_t) ∧ R_ij(s_{t+1})

The two charges exclude each other, so a pair costs at most p per step. A responsibility
to a j who dies while it is open is violated once (ψ1 fails and e_j = 0). Defaults
(D-29, D-30): ψ1 ``helpless``, ψ2 (a) with ω ≥ E, (b) with eq. 16, violations only, p = 0.9.

The pure functions below take arrays with any leading batch axes and the agents last
(``[..., N]`` per agent, ``[..., N, N]`` per ordered pair, row i the responsible agent,
column j its partner). E, H, D are numbers or arrays of the batch shape ``[...]``.
:class:`ImplicitResponsibility` is the motive: it reads the Forage environment's
``info["signals"]`` (``prosocial.envs.forage``) and nothing else.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prosocial.envs.core import signal_keys
from prosocial.motives.base import Motive, select_agents

PSI1_VARIANTS = ("helpless", "alg1", "eq2_eq3")
SIGNALS = ("energy", "health", "berries", "distance", "prev_energy", "prev_health",
           "prev_berries", "prev_distance", "max_energy", "max_health", "throw_distance")


def _agent(x) -> jax.Array:
    """A per-batch constant ``[...]`` as ``[..., 1]`` (broadcasts against the agent axis)."""
    return jnp.asarray(x)[..., None]


def spare_energy(energy, berries, max_energy) -> jax.Array:
    """ω_i = e_i + E · (b_i − 1): i's energy plus what its stored berries would give after
    throwing one ([COLLINS] eq. 1; Algorithm 1 line 6).

    Args:
      energy, berries: e and b, ``[..., N]``.
      max_energy: E, a number or ``[...]``.

    Returns:
      ω, int32 ``[..., N]``.
    """
    energy, berries = jnp.asarray(energy), jnp.asarray(berries)
    return (energy + _agent(max_energy) * (berries - 1)).astype(jnp.int32)


def dependency(energy, health, max_energy, max_health, variant: str = "helpless") -> jax.Array:
    """ψ1 for each partner j: j depends on another agent's help (specs §5.6).

    ``helpless`` (default): e_j = 0 and h_j > 0, the meaning the text gives eqs. 2–3;
    ``alg1``: e_j < E and h_j > 0, as Algorithm 1 line 9 prints it (true for any living
    agent below full energy); ``eq2_eq3``: 0 < h_j < H.

    Returns:
      bool ``[..., N]``, entry j.
    """
    if variant not in PSI1_VARIANTS:
        raise ValueError(f"psi1 must be one of {PSI1_VARIANTS}, got {variant!r}")
    e, h = jnp.asarray(energy), jnp.asarray(health)
    if variant == "helpless":
        return (e == 0) & (h > 0)
    if variant == "alg1":
        return (e < _agent(max_energy)) & (h > 0)
    return (h > 0) & (h < _agent(max_health))


def capability(energy, health, berries, distance, max_energy, throw_distance,
               strict: bool = False, require_time: bool = True) -> jax.Array:
    """ψ2 for each ordered pair: i can bring j back to Healthy (specs §5.6).

    i must be Healthy (e_i > 0) and hold a berry (b_i ≥ 1); with ω_i the spare energy
    (:func:`spare_energy`) and d_help = d_ij − D, either

    - (a) d_help ≤ 0 and ω_i ≥ E ([COLLINS] eq. 4; ``strict``: ω_i > E, App. C eq. 13), or
    - (b) d_help > 0 and ω_i > E − d_help (eqs. 5 and 15) and, with ``require_time``,
      h_j > d_help (eq. 16: j lives long enough for i to arrive).

    Args:
      energy, health, berries: ``[..., N]``.
      distance: Manhattan distances d_ij, ``[..., N, N]``.
      max_energy, throw_distance: E and D, numbers or ``[...]``.

    Returns:
      bool ``[..., N, N]``, entry [i, j] (the diagonal is whatever the formula gives; use
      :func:`responsibility`, which excludes i = j).
    """
    e, h, b = jnp.asarray(energy), jnp.asarray(health), jnp.asarray(berries)
    big_e = _agent(_agent(max_energy))
    omega = spare_energy(e, b, max_energy)[..., :, None]
    d_help = jnp.asarray(distance) - _agent(_agent(throw_distance))
    able = ((e > 0) & (b >= 1))[..., :, None]
    near = (d_help <= 0) & ((omega > big_e) if strict else (omega >= big_e))
    far = (d_help > 0) & (omega > big_e - d_help)
    if require_time:
        far = far & (h[..., None, :] > d_help)
    return able & (near | far)


def responsibility(energy, health, berries, distance, max_energy, max_health, throw_distance,
                   psi1: str = "helpless", psi2_strict: bool = False,
                   psi2_require_time: bool = True) -> jax.Array:
    """R_ij(s) = ψ1_j(s) ∧ ψ2_ij(s) for i ≠ j (ψ3 always holds under full observability).

    Returns:
      bool ``[..., N, N]``: entry [i, j] True when i holds an implicit responsibility to j.
    """
    n = jnp.shape(energy)[-1]
    psi1_j = dependency(energy, health, max_energy, max_health, psi1)[..., None, :]
    psi2 = capability(energy, health, berries, distance, max_energy, throw_distance,
                      psi2_strict, psi2_require_time)
    return psi1_j & psi2 & ~jnp.eye(n, dtype=bool)


def responsibility_shaping(r_now, r_next, energy_next, punishment=0.9,
                           penalise_open: bool = False) -> dict[str, jax.Array]:
    """The reward change of one transition s_t → s_{t+1} (Algorithm 1 lines 19–23).

    Args:
      r_now, r_next: R(s_t) and R(s_{t+1}), bool ``[..., N, N]`` (:func:`responsibility`).
      energy_next: e(t+1), ``[..., N]``.
      punishment: p ≥ 0, a number or one per agent ``[N]`` (charged to the responsible i).
      penalise_open: also charge p for every responsibility open at s_{t+1} (the literal
        reading of lines 22–23, D-30).

    Returns:
      ``{"penalty": float32 [..., N]`` (≤ 0, added to i's reward), ``"violated"``,
      ``"satisfied"``, ``"opened"``: bool ``[..., N, N]}``.
    """
    r_now, r_next = jnp.asarray(r_now, bool), jnp.asarray(r_next, bool)
    helpless_next = (jnp.asarray(energy_next) == 0)[..., None, :]
    violated = r_now & ~r_next & helpless_next
    satisfied = r_now & ~helpless_next
    charged = violated | (r_next if penalise_open else jnp.zeros_like(r_next))
    penalty = -jnp.asarray(punishment, jnp.float32) * charged.sum(-1).astype(jnp.float32)
    return {"penalty": penalty, "violated": violated, "satisfied": satisfied,
            "opened": ~r_now & r_next}


class ImplicitResponsibility(Motive):
    """Implicit responsibility as a motive (specs §5.6, §9.8): the intrinsic reward of agent
    i at step t is the penalty of :func:`responsibility_shaping` for the step's transition,
    computed from the environment's signals (s_t as ``prev_*``, s_{t+1} as the rest).

    Diagnostics (per seed and agent, means per step): ``ir_penalty``, ``ir_violations``,
    ``ir_satisfactions``, ``ir_opened`` (counts over partners j). With ``punishment=0`` the
    motive only observes, which gives baseline runs the same responsibility statistics.
    """

    name = "ir"
    min_agents = 2
    signals = SIGNALS
    """``info["signals"]`` entries the motive reads."""

    def __init__(self, punishment=0.9, psi1: str = "helpless", psi2_strict: bool = False,
                 psi2_require_time: bool = True, penalise_open: bool = False):
        if not np.all(np.asarray(punishment, dtype=float) >= 0):
            raise ValueError(f"motive.responsibility_punishment must be ≥ 0 (it is subtracted),"
                             f" got {punishment!r}")
        if psi1 not in PSI1_VARIANTS:
            raise ValueError(f"motive.psi1 must be one of {PSI1_VARIANTS}, got {psi1!r}")
        self.punishment = punishment
        self.psi1, self.psi2_strict = psi1, bool(psi2_strict)
        self.psi2_require_time, self.penalise_open = bool(psi2_require_time), bool(penalise_open)

    def check(self, env, event_keys):
        super().check(env, event_keys)
        missing = sorted(set(self.signals) - set(signal_keys(env)))
        if missing:
            raise ValueError(f"motive 'ir' needs the env signals {missing}, which "
                             f"{env.env_id or type(env).__name__} does not offer (implicit "
                             f"responsibility is defined for Forage Survival)")
        p = np.asarray(self.punishment)
        if p.ndim and p.shape != (env.num_agents,):
            raise ValueError(f"motive.responsibility_punishment: one value or one per agent "
                             f"({env.num_agents}), got shape {p.shape}")

    def shaping(self, signals) -> dict[str, jax.Array]:
        """:func:`responsibility_shaping` of every step of ``signals`` (leaves
        ``[..., N(, N)]``, e.g. a rollout's ``[T, S, E, ...]``)."""
        consts = (signals["max_energy"], signals["max_health"], signals["throw_distance"])
        flags = dict(psi1=self.psi1, psi2_strict=self.psi2_strict,
                     psi2_require_time=self.psi2_require_time)
        r_now = responsibility(signals["prev_energy"], signals["prev_health"],
                               signals["prev_berries"], signals["prev_distance"], *consts,
                               **flags)
        r_next = responsibility(signals["energy"], signals["health"], signals["berries"],
                                signals["distance"], *consts, **flags)
        return responsibility_shaping(r_now, r_next, signals["energy"], self.punishment,
                                      self.penalise_open)

    def intrinsic(self, params, carry, rollout, view):
        out = self.shaping(rollout.signals)
        penalty = select_agents(out["penalty"], view.layout)

        def mean(x):  # [T, S, E, N] → [S, n]
            return select_agents(x, view.layout).astype(jnp.float32).mean(axis=(0, 2))

        diagnostics = {"ir_penalty": mean(out["penalty"]),
                       "ir_violations": mean(out["violated"].sum(-1)),
                       "ir_satisfactions": mean(out["satisfied"].sum(-1)),
                       "ir_opened": mean(out["opened"].sum(-1))}
        return carry, penalty, diagnostics, {}

    def config(self):
        return {"name": self.name, "punishment": np.asarray(self.punishment).tolist(),
                "psi1": self.psi1, "psi2_strict": self.psi2_strict,
                "psi2_require_time": self.psi2_require_time,
                "penalise_open": self.penalise_open}
