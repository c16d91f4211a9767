"""Populations: the unit a run is composed of.

A population is a set of agent ids of one environment with its own policy network, update
rule (PPO, A2C, … or none: frozen), motive and learning rate, with independent parameters
per agent (default) or one parameter set shared by its agents. A run is a tuple of
populations over one rollout (``prosocial.learners.runner``); the default is one
population of all agents.

Policies act behind a small interface (``init``, ``initial_carry``, ``step``, ``unroll``)
so collection, evaluation, the demo and the benchmarks share one acting path
(``prosocial.learners.rollout``): :class:`ActorCritic` is the SSD conv–MLP–LSTM network of
``prosocial.nets``; :class:`UniformRandom` acts uniformly at random (no parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp

from prosocial import nets
from prosocial.layout import Layout
from prosocial.motives.base import Motive


class ActorCritic:
    """The actor-critic network of ``prosocial.nets`` for one observation and action space."""

    def __init__(self, cfg: nets.NetConfig, obs_space, num_actions: int):
        nets.input_key(obs_space.spaces)  # fail early on unusable observations
        self.cfg, self.obs_space, self.num_actions = cfg, obs_space, num_actions

    def init(self, keys: jax.Array):
        """One parameter set per key, stacked ``[P, ...]``."""
        return jax.vmap(lambda k: nets.init_params(self.cfg, k, self.obs_space,
                                                   self.num_actions))(keys)

    def initial_carry(self, batch_shape):
        return nets.initial_carry(self.cfg, batch_shape)

    def step(self, params, obs, carry, start):
        """obs leaves ``[P, B, ...]`` → ``({"logits": [P, B, A], "value": [P, B]}, carry)``."""
        logits, value, carry = nets.step(self.cfg, params, obs, carry, start)
        return {"logits": logits, "value": value}, carry

    def unroll(self, params, obs, carry, starts, return_features: bool = False):
        return nets.unroll(self.cfg, params, obs, carry, starts, return_features)

    def features(self, params, obs):
        """The conv features ``[P, M, D]`` of observations ``[P, M, ...]`` (what motives with
        towers on the policy's convolution start from)."""
        return nets.conv_features(self.cfg, params, obs)


class UniformRandom:
    """Uniformly random actions: zero logits, zero value, no parameters."""

    def __init__(self, num_actions: int):
        self.num_actions = num_actions

    def init(self, keys):
        return ()

    def initial_carry(self, batch_shape):
        return ()

    def step(self, params, obs, carry, start):
        shape = start.shape
        return {"logits": jnp.zeros(shape + (self.num_actions,), jnp.float32),
                "value": jnp.zeros(shape, jnp.float32)}, carry


def sample_actions(outputs, keys, greedy: bool = False):
    """Actions ``int32[P, B]`` from policy outputs: categorical on the logits (one key per
    parameter set), or their argmax."""
    logits = outputs["logits"]
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.vmap(jax.random.categorical)(keys, logits).astype(jnp.int32)


@dataclass(frozen=True)
class Population:
    """A group of agents trained together (see the module docstring).

    ``update`` is an update rule (``prosocial.learners.ppo.PPO``, ``…a2c.A2C``) or ``None``
    for a population that only acts. ``trainable=False`` keeps the parameters bit for bit
    (what ERMAS's deviations and held-out co-players need).
    """

    name: str
    layout: Layout
    policy: Any
    update: Any = None
    motive: Motive = field(default_factory=Motive)
    trainable: bool = True
    role: str | None = None
    """In an environment with several roles, the role all its agents play (observations
    are keyed by role there); ``None`` in a one-role environment."""
    role_layout: Layout | None = None
    """With ``role``: the layout of its agents among that role's agents (observations are
    ``[S, E, n_role, ...]``); see :func:`role_population`."""

    @property
    def learns(self) -> bool:
        return self.update is not None and self.trainable

    @property
    def obs_layout(self) -> Layout:
        """The layout that takes its observations to ``[P, B, ...]``."""
        return self.layout if self.role_layout is None else self.role_layout

    def observations(self, obs):
        """Its agents' part of the environment's observations, still env-major: ``obs``
        itself in a one-role environment, ``obs[role]`` otherwise."""
        return obs if self.role is None else obs[self.role]

    def obs_to_params(self, obs):
        """Environment observations ``[S, E, …]`` → its agents' ``[P, B, ...]``."""
        return jax.tree.map(self.obs_layout.to_params, self.observations(obs))



def all_agents(env, update=None, net: nets.NetConfig | None = None,
               motive: Motive | None = None, num_seeds: int = 1, shared: bool = False,
               name: str = "agents", trainable: bool = True) -> Population:
    """One population of every agent of ``env`` with the actor-critic network (the default
    run)."""
    net = net if net is not None else nets.NetConfig()
    layout = Layout(num_seeds, env.num_agents, tuple(range(env.num_agents)), shared)
    return Population(name, layout, policy_for(update, net, env.observation_space,
                                               env.num_actions),
                      update, motive if motive is not None else Motive(), trainable)


def policy_for(update, net: nets.NetConfig, obs_space, num_actions: int):
    """The policy an update rule trains: the rule's own network where it has one (DQN's
    Q-network, ``update.policy(net, …)``), else the actor-critic of ``net``."""
    if update is not None and hasattr(update, "policy"):
        return update.policy(net, obs_space, num_actions)
    return ActorCritic(net, obs_space, num_actions)


def role_population(env, role: str, update=None, net: nets.NetConfig | None = None,
                    motive: Motive | None = None, num_seeds: int = 1, shared: bool = False,
                    name: str | None = None, trainable: bool = True,
                    agents: tuple[int, ...] | None = None, policy=None) -> Population:
    """A population of the agents of one role (all of them, or ``agents``, a subset) with
    the network its update rule trains (:func:`policy_for`) for that role's spaces (or
    ``policy``), e.g. ERMAS's agents
    and planner as two populations."""
    roles = env.roles
    if role not in roles:
        raise ValueError(f"{env.env_id} has no role {role!r}; roles: {', '.join(roles)}")
    members = tuple(roles[role])
    agents = members if agents is None else tuple(sorted(agents))
    if not agents or not set(agents) <= set(members):
        raise ValueError(f"agents {agents} are not agents of role {role!r} {members}")
    layout = Layout(num_seeds, env.num_agents, agents, shared)
    if policy is None:
        net = net if net is not None else nets.NetConfig()
        policy = policy_for(update, net, env.observation_spaces[role],
                            env.action_spaces[role].n)
    several = len(roles) > 1
    local = Layout(num_seeds, len(members), tuple(members.index(a) for a in agents), shared)
    return Population(name or role, layout, policy, update,
                      motive if motive is not None else Motive(), trainable,
                      role if several else None, local if several else None)

