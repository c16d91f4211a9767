"""The environment contract every prosocial environment follows.

An environment is a Python object holding only static configuration; its methods are pure
functions of explicit keys and states, so they jit, vmap and scan:

- ``reset(key) -> (obs, state)``
- ``step(key, state, actions) -> (obs, state, reward, terminated, truncated, info)``
- ``render(state) -> uint8[H, W, 3]``

Arrays carry a leading agent axis: ``actions[N]``, ``reward[N]``, and every leaf of the
observation dict has shape ``[N, ...]``. ``terminated`` and ``truncated`` are scalar bools
for the whole environment (the games here end by a time limit, which is ``truncated``).
``info`` is a dict of arrays with the agent axis holding the events that motives and
metrics read (apples eaten, beams fired, hits, waste cleaned, ...).

Subclasses implement three pure pieces, from which the base class builds ``reset`` and
``step``: ``reset_state(key) -> state``, ``step_state(key, state, actions) -> (state,
reward, terminated, truncated, info)`` and ``observe(state) -> obs``. Observing is the
expensive part of a gridworld step, so keeping it separate lets :class:`AutoReset` observe
once per step, and lets tests and users observe any state they build.

Auto-reset is a wrapper (:class:`AutoReset`), not part of ``step``, so a learner that
bootstraps at truncation can still observe the final state of an episode.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from prosocial.envs.spaces import Dict, Discrete

Obs = dict[str, jax.Array]


class Env:
    """Base class: subclasses set the attributes below and implement the methods."""

    env_id: str = ""
    num_agents: int
    max_steps: int
    observation_space: Dict  # of one agent
    action_space: Discrete  # of one agent

    def reset_state(self, key: jax.Array):
        raise NotImplementedError

    def step_state(self, key: jax.Array, state, actions: jax.Array):
        raise NotImplementedError

    def observe(self, state) -> Obs:
        raise NotImplementedError

    def render(self, state) -> jax.Array:
        raise NotImplementedError

    def reset(self, key: jax.Array) -> tuple[Obs, Any]:
        state = self.reset_state(key)
        return self.observe(state), state

    def step(self, key: jax.Array, state, actions: jax.Array):
        state, reward, terminated, truncated, info = self.step_state(key, state, actions)
        return self.observe(state), state, reward, terminated, truncated, info

    @property
    def num_actions(self) -> int:
        return self.action_space.n

    def check_actions(self, actions) -> jax.Array:
        """Validate the joint action's shape and dtype (at trace time) and return it as int32."""
        shape = getattr(actions, "shape", None)
        if shape != (self.num_agents,):
            raise ValueError(
                f"{self.env_id}: actions must have shape ({self.num_agents},) "
                f"(one action per agent), got {shape}"
            )
        if not jnp.issubdtype(actions.dtype, jnp.integer):
            raise ValueError(f"{self.env_id}: actions must be integers, got dtype {actions.dtype}")
        return actions.astype(jnp.int32)


def event_keys(env: Env) -> tuple[str, ...]:
    """The names of ``info["events"]`` an environment reports, sorted (found by tracing one
    step abstractly; nothing runs)."""
    key = jax.random.PRNGKey(0)
    state = jax.eval_shape(env.reset_state, key)
    out = jax.eval_shape(env.step_state, key, state, jnp.zeros(env.num_agents, jnp.int32))
    return tuple(sorted(out[4].get("events", {})))


class Wrapper(Env):
    """Forwards everything it does not override to the wrapped environment."""

    def __init__(self, env: Env):
        self.env = env

    def __getattr__(self, name):
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    def reset_state(self, key):
        return self.env.reset_state(key)

    def step_state(self, key, state, actions):
        return self.env.step_state(key, state, actions)

    def observe(self, state):
        return self.env.observe(state)

    def render(self, state):
        return self.env.render(state)


class AutoReset(Wrapper):
    """Starts a new episode inside ``step`` when the current one ends.

    The returned observation and state belong to the new episode; the reward, the end flags
    and ``info`` belong to the step that ended the old one. ``info["final_state"]`` is the
    last state of the old episode (equal to the returned state on other steps): a learner
    that bootstraps at truncation observes it, only when an episode ended, with
    ``env.observe(info["final_state"])``.
    """

    def step_state(self, key, state, actions):
        key_step, key_reset = jax.random.split(key)
        next_state, reward, terminated, truncated, info = self.env.step_state(
            key_step, state, actions
        )
        done = jnp.logical_or(terminated, truncated)
        reset_state = self.env.reset_state(key_reset)
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), reset_state, next_state)
        return state, reward, terminated, truncated, dict(info, final_state=next_state)
