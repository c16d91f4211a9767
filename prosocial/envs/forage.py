"""Forage Survival (specs §5; [COLLINS] §2.1, App. B): survive on berries, pass them on.

Agents move on an M × N grid (default 4 × 4, 2 agents), collect berries (reward r_b each)
and store up to B of them; each agent has energy e ∈ {0 … E} and health h ∈ {0 … H}.
Status: Healthy (e > 0, h = H) acts; Helpless (e = 0, h > 0) cannot act and loses one
health per step; Dead (e = h = 0) leaves the grid for the rest of the episode. Survival
score μ_i = h_i + e_i + E·b_i. Six actions: 0 up, 1 down, 2 left, 3 right, 4 stay, 5 throw
(pass one stored berry to the living agent within Manhattan distance D with the lowest μ).

Consuming a berry sets e = E and h = H. Automatic consumption (the paper's decision module):

1. at the start of a step, h < H and b > 0;
2. on receiving a thrown berry, h < H (ours: also when the inventory is full, b = B;
   otherwise a receiver at full health stores it);
3. on collecting a berry while b = B;
4. when energy has just decayed to 0 and b > 0 (so an agent holding berries never becomes
   Helpless).

Step order (§5.4, ours; D-34): (1) rule-1 consumption; (2) moves of Healthy agents through
the movement core (§1.4: random priority for contested cells, swaps blocked, Helpless
agents keep blocking their cells, dead agents block nothing; off-grid moves stay);
(3) collection by Healthy agents on berry cells (+r_b; store, or rule 3), each collected
berry replaced on a uniformly random cell with no living agent and no berry, so |I| berries
are always on the grid; (4) throws of Healthy agents, one at a time in a uniformly random
order, distances after the moves, ties of μ to the lower index, no living agent in range
or no stored berry = a failed throw that keeps the berry; (5) decay: Healthy agents lose 1
energy (rule 4), agents Helpless at the start of this phase lose 1 health and die at 0
(reward ``death_punishment``). An agent at full energy acts for E steps; a Helpless agent
dies H steps after its energy reached 0 unless it receives a berry.

Contract (``prosocial/envs/core.py``): ``terminated[i]`` is True from the step agent i dies;
the episode ends when all are dead, or is truncated after ``max_steps`` steps (the paper's
``max_episode_length``, 10 000). A Helpless or dead agent's action is ignored; its
:meth:`Forage.action_mask` row allows only STAY, so learners store the forced STAY (D-36).
An agent that is Helpless at s_t but eats a stored berry at phase 1 acts normally, and its
mask allows every action.

Observation (§5.7, D-35), ``{"obs": float32[N, D]}`` with D = 56 for 4 × 4 and 2 agents:
own cell one-hot (M·N; zeros when dead), e/E, h/H, b/B; for each other agent j in
increasing index: alive, cell one-hot, e_j/E, h_j/H, b_j/B, d_ij/d_max (all zeros when j is
dead; d_max = M + N − 2); the berry map (M·N bits).

``info["events"]`` (int32[N] per step): ``berries_collected``, ``throws`` (berries given),
``berries_received``, ``throws_failed``, ``eaten_start`` / ``eaten_thrown`` /
``eaten_collected`` / ``eaten_decay`` (consumptions by rule 1–4), ``became_helpless``,
``recovered`` (Helpless at s_t, Healthy at s_{t+1}), ``died`` and ``alive`` (1 while the
agent is alive at the start of the step: its episode sum is the survival time, §10).
Responsibilities opened / satisfied / violated depend on the shaping's flags and are the
``ir`` motive's diagnostics (``prosocial.motives.responsibility``), not env events.

``info["signals"]`` carry what implicit responsibility reads (§5.6), for s_{t+1} (the state
the step reached) and, prefixed ``prev_``, for s_t: ``energy``, ``health``, ``berries``
(int32[N]) and ``distance`` (int32[N, N], Manhattan); plus the constants ``max_energy``,
``max_health`` and ``throw_distance`` (int32[]), so a motive needs nothing but signals.

Parameters (§5.5, [COLLINS] Table 1 unless marked): ``energy_rule`` chooses E and H
(D-27): ``table1`` (8 and 8, or ``max_energy``/``max_health``), ``eq11`` (E = H = M + N −
2) or ``eq9`` (E = H = d_max − 1, z = 1); berry capacity B = 4 is ours (D-28). The
responsibility punishment p is the ``ir`` motive's (``MotiveConfig.responsibility_punishment``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from prosocial.envs import grid as G
from prosocial.envs.core import Env
from prosocial.envs.spaces import Box, Dict, Discrete

UP, DOWN, LEFT, RIGHT, STAY, THROW = range(6)
ACTION_NAMES = ("UP", "DOWN", "LEFT", "RIGHT", "STAY", "THROW")
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1), (0, 0), (0, 0)], np.int32)
ENERGY_RULES = ("table1", "eq11", "eq9")

BACKGROUND = (0, 0, 0)
BERRY_COLOUR = (220, 20, 60)


@struct.dataclass
class ForageState:
    """State of one Forage Survival environment."""

    pos: jax.Array  # int32[N, 2] (row, col); a dead agent keeps the cell where it died
    energy: jax.Array  # int32[N] in 0 … E
    health: jax.Array  # int32[N] in 0 … H
    berries: jax.Array  # int32[N] stored berries, 0 … B
    berry: jax.Array  # bool[M, N] berries on the grid (exactly num_agents of them)
    t: jax.Array  # int32 steps taken in this episode


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"forage: {name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def _finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ValueError(f"forage: {name} must be a finite number, got {value!r}")
    return float(value)


def energy_and_health(energy_rule: str, grid_size: tuple[int, int], max_energy, max_health):
    """(E, H) under ``energy_rule`` (§5.5, D-27): ``table1`` gives the given values (8 and 8
    by default); ``eq11`` E = H = M + N − 2 ([COLLINS] eq. 11); ``eq9`` E = H = d_max − z
    with d_max = (M − 1) + (N − 1) and z = 1 (eq. 9)."""
    if energy_rule not in ENERGY_RULES:
        raise ValueError(f"forage: energy_rule must be one of {ENERGY_RULES}, got {energy_rule!r}")
    if energy_rule == "table1":
        return (8 if max_energy is None else max_energy), (8 if max_health is None else max_health)
    if max_energy is not None or max_health is not None:
        raise ValueError(f"forage: energy_rule={energy_rule!r} derives max_energy and "
                         f"max_health from the grid; leave them unset (or use 'table1')")
    m, n = grid_size
    value = m + n - 2 if energy_rule == "eq11" else m + n - 3
    return value, value


class Forage(Env):
    """Forage Survival (module docstring)."""

    env_id = "forage"

    def __init__(self, num_agents: int = 2, max_steps: int = 10_000,
                 grid_size: tuple[int, int] = (4, 4), max_energy: int | None = None,
                 max_health: int | None = None, energy_rule: str = "table1",
                 throw_mdistance: int = 2, berry_capacity: int = 4, berry_reward: float = 0.1,
                 death_punishment: float = 0.0):
        self.num_agents = _positive_int("num_agents", num_agents)
        self.max_steps = _positive_int("max_steps", max_steps)
        if (not isinstance(grid_size, tuple | list) or len(grid_size) != 2
                or any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1
                       for v in grid_size)):
            raise ValueError(f"forage: grid_size must be two positive integers (rows, cols), "
                             f"got {grid_size!r}")
        self.grid_size = (int(grid_size[0]), int(grid_size[1]))
        cells = self.grid_size[0] * self.grid_size[1]
        if cells < 2 * self.num_agents:
            raise ValueError(f"forage: a {self.grid_size[0]}×{self.grid_size[1]} grid has "
                             f"{cells} cells; num_agents={self.num_agents} agents and their "
                             f"{self.num_agents} berries need {2 * self.num_agents}")
        e, h = energy_and_health(energy_rule, self.grid_size, max_energy, max_health)
        self.energy_rule = energy_rule
        self.max_energy = _positive_int("max_energy", e)
        self.max_health = _positive_int("max_health", h)
        self.throw_mdistance = _positive_int("throw_mdistance", throw_mdistance, 0)
        self.berry_capacity = _positive_int("berry_capacity", berry_capacity)
        self.berry_reward = _finite("berry_reward", berry_reward)
        self.death_punishment = _finite("death_punishment", death_punishment)

        n, (rows, cols) = self.num_agents, self.grid_size
        self.num_cells = cells
        self.max_distance = rows + cols - 2
        self.others = jnp.asarray(G.others_index(n))
        self.walkable = jnp.ones(self.grid_size, bool)
        self.palette = jnp.asarray(np.concatenate([
            np.array([BACKGROUND, BERRY_COLOUR], np.uint8), G.agent_colours(n),
            G.agent_colours(n) // 2]))  # Helpless agents drawn at half brightness
        self.obs_size = cells + 3 + (n - 1) * (cells + 5) + cells
        self.action_space = Discrete(len(ACTION_NAMES))
        self.observation_space = Dict({"obs": Box(0.0, 1.0, (self.obs_size,), "float32")})

    # ----------------------------------------------------------------- helpers
    def status(self, energy, health):
        """(healthy, helpless, alive) bool arrays from energy and health (§5.1)."""
        healthy = energy > 0
        alive = healthy | (health > 0)
        return healthy, alive & ~healthy, alive

    def survival_score(self, energy, health, berries):
        """μ = h + e + E·b: steps an agent survives without collecting another berry."""
        return health + energy + self.max_energy * berries

    def distances(self, pos) -> jax.Array:
        """int32[N, N] Manhattan distances between the agents' cells."""
        return jnp.abs(pos[:, None, :] - pos[None, :, :]).sum(-1)

    def _cells(self, pos) -> jax.Array:
        return pos[:, 0] * self.grid_size[1] + pos[:, 1]

    @staticmethod
    def _random_ranks(bits) -> jax.Array:
        """int32[K]: each entry's place in a uniformly random order (0 first), from iid
        random ``bits[K]``; ties (probability 2⁻³²) go to the lower index.

        Pairwise comparisons instead of a sort: K is the number of agents, and sorts under
        ``vmap`` are several times slower on CPU.
        """
        ids = jnp.arange(bits.shape[0])
        before = (bits[None, :] > bits[:, None]) | (
            (bits[None, :] == bits[:, None]) & (ids[None, :] < ids[:, None]))
        return before.sum(axis=1, dtype=jnp.int32)

    def _pick_cells(self, bits, free, count: int) -> jax.Array:
        """int32[count]: distinct cells drawn one after another, each uniformly among the
        ``free`` cells not drawn yet (the highest of iid random ``bits[M·N]``)."""
        cells = jnp.arange(self.num_cells, dtype=jnp.int32)
        picks = []
        for _ in range(count):  # static and small: one argmax per pick (no sort)
            pick = jnp.argmax(jnp.where(free, bits, 0)).astype(jnp.int32)
            free = free & (cells != pick)
            picks.append(pick)
        return jnp.stack(picks)

    def _cell_mask(self, pos, which) -> jax.Array:
        """bool[M·N]: the cells of the agents flagged in ``which``."""
        onehot = self._cells(pos)[:, None] == jnp.arange(self.num_cells)
        return jnp.any(onehot & which[:, None], axis=0)

    # ----------------------------------------------------------------- contract
    def reset_state(self, key: jax.Array) -> ForageState:
        """Agents on distinct random cells with e = E, h = H, b = 0; one berry per agent on
        distinct random cells without an agent (§5.1)."""
        n, (_, cols) = self.num_agents, self.grid_size
        # Bits ≥ 1 so that a drawn cell (bits 0 once excluded) is never drawn again.
        bits = jax.random.bits(key, (self.num_cells,)) | 1
        cells = self._pick_cells(bits, jnp.ones(self.num_cells, bool), 2 * n)
        pos = jnp.stack([cells[:n] // cols, cells[:n] % cols], axis=-1)
        berry = jnp.any(cells[n:, None] == jnp.arange(self.num_cells), axis=0)
        return ForageState(
            pos=pos, energy=jnp.full((n,), self.max_energy, jnp.int32),
            health=jnp.full((n,), self.max_health, jnp.int32),
            berries=jnp.zeros((n,), jnp.int32), berry=berry.reshape(self.grid_size),
            t=jnp.zeros((), jnp.int32))

    def action_mask(self, state: ForageState) -> jax.Array:
        """bool[N, 6]: every action for an agent that will be Healthy after this step's
        start-of-step consumption, only STAY for Helpless and dead agents."""
        e, h, b = state.energy, state.health, state.berries
        acts = (e > 0) | ((h > 0) & (h < self.max_health) & (b > 0))
        return acts[:, None] | (jnp.arange(len(ACTION_NAMES)) == STAY)[None, :]

    def step_state(self, key: jax.Array, state: ForageState, actions: jax.Array):
        self.check_state(state)
        actions = self.check_actions(actions)
        # One draw for the step: move priorities, throw order, scores of the cells.
        bits = jax.random.bits(key, (2 * self.num_agents + self.num_cells,)) | 1
        n, big_e, big_h, cap = self.num_agents, self.max_energy, self.max_health, \
            self.berry_capacity
        ids = jnp.arange(n)
        e, h, b = state.energy, state.health, state.berries
        _, helpless0, alive = self.status(e, h)

        # 1. Start-of-step consumption (rule 1).
        eat_start = alive & (h < big_h) & (b > 0)
        e, h, b = jnp.where(eat_start, big_e, e), jnp.where(eat_start, big_h, h), b - eat_start
        acting = e > 0

        # 2. Moves of Healthy agents; dead agents are parked off the grid so they block nothing.
        moving = acting & (actions < STAY)
        target = state.pos + jnp.asarray(MOVES)[actions] * moving[:, None]
        here = jnp.where(alive[:, None], state.pos, -1)
        pos = G.resolve_moves(None, here, jnp.where(alive[:, None], target, -1), self.walkable,
                              priority=self._random_ranks(bits[:n]))
        pos = jnp.where(alive[:, None], pos, state.pos)

        # 3. Collection (reward; store or rule 3) and replacement.
        berry = state.berry.reshape(-1)
        collected = acting & berry[self._cells(pos)]
        eat_collected = collected & (b >= cap)
        b = b + (collected & ~eat_collected)
        e = jnp.where(eat_collected, big_e, e)
        berry = berry & ~self._cell_mask(pos, collected)
        free = ~berry & ~self._cell_mask(pos, alive)
        spots = self._pick_cells(bits[2 * n:], free, n)
        placed = ids < collected.sum()
        berry = berry | jnp.any((spots[:, None] == jnp.arange(self.num_cells))
                                & placed[:, None], axis=0)

        # 4. Throws, one agent at a time in a random order.
        dist = self.distances(pos)
        throwing = acting & (actions == THROW)
        place = self._random_ranks(bits[n:2 * n])  # agent i throws k-th where place[i] = k

        def throw(k, carry):
            e, h, b, given, received, failed, eat_thrown = carry
            me = place == k  # one-hot of this turn's agent i
            candidate = alive & ~me & (jnp.sum(jnp.where(me[:, None], dist, 0), axis=0)
                                        <= self.throw_mdistance)
            mu = self.survival_score(e, h, b)
            j = jnp.argmin(jnp.where(candidate, mu * n + ids, jnp.iinfo(jnp.int32).max))
            tries = jnp.any(me & throwing)
            ok = tries & jnp.any(me & (b > 0)) & jnp.any(candidate)
            to = (ids == j) & ok
            eats = to & ((h < big_h) | (b >= cap))
            b = b - (me & ok) + (to & ~eats)
            e, h = jnp.where(eats, big_e, e), jnp.where(eats, big_h, h)
            return (e, h, b, given + (me & ok), received + to, failed + (me & tries & ~ok),
                    eat_thrown + eats)

        zeros = jnp.zeros((n,), jnp.int32)
        e, h, b, given, received, failed, eat_thrown = jax.lax.fori_loop(
            0, n, throw, (e, h, b, zeros, zeros, zeros, zeros), unroll=True)

        # 5. Decay (rule 4), health loss of the Helpless, deaths.
        healthy5 = e > 0
        helpless5 = (e == 0) & (h > 0)
        e = e - healthy5
        eat_decay = healthy5 & (e == 0) & (b > 0)
        e, b = jnp.where(eat_decay, big_e, e), b - eat_decay
        h = h - helpless5
        died = helpless5 & (h == 0)

        t = state.t + 1
        next_state = ForageState(pos=pos, energy=e, health=h, berries=b,
                                 berry=berry.reshape(self.grid_size), t=t)
        reward = (self.berry_reward * collected + self.death_punishment * died).astype(
            jnp.float32)
        terminated = (e == 0) & (h == 0)
        i32 = jnp.int32
        events = {
            "berries_collected": collected.astype(i32), "throws": given.astype(i32),
            "berries_received": received.astype(i32), "throws_failed": failed.astype(i32),
            "eaten_start": eat_start.astype(i32), "eaten_thrown": eat_thrown.astype(i32),
            "eaten_collected": eat_collected.astype(i32), "eaten_decay": eat_decay.astype(i32),
            "became_helpless": (healthy5 & (e == 0)).astype(i32),
            "recovered": (helpless0 & (e > 0)).astype(i32), "died": died.astype(i32),
            "alive": alive.astype(i32),
        }
        return next_state, reward, terminated, t >= self.max_steps, {
            "events": events, "signals": self._signals(state, next_state)}

    def _signals(self, before: ForageState, after: ForageState) -> dict[str, jax.Array]:
        out = {}
        for prefix, s in (("prev_", before), ("", after)):
            out.update({f"{prefix}energy": s.energy, f"{prefix}health": s.health,
                        f"{prefix}berries": s.berries,
                        f"{prefix}distance": self.distances(s.pos).astype(jnp.int32)})
        out.update(max_energy=jnp.int32(self.max_energy), max_health=jnp.int32(self.max_health),
                   throw_distance=jnp.int32(self.throw_mdistance))
        return out

    def observe(self, state: ForageState) -> dict[str, jax.Array]:
        """The §5.7 vector of every agent (module docstring)."""
        self.check_state(state)
        n = self.num_agents
        _, _, alive = self.status(state.energy, state.health)
        live = alive.astype(jnp.float32)
        onehot = ((self._cells(state.pos)[:, None] == jnp.arange(self.num_cells))
                  & alive[:, None]).astype(jnp.float32)
        stats = jnp.stack([state.energy / self.max_energy, state.health / self.max_health,
                           state.berries / self.berry_capacity], axis=-1).astype(jnp.float32)
        stats = stats * live[:, None]
        berry = jnp.broadcast_to(state.berry.reshape(-1).astype(jnp.float32),
                                 (n, self.num_cells))
        parts = [onehot, stats]
        if n > 1:
            rel = (self.distances(state.pos) / max(self.max_distance, 1)).astype(jnp.float32)
            block = jnp.concatenate([live[:, None], onehot, stats], axis=-1)  # [N, M·N + 4]
            # Row i, slot k holds agent k + (k ≥ i): the others in increasing index, picked
            # by a select between two shifted copies (XLA:CPU gathers are slow under vmap).
            later = (np.arange(n - 1)[None, :] >= np.arange(n)[:, None])[..., None]
            others = jnp.where(later, block[None, 1:], block[None, :-1])
            near = jnp.where(later[..., 0], rel[:, 1:], rel[:, :-1]) * others[..., 0]
            others = jnp.concatenate([others, near[..., None]], axis=-1)
            parts.append(others.reshape(n, -1))
        parts.append(berry)
        return {"obs": jnp.concatenate(parts, axis=-1)}

    def render(self, state: ForageState) -> jax.Array:
        """uint8[M, N, 3]: berries red, agents in their colours (half brightness when
        Helpless), dead agents not drawn; one pixel per cell."""
        self.check_state(state)
        n = self.num_agents
        healthy, helpless, _ = self.status(state.energy, state.health)
        codes = state.berry.reshape(-1).astype(jnp.int32)
        colour = jnp.where(healthy, 2 + jnp.arange(n), 2 + n + jnp.arange(n))
        shown = healthy | helpless
        cells = jnp.where(shown, self._cells(state.pos), self.num_cells)
        codes = codes.at[cells].set(colour, mode="drop")
        return self.palette[codes.reshape(self.grid_size)]

    # ----------------------------------------------------------------- custom states
    def make_state(self, positions, energy=None, health=None, berries=None, berry_cells=(),
                   t: int = 0) -> ForageState:
        """A validated state from agent cells ``[N, 2]``, per-agent energy, health and stored
        berries (defaults E, H, 0) and the cells of the N berries on the grid.

        Rules checked: values in range; an agent with energy has full health (Healthy is
        e > 0 and h = H); living agents on distinct cells; no berry under a living agent.
        """
        n, (rows, cols) = self.num_agents, self.grid_size

        def per_agent(name, value, default, high):
            v = np.full(n, default) if value is None else np.asarray(value)
            if v.shape != (n,) or not np.issubdtype(v.dtype, np.integer):
                raise ValueError(f"forage: {name} must be {n} integers (num_agents={n}), got "
                                 f"{value!r}")
            if np.any(v < 0) or np.any(v > high):
                raise ValueError(f"forage: {name} must lie in [0, {high}], got {v.tolist()}")
            return v

        e = per_agent("energy", energy, self.max_energy, self.max_energy)
        h = per_agent("health", health, self.max_health, self.max_health)
        b = per_agent("berries", berries, 0, self.berry_capacity)
        if np.any((e > 0) & (h < self.max_health)):
            raise ValueError("forage: an agent with energy must have full health (Healthy is "
                             f"e > 0 and h = H); got energy {e.tolist()}, health {h.tolist()}")
        pos = np.asarray(positions)
        cells = np.asarray(berry_cells).reshape(-1, 2)
        for name, arr, count in (("positions", pos, n), ("berry_cells", cells, n)):
            if arr.shape != (count, 2) or not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"forage: {name} must be {count} (row, col) integer pairs "
                                 f"(num_agents={n}), got {arr.tolist()}")
            if np.any(arr < 0) or np.any(arr[:, 0] >= rows) or np.any(arr[:, 1] >= cols):
                raise ValueError(f"forage: {name} must lie inside the {rows}×{cols} grid")
        alive = (e > 0) | (h > 0)
        living = {tuple(p) for p in pos[alive].tolist()}
        if len(living) != int(alive.sum()):
            raise ValueError("forage: two living agents share a cell")
        spots = {tuple(c) for c in cells.tolist()}
        if len(spots) != n or spots & living:
            raise ValueError("forage: berry_cells must be distinct and free of living agents")
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 0 <= t < \
                self.max_steps:
            raise ValueError(f"forage: t must be an integer in [0, {self.max_steps - 1}]")
        berry = np.zeros(self.grid_size, bool)
        berry[cells[:, 0], cells[:, 1]] = True
        return ForageState(pos=jnp.asarray(pos, jnp.int32), energy=jnp.asarray(e, jnp.int32),
                           health=jnp.asarray(h, jnp.int32), berries=jnp.asarray(b, jnp.int32),
                           berry=jnp.asarray(berry), t=jnp.asarray(t, jnp.int32))
