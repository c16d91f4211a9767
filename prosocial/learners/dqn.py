"""Independent DQN with experience replay (specs.md §9.8, [COLLINS] App. D).

Every parameter set (every agent of every seed, or one per seed when shared) owns a
Q-network θ, a target network θ⁻, an AdamW optimiser and a replay buffer; they are stacked
``[P, ...]`` and updated together, batched over seeds and environments like the other
learners. For a transition (o, a, r, o') sampled from the agent's own buffer:

    y = r + γ·(1 − terminal)·max_a' Q(o', a'; θ⁻)          (double DQN: Q(o', argmax Q(o'; θ); θ⁻))
    L(θ) = mean over the batch of (y − Q(o, a; θ))²        (or the Huber loss, δ = 1)

and after every gradient step θ⁻ ← τ·θ + (1 − τ)·θ⁻ (``target_update_every`` K and τ = 1
give the periodic copy instead). A time-limit end that is not terminal bootstraps from the
value of the final observation (specs §9.8, ours; see "Truncation" below).

How it sits in the population design (``prosocial.learners.population``, ``runner``):

- **Acting.** :class:`QNetwork` is the population's policy. Its parameters are the Q-network
  and the exploration rate, ``{"q": …, "epsilon": [P]}``, and its ``step`` returns the logits
  ``log((1 − ε)·onehot(argmax_a Q(o, a)) + ε/A)``, so the shared categorical sampler of the
  rollout draws ε-greedy actions exactly (a uniform draw with probability ε, the greedy
  action otherwise; ties go to the lowest action), and ``greedy=True`` evaluation takes
  argmax Q. Its ``value`` is max_a Q(o, a).
- **ε from the per-agent action counts.** The update rule counts each parameter set's action
  selections (the steps on which its agent was ``active``, summed over environments) and
  writes ε(n) into the parameters after every iteration; ε is therefore held for the
  ``num_steps`` steps of a rollout. With ``num_steps = 1`` (the intended setting) it is
  updated after every step; the E selections of one step share one ε.
- **One gradient step per step.** The runner collects ``num_steps`` steps, then this rule
  walks them in order: it stores step t's transitions and takes one gradient step (every
  ``learn_every`` steps, once ``steps_before_learn`` env steps are done and the buffer holds
  a batch). With ``num_steps = 1`` this is the reference loop (act, store, learn) exactly;
  a longer rollout gives the same number of gradient steps but acts with parameters up to
  ``num_steps − 1`` steps old. A "step" is one step of all E environments (E transitions per
  agent): with one environment, one gradient step per env step per agent, as specs §9.8.
- **Transitions of alive agents only.** A transition needs the next observation, which for
  a rollout's last step is the first observation of the next rollout: the last step waits
  in the rule's state (``pending``) and is stored one iteration later (so a gradient step
  samples from the transitions up to the step before the one just taken). Transitions whose
  agent was not ``active`` (dead, or terminated earlier in the episode) are never written:
  :func:`add_valid` writes an agent's valid transitions of a step consecutively into its
  flashbax item buffer and advances the write position by their number only, so each buffer
  is exactly the FIFO of that agent's alive steps (``buffer_size`` of them) and dead steps
  can never be sampled into a loss.
- **Truncation.** The rollout does not keep the final observation of a time-limited
  episode, only the policy's value of it (``final_value``), which for a :class:`QNetwork`
  is max_a Q(o_final, a) of the online network when the step was collected. That stored
  value is the bootstrap of truncated transitions (not the target network's at training
  time: an approximation on one transition per episode; ``ref_horizon_is_terminal`` drops
  the bootstrap instead).
- **Motives.** Intrinsic rewards are added to the stored rewards like every learner's. A
  motive's learned model (the MOA of social influence) takes one gradient step per
  iteration on the rollout, on the Q-network's conv features without training them.

Runner protocol: a rule with ``init_learner(params, layout, env, num_envs) -> (opt_state,
state)`` and ``make_update(pop)`` (both here) gets its state initialised and its update
called by the runner in place of the shared gradient steps of ``sgd.py``; ``prepare`` and
the motive's intrinsic rewards run as for every rule.

Metrics (per seed): ``td_loss`` and ``q_mean`` (mean Q(o, a) of the sampled batch) averaged
over the iteration's gradient steps (0 before learning starts), ``gradient_steps``,
``epsilon``, ``buffer_size``, ``learning_rate``.

Not handled: action masks in the targets (the max is over all actions of o'). In acting, a
forbidden greedy action leaves a uniform draw among the allowed ones, so an environment
that forces one action through its mask (Forage's STAY while Helpless) is followed exactly
and the stored action is the executed one.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import flashbax as fbx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from prosocial import nets
from prosocial.learners.dqn_config import DQNConfig, epsilon
from prosocial.learners.rollout import MASKED
from prosocial.motives.base import PolicyView

# --- the Q-network ---------------------------------------------------------------------------


def _uniform_fan_in(key, shape, fan_in):
    """U(−1/√fan_in, 1/√fan_in): PyTorch's default init of ``nn.Linear`` (the TUT network)."""
    bound = 1.0 / np.sqrt(fan_in)
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


