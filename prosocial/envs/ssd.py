"""The sequential-social-dilemma gridworlds (Harvest, Cleanup): what they share.

Step order (specs §1.5): turns and moves → every agent eats the apple on its cell → FIRE
and CLEAN beams one agent at a time in a random order (map changes of one beam apply before
the next) → the game's dynamics (regrowth, waste) → observations. Subclasses give the map,
the number of actions and :meth:`SSDEnv.dynamics`.

Reference flags (specs §12): ``ref_view_rotation`` (B-02), ``ref_beams_invisible`` (B-03),
``ref_beam_order_by_id`` (B-06), ``ref_prev_action_pad`` (B-05), plus Harvest's
``ref_harvest_moore_neighbourhood`` (B-04). ``reference=True`` switches on the ones that make
the environment behave as SSD at commit 0207821 (the golden data): B-02, B-03, B-04, B-05.
B-06 belongs to the EMuReL authors' older fork and stays a separate switch.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from prosocial.envs import grid as G
from prosocial.envs.core import Env
from prosocial.envs.spaces import Box, Dict, Discrete


@struct.dataclass
class GridState:
    """State of one Harvest or Cleanup environment."""

    grid: jax.Array  # int8[H, W] cell codes (grid.EMPTY … grid.STREAM)
    pos: jax.Array  # int32[N, 2] (row, col)
    orient: jax.Array  # int32[N] 0 UP, 1 RIGHT, 2 DOWN, 3 LEFT
    beam: jax.Array  # int8[H, W] beam overlay of the last step (0 none, 1 FIRE, 2 CLEAN)
    last_actions: jax.Array  # int32[N] the joint action that produced this state (STAY at reset)
    prev_visible: jax.Array  # int32[N, N-1] visibility before the last step
    t: jax.Array  # int32 steps taken in this episode


class SSDEnv(Env):
    """Shared engine of Harvest and Cleanup; see the module docstring."""

    default_map: tuple[str, ...] = ()
    actions: int = 8
    reference_flags: tuple[str, ...] = (
        "ref_view_rotation", "ref_beams_invisible", "ref_prev_action_pad")

    def __init__(self, num_agents: int = 5, max_steps: int = 1000, map: list[str] | None = None,
                 reference: bool = False, ref_view_rotation: bool = False,
                 ref_beams_invisible: bool = False, ref_beam_order_by_id: bool = False,
                 ref_prev_action_pad: bool = False):
        if isinstance(map, str):  # tuple() would split it into one-character rows
            raise ValueError(f"{self.env_id}: map must be a list of row strings, not one string")
        lines = tuple(map) if map is not None else self.default_map
        self.map_lines = lines
        self.base_grid = G.parse_map(list(lines))
        self.spawn_points = G.cells_of(lines, "P")
        if not isinstance(num_agents, int | np.integer) or num_agents < 1:
            raise ValueError(f"{self.env_id}: num_agents must be a positive integer, "
                             f"got {num_agents!r}")
        if num_agents > len(self.spawn_points):
            raise ValueError(f"{self.env_id}: num_agents={num_agents} exceeds the map's "
                             f"{len(self.spawn_points)} spawn points ('P' cells)")
        if not isinstance(max_steps, int | np.integer) or max_steps < 1:
            raise ValueError(f"{self.env_id}: max_steps must be a positive integer, "
                             f"got {max_steps!r}")
        self.num_agents = int(num_agents)
        self.max_steps = int(max_steps)
        self.ref_view_rotation = reference or ref_view_rotation
        self.ref_beams_invisible = reference or ref_beams_invisible
        self.ref_prev_action_pad = reference or ref_prev_action_pad
        self.ref_beam_order_by_id = ref_beam_order_by_id

        n = self.num_agents
        self.walkable = jnp.asarray(self.base_grid != G.WALL)
        self.palette = jnp.asarray(G.palette(n))
        self.view_offsets = jnp.asarray(G.view_offsets(self.ref_view_rotation))
        self.others = jnp.asarray(G.others_index(n))
        size = 2 * G.VIEW_RADIUS + 1
        self.action_space = Discrete(self.actions)
        self.observation_space = Dict({
            "rgb": Box(0, 255, (size, size, 3), "uint8"),
            "own_prev_action": Box(0, self.actions - 1, (), "int32"),
            "others_actions": Box(0, self.actions - 1, (n - 1,), "int32"),
            "visible": Box(0, 1, (n - 1,), "int32"),
            "prev_visible": Box(0, 1, (n - 1,), "int32"),
        })

    # ----------------------------------------------------------------- subclass hooks
    def initial_grid(self) -> np.ndarray:
        """The live map at reset (walls and the game's initial content)."""
        return self.base_grid

    def dynamics(self, key: jax.Array, grid: jax.Array, pos: jax.Array) -> jax.Array:
        """The game's own map update after moves, eating and beams (§1.5 step 5)."""
        raise NotImplementedError

    def extra_events(self, cleaned: jax.Array, actions: jax.Array) -> dict:
        return {}

    def extra_signals(self, grid: jax.Array, pos: jax.Array, eaten: jax.Array) -> dict:
        """The game's ``info["signals"]`` from the map before eating, the positions after
        the moves and who ate (default none)."""
        return {}

    # ----------------------------------------------------------------- contract
    def reset_state(self, key: jax.Array) -> GridState:
        """Agents on distinct random spawn cells with random orientations (§1.9)."""
        key_cells, key_orient = jax.random.split(key)
        n = self.num_agents
        chosen = jax.random.permutation(key_cells, len(self.spawn_points))[:n]
        pos = jnp.asarray(self.spawn_points)[chosen]
        orient = jax.random.randint(key_orient, (n,), 0, 4, dtype=jnp.int32)
        # The one dynamics update of §1.9 changes nothing in either game's initial map.
        return self._state(jnp.asarray(self.initial_grid()), pos, orient)

    def _state(self, grid, pos, orient, t=0, last_actions=None) -> GridState:
        n = self.num_agents
        if last_actions is None:
            last_actions = jnp.full((n,), G.STAY, jnp.int32)
        return GridState(
            grid=jnp.asarray(grid, jnp.int8), pos=jnp.asarray(pos, jnp.int32),
            orient=jnp.asarray(orient, jnp.int32),
            beam=jnp.zeros(self.base_grid.shape, jnp.int8),
            last_actions=jnp.asarray(last_actions, jnp.int32),
            prev_visible=G.visibility(jnp.asarray(pos, jnp.int32), self.others),
            t=jnp.asarray(t, jnp.int32))

    def step_state(self, key: jax.Array, state: GridState, actions: jax.Array):
        self.check_state(state)
        actions = self.check_actions(actions)
        key_act, key_dyn = jax.random.split(key)
        out = self.resolve(key_act, state, actions)
        grid = self.dynamics(key_dyn, out["grid"], out["pos"])
        t = state.t + 1
        next_state = GridState(
            grid=grid, pos=out["pos"], orient=out["orient"], beam=out["beam"],
            last_actions=actions, prev_visible=G.visibility(state.pos, self.others), t=t)
        truncated = t >= self.max_steps
        info = {"events": out["events"], "signals": out["signals"], "beam_hits": out["beam_hits"],
                "pos": out["pos"], "orient": out["orient"]}
        terminated = jnp.zeros(self.num_agents, jnp.bool_)  # the games end by time limit only
        return next_state, out["reward"], terminated, truncated, info

    def resolve(self, key: jax.Array, state: GridState, actions: jax.Array) -> dict[str, Any]:
        """Moves, eating and beams of one step, before the game's dynamics (§1.5 steps 1–4).

        Returns a dict with the pre-dynamics ``grid``, ``pos``, ``orient``, the ``beam``
        overlay, ``reward`` float32[N], ``events`` (per-agent counts), ``beam_hits`` int32[N, N]
        (``[i, j]`` = rays of i's beam, FIRE or CLEAN, that stopped on j) and ``cleaned``.
        """
        key_move, key_beam = jax.random.split(key)
        orient = G.turn(state.orient, actions)
        target = G.egocentric_targets(state.pos, state.orient, actions)
        pos = G.resolve_moves(key_move, state.pos, target, self.walkable)

        eaten = state.grid[pos[:, 0], pos[:, 1]] == G.APPLE
        grid = state.grid.at[pos[:, 0], pos[:, 1]].set(
            jnp.where(eaten, G.EMPTY, state.grid[pos[:, 0], pos[:, 1]]).astype(jnp.int8))

        fires = actions == G.FIRE
        cleans = (actions == G.CLEAN) & (self.actions > G.CLEAN)
        grid, beam, hits, cleaned = self._beams(key_beam, grid, pos, orient, fires, cleans)

        fire_hits = hits * fires[:, None]
        hits_received = fire_hits.sum(0)
        reward = (eaten.astype(jnp.float32) - fires.astype(jnp.float32)
                  - 50.0 * hits_received.astype(jnp.float32))
        events = {"apples_eaten": eaten.astype(jnp.int32), "fires": fires.astype(jnp.int32),
                  "hits_received": hits_received, "hits_given": fire_hits.sum(1)}
        events.update(self.extra_events(cleaned, actions))
        return {"grid": grid, "pos": pos, "orient": orient, "beam": beam, "reward": reward,
                "events": events, "beam_hits": hits, "cleaned": cleaned,
                "signals": self.extra_signals(state.grid, pos, eaten)}

    def _beams(self, key, grid, pos, orient, fires, cleans):
        """FIRE and CLEAN beams, one agent at a time in a random (or index) order (§1.5)."""
        n = self.num_agents
        order = (jnp.arange(n) if self.ref_beam_order_by_id
                 else jax.random.permutation(key, n))
        cells, covered, hit, cleaned = G.trace_beams(
            grid, G.occupancy(pos, grid.shape), pos, orient, fires | cleans, cleans, order,
            can_clean=self.actions > G.CLEAN)
        kind = jnp.where(cleans, G.CLEAN_OVERLAY, G.FIRE_OVERLAY).astype(jnp.int8)
        r, c = cells[..., 0], cells[..., 1]
        beam = jnp.zeros(grid.shape, jnp.int8).at[
            jnp.where(covered, r, grid.shape[0]), c].max(
            jnp.broadcast_to(kind[:, None, None], covered.shape), mode="drop")
        grid = grid.at[jnp.where(cleaned, r, grid.shape[0]), c].set(
            jnp.int8(G.RIVER), mode="drop")
        hits = jnp.sum(hit[..., None] == jnp.arange(n), axis=(1, 2)).astype(jnp.int32)
        return grid, beam, hits, cleaned.sum((1, 2)).astype(jnp.int32)

    def observe(self, state: GridState) -> dict[str, jax.Array]:
        """Egocentric 15×15 RGB views and the action/visibility vectors (§1.7)."""
        self.check_state(state)
        pad = G.VIEW_RADIUS
        beam = None if self.ref_beams_invisible else state.beam
        codes = G.colour_codes(state.grid, state.pos, beam, pad)
        views = G.egocentric_views(codes, state.pos, state.orient, self.view_offsets, pad)
        own_prev = state.last_actions
        if self.ref_prev_action_pad:
            own_prev = jnp.where(state.t == 0, 0, own_prev)
        return {
            "rgb": self.palette[views],
            "own_prev_action": own_prev,
            "others_actions": state.last_actions[self.others],
            "visible": G.visibility(state.pos, self.others),
            "prev_visible": state.prev_visible,
        }

    def render(self, state: GridState) -> jax.Array:
        """uint8[H, W, 3]: the whole map with agents and beams, one pixel per cell."""
        self.check_state(state)
        codes = G.colour_codes(state.grid, state.pos, state.beam, 0)
        return self.palette[codes]

    # ----------------------------------------------------------------- custom states
    def state_from_grid(self, grid: list[str], positions, orientations, t: int = 0,
                        last_actions=None) -> GridState:
        """Build a state from map strings (§1.2 chars), agent cells [N, 2] and orientations [N].

        The walls must be the environment's own (build the environment with ``map=`` for
        another layout); waste and river only on the map's waste cells.
        """
        if isinstance(grid, str):
            raise ValueError("grid must be a list of row strings, not one string")
        codes = G.parse_map(list(grid))
        if codes.shape != self.base_grid.shape:
            raise ValueError(f"grid has shape {codes.shape}, the environment's map "
                             f"{self.base_grid.shape}")
        if np.any((codes == G.WALL) != (self.base_grid == G.WALL)):
            raise ValueError("grid walls differ from the environment's map; "
                             "construct the environment with map=... for a new layout")
        self.validate_cells(codes)
        pos = np.asarray(positions)
        orient = np.asarray(orientations)
        n = self.num_agents
        if pos.shape != (n, 2) or orient.shape != (n,):
            raise ValueError(f"positions must have shape ({n}, 2) and orientations ({n},) "
                             f"(num_agents={n}); "
                             f"got {pos.shape} and {orient.shape}")
        if not (np.issubdtype(pos.dtype, np.integer) and np.issubdtype(orient.dtype, np.integer)):
            raise ValueError("positions and orientations must be integers")
        if np.any(orient < 0) or np.any(orient > 3):
            raise ValueError("orientations must be 0 (UP), 1 (RIGHT), 2 (DOWN) or 3 (LEFT)")
        h, w = codes.shape
        if np.any(pos < 0) or np.any(pos[:, 0] >= h) or np.any(pos[:, 1] >= w):
            raise ValueError(f"agent positions must lie inside the {h}×{w} map")
        if np.any(codes[pos[:, 0], pos[:, 1]] == G.WALL):
            raise ValueError("an agent stands on a wall")
        if len({tuple(p) for p in pos.tolist()}) != n:
            raise ValueError("two agents share a cell")
        if (isinstance(t, bool) or not isinstance(t, int | np.integer)
                or not 0 <= t < self.max_steps):
            raise ValueError(f"t must be an integer in [0, {self.max_steps - 1}] "
                             f"(max_steps={self.max_steps}), got {t!r}")
        if last_actions is not None:
            last = np.asarray(last_actions)
            if last.shape != (n,) or not np.issubdtype(last.dtype, np.integer):
                raise ValueError(f"last_actions must be {n} integers (one per agent), got "
                                 f"shape {last.shape} and dtype {last.dtype}")
            if np.any(last < 0) or np.any(last >= self.actions):
                raise ValueError(f"last_actions must lie in [0, {self.actions - 1}], "
                                 f"got {last.tolist()}")
        return self._state(codes, pos, orient, t=t, last_actions=last_actions)

    def validate_cells(self, codes: np.ndarray) -> None:
        """Game-specific checks of a custom grid's contents."""

    def state_to_grid(self, state: GridState) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Inverse of :meth:`state_from_grid`: (map strings, positions [N, 2], orientations [N])."""
        codes = np.asarray(state.grid)
        lines = ["".join(G.CELL_TO_CHAR[int(v)] for v in row) for row in codes]
        return lines, np.asarray(state.pos), np.asarray(state.orient)
