"""Trust-region deviations of ERMAS (specs §9.9.3, D-40): TRPO steps and a KL early stop.

ERMAS estimates each agent's regret with a deviation searched inside the trust region
Π_ρ(π_i) = {π'_i : KL(π_i ‖ π'_i) ≤ ρ} ([ERMAS] eqs. 13–14); its Algorithm 2 takes
n_inner TRPO steps of radius ρ/n_inner. SRAI runs plain PPO iterations instead (our
default). This module holds the two options of §9.9.3:

- ``deviation="trpo"``: every inner iteration is one TRPO step (Schulman et al. 2015) of
  radius δ = ρ/n_inner on the batch just collected (:class:`TRPO`);
- ``deviation="ppo"`` with ``rho``: PPO iterations whose parameter sets stop learning once
  the mean KL from the deviation's start exceeds ρ (:class:`KLStopPPO`).

One TRPO step, for parameters θ (π_old = the policy that collected the batch, Â the
standardised GAE advantages, means over the batch's valid steps):

    L(θ)  = mean[ π_θ(a|s) / π_old(a|s) · Â ]                 surrogate (no clip, no entropy)
    D(θ)  = mean[ KL(π_old(·|s) ‖ π_θ(·|s)) ]                  mean KL, D(θ_old) = 0
    g     = ∇L(θ),   F = ∇²D(θ) (the Fisher information matrix at θ = θ_old)
    x     ≈ (F + c·I)⁻¹ g                                      K conjugate-gradient iterations
    Δ     = sqrt(2δ / xᵀ(F + c·I)x) · x                        full step: ½ΔᵀFΔ ≈ δ
    θ'    = θ + b^j·Δ for the smallest j ∈ {0, …, J − 1} with D(θ + b^jΔ) ≤ δ and
            L(θ + b^jΔ) > L(θ); θ' = θ when no j qualifies.

The paper gives no TRPO settings; ours are the common ones of public TRPO implementations
(OpenAI baselines): K = :data:`CG_ITERS` = 10 conjugate-gradient iterations, damping
c = :data:`CG_DAMPING` = 0.01, backtracking factor b = :data:`BACKTRACK_RATIO` = 0.5 and
J = :data:`BACKTRACK_STEPS` = 10 trial steps. Fisher-vector products are forward-over-reverse
derivatives of D (``jax.jvp`` of ``jax.grad``), never the matrix. Before the policy step the
value function is fitted like PPO's (its clipped value loss, the rule's epochs, minibatches
and Adam); the step is then measured against the collecting policy π_old, so an accepted
step lies inside the radius even where the value fit moved a trunk shared with the policy
(ERMAS's linear and separate-MLP networks share none; with a shared trunk the value fit's own
move of the policy is not checked). Each step's radius is relative to the policy of its own
batch, so the whole deviation's KL from θ⁰ is not bounded by ρ: to second order it lies
between ρ (steps orthogonal in the Fisher metric) and n_inner·ρ (steps along one direction,
KL growing with the square of the distance), as in the paper's Algorithm 2.

Pure functions (:func:`conjugate_gradient`, :func:`fisher_vector_product`,
:func:`line_search`, :func:`trpo_step`, :func:`surrogate`, :func:`mean_kl`) do the maths on
one parameter set; the update rules vmap them over the population's parameter sets. Both
rules honour ``PopState.lr_scale`` as the runner does (ERMAS's deviations train one agent
per copy): TRPO scales its trial steps by it, so a set with scale 0 keeps its parameters bit
for bit; the early stop sets a set's scale to 0 once its KL from the start exceeds ρ.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import distrax
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from prosocial.learners.losses import ppo_loss
from prosocial.learners.ppo import PPO
from prosocial.learners.ppo_config import PPOConfig
from prosocial.learners.rollout import MASKED
from prosocial.learners.sgd import make_sgd

CG_ITERS = 10
"""Conjugate-gradient iterations per TRPO step."""
CG_DAMPING = 0.01
"""c: the solved system is (F + c·I)x = g."""
BACKTRACK_RATIO = 0.5
"""b: each trial step is b times the previous one."""
BACKTRACK_STEPS = 10
"""J: trial steps b⁰Δ … b^(J−1)Δ."""


# --- pure functions ---------------------------------------------------------------------------


def conjugate_gradient(matvec, b, iters: int = CG_ITERS, tol: float = 1e-10):
    """x ≈ A⁻¹b for a symmetric positive-definite A given as ``matvec(v) = A·v``.

    Conjugate gradients from x₀ = 0: r₀ = p₀ = b, then for k = 0, 1, …

        α_k = r_kᵀr_k / p_kᵀA p_k,  x_{k+1} = x_k + α_k p_k,  r_{k+1} = r_k − α_k A p_k,
        p_{k+1} = r_{k+1} + (r_{k+1}ᵀr_{k+1} / r_kᵀr_k) p_k,

    for at most ``iters`` iterations, stopping early once ‖r‖ ≤ tol·‖b‖ (exact in n
    iterations for an n×n system, up to rounding). ``b`` may be a pytree; b = 0 gives x = 0.
    jax's ``jax.scipy.sparse.linalg.cg`` runs the recurrence.
    """
    x, _ = jax.scipy.sparse.linalg.cg(matvec, b, maxiter=iters, tol=tol)
    return x


def fisher_vector_product(kl_fn, params, v, damping: float = 0.0):
    """(∇²D(θ) + c·I)·v with D = ``kl_fn`` the mean KL(π_old ‖ π_θ), θ = ``params``.

    At θ = θ_old the Hessian of the mean KL is the Fisher information matrix
    F = E_s[J_sᵀ (diag(p_s) − p_s p_sᵀ) J_s] of a categorical policy p_s = softmax(z_s(θ)),
    J_s = ∂z_s/∂θ. Computed as the directional derivative of ∇D along v (``jax.jvp`` of
    ``jax.grad``), without forming F. ``params`` and ``v`` are matching pytrees.
    """
    hv = jax.jvp(jax.grad(kl_fn), (params,), (v,))[1]
    return jax.tree.map(lambda h, x: h + damping * x, hv, v)


def masked_mean(x, mask):
    """Mean of ``x`` over the entries where ``mask`` is true (0 when none is)."""
    mask = mask.astype(jnp.float32)
    return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def mean_kl(old_logits, logits, mask):
    """D = mean over valid steps of KL(π_old(·|s) ‖ π(·|s)) for categorical logits
    ``[..., A]`` (``mask`` ``[...]``)."""
    kl = distrax.Categorical(logits=old_logits).kl_divergence(distrax.Categorical(logits=logits))
    return masked_mean(kl, mask)


def surrogate(old_logits, logits, action, advantages, mask):
    """L = mean over valid steps of π(a|s)/π_old(a|s) · Â (TRPO's surrogate; its gradient at
    π = π_old is the policy gradient)."""
    logp = distrax.Categorical(logits=logits).log_prob(action)
    logp_old = distrax.Categorical(logits=old_logits).log_prob(action)
    return masked_mean(jnp.exp(logp - logp_old) * advantages, mask)


def line_search(surrogate_fn, kl_fn, params, full_step, radius, scale=1.0,
                ratio: float = BACKTRACK_RATIO, steps: int = BACKTRACK_STEPS):
    """Backtracking along ``full_step`` Δ: θ' = θ + s·b^j·Δ for the smallest j < J with
    D(θ') ≤ δ and L(θ') > L(θ) (s = ``scale``, b = ``ratio``, J = ``steps``, δ = ``radius``);
    θ' = θ (bit for bit) when no trial qualifies (always when s = 0).

    All J trials are evaluated at once (vmap). Returns θ' and ``info``: ``accepted`` (bool),
    ``fraction`` (s·b^j, 0 when rejected), ``kl`` = D(θ') and ``improvement`` L(θ') − L(θ).
    """
    fractions = scale * ratio ** jnp.arange(steps, dtype=jnp.float32)
    trials = jax.vmap(lambda f: jax.tree.map(lambda p, d: p + f * d, params, full_step))(
        fractions)
    base = surrogate_fn(params)
    gains = jax.vmap(surrogate_fn)(trials) - base
    kls = jax.vmap(kl_fn)(trials)
    # A zero trial (scale 0) is no step, whatever rounding makes of its surrogate's gain.
    ok = (kls <= radius) & (gains > 0) & (fractions > 0)
    accepted = jnp.any(ok)
    j = jnp.argmax(ok)  # the first qualifying trial
    new = jax.tree.map(lambda p, t: jnp.where(accepted, t[j], p), params, trials)
    info = {"accepted": accepted, "fraction": jnp.where(accepted, fractions[j], 0.0),
            "kl": jnp.where(accepted, kls[j], kl_fn(params)),
            "improvement": jnp.where(accepted, gains[j], 0.0)}
    return new, info


def trpo_step(surrogate_fn, kl_fn, params, radius, scale=1.0, cg_iters: int = CG_ITERS,
              damping: float = CG_DAMPING, ratio: float = BACKTRACK_RATIO,
              steps: int = BACKTRACK_STEPS):
    """One TRPO step of radius δ = ``radius`` (module docstring): g = ∇L, x = CG((F + cI), g),
    Δ = sqrt(2δ / xᵀ(F + cI)x)·x, then :func:`line_search` along Δ (trial steps scaled by
    ``scale``; 0 keeps ``params``).

    ``surrogate_fn(θ)`` is L, ``kl_fn(θ)`` is D (0 at ``params``); ``params`` is a pytree.
    Returns θ' and the line search's ``info`` plus ``step_norm`` = ‖Δ‖.
    """
    flat, unravel = ravel_pytree(params)

    def sur(x):
        return surrogate_fn(unravel(x))

    def kl(x):
        return kl_fn(unravel(x))

    g = jax.grad(sur)(flat)

    def fvp(v):
        return fisher_vector_product(kl, flat, v, damping)

    x = conjugate_gradient(fvp, g, cg_iters)
    xfx = jnp.vdot(x, fvp(x))
    beta = jnp.where(xfx > 0, jnp.sqrt(2.0 * radius / jnp.where(xfx > 0, xfx, 1.0)), 0.0)
    full = beta * x
    new, info = line_search(sur, kl, flat, full, radius, scale, ratio, steps)
    info["step_norm"] = jnp.linalg.norm(full)
    return unravel(new), info


def kl_stop_scale(kl, rho, lr_scale):
    """The early stop's learning-rate scales: 0 where the KL from the start exceeds ρ, else
    the current scale (a stopped set stays stopped: its scale is already 0)."""
    return jnp.where(kl > rho, 0.0, lr_scale)


# --- update rules -------------------------------------------------------------------------------


def _one_set_logits(policy, params, obs, carry0, starts, action_mask=None):
    """Logits ``[B, L, A]`` of one parameter set (the policy interface is parameter-major)."""
    add = partial(jax.tree.map, lambda x: x[None])
    logits = policy.unroll(add(params), add(obs), add(carry0), starts[None])[0][0]
    if action_mask is not None:
        logits = jnp.where(action_mask, logits, MASKED)
    return logits


def _batch_logits(policy, params, batch, carry0):
    """Logits ``[P, B, L, A]`` of every parameter set on a runner batch of sequences."""
    logits = policy.unroll(params, batch["obs"], carry0, batch["start"])[0]
    if "action_mask" in batch:
        logits = jnp.where(batch["action_mask"], logits, MASKED)
    return logits


class _ValueFit(PPO):
    """PPO's schedule and optimiser on the value loss alone (c_v times PPO's clipped value
    loss): TRPO's value-function fit."""

    def loss(self, logits, values, mb, state):
        total, terms = ppo_loss(self.cfg, logits, values, mb, mb["advantages"],
                                state["kl_coef"])
        return (self.cfg.vf_coef * terms["value_loss"]).sum(), terms


