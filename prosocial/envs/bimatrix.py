"""The repeated bimatrix game of ERMAS (specs §6) and its N-matrix variant (§6.7).

Bimatrix (ids ``bimatrix`` and ``bimatrix-constrained``). The state is a cell (i, j) of a
W × W grid (W = 4). The row agent (agent 0) moves i, the column agent (agent 1) moves j, each
with 3 actions (0 stay, 1 index + 1, 2 index − 1, clamped to the grid), simultaneously.
Rewards are read at the new cell (i', j'): r1(i', j') to the row agent, r2(i', j') to the
column agent, and the planner's r̃ in one of three forms (agent 2, role ``"planner"``):

- ``bimatrix`` (augmented game, §6.4, active planner, ``planner_reward="srai"``): the
  planner holds a ∈ {0 … A_max} (A_max = 12 officers, a = 0 at reset); its 5 actions change
  a by −2, −1, 0, +1, +2 (clamped) after the agents' move, and it receives
  ``r̃(i', j') · (1 + w · a / A_max) − (a / A_max)²`` with the updated a, w = 3
  (:func:`planner_reward_srai`). ``planner_reward="paper"`` is [ERMAS] §5.3 read literally:
  the planner picks a ∈ {0 … A_max} each step (A_max + 1 actions) and receives
  ``a · r̃ − a²`` (B-26, :func:`planner_reward_paper`).
- ``bimatrix-constrained`` (§6.3, passive planner): the planner has one action (it takes
  none), a stays 0 and it receives r̃(i', j').

Test-time changes (§6.5), all constructor arguments: ``perturb_q`` (Q: agents receive
r_i − Q · r̃, the base planner matrix), ``dr`` and ``episode_dr`` (domain randomisation: each
agent's reward + σ_i, σ_i ~ U[−dr, dr] drawn at each episode start, or each step),
``risk_eta`` (risk robustness: the planner's reward x becomes :func:`risk_robust` (x, η)),
``action_perturb`` (with probability p the row agent's action is replaced by the one that
minimises r̃ given the column agent's action, ties to the lower action id).

Observations (§6.6), key ``"obs"`` (the vector input of ``prosocial.nets``): the agents
(role ``"agents"``) both see the one-hot of the cell index i·W + j (W² floats); the planner
sees that one-hot followed by the one-hot of a (W² + A_max + 1 floats). Episodes last
``max_steps`` = 5000 steps and end by truncation; ``ref_bimatrix_extra_step`` gives SRAI's
5001 (B-31).

N-matrix (id ``coop_bimatrix_3``, §6.7): ``num_players`` agents (3) and a planner each move
along their own axis of a W^(n+1) grid (W = 7; agents' axes first, the planner's last), with
the bimatrix's 3 actions; payoffs are N(0, 1) tables drawn with numpy's legacy generator
seeded 0 (planner first, then the agents); every role observes the n + 1 coordinates
(float32); episodes last 500 steps. Its perturbation mixes rewards,
r_i' = −Q · r̃ + (1 − Q) · r_i; ``risk_eta`` applies to the agents' rewards; its DR noise is
fresh each time (``ref_nmatrix_dr_drift``: SRAI adds the noise into the tables after each
step, B-27); its action perturbation replaces each agent's action by a uniformly random
one with probability p (``ref_nmatrix_action_perturb``: every agent acts at random whenever
the perturbation is on, B-29).

Randomness (§0.6): the start cell comes from one ``jax.random.bits`` draw reduced modulo the
number of cells (exact for W = 4, bias below 10⁻⁶ otherwise), the cheapest keyed draw; no
other randomness is drawn unless DR or the action perturbation is switched on.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from prosocial.envs.core import Env
from prosocial.envs.spaces import Box, Dict, Discrete

STAY, PLUS, MINUS = 0, 1, 2
MOVE = (0, 1, -1)  # index change of each agent action
OFFICER_CHANGE = (-2, -1, 0, 1, 2)  # change of a for each active planner action (SRAI form)


# ------------------------------------------------------------------------ payoffs
def _srai_seed(payoffs: str, what: str) -> int:
    match = re.fullmatch(r"srai_seed(\d+)", payoffs)
    if match is None:
        raise ValueError(f"{what}: payoffs must be 'srai_seed<k>' (k a non-negative integer) "
                         f"or an array of payoff tables, got {payoffs!r}")
    return int(match.group(1))


def srai_bimatrix_payoffs(seed: int = 0, width: int = 4) -> np.ndarray:
    """float64[3, W, W]: the tables (r̃, r1, r2) SRAI draws (§6.2): numpy's legacy generator
    seeded with ``seed``, then three consecutive ``uniform(size=(W, W))`` calls in the order
    planner, row agent, column agent. Rows are the row index i, columns the column index j."""
    rng = np.random.RandomState(seed)
    return np.stack([rng.uniform(size=(width, width)) for _ in range(3)])


def srai_nmatrix_payoffs(seed: int = 0, width: int = 7, num_players: int = 3) -> np.ndarray:
    """float64[n + 1, W, …, W] (n + 1 grid axes): SRAI's N-matrix tables (§6.7), standard
    normal draws of numpy's legacy generator seeded with ``seed``, planner first, then agents
    0 … n − 1. Axis k of every table is agent k's coordinate, the last axis the planner's."""
    rng = np.random.RandomState(seed)
    shape = (width,) * (num_players + 1)
    return np.stack([rng.normal(size=shape) for _ in range(num_players + 1)])


# ------------------------------------------------------------------------ reward forms
def planner_reward_srai(base, officers, max_officers: int, weight: float):
    """SRAI's augmented planner reward (§6.4): r̃ · (1 + w · a / A_max) − (a / A_max)²."""
    frac = jnp.asarray(officers, jnp.float32) / max_officers
    return base * (1.0 + weight * frac) - frac * frac


