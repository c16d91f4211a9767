"""Shared gridworld mechanics (specs §1): cells, palettes, moves, conflicts, beams, views.

Everything here is a pure function of arrays for one environment (no batch axis); the
environments vmap over batches. Positions are ``int32[N, 2]`` (row, col) and orientations
``int32[N]`` with 0 UP, 1 RIGHT, 2 DOWN, 3 LEFT (clockwise order).
"""

from __future__ import annotations

import colorsys

import jax
import jax.numpy as jnp
import numpy as np

# Cell codes of the live map (specs §1.2). Map-file markers P and B become EMPTY.
EMPTY, WALL, APPLE, WASTE, RIVER, STREAM = 0, 1, 2, 3, 4, 5
CHAR_TO_CELL = {" ": EMPTY, "P": EMPTY, "B": EMPTY, "@": WALL, "A": APPLE,
                "H": WASTE, "R": RIVER, "S": STREAM}
CELL_TO_CHAR = {EMPTY: " ", WALL: "@", APPLE: "A", WASTE: "H", RIVER: "R", STREAM: "S"}

# Extra colour codes used only while drawing views: outside the map, beams, then agents.
OUTSIDE, FIRE_BEAM, CLEAN_BEAM, AGENT0 = 6, 7, 8, 9
NO_BEAM, FIRE_OVERLAY, CLEAN_OVERLAY = 0, 1, 2

CELL_COLOURS = [
    (0, 0, 0),  # EMPTY
    (180, 180, 180),  # WALL
    (0, 255, 0),  # APPLE
    (99, 156, 194),  # WASTE
    (113, 75, 24),  # RIVER
    (113, 75, 24),  # STREAM (rendered like river)
    (0, 0, 0),  # OUTSIDE
    (255, 255, 0),  # FIRE beam
    (100, 255, 255),  # CLEAN beam
]
REFERENCE_AGENT_COLOURS = [
    (0, 0, 255), (2, 81, 154), (204, 0, 204), (216, 30, 54), (254, 151, 0),
    (100, 255, 255), (99, 99, 255), (250, 204, 255), (238, 223, 16),
]

# Action ids (specs §1.3).
MOVE_LEFT, MOVE_RIGHT, MOVE_UP, MOVE_DOWN, STAY, TURN_CW, TURN_CCW, FIRE, CLEAN = range(9)
ACTION_NAMES = ("MOVE_LEFT", "MOVE_RIGHT", "MOVE_UP", "MOVE_DOWN", "STAY",
                "TURN_CLOCKWISE", "TURN_COUNTERCLOCKWISE", "FIRE", "CLEAN")

# Unit vectors of UP, RIGHT, DOWN, LEFT; the right-hand side of orientation o is DIRS[o + 1].
DIRS = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)], dtype=np.int32)

BEAM_LENGTH = 5
VIEW_RADIUS = 7


def agent_colours(num_agents: int) -> np.ndarray:
    """The reference palette for the first nine agents, then evenly spaced hues (D-49)."""
    colours = list(REFERENCE_AGENT_COLOURS[:num_agents])
    extra = num_agents - len(colours)
    for k in range(extra):
        r, g, b = colorsys.hsv_to_rgb((k + 0.5) / extra, 0.7, 0.95)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return np.array(colours, dtype=np.uint8).reshape(num_agents, 3)


def palette(num_agents: int) -> np.ndarray:
    """uint8[AGENT0 + N, 3]: colours indexed by cell code, beam code or AGENT0 + agent."""
    return np.concatenate([np.array(CELL_COLOURS, np.uint8), agent_colours(num_agents)])


def parse_map(lines: list[str] | tuple[str, ...]) -> np.ndarray:
    """Turn a map given as equal-length strings of specs §1.2 characters into cell codes."""
    if not lines or not all(isinstance(line, str) for line in lines):
        raise ValueError("a map must be a non-empty list of strings")
    width = len(lines[0])
    if width == 0 or any(len(line) != width for line in lines):
        raise ValueError(
            f"a map must be rectangular; row lengths are {sorted({len(x) for x in lines})}"
        )
    bad = sorted({ch for line in lines for ch in line} - set(CHAR_TO_CELL))
    if bad:
        raise ValueError(f"unknown map characters {bad}; allowed: {sorted(CHAR_TO_CELL)}")
    return np.array([[CHAR_TO_CELL[ch] for ch in line] for line in lines], dtype=np.int8)


def cells_of(lines, chars: str) -> np.ndarray:
    """int32[K, 2]: the (row, col) of every map cell holding one of ``chars``, row-major."""
    return np.array(
        [(r, c) for r, line in enumerate(lines) for c, ch in enumerate(line) if ch in chars],
        dtype=np.int32,
    ).reshape(-1, 2)


