"""Parity of Harvest and Cleanup (reference mode) with traces recorded from SSD at 0207821.

The traces (``shared/golden/ssd``, described in its README) give, for every recorded step, the
state before it, the joint action, SSD's intermediate values and every outcome SSD's random
move and beam orders could produce. Each step is loaded into our env on its own, so a
divergence never carries over (README "How a test should use the traces"):

(a) steps with one possible outcome: positions, orientations, rewards, the pre-spawn map and
    the beam hits match exactly (plus apples eaten, waste cleaned and beam cells);
(b) steps flagged for a move conflict or several beams: under 64 PRNG keys each result is one
    of SSD's recorded outcomes, and every recorded outcome shows up;
(c) spawn probabilities computed from the pre-spawn map and the new positions equal SSD's, and
    every cell SSD spawned on had a positive probability;
(d) observations of every representable state match SSD's pixels exactly.

Two kinds of recorded state cannot be loaded: SSD sometimes puts two agents on one cell
(``overlap_before``; our rule §1.4 never does, so those steps are skipped and on
``overlap_after`` steps we check that we do not), and reset observations show no agents.
"""

from __future__ import annotations

import functools

import golden_utils as U
import numpy as np
import pytest

import prosocial
from prosocial.envs import grid as G

TRACES = U.trace_names()
MISSING = (f"golden SSD traces not found at {U.GOLDEN_DIR} (the shared/ folder that sits next "
           "to the repository checkout); parity tests need that data")
TRACE_PARAMS = TRACES or [pytest.param(None, marks=pytest.mark.skip(reason=MISSING))]
KEYS_PLAIN = 4  # keys per step whose recorded outcome is unique and not flagged
KEYS_FLAGGED = 64  # keys per flagged step: enough to see every recorded order outcome


def _steps(mask: np.ndarray, tags: np.ndarray, limit: int = 8) -> str:
    bad = np.nonzero(mask)[0]
    return ", ".join(f"{t} ({tags[t]})" for t in bad[:limit]) + (" …" if len(bad) > limit else "")


@functools.cache
def run_trace(name: str) -> dict:
    """Every recorded step of one trace resolved under several keys, plus the golden data."""
    tr = U.load_trace(name)
    env_id, n = str(tr["env"]), int(tr["n_agents"])
    env = U.reference_env(env_id, n)
    steps = len(tr["actions"])
    usable = ~tr["overlap_before"]
    flagged = tr["move_conflict"] | tr["beam_order_matters"] | tr["overlap_after"]
    before = U.states(env, tr["map_before"], tr["pos_before"], tr["orient_before"], usable)
    per_step = np.where(flagged, KEYS_FLAGGED, KEYS_PLAIN) * usable
    rows = np.repeat(np.arange(steps), per_step)
    # Any uint32 pair is a valid raw PRNG key; drawing them in NumPy avoids a compilation
    # of jax.random.split per trace length.
    keys = np.random.default_rng(steps).integers(0, 2**32, (len(rows), 2), dtype=np.uint32)
    out = U.resolve_rows(env_id, n, before, U.pad_steps(tr["actions"]), rows, keys)
    return {"tr": tr, "env": env, "usable": usable, "flagged": flagged, "before": before,
            "rows": rows, "out": out}


def _per_agent(bitmask: np.ndarray, n: int) -> np.ndarray:
    """uint8[..., H, W] with bit i for agent i -> int[..., N, H, W] of 0/1."""
    return (bitmask[..., None, :, :] >> np.arange(n)[:, None, None]) & 1


def _overlay(beam_mask: np.ndarray, beam_type: np.ndarray) -> np.ndarray:
    """Our beam overlay from SSD's per-agent masks: the strongest kind per cell (CLEAN 2 over
    FIRE 1; SSD's ``beam_type`` uses the same codes)."""
    return np.max(_per_agent(beam_mask, beam_type.shape[-1]) * beam_type[..., None, None],
                  axis=-3)


