"""Acting in an environment: one rollout of every population, as one compiled scan.

:func:`make_collect` builds ``collect(state) -> (state, Rollout, extras)`` for an environment
(wrapped in :class:`~prosocial.envs.core.AutoReset`) and a tuple of populations: every step
each population's policy acts on its agents' observations (parameter-major, see
``prosocial.layout``), the actions are assembled into the environment's ``[S, E, N]``
array, all environments step, the episode accumulators add the step, and where an episode
was truncated each population's value of the final observation is computed for the
bootstrap. Training, ``prosocial eval``, the demo and the benchmarks act through it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from prosocial import metrics as M
from prosocial.envs.core import AutoReset, episode_done, event_keys
from prosocial.layout import chunked_scan
from prosocial.learners.episodes import add_finished, mean_finished, zero_sums
from prosocial.learners.population import sample_actions


@struct.dataclass
class Rollout:
    """One rollout, time-major. Environment data is env-major, policy outputs are
    parameter-major per population.

    Attributes:
      obs: the observations the agents acted on, leaves ``[T, S, E, N, ...]`` (with
        several roles, keyed by role with leaves ``[T, S, E, n_role, ...]``).
      action: int32 ``[T, S, E, N]``.
      reward: extrinsic rewards ``[T, S, E, N]``.
      start: bool ``[T, S, E]``, step t is the first of an episode.
      done: bool ``[T, S, E]``, step t is the last of an episode.
      terminated: bool ``[T, S, E, N]``, the agent's episode ends in a terminal state at t.
      truncated: bool ``[T, S, E]``, the episode ends by its time limit at t.
      active: bool ``[T, S, E, N]``, the agent was still in the episode when acting at t.
      events: ``{name: [T, S, E, N]}`` from ``info["events"]``.
      signals: ``{name: [T, S, E, ...]}`` from ``info["signals"]`` (what motives declare).
      action_mask: bool ``[T, S, E, N, A]``, the actions allowed at t, or ``None`` when the
        environment allows every action always (the policies' logits are masked with it)
      policy: per population, ``{"logits": [T, P, B, A], "value": [T, P, B],
        "final_value": [T, P, B]}`` (``final_value``: the value of a truncated episode's
        final observation, 0 elsewhere) and ``"bootstrap_value": [P, B]`` (the value of the
        observation after the last step).
      env_steps: int, environment steps per seed before this rollout.
    """

    obs: Any
    action: jax.Array
    reward: jax.Array
    start: jax.Array
    done: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    active: jax.Array
    events: dict
    signals: dict
    action_mask: Any
    policy: tuple
    env_steps: jax.Array


@struct.dataclass
class RolloutState:
    """What acting carries from one rollout to the next (the populations' recurrent states
    are in ``carries``)."""

    env_state: Any  # [S, E]
    obs: Any  # [S, E, N, ...], the observation the next step acts on
    start: jax.Array  # bool[S, E]: the next step starts an episode
    alive: jax.Array  # bool[S, E, N]: the agent has not terminated in the current episode
    carries: tuple  # per population [P, B, H]
    episode: M.EpisodeAccumulator  # [S, E]
    key: jax.Array  # [S]
    env_steps: jax.Array  # int, per seed


def init_rollout_state(env: AutoReset, populations, num_seeds: int, num_envs: int,
                       k_env: jax.Array, k_run: jax.Array) -> RolloutState:
    s, e, n = num_seeds, num_envs, env.num_agents
    obs, env_state = jax.vmap(jax.vmap(env.reset))(
        jax.random.split(k_env, s * e).reshape(s, e, -1))
    episode = jax.vmap(jax.vmap(lambda _: M.accumulator_init(n, event_keys(env))))(
        jnp.zeros((s, e)))
    carries = tuple(pop.policy.initial_carry((pop.layout.num_params, pop.layout.batch(e)))
                    for pop in populations)
    return RolloutState(env_state=env_state, obs=obs, start=jnp.ones((s, e), bool),
                        alive=jnp.ones((s, e, n), bool), carries=carries, episode=episode,
                        key=jax.random.split(k_run, s), env_steps=jnp.zeros((), jnp.int32))


MASKED = -1e9
"""Logit of an action an agent may not take."""


def constant_all_allowed(env, env_state) -> bool:
    """True when ``env.action_mask`` is a trace-time constant allowing every action (then
    masking is skipped)."""
    mask = env.action_mask(jax.tree.map(lambda x: x[0, 0], env_state))
    return not isinstance(mask, jax.core.Tracer) and bool(np.all(np.asarray(mask)))


def mask_logits(outputs, mask):
    """Policy outputs with the logits of forbidden actions set to :data:`MASKED`."""
    return dict(outputs, logits=jnp.where(mask, outputs["logits"], MASKED))


def make_collect(env, populations, num_steps: int, chunk_len: int | None = None,
                 bootstrap: tuple[bool, ...] | None = None, greedy: bool = False,
                 record: bool = False):
    """``collect(params, state) -> (state, rollout, chunk_carries, episode_means[, frames])``.

    ``params`` is a tuple with each population's parameters. ``chunk_len`` is the interval
    at which the populations' recurrent states are kept (``chunk_carries``: per population
    ``[chunks, P, B, H]``, the states at the starts of the learners' sequences).
    ``bootstrap[i]`` says whether population i needs the final-observation values of
    truncated episodes (skipped, and zero, otherwise). With ``record`` the rendered frames
    of environment (0, 0) are returned too.
    """
    env = env if isinstance(env, AutoReset) else AutoReset(env)
    names = event_keys(env)
    n = env.num_agents
    chunk_len = chunk_len or num_steps
    if bootstrap is None:
        bootstrap = (True,) * len(populations)

    def act(params, obs, carries, start, keys, mask):
        actions = jnp.zeros(start.shape + (n,), jnp.int32)
        outputs, new_carries = [], []
        for pop, p, carry in zip(populations, params, carries, strict=True):
            lay = pop.layout
            out, carry = pop.policy.step(p, pop.obs_to_params(obs), carry,
                                         lay.per_param(start))
            if mask is not None:
                out = mask_logits(out, lay.to_params(mask)[..., :out["logits"].shape[-1]])
            a = sample_actions(out, lay.per_param_keys(keys), greedy)
            a_env = lay.to_envs(a)
            actions = a_env if lay.all_agents else actions.at[:, :, list(lay.agents)].set(a_env)
            outputs.append(out)
            new_carries.append(carry)
        return actions, outputs, tuple(new_carries)

    def final_values(params, final_state, carries, truncated):
        e = truncated.shape[1]
        zeros = tuple(jnp.zeros((pop.layout.num_params, pop.layout.batch(e)), jnp.float32)
                      for pop in populations)
        if not any(bootstrap):
            return zeros

        def evaluate(_):
            obs = jax.vmap(jax.vmap(env.observe))(final_state)
            out = []
            for pop, p, carry, need, z in zip(populations, params, carries, bootstrap, zeros,
                                              strict=True):
                if not need:
                    out.append(z)
                    continue
                lay = pop.layout
                o, _ = pop.policy.step(p, pop.obs_to_params(obs), carry,
                                       jnp.zeros(z.shape, bool))
                out.append(jnp.where(lay.per_param(truncated), o["value"], 0.0))
            return tuple(out)

        return jax.lax.cond(jnp.any(truncated), evaluate, lambda _: zeros, None)

    def one_step(params, carry_in, _):
        rs, sums = carry_in
        e = rs.start.shape[1]
        keys = jax.vmap(lambda k: jax.random.split(k, 3))(rs.key)
        k_next, k_act, k_env = keys[:, 0], keys[:, 1], keys[:, 2]
        act_keys = jax.vmap(lambda k: jax.random.split(k, n))(k_act)
        mask = (None if constant_all_allowed(env, rs.env_state)
                else jax.vmap(jax.vmap(env.action_mask))(rs.env_state))
        actions, outputs, carries = act(params, rs.obs, rs.carries, rs.start, act_keys, mask)
        env_keys = jax.vmap(lambda k: jax.random.split(k, e))(k_env)
        obs, env_state, reward, term, trunc, info = jax.vmap(jax.vmap(env.step))(
            env_keys, rs.env_state, actions)
        done = episode_done(term, trunc)
        finals = final_values(params, info["final_state"], carries, trunc)
        events = info.get("events", {})
        episode, finished = jax.vmap(jax.vmap(M.accumulator_step))(
            rs.episode, reward, {k: events[k] for k in names}, done)
        # Episode metrics are computed only on steps where some episode ended.
        sums = jax.lax.cond(jnp.any(done), add_finished, lambda s, *_: s, sums, finished, done)
        transition = {
            "obs": rs.obs, "action": actions, "reward": reward, "start": rs.start,
            "done": done, "terminated": term, "truncated": trunc, "active": rs.alive,
            "events": events, "signals": info.get("signals", {}), "action_mask": mask,
            "policy": tuple(dict(out, final_value=f) for out, f in zip(outputs, finals,
                                                                       strict=True)),
        }
        if record:
            # The state the step reached (before an automatic reset).
            transition["frame"] = env.render(jax.tree.map(lambda x: x[0, 0],
                                                          info["final_state"]))
        alive = jnp.where(done[..., None], True, rs.alive & ~term)
        rs = rs.replace(env_state=env_state, obs=obs, start=done, alive=alive,
                        carries=carries, episode=episode, key=k_next)
        return (rs, sums), transition

    def collect(params, rs: RolloutState):
        s = rs.start.shape[0]
        sums = zero_sums(jax.eval_shape(M.episode_metrics, jax.tree.map(
            lambda x: x[0, 0], rs.episode)), s)
        (rs, sums), traj, chunk_carries = chunked_scan(
            lambda c, _: one_step(params, c, None), (rs, sums), jnp.arange(num_steps),
            chunk_len, record=lambda c: c[0].carries)
        bootstrap_values = []
        for pop, p, carry in zip(populations, params, rs.carries, strict=True):
            lay = pop.layout
            out, _ = pop.policy.step(p, pop.obs_to_params(rs.obs), carry,
                                     lay.per_param(rs.start))
            bootstrap_values.append(out["value"])
        policy = tuple(dict(out, bootstrap_value=v) for out, v in zip(
            traj.pop("policy"), bootstrap_values, strict=True))
        frames = traj.pop("frame", None)
        rollout = Rollout(policy=policy, env_steps=rs.env_steps, **traj)
        rs = rs.replace(env_steps=rs.env_steps + num_steps * rs.start.shape[1])
        out = (rs, rollout, chunk_carries, mean_finished(sums))
        return out + (frames,) if record else out

    return collect

