"""Scripted policies of the iterated matrix games (specs §7.4), as pure functions of the
observation, and a wrapper that makes one of them a fixed co-player.

Every deterministic policy of §7.4 is memory-one on the observation of §7.3 (the one-hot of
start, CC, CD, DC, DD, own action first), so each is a table of 5 actions
(:data:`MEMORY_ONE`, read with :func:`memory_one`):

============== ===== === === === === ==========================================
policy         start CC  CD  DC  DD  rule
============== ===== === === === === ==========================================
allc           C     C   C   C   C   always C
alld           D     D   D   D   D   always D
tft            C     C   D   C   D   C first, then the co-player's last action
stft           D     C   D   C   D   suspicious TFT: D first, then as TFT
grim           C     C   D   D   D   C until the co-player defects, then D forever
wsls           C     C   D   D   C   win-stay lose-shift (Pavlov)
============== ===== === === === === ==========================================

Grim needs only the last round: it plays D after any round in which either side defected,
since its own D can only follow a defection of the co-player. WSLS repeats its last action
after R or T (the co-player cooperated) and switches after S or P. Random(q) plays C with
probability q (:func:`random_q`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from prosocial.envs.core import Env, Wrapper
from prosocial.envs.matrix_games import C, D, IteratedMatrixGame
from prosocial.envs.spaces import Discrete

MEMORY_ONE: dict[str, tuple[int, int, int, int, int]] = {
    #        start CC CD DC DD
    "allc": (C, C, C, C, C),
    "alld": (D, D, D, D, D),
    "tft": (C, C, D, C, D),
    "stft": (D, C, D, C, D),
    "grim": (C, C, D, D, D),
    "wsls": (C, C, D, D, C),
}


def memory_one(table, obs: jax.Array) -> jax.Array:
    """int32[...]: the action of the memory-one policy ``table`` (5 actions, one per
    observation state) for one-hot observations ``obs`` float[..., 5]."""
    return jnp.asarray(table, jnp.int32)[jnp.argmax(obs, axis=-1)]


def all_c(obs):
    return memory_one(MEMORY_ONE["allc"], obs)


def all_d(obs):
    return memory_one(MEMORY_ONE["alld"], obs)


def tit_for_tat(obs):
    return memory_one(MEMORY_ONE["tft"], obs)


def suspicious_tit_for_tat(obs):
    return memory_one(MEMORY_ONE["stft"], obs)


def grim(obs):
    return memory_one(MEMORY_ONE["grim"], obs)


def win_stay_lose_shift(obs):
    return memory_one(MEMORY_ONE["wsls"], obs)


def random_q(key: jax.Array, obs: jax.Array, q: float) -> jax.Array:
    """int32[...]: C with probability q, independently for each observation."""
    return (jax.random.uniform(key, obs.shape[:-1]) >= q).astype(jnp.int32)


POLICIES: dict[str, Callable] = {
    "allc": all_c, "alld": all_d, "tft": tit_for_tat, "stft": suspicious_tit_for_tat,
    "grim": grim, "wsls": win_stay_lose_shift,
}


def scripted_policy(name: str) -> Callable:
    """``obs -> action`` for a §7.4 policy name, or ``random_<q>`` (e.g. ``random_0.5``),
    whose function also takes a key: ``(key, obs) -> action``."""
    if name.startswith("random_"):
        q = float(name.removeprefix("random_"))
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"Random(q) needs q in [0, 1], got {q}")
        return lambda key, obs: random_q(key, obs, q)
    if name not in POLICIES:
        raise ValueError(f"unknown scripted policy {name!r}; known: "
                         f"{', '.join(POLICIES)}, random_<q>")
    return POLICIES[name]


def play(env: IteratedMatrixGame, row: str, column: str, key: jax.Array | None = None):
    """Episode returns float32[2] of two scripted policies over one whole episode of
    ``env`` (``max_steps`` rounds, or until the continuation draw ends it), jitted."""
    policies = [scripted_policy(row), scripted_policy(column)]
    key = jax.random.key(0) if key is None else key

    def act(k, obs):
        out = []
        for i, (name, policy) in enumerate(zip((row, column), policies, strict=True)):
            o = obs["obs"][i]
            out.append(policy(jax.random.fold_in(k, i), o) if name.startswith("random_")
                       else policy(o))
        return jnp.stack(out).astype(jnp.int32)

    @jax.jit
    def run(key):
        obs, state = env.reset(key)

        def body(carry, k):
            obs, state, total = carry
            k_act, k_step = jax.random.split(k)
            obs, state, reward, *_ = env.step(k_step, state, act(k_act, obs))
            return (obs, state, total + reward), None

        keys = jax.random.split(key, env.max_steps)
        return jax.lax.scan(body, (obs, state, jnp.zeros(2, jnp.float32)), keys)[0][2]

    return run(key)


class FixedCoPlayer(Wrapper):
    """A one-agent environment: the learner plays seat ``seat`` of an iterated matrix game
    against a scripted co-player (a §7.4 policy name) in the other seat.

    Observations, rewards, end flags and events are the learner's rows (agent axis of size
    1); the co-player acts on its own observation of the state before the step, and a
    ``random_<q>`` co-player draws from the step's key.
    """

    num_agents = 1

    def __init__(self, env: IteratedMatrixGame, policy: str = "tft", seat: int = 0):
        if not isinstance(env, IteratedMatrixGame):
            raise ValueError("FixedCoPlayer wraps an iterated matrix game (specs §7)")
        if seat not in (0, 1):
            raise ValueError(f"seat must be 0 (row) or 1 (column), got {seat!r}")
        super().__init__(env)
        self.policy_name = policy
        self.policy = scripted_policy(policy)
        self.seat = seat
        self.observation_space = env.observation_space
        self.action_space = Discrete(2)

    env_id = property(lambda self: f"{self.env.env_id}-vs-{self.policy_name}")
    roles = property(lambda self: {"agents": (0,)})
    observation_spaces = property(lambda self: {"agents": self.observation_space})
    action_spaces = property(lambda self: {"agents": self.action_space})
    num_actions = property(lambda self: 2)

    def action_mask(self, state):
        del state
        return jnp.ones((1, 2), jnp.bool_)

    # The learner's joint action (one agent), and errors that name this environment.
    check_actions = Env.check_actions
    check_state = Env.check_state

    def step_state(self, key, state, actions):
        actions = self.check_actions(actions)
        key_policy, key_step = jax.random.split(key)
        other = 1 - self.seat
        obs = self.env.observe(state)["obs"][other]
        if self.policy_name.startswith("random_"):
            co_action = self.policy(key_policy, obs)
        else:
            co_action = self.policy(obs)
        joint = jnp.zeros(2, jnp.int32).at[self.seat].set(actions[0]).at[other].set(co_action)
        state, reward, terminated, truncated, info = self.env.step_state(key_step, state, joint)
        mine = np.asarray([self.seat])
        info = dict(info, events={k: v[mine] for k, v in info["events"].items()})
        return state, reward[mine], terminated[mine], truncated, info

    def observe(self, state):
        return {"obs": self.env.observe(state)["obs"][self.seat][None]}