def _outcome_match(run: dict) -> np.ndarray:
    """bool[rows, K]: row b's result equals recorded outcome k of its step (k < n_outcomes).

    Compared: positions, rewards, the pre-spawn map, hits, waste cleaned per agent and the
    beam cells; the last two tell apart CLEAN races that change how many cells each agent
    cleaned. Races that only swap which agent cleaned which cell (same counts) are the same
    outcome for our env, whose events report counts.
    """
    tr, out, rows = run["tr"], run["out"], run["rows"]
    k_max, n = tr["outcome_pos"].shape[1:3]
    match = np.zeros((len(rows), k_max), bool)
    for k in range(k_max):
        grid = U.CHAR_CODE_TO_CELL[tr["outcome_map_prespawn"][rows, k]].astype(np.int8)
        cleaned = _per_agent(tr["outcome_clean_mask"][rows, k], n).sum((2, 3))
        beam = _overlay(tr["outcome_beam_mask"][rows, k], tr["beam_type"][rows])
        match[:, k] = (
            np.all(out["pos"] == tr["outcome_pos"][rows, k], axis=(1, 2))
            & np.all(out["reward"] == tr["outcome_reward"][rows, k], axis=1)
            & np.all(out["grid"] == grid, axis=(1, 2))
            & np.all(out["beam_hits"] == tr["outcome_hits"][rows, k], axis=(1, 2))
            & np.all(out["cleaned"] == cleaned, axis=1)
            & np.all(out["beam"] == beam, axis=(1, 2))
            & (k < tr["n_outcomes"][rows]))
    return match


def test_golden_index_and_files():
    """Every listed trace is present, unaltered (sha256) and from the pinned SSD commit."""
    idx = U.index()
    if idx is None:
        pytest.skip(MISSING)
    assert idx["ssd_commit"].startswith("0207821")
    for entry in idx["traces"]:
        assert U.file_sha256(entry["name"]) == entry["sha256"], entry["name"]
        tr = U.load_trace(entry["name"])
        assert str(tr["ssd_commit"]) == idx["ssd_commit"]
        assert len(tr["actions"]) == entry["episode_length"] <= U.STEPS
        assert tr["actions"].shape[1] == entry["n_agents"]


@pytest.mark.parametrize(("env_id", "expected"), [
    ("harvest", {"ref_view_rotation", "ref_beams_invisible", "ref_prev_action_pad",
                 "ref_harvest_moore_neighbourhood"}),
    ("cleanup", {"ref_view_rotation", "ref_beams_invisible", "ref_prev_action_pad"}),
])
def test_reference_mode_switches_on_exactly_the_ssd_flags(env_id, expected):
    """``reference=True`` = B-02, B-03, B-05 (+ B-04 in Harvest); B-06 (EMUREL-CODE) stays off."""
    def on(env):
        return {k for k, v in vars(env).items() if k.startswith("ref_") and v is True}

    ref = prosocial.make(env_id, num_agents=2, reference=True)
    default = prosocial.make(env_id, num_agents=2)
    assert on(ref) == expected == set(ref.reference_flags)
    assert on(default) == set()
    assert "ref_beam_order_by_id" in vars(ref) and not ref.ref_beam_order_by_id
    for flag in expected:  # each one can also be switched on alone
        assert on(prosocial.make(env_id, num_agents=2, **{flag: True})) == {flag}


@pytest.mark.parametrize("name", TRACE_PARAMS)
def test_state_from_grid_reads_golden_maps(name):
    """The char conversion used for batches agrees with ``state_from_grid`` on real maps."""
    tr = U.load_trace(name)
    env = U.reference_env(str(tr["env"]), int(tr["n_agents"]))
    loadable = np.nonzero(~tr["overlap_after"])[0]
    for t in (loadable[0], loadable[-1]):
        state = env.state_from_grid(U.map_strings(tr["map_after"][t]),
                                    tr["pos_after"][t].astype(np.int64),
                                    tr["orient_after"][t].astype(np.int64))
        np.testing.assert_array_equal(state.grid, U.to_cells(tr["map_after"][t]))
        lines, _, _ = env.state_to_grid(state)
        assert lines == U.map_strings(tr["map_after"][t])


@pytest.mark.parametrize("name", TRACE_PARAMS)
def test_unique_outcome_steps_match_exactly(name):
    """(a) Steps with ``n_outcomes == 1``: every field equals SSD's under every key tried."""
    run = run_trace(name)
    tr, out, rows = run["tr"], run["out"], run["rows"]
    tags = tr["step_tag"]
    sel = (tr["n_outcomes"][rows] == 1) & ~tr["overlap_after"][rows]
    assert sel.any()
    r, o = rows[sel], {k: v[sel] for k, v in out.items()}
    n = tr["actions"].shape[1]

    def check(what, ours, theirs, axes):
        bad = np.zeros(len(tr["actions"]), bool)
        bad[r[~np.all(ours == theirs, axis=axes)]] = True
        assert not bad.any(), f"{name}: {what} differs at steps {_steps(bad, tags)}"

    check("pos_after", o["pos"], tr["pos_after"][r], (1, 2))
    check("reward", o["reward"], tr["reward"][r], 1)
    check("map_prespawn", o["grid"], U.to_cells(tr["map_prespawn"][r]), (1, 2))
    check("hits", o["beam_hits"], tr["hits"][r], (1, 2))
    check("apple_eaten", o["eaten"], tr["apple_eaten"][r], 1)
    check("waste cleaned (clean_mask)", o["cleaned"], _per_agent(tr["clean_mask"][r], n).sum(
        (2, 3)), 1)
    check("beam cells (beam_mask)", o["beam"], _overlay(tr["beam_mask"][r], tr["beam_type"][r]),
          (1, 2))


