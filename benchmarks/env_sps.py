"""Environment steps per second (jit + vmap + scan, random actions, full observations).

    python benchmarks/env_sps.py --env harvest --num-agents 5 --num-envs 512
    python benchmarks/env_sps.py --env all            # the table for N = 1, 64, 512, 2048

The last line of the output is ``env_steps_per_s=<number>`` (of the last configuration).
"""

from __future__ import annotations

import argparse

from prosocial.bench import measure
from prosocial.envs.registry import list_envs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="all", help=f"one of {list_envs()} or 'all'")
    parser.add_argument("--num-agents", type=int, default=5)
    parser.add_argument("--num-envs", type=int, nargs="*", default=None,
                        help="parallel environments (default: 1 64 512 2048)")
    parser.add_argument("--num-steps", type=int, default=100, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (median)")
    args = parser.parse_args(argv)
    envs = list_envs() if args.env == "all" else [args.env]
    sizes = args.num_envs or [1, 64, 512, 2048]
    print(f"{'env':<8} {'N':>5} {'compile s':>10} {'steps/s (median)':>17} "
          f"{'state+obs MiB':>14} {'peak RSS MiB':>13}")
    for env_id in envs:
        for n in sizes:
            r = measure(env_id, args.num_agents, n, args.num_steps, args.repeats)
            print(f"{env_id:<8} {n:>5} {r['compile_s']:>10.2f} {r['env_steps_per_s']:>17,.0f} "
                  f"{r['state_plus_obs_mib']:>14.1f} {r['peak_rss_mib']:>13.0f}", flush=True)
    print(f"env_steps_per_s={r['env_steps_per_s']:.0f}")


if __name__ == "__main__":
    main()
