"""Gradient steps of one population on one rollout, for any update rule.

An update rule (``ppo.PPO``, ``a2c.A2C``) supplies the loss of the policy's new outputs on a
minibatch of sequences, its optimiser (without the learning rate), the number of epochs
and minibatches, and what to do after the update (PPO adapts its KL coefficient). This
module replays the policy on the sequences from their stored recurrent states, adds the
motive's model loss, and applies the gradients: the policy's with the rule's optimiser and
a learning rate per parameter set (``p − lr·u``), the motive model's with the motive's own
optimiser (learning rate included) or, when it has none, like the policy's.

Loop structure (design.md): the minibatch updates are compiled into one program with
``lax.scan`` (``loop="scan"``) or driven from Python, one compiled call per minibatch
(``loop="python"``). With this project's networks ``benchmarks/train_sps.py`` measured the
scan faster on the 2-core CPU too, so the rules default to the scan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prosocial.learners.rollout import MASKED
from prosocial.motives.base import PolicyView


def make_sgd(pop):
    """``sgd(pop_state, batch, carry0, key, lr) -> (pop_state, metrics)`` for ``pop``."""
    rule, motive, policy, lay = pop.update, pop.motive, pop.policy, pop.layout
    tx = rule.optimizer()
    motive_tx = motive.optimizer()

    def loss(learned, mb, carry0, lstate):
        params, motive_params = learned
        policy_carry0, motive_carry0 = carry0
        out = policy.unroll(params, mb["obs"], policy_carry0, mb["start"],
                            return_features=motive.learned)
        logits, values = out[0], out[1]
        if "action_mask" in mb:
            logits = jnp.where(mb["action_mask"], logits, MASKED)
        if not motive.learned:
            return rule.loss(logits, values, mb, lstate)
        features = out[2]
        total, terms = rule.loss(logits, values, mb, lstate)
        view = PolicyView(layout=lay, logits=logits, features=features, starts=mb["start"],
                          mask=mb["mask"], action=mb["action"], obs=mb["obs"])
        motive_loss, motive_terms = motive.loss(
            motive_params, dict(mb["motive"], initial_carry=motive_carry0), view)
        return total + motive_loss, {**terms, **motive_terms}

    def apply(transform, grads, opt_state, params, lr):
        updates, opt_state = jax.vmap(transform.update)(grads, opt_state, params)
        if lr is None:  # the transformation holds its own learning rate (optax convention)
            return jax.tree.map(lambda p, u: p + u, params, updates), opt_state
        return jax.tree.map(lambda p, u: p - lr.reshape((-1,) + (1,) * (u.ndim - 1)) * u,
                            params, updates), opt_state

    def minibatch(learned, opt_states, batch, carry0, idx, lstate, lr):
        # idx is a permutation's slice, always in range: "clip" gathers without the
        # per-element out-of-range select of the default "fill" mode.
        mb = jax.tree.map(lambda x: jnp.take(x, idx, axis=1, mode="clip"), batch)
        c0 = jax.tree.map(lambda x: jnp.take(x, idx, axis=1, mode="clip"), carry0)
        grads, terms = jax.grad(loss, has_aux=True)(learned, mb, c0, lstate)
        (params, motive_params), (opt, motive_opt) = learned, opt_states
        params, opt = apply(tx, grads[0], opt, params, lr)
        if jax.tree.leaves(motive_params):
            if motive_tx is None:
                motive_params, motive_opt = apply(tx, grads[1], motive_opt, motive_params, lr)
            else:
                motive_params, motive_opt = apply(motive_tx, grads[1], motive_opt,
                                                  motive_params, None)
        return (params, motive_params), (opt, motive_opt), terms

    def permutations(key, num_sequences):
        """Sequence indices of every epoch's minibatches: [epochs · minibatches, B]."""
        if not rule.shuffle:
            return jnp.tile(jnp.arange(num_sequences), (rule.num_epochs, 1))
        keys = jax.random.split(key, rule.num_epochs)
        perms = jax.vmap(lambda k: jax.random.permutation(k, num_sequences))(keys)
        return perms.reshape(rule.num_epochs * rule.num_minibatches, -1)

    def update_all(learned, opt_states, batch, carry0, key, lstate, lr):
        def body(carry, idx):
            learned, opt_states = carry
            learned, opt_states, terms = minibatch(learned, opt_states, batch, carry0, idx,
                                                   lstate, lr)
            return (learned, opt_states), terms

        idx = permutations(key, jax.tree.leaves(batch)[0].shape[1])
        (learned, opt_states), terms = jax.lax.scan(body, (learned, opt_states), idx)
        return learned, opt_states, terms

    jit_all = jax.jit(update_all, donate_argnums=(0, 1))
    jit_minibatch = jax.jit(minibatch, donate_argnums=(0, 1))
    jit_perms = jax.jit(permutations, static_argnums=1)

    def sgd(ps, batch, carry0, key, lr):
        lr_p = lr * ps.lr_scale
        learned = (ps.params, ps.motive_params)
        opt_states = (ps.opt_state, ps.motive_opt_state)
        if rule.loop == "scan":
            learned, opt_states, terms = jit_all(learned, opt_states, batch, carry0, key,
                                                 ps.learner, lr_p)
        else:
            per_mb = []
            num_sequences = jax.tree.leaves(batch)[0].shape[1]
            for idx in np.asarray(jit_perms(key, num_sequences)):
                learned, opt_states, t = jit_minibatch(learned, opt_states, batch, carry0,
                                                       jnp.asarray(idx), ps.learner, lr_p)
                per_mb.append(t)
            terms = jax.tree.map(lambda *xs: jnp.stack(xs), *per_mb)
        terms = jax.tree.map(lambda x: x.reshape((rule.num_epochs, -1) + x.shape[1:]), terms)
        last_epoch = jax.tree.map(lambda x: x[-1].mean(axis=0), terms)  # [P]
        metrics = {k: lay.seed_mean(v) for k, v in last_epoch.items()}
        metrics.update({k: lay.seed_mean(v) for k, v in rule.metrics(ps.learner).items()})
        metrics["learning_rate"] = jnp.full((lay.num_seeds,), lr)
        ps = ps.replace(params=learned[0], motive_params=learned[1], opt_state=opt_states[0],
                        motive_opt_state=opt_states[1],
                        learner=rule.after_update(ps.learner, last_epoch))
        return ps, metrics

    return sgd
