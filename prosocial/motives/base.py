"""The motive interface: how a social motive turns a rollout into intrinsic rewards.

A motive sees a whole rollout (:class:`Rollout`, env-major: ``[T, S, E, N, ...]`` for T
steps, S seeds, E environments, N agents) and returns per-agent intrinsic rewards of the
same layout; the learner adds them to the extrinsic rewards before computing advantages.
It may carry state across rollouts (the smoothed-reward trace of inequity aversion, the
MOA's recurrent state) and may own a learned model with parameters stacked per agent
``[P, ...]`` (P = S·N), trained in the same compiled step as the policies through
:meth:`Motive.loss`. Motives know nothing of a particular learner or environment: they read
observations, actions, policy outputs, rewards and ``info["events"]``, and declare the
events they need (:attr:`Motive.events`), which :meth:`Motive.check` verifies.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Rollout:
    """One rollout, time-major and env-major.

    Attributes:
      obs: the observations the agents acted on, leaves ``[T, S, E, N, ...]``.
      action: int32 ``[T, S, E, N]``.
      logits: the policies' logits ``[T, S, E, N, A]``.
      reward: extrinsic rewards ``[T, S, E, N]``.
      start: bool ``[T, S, E]``, step t is the first of an episode.
      done: bool ``[T, S, E]``, step t is the last of an episode.
      events: ``{name: [T, S, E, N]}`` from ``info["events"]``.
      env_steps: int, environment steps per seed before this rollout.
    """

    obs: Any
    action: jax.Array
    logits: jax.Array
    reward: jax.Array
    start: jax.Array
    done: jax.Array
    events: dict
    env_steps: jax.Array


class Motive:
    """No intrinsic reward (the baseline). Subclasses override what they need."""

    name = "none"
    events: tuple[str, ...] = ()
    """``info["events"]`` entries the motive reads."""
    learned = False
    """True if the motive owns parameters trained by :meth:`loss`."""
    min_agents = 1
    """Agents the environment needs (social motives compare agents)."""

    def check(self, env, event_keys: tuple[str, ...]) -> None:
        """Raise a clear error if ``env`` cannot support this motive."""
        missing = sorted(set(self.events) - set(event_keys))
        if missing:
            raise ValueError(f"motive {self.name!r} needs the env events {missing}, which "
                             f"{env.env_id or type(env).__name__} does not report "
                             f"(it reports {sorted(event_keys)})")
        if env.num_agents < self.min_agents:
            raise ValueError(f"motive {self.name!r} compares agents; the env has one agent")

    def init_carry(self, num_seeds: int, num_envs: int, num_agents: int) -> Any:
        """State carried from one rollout to the next (default: none)."""
        return ()

    def init_params(self, key, env, num_params: int, net_cfg) -> Any:
        """Parameters of a learned model stacked ``[P, ...]`` (default: none)."""
        return ()

    def intrinsic(self, params, carry, rollout: Rollout, policy_params, seq_len: int) -> tuple[
            Any, jax.Array, dict[str, jax.Array], dict[str, jax.Array]]:
        """``(carry, intrinsic [T, S, E, N], diagnostics, train_extras)``.

        ``diagnostics`` are per-seed means ``{name: [S] or [S, N]}`` logged as they are;
        ``train_extras`` are per-step arrays ``[T, P, E, ...]`` that :meth:`loss` receives
        cut into the same sequences as the learner's minibatches, except
        ``initial_carry``: a recurrent model's state at the start of every ``seq_len``-step
        chunk, ``[chunks, P, E, ...]`` (see :func:`chunked_scan`).
        """
        return carry, jnp.zeros_like(rollout.reward), {}, {}

    def loss(self, params, policy_params, minibatch: dict, features: jax.Array,
             starts: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The model's loss on sequences ``[P, B, L, ...]`` (summed over P) and per-agent
        diagnostics ``{name: [P]}``. ``features`` are the policy torso's conv features
        ``[P, B·L, D]`` (shared layers, as in the papers' MOA)."""
        return jnp.zeros(()), {}

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


def to_env_major(x: jax.Array, num_seeds: int) -> jax.Array:
    """Learner layout ``[T, P, E, ...]`` → ``[T, S, E, N, ...]``."""
    t, p, e = x.shape[:3]
    return jnp.swapaxes(x.reshape((t, num_seeds, p // num_seeds, e) + x.shape[3:]), 2, 3)


def to_agent_major(x: jax.Array) -> jax.Array:
    """``[T, S, E, N, ...]`` → learner layout ``[T, P, E, ...]``."""
    t, s, e, n = x.shape[:4]
    return jnp.swapaxes(x, 2, 3).reshape((t, s * n, e) + x.shape[4:])


def finished_episode_sums(running: jax.Array, values: jax.Array, start: jax.Array,
                          done: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-episode sums of ``values`` [T, S, E, N] across rollouts.

    ``running`` [S, E, N] is the sum of the current episodes so far. Returns the new running
    sums and the mean over the episodes that ended in this rollout, ``[S, N]`` (NaN for a
    seed where none ended).
    """

    def body(c, x):
        v, st, dn = x
        total = jnp.where(st[..., None], 0.0, c) + v
        return total, (total, dn)

    running, (totals, ended) = jax.lax.scan(body, running, (values, start, done))
    w = ended.astype(jnp.float32)[..., None]
    count = w.sum(axis=(0, 2))
    mean = (totals * w).sum(axis=(0, 2)) / jnp.maximum(count, 1.0)
    return running, jnp.where(count > 0, mean, jnp.nan)


def chunked_scan(body, carry, xs, seq_len: int):
    """``lax.scan(body, carry, xs)`` over time, also returning the carry at the start of
    every ``seq_len``-step chunk (``[chunks, ...]``, the last chunk possibly shorter) — the
    initial recurrent states of the learner's training sequences, without storing the
    state of every step."""
    length = jax.tree.leaves(xs)[0].shape[0]
    full, rest = divmod(length, seq_len)
    ys, starts = [], []
    if full:
        def chunk(c, x):
            c_end, y = jax.lax.scan(body, c, x)
            return c_end, (y, c)

        head = jax.tree.map(lambda x: x[:full * seq_len].reshape(
            (full, seq_len) + x.shape[1:]), xs)
        carry, (y, c0) = jax.lax.scan(chunk, carry, head)
        ys.append(jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), y))
        starts.append(c0)
    if rest:
        starts.append(jax.tree.map(lambda x: x[None], carry))
        carry, y = jax.lax.scan(body, carry, jax.tree.map(lambda x: x[full * seq_len:], xs))
        ys.append(y)
    cat = lambda *parts: jnp.concatenate(parts)  # noqa: E731
    return carry, jax.tree.map(cat, *ys), jax.tree.map(cat, *starts)
