"""The ``prosocial`` command.

    prosocial demo [--out DIR]                 random agents: GIFs of Harvest and Cleanup, env speed
    prosocial bench envs [--env ID] [--num-envs N ...]
    prosocial train [--preset NAME] [--env ID --num-envs N --total-steps N ...] --out DIR
    prosocial train --resume DIR [--total-steps N]
    prosocial eval DIR|FILE.safetensors [--episodes K] [--checkpoint N]
    prosocial export DIR [--out FILE.safetensors]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _demo(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="prosocial demo", description=(
        "Run random agents in Harvest and Cleanup: write an episode GIF of each and print "
        "the environments' speed."))
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--num-agents", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200, help="episode steps in the GIFs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from prosocial.experiments.demo import run_demo

    run_demo(args.out, num_agents=args.num_agents, steps=args.steps, seed=args.seed)


def _bench(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="prosocial bench", description="Benchmarks.")
    parser.add_argument("what", choices=["envs"], help="what to measure")
    args, rest = parser.parse_known_args(argv)
    from prosocial.bench import envs_main

    envs_main(rest)


def _train(argv: list[str]) -> None:
    from prosocial.experiments.cli_train import train_main

    train_main(argv)


def _eval(argv: list[str]) -> None:
    from prosocial.experiments.cli_train import eval_main

    eval_main(argv)


def _export(argv: list[str]) -> None:
    from prosocial.experiments.cli_train import export_main

    export_main(argv)


COMMANDS = {"demo": _demo, "bench": _bench, "train": _train, "eval": _eval, "export": _export}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        raise SystemExit(f"prosocial: unknown command {command!r}; "
                         f"commands: {', '.join(sorted(COMMANDS))}")
    COMMANDS[command](rest)


if __name__ == "__main__":
    main()
