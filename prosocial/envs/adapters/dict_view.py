"""A JaxMARL-style view of a prosocial environment: per-agent dicts instead of an agent axis.

``DictView(env)`` keys observations, actions, rewards and dones by agent name
(``agent_0`` … ``agent_{N-1}``; agent ``i`` is row ``i`` of the wrapped arrays). It is pure
and jittable like the environment itself: ``jax.jit(view.step)`` works.

Unlike JaxMARL, ``step`` does not reset finished episodes: auto-reset is a wrapper of the
contract, so ``DictView(AutoReset(env))`` gives the JaxMARL behaviour. ``dones[agent]`` is
``terminated[i] | truncated`` and ``dones["__all__"]`` is ``all(terminated) | truncated``
(the environment episode is over); ``infos`` is the environment's info (arrays with the
agent axis) plus the per-agent ``"terminated"`` (bool[N]) and the scalar ``"truncated"``
flags, so a learner can still tell a time limit (bootstrap) from a terminal state (do not).
Spaces and observations of an agent are those of its role (``env.roles``).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from prosocial.envs.core import Env, agent_observation, agent_roles, episode_done


class DictView:
    """Dict-keyed (JaxMARL-style) view of ``env``; see the module docstring."""

    def __init__(self, env: Env):
        self.env = env
        self.num_agents = env.num_agents
        self.agents = [f"agent_{i}" for i in range(env.num_agents)]
        self.roles = agent_roles(env)

    def observation_space(self, agent: str):
        """The prosocial space of one agent's observation (that of its role)."""
        return self.env.observation_spaces[self.roles[self._index(agent)]]

    def action_space(self, agent: str):
        """The prosocial action space of one agent (that of its role)."""
        return self.env.action_spaces[self.roles[self._index(agent)]]

    def _index(self, agent: str) -> int:
        if agent not in self.agents:
            raise ValueError(f"unknown agent {agent!r}; agents are {self.agents}")
        return self.agents.index(agent)

    def reset(self, key: jax.Array):
        """(obs_dict, state)."""
        obs, state = self.env.reset(key)
        return self._split(obs), state

    def step(self, key: jax.Array, state, actions: Mapping[str, jax.Array]):
        """(obs_dict, state, rewards_dict, dones_dict, infos) for one joint step."""
        obs, state, reward, terminated, truncated, info = self.env.step(
            key, state, self._joint_action(actions))
        rewards = {a: reward[i] for i, a in enumerate(self.agents)}
        dones = {a: terminated[i] | truncated for i, a in enumerate(self.agents)}
        dones["__all__"] = episode_done(terminated, truncated)
        infos = dict(info, terminated=terminated, truncated=truncated)
        return self._split(obs), state, rewards, dones, infos

    def _joint_action(self, actions: Mapping[str, jax.Array]) -> jax.Array:
        """Stack the action dict into int32[N]; bad keys, shapes and dtypes fail at trace time."""
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions must be a dict keyed by agent, got {type(actions).__name__}")
        missing = [a for a in self.agents if a not in actions]
        unknown = [a for a in actions if a not in self.agents]
        if missing or unknown:
            raise ValueError(f"actions must have one entry per agent ({', '.join(self.agents)});"
                             f" missing {missing}, unknown {unknown}")
        values = [jnp.asarray(actions[a]) for a in self.agents]
        for agent, value in zip(self.agents, values, strict=True):
            if value.shape != () or not jnp.issubdtype(value.dtype, jnp.integer):
                raise ValueError(f"action of {agent} must be an integer scalar, got shape "
                                 f"{value.shape} and dtype {value.dtype}")
        return jnp.stack(values).astype(jnp.int32)

    def _split(self, obs: dict) -> dict[str, dict[str, jax.Array]]:
        return {a: agent_observation(self.env, obs, i) for i, a in enumerate(self.agents)}
