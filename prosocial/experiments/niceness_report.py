"""The niceness network's predictions by action class in Coins ([ECCLES] §3.4.4, specs
§9.7.7, R-14): ``prosocial niceness RUN_DIR``.

The run's final innovator and imitator play ``--episodes`` episodes (sampled actions); each
imitator's niceness network scores every step of the innovator's trajectory and of its own,
n(s, a) = Q(s, a) − V(s), and the steps are split by what the acting agent's action did:
picked up the other player's coin, its own coin, or no coin. Printed per class: the mean
over episodes of the episode's mean n, ± its standard error over episodes, and the number
of steps. [ECCLES] reports −0.35 ± 0.02 (other's coin), −0.004 ± 0.004 (own coin) and
0.007 ± 0.001 (no coin).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np

CLASSES = ("other's coin", "own coin", "no coin")
PAPER = {"other's coin": "-0.35 ± 0.02", "own coin": "-0.004 ± 0.004",
         "no coin": "0.007 ± 0.001"}


def action_classes(own_collected, other_collected) -> np.ndarray:
    """Class of each step (0 other's coin, 1 own coin, 2 no coin) from the acting agent's
    coin events of that step; a step that took coins of both colours counts as the other's."""
    own, other = np.asarray(own_collected), np.asarray(other_collected)
    return np.where(other > 0, 0, np.where(own > 0, 1, 2))


def niceness_by_class(niceness, classes) -> dict[str, tuple[float, float, int]]:
    """``{class: (mean, standard error, steps)}`` of n over steps ``[T, K]`` (K episodes):
    each episode's mean n over its steps of the class, then the mean and standard error
    (ddof 1) over the episodes that have such a step (s.e. NaN with one episode; everything
    NaN with none)."""
    n, c = np.asarray(niceness, np.float64), np.asarray(classes)
    out = {}
    for i, name in enumerate(CLASSES):
        mask = c == i
        count = mask.sum(axis=0)
        has = count > 0
        per_episode = (n * mask).sum(axis=0)[has] / count[has]
        k = per_episode.size
        mean = float(per_episode.mean()) if k else float("nan")
        se = float(per_episode.std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan")
        out[name] = (mean, se, int(count.sum()))
    return out


def load_run(run_dir: Path, checkpoint: int | None = None):
    """``(cfg, runner, state, step)`` of a run directory's checkpoint (read only)."""
    from prosocial.experiments.cli_train import load_run_dir_config
    from prosocial.experiments.train import build
    from prosocial.io import Checkpointer

    if not (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir} is not a run directory (no config.json)")
    cfg = load_run_dir_config(run_dir)
    runner = build(cfg)
    abstract = jax.eval_shape(runner.init, jax.random.PRNGKey(0))
    with Checkpointer(run_dir, read_only=True) as ckpt:
        if ckpt.latest_step() is None:
            raise ValueError(f"{run_dir} has no checkpoint yet")
        step = checkpoint if checkpoint is not None else ckpt.latest_step()
        state, _ = ckpt.restore(step, target=abstract)
    return cfg, runner, state, step


def niceness_report(run_dir: Path, episodes: int = 100, seed_index: int = 0,
                    checkpoint: int | None = None, seed: int = 0) -> dict:
    """``{(imitator id, "innovator"|"own"): niceness_by_class(...)}`` for one seed of a
    Coins run with niceness-network imitators."""
    from prosocial.envs.core import event_keys
    from prosocial.experiments.evaluate import seed_params
    from prosocial.learners.rollout import init_rollout_state, make_collect
    from prosocial.motives.reciprocity import Reciprocity

    cfg, runner, state, _ = load_run(run_dir, checkpoint)
    if not 0 <= seed_index < cfg.num_seeds:
        raise ValueError(f"--seed-index must be in [0, {cfg.num_seeds}), got {seed_index}")
    found = [(i, p) for i, p in enumerate(runner.populations)
             if isinstance(p.motive, Reciprocity) and p.motive.learned]
    if not found:
        raise ValueError(f"{run_dir} has no imitators with a niceness network "
                         "(motive reciprocity, niceness=network)")
    env = runner.env
    if not {"own_coins_collected", "other_coins_collected"} <= set(event_keys(env)):
        raise ValueError(f"the niceness report classifies coin pickups; {cfg.env} is not a "
                         "Coins game")
    pops = tuple(dataclasses.replace(p, layout=dataclasses.replace(p.layout, num_seeds=1))
                 for p in runner.populations)
    params = seed_params(runner.populations, state, seed_index)
    steps = getattr(env, "max_steps", cfg.max_steps)
    collect = make_collect(env, pops, steps, bootstrap=(False,) * len(pops))

    @jax.jit
    def play(params, key):
        k_reset, k_run = jax.random.split(key)
        rs = init_rollout_state(env, pops, 1, episodes, k_reset, k_run)
        return collect(params, rs)[1]

    rollout = play(params, jax.random.PRNGKey(seed))
    obs = jax.tree.map(lambda x: x[:, 0], rollout.obs)  # [T, K, N, ...]
    action = rollout.action[:, 0]
    own = np.asarray(rollout.events["own_coins_collected"][:, 0])
    other = np.asarray(rollout.events["other_coins_collected"][:, 0])
    results = {}
    for i, pop in found:
        motive = pop.motive
        inv = motive.cfg.innovator
        net = motive.net(pop.policy.cfg)
        width = pop.layout.n
        mparams = jax.tree.map(lambda x, w=width: x[seed_index * w:(seed_index + 1) * w],
                               state.pops[i].motive_params)
        for j, agent in enumerate(pop.layout.agents):
            p = jax.tree.map(lambda x, j=j: x[j:j + 1], mparams)
            for who, a in (("innovator", inv), ("own", agent)):
                o = jax.tree.map(lambda x, a=a: x[None, :, :, a], obs)  # [1, T, K, ...]
                n, _, _ = net.niceness(p, o, action[None, :, :, a])
                results[(agent, who)] = niceness_by_class(
                    np.asarray(n[0]), action_classes(own[..., a], other[..., a]))
    return results


def format_report(results: dict, header: str = "") -> str:
    lines = [header] if header else []
    lines.append(f"{'imitator':>8}  {'trajectory':<10}  {'action class':<13}  "
                 f"{'mean n ± s.e.':>22}  {'steps':>8}  {'[ECCLES] §3.4.4':>16}")
    for (agent, who), table in results.items():
        for name in CLASSES:
            mean, se, count = table[name]
            lines.append(f"{agent:>8}  {who:<10}  {name:<13}  {mean:>11.4f} ± {se:<8.4f}  "
                         f"{count:>8}  {PAPER[name]:>16}")
    return "\n".join(lines)


def niceness_main(argv: list[str]) -> None:
    prog = "prosocial niceness"
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Mean niceness-network predictions n = Q − V by action class (other's coin, own "
        "coin, no coin) over episodes of a trained Coins run ([ECCLES] §3.4.4)."))
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=100, help="(default: 100)")
    parser.add_argument("--seed-index", type=int, default=0, help="(default: 0)")
    parser.add_argument("--checkpoint", type=int, default=None, help="(default: the latest)")
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        print(f"{prog}: error: --episodes must be positive, got {args.episodes}",
              file=sys.stderr)
        raise SystemExit(2)
    try:
        results = niceness_report(args.run_dir, args.episodes, args.seed_index,
                                  args.checkpoint, args.seed)
    except (ValueError, FileNotFoundError) as e:
        print(f"{prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    print(format_report(results, f"{args.run_dir}: seed {args.seed_index}, "
                                 f"{args.episodes} episodes"))


__all__ = ["action_classes", "format_report", "niceness_by_class", "niceness_main",
           "niceness_report"]
