"""The environment contract every prosocial environment follows.

An environment is a Python object holding only static configuration; its methods are pure
functions of explicit keys and states, so they jit, vmap and scan:

- ``reset(key) -> (obs, state)``
- ``step(key, state, actions) -> (obs, state, reward, terminated, truncated, info)``
- ``render(state) -> uint8[H, W, 3]``
- ``action_mask(state) -> bool[N, num_actions]``

Agents and roles. Agents are indexed 0 … N−1. ``roles`` maps a role name to the (sorted)
agents that play it; the roles partition the agents, and agents of one role are
homogeneous. One-role environments (Harvest, Cleanup, a gymnax adapter) have the default
``{"agents": (0, …, N−1)}`` and describe one agent with ``observation_space`` and
``action_space``. Every environment also has ``observation_spaces`` and ``action_spaces``,
dicts keyed by role of the spaces of *one agent* of that role (for a one-role environment
built from the two attributes above). :func:`agent_roles` checks the partition and gives
each agent's role.

Arrays carry a leading agent axis over all N agents whatever their role:

- ``actions``: int[N]; agent i's action is an id in ``0 … n_i − 1``, n_i the size of its
  role's ``Discrete`` action space. ``num_actions`` is the largest n_i. (A role with a
  ``MultiDiscrete`` action space needs its own joint-action layout; none exists yet.)
- ``reward``: float32[N].
- ``terminated``: bool[N], per agent: True from the step on which agent i's episode ends
  (it died, it finished) and on every later step of that environment episode. The actions
  of a terminated agent are ignored; its rewards are 0 unless the game says otherwise.
- ``truncated``: bool[], the environment-wide time limit (``max_steps``). The games here
  end by time limit only, so their ``terminated`` is all False.
- The environment episode is over when ``all(terminated) | truncated``
  (:func:`episode_done`); :class:`AutoReset` starts a new one then.
- ``obs``: for a one-role environment a dict of arrays ``[N, ...]`` (row i is agent i's
  observation, in ``observation_space``); for an environment with several roles a dict
  keyed by role of such dicts ``[n_role, ...]`` in the order of ``roles[role]``.
  :func:`role_observations` gives the per-role form for both.
- ``action_mask(state)``: bool[N, num_actions], True where agent i may take the action in
  ``state``. Learners mask their logits with it (``where(mask, logits, -inf)``, or a large
  negative number) before sampling; the default allows every action of the agent's space,
  so padding columns beyond n_i are False.

``info`` is a dict with at least

- ``info["events"]``: ``{name: int32[N]}``, per-agent counts of this step (apples eaten,
  beams fired, hits, waste cleaned, ...), which episode metrics sum;
- ``info["signals"]``: ``{name: array}``, other per-step arrays the environment offers to
  motives (``float32[N]`` energies, ``[N, N]`` pair data such as distances); shapes and
  dtypes are fixed per environment, see :func:`signal_spec`. Motives read events and
  signals; they never reach into the state.

Invalid input. ``step`` checks the joint action's shape (``(N,)``) and dtype (an integer
type) when it is called or traced, and raises ``ValueError``. Action *values* can only be
checked on concrete arrays: called outside ``jit``/``vmap`` an out-of-range action raises
a ``ValueError`` naming the valid range; inside a transformation (traced values) actions
are clipped to each agent's range, ``0 … n_i − 1``. A state whose structure, shapes or
dtypes differ from this environment's (a state of another game or another number of
agents) raises a ``ValueError`` at trace time (:meth:`Env.check_state`).

Subclasses implement three pure pieces, from which the base class builds ``reset`` and
``step``: ``reset_state(key) -> state``, ``step_state(key, state, actions) -> (state,
reward, terminated, truncated, info)`` and ``observe(state) -> obs``. Observing is the
expensive part of a gridworld step, so keeping it separate lets :class:`AutoReset` observe
once per step, and lets tests and users observe any state they build.

Auto-reset is a wrapper (:class:`AutoReset`), not part of ``step``, so a learner that
bootstraps at truncation can still observe the final state of an episode.

Keys. ``stochastic_reset`` and ``stochastic_step`` (class attributes or properties, True by
default) say whether ``reset_state`` and ``step_state`` draw from their key. An environment
whose start or whose dynamics are deterministic in its configuration sets the flag False,
and :class:`AutoReset` then gives the one key it receives to the other piece instead of
splitting it on every step (a split per environment is a Threefry hash, about as costly as
a matrix game's whole step on CPU). A False flag is a promise that the piece never reads
its key; tests/test_contract.py checks it on the traced program of every registered
environment.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from prosocial.envs.spaces import Dict, Discrete

Obs = dict[str, jax.Array]


class Env:
    """Base class: subclasses set the attributes below and implement the methods."""

    env_id: str = ""
    num_agents: int
    max_steps: int
    observation_space: Dict  # of one agent (one-role environments)
    action_space: Discrete  # of one agent (one-role environments)
    stochastic_reset: bool = True  # reset_state reads its key (see "Keys" above)
    stochastic_step: bool = True  # step_state reads its key

    def reset_state(self, key: jax.Array):
        raise NotImplementedError

    def step_state(self, key: jax.Array, state, actions: jax.Array):
        raise NotImplementedError

    def observe(self, state) -> Obs:
        raise NotImplementedError

    def render(self, state) -> jax.Array:
        raise NotImplementedError

    def reset(self, key: jax.Array) -> tuple[Obs, Any]:
        state = self.reset_state(key)
        return self.observe(state), state

    def step(self, key: jax.Array, state, actions: jax.Array):
        self.check_state(state)
        state, reward, terminated, truncated, info = self.step_state(key, state, actions)
        _check_end_flags(self, terminated, truncated)
        return self.observe(state), state, reward, terminated, truncated, info

    # ----------------------------------------------------------------- roles and spaces
    @property
    def roles(self) -> dict[str, tuple[int, ...]]:
        """Role name → the agents playing it (default: one role ``"agents"``)."""
        return {"agents": tuple(range(self.num_agents))}

    @property
    def observation_spaces(self) -> dict[str, Dict]:
        """Role name → the observation space of one agent of that role."""
        return {role: self.observation_space for role in self._single_role("observation")}

    @property
    def action_spaces(self) -> dict:
        """Role name → the action space of one agent of that role."""
        return {role: self.action_space for role in self._single_role("action")}

    def _single_role(self, what: str) -> tuple[str]:
        roles = tuple(self.roles)
        if len(roles) != 1:
            raise NotImplementedError(f"{self.env_id}: an environment with several roles "
                                      f"({', '.join(roles)}) must define {what}_spaces")
        return roles

    @property
    def num_actions(self) -> int:
        """The largest number of actions of any agent (the width of ``action_mask``)."""
        return int(num_actions_per_agent(self).max())

    def action_mask(self, state) -> jax.Array:
        """bool[N, num_actions]: the actions each agent may take in ``state`` (default:
        those of its role's action space)."""
        del state
        limits = num_actions_per_agent(self)
        return jnp.asarray(np.arange(limits.max())[None, :] < limits[:, None])

    # ----------------------------------------------------------------- input checks
    def check_actions(self, actions) -> jax.Array:
        """Validate the joint action and return it as int32 (see the module docstring).

        Shape and dtype are checked at trace time. Concrete values out of an agent's range
        raise ``ValueError``; traced values are clipped to the range.
        """
        shape = getattr(actions, "shape", None)
        if shape != (self.num_agents,):
            raise ValueError(
                f"{self.env_id}: actions must have shape ({self.num_agents},) "
                f"(one action per agent), got {shape}"
            )
        if not jnp.issubdtype(actions.dtype, jnp.integer):
            raise ValueError(f"{self.env_id}: actions must be integers, got dtype {actions.dtype}")
        limits = num_actions_per_agent(self)
        if not isinstance(actions, jax.core.Tracer):
            values = np.asarray(actions)
            bad = np.nonzero((values < 0) | (values >= limits))[0]
            if bad.size:
                raise ValueError(_range_message(self, values, bad, limits))
        high = int(limits[0]) - 1 if np.all(limits == limits[0]) else jnp.asarray(limits - 1)
        return jnp.clip(actions, 0, high).astype(jnp.int32)

    def check_state(self, state) -> None:
        """Raise ``ValueError`` unless ``state`` has this environment's structure, shapes and
        dtypes (those of ``reset_state``); runs at trace time, costs nothing in the program."""
        expected = self.__dict__.get("_state_spec")
        if expected is None:
            expected = jax.eval_shape(self.reset_state, jax.random.PRNGKey(0))
            self.__dict__["_state_spec"] = expected
        got_leaves, got_tree = jax.tree_util.tree_flatten_with_path(state)
        want_leaves, want_tree = jax.tree_util.tree_flatten_with_path(expected)
        if got_tree != want_tree:
            raise ValueError(f"{self.env_id}: the state does not belong to this environment: "
                             f"expected {want_tree}, got {got_tree}")
        for (path, got), (_, want) in zip(got_leaves, want_leaves, strict=True):
            shape, dtype = np.shape(got), getattr(got, "dtype", None)
            if shape != want.shape or dtype != want.dtype:
                raise ValueError(
                    f"{self.env_id}: state{jax.tree_util.keystr(path)} has shape {shape} and "
                    f"dtype {dtype}, this environment's {want.shape} and {want.dtype}; the "
                    f"state was made by another environment or with other settings (e.g. "
                    f"num_agents={self.num_agents}, map), or carries a batch axis (vmap)")


def _check_end_flags(env: Env, terminated, truncated) -> None:
    """Trace-time check of the shapes of ``step_state``'s end flags (a migration aid: the
    contract's ``terminated`` was a scalar before it became per agent)."""
    if np.shape(terminated) != (env.num_agents,) or np.shape(truncated) != ():
        raise ValueError(f"{env.env_id}: step_state must return terminated bool[N] (one flag "
                         f"per agent, N={env.num_agents}) and truncated bool[]; got shapes "
                         f"{np.shape(terminated)} and {np.shape(truncated)}")


def _range_message(env: Env, values: np.ndarray, bad: np.ndarray, limits: np.ndarray) -> str:
    roles = agent_roles(env)
    parts = [f"agent {i} ({roles[i]}) got {int(values[i])}, valid 0 … {int(limits[i]) - 1}"
             for i in bad[:4]]
    more = f" and {bad.size - 4} more" if bad.size > 4 else ""
    if np.all(limits == limits[0]):
        head = f"actions must lie in [0, {int(limits[0]) - 1}] ({int(limits[0])} actions)"
    else:
        head = "each agent's action must lie in [0, n − 1] for its role's n actions"
    return f"{env.env_id}: {head}; " + "; ".join(parts) + more


# --------------------------------------------------------------------- contract helpers
def agent_roles(env: Env) -> tuple[str, ...]:
    """The role of each agent, ``[N]``; raises ``ValueError`` unless ``env.roles`` partitions
    ``0 … N−1`` into non-empty sorted tuples and the space dicts have exactly those roles."""
    roles = env.roles
    names: list[str | None] = [None] * env.num_agents
    for role, agents in roles.items():
        agents = tuple(agents)
        if not agents or list(agents) != sorted(set(agents)):
            raise ValueError(f"{env.env_id}: role {role!r} must list distinct agents in "
                             f"increasing order, got {agents}")
        for i in agents:
            if not 0 <= i < env.num_agents or names[i] is not None:
                raise ValueError(f"{env.env_id}: agent {i} of role {role!r} is outside "
                                 f"0 … {env.num_agents - 1} or has two roles")
            names[i] = role
    if None in names:
        raise ValueError(f"{env.env_id}: agents {[i for i, r in enumerate(names) if r is None]}"
                         f" have no role")
    for what, spaces in (("observation_spaces", env.observation_spaces),
                         ("action_spaces", env.action_spaces)):
        if set(spaces) != set(roles):
            raise ValueError(f"{env.env_id}: {what} has roles {sorted(spaces)}, the "
                             f"environment {sorted(roles)}")
    return tuple(names)


def num_actions_per_agent(env: Env) -> np.ndarray:
    """int32[N]: n_i, the number of actions of each agent's (``Discrete``) action space."""
    spaces = env.action_spaces
    limits = np.zeros(env.num_agents, np.int32)
    for role, agents in env.roles.items():
        space = spaces[role]
        if not isinstance(space, Discrete):
            raise ValueError(f"{env.env_id}: role {role!r} has a {type(space).__name__} action "
                             f"space; the int[N] joint action needs Discrete spaces")
        limits[list(agents)] = space.n
    return limits


def role_observations(env: Env, obs) -> dict[str, Obs]:
    """``{role: obs of that role's agents [n_role, ...]}`` for any environment."""
    roles = tuple(env.roles)
    if len(roles) == 1:
        return {roles[0]: obs}
    if set(obs) != set(roles):
        raise ValueError(f"{env.env_id}: observations must be keyed by role {sorted(roles)}, "
                         f"got keys {sorted(obs)}")
    return dict(obs)


def agent_observation(env: Env, obs, i: int) -> dict:
    """Agent ``i``'s observation (its rows of the arrays), e.g. for per-agent adapters."""
    role = agent_roles(env)[i]
    row = env.roles[role].index(i)
    return {k: v[row] for k, v in role_observations(env, obs)[role].items()}


def split_roles(env: Env, x):
    """``{role: x[agents of role]}`` for a pytree whose leaves carry the agent axis first
    (rewards, terminated, events, masks)."""
    return {role: jax.tree.map(lambda a, idx=np.asarray(agents): a[idx], x)
            for role, agents in env.roles.items()}


def episode_done(terminated: jax.Array, truncated: jax.Array) -> jax.Array:
    """The environment episode is over: every agent terminated, or the time limit hit.
    ``terminated`` is ``[..., N]``, ``truncated`` ``[...]``."""
    return jnp.all(terminated, axis=-1) | truncated


def _step_spec(env: Env):
    key = jax.random.PRNGKey(0)
    state = jax.eval_shape(env.reset_state, key)
    return jax.eval_shape(env.step_state, key, state, jnp.zeros(env.num_agents, jnp.int32))


def event_keys(env: Env) -> tuple[str, ...]:
    """The names of ``info["events"]`` an environment reports, sorted (found by tracing one
    step abstractly; nothing runs)."""
    return tuple(sorted(_step_spec(env)[4].get("events", {})))


def signal_spec(env: Env) -> dict[str, jax.ShapeDtypeStruct]:
    """Shape and dtype of each entry of ``info["signals"]`` (traced abstractly, like
    :func:`event_keys`), sorted by name."""
    signals = _step_spec(env)[4].get("signals", {})
    return {k: jax.ShapeDtypeStruct(signals[k].shape, signals[k].dtype) for k in sorted(signals)}


def signal_keys(env: Env) -> tuple[str, ...]:
    """The names of ``info["signals"]`` an environment offers, sorted."""
    return tuple(signal_spec(env))


class Wrapper(Env):
    """Forwards everything it does not override to the wrapped environment."""

    def __init__(self, env: Env):
        self.env = env

    def __getattr__(self, name):
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    # Attributes, properties and methods of Env that read the wrapped environment's
    # configuration (``__getattr__`` does not see names the Env class itself defines).
    env_id = property(lambda self: self.env.env_id)
    roles = property(lambda self: self.env.roles)
    observation_spaces = property(lambda self: self.env.observation_spaces)
    action_spaces = property(lambda self: self.env.action_spaces)
    num_actions = property(lambda self: self.env.num_actions)

    def action_mask(self, state):
        return self.env.action_mask(state)

    def check_actions(self, actions):
        return self.env.check_actions(actions)

    def check_state(self, state):
        return self.env.check_state(state)

    def reset_state(self, key):
        return self.env.reset_state(key)

    def step_state(self, key, state, actions):
        return self.env.step_state(key, state, actions)

    def observe(self, state):
        return self.env.observe(state)

    def render(self, state):
        return self.env.render(state)


class AutoReset(Wrapper):
    """Starts a new episode inside ``step`` when the current one ends (every agent
    terminated, or the time limit: :func:`episode_done`).

    The returned observation and state belong to the new episode; the reward, the end flags
    and ``info`` belong to the step that ended the old one. ``info["final_state"]`` is the
    last state of the old episode (equal to the returned state on other steps): a learner
    that bootstraps at truncation observes it, only when an episode ended, with
    ``env.observe(info["final_state"])``.

    The reset is computed on every step (under ``vmap`` both branches of a choice are) and
    selected where the episode ended. Its key and the step's are the two halves of
    ``split(key)``; when the wrapped environment declares one of the pieces deterministic
    (``stochastic_step`` or ``stochastic_reset`` False), the other one receives ``key``
    itself and no split is computed.
    """

    # A wrapper does not inherit the flags of the environment it wraps (``Wrapper`` keeps
    # Env's True: a wrapper may draw in its own step); AutoReset reads the key exactly
    # where the wrapped pieces do.
    stochastic_reset = property(lambda self: self.env.stochastic_reset)
    stochastic_step = property(lambda self: self.env.stochastic_step or self.env.stochastic_reset)

    def step_state(self, key, state, actions):
        if self.env.stochastic_step and self.env.stochastic_reset:
            key_step, key_reset = jax.random.split(key)
        else:  # at most one of the two reads a key: it gets this one unsplit
            key_step = key_reset = key
        next_state, reward, terminated, truncated, info = self.env.step_state(
            key_step, state, actions)
        _check_end_flags(self, terminated, truncated)
        done = episode_done(terminated, truncated)
        reset_state = self.env.reset_state(key_reset)
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), reset_state, next_state)
        return state, reward, terminated, truncated, dict(info, final_state=next_state)
