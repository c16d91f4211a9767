"""Iterated 2×2 matrix games (specs §7): the prisoner's dilemma and friends.

Two players repeat a stage game; actions 0 = C (cooperate), 1 = D (defect). A symmetric
game is given by (R, S, T, P): the row player receives R for (C, C), S for (C, D), T for
(D, C) and P for (D, D), and the column player the same from its own side. Presets (§7.2),
one registered id each:

============== ==== ==== ==== ==== =====================================
id             R    S    T    P    note
============== ==== ==== ==== ==== =====================================
ipd            3    0    5    1    Axelrod's tournament values (default)
ipd-lola       −1   −3   0    −2   LOLA-style IPD code
stag-hunt      4    0    3    2    R > T ≥ P > S
chicken        3    1    4    0    T > R > S > P
============== ==== ==== ==== ==== =====================================

``matching-pennies`` is not symmetric: the row player receives +1 when the actions match
and −1 otherwise, the column player the negative (a zero-sum control).

Observation (§7.3), key ``"obs"``: float32 one-hot over 5 states, index 0 "start" (no round
played yet), then 1 + 2·own + other for the last joint action written from the observer's
side (1 CC, 2 CD, 3 DC, 4 DD), so both players share one encoding (:func:`observation_index`).

Episodes (§7.3): ``max_steps`` rounds (100; the spec's ``rounds``), ended by truncation.
With ``continuation_prob`` δ the game instead ends after each round with probability 1 − δ
(``terminated`` for both players; δ = 0.96 is the usual discounted IPD), and ``max_steps``
stays as a cap (truncation). After the end, steps of an environment that is not reset pay
nothing and keep ``terminated``.

Events per player: ``cooperated`` / ``defected`` (its action), ``exploited`` (it played C
against D: the sucker's payoff) and ``exploiting`` (D against C).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from prosocial.envs.core import Env
from prosocial.envs.spaces import Box, Dict, Discrete

C, D = 0, 1
NUM_STATES = 5  # start, CC, CD, DC, DD (own action first)

SYMMETRIC_PRESETS = {  # (R, S, T, P)
    "ipd": (3.0, 0.0, 5.0, 1.0),
    "ipd-lola": (-1.0, -3.0, 0.0, -2.0),
    "stag-hunt": (4.0, 0.0, 3.0, 2.0),
    "chicken": (3.0, 1.0, 4.0, 0.0),
}


def symmetric_payoffs(reward: float, sucker: float, temptation: float,
                      punishment: float) -> np.ndarray:
    """float32[2, 2, 2]: ``[player, row action, column action]`` for a symmetric game with
    stage payoffs R, S, T, P (§7.1)."""
    own = np.array([[reward, sucker], [temptation, punishment]], np.float32)  # [own, other]
    return np.stack([own, own.T])


def matching_pennies() -> np.ndarray:
    """float32[2, 2, 2]: row +1 on a match and −1 otherwise, column the negative (§7.2)."""
    row = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32)
    return np.stack([row, -row])


def preset_payoffs(preset: str) -> np.ndarray:
    """The ``[player, row action, column action]`` payoffs of a §7.2 preset."""
    if preset == "matching-pennies":
        return matching_pennies()
    if preset not in SYMMETRIC_PRESETS:
        raise ValueError(f"unknown matrix game preset {preset!r}; presets: "
                         f"{', '.join([*SYMMETRIC_PRESETS, 'matching-pennies'])}")
    return symmetric_payoffs(*SYMMETRIC_PRESETS[preset])


def observation_index(own_last, other_last, started):
    """int32: the observation state (§7.3): 0 before the first round, else
    1 + 2·own + other."""
    return jnp.where(started, 1 + 2 * own_last + other_last, 0).astype(jnp.int32)


@struct.dataclass
class MatrixGameState:
    """State of one iterated matrix game."""

    last: jax.Array  # int32[2] the last joint action (row, column); 0 before the first round
    over: jax.Array  # bool: the game ended by the continuation draw
    t: jax.Array  # int32 rounds played in this episode


class IteratedMatrixGame(Env):
    """An iterated 2×2 game of two players; ``preset`` names its stage game."""

    env_id = "ipd"
    preset = "ipd"
    num_agents = 2

    def __init__(self, payoffs=None, max_steps: int = 100,
                 continuation_prob: float | None = None):
        """Args:
            payoffs: None for the id's preset; (R, S, T, P) for a symmetric game; or an
                array [2, 2, 2] of ``[player, row action, column action]`` payoffs.
            max_steps: rounds per episode (the cap when ``continuation_prob`` is set).
            continuation_prob: δ; the game ends after each round with probability 1 − δ.
        """
        what = self.env_id
        if payoffs is None:
            table = preset_payoffs(self.preset)
        else:
            table = np.asarray(payoffs, np.float32)
            if table.shape == (4,):
                table = symmetric_payoffs(*table)
            elif table.shape != (2, 2, 2):
                raise ValueError(f"{what}: payoffs must be (R, S, T, P) or an array of shape "
                                 f"(2, 2, 2) [player, row action, column action], got shape "
                                 f"{table.shape}")
            if not np.all(np.isfinite(table)):
                raise ValueError(f"{what}: payoffs must be finite")
        if not isinstance(max_steps, int | np.integer) or max_steps < 1:
            raise ValueError(f"{what}: max_steps must be a positive integer, got {max_steps!r}")
        if continuation_prob is not None and not 0.0 <= continuation_prob < 1.0:
            raise ValueError(f"{what}: continuation_prob (δ) must be None or in [0, 1), "
                             f"got {continuation_prob!r}")
        self.payoffs = table
        self.max_steps = int(max_steps)
        self.continuation_prob = None if continuation_prob is None else float(continuation_prob)
        self.observation_space = Dict({"obs": Box(0.0, 1.0, (NUM_STATES,), "float32")})
        self.action_space = Discrete(2)

    stochastic_reset = False  # the start is deterministic (core "Keys")

    @property
    def stochastic_step(self) -> bool:
        """Only the continuation draw reads the step's key."""
        return self.continuation_prob is not None

    def reset_state(self, key: jax.Array) -> MatrixGameState:
        del key  # the start is deterministic
        return MatrixGameState(last=jnp.zeros(2, jnp.int32), over=jnp.bool_(False),
                               t=jnp.int32(0))

    def step_state(self, key: jax.Array, state: MatrixGameState, actions: jax.Array):
        self.check_state(state)
        actions = self.check_actions(actions)
        live = ~state.over
        reward = jnp.asarray(self.payoffs)[:, actions[0], actions[1]] * live
        ends = state.over
        if self.continuation_prob is not None:
            ends = ends | (jax.random.uniform(key) >= self.continuation_prob)
        t = state.t + 1
        last = jnp.where(live, actions, state.last)
        other = actions[::-1]
        played = jnp.ones(2, jnp.int32) * live
        info = {"events": {
            "cooperated": (actions == C) * played,
            "defected": (actions == D) * played,
            "exploited": ((actions == C) & (other == D)) * played,
            "exploiting": ((actions == D) & (other == C)) * played,
        }, "signals": {}}
        info["events"] = {k: v.astype(jnp.int32) for k, v in info["events"].items()}
        next_state = MatrixGameState(last=last, over=ends, t=t)
        return (next_state, reward.astype(jnp.float32), jnp.broadcast_to(ends, (2,)),
                t >= self.max_steps, info)

    def observe(self, state: MatrixGameState):
        """One-hot of each player's view of the last joint action (§7.3)."""
        self.check_state(state)
        index = observation_index(state.last, state.last[::-1], state.t > 0)
        return {"obs": (index[:, None] == jnp.arange(NUM_STATES)).astype(jnp.float32)}

    def render(self, state: MatrixGameState) -> jax.Array:
        """uint8[2, 2, 3]: column k is player k; top row its colour (blue, orange), bottom
        row its last action (green C, red D, grey before the first round)."""
        self.check_state(state)
        players = jnp.array([[40, 90, 200], [230, 140, 30]], jnp.uint8)
        action_colours = jnp.array([[40, 170, 60], [200, 40, 40]], jnp.uint8)
        actions = jnp.where(state.t > 0, action_colours[state.last], jnp.uint8(128))
        return jnp.stack([players, actions.astype(jnp.uint8)])


class IPDLola(IteratedMatrixGame):
    env_id = preset = "ipd-lola"


class StagHunt(IteratedMatrixGame):
    env_id = preset = "stag-hunt"


class Chicken(IteratedMatrixGame):
    env_id = preset = "chicken"


class MatchingPennies(IteratedMatrixGame):
    env_id = preset = "matching-pennies"


MATRIX_GAMES = {cls.env_id: cls for cls in
                (IteratedMatrixGame, IPDLola, StagHunt, Chicken, MatchingPennies)}
