"""A model of other agents (MOA; specs.md §9.4), the part that SI, SCM and EMuReL share.

Agent k's MOA reads the policy's shared convolution features x_t of its observation o_t and
the one-hot actions of all N agents at t in k's own-first order (k, then the others in
increasing index), and predicts the others' actions at t + 1:

    z_t = tower(x_t)                         tanh Dense layers ``moa_0, moa_1, …``
    g_t = [z_t, onehot(a_t)] W_x + b         input gates [4H] (``lstm``)
    (c_t, u_t) = LSTM((c_{t−1}, u_{t−1}), g_t), the state zeroed where an episode starts at t
    ℓ_t = u_t W_o + b_o                      logits [(N − 1), |A|] of a^{−k}_{t+1} (``out``)

Initialisation: the tower with normalised columns (``hidden_init_scale`` of the policy's
network), the LSTM as Keras's (Glorot input kernel, orthogonal recurrent kernel, forget
bias 1; :func:`prosocial.nets.lstm_params`), the head Glorot-uniform with zero bias (the
Keras default of the reference).

Counterfactual own actions (SI's influence, §9.4 step 1): the input projection is linear, so
setting the own-action slot to a' changes the gates by a row swap,

    g_t(a') = g_t − W_x[own slot, a_t] + W_x[own slot, a'],

and one LSTM step per a' from the same state gives the predictions for every a'.

What SCM (§9.5) and EMuReL (§9.6) take from it is the hidden state the MOA carries into a
step, u_{t−1} (:meth:`ModelOfOtherAgents.hidden` of the state before step t, as returned by
:meth:`ModelOfOtherAgents.unroll`; 0 at an episode's first step), used there under a
stop-gradient.

Parameters are stacked per parameter set on a leading axis P, like the policy's
(``prosocial.nets``); every function takes inputs ``[P, ...]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from prosocial import nets

Params = dict
Carry = tuple  # (c, h), each [P, B, H]


def own_first_order(num_agents: int) -> np.ndarray:
    """``[N, N]`` int: row k lists the agents in k's own-first order (k, then the others in
    increasing index); ``actions[..., order]`` turns joint actions ``[..., N]`` into every
    agent's own-first actions ``[..., N, N]``."""
    return np.array([[k] + [j for j in range(num_agents) if j != k]
                     for k in range(num_agents)])


def check_moa_env(motive_name: str, env) -> tuple[int, int, np.ndarray]:
    """What a motive with a model of other agents needs of ``env``: the ``rgb`` view it
    encodes and the ``visible`` flags it masks with (ValueError naming the motive
    otherwise). Returns (N, number of actions, :func:`own_first_order`)."""
    missing = {"rgb", "visible"} - set(env.observation_space.spaces)
    if missing:
        raise ValueError(f"motive {motive_name!r} needs observations {sorted(missing)}, which "
                         f"{env.env_id or type(env).__name__} does not give")
    return env.num_agents, env.num_actions, own_first_order(env.num_agents)


def next_action_targets(own_first: jax.Array, visible: jax.Array, valid: jax.Array,
                        only_when_visible: bool = True) -> tuple[jax.Array, jax.Array]:
    """The MOA's training targets for a rollout: what step t predicts, and which of it counts.

    Args:
      own_first: int ``[T, P, B, N]``, each agent's own-first actions at every step.
      visible: ``[T, P, B, N − 1]``, 1 where the other agent is in view at t.
      valid: bool ``[T, P, B]``, False on the last step of an episode (its next actions
        belong to another episode).
      only_when_visible: weigh the others by their visibility at t + 1 (the reference's
        ``train_moa_only_when_visible``); else every other counts.

    Returns:
      ``next_others`` int ``[T, P, B, N − 1]`` = a^{−k}_{t+1} (0 on the last step) and the
      weights ``next_visible`` ``[T, P, B, N − 1]`` v_j(t + 1): visible[t + 1] (or 1), times
      valid[t], and 0 on the rollout's last step, which has no next action here.
    """
    t = own_first.shape[0]
    others = own_first[..., 1:]
    next_others = jnp.concatenate([others[1:], jnp.zeros_like(others[:1])])
    next_visible = jnp.concatenate([visible[1:], jnp.zeros_like(visible[:1])])
    if not only_when_visible:
        next_visible = jnp.where(jnp.arange(t)[:, None, None, None] < t - 1, 1, 0) \
            * jnp.ones_like(next_visible)
    return next_others, next_visible * valid[..., None]


