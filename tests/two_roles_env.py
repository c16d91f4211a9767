"""A tiny environment with two roles, per-agent termination, a state-dependent action mask
and signals: the contract's features that Harvest and Cleanup do not use. It is not
registered; the contract and adapter tests run it next to the registered environments.

Workers (agents 0 and 1, role ``"workers"``, ``Discrete(3)``: 0 rest, 1 work, 2 idle)
start with ``ENERGY = (2, 3)`` energy. Working earns ``level`` (the planner's setting) and
costs one energy; a worker with no energy left has terminated, and its later actions are
ignored. The planner (agent 2, role ``"planner"``, ``Discrete(5)``) sets ``level`` to its
action, allowed only up to the step count ``t`` (its mask), earns the workers' total
reward, and terminates with the last worker. Episodes are truncated at ``max_steps``.
Each role also observes its entries as one float vector ``"obs"`` (workers: energy,
level; planner: both energies, t), so the actor-critic network can act in it.

Hand-computed trajectory (``test_contract.py`` pins it): from energy (2, 3) and level 0,
the actions per step are ``[1, 1, 0] → [1, 0, 1] → [0, 1, 1] → [1, 1, 1]``:

==== ============ ============ ========== ========== ========================
step level after energy after reward     terminated signals["energy"]
==== ============ ============ ========== ========== ========================
1    0 (≤ t = 0)  (1, 2)       (0, 0, 0)  (F, F, F)  (1, 2, 0)
2    1            (0, 2)       (0, 0, 0)  (T, F, F)  (0, 2, 0)
3    1            (0, 1)       (0, 1, 1)  (T, F, F)  (0, 1, 0)
4    1            (0, 0)       (0, 1, 1)  (T, T, T)  (0, 0, 0)
==== ============ ============ ========== ========== ========================

A worker's reward uses the level before the planner's change of the same step, so the
level 1 set at step 2 pays from step 3; worker 0's work at step 4 is ignored (it
terminated at step 2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from prosocial.envs.core import Env
from prosocial.envs.spaces import Box, Dict, Discrete

ENERGY = (2, 3)
LEVELS = 5


@struct.dataclass
class TwoRolesState:
    energy: jax.Array  # int32[2]
    level: jax.Array  # int32
    t: jax.Array  # int32


class TwoRoles(Env):
    env_id = "two_roles"
    num_agents = 3

    def __init__(self, max_steps: int = 6):
        self.max_steps = max_steps

    @property
    def roles(self):
        return {"workers": (0, 1), "planner": (2,)}

    @property
    def observation_spaces(self):
        return {
            "workers": Dict({"energy": Box(0, max(ENERGY), (), "int32"),
                             "level": Box(0, LEVELS - 1, (), "int32"),
                             "obs": Box(0, max(*ENERGY, LEVELS), (2,), "float32")}),
            "planner": Dict({"energies": Box(0, max(ENERGY), (2,), "int32"),
                             "t": Box(0, self.max_steps, (), "int32"),
                             "obs": Box(0, max(*ENERGY, self.max_steps), (3,), "float32")}),
        }

    @property
    def action_spaces(self):
        return {"workers": Discrete(3), "planner": Discrete(LEVELS)}

    def reset_state(self, key):
        del key
        return TwoRolesState(energy=jnp.asarray(ENERGY, jnp.int32), level=jnp.int32(0),
                             t=jnp.int32(0))

    def step_state(self, key, state, actions):
        self.check_state(state)
        actions = self.check_actions(actions)
        alive = state.energy > 0
        work = alive & (actions[:2] == 1)
        earned = jnp.where(work, state.level, 0).astype(jnp.float32)
        energy = state.energy - work.astype(jnp.int32)
        planner_alive = jnp.any(alive)
        level = jnp.where(planner_alive, jnp.minimum(actions[2], state.t), state.level)
        t = state.t + 1
        next_state = TwoRolesState(energy=energy, level=level.astype(jnp.int32), t=t)
        workers_done = energy == 0
        terminated = jnp.concatenate([workers_done, jnp.all(workers_done)[None]])
        reward = jnp.concatenate([earned, jnp.sum(earned)[None]])
        energy_n = jnp.concatenate([energy, jnp.zeros(1, jnp.int32)]).astype(jnp.float32)
        info = {
            "events": {"work": jnp.concatenate([work, jnp.zeros(1, bool)]).astype(jnp.int32)},
            "signals": {"energy": energy_n,  # float32[N], the planner's 0
                        "energy_gap": jnp.abs(energy_n[:, None] - energy_n[None, :])},
        }
        return next_state, reward, terminated, t >= self.max_steps, info

    def observe(self, state):
        return {
            "workers": {"energy": state.energy, "level": jnp.full((2,), state.level),
                        "obs": jnp.stack([state.energy, jnp.full((2,), state.level)],
                                         axis=1).astype(jnp.float32)},
            "planner": {"energies": state.energy[None], "t": state.t[None],
                        "obs": jnp.concatenate([state.energy, state.t[None]])[None].astype(
                            jnp.float32)},
        }

    def action_mask(self, state):
        workers = jnp.tile(jnp.arange(LEVELS) < 3, (2, 1))
        planner = (jnp.arange(LEVELS) <= state.t)[None]
        return jnp.concatenate([workers, planner])

    def render(self, state):
        row = jnp.stack([state.energy[0], state.energy[1], state.level]).astype(jnp.uint8)
        return jnp.broadcast_to((row * 60)[None, :, None], (1, 3, 3)).astype(jnp.uint8)
