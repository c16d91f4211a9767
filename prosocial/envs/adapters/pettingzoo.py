"""PettingZoo ``ParallelEnv`` over any prosocial environment: NumPy in, NumPy out.

Agents are named ``agent_0`` … ``agent_{N-1}``; agent ``i`` is row ``i`` of every array of
the wrapped environment, and its spaces are those of its role (``env.roles``). Each call
runs the environment's jitted ``reset``/``step`` once and converts the arrays on the host:
observations become per-agent dicts of NumPy arrays, rewards Python floats, end flags
Python bools, and each agent's info holds its events of the step (``info["events"]`` of the
contract) as Python ints.

Per-agent ends follow PettingZoo: ``terminations[a]`` is the contract's ``terminated[i]``
and ``truncations[a]`` the time limit. An agent that terminated or was truncated leaves
``agents``; later steps take actions of the live agents only (the wrapped environment,
which ignores a terminated agent's action, is given 0 for it) and report only them. The
episode is over when ``agents`` is empty.

Randomness is an explicit JAX key chain held by the adapter. ``reset(seed=s)`` restarts the
chain from ``s`` (mixed through ``np.random.SeedSequence``, so any non-negative int works);
``reset()`` without a seed carries on the chain, or draws fresh OS entropy if it was never
seeded. Every reset and step splits the key once, so a seed fixes the whole trajectory
given the actions.

The jitted functions take the wrapped environment as a static argument compared by
identity, so adapters sharing one (stateless) environment object compile once.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import gymnasium
import jax
import numpy as np
from pettingzoo import ParallelEnv

from prosocial.envs.core import Env, agent_observation, agent_roles, num_actions_per_agent


class _ByIdentity:
    """Hashable handle on an environment for ``jax.jit``'s static arguments.

    Environments need not be hashable (a dataclass one is not) and two equal-looking ones
    may differ in arrays jit cannot compare, so the handle hashes by identity. The jit cache
    keeps the handle alive, so an ``id`` is never reused while its entry exists.
    """

    __slots__ = ("env",)

    def __init__(self, env: Env):
        self.env = env

    def __hash__(self) -> int:
        return id(self.env)

    def __eq__(self, other) -> bool:
        return isinstance(other, _ByIdentity) and other.env is self.env


@partial(jax.jit, static_argnums=0)
def _reset(handle: _ByIdentity, key: jax.Array):
    key, sub = jax.random.split(key)
    obs, state = handle.env.reset(sub)
    return key, obs, state


@partial(jax.jit, static_argnums=0)
def _step(handle: _ByIdentity, key: jax.Array, state, actions: jax.Array):
    key, sub = jax.random.split(key)
    obs, state, reward, terminated, truncated, info = handle.env.step(sub, state, actions)
    # Only the events cross to the host: other info entries (e.g. a wrapper's final_state)
    # are device-side details a NumPy caller has no use for.
    return key, obs, state, reward, terminated, truncated, info.get("events", {})


@partial(jax.jit, static_argnums=0)
def _render(handle: _ByIdentity, state) -> jax.Array:
    return handle.env.render(state)


class PettingZooEnv(ParallelEnv):
    """``ParallelEnv`` view of a prosocial :class:`~prosocial.envs.core.Env`.

    Args:
        env: the environment (any object following the contract of ``prosocial.envs.core``).
        render_mode: ``None`` or ``"rgb_array"``; with ``"rgb_array"``, :meth:`render`
            returns the map as uint8[H·s, W·s, 3].
        render_scale: s, the side in pixels of one map cell in :meth:`render`'s image.
    """

    metadata = {"render_modes": ["rgb_array"], "name": "prosocial", "is_parallelizable": True,
                "render_fps": 5}

    def __init__(self, env: Env, render_mode: str | None = None, render_scale: int = 8):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unsupported render_mode {render_mode!r}; supported: None, "
                             + ", ".join(repr(m) for m in self.metadata["render_modes"]))
        if not isinstance(render_scale, int | np.integer) or render_scale < 1:
            raise ValueError(f"render_scale must be a positive integer, got {render_scale!r}")
        self.env = env
        self.render_mode = render_mode
        self.render_scale = int(render_scale)
        self.metadata = dict(self.metadata, name=f"prosocial_{env.env_id}")
        self.possible_agents = [f"agent_{i}" for i in range(env.num_agents)]
        self.agents: list[str] = []
        roles = agent_roles(env)
        self._limits = num_actions_per_agent(env)
        # One space object per agent, built once: PettingZoo requires the same object on
        # every call, and separate objects let each agent's sampler be seeded on its own.
        obs_spaces, act_spaces = env.observation_spaces, env.action_spaces
        self.observation_spaces = {a: obs_spaces[r].to_gymnasium()
                                   for a, r in zip(self.possible_agents, roles, strict=True)}
        self.action_spaces = {a: act_spaces[r].to_gymnasium()
                              for a, r in zip(self.possible_agents, roles, strict=True)}
        self._handle = _ByIdentity(env)
        self._key: jax.Array | None = None
        self._state = None

    # ------------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> gymnasium.spaces.Dict:
        return self.observation_spaces[self._known(agent)]

    def action_space(self, agent: str) -> gymnasium.spaces.Discrete:
        return self.action_spaces[self._known(agent)]

    def _known(self, agent: str) -> str:
        if agent not in self.observation_spaces:
            raise ValueError(f"unknown agent {agent!r}; agents are "
                             f"{self.possible_agents[0]} … {self.possible_agents[-1]}")
        return agent

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode: (observations, infos), both keyed by agent.

        ``options`` is accepted for API compatibility; the environments take none.
        """
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)
                                 or seed < 0):
            raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
        if seed is not None or self._key is None:
            entropy = np.random.SeedSequence(seed).generate_state(1, np.uint32)[0]
            self._key = jax.random.key(int(entropy))
        self._key, obs, self._state = _reset(self._handle, self._key)
        self.agents = list(self.possible_agents)
        return self._split_obs(obs, self.agents), {a: {} for a in self.agents}

    def step(self, actions: Mapping[str, int]):
        """One joint step: (observations, rewards, terminations, truncations, infos)."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if not self.agents:
            raise RuntimeError("the episode is over; call reset() to start a new one")
        joint = self._joint_action(actions)
        self._key, obs, self._state, reward, terminated, truncated, events = _step(
            self._handle, self._key, self._state, joint)
        reward, terminated, truncated, events = jax.device_get(
            (reward, terminated, truncated, events))
        agents = self.agents
        index = {a: self.possible_agents.index(a) for a in agents}
        rewards = {a: float(reward[i]) for a, i in index.items()}
        terminations = {a: bool(terminated[i]) for a, i in index.items()}
        truncations = dict.fromkeys(agents, bool(truncated))
        infos = {a: {name: int(count[i]) for name, count in events.items()}
                 for a, i in index.items()}
        observations = self._split_obs(obs, agents)
        self.agents = [a for a in agents if not (terminations[a] or truncations[a])]
        return observations, rewards, terminations, truncations, infos

    def _joint_action(self, actions: Mapping[str, int]) -> np.ndarray:
        """Check an action dict and stack it into int32[N] in agent order (0 for agents that
        are no longer live)."""
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions must be a dict keyed by agent, got {type(actions).__name__}")
        missing = [a for a in self.agents if a not in actions]
        unknown = [a for a in actions if a not in self.agents]
        if missing or unknown:
            ranges = sorted({int(n) - 1 for n in self._limits})
            valid = " or ".join(f"[0, {r}]" for r in ranges)
            raise ValueError(f"actions must have one entry per live agent ({', '.join(self.agents)}"
                             f"), each an integer in {valid}; missing {missing}, "
                             f"unknown {unknown}")
        joint = np.zeros(len(self.possible_agents), np.int32)
        for agent in self.agents:
            i = self.possible_agents.index(agent)
            n = int(self._limits[i])
            valid = f"an integer in [0, {n - 1}]"
            value = actions[agent]
            array = np.asarray(value)
            if not np.issubdtype(array.dtype, np.integer):
                raise ValueError(f"action of {agent} must be {valid}, got {value!r} "
                                 f"of type {type(value).__name__}")
            if array.shape != ():
                raise ValueError(f"action of {agent} must be a scalar, {valid}; "
                                 f"got shape {array.shape}")
            if not 0 <= int(array) < n:
                raise ValueError(f"action of {agent} must be {valid}, got {int(array)}")
            joint[i] = array
        return joint

    def _split_obs(self, obs, agents) -> dict[str, dict[str, np.ndarray]]:
        host = jax.device_get(obs)
        # np.array copies: each agent gets its own writable arrays (0-d for scalar leaves).
        return {a: {k: np.array(v) for k, v in agent_observation(
                    self.env, host, self.possible_agents.index(a)).items()} for a in agents}

    # ------------------------------------------------------------------ rendering
    def render(self) -> np.ndarray | None:
        """The whole map, uint8[H·s, W·s, 3] (s = render_scale), or None without a render mode."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; construct the "
                                  "environment with render_mode='rgb_array'")
            return None
        if self._state is None:
            raise RuntimeError("call reset() before render()")
        image = np.asarray(_render(self._handle, self._state))
        s = self.render_scale
        return np.repeat(np.repeat(image, s, axis=0), s, axis=1)

    def close(self) -> None:
        self._state = None
        self.agents = []