class TRPO(PPO):
    """ERMAS's TRPO deviations (``deviation="trpo"``): per iteration a value fit, then one
    TRPO step of radius ``radius`` per parameter set (module docstring).

    Targets are PPO's (GAE advantages standardised per parameter set, value targets); the
    ``cfg`` gives γ, GAE λ, the value loss, its epochs, minibatches and learning rate.
    """

    name = "trpo"

    def __init__(self, cfg: PPOConfig, radius: float, cg_iters: int = CG_ITERS,
                 damping: float = CG_DAMPING, backtrack_ratio: float = BACKTRACK_RATIO,
                 backtrack_steps: int = BACKTRACK_STEPS):
        super().__init__(cfg)
        if isinstance(radius, bool) or not radius > 0 or not math.isfinite(radius):
            raise ValueError(f"TRPO: radius must be a positive number, got {radius!r}")
        if isinstance(cg_iters, bool) or int(cg_iters) != cg_iters or cg_iters < 1:
            raise ValueError(f"TRPO: cg_iters must be a positive integer, got {cg_iters!r}")
        if not damping >= 0:
            raise ValueError(f"TRPO: damping must be ≥ 0, got {damping!r}")
        if not 0 < backtrack_ratio < 1:
            raise ValueError(f"TRPO: backtrack_ratio must be in (0, 1), got "
                             f"{backtrack_ratio!r}")
        if isinstance(backtrack_steps, bool) or int(backtrack_steps) != backtrack_steps \
                or backtrack_steps < 1:
            raise ValueError(f"TRPO: backtrack_steps must be a positive integer, got "
                             f"{backtrack_steps!r}")
        self.radius, self.cg_iters, self.damping = float(radius), int(cg_iters), float(damping)
        self.backtrack_ratio, self.backtrack_steps = float(backtrack_ratio), int(backtrack_steps)

    def init_learner(self, params, lay, env, num_envs):
        return jax.vmap(self.optimizer().init)(params), self.init_state(lay.num_params)

    def policy_step(self, policy, params, batch, carry0, lr_scale):
        """One TRPO step of every parameter set ``[P, ...]`` on a runner batch; returns the
        new parameters and per-set ``info`` ``[P]``."""

        def one(theta, mb, c0, scale):
            mask = mb.get("action_mask")

            def logits_fn(th):
                return _one_set_logits(policy, th, mb["obs"], c0, mb["start"], mask)

            def sur(th):
                return surrogate(mb["logits"], logits_fn(th), mb["action"], mb["advantages"],
                                 mb["mask"])

            def kl(th):
                return mean_kl(mb["logits"], logits_fn(th), mb["mask"])

            return trpo_step(sur, kl, theta, self.radius, scale, self.cg_iters, self.damping,
                             self.backtrack_ratio, self.backtrack_steps)

        keys = ("obs", "start", "logits", "action", "advantages", "mask", "action_mask")
        mb = {k: batch[k] for k in keys if k in batch}
        return jax.vmap(one)(params, mb, carry0, lr_scale)

    def make_update(self, pop):
        """``update(ps, batch, carry0, key, lr) -> (ps, metrics)`` for the runner."""
        value_fit = make_sgd(dataclasses.replace(pop, update=_ValueFit(self.cfg)))
        step = jax.jit(partial(self.policy_step, pop.policy))
        lay = pop.layout

        def update(ps, batch, carry0, key, lr):
            ps, metrics = value_fit(ps, batch, carry0, key, lr)
            params, info = step(ps.params, batch, carry0[0], ps.lr_scale)
            for k in ("policy_loss", "entropy", "kl", "clip_fraction"):
                metrics.pop(k, None)  # the value fit's, before the policy step
            metrics.update({k: lay.seed_mean(v.astype(jnp.float32)) for k, v in info.items()})
            return ps.replace(params=params), metrics

        return update


