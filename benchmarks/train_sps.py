"""End-to-end training throughput: env steps per second of PPO iterations (collect + update).

    python benchmarks/train_sps.py --env cleanup --num-agents 5 --num-envs 128 --num-steps 128
    python benchmarks/train_sps.py ... --motive ia     # or si: the cost of a motive

One iteration collects num_envs × num_steps env steps with the SSD network (conv 6@3×3 →
32 → 32 → LSTM 128, one parameter set per agent) and updates on them (``--epochs`` ×
``--minibatches``, default 1 × 4). The first iteration's wall time (compile included) is
reported separately; throughput is the median over ``--repeats`` further iterations. The
last line of the output is ``env_steps_per_s=<number>``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import jax


def main(argv=None) -> None:
    from prosocial.envs.registry import make
    from prosocial.learners.ppo import PPO, PPOConfig
    from prosocial.motives.config import MotiveConfig
    from prosocial.nets import NetConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="cleanup")
    parser.add_argument("--num-agents", type=int, default=5)
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=20,
                        help="stored-state sequence length (RLlib max_seq_len)")
    parser.add_argument("--lstm-size", type=int, default=128)
    parser.add_argument("--num-seeds", type=int, default=1)
    parser.add_argument("--loop", default="auto", choices=["auto", "python", "scan"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--motive", default="none", choices=["none", "collective", "ia", "si"],
                        help="social motive (SI with its |A| counterfactual MOA steps)")
    args = parser.parse_args(argv)

    env = make(args.env, num_agents=args.num_agents)
    cfg = PPOConfig(num_envs=args.num_envs, num_steps=args.num_steps, num_epochs=args.epochs,
                    num_minibatches=args.minibatches, seq_len=args.seq_len, loop=args.loop,
                    net=NetConfig(lstm_size=args.lstm_size))
    motive = MotiveConfig(name=args.motive, influence_schedule=((0, 1),)).build()
    learner = PPO(cfg, env, num_seeds=args.num_seeds, motive=motive)
    state = learner.init(jax.random.PRNGKey(0))
    jax.block_until_ready(state)
    steps = cfg.steps_per_iteration * args.num_seeds

    start = time.perf_counter()
    state, metrics = learner.iteration(state)
    jax.block_until_ready((state, metrics))
    first = time.perf_counter() - start
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        state, metrics = learner.iteration(state)
        jax.block_until_ready((state, metrics))
        rates.append(steps / (time.perf_counter() - start))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.env}, {args.num_agents} agents, {args.num_seeds} seed(s) × {args.num_envs} "
          f"envs × {args.num_steps} steps, {args.epochs} epoch(s) × {args.minibatches} "
          f"minibatches, seq_len {args.seq_len}, motive {args.motive}, "
          f"loop {cfg.resolved_loop()}, "
          f"backend {jax.default_backend()}")
    print(f"first iteration (compile included): {first:.1f} s")
    print("iterations: " + ", ".join(f"{r:,.0f}" for r in rates) + " env steps/s")
    print(f"peak RSS: {peak:,.0f} MiB")
    print(f"env_steps_per_s={statistics.median(rates):.0f}")


if __name__ == "__main__":
    main()
