"""The ERMAS outer loop (specs §9.9.5) and its MARL baseline, checkpointed and resumable.

One outer iteration, per seed (all seeds batched):

1. Snapshot θ⁰, φ⁰ (the main run's parameters).
2. J^old: ``eval_episodes`` whole episodes with (θ⁰, φ⁰), every agent's mean return.
3. Deviations: one copy of the game per (seed, agent i) — the deviation runner's seed axis
   is seeds × agents, so all deviations run batched and independently. In copy (s, i) agent
   i starts from θ⁰_i and trains with plain PPO on its own reward for ``n_inner``
   iterations; the other agents act with θ⁰ (learning rate scaled by 0: bit for bit) and
   the planner with φ⁰ (not trainable; the untrained initial planner with
   ``ref_deviation_planner_untrained``, B-28). Then J^new of agent i in copy (s, i).
4. Main update from (θ⁰, φ⁰): ``n_main`` iterations, planner plain PPO, agents WPPO
   (``prosocial.ermas.objective``) with the λ of the previous iteration.
5. Dual step λ ← clip(λ + α(Δ − ε), 0, 100), Δ = J^new − J^old (not with ``freeze_lambda``).
6. Meta step (``use_meta``): θ ← θ + min(βλ_i, 2)(θ − θ'_i), θ'_i agent i's deviation.

The next iteration's deviations start from the new θ. Deviations start with a fresh Adam
state each iteration; their environments keep running across iterations. With shared
agent parameters (``share_agent_policy``, B-32) each deviation is still agent i's own copy
of the shared parameters, and the meta steps move the shared set in turn.

``method="marl"`` skips steps 3, 5 and 6 and trains the agents with plain PPO (the MARL,
oracle, DR and RR baselines differ only in the environment's options). The paper's form:
``objective_normalised=False`` and ``warmup_steps`` main iterations with the fixed λ_0
before the first outer iteration. Deviations are SRAI's PPO iterations (D-40); the options
of §9.9.3 (``prosocial.ermas.trpo``): ``deviation="trpo"`` makes each of the ``n_inner``
iterations one TRPO step of radius ρ/n_inner (the paper's Algorithm 2), and ``rho`` with
``deviation="ppo"`` stops an agent's deviation once its mean KL from θ⁰ exceeds ρ (its
learning-rate scale drops to 0, so it stays bit for bit, like the co-players).

The loop is plain Python over compiled pieces (the runners' iterations, one compiled
evaluation per layout, compiled glue); :func:`train_ermas` adds the run directory, the
metrics log and checkpoints every ``checkpoint_every`` outer iterations, from which an
interrupted run resumes bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from prosocial.envs import registry
from prosocial.envs.core import AutoReset
from prosocial.ermas.dual import LAMBDA_MAX, dual_step, per_step_regret
from prosocial.ermas.meta import META_CAP, reptile_per_agent, reptile_shared
from prosocial.ermas.objective import WPPO
from prosocial.ermas.policy import SeparateMLP
from prosocial.ermas.trpo import KLStopPPO, deviation_rule
from prosocial.learners.population import role_population
from prosocial.learners.ppo import PPO
from prosocial.learners.ppo_config import PPOConfig
from prosocial.learners.rollout import init_rollout_state, make_collect
from prosocial.learners.runner import Runner, RunState
from prosocial.nets import NetConfig

LINEAR = NetConfig(hidden_sizes=(), lstm_size=None)
"""SRAI's ``KerasLinear``: logits and value each one dense layer on the observation."""


