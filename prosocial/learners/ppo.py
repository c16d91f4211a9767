"""Recurrent PPO with independent parameters per agent, batched over environments and seeds.

specs.md §8.3 fixes the semantics the SSD presets need (RLlib 0.8.5 as configured by SSD).
For every valid step of a train batch, with ρ = π(a|o)/π_old(a|o), Â the advantage (GAE),
R = Â_raw + V_old the value target and KL = KL(π_old ‖ π):

    L = −min(ρÂ, clip(ρ, 1 − ε, 1 + ε)Â) + β_KL·KL
        + c_v·max((V − R)², (V_old + clip(V − V_old, −c, c) − R)²) − c_H·H(π)

averaged over the valid steps of each agent's minibatch (no ½ on the value term). The KL
coefficient β_KL adapts after every train batch (×1.5 above 2·target, ×0.5 below
target/2). Sequences: every rollout of ``num_steps`` steps is cut into chunks of
``seq_len`` steps (the last one padded and masked); the LSTM state stored at each chunk's
start is the initial state of the chunk when it is replayed, and the state is zeroed inside
a chunk where an episode starts. Minibatches are shuffled whole chunks.

Our defaults differ from RLlib where RLlib is wrong for time-limited games: an episode that
ends by its time limit (``truncated``) is bootstrapped from the value of its final
observation; ``ref_horizon_is_terminal`` treats it as terminal as RLlib did (specs B-20).

Shapes: S seeds, N agents, E envs per seed, T steps. Parameter sets are stacked on a
leading axis P = S·N (seed-major), and every per-agent array is laid out ``[P, E, ...]``,
so one batched network call serves all agents and seeds (``prosocial.nets``).

Loop structure (design.md): the rollout is one compiled ``lax.scan``; the minibatch
updates are either compiled into one program with ``lax.scan`` (``loop="scan"``) or driven
from Python, one compiled call per minibatch (``loop="python"``). design.md's probe found
the Python loop faster on XLA:CPU; with this learner's networks (direct convolution, the
hand-written LSTM gradient) ``benchmarks/train_sps.py`` measures the scan faster on this
2-core CPU too (Cleanup 128×128, 1 epoch: 7,600 against 6,200 env steps/s; SI 3,690
against 3,130; Harvest 16×100, 4 epochs: 2,510 against 1,930), so ``loop="auto"`` is the
scan on every backend and ``"python"`` stays for measuring.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from prosocial import metrics as M
from prosocial import nets
from prosocial.envs.core import AutoReset, Env, event_keys
from prosocial.learners.advantages import gae
from prosocial.learners.episodes import add_finished, mean_finished, zero_sums
from prosocial.learners.ppo_config import PPOConfig, learning_rate
from prosocial.motives.base import (
    Motive,
    Rollout,
    finished_episode_sums,
    to_agent_major,
    to_env_major,
)


def ppo_loss(cfg: PPOConfig, logits, values, batch, advantages, kl_coef):
    """Per-agent PPO loss (module docstring) averaged over valid steps.

    ``logits`` [P, B, L, A] and ``values`` [P, B, L] are the new outputs; ``batch`` holds the
    rollout's ``action``, ``logits`` (old), ``value`` (old), ``returns`` and ``mask``, each
    [P, B, L]; ``kl_coef`` [P]. Returns the summed loss over P (each agent's gradient comes
    from its own term only) and the per-agent terms ``[P]``.
    """
    mask = batch["mask"].astype(jnp.float32)
    count = jnp.maximum(mask.sum(axis=(1, 2)), 1.0)

    def mean(x):
        return (x * mask).sum(axis=(1, 2)) / count

    new = distrax.Categorical(logits=logits)
    old = distrax.Categorical(logits=batch["logits"])
    logp = new.log_prob(batch["action"])
    ratio = jnp.exp(logp - old.log_prob(batch["action"]))
    surrogate = jnp.minimum(ratio * advantages,
                            jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * advantages)
    kl = old.kl_divergence(new)
    entropy = new.entropy()
    v_old, target = batch["value"], batch["returns"]
    v_clipped = v_old + jnp.clip(values - v_old, -cfg.vf_clip, cfg.vf_clip)
    vf = jnp.maximum(jnp.square(values - target), jnp.square(v_clipped - target))
    terms = {"policy_loss": -mean(surrogate), "value_loss": mean(vf), "entropy": mean(entropy),
             "kl": mean(kl), "clip_fraction": mean(jnp.abs(ratio - 1) > cfg.clip_eps)}
    total = (terms["policy_loss"] + kl_coef * terms["kl"] + cfg.vf_coef * terms["value_loss"]
             - cfg.ent_coef * terms["entropy"])
    return total.sum(), terms


@struct.dataclass
class TrainState:
    """Everything a run needs to continue: saved whole in checkpoints."""

    params: Any  # [P, ...]
    opt_state: Any  # [P, ...]
    kl_coef: jax.Array  # [P]
    env_state: Any  # [S, E]
    obs: Any  # [S, E, N, ...], the observation the next step acts on
    start: jax.Array  # bool[S, E]: the next step starts an episode (zero the LSTM state)
    carry: Any  # [P, E, H]
    episode: M.EpisodeAccumulator  # [S, E]
    key: jax.Array  # [S]
    env_steps: jax.Array  # int, per seed
    update: jax.Array  # int, iterations done
    motive_params: Any = ()  # [P, ...] a learned motive's model
    motive_opt_state: Any = ()
    motive_carry: Any = ()  # carried from rollout to rollout
    intrinsic_running: Any = ()  # [S, E, N] intrinsic return of the current episodes


class PPO:
    """Recurrent PPO on an environment following the prosocial contract.

    ``init(key)`` gives a :class:`TrainState` for ``num_seeds`` independent seeds;
    ``iteration(state)`` collects one train batch and updates on it, returning the new
    state and the iteration's metrics ``{name: [S] or [S, N]}`` (episode metrics are
    means over the episodes that ended in the iteration, NaN if none did).
    """

    def __init__(self, cfg: PPOConfig, env: Env, num_seeds: int = 1,
                 motive: Motive | None = None):
        if isinstance(num_seeds, bool) or int(num_seeds) != num_seeds or num_seeds < 1:
            raise ValueError(f"num_seeds must be a positive integer, got {num_seeds!r}")
        self.cfg = cfg
        self.env = env if isinstance(env, AutoReset) else AutoReset(env)
        self.num_seeds = int(num_seeds)
        self.num_agents = env.num_agents
        self.num_actions = env.num_actions
        nets.input_key(env.observation_space.spaces)  # fail early on unusable observations
        self.tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm),
                              optax.scale_by_adam(eps=cfg.adam_eps))
        self._event_keys = None
        self.motive = motive if motive is not None else Motive()
        self.motive.check(env, self.event_keys())
        self._collect = jax.jit(self._collect_impl, donate_argnums=0)
        self._prepare = jax.jit(self._prepare_impl)
        self._minibatch = jax.jit(self._minibatch_impl, donate_argnums=(0, 1))
        self._update_all = jax.jit(self._update_all_impl, donate_argnums=(0, 1))

    # --- layout helpers ------------------------------------------------------------------

    @property
    def num_params(self) -> int:
        return self.num_seeds * self.num_agents

    def to_agents(self, x):
        """[S, E, N, ...] → [P, E, ...] (P = S·N, seed-major)."""
        s, e, n = x.shape[:3]
        return jnp.swapaxes(x, 1, 2).reshape((s * n, e) + x.shape[3:])

    def to_envs(self, x):
        """[P, E, ...] → [S, E, N, ...]."""
        p, e = x.shape[:2]
        return jnp.swapaxes(x.reshape((self.num_seeds, p // self.num_seeds, e) + x.shape[2:]),
                            1, 2)

    def per_agent(self, x):
        """[S, E] → [P, E] (the same value for every agent of a seed)."""
        return jnp.repeat(x, self.num_agents, axis=0)

    # --- init ------------------------------------------------------------------------------

    def event_keys(self) -> tuple[str, ...]:
        if self._event_keys is None:
            self._event_keys = event_keys(self.env)
        return self._event_keys

    def init(self, key: jax.Array) -> TrainState:
        cfg = self.cfg
        s, e, n = self.num_seeds, cfg.num_envs, self.num_agents
        k_param, k_env, k_run, k_motive = jax.random.split(key, 4)
        params = nets.init_stacked(cfg.net, k_param, self.env.observation_space,
                                   self.num_actions, (s * n,))
        opt_state = jax.vmap(self.tx.init)(params)
        env_keys = jax.random.split(k_env, s * e).reshape(s, e, -1)
        obs, env_state = jax.vmap(jax.vmap(self.env.reset))(env_keys)
        episode = jax.vmap(jax.vmap(lambda _: M.accumulator_init(n, self.event_keys())))(
            jnp.zeros((s, e)))
        state = TrainState(
            params=params, opt_state=opt_state,
            kl_coef=jnp.full((s * n,), cfg.kl_coef, jnp.float32),
            env_state=env_state, obs=obs, start=jnp.ones((s, e), bool),
            carry=nets.initial_carry(cfg.net, (s * n, e)), episode=episode,
            key=jax.random.split(k_run, s), env_steps=jnp.zeros((), jnp.int32),
            update=jnp.zeros((), jnp.int32),
            motive_carry=self.motive.init_carry(s, e, n),
            intrinsic_running=jnp.zeros((s, e, n), jnp.float32))
        if self.motive.learned:
            mparams = self.motive.init_params(k_motive, self.env, s * n, cfg.net)
            state = state.replace(motive_params=mparams,
                                  motive_opt_state=jax.vmap(self.tx.init)(mparams))
        # Leaves built from one zeros array share a buffer, which donation rejects.
        return jax.tree.map(jnp.copy, state)

    # --- acting ------------------------------------------------------------------------------

    def policy_step(self, params, obs, carry, start):
        """Network step for all seeds and agents: obs [S, E, N, ...] → logits [P, E, A],
        value [P, E], next carry."""
        obs_p = jax.tree.map(self.to_agents, obs)
        return nets.step(self.cfg.net, params, obs_p, carry, self.per_agent(start))

    def _env_step(self, keys, env_state, actions):
        """Step all [S, E] envs (AutoReset): actions [S, E, N]."""
        return jax.vmap(jax.vmap(self.env.step))(keys, env_state, actions)

    def _collect_impl(self, ts: TrainState):
        """One rollout of num_steps steps in chunks of seq_len; returns the batch
        (time-major [T, P, E, ...]) and the chunks' initial LSTM states."""
        cfg = self.cfg
        s, e = self.num_seeds, cfg.num_envs

        def one_step(carry_in, _):
            ts, sums = carry_in
            keys = jax.vmap(lambda k: jax.random.split(k, 3))(ts.key)
            k_next, k_act, k_env = keys[:, 0], keys[:, 1], keys[:, 2]
            logits, value, carry = self.policy_step(ts.params, ts.obs, ts.carry, ts.start)
            act_keys = jax.vmap(lambda k: jax.random.split(k, self.num_agents))(k_act)
            action = jax.vmap(jax.random.categorical)(
                act_keys.reshape(self.num_params, -1), logits)
            env_keys = jax.vmap(lambda k: jax.random.split(k, e))(k_env)
            obs, env_state, reward, term, trunc, info = self._env_step(
                env_keys, ts.env_state, self.to_envs(action))
            done = jnp.all(term, -1) | trunc
            final_value = self._final_value(ts.params, info["final_state"], carry, trunc)
            events = info.get("events", {})
            episode, finished = jax.vmap(jax.vmap(M.accumulator_step))(
                ts.episode, reward, {k: events[k] for k in self.event_keys()}, done)
            # Episode metrics are computed only on steps where some episode ended.
            sums = jax.lax.cond(jnp.any(done), add_finished, lambda s, *_: s,
                                sums, finished, done)
            transition = {
                "obs": jax.tree.map(self.to_agents, ts.obs), "start": self.per_agent(ts.start),
                "action": action, "logits": logits, "value": value,
                "reward": self.to_agents(reward), "terminated": self.to_agents(term),
                "truncated": self.per_agent(trunc), "final_value": final_value,
                "events": {k: self.to_agents(v) for k, v in events.items()},
            }
            ts = ts.replace(env_state=env_state, obs=obs, start=done, carry=carry,
                            episode=episode, key=k_next)
            return (ts, sums), transition

        def chunk(carry_in, length):
            ts = carry_in[0]
            carry_in, traj = jax.lax.scan(one_step, carry_in, None, length=length)
            return carry_in, traj, ts.carry, ts.start

        sums = zero_sums(jax.eval_shape(M.episode_metrics, jax.tree.map(
            lambda x: x[0, 0], ts.episode)), s)
        full, rest = divmod(cfg.num_steps, cfg.seq_len)
        carry_in = (ts, sums)
        trajs, carries = [], []
        if full:
            def chunk_full(c, _):
                c, traj, h0, _ = chunk(c, cfg.seq_len)
                return c, (traj, h0)

            carry_in, (traj, h0) = jax.lax.scan(chunk_full, carry_in, None, length=full)
            trajs.append(jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), traj))
            carries.append(h0)
        if rest:
            carry_in, traj, h0, _ = chunk(carry_in, rest)
            trajs.append(traj)
            carries.append(jax.tree.map(lambda x: x[None], h0))
        ts, sums = carry_in
        traj = jax.tree.map(lambda *xs: jnp.concatenate(xs), *trajs)
        h0 = jax.tree.map(lambda *xs: jnp.concatenate(xs), *carries)
        _, last_value, _ = self.policy_step(ts.params, ts.obs, ts.carry, ts.start)
        steps = cfg.steps_per_iteration
        ts = ts.replace(env_steps=ts.env_steps + steps)
        return ts, traj, h0, last_value, mean_finished(sums)

    def _final_value(self, params, final_state, carry, truncated):
        """V of each truncated episode's final observation (0 elsewhere), for the bootstrap.

        Observing and evaluating the final states costs a network call, so it runs only on
        steps where some episode was truncated.
        """
        if self.cfg.ref_horizon_is_terminal:
            return jnp.zeros((self.num_params, self.cfg.num_envs), jnp.float32)

        def evaluate(_):
            obs = jax.vmap(jax.vmap(self.env.observe))(final_state)
            no_reset = jnp.zeros_like(truncated)
            _, value, _ = self.policy_step(params, obs, carry, no_reset)
            return jnp.where(self.per_agent(truncated), value, 0.0)

        return jax.lax.cond(jnp.any(truncated), evaluate,
                            lambda _: jnp.zeros((self.num_params, self.cfg.num_envs),
                                                jnp.float32), None)

    # --- learning ------------------------------------------------------------------------

    def _prepare_impl(self, ts: TrainState, traj, h0, last_value):
        """Intrinsic rewards, advantages and the sequence layout [P, chunks·E, L, ...] of a
        rollout. Returns the batch, the chunks' initial LSTM states, the state with the
        motive's carry advanced, and the motive's metrics."""
        cfg = self.cfg
        s = self.num_seeds
        env_major = partial(to_env_major, num_seeds=s)
        first_agent = lambda x: env_major(x)[..., 0]  # noqa: E731 (per-env flags)
        done = traj["terminated"] | traj["truncated"]
        rollout = Rollout(
            obs=jax.tree.map(env_major, traj["obs"]), action=env_major(traj["action"]),
            logits=env_major(traj["logits"]), reward=env_major(traj["reward"]),
            start=first_agent(traj["start"]), done=first_agent(done),
            events={k: env_major(v) for k, v in traj["events"].items()},
            env_steps=ts.env_steps - cfg.steps_per_iteration)
        motive_carry, intrinsic, diagnostics, extras = self.motive.intrinsic(
            ts.motive_params, ts.motive_carry, rollout, ts.params, cfg.seq_len)
        running, intrinsic_return = finished_episode_sums(
            ts.intrinsic_running, intrinsic, rollout.start, rollout.done)
        ts = ts.replace(motive_carry=motive_carry, intrinsic_running=running)
        metrics = dict(diagnostics)
        if self.motive.name != "none":
            metrics["intrinsic_return"] = intrinsic_return
        rewards = traj["reward"] + to_agent_major(intrinsic)
        values = traj["value"]
        next_values = jnp.concatenate([values[1:], last_value[None]])
        trunc = traj["truncated"]
        term = traj["terminated"]
        if cfg.ref_horizon_is_terminal:
            term = term | trunc
        else:
            next_values = jnp.where(trunc, traj["final_value"], next_values)
        adv, returns = gae(rewards, values, next_values, term, term | trunc, cfg.gamma,
                           cfg.gae_lambda)
        if cfg.normalize_advantages:
            mean = adv.mean(axis=(0, 2), keepdims=True)
            std = adv.std(axis=(0, 2), keepdims=True)
            adv_norm = (adv - mean) / (std + 1e-8)
        else:
            adv_norm = adv
        motive_carry0 = extras.pop("initial_carry", ())
        batch = {"obs": traj["obs"], "start": traj["start"], "action": traj["action"],
                 "logits": traj["logits"], "value": values, "returns": returns,
                 "advantages": adv_norm, "mask": jnp.ones(values.shape, bool),
                 "motive": extras}
        batch = jax.tree.map(self._to_sequences, batch)
        carry0 = jax.tree.map(self._chunk_starts, h0)
        motive_carry0 = jax.tree.map(self._chunk_starts, motive_carry0)
        return batch, (carry0, motive_carry0), ts, metrics

    def _chunk_starts(self, x):
        """Per-chunk initial states [chunks, P, E, ...] → [P, chunks·E, ...]."""
        return jnp.swapaxes(x, 0, 1).reshape((self.num_params, -1) + x.shape[3:])

    def _to_sequences(self, x):
        """[T, P, E, ...] → [P, chunks·E, L, ...], padding time to chunks·L with zeros."""
        cfg = self.cfg
        pad = cfg.chunks * cfg.seq_len - x.shape[0]
        if pad:
            x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)])
        x = x.reshape((cfg.chunks, cfg.seq_len) + x.shape[1:])  # [C, L, P, E, ...]
        x = jnp.moveaxis(x, (0, 1, 2, 3), (1, 3, 0, 2))  # [P, C, E, L, ...]
        return x.reshape((x.shape[0], -1) + x.shape[3:])

    def _loss(self, learned, mb, carry0, kl_coef):
        params, motive_params = learned
        policy_carry0, motive_carry0 = carry0
        if not self.motive.learned:
            logits, values = nets.unroll(self.cfg.net, params, mb["obs"], policy_carry0,
                                         mb["start"])
            return ppo_loss(self.cfg, logits, values, mb, mb["advantages"], kl_coef)
        logits, values, features = nets.unroll(self.cfg.net, params, mb["obs"], policy_carry0,
                                               mb["start"], return_features=True)
        total, terms = ppo_loss(self.cfg, logits, values, mb, mb["advantages"], kl_coef)
        motive_loss, motive_terms = self.motive.loss(
            motive_params, params, dict(mb["motive"], initial_carry=motive_carry0,
                                        action=mb["action"], mask=mb["mask"]),
            features, mb["start"])
        return total + motive_loss, {**terms, **motive_terms}

    def _minibatch_impl(self, learned, opt_states, batch, carry0, idx, kl_coef, lr):
        """One gradient step of the policies (and a learned motive's model) on the
        sequences ``idx``. ``learned`` = (params, motive params), ``opt_states`` alike."""
        mb = jax.tree.map(lambda x: jnp.take(x, idx, axis=1), batch)
        c0 = jax.tree.map(lambda x: jnp.take(x, idx, axis=1), carry0)
        grads, terms = jax.grad(self._loss, has_aux=True)(learned, mb, c0, kl_coef)
        new_learned, new_opt = [], []
        for g, o, p in zip(grads, opt_states, learned, strict=True):
            if not jax.tree.leaves(p):
                new_learned.append(p)
                new_opt.append(o)
                continue
            updates, o = jax.vmap(self.tx.update)(g, o, p)
            new_learned.append(jax.tree.map(
                lambda x, u: x - lr.reshape((-1,) + (1,) * (u.ndim - 1)) * u, p, updates))
            new_opt.append(o)
        return tuple(new_learned), tuple(new_opt), terms

    def _permutations(self, key):
        """Sequence indices for every epoch's minibatches: [epochs, minibatches, B]."""
        cfg = self.cfg
        keys = jax.random.split(key, cfg.num_epochs)
        perms = jax.vmap(lambda k: jax.random.permutation(k, cfg.num_sequences))(keys)
        return perms.reshape(cfg.num_epochs, cfg.num_minibatches, -1)

    def _update_all_impl(self, learned, opt_states, batch, carry0, key, kl_coef, lr):
        def body(carry, idx):
            learned, opt_states = carry
            learned, opt_states, terms = self._minibatch_impl(
                learned, opt_states, batch, carry0, idx, kl_coef, lr)
            return (learned, opt_states), terms

        idx = self._permutations(key).reshape(-1, self.cfg.num_sequences
                                              // self.cfg.num_minibatches)
        (learned, opt_states), terms = jax.lax.scan(body, (learned, opt_states), idx)
        terms = jax.tree.map(lambda x: x.reshape((self.cfg.num_epochs, -1) + x.shape[1:]),
                             terms)
        return learned, opt_states, terms

    def _adapt_kl(self, kl_coef, kl):
        cfg = self.cfg
        return jnp.where(kl > 2 * cfg.kl_target, kl_coef * 1.5,
                         jnp.where(kl < 0.5 * cfg.kl_target, kl_coef * 0.5, kl_coef))

    def iteration(self, ts: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        """Collect one train batch and update on it."""
        cfg = self.cfg
        lr = learning_rate(cfg, ts.env_steps)  # before this batch's steps, as RLlib
        ts, traj, h0, last_value, episode = self._collect(ts)
        batch, carry0, ts, motive_metrics = self._prepare(ts, traj, h0, last_value)
        key, ts = self._split_update_key(ts)
        lr_p = jnp.full((self.num_params,), lr, jnp.float32)
        learned = (ts.params, ts.motive_params)
        opt_states = (ts.opt_state, ts.motive_opt_state)
        if cfg.resolved_loop() == "scan":
            learned, opt_states, terms = self._update_all(
                learned, opt_states, batch, carry0, key, ts.kl_coef, lr_p)
        else:
            perms = np.asarray(self._permutations(key))
            per_mb = []
            for epoch in perms:
                for idx in epoch:
                    learned, opt_states, t = self._minibatch(
                        learned, opt_states, batch, carry0, jnp.asarray(idx), ts.kl_coef, lr_p)
                    per_mb.append(t)
            terms = jax.tree.map(lambda *xs: jnp.stack(xs).reshape(
                (cfg.num_epochs, cfg.num_minibatches) + xs[0].shape), *per_mb)
        ts = ts.replace(params=learned[0], motive_params=learned[1],
                        opt_state=opt_states[0], motive_opt_state=opt_states[1])
        last_epoch = jax.tree.map(lambda x: x[-1].mean(axis=0), terms)  # [P]
        metrics = {k: self._seed_mean(v) for k, v in last_epoch.items()}
        metrics["kl_coef"] = self._seed_mean(ts.kl_coef)
        metrics["learning_rate"] = jnp.full((self.num_seeds,), lr)
        ts = ts.replace(kl_coef=self._adapt_kl(ts.kl_coef, last_epoch["kl"]),
                        update=ts.update + 1)
        metrics.update(episode)
        metrics.update(motive_metrics)
        return ts, metrics

    def _split_update_key(self, ts):
        keys = jax.vmap(jax.random.split)(ts.key)
        return keys[0, 1], ts.replace(key=keys[:, 0])

    def _seed_mean(self, x):
        return x.reshape(self.num_seeds, self.num_agents).mean(axis=1)


__all__ = ["PPO", "PPOConfig", "TrainState", "gae", "learning_rate", "ppo_loss"]
