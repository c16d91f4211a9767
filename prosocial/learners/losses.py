"""The actor-critic learners' losses as pure functions: PPO's clipped surrogate (one or several
weighted advantage terms, specs.md §8.3 and §9.9.5) and the A2C loss on V-trace targets
(specs.md §8.4).

Shapes: P parameter sets stacked on the leading axis, B sequences, L steps, A actions. Every
loss returns the sum over P of the per-set losses (so each set's gradient comes from its own
term only) and a dict of per-set terms ``[P]`` for logging.

rlax does the estimator maths: ``clipped_surrogate_pg_loss`` for the PPO objective and
``vtrace_td_error_and_advantage`` for the value targets and policy-gradient advantages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import rlax

from prosocial.learners.a2c_config import A2CConfig
from prosocial.learners.ppo_config import PPOConfig

Array = jax.Array


class AdvantageTerm(NamedTuple):
    """One weighted advantage of a PPO objective Σ_k w_k·clip-surrogate(ρ, Â_k, ε_k).

    ``weight`` is a number, or an array ``[P]`` of one weight per parameter set (ERMAS's
    per-agent λ_i); weights may be negative and are not renormalised.
    """

    weight: float | Array
    advantages: Array  # [P, B, L]
    clip_eps: float


def clipped_surrogate(ratio, advantages, clip_eps) -> Array:
    """min(ρÂ, clip(ρ, 1 − ε, 1 + ε)·Â) element by element: the objective to maximise.

    ``ratio`` and ``advantages`` broadcast to a common shape; gradients flow through the ratio
    only (the advantages are constants). rlax's ``clipped_surrogate_pg_loss`` returns minus the
    mean over a vector, so it is applied to every element as a vector of one.
    """
    shape = jnp.broadcast_shapes(jnp.shape(ratio), jnp.shape(advantages))
    ratio = jnp.broadcast_to(ratio, shape).reshape(-1, 1)
    advantages = jnp.broadcast_to(advantages, shape).reshape(-1, 1)
    loss = jax.vmap(lambda r, a: rlax.clipped_surrogate_pg_loss(r, a, clip_eps))(
        ratio, advantages)
    return -loss.reshape(shape)


def _advantage_terms(advantages, clip_eps) -> tuple[AdvantageTerm, ...]:
    if isinstance(advantages, AdvantageTerm):
        return (advantages,)
    if isinstance(advantages, Sequence):
        terms = tuple(advantages)
        if not terms or not all(isinstance(t, AdvantageTerm) for t in terms):
            raise TypeError("ppo_loss: advantages must be an array [P, B, L] or a non-empty "
                            "sequence of AdvantageTerm")
        return terms
    return (AdvantageTerm(1.0, advantages, clip_eps),)


def _per_set(weight, ndim):
    """A weight: a number, or [P] shaped to broadcast against [P, ...] arrays of rank ndim."""
    w = jnp.asarray(weight)
    return w.reshape(w.shape + (1,) * (ndim - w.ndim)) if w.ndim else w


def ppo_loss(cfg: PPOConfig, logits, values, batch, advantages, kl_coef):
    """Per-set PPO loss (specs.md §8.3) averaged over valid steps.

    ``logits`` [P, B, L, A] and ``values`` [P, B, L] are the new outputs; ``batch`` holds the
    rollout's ``action``, ``logits`` (old), ``value`` (old), ``returns`` and ``mask``, each
    [P, B, L]; ``kl_coef`` [P]. ``advantages`` is an array [P, B, L] (the plain objective, clip
    ``cfg.clip_eps``) or a sequence of :class:`AdvantageTerm`, whose objective is

        Σ_k w_k · min(ρÂ_k, clip(ρ, 1 − ε_k, 1 + ε_k)·Â_k)

    with no renormalisation by Σ w_k. ERMAS's WPPO agent objective (specs §9.9.5)
    (λ·clip-surrogate(Â_i) − clip-surrogate(Â_r)) / (1 + λ) is the two terms
    (λ/(1 + λ), Â_i, ε_i) and (−1/(1 + λ), Â_r, ε_r).

    Per set: L = −mean(objective) + β_KL·mean(KL(π_old ‖ π))
    + c_v·mean(max((V − R)², (V_old + clip(V − V_old, ±vf_clip) − R)²)) − c_H·mean(H(π)).
    Returns the sum of L over P and the per-set terms ``policy_loss``, ``value_loss``,
    ``entropy``, ``kl`` and ``clip_fraction`` (the fraction of valid steps with
    |ρ − 1| > ``cfg.clip_eps``), each [P].
    """
    mask = batch["mask"].astype(jnp.float32)
    count = jnp.maximum(mask.sum(axis=(1, 2)), 1.0)

    def mean(x):
        return (x * mask).sum(axis=(1, 2)) / count

    new = distrax.Categorical(logits=logits)
    old = distrax.Categorical(logits=batch["logits"])
    logp = new.log_prob(batch["action"])
    ratio = jnp.exp(logp - old.log_prob(batch["action"]))
    objective = None
    for term in _advantage_terms(advantages, cfg.clip_eps):
        part = _per_set(term.weight, ratio.ndim) * clipped_surrogate(
            ratio, term.advantages, term.clip_eps)
        objective = part if objective is None else objective + part
    kl = old.kl_divergence(new)
    entropy = new.entropy()
    v_old, target = batch["value"], batch["returns"]
    v_clipped = v_old + jnp.clip(values - v_old, -cfg.vf_clip, cfg.vf_clip)
    vf = jnp.maximum(jnp.square(values - target), jnp.square(v_clipped - target))
    terms = {"policy_loss": -mean(objective), "value_loss": mean(vf), "entropy": mean(entropy),
             "kl": mean(kl), "clip_fraction": mean(jnp.abs(ratio - 1) > cfg.clip_eps)}
    total = (terms["policy_loss"] + kl_coef * terms["kl"] + cfg.vf_coef * terms["value_loss"]
             - cfg.ent_coef * terms["entropy"])
    return total.sum(), terms


def vtrace_advantages(values, next_values, rewards, discounts, rhos, lambdas,
                      clip_rho: float = 1.0, clip_pg_rho: float = 1.0):
    """V-trace value targets and policy-gradient advantages (IMPALA, Espeholt et al. 2018).

    Inputs are time-major ``[T, ...]`` with any trailing batch axes (``lambdas`` may also be a
    number); each trajectory ``[:, i...]`` goes through rlax's single-trajectory
    ``vtrace_td_error_and_advantage`` under ``vmap``. Our convention and rlax's names:

    ====================  =================================  ======================
    ours, step t          meaning                            rlax argument
    ====================  =================================  ======================
    ``values[t]``         V(o_t), where a_t was taken        ``v_tm1[t]``
    ``next_values[t]``    V of the observation after step t  ``v_t[t]``
                          in the same episode: V(o_{t+1}),
                          the final observation's value
                          where truncated, the bootstrap
                          after the last step
    ``rewards[t]``        r_t, the reward of step t          ``r_t[t]``
    ``discounts[t]``      γ·(1 − terminated_t)               ``discount_t[t]``
    ``rhos[t]``           π(a_t|o_t)/μ(a_t|o_t)              ``rho_tm1[t]``
    ``lambdas[t]``        1 − done_t: the trace from t+1     ``lambda_[t]``
                          back to t (0 cuts it)
    ====================  =================================  ======================

    rlax's recursion is e_t = ρ̄_t·δ_t + discount_t·λ_t·min(1, ρ_t)·e_{t+1} with
    δ_t = r_t + discount_t·v_t[t] − v_tm1[t], ρ̄_t = min(clip_rho, ρ_t), and target
    v_s = v_tm1 + e; its advantage is min(clip_pg_rho, ρ_t)·(q_t − v_tm1[t]) with
    q_t = r_t + discount_t·(λ_t·v_s[t+1] + (1 − λ_t)·v_tm1[t+1]) (q_{T−1} bootstraps from
    v_t[T−1]). That q assumes v_t[t] = v_tm1[t+1], a trajectory without breaks; where an
    episode is truncated at t (λ_t = 0) the right bootstrap is ``next_values[t]``, the final
    observation's value, not the value of the next episode's first observation. The advantage
    is corrected by min(clip_pg_rho, ρ_t)·discount_t·(1 − λ_t)·(next_values[t] − values[t+1]),
    zero wherever the trajectory is unbroken.

    With λ = 1, ρ = 1 and no truncation the targets are the discounted returns to the episode
    end (or bootstrapped after the last step) and the advantages are returns − V.

    Returns ``(value_targets, pg_advantages)``, both shaped like ``values`` and both targets:
    their gradients are stopped.
    """
    values = jnp.asarray(values)
    dtype = values.dtype if jnp.issubdtype(values.dtype, jnp.floating) else jnp.float32
    shape = values.shape

    def flat(x):  # [T, ...] → [T, N] of floats
        return jnp.broadcast_to(jnp.asarray(x, dtype), shape).reshape(shape[0], -1)

    v, nv, r, d, rho, lam = map(flat, (values, next_values, rewards, discounts, rhos, lambdas))

    def one(v, nv, r, d, rho, lam):
        out = rlax.vtrace_td_error_and_advantage(
            v, nv, r, d, rho, lam, clip_rho_threshold=clip_rho,
            clip_pg_rho_threshold=clip_pg_rho, stop_target_gradients=True)
        return out.errors + v, out.pg_advantage

    targets, pg = jax.vmap(one, in_axes=1, out_axes=1)(v, nv, r, d, rho, lam)
    next_in_sequence = jnp.concatenate([v[1:], nv[-1:]])
    pg = pg + jnp.minimum(clip_pg_rho, rho) * d * (1.0 - lam) * (nv - next_in_sequence)
    return (jax.lax.stop_gradient(targets.reshape(shape)),
            jax.lax.stop_gradient(pg.reshape(shape)))


def a2c_loss(cfg: A2CConfig, logits, values, batch: dict[str, Any]):
    """The A2C loss of sequences with V-trace targets, reduced as the reference A3C (specs §8.4).

    ``logits`` [P, B, L, A] and ``values`` [P, B, L] are the new outputs. ``batch`` holds, each
    [P, B, L]: ``action``, ``logits`` (behaviour policy μ, [P, B, L, A]), ``reward`` (shaped),
    ``terminated``, ``truncated`` (ended by the time limit), ``final_value`` (V of the final
    observation where truncated, else 0) and ``mask`` (valid steps, a prefix of each
    sequence); and ``bootstrap_value`` [P, B], V of the observation after the last valid step.

    Next values are the new ``values`` shifted by one step, ``bootstrap_value`` after the last
    valid step, ``final_value`` where truncated and 0 where terminated
    (``cfg.ref_horizon_is_terminal`` treats truncation as termination); discounts
    γ·(1 − terminated); the trace is cut where done or at the last valid step. ρ = π/μ. Values
    and ρ enter V-trace as constants, so the targets v_s and advantages Â carry no gradient.

    Per parameter set, over its valid steps (``cfg.reduction``: sums, or means per step):

        policy = −Σ log π(a)·Â,  value = ½·Σ (V − v_s)²,  entropy = Σ H(π)
        loss = policy + vf_coef·value − ent_coef·entropy

    Returns the sum of ``loss`` over P and the per-set terms [P]: ``loss`` (as reduced and
    minimised), and for logging, whatever the reduction, the means per valid step
    ``policy_loss``, ``value_loss`` (with the ½), ``entropy``, ``advantage`` (Â) and ``rho``.
    """
    valid = batch["mask"].astype(bool)
    mask = valid.astype(jnp.float32)
    count = jnp.maximum(mask.sum(axis=(1, 2)), 1.0)
    terminated = batch["terminated"].astype(bool)
    truncated = batch["truncated"].astype(bool)
    if cfg.ref_horizon_is_terminal:
        terminated = terminated | truncated
    done = terminated | truncated

    new = distrax.Categorical(logits=logits)
    old = distrax.Categorical(logits=batch["logits"])
    logp = new.log_prob(batch["action"])
    rho = jax.lax.stop_gradient(jnp.exp(logp - old.log_prob(batch["action"])))

    v = jax.lax.stop_gradient(values)
    bootstrap = batch["bootstrap_value"][..., None].astype(v.dtype)
    last = valid & ~jnp.concatenate([valid[..., 1:], jnp.zeros_like(valid[..., :1])], axis=-1)
    next_values = jnp.concatenate([v[..., 1:], bootstrap], axis=-1)
    next_values = jnp.where(last, bootstrap, next_values)
    final = jnp.where(terminated, 0.0, batch["final_value"].astype(v.dtype))
    next_values = jnp.where(done, final, next_values)
    discounts = cfg.gamma * (1.0 - terminated.astype(v.dtype))
    lambdas = 1.0 - (done | last).astype(v.dtype)

    def time_major(x):
        return jnp.moveaxis(x, -1, 0)

    targets, adv = vtrace_advantages(
        time_major(v), time_major(next_values), time_major(batch["reward"]),
        time_major(discounts), time_major(rho), time_major(lambdas),
        clip_rho=cfg.clip_rho, clip_pg_rho=cfg.clip_pg_rho)
    targets, adv = jnp.moveaxis(targets, 0, -1), jnp.moveaxis(adv, 0, -1)

    def total(x):
        return (x * mask).sum(axis=(1, 2))

    per_step = {"policy_loss": -logp * adv, "value_loss": 0.5 * jnp.square(values - targets),
                "entropy": new.entropy()}
    sums = {k: total(x) for k, x in per_step.items()}
    reduced = sums if cfg.reduction == "sum" else {k: s / count for k, s in sums.items()}
    loss = (reduced["policy_loss"] + cfg.vf_coef * reduced["value_loss"]
            - cfg.ent_coef * reduced["entropy"])
    terms = {"loss": loss, **{k: s / count for k, s in sums.items()},
             "advantage": total(adv) / count, "rho": total(rho) / count}
    return loss.sum(), terms


__all__ = ["AdvantageTerm", "a2c_loss", "clipped_surrogate", "ppo_loss", "vtrace_advantages"]