@pytest.mark.parametrize("name", TRACE_PARAMS)
def test_orientation_matches_on_every_step(name):
    """(a) Orientation never depends on the random orders, so it matches on every step: under
    every key through ``resolve``, and through the turn rule on the unloadable steps too."""
    run = run_trace(name)
    tr, out, rows = run["tr"], run["out"], run["rows"]
    bad = np.zeros(len(tr["actions"]), bool)
    bad[rows[~np.all(out["orient"] == tr["orient_after"][rows], axis=1)]] = True
    turned = np.asarray(G.turn(tr["orient_before"].astype(np.int32),
                               tr["actions"].astype(np.int32)))
    bad |= ~np.all(turned == tr["orient_after"], axis=1)
    assert not bad.any(), f"{name}: orient_after differs at steps {_steps(bad, tr['step_tag'])}"


@pytest.mark.parametrize("name", TRACE_PARAMS)
def test_flagged_steps_give_recorded_outcomes(name):
    """(b) Under 64 keys, each result is a recorded SSD outcome and all outcomes appear."""
    run = run_trace(name)
    tr, out, rows = run["tr"], run["out"], run["rows"]
    tags = tr["step_tag"]
    steps = len(tr["actions"])
    match = _outcome_match(run)

    unmatched = np.zeros(steps, bool)
    unmatched[rows[~match.any(axis=1) & ~tr["overlap_after"][rows]]] = True
    assert not unmatched.any(), f"{name}: outcome not in SSD's set at {_steps(unmatched, tags)}"

    seen = np.zeros((steps, match.shape[1]), bool)
    np.logical_or.at(seen, rows, match)
    expected = np.arange(match.shape[1]) < tr["n_outcomes"][:, None]
    multi = (tr["n_outcomes"] > 1) & run["usable"] & ~tr["overlap_after"]
    missing = multi & np.any(expected & ~seen, axis=1)
    assert not missing.any(), f"{name}: recorded outcomes never produced at {_steps(missing, tags)}"
    assert not (multi & ~run["flagged"]).any(), "an unflagged step with several outcomes"

    # SSD let two agents share a cell on these steps; our rule (§1.4) must not.
    shared = np.zeros(steps, bool)
    shared[rows[U.shared_cell(out["pos"])]] = True
    assert not shared.any(), f"{name}: two agents share a cell at {_steps(shared, tags)}"


@functools.cache
def spawn_trace(name: str) -> dict:
    tr = U.load_trace(name)
    env_id, n = str(tr["env"]), int(tr["n_agents"])
    fn = U.batched(env_id, n)["spawn"]
    steps = len(tr["actions"])
    got = fn(U.pad_steps(U.to_cells(tr["map_prespawn"])), U.pad_steps(tr["pos_after"]).astype(
        np.int32))
    return {k: np.asarray(v)[:steps] for k, v in got.items()}


def _on_cells(values: np.ndarray, cells: np.ndarray, shape) -> np.ndarray:
    """Scatter per-cell values [T, K] onto maps [T, H, W] (0 off the cells)."""
    grid = np.zeros((len(values), *shape), values.dtype)
    grid[:, cells[:, 0], cells[:, 1]] = values
    return grid


