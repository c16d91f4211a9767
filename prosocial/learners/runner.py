"""Training a tuple of populations over one rollout.

``Runner(env, populations, num_seeds, num_envs, num_steps)``; ``init(key)`` gives a
:class:`RunState`; ``iteration(state)`` collects one rollout of every population
(``prosocial.learners.rollout``), then for each population that learns: its motive's
intrinsic rewards, its update rule's targets (``prepare``), and the gradient steps of its
policy and its motive's model on the rollout's sequences (:func:`make_sgd`). Metrics of the
iteration are per seed: the episode metrics of the rollout, and each population's losses
(prefixed ``<population>/`` when a run has more than one population).

Populations that do not learn (``update=None`` or ``trainable=False``) keep their
parameters bit for bit. Within a learning population ``PopState.lr_scale`` ``[P]`` scales
each parameter set's learning rate: setting it to 0 for all but agent i trains only agent i
(ERMAS's deviations), and the others' parameters stay bit for bit.
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from prosocial.envs.core import AutoReset, event_keys
from prosocial.layout import chunk_starts, chunked_scan, to_sequences
from prosocial.learners.rollout import RolloutState, init_rollout_state, make_collect
from prosocial.learners.sgd import make_sgd
from prosocial.motives.base import PolicyView, finished_episode_sums


@struct.dataclass
class PopState:
    """One population's learning state; parameter-major ``[P, ...]``."""

    params: Any
    opt_state: Any
    learner: Any  # the update rule's own state (PPO: the adaptive KL coefficient)
    motive_params: Any
    motive_opt_state: Any
    motive_carry: Any
    intrinsic_running: jax.Array  # [S, E, n] intrinsic return of the current episodes
    lr_scale: jax.Array  # [P] multiplies the learning rate: 0 trains a parameter set not at all


@struct.dataclass
class RunState:
    """Everything a run needs to continue: saved whole in checkpoints."""

    rollout: RolloutState
    pops: tuple
    update: jax.Array  # int, iterations done

    @property
    def env_steps(self):
        return self.rollout.env_steps


