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

    @property
    def learns(self) -> bool:
        return self.update is not None and self.trainable



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
