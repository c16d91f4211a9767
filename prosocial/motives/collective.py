"""Collective reward (specs.md §9.2): every agent learns from the group's total reward.

r_i(t) = Σ_j e_j(t) for every agent i (SSD ``use_collective_reward``). A reference point,
not a paper method: [ECCLES] §2 notes it breeds lazy agents and is exploitable by a
selfish learner.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from prosocial.motives.base import Motive, select_agents


def collective_reward(rewards) -> jax.Array:
    """Each agent's learning reward is the sum of all agents' rewards.

    Args:
      rewards: extrinsic rewards e, shape ``[..., N]`` (agents last).

    Returns:
      shape ``[..., N]``, every entry along the agent axis equal to Σ_j e_j.
    """
    rewards = jnp.asarray(rewards)
    if rewards.ndim < 1:
        raise ValueError(
            f"collective_reward: rewards must have shape [..., N], got a scalar {rewards.shape}"
        )
    return jnp.broadcast_to(rewards.sum(-1, keepdims=True), rewards.shape)


class CollectiveReward(Motive):
    """Every agent learns from the sum of all agents' rewards (specs.md §9.2); the intrinsic
    part is the other agents' rewards."""

    name = "collective"
    min_agents = 2

    def intrinsic(self, params, carry, rollout, view):
        intrinsic = collective_reward(rollout.reward) - rollout.reward
        return carry, select_agents(intrinsic, view.layout), {}, {}