def prediction_accuracy(predicted: jax.Array, next_others: jax.Array,
                        weights: jax.Array) -> jax.Array:
    """Weighted share of correct predictions per parameter set, ``[P]``:

        acc = Σ_{t,b,j} w_j(t)·1[â^j_{t+1} = a^j_{t+1}] / max(Σ_{t,b,j} w_j(t), 1)

    Args:
      predicted: int ``[T, P, B, N − 1]``, â = the argmax of :meth:`ModelOfOtherAgents.predict`.
      next_others: int ``[T, P, B, N − 1]``; weights: ``[T, P, B, N − 1]`` (both from
        :func:`next_action_targets`).
    """
    hits = (predicted == next_others).astype(jnp.float32)
    w = weights.astype(jnp.float32)
    return (hits * w).sum(axis=(0, 2, 3)) / jnp.maximum(w.sum(axis=(0, 2, 3)), 1.0)


def cross_entropy_loss(logits: jax.Array, next_others: jax.Array, next_visible: jax.Array,
                       mask: jax.Array) -> jax.Array:
    """MOA cross-entropy per parameter set k, ``[P]``:

        L_k = Σ_{b,t} mask(b, t)·Σ_j v_j(b, t)·CE_j(b, t) / ((N − 1)·Σ_{b,t} mask(b, t))

    CE_j(b, t) = −log softmax(ℓ_{b,t,j})[a^j_{t+1}], ``mask`` the minibatch's valid
    (unpadded) steps and v = ``next_visible``: the mean over all (other, valid step)
    entries, the masked ones counting as 0, as the reference's ``reduce_mean`` of the masked
    cross-entropy (specs.md §9.4). Dividing by the visible entries only would scale the loss
    by 1 / (visible fraction).

    Args:
      logits: ``[P, B, L, N − 1, A]``; next_others: int ``[P, B, L, N − 1]``;
      next_visible: ``[P, B, L, N − 1]``; mask: bool ``[P, B, L]`` (False on padding).
    """
    mask = mask.astype(jnp.float32)
    w = next_visible.astype(jnp.float32) * mask[..., None]
    # The target's log-probability picked by a one-hot select rather than a gather: the
    # same value, and its gradient is a select instead of a scatter-add (slow on XLA:CPU).
    picked = jnp.arange(logits.shape[-1]) == next_others[..., None]
    ce = -jnp.where(picked, jax.nn.log_softmax(logits), 0.0).sum(axis=-1)
    entries = mask.sum(axis=(1, 2)) * logits.shape[-2]
    return (ce * w).sum(axis=(1, 2, 3)) / jnp.maximum(entries, 1.0)


