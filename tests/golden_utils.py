"""Loading the SSD golden traces (``shared/golden/ssd``) and running our envs on their states.

The traces are data recorded from the reference implementation; their README describes every
array. Here they are turned into batches of our ``GridState`` (one per recorded step) and run
through jitted, vmapped ``resolve`` / ``observe`` / spawn-probability functions. Batches have a
fixed size (``CHUNK`` flat rows, ``STEPS`` steps) so that every trace of one environment and
agent count shares one compilation.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import prosocial
from prosocial.envs import grid as G

GOLDEN_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "golden" / "ssd"
STEPS = 300  # the longest trace; per-step batches are padded to this length
CHUNK = 1024  # flat (step, key) rows per resolve call

# ASCII code of a golden map char -> our cell code; 255 marks a char the README does not list.
CHAR_CODE_TO_CELL = np.full(256, 255, np.uint8)
for _char, _cell in G.CHAR_TO_CELL.items():
    CHAR_CODE_TO_CELL[ord(_char)] = _cell


def index() -> dict | None:
    """The parsed ``index.json``, or None when the golden folder is absent."""
    path = GOLDEN_DIR / "index.json"
    return json.loads(path.read_text()) if path.is_file() else None


def trace_names() -> list[str]:
    idx = index()
    return [t["name"] for t in idx["traces"]] if idx else []


def file_sha256(name: str) -> str:
    return hashlib.sha256((GOLDEN_DIR / f"{name}.npz").read_bytes()).hexdigest()


@functools.cache
def load_trace(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN_DIR / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


def to_cells(maps: np.ndarray) -> np.ndarray:
    """Golden ASCII maps (uint8[..., H, W]) -> our cell codes (int8); unknown chars raise."""
    cells = CHAR_CODE_TO_CELL[maps]
    if np.any(cells == 255):
        raise ValueError(f"unexpected map chars {sorted(set(map(chr, maps[cells == 255])))}")
    return cells.astype(np.int8)


def map_strings(codes: np.ndarray) -> list[str]:
    """One golden map (uint8[H, W] ASCII codes) as the strings ``state_from_grid`` reads."""
    return ["".join(map(chr, row)) for row in codes.tolist()]


@functools.cache
def reference_env(env_id: str, num_agents: int):
    """The environment in reference mode, shared by all traces with this id and N."""
    return prosocial.make(env_id, num_agents=num_agents, reference=True)


def shared_cell(pos: np.ndarray) -> np.ndarray:
    """bool[...]: two agents share a cell, for positions int[..., N, 2]."""
    same = np.all(pos[..., :, None, :] == pos[..., None, :, :], axis=-1)
    n = pos.shape[-2]
    return np.any(same & ~np.eye(n, dtype=bool), axis=(-2, -1))


def states(env, maps: np.ndarray, pos: np.ndarray, orient: np.ndarray, usable: np.ndarray):
    """A ``GridState`` batch of ``STEPS`` states from golden (map, pos, orient) per step.

    The first usable step goes through ``env.state_from_grid`` (which validates walls, waste
    cells and distinct agent cells, ~7 ms a call); the batch reuses its other fields, which
    ``resolve`` and the views do not read. Unusable steps (two agents on one cell) and the
    padding repeat the first usable state; callers mask them out.
    """
    steps = np.nonzero(usable)[0]
    if len(steps) == 0 or len(maps) > STEPS:
        raise ValueError(f"need 1..{STEPS} steps with a usable state, got {len(steps)}")
    first = steps[0]
    template = env.state_from_grid(map_strings(maps[first]), pos[first].astype(np.int64),
                                   orient[first].astype(np.int64))
    rows = np.full(STEPS, first)
    rows[steps] = steps
    batch = jax.tree.map(lambda x: np.repeat(np.asarray(x)[None], STEPS, axis=0), template)
    return batch.replace(grid=to_cells(maps[rows]), pos=pos[rows].astype(np.int32),
                         orient=orient[rows].astype(np.int32))


@functools.cache
def batched(env_id: str, num_agents: int):
    """Jitted vmapped functions of the reference env (one compilation per env id and N)."""
    env = reference_env(env_id, num_agents)

    def resolve(key, state, actions):
        out = env.resolve(key, state, actions)
        return {k: out[k] for k in ("grid", "pos", "orient", "reward", "beam_hits", "beam")} | {
            "eaten": out["events"]["apples_eaten"],
            "cleaned": out["events"].get("waste_cleaned", jnp.zeros_like(out["reward"],
                                                                        jnp.int32)),
        }

    def rgb(state):
        return env.observe(state)["rgb"]

    if env_id == "harvest":
        def spawn(grid, pos):
            return {"apple": env.spawn_probabilities(grid, pos),
                    "count": env.neighbour_counts(grid)}
    else:
        def spawn(grid, pos):
            density, apple_rate, waste_rate = env.spawn_rates(grid)
            apple, waste = env.spawn_probabilities(grid, pos)
            return {"density": density, "apple_rate": apple_rate, "waste_rate": waste_rate,
                    "apple": apple, "waste": waste}

    return {"resolve": jax.jit(jax.vmap(resolve)), "rgb": jax.jit(jax.vmap(rgb)),
            "spawn": jax.jit(jax.vmap(spawn))}


def resolve_rows(env_id: str, num_agents: int, state_batch, actions: np.ndarray,
                 rows: np.ndarray, keys: np.ndarray) -> dict[str, np.ndarray]:
    """``resolve`` of step ``rows[b]`` under PRNG key ``keys[b]``, in fixed-size chunks."""
    fn = batched(env_id, num_agents)["resolve"]
    outs = []
    for start in range(0, len(rows), CHUNK):
        part = np.resize(rows[start:start + CHUNK], CHUNK)  # pad by repeating rows
        key_part = np.resize(keys[start:start + CHUNK], (CHUNK, *keys.shape[1:]))
        sub = jax.tree.map(lambda x, p=part: x[p], state_batch)
        out = fn(key_part, sub, actions[part].astype(np.int32))
        take = min(CHUNK, len(rows) - start)
        outs.append(jax.tree.map(lambda x, k=take: np.asarray(x)[:k], out))
    return jax.tree.map(lambda *xs: np.concatenate(xs), *outs)


def pad_steps(x: np.ndarray) -> np.ndarray:
    """Pad a per-step array along axis 0 to ``STEPS`` by repeating its first row."""
    return np.concatenate([x, np.repeat(x[:1], STEPS - len(x), axis=0)])