@pytest.mark.parametrize("name", TRACE_PARAMS)
def test_spawn_probabilities_match(name):
    """(c) Probabilities from ``map_prespawn[t]`` and ``pos_after[t]`` equal SSD's."""
    tr = U.load_trace(name)
    env = U.reference_env(str(tr["env"]), int(tr["n_agents"]))
    got = spawn_trace(name)
    shape = tr["map_prespawn"].shape[1:]
    apple = _on_cells(got["apple"], env.apple_cells, shape)
    if str(tr["env"]) == "harvest":
        # A four-value table (0, 0.005, 0.02, 0.05): the same float32 values, bit for bit.
        np.testing.assert_array_equal(apple, tr["spawn_prob_apple"].astype(np.float32))
        counts = _on_cells(got["count"], env.apple_cells, shape)
        evaluated = tr["apple_nbr_count"] >= 0
        assert evaluated.any()
        assert not (evaluated & ~_on_cells(np.ones_like(got["count"]), env.apple_cells,
                                           shape).astype(bool)).any()
        np.testing.assert_array_equal(counts[evaluated], tr["apple_nbr_count"][evaluated])
        return
    # Our env works in float32 (jax default) and SSD in float64. The density h/W carries
    # about two float32 roundings (≤ 1.2e-7 relative; seen: 9e-8); 0.05·(1 − ρ/0.4) magnifies
    # them by ρ/(0.4 − ρ), at most 47/(0.4·119 − 47) ≈ 79 for the largest density that spawns
    # (seen: 2.3e-6), so a relative 2e-5 covers it while one waste cell more or less (≥ 1/119
    # in ρ, ≥ 2 % in the apple rate) is far outside. atol only serves the exact zeros.
    tol = {"rtol": 2e-5, "atol": 1e-9}
    np.testing.assert_allclose(got["density"], tr["waste_density"], **tol)
    np.testing.assert_allclose(got["apple_rate"], tr["apple_spawn_prob"], **tol)
    np.testing.assert_allclose(got["waste_rate"], tr["waste_spawn_prob"], **tol)
    np.testing.assert_allclose(apple, tr["spawn_prob_apple"], **tol)
    waste = _on_cells(got["waste"], env.waste_cells, shape)
    np.testing.assert_allclose(waste, tr["spawn_prob_waste"], **tol)
    assert (tr["spawn_prob_waste"] > 0).any() and (tr["spawn_prob_apple"] > 0).any()


@pytest.mark.parametrize("name", TRACE_PARAMS)
def test_spawned_cells_had_positive_probability(name):
    """(c) Each cell changed by SSD's spawn had probability > 0 (SSD's and ours)."""
    tr = U.load_trace(name)
    env = U.reference_env(str(tr["env"]), int(tr["n_agents"]))
    got = spawn_trace(name)
    shape = tr["map_prespawn"].shape[1:]
    pre, post = tr["map_prespawn"], tr["map_after"]
    changed = pre != post
    apple = (pre == ord(" ")) & (post == ord("A"))
    ours_apple = _on_cells(got["apple"], env.apple_cells, shape) > 0
    assert changed.any()
    if str(tr["env"]) == "harvest":
        waste = np.zeros_like(changed)
        assert np.all(changed == apple)
    else:
        waste = (pre == ord("R")) & (post == ord("H"))
        assert np.all(changed == (apple | waste)), "a spawn changed a cell other than ' '/'R'"
        assert waste.sum(axis=(1, 2)).max() == 1  # at most one waste cell a step (and some)
        assert np.all(tr["spawn_prob_waste"][waste] > 0)
        assert np.all(_on_cells(got["waste"], env.waste_cells, shape)[waste] > 0)
    assert np.all(tr["spawn_prob_apple"][apple] > 0)
    assert np.all(ours_apple[apple])
    np.testing.assert_array_equal(tr["spawned_apple"], apple)
    np.testing.assert_array_equal(tr["spawned_waste"], waste)


@pytest.mark.parametrize("name", TRACE_PARAMS)
def test_observations_match(name):
    """(d) SSD's pixels for every before-state we can load and every after-state.

    Observations follow from the state alone, so the after-views are rendered from SSD's
    after-state (map, positions, orientations, and the step's beam overlay, which (a) shows
    equals ours): the views of every step whose outcome matched, and of the others too.
    In reference mode the overlay must not show (B-03).
    Skipped: reset observations (``before_source == 1``), where SSD draws no agents (its
    colour buffer gets agents only inside ``step()``), and states with two agents on one cell.
    """
    run = run_trace(name)
    tr, env = run["tr"], run["env"]
    tags, steps = tr["step_tag"], len(tr["actions"])
    rgb = U.batched(str(tr["env"]), env.num_agents)["rgb"]
    after_ok = ~tr["overlap_after"]
    after = U.states(env, tr["map_after"], tr["pos_after"], tr["orient_after"], after_ok)
    overlay = _overlay(tr["beam_mask"], tr["beam_type"]).astype(np.int8)
    assert overlay.any()
    after = after.replace(beam=U.pad_steps(overlay))
    for what, batch, ok, golden in [
        ("obs_before", run["before"], run["usable"] & (tr["before_source"] != 1),
         tr["obs_before"]),
        ("obs_after", after, after_ok, tr["obs_after"]),
    ]:
        views = np.asarray(rgb(batch))[:steps]
        bad = ok & ~np.all(views == golden, axis=(1, 2, 3, 4))
        assert not bad.any(), f"{name}: {what} differs at steps {_steps(bad, tags)}"
        assert ok.sum() >= steps - 4
