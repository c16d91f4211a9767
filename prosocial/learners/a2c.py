"""Synchronous advantage actor-critic with V-trace targets (specs.md §8.4, decision D-08).

The update rule for a population (``prosocial.learners.population``): one gradient step per
rollout on the whole batch, the reference A3C's reductions (sums over the batch for the
policy, value and entropy terms; the motives' auxiliary losses stay means) and V-trace value
targets and policy-gradient advantages from rlax (:func:`~prosocial.learners.losses.a2c_loss`).
On-policy with λ = 1 they are the discounted return to the end of the rollout (bootstrapped
from the value of the observation after it, or of a truncated episode's final observation)
and that return minus V. The LSTM is replayed over the whole rollout from its stored state
at the rollout's start, so returns are never cut at sequence boundaries.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

from prosocial.learners.a2c_config import A2CConfig
from prosocial.learners.losses import a2c_loss
from prosocial.learners.ppo_config import learning_rate


class A2C:
    """The A2C/V-trace update rule (module docstring)."""

    name = "a2c"
    shuffle = False
    num_epochs = 1
    num_minibatches = 1
    loop = "scan"

    def __init__(self, cfg: A2CConfig):
        self.cfg = cfg
        self.bootstrap = not cfg.ref_horizon_is_terminal

    def seq_len(self, num_steps: int) -> int:
        return num_steps

    def check(self, num_rows: int, num_steps: int) -> None:
        """Any batch is one gradient step."""

    def optimizer(self) -> optax.GradientTransformation:
        return self.cfg.optimizer_transform()

    def learning_rate(self, env_steps):
        return learning_rate(self.cfg, env_steps)

    def init_state(self, num_params: int):
        return {}

    def prepare(self, batch):
        """What the loss needs besides the policy's outputs, time-major ``[T, P, B]`` (the
        bootstrap value repeated along time so it travels with the sequence layout)."""
        return {"reward": batch["reward"], "terminated": batch["terminated"],
                "truncated": batch["truncated"], "final_value": batch["final_value"],
                "bootstrap_value": jnp.broadcast_to(batch["bootstrap_value"][None],
                                                    batch["reward"].shape)}

    def loss(self, logits, values, mb, state):
        return a2c_loss(self.cfg, logits, values,
                        dict(mb, bootstrap_value=mb["bootstrap_value"][..., 0]))

    def metrics(self, state):
        return {}

    def after_update(self, state, last_epoch):
        return state
