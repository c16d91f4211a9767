"""The evaluation protocol of [ERMAS] §5.3 (specs §9.9.9) for the bimatrix game.

1. Train agents and planner (any ERMAS or baseline run). 2. Freeze the planner and move it
to a test game whose agents have a reward unseen in training (r_i − Q·r̃), then train new
agents there from scratch with plain PPO (the run's agent settings). 3. Report the
planner's return after the agents' training, from ``eval_episodes`` whole episodes.

The test game keeps the training game's structure (payoffs, width, planner form, episode
length) and drops the training-time changes (Q, DR noise, the RR transform of the
planner's reward: the planner is judged on its own reward); ``extra_options`` adds
test-time changes such as ``action_perturb`` (bounded rationality, §6.5). All seeds run
batched: seed s's fresh agents face seed s's trained planner.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from prosocial.ermas.loop import Ermas, ErmasRunConfig, ErmasState
from prosocial.ermas.train import from_dict
from prosocial.io import Checkpointer
from prosocial.io.rundir import load_run_config

TRAINING_ONLY = ("perturb_q", "dr", "episode_dr", "risk_eta", "ref_concav_log",
                 "action_perturb")


def test_config(train: ErmasRunConfig, q: float, iterations: int,
                extra_options: dict | None = None) -> ErmasRunConfig:
    """The config of fresh test agents at perturbation ``q`` against the frozen planner."""
    options = {k: v for k, v in dict(train.env_options).items() if k not in TRAINING_ONLY}
    options["perturb_q"] = float(q)
    options.update(extra_options or {})
    return dataclasses.replace(train, env_options=options, train_planner=False,
                               outer_iterations=int(iterations),
                               ermas=dataclasses.replace(train.ermas, method="marl"))


def load_run(run_dir) -> tuple[ErmasRunConfig, ErmasState]:
    """A finished (or checkpointed) run's config and latest state."""
    cfg = from_dict(load_run_config(Path(run_dir)))
    target = Ermas(cfg).init()
    with Checkpointer(run_dir, read_only=True) as ckpt:
        state, _ = ckpt.restore(target=target)
    return cfg, state


def evaluate_planner(train: ErmasRunConfig, planner_params, q_values, iterations: int,
                     extra_options: dict | None = None, seed: int = 1000
                     ) -> dict[float, dict[str, np.ndarray]]:
    """For each test Q: ``iterations`` PPO iterations of fresh agents against the frozen
    planner (``planner_params``, leaves ``[S, ...]``), then the returns of whole episodes.
    Returns ``{q: {"planner_return": [S], "agent_return": [S, n]}}``."""
    out = {}
    for q in q_values:
        cfg = test_config(train, q, iterations, extra_options)
        er = Ermas(cfg)
        state = er.init(jax.random.PRNGKey(seed))
        main = state.main
        planner = main.pops[1].replace(params=planner_params)
        main = main.replace(pops=(main.pops[0], planner))
        for _ in range(int(iterations)):
            main, _ = er.main.iteration(main)
        state = state.replace(main=main)
        j = np.asarray(er.evaluate(state, jax.random.PRNGKey(seed + 1)))
        out[float(q)] = {"planner_return": j[:, er.planner_id],
                         "agent_return": j[:, np.asarray(er.agents)]}
    return out


__all__ = ["TRAINING_ONLY", "evaluate_planner", "load_run", "test_config"]