class QNetwork:
    """Q-values from observations: (conv of ``prosocial.nets`` on ``rgb``) → ReLU MLP
    (``hidden_sizes``) → one value per action, with an exploration rate per parameter set.

    ``net`` gives the convolution's settings (the observation's ``rgb`` goes through the SSD
    convolution, as the actor-critic's; vector ``obs`` is used flattened) and is exposed as
    ``cfg`` for motives that build on the policy's conv features.
    """

    def __init__(self, net: nets.NetConfig, obs_space, num_actions: int,
                 hidden_sizes: tuple[int, ...] = (128, 128), epsilon0: float = 1.0):
        nets.input_key(obs_space.spaces)
        if num_actions < 1:
            raise ValueError(f"num_actions must be positive, got {num_actions}")
        self.cfg, self.obs_space, self.num_actions = net, obs_space, num_actions
        self.hidden_sizes, self.epsilon0 = tuple(hidden_sizes), float(epsilon0)

    def _init_one(self, key):
        spaces = self.obs_space.spaces
        name = nets.input_key(spaces)
        shape = tuple(spaces[name].shape)
        keys = iter(jax.random.split(key, 2 * len(self.hidden_sizes) + 3))
        params: dict[str, Any] = {}
        if name == "rgb":
            params["conv"] = nets.conv_params(next(keys), shape, self.cfg.conv_kernel,
                                              self.cfg.conv_filters)
            width = nets.conv_width(self.cfg, shape)
        else:
            width = int(np.prod(shape)) if shape else 1
        for i, size in enumerate(self.hidden_sizes + (self.num_actions,)):
            name = f"hidden_{i}" if i < len(self.hidden_sizes) else "q"
            params[name] = {"kernel": _uniform_fan_in(next(keys), (width, size), width),
                            "bias": _uniform_fan_in(next(keys), (size,), width)}
            width = size
        return params

    def init(self, keys: jax.Array):
        """One parameter set per key, stacked ``[P, ...]``: ``{"q": network, "epsilon": ε}``
        (ε starts at ``epsilon0``; the DQN rule sets it from the start of training)."""
        return {"q": jax.vmap(self._init_one)(keys),
                "epsilon": jnp.full((keys.shape[0],), self.epsilon0, jnp.float32)}

    def initial_carry(self, batch_shape):
        return ()

    def q_values(self, q_params, obs) -> jax.Array:
        """Q-values ``[P, M, A]`` of observations with leaves ``[P, M, ...]``."""
        x = nets.conv_features(self.cfg, q_params, obs)
        x = nets.mlp(q_params, x, prefix="hidden", layers=len(self.hidden_sizes),
                     activation="relu")
        return nets.dense(q_params["q"], x)

    def step(self, params, obs, carry, start):
        """obs leaves ``[P, B, ...]`` → ``({"logits": ε-greedy [P, B, A], "value": max Q},
        carry)``."""
        q = self.q_values(params["q"], obs)
        return {"logits": epsilon_greedy_logits(q, params["epsilon"][:, None]),
                "value": q.max(axis=-1)}, carry

    def features(self, params, obs):
        """The conv features ``[P, M, D]`` of observations ``[P, M, ...]``."""
        return nets.conv_features(self.cfg, params["q"], obs)