def planner_reward_paper(base, officers):
    """[ERMAS] §5.3 literally: r̃_a = a · r̃ − a² (B-26)."""
    a = jnp.asarray(officers, jnp.float32)
    return a * base - a * a


def risk_robust(x, eta: float, ref_concav_log: bool = False):
    """The risk-robustness (RR) transform of a reward x (§6.5):
    ((x + 1)^(1 − η) − 1) / (1 − η) for η ≠ 1, log(1 + x) for η = 1 (``ref_concav_log``:
    log(x), SRAI's B-30); x ≤ −0.9999 gives −10 and a NaN result −100."""
    x = jnp.asarray(x, jnp.float32)
    safe = jnp.maximum(x, -0.9999)  # keeps the unused branch of where() finite
    if eta == 1.0:
        y = jnp.log(x) if ref_concav_log else jnp.log1p(safe)
    else:
        y = (jnp.power(safe + 1.0, 1.0 - eta) - 1.0) / (1.0 - eta)
    y = jnp.where(jnp.isnan(y), -100.0, y)
    return jnp.where(x <= -0.9999, -10.0, y).astype(jnp.float32)


def uniform_index(key: jax.Array, n: int) -> jax.Array:
    """int32: a uniform draw from 0 … n − 1 (one 32-bit draw modulo n; exact when n divides
    2³², otherwise biased by less than n / 2³²)."""
    return (jax.random.bits(key, (), jnp.uint32) % jnp.uint32(n)).astype(jnp.int32)


def _check_unit(what: str, name: str, value) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise ValueError(f"{what}: {name} must be a probability in [0, 1], got {value!r}")
    return value


def _check_common(env, perturb_q, dr, risk_eta, max_steps):
    what = env.env_id
    if not np.isfinite(perturb_q):
        raise ValueError(f"{what}: perturb_q (Q) must be a finite number, got {perturb_q!r}")
    if not (np.isfinite(dr) and dr >= 0):
        raise ValueError(f"{what}: dr must be ≥ 0 (noise U[−dr, dr]; 0 switches DR off), "
                         f"got {dr!r}")
    if risk_eta is not None and not (np.isfinite(risk_eta) and risk_eta >= 0):
        raise ValueError(f"{what}: risk_eta (η) must be None (off) or ≥ 0, got {risk_eta!r}")
    if not isinstance(max_steps, int | np.integer) or max_steps < 1:
        raise ValueError(f"{what}: max_steps must be a positive integer, got {max_steps!r}")


def _episode_noise(env, key, n: int) -> jax.Array:
    return jax.random.uniform(key, (n,), jnp.float32, -env.dr, env.dr)


# ------------------------------------------------------------------------ bimatrix
@struct.dataclass
class BimatrixState:
    """State of one bimatrix game."""

    cell: jax.Array  # int32[2] (i, j): row index, column index
    officers: jax.Array  # int32 a, the planner's setting (0 for a passive planner)
    noise: jax.Array  # float32[2] the agents' DR offsets σ_i (0 when DR is off)
    t: jax.Array  # int32 steps taken in this episode


