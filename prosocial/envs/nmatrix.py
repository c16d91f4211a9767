"""SRAI's N-matrix game ``coop_bimatrix_3`` (specs §6.7), the bimatrix game's N-player form.

``num_players`` agents (3) and a planner each move along their own axis of a W^(n+1) grid
(W = 7; agents' axes first, the planner's last), with the bimatrix's 3 actions (0 stay,
1 +1, 2 −1, clamped). Payoffs are N(0, 1) tables drawn with numpy's legacy generator seeded
0 (planner first, then the agents); every role observes the n + 1 coordinates (float32);
episodes last 500 steps. The perturbation mixes rewards, r_i' = −Q · r̃ + (1 − Q) · r_i;
``risk_eta`` applies to the agents' rewards; DR noise is fresh each time
(``ref_nmatrix_dr_drift``: SRAI adds the noise into the tables after each step, B-27); the
action perturbation replaces each agent's action by a uniformly random one with probability
p (``ref_nmatrix_action_perturb``: every agent acts at random whenever the perturbation is
on, B-29); the planner's action is never perturbed.

Randomness, reward transforms and config checks are shared with ``bimatrix.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from prosocial.envs.bimatrix import (
    MOVE,
    MatrixGame,
    agent_noise,
    parse_srai_seed,
    risk_robust,
    uniform_index,
)
from prosocial.envs.spaces import Box, Dict, Discrete


def srai_nmatrix_payoffs(seed: int = 0, width: int = 7, num_players: int = 3) -> np.ndarray:
    """float64[n + 1, W, …, W] (n + 1 grid axes): SRAI's N-matrix tables (§6.7), standard
    normal draws of numpy's legacy generator seeded with ``seed``, planner first, then agents
    0 … n − 1. Axis k of every table is agent k's coordinate, the last axis the planner's."""
    rng = np.random.RandomState(seed)
    shape = (width,) * (num_players + 1)
    return np.stack([rng.normal(size=shape) for _ in range(num_players + 1)])


@struct.dataclass
class NMatrixState:
    """State of one N-matrix game."""

    pos: jax.Array  # int32[n + 1] coordinates: agents' axes, then the planner's
    noise: jax.Array  # float32[n] the agents' DR offsets of the episode (episode_dr)
    drift: jax.Array  # float32[n] noise added into the tables so far (ref_nmatrix_dr_drift)
    t: jax.Array  # int32 steps taken in this episode


class NMatrix(MatrixGame):
    """SRAI's N-matrix game ``coop_bimatrix_3`` (§6.7); see the module docstring."""

    env_id = "coop_bimatrix_3"

    def __init__(self, num_players: int = 3, payoffs="srai_seed0", env_width: int = 7,
                 perturb_q: float = 0.0, dr: float = 0.0, episode_dr: bool = True,
                 risk_eta: float | None = None, ref_concav_log: bool = False,
                 action_perturb: float = 0.0, max_steps: int = 500,
                 ref_bimatrix_extra_step: bool = False, ref_nmatrix_dr_drift: bool = False,
                 ref_nmatrix_action_perturb: bool = False):
        """Args as :class:`Bimatrix`'s where they share a name (``env_width`` W = 7; tables
        [n + 1, W, …, W], planner first), plus ``num_players`` n, and the reference flags
        ``ref_nmatrix_dr_drift`` (B-27) and ``ref_nmatrix_action_perturb`` (B-29)."""
        what = self.env_id
        if not isinstance(payoffs, str) and env_width not in (7, *np.shape(payoffs)[-1:]):
            raise ValueError(f"{what}: env_width={env_width!r} disagrees with the payoff "
                             f"tables of shape {np.shape(payoffs)}")
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
            tables = srai_nmatrix_payoffs(parse_srai_seed(payoffs, what), int(env_width), n)
        else:
            tables = np.asarray(payoffs, np.float64)
            w = tables.shape[1] if tables.ndim > 1 else 0
            if tables.shape != (n + 1,) + (w,) * (n + 1) or w < 1:
                raise ValueError(f"{what}: payoffs must be num_players + 1 = {n + 1} tables "
                                 f"(planner first) over a W^{n + 1} grid, shape "
                                 f"({n + 1}, W, …, W); got {tables.shape}")
            if not np.all(np.isfinite(tables)):
                raise ValueError(f"{what}: payoffs must be finite")
        self._set_common_options(perturb_q, dr, episode_dr, risk_eta, ref_concav_log,
                                 action_perturb, max_steps, ref_bimatrix_extra_step)
        self.num_players = n
        self.num_agents = n + 1
        self.payoffs = tables
        self.width = tables.shape[1]
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
        key_pos, key_noise = jax.random.split(key) if self._noise_per_episode else (key, None)
        index = uniform_index(key_pos, self.width ** (n + 1))
        # One digit per axis, each divided by a Python constant: XLA turns division by a
        # constant into a multiplication, a division by an array into a hardware divide.
        pos = jnp.stack([(index // int(stride)) % self.width for stride in self._strides])
        noise = (agent_noise(self, key_noise, n) if self._noise_per_episode
                 else jnp.zeros(n, jnp.float32))
        return NMatrixState(pos=pos.astype(jnp.int32), noise=noise,
                            drift=jnp.zeros(n, jnp.float32), t=jnp.int32(0))

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
            noise = agent_noise(self, key_noise, n)
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
