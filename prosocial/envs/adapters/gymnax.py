"""A single-agent gymnax environment (CartPole-v1, Acrobot-v1, ...) as a prosocial ``Env``.

``GymnaxEnv(env_id, **params)`` builds the gymnax environment ``gymnax.make(env_id)`` and
overrides fields of its ``EnvParams`` with ``params`` (e.g. ``max_steps_in_episode=200``).
It follows the contract of :mod:`prosocial.envs.core` with one agent:

- ``observation_space = Dict({"obs": Box(low, high, shape, "float32")})``, the gymnax
  observation cast to float32 (``low``/``high`` are the loosest of gymnax's elementwise
  bounds, since our ``Box`` has scalar bounds; for CartPole they are ±float32 max, because
  the velocities are unbounded); ``observe(state) == {"obs": float32[1, *shape]}``;
- ``action_space = Discrete(n)``; ``step_state`` takes ``actions: int[1]``;
- ``reward`` is ``float32[1]``, ``terminated`` ``bool[1]`` (the one agent's end is the
  episode's), ``truncated`` ``bool[]``; ``info == {"events": {}, "signals": {}}`` (no social
  events).

It calls gymnax's ``reset_env``/``step_env``, never gymnax's ``step``, which resets finished
episodes itself and so hides the final state: here episodes are reset by
:class:`~prosocial.envs.core.AutoReset` (as PPO does), which keeps the final state so a
learner can bootstrap a time-limit end from its observation.

End flags (gymnax ≥ 1.0 separates them the same way):

- ``terminated``: the natural end, what ``step_env`` returns (CartPole: |x| > 2.4 or
  |θ| > 12°, checked on the state after the step);
- ``truncated``: the time limit, ``is_truncated(state)`` = ``state.time ≥
  max_steps_in_episode`` (500 for CartPole-v1) on the state after the step, and only when
  the episode did not also terminate on that step (the flags are exclusive, so a learner
  never bootstraps a terminal state and the episode counts once).

So with CartPole-v1 an episode is at most 500 steps, each with reward 1 (gymnax's reward
is 1 − [the state before the step was terminal], always 1 here because a terminal state is
never stepped): a perfect episode returns 500.

``max_steps`` is ``max_steps_in_episode``. ``render`` is not implemented (gymnax draws with
matplotlib outside ``jit``); it raises ``NotImplementedError``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from prosocial.envs.core import Env, Obs
from prosocial.envs.spaces import Box, Dict, Discrete


def _strong(tree):
    """Leaves as strongly typed 32-bit arrays (gymnax states hold Python ints such as
    ``time=0``, whose weak types would make the state's type change inside a scan)."""

    def cast(x):
        x = jnp.asarray(x)
        if x.dtype == jnp.bool_:
            return x.astype(jnp.bool_)
        if jnp.issubdtype(x.dtype, jnp.integer):
            return jnp.asarray(x, jnp.int32)
        if jnp.issubdtype(x.dtype, jnp.floating):
            return jnp.asarray(x, jnp.float32)
        return x

    return jax.tree.map(cast, tree)


class GymnaxEnv(Env):
    """One gymnax environment as a one-agent prosocial environment (module docstring)."""

    num_agents = 1

    def __init__(self, env_id: str, **params):
        try:
            import gymnax
        except ImportError as e:  # pragma: no cover - gymnax is a test extra
            raise ImportError("GymnaxEnv needs gymnax: pip install gymnax") from e
        if env_id not in gymnax.registered_envs:
            raise ValueError(f"unknown gymnax environment {env_id!r}; gymnax has "
                             f"{sorted(gymnax.registered_envs)}")
        env, default = gymnax.make(env_id)
        fields = {f.name for f in dataclasses.fields(default)}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise ValueError(f"{env_id}: unknown gymnax parameters {unknown}; "
                             f"{type(default).__name__} has {sorted(fields)}")
        self.env_id = env_id
        self.gymnax_env = env
        self.params = default.replace(**params)
        if not hasattr(env, "is_truncated"):
            raise ImportError(f"GymnaxEnv needs gymnax ≥ 1.0 (separate time-limit "
                              f"truncation); this gymnax's {type(env).__name__} has no "
                              f"is_truncated")
        max_steps = self.params.max_steps_in_episode
        if not isinstance(max_steps, int | np.integer) or max_steps < 1:
            raise ValueError(f"{env_id}: max_steps_in_episode must be a positive integer, "
                             f"got {max_steps!r}")
        self.max_steps = int(max_steps)

        act = env.action_space(self.params)
        if not hasattr(act, "n"):
            raise ValueError(f"{env_id}: GymnaxEnv supports discrete action spaces only, "
                             f"got {type(act).__name__}")
        self.action_space = Discrete(int(act.n))
        obs = env.observation_space(self.params)
        self._obs_shape = tuple(int(d) for d in obs.shape)
        low = float(np.min(np.asarray(getattr(obs, "low", -np.inf), np.float32)))
        high = float(np.max(np.asarray(getattr(obs, "high", np.inf), np.float32)))
        self.observation_space = Dict({"obs": Box(low, high, self._obs_shape, "float32")})

    def reset_state(self, key: jax.Array):
        _, state = self.gymnax_env.reset_env(key, self.params)
        return _strong(state)

    def step_state(self, key: jax.Array, state, actions: jax.Array):
        self.check_state(state)
        action = self.check_actions(actions)[0]
        _, state, reward, terminated, _ = self.gymnax_env.step_env(
            key, state, action, self.params)
        state = _strong(state)
        terminated = jnp.asarray(terminated, jnp.bool_).reshape(())
        time_limit = jnp.asarray(self.gymnax_env.is_truncated(state, self.params), jnp.bool_)
        truncated = time_limit & ~terminated
        reward = jnp.asarray(reward, jnp.float32).reshape(1)
        return state, reward, terminated.reshape(1), truncated, {"events": {}, "signals": {}}

    def observe(self, state) -> Obs:
        try:
            obs = self.gymnax_env.get_obs(state, params=self.params)
        except TypeError:  # environments whose get_obs takes the state only
            obs = self.gymnax_env.get_obs(state)
        obs = jnp.asarray(obs, jnp.float32).reshape((1,) + self._obs_shape)
        return {"obs": obs}

    def render(self, state) -> jax.Array:
        raise NotImplementedError(
            f"GymnaxEnv({self.env_id!r}) does not render: gymnax draws its environments "
            f"with matplotlib outside jit (gymnax.visualize.Visualizer)")