class KLStopPPO(PPO):
    """PPO deviations with ρ as an early stop (``deviation="ppo"`` with ``rho``).

    After every update the mean KL(π_start ‖ π_θ) from the parameters the deviation started
    from is measured on the batch just trained on (its valid steps; recurrent policies
    replay from the batch's stored states); a parameter set whose KL exceeds ``rho`` gets
    learning-rate scale 0 (:func:`kl_stop_scale`), so its further iterations leave it bit
    for bit. The update that crosses ρ is kept. Learner state: PPO's ``kl_coef``, ``start``
    (the start parameters ``[P, ...]``, reset by :meth:`restart`) and ``kl_from_start``
    ``[P]``.
    """

    name = "ppo-kl-stop"

    def __init__(self, cfg: PPOConfig, rho: float):
        super().__init__(cfg)
        if isinstance(rho, bool) or not rho > 0 or not math.isfinite(rho):
            raise ValueError(f"KLStopPPO: rho must be a positive number, got {rho!r}")
        self.rho = float(rho)

    def init_learner(self, params, lay, env, num_envs):
        opt_state = jax.vmap(self.optimizer().init)(params)
        return opt_state, self.restart(self.init_state(lay.num_params), params)

    @staticmethod
    def restart(learner, params):
        """``learner`` with the start of a new deviation at ``params`` (copied: the runner
        donates the parameters' buffers)."""
        num = jax.tree.leaves(params)[0].shape[0]
        return {"kl_coef": learner["kl_coef"], "start": jax.tree.map(jnp.copy, params),
                "kl_from_start": jnp.zeros((num,), jnp.float32)}

    def make_update(self, pop):
        """``update(ps, batch, carry0, key, lr) -> (ps, metrics)`` for the runner."""
        sgd = make_sgd(pop)
        policy, lay, rho = pop.policy, pop.layout, self.rho

        @jax.jit
        def measure(start, params, batch, carry0, lr_scale):
            old = _batch_logits(policy, start, batch, carry0)
            new = _batch_logits(policy, params, batch, carry0)
            kl = jax.vmap(mean_kl)(old, new, batch["mask"])
            return kl, kl_stop_scale(kl, rho, lr_scale)

        def update(ps, batch, carry0, key, lr):
            learner = ps.learner
            ps, metrics = sgd(ps.replace(learner={"kl_coef": learner["kl_coef"]}), batch,
                              carry0, key, lr)
            kl, lr_scale = measure(learner["start"], ps.params, batch, carry0[0], ps.lr_scale)
            metrics["kl_from_start"] = lay.seed_mean(kl)
            metrics["stopped"] = lay.seed_mean((kl > rho).astype(jnp.float32))
            learner = dict(learner, kl_coef=ps.learner["kl_coef"], kl_from_start=kl)
            return ps.replace(learner=learner, lr_scale=lr_scale), metrics

        return update


def deviation_rule(cfg: PPOConfig, deviation: str = "ppo", rho: float | None = None,
                   n_inner: int = 1):
    """The update rule of ERMAS's deviations: SRAI's PPO (``"ppo"``, no ρ), PPO with the
    KL early stop (``"ppo"`` with ρ), or TRPO steps of radius ρ/n_inner (``"trpo"``)."""
    if deviation == "trpo":
        if rho is None:
            raise ValueError("deviation='trpo' needs rho, the trust-region radius")
        return TRPO(cfg, rho / n_inner)
    if deviation != "ppo":
        raise ValueError(f"deviation must be 'ppo' or 'trpo', got {deviation!r}")
    return PPO(cfg) if rho is None else KLStopPPO(cfg, rho)


__all__ = ["BACKTRACK_RATIO", "BACKTRACK_STEPS", "CG_DAMPING", "CG_ITERS", "KLStopPPO", "TRPO",
           "conjugate_gradient", "deviation_rule", "fisher_vector_product", "kl_stop_scale",
           "line_search", "masked_mean", "mean_kl", "surrogate", "trpo_step"]
