"""The ``prosocial`` command.

usage: prosocial COMMAND [options]      (prosocial COMMAND --help for all its options)

  prosocial train [--preset NAME] [--out DIR] [config flags]
        train a new run; --preset default: quick; --out default:
        runs/<preset>-<YYYYmmdd-HHMMSS>; config flags such as --env, --num-agents,
        --total-steps, --num-envs, --lr override the preset; --env.NAME VALUE sets any
        keyword of the environment (e.g. --env.ref-beam-order-by-id)
  prosocial train --resume DIR [--total-steps N]
        continue the run in DIR from its last checkpoint (default: none, start a new run)
  prosocial eval DIR|FILE.safetensors [--episodes K] [--checkpoint N]
        run a trained policy (default: 8 episodes, the latest checkpoint)
  prosocial export DIR [--out FILE.safetensors]
        write one seed's policy (default --out: DIR/policy.safetensors)
  prosocial compare PRESET... [--out DIR] [--ray local|ADDRESS] [train flags]
        train several presets at one budget (resuming unfinished runs), then write a
        table and a plot of collective return with 95% CIs beside the papers' numbers
        (default --out: runs/compare)
  prosocial niceness DIR [--episodes K] [--seed-index I]
        a Coins run's niceness-network predictions by action class (other's coin, own
        coin, no coin), as in the reciprocity paper (default: 100 episodes, seed 0)
  prosocial ermas --preset ermas/bimatrix/NAME --out DIR [--seeds S] [--resume]
        [--deviation ppo|trpo] [--rho R]
        train an ERMAS run or baseline (marl, oracle, dr, rr, ermas, ermas-nometa,
        fixed-lambda; ermas/bimatrix-reference-code/… with the reference code's defects);
        deviations by PPO (default), PPO stopped at mean KL rho, or TRPO of radius rho
  prosocial figure ermas-fig3|ermas-fig4|ermas-fig5 --out DIR [--seeds S] [--episodes K]
        [--episode-steps T] [--test-episodes K] [--deviation ppo|trpo] [--rho R]
        [--ray local|ADDRESS]
        reproduce a paper figure: its runs (resumable), table with 95% CIs, plot, and the
        paper's claim beside the measured outcome; --deviation/--rho as for ermas, on the
        figure's ERMAS runs; --ray trains the runs side by side as Ray tasks
  prosocial demo [--out DIR]
        random agents: GIFs of Harvest and Cleanup and the env speed (default: runs/demo)
  prosocial bench envs [--env ID] [--num-envs N ...]
        environment steps per second

Exit status: 0 done, 1 training failed (e.g. non-finite loss), 2 bad input,
130 stopped by Ctrl-C, 143 by SIGTERM (both after saving a checkpoint).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _fail(prog: str, message: str) -> None:
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


def _demo(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="prosocial demo", description=(
        "Run random agents in Harvest and Cleanup: write an episode GIF of each and print "
        "the environments' speed."))
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="(default: runs/demo)")
    parser.add_argument("--num-agents", type=int, default=5, help="(default: 5)")
    parser.add_argument("--steps", type=int, default=200,
                        help="episode steps in the GIFs (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    args = parser.parse_args(argv)
    from prosocial.experiments.demo import check_demo_args, run_demo

    try:
        check_demo_args(args.out, num_agents=args.num_agents, steps=args.steps)
    except ValueError as e:
        _fail("prosocial demo", str(e))
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


def _compare(argv: list[str]) -> None:
    from prosocial.experiments.compare import compare_main

    compare_main(argv)


def _eval(argv: list[str]) -> None:
    from prosocial.experiments.cli_train import eval_main

    eval_main(argv)


def _export(argv: list[str]) -> None:
    from prosocial.experiments.cli_train import export_main

    export_main(argv)


def _niceness(argv: list[str]) -> None:
    from prosocial.experiments.niceness_report import niceness_main

    niceness_main(argv)


def _ermas(argv: list[str]) -> None:
    from prosocial.ermas.train import ermas_main

    ermas_main(argv)


def _figure(argv: list[str]) -> None:
    from prosocial.experiments.figures import figure_main

    figure_main(argv)


COMMANDS = {"demo": _demo, "bench": _bench, "train": _train, "eval": _eval, "export": _export,
            "compare": _compare, "niceness": _niceness, "ermas": _ermas, "figure": _figure}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        _fail("prosocial", f"unknown command {command!r}; commands: "
              f"{', '.join(sorted(COMMANDS))} (prosocial --help)")
    try:
        COMMANDS[command](rest)
    except KeyboardInterrupt:
        print(f"prosocial {command}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