@dataclass(frozen=True)
class ErmasConfig:
    """ERMAS's settings (specs §9.9.6; defaults: SRAI's bimatrix ERMAS run, ε = 5)."""

    method: Literal["ermas", "marl"] = "ermas"
    epsilon: float = 5.0
    """ε, in units of episode return; negative allowed."""
    alpha_lr: float = 0.005
    """α_λ, the multipliers' step size."""
    initial_lambda: float = 8.0
    lambda_max: float = LAMBDA_MAX
    inner_me_iterations: int = 2
    """n_inner: PPO iterations of each deviation."""
    inner_main_iterations: int = 3
    """n_main: PPO iterations of the main update."""
    metascale: float = 0.2
    """β of the meta step (capped at ``meta_cap``)."""
    meta_cap: float = META_CAP
    use_meta: bool = True
    eval_episodes: int = 10
    """E_eval: whole episodes behind each J estimate (run in parallel environments)."""
    freeze_lambda: bool = False
    objective_normalised: bool = True
    warmup_steps: int = 0
    """Main iterations with the fixed λ_0 before the outer loop (the paper's warm-up)."""
    deviation: Literal["ppo", "trpo"] = "ppo"
    """How each agent's deviation is searched (§9.9.3, D-40): ``"ppo"``, SRAI's
    ``inner_me_iterations`` PPO iterations (default); ``"trpo"``, the paper's TRPO steps of
    radius ``rho``/n_inner each (natural gradient by 10 conjugate-gradient iterations with
    damping 0.01, then a backtracking line search of 10 trial steps halving each time that
    accepts the first with mean KL ≤ radius and an improved surrogate;
    ``prosocial.ermas.trpo``)."""
    rho: float | None = None
    """ρ, the trust-region radius KL(π_i ‖ π'_i) ≤ ρ of the deviations (nats): required
    with ``"trpo"`` (each step ρ/n_inner); with ``"ppo"`` an early stop (an agent's
    deviation stops learning once its mean KL from the deviation's start exceeds ρ);
    ``None`` (default): no ρ (SRAI)."""
    clip_planner: float | None = None
    """ε_r of the planner-advantage term (default: the agents' clip)."""
    ref_deviation_planner_untrained: bool = False
    """Deviations play against the untrained initial planner (SRAI, B-28)."""

    def __post_init__(self):
        if self.method not in ("ermas", "marl"):
            raise ValueError(f"ermas.method must be 'ermas' or 'marl', got {self.method!r}")
        if self.deviation not in ("ppo", "trpo"):
            raise ValueError(f"ermas.deviation must be 'ppo' (SRAI's PPO iterations) or "
                             f"'trpo' (TRPO steps of radius rho/inner_me_iterations), got "
                             f"{self.deviation!r}")
        if self.rho is not None and (isinstance(self.rho, bool)
                                     or not isinstance(self.rho, (int, float))
                                     or not math.isfinite(self.rho) or self.rho <= 0):
            raise ValueError(f"ermas.rho must be a positive number (the trust-region radius "
                             f"in nats) or None, got {self.rho!r}")
        if self.deviation == "trpo" and self.rho is None:
            raise ValueError("ermas.deviation='trpo' needs ermas.rho, the trust-region "
                             "radius (each of the inner_me_iterations TRPO steps has radius "
                             "rho/inner_me_iterations)")
        for name in ("inner_me_iterations", "inner_main_iterations", "eval_episodes"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"ermas.{name} must be a positive integer, got {v!r}")
        if isinstance(self.warmup_steps, bool) or int(self.warmup_steps) != self.warmup_steps \
                or self.warmup_steps < 0:
            raise ValueError(f"ermas.warmup_steps must be an integer ≥ 0, "
                             f"got {self.warmup_steps!r}")
        for name in ("epsilon", "alpha_lr", "initial_lambda", "lambda_max", "metascale",
                     "meta_cap"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"ermas.{name} must be finite, got {getattr(self, name)!r}")
        for name in ("alpha_lr", "metascale", "meta_cap"):
            if getattr(self, name) < 0:
                raise ValueError(f"ermas.{name} must be ≥ 0, got {getattr(self, name)!r}")
        if not 0 <= self.initial_lambda <= self.lambda_max:
            raise ValueError(f"ermas.initial_lambda must be in [0, lambda_max = "
                             f"{self.lambda_max}], got {self.initial_lambda!r}")


