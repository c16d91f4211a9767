"""The repeated bimatrix game of ERMAS (specs §6); its N-matrix variant is ``nmatrix.py``.

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

Randomness (§0.6): the start cell comes from one ``jax.random.bits`` draw reduced modulo the
number of cells (exact for W = 4, bias below 10⁻⁶ otherwise), the cheapest keyed draw
(:func:`random_bits32`); no other randomness
is drawn unless DR or the action perturbation is switched on, and then only does the step
read its key (``stochastic_step``), so AutoReset does not split one otherwise.
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
def parse_srai_seed(payoffs: str, what: str) -> int:
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


def random_bits32(key: jax.Array) -> jax.Array:
    """uint32: ``jax.random.bits(key, (), jnp.uint32)``, the cheapest keyed draw (one
    Threefry hash: one kernel on CPU, ``prosocial.prng``)."""
    return jax.random.bits(key, (), jnp.uint32)


def uniform_index(key: jax.Array, n: int) -> jax.Array:
    """int32: a uniform draw from 0 … n − 1 (one 32-bit draw, :func:`random_bits32`, modulo
    n; exact when n divides 2³², otherwise biased by less than n / 2³²)."""
    return (random_bits32(key) % jnp.uint32(n)).astype(jnp.int32)


def check_probability(what: str, name: str, value) -> float:
    """``value`` as a float, or a ValueError naming ``what`` and ``name`` unless in [0, 1]."""
    value = float(value)
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise ValueError(f"{what}: {name} must be a probability in [0, 1], got {value!r}")
    return value


class MatrixGame(Env):
    """What the bimatrix and N-matrix games share: the test-time changes of §6.5 (Q, DR,
    RR, action perturbation), the episode length and SRAI's extra step (B-31)."""

    def _set_common_options(self, perturb_q, dr, episode_dr, risk_eta, ref_concav_log,
                            action_perturb, max_steps, ref_bimatrix_extra_step):
        """Check (ValueErrors naming the game) and store the shared options."""
        what = self.env_id
        if not np.isfinite(perturb_q):
            raise ValueError(f"{what}: perturb_q (Q) must be a finite number, got {perturb_q!r}")
        if not (np.isfinite(dr) and dr >= 0):
            raise ValueError(f"{what}: dr must be ≥ 0 (noise U[−dr, dr]; 0 switches DR off), "
                             f"got {dr!r}")
        if risk_eta is not None and not (np.isfinite(risk_eta) and risk_eta >= 0):
            raise ValueError(f"{what}: risk_eta (η) must be None (off) or ≥ 0, got {risk_eta!r}")
        if not isinstance(max_steps, int | np.integer) or max_steps < 1:
            raise ValueError(f"{what}: max_steps must be a positive integer, got {max_steps!r}")
        self.perturb_q = float(perturb_q)
        self.dr = float(dr)
        self.episode_dr = bool(episode_dr)
        self.risk_eta = None if risk_eta is None else float(risk_eta)
        self.ref_concav_log = bool(ref_concav_log)
        self.action_perturb = check_probability(what, "action_perturb", action_perturb)
        self.max_steps = int(max_steps)
        self.ref_bimatrix_extra_step = bool(ref_bimatrix_extra_step)

    @property
    def _noise_per_episode(self) -> bool:
        return self.dr > 0 and self.episode_dr

    @property
    def stochastic_step(self) -> bool:
        """The step draws only for the action perturbation and per-step DR (§6.5, §6.7);
        without them it never reads its key, so AutoReset need not split one (core "Keys")."""
        return self.action_perturb > 0 or (self.dr > 0 and not self.episode_dr)


def agent_noise(env, key, n: int) -> jax.Array:
    """float32[n]: the agents' DR offsets σ_i ~ U[−dr, dr] (§6.5)."""
    return jax.random.uniform(key, (n,), jnp.float32, -env.dr, env.dr)


# ------------------------------------------------------------------------ bimatrix
@struct.dataclass
class BimatrixState:
    """State of one bimatrix game."""

    cell: jax.Array  # int32[2] (i, j): row index, column index
    officers: jax.Array  # int32 a, the planner's setting (0 for a passive planner)
    noise: jax.Array  # float32[2] the agents' DR offsets σ_i (0 when DR is off)
    t: jax.Array  # int32 steps taken in this episode


class Bimatrix(MatrixGame):
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
        """Args:
            payoffs: ``"srai_seed<k>"`` (SRAI's draws with numpy seed k, §6.2; default k = 0)
                or the tables (r̃, r1, r2) as an array [3, W, W].
            env_width: W of the drawn tables (user tables bring their own; a different
                value raises).
            planner_reward: ``"srai"`` (normalised, §6.4) or ``"paper"`` (a·r̃ − a², B-26).
            max_officers: A_max. officer_weight: w.
            perturb_q: Q, the agents' reward gap r_i − Q·r̃ (§6.5).
            dr, episode_dr: DR noise U[−dr, dr] per agent, per episode or per step (0: off).
            risk_eta, ref_concav_log: the RR transform of the planner's reward (None: off).
            action_perturb: p, the row agent's planner-worst action (§6.5).
            max_steps, ref_bimatrix_extra_step: episode length, and SRAI's extra step (B-31).
        """
        what = self.env_id
        if not isinstance(payoffs, str) and env_width not in (4, *np.shape(payoffs)[-1:]):
            raise ValueError(f"{what}: env_width={env_width!r} disagrees with the payoff "
                             f"tables of shape {np.shape(payoffs)}")
        if isinstance(payoffs, str):
            if not isinstance(env_width, int | np.integer) or env_width < 1:
                raise ValueError(f"{what}: env_width must be a positive integer, "
                                 f"got {env_width!r}")
            tables = srai_bimatrix_payoffs(parse_srai_seed(payoffs, what), int(env_width))
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
        self._set_common_options(perturb_q, dr, episode_dr, risk_eta, ref_concav_log,
                                 action_perturb, max_steps, ref_bimatrix_extra_step)
        self.payoffs = tables
        self.width = tables.shape[1]
        self.planner_reward = planner_reward
        self.max_officers = int(max_officers)
        self.officer_weight = float(officer_weight)
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
        key_cell, key_noise = jax.random.split(key) if self._noise_per_episode else (key, None)
        index = uniform_index(key_cell, self.width * self.width)
        noise = (agent_noise(self, key_noise, 2) if self._noise_per_episode
                 else jnp.zeros(2, jnp.float32))
        return BimatrixState(cell=jnp.stack([index // self.width, index % self.width]),
                             officers=jnp.int32(0), noise=noise, t=jnp.int32(0))

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
            noise = agent_noise(self, key_noise, 2)
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