class Bimatrix(Env):
    """The augmented repeated bimatrix game (active planner); see the module docstring."""

    env_id = "bimatrix"
    num_agents = 3
    active_planner = True

    def __init__(self, payoffs="srai_seed0", env_width: int = 4,
                 planner_reward: str = "srai", max_officers: int = 12,
                 officer_weight: float = 3.0, perturb_q: float = 0.0, dr: float = 0.0,
                 episode_dr: bool = True, risk_eta: float | None = None,
                 ref_concav_log: bool = False, action_perturb: float = 0.0,
                 max_steps: int = 5000, ref_bimatrix_extra_step: bool = False):
        what = self.env_id
        if isinstance(payoffs, str):
            if not isinstance(env_width, int | np.integer) or env_width < 1:
                raise ValueError(f"{what}: env_width must be a positive integer, "
                                 f"got {env_width!r}")
            tables = srai_bimatrix_payoffs(_srai_seed(payoffs, what), int(env_width))
        else:
            tables = np.asarray(payoffs, np.float64)
            if tables.ndim != 3 or tables.shape[0] != 3 or tables.shape[1] != tables.shape[2]:
                raise ValueError(f"{what}: payoffs must be 3 square tables (planner r̃, row "
                                 f"r1, column r2) of shape (3, W, W), got {tables.shape}")
            if not np.all(np.isfinite(tables)):
                raise ValueError(f"{what}: payoffs must be finite")
        if planner_reward not in ("srai", "paper"):
            raise ValueError(f"{what}: planner_reward must be 'srai' or 'paper', "
                             f"got {planner_reward!r}")
        if not self.active_planner and planner_reward != "srai":
            raise ValueError(f"{what}: the passive planner takes no action; planner_reward "
                             f"applies to the active planner (id 'bimatrix') only")
        if not isinstance(max_officers, int | np.integer) or max_officers < 1:
            raise ValueError(f"{what}: max_officers must be a positive integer, "
                             f"got {max_officers!r}")
        if not np.isfinite(officer_weight):
            raise ValueError(f"{what}: officer_weight must be finite, got {officer_weight!r}")
        _check_common(self, perturb_q, dr, risk_eta, max_steps)
        self.payoffs = tables
        self.width = tables.shape[1]
        self.planner_reward = planner_reward
        self.max_officers = int(max_officers)
        self.officer_weight = float(officer_weight)
        self.perturb_q = float(perturb_q)
        self.dr = float(dr)
        self.episode_dr = bool(episode_dr)
        self.risk_eta = None if risk_eta is None else float(risk_eta)
        self.ref_concav_log = bool(ref_concav_log)
        self.action_perturb = _check_unit(what, "action_perturb", action_perturb)
        self.max_steps = int(max_steps)
        self.ref_bimatrix_extra_step = bool(ref_bimatrix_extra_step)
        cells = self.width * self.width
        # Flat tables [3, W²]: the planner's base r̃, then the agents' rewards with Q applied.
        flat = tables.reshape(3, cells)
        agents = flat[1:] - self.perturb_q * flat[:1]
        self._tables = np.concatenate([flat[:1], agents]).astype(np.float32)
        # The planner's reward for every (cell, a), transform included: one lookup per step,
        # and the same float32 values jitted or not.
        base = jnp.asarray(flat[0], jnp.float32)[:, None]
        a = jnp.arange(self.max_officers + 1)[None, :]
        if not self.active_planner:
            planner = jnp.broadcast_to(base, (cells, self.max_officers + 1))
        elif planner_reward == "srai":
            planner = planner_reward_srai(base, a, self.max_officers, self.officer_weight)
        else:
            planner = planner_reward_paper(base, a)
        if self.risk_eta is not None:
            planner = risk_robust(planner, self.risk_eta, self.ref_concav_log)
        self._planner_table = np.asarray(planner, np.float32)

    # ----------------------------------------------------------------- roles and spaces
    @property
    def roles(self):
        return {"agents": (0, 1), "planner": (2,)}

    @property
    def planner_actions(self) -> int:
        if not self.active_planner:
            return 1
        return len(OFFICER_CHANGE) if self.planner_reward == "srai" else self.max_officers + 1

    @property
    def observation_spaces(self):
        cells = self.width * self.width
        return {"agents": Dict({"obs": Box(0.0, 1.0, (cells,), "float32")}),
                "planner": Dict({"obs": Box(0.0, 1.0, (cells + self.max_officers + 1,),
                                            "float32")})}

    @property
    def action_spaces(self):
        return {"agents": Discrete(3), "planner": Discrete(self.planner_actions)}

    # ----------------------------------------------------------------- contract
    def reset_state(self, key: jax.Array) -> BimatrixState:
        """A uniformly random start cell, a = 0, fresh per-episode DR offsets (§6.1, §6.5)."""
        key_cell, key_noise = jax.random.split(key) if self._episode_noise else (key, None)
        index = uniform_index(key_cell, self.width * self.width)
        noise = (_episode_noise(self, key_noise, 2) if self._episode_noise
                 else jnp.zeros(2, jnp.float32))
        return BimatrixState(cell=jnp.stack([index // self.width, index % self.width]),
                             officers=jnp.int32(0), noise=noise, t=jnp.int32(0))

    @property
    def _episode_noise(self) -> bool:
        return self.dr > 0 and self.episode_dr

    def step_state(self, key: jax.Array, state: BimatrixState, actions: jax.Array):
        self.check_state(state)
        actions = self.check_actions(actions)
        key_perturb, key_noise = jax.random.split(key)
        move = jnp.asarray(MOVE, jnp.int32)
        w = self.width
        col = jnp.clip(state.cell[1] + move[actions[1]], 0, w - 1)
        row_action, perturbed = actions[0], jnp.bool_(False)
        if self.action_perturb > 0:
            # Each row action's planner payoff given the column agent's move; argmin keeps
            # the lowest action id among ties, as SRAI's stable sort does.
            rows = jnp.clip(state.cell[0] + move, 0, w - 1)
            worst = jnp.argmin(jnp.asarray(self._tables[0])[rows * w + col]).astype(jnp.int32)
            perturbed = jax.random.uniform(key_perturb) < self.action_perturb
            row_action = jnp.where(perturbed, worst, row_action)
        row = jnp.clip(state.cell[0] + move[row_action], 0, w - 1)
        index = row * w + col
        values = jnp.asarray(self._tables[1:])[:, index]  # r1 − Q r̃, r2 − Q r̃
        officers = self._officers(state.officers, actions[2])
        planner = jnp.asarray(self._planner_table)[index, officers]
        noise = state.noise
        if self.dr > 0 and not self.episode_dr:
            noise = _episode_noise(self, key_noise, 2)
        reward = jnp.concatenate([values + noise, planner[None]]).astype(jnp.float32)

        t = state.t + 1
        cell = jnp.stack([row, col])
        next_state = BimatrixState(cell=cell, officers=officers, noise=noise, t=t)
        moved = jnp.concatenate([cell != state.cell, (officers != state.officers)[None]])
        info = {"events": {
            "moved": moved.astype(jnp.int32),
            "officers": jnp.zeros(3, jnp.int32).at[2].set(officers),
            "action_perturbed": jnp.zeros(3, jnp.int32).at[0].set(perturbed.astype(jnp.int32)),
        }, "signals": {}}
        limit = self.max_steps + int(self.ref_bimatrix_extra_step)
        return (next_state, reward, jnp.zeros(3, jnp.bool_), t >= limit, info)

    def _officers(self, officers: jax.Array, action: jax.Array) -> jax.Array:
        """a after the planner's action (applied after the agents' move, §6.4)."""
        if not self.active_planner:
            return officers
        if self.planner_reward == "paper":
            return action.astype(jnp.int32)
        change = jnp.asarray(OFFICER_CHANGE, jnp.int32)[action]
        return jnp.clip(officers + change, 0, self.max_officers).astype(jnp.int32)

    def observe(self, state: BimatrixState):
        """One-hot cell for both agents; one-hot cell and one-hot a for the planner (§6.6)."""
        self.check_state(state)
        cells = self.width * self.width
        index = state.cell[0] * self.width + state.cell[1]
        cell = (jnp.arange(cells) == index).astype(jnp.float32)
        officers = (jnp.arange(self.max_officers + 1) == state.officers).astype(jnp.float32)
        return {"agents": {"obs": jnp.broadcast_to(cell, (2, cells))},
                "planner": {"obs": jnp.concatenate([cell, officers])[None]}}

    def render(self, state: BimatrixState) -> jax.Array:
        """uint8[W, W, 3]: r̃ in grey levels, the current cell red."""
        self.check_state(state)
        table = self.payoffs[0]
        span = max(float(table.max() - table.min()), 1e-12)
        grey = np.round(40 + 180 * (table - table.min()) / span).astype(np.uint8)
        image = jnp.asarray(np.repeat(grey[..., None], 3, axis=2))
        return image.at[state.cell[0], state.cell[1]].set(jnp.array([220, 30, 30], jnp.uint8))


class ConstrainedBimatrix(Bimatrix):
    """The constrained game (§6.3): a passive planner (one action, a = 0) receiving r̃."""

    env_id = "bimatrix-constrained"
    active_planner = False


# ------------------------------------------------------------------------ N-matrix
@struct.dataclass
class NMatrixState:
    """State of one N-matrix game."""

    pos: jax.Array  # int32[n + 1] coordinates: agents' axes, then the planner's
    noise: jax.Array  # float32[n] the agents' DR offsets of the episode (episode_dr)
    drift: jax.Array  # float32[n] noise added into the tables so far (ref_nmatrix_dr_drift)
    t: jax.Array  # int32 steps taken in this episode


class NMatrix(Env):
    """SRAI's N-matrix game ``coop_bimatrix_3`` (§6.7); see the module docstring."""

    env_id = "coop_bimatrix_3"

    def __init__(self, num_players: int = 3, payoffs="srai_seed0", env_width: int = 7,
                 perturb_q: float = 0.0, dr: float = 0.0, episode_dr: bool = True,
                 risk_eta: float | None = None, ref_concav_log: bool = False,
                 action_perturb: float = 0.0, max_steps: int = 500,
                 ref_bimatrix_extra_step: bool = False, ref_nmatrix_dr_drift: bool = False,
                 ref_nmatrix_action_perturb: bool = False):
        what = self.env_id
        if not isinstance(num_players, int | np.integer) or num_players < 1:
            raise ValueError(f"{what}: num_players must be a positive integer, "
                             f"got {num_players!r}")
        n = int(num_players)
        if isinstance(payoffs, str):
            if not isinstance(env_width, int | np.integer) or env_width < 1:
                raise ValueError(f"{what}: env_width must be a positive integer, "
                                 f"got {env_width!r}")
            if int(env_width) ** (n + 1) > 2**24:
                raise ValueError(f"{what}: env_width^(num_players + 1) = "
                                 f"{int(env_width) ** (n + 1)} cells is too large")
            tables = srai_nmatrix_payoffs(_srai_seed(payoffs, what), int(env_width), n)
        else:
            tables = np.asarray(payoffs, np.float64)
            w = tables.shape[1] if tables.ndim > 1 else 0
            if tables.shape != (n + 1,) + (w,) * (n + 1) or w < 1:
                raise ValueError(f"{what}: payoffs must be num_players + 1 = {n + 1} tables "
                                 f"(planner first) over a W^{n + 1} grid, shape "
                                 f"({n + 1}, W, …, W); got {tables.shape}")
            if not np.all(np.isfinite(tables)):
                raise ValueError(f"{what}: payoffs must be finite")
        _check_common(self, perturb_q, dr, risk_eta, max_steps)
        self.num_players = n
        self.num_agents = n + 1
        self.payoffs = tables
        self.width = tables.shape[1]
        self.perturb_q = float(perturb_q)
        self.dr = float(dr)
        self.episode_dr = bool(episode_dr)
        self.risk_eta = None if risk_eta is None else float(risk_eta)
        self.ref_concav_log = bool(ref_concav_log)
        self.action_perturb = _check_unit(what, "action_perturb", action_perturb)
        self.max_steps = int(max_steps)
        self.ref_bimatrix_extra_step = bool(ref_bimatrix_extra_step)
        self.ref_nmatrix_dr_drift = bool(ref_nmatrix_dr_drift)
        self.ref_nmatrix_action_perturb = bool(ref_nmatrix_action_perturb)
        flat = tables.reshape(n + 1, -1)
        q = self.perturb_q
        agents = (-q * flat[:1] + (1.0 - q) * flat[1:]).astype(np.float32)
        # Without DR the agents' transformed rewards are a table too (one lookup per step).
        self._risk_live = self.risk_eta is not None and self.dr > 0
        if self.risk_eta is not None and not self._risk_live:
            agents = np.asarray(risk_robust(agents, self.risk_eta, self.ref_concav_log))
        self._tables = np.concatenate([flat[:1].astype(np.float32), agents])
        self._strides = self.width ** np.arange(n, -1, -1)  # row-major flat index

    @property
    def roles(self):
        return {"agents": tuple(range(self.num_players)), "planner": (self.num_players,)}

    @property
    def observation_spaces(self):
        space = Dict({"obs": Box(0.0, float(self.width - 1), (self.num_agents,), "float32")})
        return {"agents": space, "planner": space}

    @property
    def action_spaces(self):
        return {"agents": Discrete(3), "planner": Discrete(3)}

    def reset_state(self, key: jax.Array) -> NMatrixState:
        """Uniformly random coordinates; fresh per-episode DR offsets (§6.7)."""
        n = self.num_players
        key_pos, key_noise = jax.random.split(key) if self._episode_noise else (key, None)
        index = uniform_index(key_pos, self.width ** (n + 1))
        pos = (index // jnp.asarray(self._strides, jnp.int32)) % self.width
        noise = (_episode_noise(self, key_noise, n) if self._episode_noise
                 else jnp.zeros(n, jnp.float32))
        return NMatrixState(pos=pos.astype(jnp.int32), noise=noise,
                            drift=jnp.zeros(n, jnp.float32), t=jnp.int32(0))

    @property
    def _episode_noise(self) -> bool:
        return self.dr > 0 and self.episode_dr

    def step_state(self, key: jax.Array, state: NMatrixState, actions: jax.Array):
        self.check_state(state)
        actions = self.check_actions(actions)
        key_coin, key_random, key_noise = jax.random.split(key, 3)
        n = self.num_players
        taken, perturbed = actions, jnp.zeros(n + 1, jnp.bool_)
        if self.action_perturb > 0:
            random_actions = jax.random.randint(key_random, (n + 1,), 0, 3, jnp.int32)
            if self.ref_nmatrix_action_perturb:  # B-29: any perturbation randomises all
                perturbed = jnp.ones(n + 1, jnp.bool_)
            else:
                perturbed = jax.random.uniform(key_coin, (n + 1,)) < self.action_perturb
            perturbed = perturbed.at[n].set(False)  # the planner is never perturbed
            taken = jnp.where(perturbed, random_actions, actions)
        move = jnp.asarray(MOVE, jnp.int32)[taken]
        pos = jnp.clip(state.pos + move, 0, self.width - 1)
        index = jnp.sum(pos * jnp.asarray(self._strides, jnp.int32))
        values = jnp.asarray(self._tables)[:, index]  # r̃, then the agents' (Q, η applied)
        noise = state.noise
        if self.dr > 0 and not self.episode_dr:
            noise = _episode_noise(self, key_noise, n)
        if self.ref_nmatrix_dr_drift:  # B-27: the noise enters the tables after the read
            agents, drift = values[1:] + state.drift, state.drift + noise
        else:
            agents, drift = values[1:] + noise, state.drift
        if self._risk_live:
            agents = risk_robust(agents, self.risk_eta, self.ref_concav_log)
        reward = jnp.concatenate([agents, values[:1]]).astype(jnp.float32)
        t = state.t + 1
        info = {"events": {"moved": (pos != state.pos).astype(jnp.int32),
                           "action_perturbed": perturbed.astype(jnp.int32)},
                "signals": {}}
        limit = self.max_steps + int(self.ref_bimatrix_extra_step)
        next_state = NMatrixState(pos=pos, noise=noise, drift=drift, t=t)
        return next_state, reward, jnp.zeros(n + 1, jnp.bool_), t >= limit, info

    def observe(self, state: NMatrixState):
        """Every role sees the n + 1 coordinates as float32 (§6.7)."""
        self.check_state(state)
        coords = state.pos.astype(jnp.float32)
        n = self.num_players
        return {"agents": {"obs": jnp.broadcast_to(coords, (n, n + 1))},
                "planner": {"obs": coords[None]}}

    def render(self, state: NMatrixState) -> jax.Array:
        """uint8[n + 1, W, 3]: one row per axis (agents', then the planner's), white, with
        the coordinate on that axis in black."""
        self.check_state(state)
        on = state.pos[:, None] == jnp.arange(self.width)[None, :]
        grey = jnp.where(on, 0, 235).astype(jnp.uint8)
        return jnp.repeat(grey[..., None], 3, axis=-1)