def epsilon_greedy_logits(q: jax.Array, eps: jax.Array) -> jax.Array:
    """Logits of the ε-greedy policy over ``q`` [..., A]: log π with π(a) = (1 − ε)·1[a =
    argmax q] + ε/A (actions of probability 0 get :data:`MASKED`). ``eps`` broadcasts
    against ``q.shape[:-1]``."""
    num_actions = q.shape[-1]
    greedy = jax.nn.one_hot(jnp.argmax(q, axis=-1), num_actions, dtype=jnp.float32)
    eps = jnp.asarray(eps, jnp.float32)[..., None]
    probs = (1.0 - eps) * greedy + eps / num_actions
    return jnp.where(probs > 0, jnp.log(jnp.where(probs > 0, probs, 1.0)), MASKED)


# --- targets and loss --------------------------------------------------------------------------


def td_targets(reward, terminal, bootstrap_final, final_value, q_next_target, gamma: float,
               q_next_online=None):
    """One-step Q-learning targets ``[...]``:

        y = r + γ·(1 − terminal)·v',  v' = max_a Q⁻(o', a)
                                     (double DQN: Q⁻(o', argmax_a Q(o', a)))

    except where ``bootstrap_final`` (a time-limit end that is not terminal), where v' is
    ``final_value``, the stored value of the final observation. ``q_next_*`` are ``[..., A]``.
    """
    if q_next_online is None:
        v_next = q_next_target.max(axis=-1)
    else:
        best = jnp.argmax(q_next_online, axis=-1)
        v_next = jnp.take_along_axis(q_next_target, best[..., None], axis=-1)[..., 0]
    v_next = jnp.where(bootstrap_final, final_value, v_next)
    # A select, not a product with (1 − terminal): whatever follows a terminal step (the
    # observation of a dead agent) never reaches the target.
    return reward + jnp.where(terminal, 0.0, gamma * v_next)


def td_loss(q: jax.Array, action: jax.Array, target: jax.Array, kind: str = "mse"):
    """``(loss, q_sa)``: the mean over the last axis of (y − Q(o, a))² (``"mse"``) or of the
    Huber loss with δ = 1 (``"huber"``: ½x² for |x| ≤ 1, |x| − ½ beyond); ``q`` is
    ``[..., M, A]``, ``action`` and ``target`` ``[..., M]`` (the target is not
    differentiated)."""
    q_sa = jnp.take_along_axis(q, action[..., None].astype(jnp.int32), axis=-1)[..., 0]
    err = q_sa - jax.lax.stop_gradient(target)
    per = err * err if kind == "mse" else optax.huber_loss(err, delta=1.0)
    return per.mean(axis=-1), q_sa


# --- replay ---------------------------------------------------------------------------------------


def make_buffer(cfg: DQNConfig):
    """One parameter set's replay buffer: a flashbax item buffer of ``buffer_size``
    transitions, sampled uniformly ``batch_size`` at a time; written with
    :func:`add_valid`."""
    return fbx.make_item_buffer(max_length=cfg.buffer_size, min_length=1,
                                sample_batch_size=cfg.batch_size, add_sequences=True)


def buffer_size(state) -> jax.Array:
    """Transitions held by a buffer state, of any leading shape (leaves ``[..., 1, capacity,
    ...]``)."""
    capacity = jax.tree.leaves(state.experience)[0].shape[state.current_index.ndim + 1]
    return jnp.where(state.is_full, capacity, state.current_index)