def _positive_int(name, value):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class Runner:
    """Collect-and-update iterations of ``populations`` in ``env`` (module docstring)."""

    def __init__(self, env, populations, num_seeds: int = 1, num_envs: int = 8,
                 num_steps: int = 128):
        self.num_seeds = _positive_int("num_seeds", num_seeds)
        self.num_envs = _positive_int("num_envs", num_envs)
        self.num_steps = _positive_int("num_steps", num_steps)
        self.env = env if isinstance(env, AutoReset) else AutoReset(env)
        self.populations = tuple(populations)
        self._check_populations()
        keys = event_keys(self.env)
        for pop in self.populations:
            pop.motive.check(self.env, keys)
            if pop.update is not None:
                pop.update.check(pop.layout.batch(self.num_envs), self.num_steps)
        lens = [min(p.update.seq_len(self.num_steps), self.num_steps)
                for p in self.populations if p.update is not None]
        self.chunk_len = math.gcd(*lens) if lens else self.num_steps
        bootstrap = tuple(p.update is not None and p.update.bootstrap
                          for p in self.populations)
        self._collect = jax.jit(make_collect(self.env, self.populations, self.num_steps,
                                             self.chunk_len, bootstrap), donate_argnums=1)
        self._prepare = {}
        self._sgd = {}
        for i, pop in enumerate(self.populations):
            if pop.learns:
                self._prepare[i] = jax.jit(partial(self._prepare_impl, i))
                self._sgd[i] = (pop.update.make_update(pop)
                                if hasattr(pop.update, "make_update") else make_sgd(pop))

    def _check_populations(self):
        n = self.env.num_agents
        if not self.populations:
            raise ValueError("a run needs at least one population")
        seen: dict[int, str] = {}
        names = set()
        for pop in self.populations:
            if pop.name in names:
                raise ValueError(f"two populations are named {pop.name!r}")
            names.add(pop.name)
            if pop.layout.num_seeds != self.num_seeds or pop.layout.num_agents != n:
                raise ValueError(f"population {pop.name!r} is laid out for "
                                 f"{pop.layout.num_seeds} seeds × {pop.layout.num_agents} "
                                 f"agents, the run has {self.num_seeds} × {n}")
            for a in pop.layout.agents:
                if not 0 <= a < n:
                    raise ValueError(f"population {pop.name!r}: agent {a} is not in "
                                     f"0..{n - 1}")
                if a in seen:
                    raise ValueError(f"agent {a} is in populations {seen[a]!r} and "
                                     f"{pop.name!r}")
                seen[a] = pop.name
        roles = self.env.roles
        for pop in self.populations if len(roles) > 1 else ():
            if pop.role not in roles or not set(pop.layout.agents) <= set(roles[pop.role]):
                raise ValueError(
                    f"population {pop.name!r}: in {self.env.env_id}, whose roles are "
                    f"{dict(roles)}, a population holds agents of one role and says which "
                    f"(role_population); it has role {pop.role!r}, agents "
                    f"{pop.layout.agents}")
        missing = sorted(set(range(n)) - set(seen))
        if missing:
            raise ValueError(f"agents {missing} belong to no population")

    @property
    def num_agents(self) -> int:
        return self.env.num_agents

    @property
    def steps_per_iteration(self) -> int:
        """Environment steps per seed in one iteration."""
        return self.num_envs * self.num_steps

    # --- init ------------------------------------------------------------------------------

    def init(self, key: jax.Array) -> RunState:
        s, n = self.num_seeds, self.num_agents
        k_param, k_env, k_run, k_motive = jax.random.split(key, 4)
        # Agent i of seed s draws the same initial parameters whatever the populations.
        param_keys = jax.random.split(k_param, s * n).reshape(s, n, -1)
        motive_keys = jax.random.split(k_motive, s * n).reshape(s, n, -1)
        pops = []
        for pop in self.populations:
            lay = pop.layout
            pkeys, mkeys = lay.per_param_keys(param_keys), lay.per_param_keys(motive_keys)
            params = pop.policy.init(pkeys)
            learner, opt_state = (), ()
            mparams, mopt = (), ()
            if pop.update is not None and hasattr(pop.update, "init_learner"):
                # Rules with their own state and update (DQN: replay buffers, targets).
                opt_state, learner = pop.update.init_learner(params, lay, self.env,
                                                             self.num_envs)
            elif pop.update is not None:
                opt_state = jax.vmap(pop.update.optimizer().init)(params)
                learner = pop.update.init_state(lay.num_params)
            if pop.motive.learned:
                mparams = pop.motive.init_params(mkeys, self.env, pop.policy)
                mtx = pop.motive.optimizer() or (pop.update.optimizer() if pop.update
                                                 else None)
                mopt = jax.vmap(mtx.init)(mparams) if mtx is not None else ()
            pops.append(PopState(
                params=params, opt_state=opt_state, learner=learner, motive_params=mparams,
                motive_opt_state=mopt, motive_carry=pop.motive.init_carry(lay, self.num_envs),
                intrinsic_running=jnp.zeros((s, self.num_envs, lay.n), jnp.float32),
                lr_scale=jnp.ones((lay.num_params,), jnp.float32)))
        rollout = init_rollout_state(self.env, self.populations, s, self.num_envs, k_env,
                                     k_run)
        state = RunState(rollout=rollout, pops=tuple(pops), update=jnp.zeros((), jnp.int32))
        # Leaves built from one zeros array share a buffer, which donation rejects.
        return jax.tree.map(jnp.copy, state)

    # --- one iteration ----------------------------------------------------------------------

    def iteration(self, state: RunState, timings: dict | None = None
                  ) -> tuple[RunState, dict[str, jax.Array]]:
        """Collect one rollout and update every learning population on it. With a
        ``timings`` dict, the seconds spent collecting and updating are added to its
        ``"collect"`` and ``"update"`` entries (this waits for each part to finish)."""
        t0 = time.perf_counter()
        env_steps = state.rollout.env_steps
        lrs = {i: pop.update.learning_rate(env_steps) for i, pop in enumerate(self.populations)
               if pop.learns}  # before this batch's steps, as RLlib
        params = tuple(ps.params for ps in state.pops)
        rollout_state, rollout, chunk_carries, metrics = self._collect(params, state.rollout)
        metrics = dict(metrics)
        if timings is not None:
            jax.block_until_ready(rollout)
            t1 = time.perf_counter()
            timings["collect"] = timings.get("collect", 0.0) + t1 - t0
        pops = list(state.pops)
        many = len(self.populations) > 1
        for i, pop in enumerate(self.populations):
            if not pop.learns:
                continue
            # A rule with its own update keeps its optimiser's and its own state (DQN: replay
            # buffers) out of the targets' program, which would otherwise copy them; other
            # rules' targets may read theirs (ERMAS's WPPO reads λ).
            kept = pops[i]
            own = hasattr(pop.update, "make_update")
            batch, carry0, ps, shaping = self._prepare[i](
                kept.replace(opt_state=(), learner=()) if own else kept, rollout,
                chunk_carries[i])
            ps = ps.replace(opt_state=kept.opt_state, learner=kept.learner)
            key, rollout_state = _split_update_key(rollout_state)
            ps, pop_metrics = self._sgd[i](ps, batch, carry0, key, lrs[i])
            pops[i] = ps
            pop_metrics.update(shaping)
            for k, v in pop_metrics.items():
                # Per-agent diagnostics of all agents ([S, N]) keep their names.
                name = f"{pop.name}/{k}" if many and not _global(k) else k
                metrics[name] = v
        state = RunState(rollout=rollout_state, pops=tuple(pops), update=state.update + 1)
        if timings is not None:
            jax.block_until_ready((state, metrics))
            timings["update"] = timings.get("update", 0.0) + time.perf_counter() - t1
        return state, metrics

    def _prepare_impl(self, i, ps: PopState, rollout, chunk_carry):
        """Intrinsic rewards, the update rule's targets and the sequence layout
        ``[P, chunks·B, L, ...]`` of population i's part of a rollout."""
        pop = self.populations[i]
        lay, rule = pop.layout, pop.update
        seq_len = min(rule.seq_len(self.num_steps), self.num_steps)
        view = PolicyView(layout=lay, logits=rollout.policy[i]["logits"],
                          features=partial(pop.policy.features, ps.params)
                          if hasattr(pop.policy, "features") else None,
                          scan=partial(chunked_scan, seq_len=seq_len))
        motive_carry, intrinsic, diagnostics, extras = pop.motive.intrinsic(
            ps.motive_params, ps.motive_carry, rollout, view)
        running, intrinsic_return = finished_episode_sums(
            ps.intrinsic_running, intrinsic, rollout.start, rollout.done)
        ps = ps.replace(motive_carry=motive_carry, intrinsic_running=running)
        metrics = dict(diagnostics)
        if pop.motive.name != "none":
            metrics["intrinsic_return"] = lay.scatter(intrinsic_return)
        to_params = lay.time_to_params
        per_param = jax.vmap(lay.per_param)
        out = rollout.policy[i]
        batch = {
            "reward": to_params(rollout.reward) + to_params(intrinsic),
            "value": out["value"], "final_value": out["final_value"],
            "bootstrap_value": out["bootstrap_value"],
            "terminated": to_params(rollout.terminated), "truncated": per_param(
                rollout.truncated),
        }
        if hasattr(rule, "inputs"):  # a rule that reads other populations (ERMAS's WPPO)
            batch.update(rule.inputs(self, i, ps, rollout))
        targets = rule.prepare(batch)
        motive_carry0 = extras.pop("initial_carry", ())
        if rollout.action_mask is not None:
            targets["action_mask"] = to_params(rollout.action_mask)[
                ..., :out["logits"].shape[-1]]
        seqs = {"obs": jax.vmap(pop.obs_to_params)(rollout.obs), "start": per_param(rollout.start),
                "action": to_params(rollout.action), "logits": out["logits"],
                "value": out["value"], "mask": to_params(rollout.active), "motive": extras,
                **targets}
        seqs = jax.tree.map(partial(to_sequences, seq_len=seq_len), seqs)
        every = seq_len // self.chunk_len
        carry0 = jax.tree.map(lambda x: chunk_starts(x[::every]), chunk_carry)
        return seqs, (carry0, jax.tree.map(chunk_starts, motive_carry0)), ps, metrics


def _split_update_key(rs: RolloutState):
    keys = jax.vmap(jax.random.split)(rs.key)
    return keys[0, 1], rs.replace(key=keys[:, 0])


def _global(name: str) -> bool:
    """Metrics already laid out over all agents (scattered to global agent ids)."""
    return name == "intrinsic_return"


__all__ = ["PopState", "RunState", "Runner"]