@dataclass(frozen=True)
class ErmasRunConfig:
    """A whole ERMAS (or MARL) run: game, learners, sizes, budget."""

    env: str = "bimatrix-constrained"
    env_options: dict = field(default_factory=dict)
    num_seeds: int = 1
    num_envs: int = 12
    """Environments per seed (SRAI: 3 workers × 4 envs)."""
    num_steps: int = 200
    """Fragment length (``truncate_episodes``, rollout_fragment_length 200)."""
    outer_iterations: int = 100
    agent_ppo: PPOConfig = PPOConfig()
    planner_ppo: PPOConfig = PPOConfig()
    agent_net: NetConfig = LINEAR
    planner_net: NetConfig = LINEAR
    agent_mlp_hidden: int | None = None
    """Separate policy and value MLPs with this many ReLU units (SRAI's N-matrix agents,
    ``prosocial.ermas.policy.SeparateMLP``) instead of ``agent_net``."""
    planner_mlp_hidden: int | None = None
    share_agent_policy: bool = False
    """One parameter set for all agents (SRAI, B-32); default separate (D-38)."""
    train_planner: bool = True
    ermas: ErmasConfig = ErmasConfig()
    seed: int = 0
    checkpoint_every: int = 10

    def make_env(self):
        return registry.make(self.env, **dict(self.env_options))


@struct.dataclass
class ErmasState:
    """Everything an ERMAS run needs to continue (saved whole in checkpoints)."""

    main: RunState
    dev_rollout: Any  # the deviation runner's rollout state (its envs keep running)
    lam: jax.Array  # [S, n]
    key: jax.Array
    iteration: jax.Array  # outer iterations done
    warm: jax.Array  # warm-up iterations done


def episode_length(env) -> int:
    return int(env.max_steps) + int(getattr(env, "ref_bimatrix_extra_step", False))