class ModelOfOtherAgents:
    """Agent k's model of the other agents (module docstring), for N agents and |A| actions.

    Its parameters are a dict ``{"moa_0", …, "lstm", "out"}`` stacked ``[P, ...]``; methods
    are pure functions of them. Shapes: P parameter sets, B (or M) rows per set, T or L
    steps, H = ``lstm_size``, D the feature width.
    """

    prefix = "moa"

    def __init__(self, hidden_sizes: Sequence[int], lstm_size: int, num_agents: int,
                 num_actions: int):
        if lstm_size < 1 or any(h < 1 for h in hidden_sizes):
            raise ValueError("the MOA's LSTM size and tower widths must be positive")
        if num_agents < 2 or num_actions < 1:
            raise ValueError(f"a model of other agents needs ≥ 2 agents and ≥ 1 action, got "
                             f"{num_agents} agents, {num_actions} actions")
        self.hidden_sizes = tuple(hidden_sizes)
        self.lstm_size = lstm_size
        self.num_agents, self.num_actions = num_agents, num_actions

    @staticmethod
    def check_config(cfg) -> None:
        """ValueError unless a motive config's MOA sizes (``moa_lstm_size``,
        ``moa_hidden_sizes``) are positive; for a motive's constructor, before the env is
        known."""
        if not cfg.moa_lstm_size >= 1 or any(h < 1 for h in cfg.moa_hidden_sizes):
            raise ValueError("motive.moa_lstm_size and moa_hidden_sizes must be positive")

    @classmethod
    def from_config(cls, cfg, num_agents: int, num_actions: int) -> ModelOfOtherAgents:
        """The model a motive config describes, for the env's agents and actions."""
        return cls(cfg.moa_hidden_sizes, cfg.moa_lstm_size, num_agents, num_actions)

    # --- parameters and state -----------------------------------------------------------

    def init(self, keys: jax.Array, feature_width: int, tower_init_scale: float = 1.0
             ) -> Params:
        """One parameter set per key, stacked ``[P, ...]``, for features of ``feature_width``.

        Each key is split into (tower layers…, LSTM input kernel, LSTM recurrent kernel,
        head)."""
        n, a, h = self.num_agents, self.num_actions, self.lstm_size

        def one(key):
            keys = iter(jax.random.split(key, len(self.hidden_sizes) + 3))
            params = nets.mlp_params([next(keys) for _ in self.hidden_sizes], feature_width,
                                     self.hidden_sizes, tower_init_scale, prefix=self.prefix)
            width = self.hidden_sizes[-1] if self.hidden_sizes else feature_width
            params["lstm"] = nets.lstm_params(next(keys), next(keys), width + n * a, h)
            params["out"] = nets.glorot_dense(next(keys), h, (n - 1) * a)
            return params

        return jax.vmap(one)(keys)

    def initial_carry(self, num_params: int, batch: int) -> Carry:
        """Zero LSTM state ``(c, h)``, each ``[P, B, H]``."""
        zeros = jnp.zeros((num_params, batch, self.lstm_size), jnp.float32)
        return (zeros, zeros)

    @staticmethod
    def hidden(carry: Carry) -> jax.Array:
        """u, the hidden state of a carry ``(c, u)`` (``[..., H]``): the LSTM's output at the
        step that produced it, and what SCM / EMuReL read as u_{t−1} from the state carried
        into step t."""
        return carry[1]

    # --- one step ------------------------------------------------------------------------

    def gates(self, params: Params, features: jax.Array, own_first_actions: jax.Array
              ) -> jax.Array:
        """Input gates g = [tower(x), onehot(a)] W_x + b, ``[P, M, 4H]``.

        Args:
          features: ``[P, M, D]``, the policy's conv features.
          own_first_actions: int ``[P, M, N]``, the joint action own first.
        """
        x = nets.mlp(params, features, prefix=self.prefix)
        onehot = jax.nn.one_hot(own_first_actions, self.num_actions)
        x = jnp.concatenate([x, onehot.reshape(own_first_actions.shape[:-1] + (-1,))], axis=-1)
        return nets.lstm_input(params, x)

    def own_action_rows(self, params: Params) -> jax.Array:
        """``[P, A, 4H]``: W_x's rows of the own-action one-hot slot (the first N·|A| block
        after the tower's outputs)."""
        kernel = params["lstm"]["input_kernel"]
        d = kernel.shape[1] - self.num_agents * self.num_actions
        return kernel[:, d:d + self.num_actions]

    def step(self, params: Params, carry: Carry, gates_x: jax.Array, start: jax.Array
             ) -> tuple[Carry, jax.Array]:
        """One LSTM step for ``gates_x`` ``[P, B, 4H]`` from ``carry`` ``(c, u)`` ``[P, B, H]``
        zeroed where ``start`` (bool ``[P, B]``): returns the new carry and its output
        u_t ``[P, B, H]``."""
        return nets.lstm_cell(params, nets.reset_carry(carry, start), gates_x)

    def counterfactual_step(self, params: Params, carry: Carry, gates_x: jax.Array,
                            own_action: jax.Array, start: jax.Array) -> jax.Array:
        """The step's output for every own action a', ``[P, B, A, H]``.

        From the same state as :meth:`step` (``carry`` zeroed where ``start``), with the
        gates g(a') = g − W_x[own, a_t] + W_x[own, a'] for ``own_action`` a_t int ``[P, B]``.
        Entry a' = a_t is the ordinary step's output up to the rounding of g − r + r.
        """
        c, h = nets.reset_carry(carry, start)
        rows = self.own_action_rows(params)  # [P, A, 4H]
        num_a = self.num_actions
        # The recurrent term h·W_h is the same for every a': computed once, not A times.
        recurrent = jnp.einsum("pbh,phg->pbg", h, params["lstm"]["recurrent_kernel"])
        base = gates_x + recurrent - jnp.einsum(
            "pea,pag->peg", jax.nn.one_hot(own_action, num_a), rows)
        gates = base[:, :, None] + rows[:, None]  # [P, B, A, 4H]
        _, h_cf = nets.lstm_update(gates, c[:, :, None])
        return h_cf

    def predict(self, params: Params, h: jax.Array) -> jax.Array:
        """Logits of the others' next actions ℓ = u W_o + b_o: ``[P, ..., H]`` →
        ``[P, ..., N − 1, A]`` (others in increasing index)."""
        out = nets.dense(params["out"], h)
        return out.reshape(out.shape[:-1] + (self.num_agents - 1, self.num_actions))

    # --- sequences -----------------------------------------------------------------------

    def unroll(self, params: Params, gates_x: jax.Array, carry: Carry, starts: jax.Array
               ) -> tuple[Carry, tuple[Carry, jax.Array]]:
        """The LSTM over time: ``gates_x`` ``[T, P, B, 4H]``, ``starts`` bool ``[T, P, B]``.

        Returns the final carry and, per step, the state carried into the step after the
        episode-start reset (``(c, u)`` ``[T, P, B, H]``; u_{t−1} of SCM / EMuReL) and the
        outputs u_t ``[T, P, B, H]``.
        """

        def body(c, x):
            gx, st = x
            c = nets.reset_carry(c, st)
            new, h = nets.lstm_cell(params, c, gx)
            return new, (c, h)

        return jax.lax.scan(body, carry, (gates_x, starts))

    def carried_and_outputs(self, params: Params, gates_x: jax.Array, carry: Carry,
                            starts: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The same recurrence as :meth:`unroll` through :func:`prosocial.nets.lstm_scan`
        (hand-written gradient, about twice as fast to differentiate on XLA:CPU as the scan
        of :meth:`unroll`): returns u_{t−1}, the hidden state carried into each step after
        the episode-start reset (0 where ``starts``), and the outputs u_t, both
        ``[T, P, B, H]``."""
        outputs = nets.lstm_scan(params["lstm"]["recurrent_kernel"], gates_x, carry, starts)
        carried = jnp.concatenate([self.hidden(carry)[None], outputs[:-1]])
        return jnp.where(starts[..., None], 0.0, carried), outputs

    def sequence_logits(self, params: Params, features: jax.Array,
                        own_first_actions: jax.Array, initial_carry: Carry,
                        starts: jax.Array) -> jax.Array:
        """Predictions on training sequences, ``[P, B, L, N − 1, A]``.

        Args:
          features: ``[P, B·L, D]`` (sequence-major rows); own_first_actions: int
            ``[P, B, L, N]``; initial_carry: ``(c, u)`` ``[P, B, H]`` at the sequence starts;
            starts: bool ``[P, B, L]``.
        """
        p, b, length = starts.shape
        gates = self.gates(params, features, own_first_actions.reshape(p, b * length, -1))
        gates = jnp.moveaxis(gates.reshape(p, b, length, -1), 2, 0)  # [L, P, B, 4H]
        _, (_, outputs) = self.unroll(params, gates, initial_carry, jnp.moveaxis(starts, 2, 0))
        logits = self.predict(params, jnp.moveaxis(outputs, 1, 0))  # [P, L, B, N-1, A]
        return jnp.swapaxes(logits, 1, 2)

    def loss(self, params: Params, features: jax.Array, own_first_actions: jax.Array,
             initial_carry: Carry, starts: jax.Array, next_others: jax.Array,
             next_visible: jax.Array, mask: jax.Array) -> jax.Array:
        """:func:`cross_entropy_loss` ``[P]`` of :meth:`sequence_logits` (the arguments of
        both, sequences ``[P, B, L, ...]``)."""
        logits = self.sequence_logits(params, features, own_first_actions, initial_carry,
                                      starts)
        return cross_entropy_loss(logits, next_others, next_visible, mask)