def in_bounds(cells: jax.Array, shape: tuple[int, int]) -> jax.Array:
    return (
        (cells[..., 0] >= 0) & (cells[..., 0] < shape[0])
        & (cells[..., 1] >= 0) & (cells[..., 1] < shape[1])
    )


def lookup(grid: jax.Array, cells: jax.Array, outside) -> jax.Array:
    """grid at ``cells[..., 2]``, with ``outside`` where a cell lies off the map."""
    inside = in_bounds(cells, grid.shape)
    value = grid[jnp.clip(cells[..., 0], 0, grid.shape[0] - 1),
                 jnp.clip(cells[..., 1], 0, grid.shape[1] - 1)]
    return jnp.where(inside, value, outside)


def occupancy(pos: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """int32[H, W]: 1 + index of the agent on each cell, 0 where no agent stands."""
    occ = jnp.zeros(shape, jnp.int32)
    return occ.at[pos[:, 0], pos[:, 1]].set(jnp.arange(1, pos.shape[0] + 1, dtype=jnp.int32))


def turn(orient: jax.Array, actions: jax.Array) -> jax.Array:
    """TURN_CLOCKWISE: UP→RIGHT→DOWN→LEFT→UP; TURN_COUNTERCLOCKWISE the reverse (§1.3)."""
    delta = jnp.where(actions == TURN_CW, 1, jnp.where(actions == TURN_CCW, 3, 0))
    return (orient + delta) % 4


def egocentric_targets(pos: jax.Array, orient: jax.Array, actions: jax.Array) -> jax.Array:
    """Requested cells of the egocentric moves (§1.3); non-moves request their own cell."""
    dirs = jnp.asarray(DIRS)
    forward, right = dirs[orient], dirs[(orient + 1) % 4]
    step = jnp.select(
        [actions[:, None] == MOVE_LEFT, actions[:, None] == MOVE_RIGHT,
         actions[:, None] == MOVE_UP, actions[:, None] == MOVE_DOWN],
        [-right, right, forward, -forward],
        jnp.zeros_like(forward),
    )
    return pos + step


def resolve_moves(key: jax.Array, pos: jax.Array, target: jax.Array, walkable: jax.Array,
                  priority: jax.Array | None = None) -> jax.Array:
    """New positions after simultaneous moves (§1.4, one rule for contests, swaps and cycles).

    1. A target that is not walkable becomes the agent's own cell (the agent stays).
    2. A uniformly random priority order over agents (``priority[i]``: rank of agent i,
       0 = first; drawn from ``key`` unless given).
    3. Of several moving agents requesting one cell, only the highest priority keeps its move.
    4. Head-on swaps are cancelled; then, until nothing changes, a move into the current cell
       of a staying agent is cancelled. Surviving moves (chains, cycles of ≥ 3) all happen.
    Agents therefore never share a cell if they start on distinct cells.
    """
    n = pos.shape[0]
    ok = lookup(walkable, target, False)
    target = jnp.where(ok[:, None], target, pos)
    moving = jnp.any(target != pos, axis=1)
    if priority is None:
        priority = jnp.argsort(jax.random.permutation(key, n))
    same = jnp.all(target[:, None, :] == target[None, :, :], axis=-1)
    beaten = same & moving[None, :] & (priority[None, :] < priority[:, None])
    moving = moving & ~jnp.any(beaten, axis=1)
    into = jnp.all(target[:, None, :] == pos[None, :, :], axis=-1)  # i's target is j's cell
    swap = into & into.T & moving[None, :]
    moving = moving & ~jnp.any(swap, axis=1)
    for _ in range(n - 1):  # a blocked chain shortens by at least one agent per pass
        moving = moving & ~jnp.any(into & ~moving[None, :], axis=1)
    return jnp.where(moving[:, None], target, pos)


def beam_cells(pos: jax.Array, orient: jax.Array, length: int = BEAM_LENGTH) -> jax.Array:
    """int32[3, length, 2]: the cells of the centre, right and left rays, in tracing order.

    Centre ray ``pos + k·d`` for k = 1…L; side rays ``pos ± r + k·d`` for k = 0…L−1 (§1.6).
    """
    dirs = jnp.asarray(DIRS)
    forward, right = dirs[orient], dirs[(orient + 1) % 4]
    k = jnp.arange(length, dtype=jnp.int32)[:, None]
    centre = pos + (k + 1) * forward
    return jnp.stack([centre, pos + right + k * forward, pos - right + k * forward])


def _first_stop_cover(open_: jax.Array, stop: jax.Array) -> jax.Array:
    """Cells a ray covers: open so far, and no stopping cell before them (on the last axis)."""
    before = jnp.concatenate([jnp.zeros_like(stop[..., :1]), stop[..., :-1]], axis=-1)
    return open_ & (jnp.cumsum(before, axis=-1) == 0)


def trace_beams(grid: jax.Array, occ: jax.Array, pos: jax.Array, orient: jax.Array,
                active: jax.Array, cleans: jax.Array, order: jax.Array, can_clean: bool):
    """Every agent's beam of one step, resolved in ``order`` (§1.5 step 4, §1.6).

    Each ray stops before a wall or the map edge and stops on (after covering) the first
    agent; a cleaning ray also stops on the first waste cell, which it turns into river.
    Only cleaning changes the map, so the order matters only when an earlier beam already
    removed the waste a later ray would have stopped on; ``can_clean`` (static) skips that
    sequential part for games without CLEAN. Returns ``(cells[N, 3, L, 2], covered[N, 3, L],
    hit_agent[N, 3, L] (−1 none), cleaned[N, 3, L])``, all restricted to ``active`` agents.
    """
    n = pos.shape[0]
    cells = jax.vmap(beam_cells)(pos, orient)
    cell = lookup(grid, cells, WALL)
    agent = lookup(occ, cells, 0) - 1
    open_ = jnp.cumprod(cell != WALL, axis=-1).astype(bool)
    waste = (cell == WASTE) & (cleans & active)[:, None, None]
    if can_clean:
        # Beams are traced on the map as the earlier beams of the order left it.
        left = jnp.zeros_like(waste)
        for p in range(n):
            a = order[p]
            waste_a = waste[a] & (lookup(grid, cells[a], WALL) == WASTE)
            cleaned = waste_a & _first_stop_cover(open_[a], (agent[a] >= 0) | waste_a)
            grid = grid.at[jnp.where(cleaned, cells[a, ..., 0], grid.shape[0]),
                           cells[a, ..., 1]].set(jnp.int8(RIVER), mode="drop")
            left = left.at[a].set(waste_a)
        waste = left
    covered = _first_stop_cover(open_, (agent >= 0) | waste) & active[:, None, None]
    hit = jnp.where(covered & (agent >= 0), agent, -1)
    return cells, covered, hit, covered & waste


def view_offsets(reference_rotation: bool, radius: int = VIEW_RADIUS) -> np.ndarray:
    """int32[4, S, S, 2]: map offsets of each view pixel for each orientation (§1.7).

    Ours: pixel (i, j) shows the cell ``(radius − i)`` ahead and ``(j − radius)`` to the
    right, so the facing direction is at the top. Reference (B-02): LEFT and RIGHT swap
    their tables, putting the facing direction at the bottom for those two.
    """
    size = 2 * radius + 1
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    tables = []
    for o in range(4):
        d, r = DIRS[o], DIRS[(o + 1) % 4]
        tables.append((radius - i)[..., None] * d + (j - radius)[..., None] * r)
    tables = np.stack(tables).astype(np.int32)
    if reference_rotation:
        tables = tables[[0, 3, 2, 1]]
    return tables


def colour_codes(grid: jax.Array, pos: jax.Array, beam: jax.Array | None, pad: int) -> jax.Array:
    """int32[H + 2·pad, W + 2·pad]: the map's colour codes with agents (and beams) on top."""
    h, w = grid.shape
    codes = jnp.full((h + 2 * pad, w + 2 * pad), OUTSIDE, jnp.int32)
    codes = codes.at[pad:pad + h, pad:pad + w].set(grid.astype(jnp.int32))
    codes = codes.at[pos[:, 0] + pad, pos[:, 1] + pad].set(
        AGENT0 + jnp.arange(pos.shape[0], dtype=jnp.int32))
    if beam is not None:
        inner = codes[pad:pad + h, pad:pad + w]
        inner = jnp.where(beam > NO_BEAM, FIRE_BEAM - 1 + beam.astype(jnp.int32), inner)
        codes = codes.at[pad:pad + h, pad:pad + w].set(inner)
    return codes


def egocentric_views(codes: jax.Array, pos: jax.Array, orient: jax.Array,
                     offsets: jax.Array, pad: int) -> jax.Array:
    """int32[N, S, S]: each agent's rotated window of the padded colour codes."""
    cells = pos[:, None, None, :] + pad + offsets[orient]
    return codes[cells[..., 0], cells[..., 1]]


def visibility(pos: jax.Array, others: jax.Array, radius: int = VIEW_RADIUS) -> jax.Array:
    """int32[N, N−1]: 1 iff the other agent is inside the agent's (2·radius+1)² square (§1.7)."""
    delta = jnp.abs(pos[others] - pos[:, None, :])
    return jnp.all(delta <= radius, axis=-1).astype(jnp.int32)


def others_index(n: int) -> np.ndarray:
    """int32[N, N−1]: the other agents of each agent in increasing index (§0.5)."""
    return np.array([[j for j in range(n) if j != i] for i in range(n)], np.int32).reshape(n, n - 1)
