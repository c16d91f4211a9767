"""ERMAS's agent objective ("WPPO", specs §9.9.5 step 4, D-44) as a PPO update rule.

Per sample of agent i, with Â_i the agent's own GAE advantage and Â_r the planner's GAE
advantage at the same time step (standardised over the planner's trajectory), the agent
maximises

    normalised (SRAI, default):  [λ_i · S(ρ, Â_i, ε_i) − S(ρ, Â_r, ε_r)] / (1 + λ_i)
    paper's form ([ERMAS] Alg. 2, ``objective_normalised=False``):
                                  λ_i · S(ρ, Â_i, ε_i) − S(ρ, Â_r, ε_r)

where S(ρ, Â, ε) = min(ρÂ, clip(ρ, 1 − ε, 1 + ε)Â) is PPO's clipped surrogate: each
advantage term has its own clip. The agents' value functions fit their own returns (plain
PPO value loss). The two terms are :class:`~prosocial.learners.losses.AdvantageTerm` s of
``ppo_loss``; :func:`wppo_terms` builds them.

:class:`WPPO` is the update rule. Its multipliers λ live in its learner state
(``{"kl_coef": [P], "lam": [S, n]}``, per seed and per agent of the population), set by the
outer loop before every main update. Through the runner's ``inputs`` hook it reads the
planner population's part of the same rollout, computes the planner's GAE advantages with
the planner's γ and GAE λ, standardises them over each seed's planner trajectory and lays
them out like the agents' samples (every agent of a seed sees the same Â_r at a step).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from prosocial.learners.losses import AdvantageTerm, ppo_loss
from prosocial.learners.ppo import PPO
from prosocial.learners.ppo_config import PPOConfig


def standardise(x, axis, eps: float = 1e-8):
    """(x − mean)/(std + eps) over ``axis`` (kept dims)."""
    mean = x.mean(axis=axis, keepdims=True)
    std = x.std(axis=axis, keepdims=True)
    return (x - mean) / (std + eps)


def wppo_terms(lam, adv_own, adv_planner, clip_own: float, clip_planner: float,
               normalised: bool = True) -> tuple[AdvantageTerm, AdvantageTerm]:
    """The two advantage terms of the WPPO objective: (w_own, Â_i, ε_i), (w_r, Â_r, ε_r) with
    w_own = λ/(1 + λ), w_r = −1/(1 + λ) (``normalised``) or w_own = λ, w_r = −1.

    ``lam`` is a number, ``[P]`` or per sample ``[P, B, L]``; advantages ``[P, B, L]``.
    """
    lam = jnp.asarray(lam, jnp.float32)
    if normalised:
        w_own, w_r = lam / (1.0 + lam), -1.0 / (1.0 + lam)
    else:
        w_own, w_r = lam, -jnp.ones_like(lam)
    return (AdvantageTerm(w_own, adv_own, clip_own),
            AdvantageTerm(w_r, adv_planner, clip_planner))


def wppo_loss(cfg: PPOConfig, logits, values, batch, lam, kl_coef, clip_planner: float,
              normalised: bool = True):
    """``ppo_loss`` with the WPPO objective; ``batch`` also holds ``advantages`` (Â_i) and
    ``planner_advantages`` (Â_r), each ``[P, B, L]``."""
    terms = wppo_terms(lam, batch["advantages"], batch["planner_advantages"], cfg.clip_eps,
                       clip_planner, normalised)
    return ppo_loss(cfg, logits, values, batch, terms, kl_coef)


class WPPO(PPO):
    """PPO for ERMAS's agents with the WPPO objective (module docstring).

    Args:
      cfg: the agents' PPO settings (ε_i = ``cfg.clip_eps``).
      planner_population: index of the planner's population in the run.
      planner_cfg: the planner's PPO settings (γ and GAE λ of Â_r).
      num_agents: n, agents of this population; ``shared``: its parameters are shared.
      clip_planner: ε_r (default ``cfg.clip_eps``).
      normalised: divide by 1 + λ_i (SRAI; False: the paper's form).
    """

    name = "wppo"

    def __init__(self, cfg: PPOConfig, planner_population: int, planner_cfg: PPOConfig,
                 num_agents: int, shared: bool = False, clip_planner: float | None = None,
                 normalised: bool = True):
        super().__init__(cfg)
        if num_agents < 1:
            raise ValueError(f"WPPO: num_agents must be positive, got {num_agents}")
        if clip_planner is not None and not clip_planner > 0:
            raise ValueError(f"WPPO: clip_planner must be positive, got {clip_planner!r}")
        self.planner_population = int(planner_population)
        self.planner_cfg = planner_cfg
        self.num_agents, self.shared = int(num_agents), bool(shared)
        self.clip_planner = cfg.clip_eps if clip_planner is None else float(clip_planner)
        self.normalised = bool(normalised)

    def init_state(self, num_params: int):
        seeds = num_params if self.shared else num_params // self.num_agents
        return {"kl_coef": jnp.full((num_params,), self.cfg.kl_coef, jnp.float32),
                "lam": jnp.zeros((seeds, self.num_agents), jnp.float32)}

    def inputs(self, runner, index: int, ps, rollout):
        """Extra time-major inputs ``[T, P, B]`` of ``prepare``: the planner's standardised
        advantages and each sample's λ (the runner's hook for rules that read other
        populations)."""
        planner = runner.populations[self.planner_population]
        lay_r = planner.layout
        out = rollout.policy[self.planner_population]
        batch = {"reward": lay_r.time_to_params(rollout.reward), "value": out["value"],
                 "final_value": out["final_value"], "bootstrap_value": out["bootstrap_value"],
                 "terminated": lay_r.time_to_params(rollout.terminated),
                 "truncated": jax.vmap(lay_r.per_param)(rollout.truncated)}
        raw = dataclasses.replace(self.planner_cfg, normalize_advantages=False)
        adv_r = PPO(raw).prepare(batch)["advantages"]  # [T, P_r, B_r]
        adv_r = lay_r.time_to_envs(adv_r)[..., 0]  # [T, S, E] (one planner per seed)
        adv_r = standardise(adv_r, axis=(0, 2))
        lay = runner.populations[index].layout
        n_all = lay.num_agents
        every = jnp.broadcast_to(adv_r[..., None], adv_r.shape + (n_all,))
        lam = lay.scatter(ps.learner["lam"], fill=0.0)  # [S, N]
        lam = jnp.broadcast_to(lam[None, :, None, :], every.shape)
        return {"planner_advantages": lay.time_to_params(every),
                "lam": lay.time_to_params(lam)}

    def prepare(self, batch):
        targets = super().prepare(batch)
        targets["planner_advantages"] = batch["planner_advantages"]
        targets["lam"] = batch["lam"]
        return targets

    def after_update(self, state, last_epoch):
        return dict(super().after_update(state, last_epoch), lam=state["lam"])

    def loss(self, logits, values, mb, state):
        return wppo_loss(self.cfg, logits, values, mb, mb["lam"], state["kl_coef"],
                         self.clip_planner, self.normalised)


__all__ = ["WPPO", "standardise", "wppo_loss", "wppo_terms"]