class Ermas:
    """The outer loop of one run (module docstring): ``init(key)``, ``iteration(state)``."""

    def __init__(self, cfg: ErmasRunConfig, env=None):
        self.cfg = cfg
        self.env = env if env is not None else cfg.make_env()
        roles = self.env.roles
        if set(roles) != {"agents", "planner"}:
            raise ValueError(f"ERMAS needs an env with roles 'agents' and 'planner'; "
                             f"{self.env.env_id} has {sorted(roles)}")
        self.agents = tuple(roles["agents"])
        (self.planner_id,) = roles["planner"]
        self.n = len(self.agents)
        e, s = cfg.ermas, cfg.num_seeds
        self.ermas = e.method == "ermas"
        agent_rule = (WPPO(cfg.agent_ppo, 1, cfg.planner_ppo, self.n, cfg.share_agent_policy,
                           e.clip_planner, e.objective_normalised)
                      if self.ermas else PPO(cfg.agent_ppo))
        self.main_pops = self._pops(s, agent_rule, cfg.share_agent_policy,
                                    planner_trainable=cfg.train_planner)
        self.main = Runner(self.env, self.main_pops, s, cfg.num_envs, cfg.num_steps)
        self.length = episode_length(self.env)
        self._eval_main = self._make_eval(self.main_pops, s)
        if self.ermas:
            sd = s * self.n
            self.dev_rule = deviation_rule(cfg.agent_ppo, e.deviation, e.rho,
                                           e.inner_me_iterations)
            self.dev_pops = self._pops(sd, self.dev_rule, False, planner_trainable=False)
            self.dev = Runner(self.env, self.dev_pops, sd, cfg.num_envs, cfg.num_steps)
            self._eval_dev = self._make_eval(self.dev_pops, sd)
            self._dev_template = self.dev.init(jax.random.PRNGKey(cfg.seed + 1))
            self._dev_start = jax.jit(self._dev_start_impl)
            self._finish = jax.jit(self._finish_impl)

    def _pops(self, num_seeds, agent_rule, shared, planner_trainable):
        cfg = self.cfg
        agents = role_population(self.env, "agents", agent_rule, cfg.agent_net,
                                 num_seeds=num_seeds, shared=shared, name="agents",
                                 policy=self._mlp("agents", cfg.agent_mlp_hidden))
        planner = role_population(self.env, "planner", PPO(cfg.planner_ppo), cfg.planner_net,
                                  num_seeds=num_seeds, name="planner",
                                  trainable=planner_trainable,
                                  policy=self._mlp("planner", cfg.planner_mlp_hidden))
        return (agents, planner)

    def _mlp(self, role, hidden):
        if hidden is None:
            return None
        return SeparateMLP(self.env.observation_spaces[role], self.env.action_spaces[role].n,
                           hidden)

    # --- evaluation ----------------------------------------------------------------------

    def _make_eval(self, pops, num_seeds):
        """``eval(params, key) -> returns [S, N]``: mean return of ``eval_episodes`` whole
        episodes, one per environment, from a fresh reset."""
        env = AutoReset(self.env)
        k = self.cfg.ermas.eval_episodes
        collect = make_collect(env, pops, self.length, bootstrap=(False,) * len(pops))

        def run(params, key):
            k_reset, k_run = jax.random.split(key)
            rs = init_rollout_state(env, pops, num_seeds, k, k_reset, k_run)
            _, rollout, _, _ = collect(params, rs)
            return rollout.reward.sum(axis=0).mean(axis=1)  # [S, N]

        return jax.jit(run)

    def evaluate(self, state: ErmasState, key) -> jax.Array:
        """J of every agent (and the planner) under the main run's parameters: ``[S, N]``."""
        return self._eval_main(tuple(ps.params for ps in state.main.pops), key)

    # --- state ---------------------------------------------------------------------------

    def init(self, key: jax.Array | None = None) -> ErmasState:
        key = jax.random.PRNGKey(self.cfg.seed) if key is None else key
        k_main, k_loop = jax.random.split(key)
        main = self.main.init(k_main)
        lam = jnp.full((self.cfg.num_seeds, self.n), self.cfg.ermas.initial_lambda,
                       jnp.float32)
        # Copies: the runners donate their states' buffers, the template stays intact.
        dev_rollout = jax.tree.map(jnp.copy, self._dev_template.rollout) if self.ermas else ()
        return ErmasState(main=main, dev_rollout=dev_rollout, lam=lam, key=k_loop,
                          iteration=jnp.zeros((), jnp.int32), warm=jnp.zeros((), jnp.int32))

    def _set_lambda(self, main: RunState, lam) -> RunState:
        if not self.ermas:
            return main
        agents = main.pops[0]
        agents = agents.replace(learner=dict(agents.learner, lam=lam))
        return main.replace(pops=(agents,) + tuple(main.pops[1:]))

    def _dev_start_impl(self, main: RunState, dev_rollout):
        """The deviation runner's state: copy (s, i) holds θ⁰ of seed s for every agent,
        only agent i learns; the planner is φ⁰ of seed s (or the untrained one)."""
        n, t = self.n, self._dev_template
        agents, planner = main.pops
        shared = self.cfg.share_agent_policy

        def agent_copies(x):
            x = x[:, None] if shared else x.reshape((-1, n) + x.shape[1:])  # [S, 1|n, ...]
            x = jnp.broadcast_to(x[:, None], (x.shape[0], n, n) + x.shape[2:])
            return x.reshape((-1,) + x.shape[3:])  # copy (s, i), agent j

        params = jax.tree.map(agent_copies, agents.params)
        lr_scale = jnp.tile(jnp.eye(n, dtype=jnp.float32).reshape(-1), self.cfg.num_seeds)
        dev_agents = t.pops[0].replace(params=params, lr_scale=lr_scale)
        if self.cfg.ermas.ref_deviation_planner_untrained:
            planner_params = t.pops[1].params
        else:
            planner_params = jax.tree.map(lambda x: jnp.repeat(x, n, axis=0), planner.params)
        dev_planner = t.pops[1].replace(params=planner_params)
        # Fresh buffers (the deviation runner donates them; the template must survive).
        fresh = jax.tree.map(jnp.copy, t.replace(pops=(dev_agents, dev_planner)))
        return fresh.replace(rollout=dev_rollout)

    def deviation_start(self, main: RunState, dev_rollout) -> RunState:
        """The deviation runner's state at the start of an outer iteration's deviations
        (:meth:`_dev_start_impl`); with the KL early stop its KL is measured from here."""
        dev = self._dev_start(main, dev_rollout)
        if isinstance(self.dev_rule, KLStopPPO):
            agents = dev.pops[0]
            agents = agents.replace(learner=KLStopPPO.restart(agents.learner, agents.params))
            dev = dev.replace(pops=(agents,) + tuple(dev.pops[1:]))
        return dev

    def _finish_impl(self, main: RunState, dev: RunState, lam, j_old, j_new):
        """Dual and meta steps after the main update."""
        e = self.cfg.ermas
        gain = j_new - j_old
        lam_next = dual_step(lam, gain, e.epsilon, e.alpha_lr, e.lambda_max, e.freeze_lambda)
        agents = main.pops[0]
        params = agents.params
        if e.use_meta:
            theta_dev = jax.tree.map(lambda x: _diag(x, self.n), dev.pops[0].params)
            if self.cfg.share_agent_policy:
                params = jax.vmap(lambda th, d, lm: reptile_shared(th, d, lm, e.metascale,
                                                                   e.meta_cap))(
                    params, theta_dev, lam_next)
            else:
                flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), theta_dev)
                params = reptile_per_agent(params, flat, lam_next.reshape(-1), e.metascale,
                                           e.meta_cap)
        main = main.replace(pops=(agents.replace(params=params),) + tuple(main.pops[1:]))
        return main, lam_next, gain

    # --- iterations ----------------------------------------------------------------------

    def warmup(self, state: ErmasState) -> ErmasState:
        """The paper's warm-up: main iterations with the fixed λ_0 (``warmup_steps``)."""
        main = self._set_lambda(state.main, state.lam)
        while int(state.warm) < self.cfg.ermas.warmup_steps:
            main, _ = self.main.iteration(main)
            state = state.replace(main=main, warm=state.warm + 1)
        return state

    def iteration(self, state: ErmasState) -> tuple[ErmasState, dict[str, np.ndarray]]:
        """One outer iteration (module docstring); metrics are per seed ``[S, ...]``."""
        e = self.cfg.ermas
        t0 = time.perf_counter()
        state = self.warmup(state)
        key, k_old, k_new = jax.random.split(state.key, 3)
        j_old = self.evaluate(state, k_old)  # [S, N]
        metrics: dict[str, Any] = {}
        dev = None
        if self.ermas:
            dev = self.deviation_start(state.main, state.dev_rollout)
            for _ in range(e.inner_me_iterations):
                dev, dev_metrics = self.dev.iteration(dev)
            j_dev = self._eval_dev(tuple(ps.params for ps in dev.pops), k_new)  # [S·n, N]
            j_dev = j_dev.reshape(self.cfg.num_seeds, self.n, -1)
            idx = jnp.asarray(self.agents)
            j_new = j_dev[:, jnp.arange(self.n), idx]  # copy (s, i), agent i
        main = self._set_lambda(state.main, state.lam)
        for _ in range(e.inner_main_iterations):
            main, main_metrics = self.main.iteration(main)
        lam = state.lam
        if self.ermas:
            j_old_agents = j_old[:, jnp.asarray(self.agents)]
            main, lam, gain = self._finish(main, dev, state.lam, j_old_agents, j_new)
            metrics.update(lam=lam, j_old=j_old_agents, j_new=j_new, regret=gain,
                           regret_per_step=per_step_regret(gain, self.length))
        metrics["agent_return"] = j_old[:, jnp.asarray(self.agents)]
        metrics["planner_return"] = j_old[:, self.planner_id]
        for k in ("agents/policy_loss", "agents/entropy", "planner/value_loss"):
            if k in main_metrics:
                metrics[k.replace("/", "_")] = main_metrics[k]
        state = ErmasState(main=main, dev_rollout=dev.rollout if dev is not None else (),
                           lam=lam, key=key, iteration=state.iteration + 1, warm=state.warm)
        metrics = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
        metrics["seconds"] = np.full((self.cfg.num_seeds,), time.perf_counter() - t0)
        return state, metrics

    @property
    def env_steps_per_iteration(self) -> int:
        """Main-update environment steps per seed in one outer iteration."""
        return self.cfg.ermas.inner_main_iterations * self.cfg.num_envs * self.cfg.num_steps


def _diag(x, n):
    """Deviation-layout leaves ``[S·n·n, ...]`` (copy (s, i), agent j) → ``[S, n, ...]``
    taking j = i."""
    x = x.reshape((-1, n, n) + x.shape[1:])
    i = jnp.arange(n)
    return x[:, i, i]


def replace_ermas(cfg: ErmasRunConfig, **changes) -> ErmasRunConfig:
    """``cfg`` with fields of its :class:`ErmasConfig` changed."""
    return dataclasses.replace(cfg, ermas=dataclasses.replace(cfg.ermas, **changes))


__all__ = ["LINEAR", "Ermas", "ErmasConfig", "ErmasRunConfig", "ErmasState",
           "episode_length", "replace_ermas"]
