"""The motive interface: how a social motive turns a rollout into intrinsic rewards.

A motive shapes one population (``prosocial.learners.population``). It sees the whole
rollout (``prosocial.learners.rollout.Rollout``, env-major ``[T, S, E, N, ...]`` for T
steps, S seeds, E environments, N agents: every agent's rewards and events) and returns
intrinsic rewards ``[T, S, E, n]`` for the population's n agents; the learner adds them to
the extrinsic rewards. It may carry state across rollouts (the smoothed-reward trace of
inequity aversion, the MOA's recurrent state) and may own a learned model with parameters
stacked per parameter set ``[P, ...]``, trained in the same compiled step as the policies
through :meth:`Motive.loss`, with the policy's optimiser or its own
(:meth:`Motive.optimizer`).

Motives know nothing of a particular learner, its sequence length or the policy's
parameters: what they may see of the policy comes through a :class:`PolicyView`. They read
observations, actions, rewards and ``info["events"]``, and declare the events they need
(:attr:`Motive.events`), which :meth:`Motive.check` verifies. :class:`Weighted` composes
several motives in one population.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax

from prosocial.layout import chunked_scan  # noqa: F401  (re-exported for motives)


@dataclass
class PolicyView:
    """What a motive may see of the policy it shapes, without knowing the learner.

    At rollout time (:meth:`Motive.intrinsic`): ``layout`` (the population's agents and
    parameter-major layout, ``prosocial.layout.Layout``), ``logits`` the policy's logits
    ``[T, P, B, A]`` on the rollout, ``features(obs)`` the policy torso's conv features of
    observations ``[P, M, ...]`` → ``[P, M, D]``, and ``scan(body, carry, xs)``: a
    ``lax.scan`` over the rollout's time axis that also returns the carry at the starts of
    the learner's training sequences (return it as ``train_data["initial_carry"]``).

    At training time (:meth:`Motive.loss`): ``features`` the minibatch's conv features
    ``[P, B·L, D]``, ``obs`` its observations (leaves ``[P, B, L, ...]``; a motive reads its
    images here rather than storing a copy of them with its training data), ``logits`` the
    policy's new logits ``[P, B, L, A]``, ``starts`` bool ``[P, B, L]``, ``mask`` (valid
    steps) and ``action``.
    """

    layout: Any = None
    logits: Any = None
    features: Any = None
    scan: Any = None
    starts: Any = None
    mask: Any = None
    action: Any = None
    obs: Any = None


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

    def init_carry(self, layout, num_envs: int) -> Any:
        """State carried from one rollout to the next (default: none). ``layout`` is the
        population's :class:`prosocial.layout.Layout`."""
        return ()

    def init_params(self, keys: jax.Array, env, policy) -> Any:
        """Parameters of a learned model, one set per key, stacked ``[P, ...]``
        (default: none). ``policy`` is the population's policy network."""
        return ()

    def optimizer(self):
        """The model's own optax transformation (learning rate included), or ``None`` to
        train the model with the policy's optimiser and learning rate (SSD's MOA)."""
        return None

    def intrinsic(self, params, carry, rollout, view: PolicyView) -> tuple[
            Any, jax.Array, dict[str, jax.Array], dict[str, jax.Array]]:
        """``(carry, intrinsic [T, S, E, n], diagnostics, train_data)`` for the n agents of
        ``view.layout``.

        ``rollout`` is a :class:`prosocial.learners.rollout.Rollout` (env-major, all agents).
        ``diagnostics`` are per-seed means ``{name: [S] or [S, n]}`` logged as they are;
        ``train_data`` are per-step arrays ``[T, P, B, ...]`` that :meth:`loss` receives cut
        into the learner's training sequences, except ``initial_carry``: a recurrent
        model's states at the sequence starts, as returned by ``view.scan``.
        """
        return carry, jnp.zeros(rollout.reward.shape[:3] + (view.layout.n,),
                                rollout.reward.dtype), {}, {}

    def loss(self, params, minibatch: dict, view: PolicyView) -> tuple[
            jax.Array, dict[str, jax.Array]]:
        """The model's loss on sequences ``[P, B, L, ...]`` (summed over P) and per-agent
        diagnostics ``{name: [P]}``."""
        return jnp.zeros(()), {}

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


def select_agents(x: jax.Array, layout) -> jax.Array:
    """Env-major per-step values of all agents ``[T, S, E, N, ...]`` → the population's
    ``[T, S, E, n, ...]``."""
    if layout.all_agents:
        return x
    return x[:, :, :, list(layout.agents)]


class Weighted(Motive):
    """Several motives shaping one population, each with its weight: the intrinsic reward is
    Σ_k w_k·r_k, learned models train side by side (their losses summed, each with its own
    optimiser or the policy's), diagnostics are merged (names must not collide)."""

    name = "weighted"

    def __init__(self, motives, weights):
        if len(motives) != len(weights) or not motives:
            raise ValueError("Weighted needs one weight per motive and at least one motive")
        self.motives, self.weights = tuple(motives), tuple(float(w) for w in weights)
        self.events = tuple(sorted({e for m in self.motives for e in m.events}))
        self.learned = any(m.learned for m in self.motives)
        self.min_agents = max(m.min_agents for m in self.motives)
        self.name = "+".join(m.name for m in self.motives)

    def check(self, env, event_keys):
        for m in self.motives:
            m.check(env, event_keys)

    def init_carry(self, layout, num_envs):
        return tuple(m.init_carry(layout, num_envs) for m in self.motives)

    def init_params(self, keys, env, policy):
        return tuple(m.init_params(jax.vmap(lambda k, i=i: jax.random.fold_in(k, i))(keys),
                                   env, policy) for i, m in enumerate(self.motives))

    def optimizer(self):
        """None when every learned member trains with the policy's optimiser; the members'
        own optimisers side by side when every learned member has one."""
        learned = [m for m in self.motives if m.learned]
        own = [m.optimizer() for m in learned]
        if all(tx is None for tx in own):
            return None
        if any(tx is None for tx in own):
            raise ValueError(f"motives {[m.name for m in learned]}: either every learned "
                             "motive has its own optimiser or none has")
        members = [m.optimizer() if m.learned else optax.identity() for m in self.motives]
        return optax.GradientTransformation(
            lambda params: tuple(tx.init(p) for tx, p in zip(members, params, strict=True)),
            lambda updates, state, params=None: _each(members, updates, state, params))

    def intrinsic(self, params, carry, rollout, view):
        total, carries, diagnostics, extras = 0.0, [], {}, {}
        for k, (m, w) in enumerate(zip(self.motives, self.weights, strict=True)):
            c, r, d, x = m.intrinsic(params[k], carry[k], rollout, view)
            total = total + w * r
            carries.append(c)
            diagnostics.update(d)
            extras[str(k)] = x
        return tuple(carries), total, diagnostics, extras

    def loss(self, params, minibatch, view):
        total, terms = jnp.zeros(()), {}
        for k, m in enumerate(self.motives):
            loss, t = m.loss(params[k], minibatch[str(k)], view)
            total = total + loss
            terms.update(t)
        return total, terms


def _each(transforms, updates, state, params):
    out = [tx.update(u, st, p) for tx, u, st, p in zip(
        transforms, updates, state, params if params is not None else (None,) * len(state),
        strict=True)]
    return tuple(u for u, _ in out), tuple(st for _, st in out)


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