def add_valid(buffer, state, items, valid):
    """Store the valid ones of ``items`` (leaves ``[B, ...]``, in order) in one parameter
    set's buffer, nothing of the others.

    flashbax writes a fixed number of items per call, so the valid items are moved to the
    front (stable), the remaining slots of the write are filled with what those slots
    already hold, and the write position advances by the number of valid items only: the
    buffer's contents and order are those of a FIFO that only ever received the valid
    items. Needs B ≤ the buffer's capacity.
    """
    capacity = jax.tree.leaves(state.experience)[0].shape[1]
    b = valid.shape[0]
    order = jnp.argsort(~valid, stable=True)
    k = valid.sum().astype(state.current_index.dtype)
    slots = (state.current_index + jnp.arange(b)) % capacity
    keep_new = jnp.arange(b) < k

    def merge(new, old):
        new = new[order]
        old = old[0, slots]
        return jnp.where(keep_new.reshape((b,) + (1,) * (new.ndim - 1)), new, old)

    written = buffer.add(state, jax.tree.map(merge, items, state.experience))
    end = state.current_index + k
    return written.replace(current_index=end % capacity, is_full=state.is_full | (end >= capacity))


# --- the update rule ------------------------------------------------------------------------------


class DQN:
    """The independent-DQN update rule for a population whose policy is a :class:`QNetwork`
    (module docstring). Unlike the gradient-step rules (``sgd.py``) it keeps its own state —
    replay buffers, target networks, action counts — and its own update
    (:meth:`init_learner`, :meth:`make_update`)."""

    name = "dqn"
    shuffle = False
    num_epochs = 1
    num_minibatches = 1
    loop = "scan"

    def __init__(self, cfg: DQNConfig):
        self.cfg = cfg
        self.bootstrap = not cfg.ref_horizon_is_terminal

    def policy(self, net: nets.NetConfig, obs_space, num_actions: int) -> QNetwork:
        """The Q-network this rule trains, for one observation and action space."""
        return QNetwork(net, obs_space, num_actions, self.cfg.hidden_sizes,
                        float(epsilon(self.cfg, 0)))

    def seq_len(self, num_steps: int) -> int:
        return num_steps

    def check(self, num_rows: int, num_steps: int) -> None:
        """A step's transitions of one parameter set (``num_rows``) must fit in its buffer."""
        if num_rows > self.cfg.buffer_size:
            raise ValueError(f"dqn.buffer_size ({self.cfg.buffer_size}) is smaller than the "
                             f"{num_rows} transitions a parameter set stores per step")

    def optimizer(self) -> optax.GradientTransformation:
        return self.cfg.optimizer_transform()

    def learning_rate(self, env_steps):
        return self.cfg.learning_rate(env_steps)

    def prepare(self, batch):
        """What the update stores, time-major ``[T, P, B]``."""
        return {"reward": batch["reward"], "terminated": batch["terminated"],
                "truncated": batch["truncated"], "final_value": batch["final_value"]}

    # --- state -------------------------------------------------------------------------------

    def _example_item(self, env):
        obs = jax.eval_shape(env.reset, jax.random.PRNGKey(0))[0]
        one = jax.tree.map(lambda s: jnp.zeros(s.shape[1:], s.dtype), obs)
        return {"obs": one, "action": jnp.zeros((), jnp.int32),
                "reward": jnp.zeros((), jnp.float32), "terminal": jnp.zeros((), bool),
                "bootstrap_final": jnp.zeros((), bool),
                "final_value": jnp.zeros((), jnp.float32), "next_obs": one}

    def init_learner(self, params, layout, env, num_envs: int):
        """``(opt_state, state)`` of a population with parameters ``params`` [P, ...]:
        AdamW's state of the Q-networks and ``{"buffer", "target", "count", "grad_steps",
        "vector_steps", "pending"}`` (target networks start equal to the online ones)."""
        p, b = layout.num_params, layout.batch(num_envs)
        item = self._example_item(env)
        buffers = jax.vmap(lambda _: make_buffer(self.cfg).init(item))(jnp.arange(p))
        pending = jax.tree.map(lambda x: jnp.zeros((p, b) + x.shape, x.dtype),
                               {k: v for k, v in item.items() if k != "next_obs"})
        pending["valid"] = jnp.zeros((p, b), bool)
        state = {"buffer": buffers, "target": jax.tree.map(jnp.copy, params["q"]),
                 "count": jnp.zeros((p,), jnp.float32), "grad_steps": jnp.zeros((p,), jnp.int32),
                 "vector_steps": jnp.zeros((), jnp.int32), "pending": pending}
        opt_state = jax.vmap(self.optimizer().init)(params["q"])
        # Strong types, as the update returns them (a weak-typed count would recompile it).
        return jax.tree.map(lambda x: jnp.asarray(x, x.dtype), (opt_state, state))

    # --- the update -----------------------------------------------------------------------------

    def make_update(self, pop):
        """``update(pop_state, seqs, carry0, key, lr) -> (pop_state, metrics)``: store the
        rollout's transitions step by step, one gradient step after each (module
        docstring), then ε from the new counts and the motive model's step."""
        cfg, policy, lay, motive = self.cfg, pop.policy, pop.layout, pop.motive
        tx = self.optimizer()
        motive_tx = motive.optimizer()
        buffer = make_buffer(cfg)
        per_row = lay.n if lay.shared else 1

        def loss_fn(q_params, target, sample):
            q = policy.q_values(q_params, sample["obs"])
            q_next_t = policy.q_values(target, sample["next_obs"])
            q_next_o = (policy.q_values(jax.lax.stop_gradient(q_params), sample["next_obs"])
                        if cfg.double else None)
            y = td_targets(sample["reward"], sample["terminal"], sample["bootstrap_final"],
                           sample["final_value"], jax.lax.stop_gradient(q_next_t), cfg.gamma,
                           q_next_o)
            loss, q_sa = td_loss(q, sample["action"], y, cfg.loss)
            return loss.sum(), (loss, q_sa.mean(axis=-1))

        def gradient_step(carry, bufs, ready, key, lr_p):
            q_params, target, opt, grad_steps = carry
            keys = jax.random.split(key, lay.num_params)
            sample = jax.vmap(buffer.sample)(bufs, keys).experience
            grads, (loss, q_mean) = jax.grad(loss_fn, has_aux=True)(q_params, target, sample)
            updates, new_opt = jax.vmap(tx.update)(grads, opt, q_params)
            new_q = jax.tree.map(lambda p, u: p - _per(lr_p, u) * u, q_params, updates)

            def pick(mask, new, old):
                return jax.tree.map(lambda n, o: jnp.where(_per(mask, n), n, o), new, old)

            q_params, opt = pick(ready, new_q, q_params), pick(ready, new_opt, opt)
            grad_steps = grad_steps + ready
            sync = ready & (grad_steps % cfg.target_update_every == 0)
            target = pick(sync, optax.incremental_update(q_params, target, cfg.tau), target)
            return (q_params, target, opt, grad_steps), (loss, q_mean)

        def store_and_learn(carry, x, lr_p):
            learned, vector_steps, key = carry
            items, valid = x
            q_params, target, opt, bufs, grad_steps = learned
            bufs = jax.vmap(partial(add_valid, buffer))(bufs, items, valid)
            vector_steps = vector_steps + 1
            num_envs = valid.shape[1] // per_row
            learn = ((vector_steps * num_envs >= cfg.steps_before_learn)
                     & (vector_steps % cfg.learn_every == 0))
            ready = learn & (buffer_size(bufs) >= cfg.batch_size)  # [P]
            key, k = jax.random.split(key)
            zeros = jnp.zeros((lay.num_params,), jnp.float32)
            # The buffers are an operand only: returning them from the branches would copy them.
            (q_params, target, opt, grad_steps), (loss, q_mean) = jax.lax.cond(
                jnp.any(ready), partial(gradient_step, lr_p=lr_p),
                lambda c, *_: (c, (zeros, zeros)),
                (q_params, target, opt, grad_steps), bufs, ready, k)
            learned = (q_params, target, opt, bufs, grad_steps)
            return (learned, vector_steps, key), (loss, q_mean, ready)

        def motive_step(ps, seqs, motive_carry0, lr_p):
            def loss(mp):
                obs = jax.tree.map(lambda x: x.reshape((x.shape[0], -1) + x.shape[3:]),
                                   seqs["obs"])
                view = PolicyView(layout=lay, logits=seqs["logits"],
                                  features=jax.lax.stop_gradient(policy.features(ps.params,
                                                                                 obs)),
                                  starts=seqs["start"], mask=seqs["mask"],
                                  action=seqs["action"], obs=seqs["obs"])
                return motive.loss(mp, dict(seqs["motive"], initial_carry=motive_carry0),
                                   view)

            grads, terms = jax.grad(loss, has_aux=True)(ps.motive_params)
            if motive_tx is None:
                updates, opt = jax.vmap(tx.update)(grads, ps.motive_opt_state, ps.motive_params)
                new = jax.tree.map(lambda p, u: p - _per(lr_p, u) * u, ps.motive_params,
                                   updates)
            else:
                updates, opt = jax.vmap(motive_tx.update)(grads, ps.motive_opt_state,
                                                          ps.motive_params)
                new = optax.apply_updates(ps.motive_params, updates)
            return ps.replace(motive_params=new, motive_opt_state=opt), terms

        def update(ps, seqs, carry0, key, lr):
            lr_p = lr * ps.lr_scale
            st = ps.learner
            tm = partial(jnp.moveaxis, source=2, destination=0)  # [P, B, T] → [T, P, B]
            data = {"obs": jax.tree.map(tm, seqs["obs"]), "action": tm(seqs["action"]),
                    "reward": tm(seqs["reward"]).astype(jnp.float32),
                    "terminal": tm(seqs["terminated"] | (seqs["truncated"]
                                                         & cfg.ref_horizon_is_terminal)),
                    "final_value": tm(seqs["final_value"]).astype(jnp.float32),
                    "valid": tm(seqs["mask"])}
            data["bootstrap_final"] = tm(seqs["truncated"]) & ~data["terminal"]
            # Transition k is step k − 1 (the pending one for k = 0) with the next obs of
            # step k.
            prev = jax.tree.map(lambda p, d: jnp.concatenate([p[None], d[:-1]]),
                                st["pending"], {k: data[k] for k in st["pending"]})
            valid = prev.pop("valid")
            items = dict(prev, next_obs=data["obs"])
            carry = ((ps.params["q"], st["target"], ps.opt_state, st["buffer"],
                      st["grad_steps"]), st["vector_steps"], key)
            (learned, vector_steps, _), (loss, q_mean, ready) = jax.lax.scan(
                partial(store_and_learn, lr_p=lr_p), carry, (items, valid))
            q_params, target, opt, bufs, grad_steps = learned
            if cfg.epsilon_decay_unit == "action":
                count = st["count"] + seqs["mask"].sum(axis=(1, 2))
            else:  # episodes finished: every episode start after a row's first one
                count = st["count"] + seqs["start"].sum(axis=(1, 2)) - jnp.where(
                    st["vector_steps"] == 0, seqs["start"].shape[1], 0)
            eps = epsilon(cfg, count)
            pending = jax.tree.map(lambda d: d[-1], {k: data[k] for k in st["pending"]})
            ps = ps.replace(params={"q": q_params, "epsilon": eps}, opt_state=opt,
                            learner={"buffer": bufs, "target": target, "count": count,
                                     "grad_steps": grad_steps, "vector_steps": vector_steps,
                                     "pending": pending})
            steps = ready.sum(axis=0)  # [P]
            denom = jnp.maximum(steps, 1)
            metrics = {"td_loss": (loss * ready).sum(axis=0) / denom,
                       "q_mean": (q_mean * ready).sum(axis=0) / denom,
                       "gradient_steps": steps.astype(jnp.float32), "epsilon": eps,
                       "buffer_size": buffer_size(bufs).astype(jnp.float32)}
            if motive.learned:
                ps, terms = motive_step(ps, seqs, carry0[1], lr_p)
                metrics.update(terms)
            metrics = {k: lay.seed_mean(v) for k, v in metrics.items()}
            metrics["learning_rate"] = jnp.full((lay.num_seeds,), lr)
            return ps, metrics

        return jax.jit(update, donate_argnums=0)


def _per(x, like):
    """A per-parameter-set value ``[P]`` shaped to broadcast against ``like`` [P, ...]."""
    return x.reshape((-1,) + (1,) * (jnp.ndim(like) - 1))


__all__ = ["DQN", "DQNConfig", "QNetwork", "add_valid", "epsilon", "epsilon_greedy_logits",
           "make_buffer", "td_loss", "td_targets"]
