"""End-to-end training throughput: env steps per second of iterations (collect + update).

    python benchmarks/train_sps.py --env cleanup --num-agents 5 --num-envs 128 --num-steps 128
    python benchmarks/train_sps.py ... --motive ia     # or si, scm: the cost of a motive
    python benchmarks/train_sps.py ... --learner a2c   # A2C with V-trace instead of PPO
    python benchmarks/train_sps.py ... --learner dqn   # independent DQN (specs §9.8)

One iteration collects num_envs × num_steps env steps with the SSD network (conv 6@3×3 →
32 → 32 → LSTM 128, one parameter set per agent, one population of all agents) and
updates on them (PPO: ``--epochs`` × ``--minibatches``, default 1 × 4; A2C: one step; DQN:
the specs §9.8 settings with learning from the first step, one gradient step of batch 128
per vector step, i.e. ``--num-steps`` per iteration, on its 128-128 ReLU Q-network). The
first iteration's wall time (compile included) is reported separately; throughput is the
median over ``--repeats`` further iterations, and the median split of an iteration between
collecting and updating comes from ``--repeats`` more (timed apart, which waits for the
rollout before updating). The last line of the output is ``env_steps_per_s=<number>``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import jax


def main(argv=None) -> None:
    from prosocial.envs.registry import make
    from prosocial.learners.a2c import A2C, A2CConfig
    from prosocial.learners.dqn import DQN, DQNConfig
    from prosocial.learners.population import all_agents
    from prosocial.learners.ppo import PPO, PPOConfig
    from prosocial.learners.runner import Runner
    from prosocial.motives.config import MOTIVES, MotiveConfig
    from prosocial.nets import NetConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="cleanup")
    parser.add_argument("--num-agents", type=int, default=5)
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--learner", default="ppo", choices=["ppo", "a2c", "dqn"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=20,
                        help="PPO's stored-state sequence length (RLlib max_seq_len)")
    parser.add_argument("--lstm-size", type=int, default=128)
    parser.add_argument("--num-seeds", type=int, default=1)
    parser.add_argument("--loop", default="auto", choices=["auto", "python", "scan"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--motive", default="none", choices=list(MOTIVES),
                        help="social motive (SI with its |A| counterfactual MOA steps; SCM "
                             "adds its encoder, forward and inverse models; EMuReL its "
                             "impact models)")
    args = parser.parse_args(argv)

    env = make(args.env, num_agents=args.num_agents)
    if args.learner == "ppo":
        rule = PPO(PPOConfig(num_epochs=args.epochs, num_minibatches=args.minibatches,
                             seq_len=args.seq_len, loop=args.loop))
        shape = (f"{args.epochs} epoch(s) × {args.minibatches} minibatches, seq_len "
                 f"{args.seq_len}, loop {rule.loop}")
    elif args.learner == "dqn":
        rule = DQN(DQNConfig(steps_before_learn=0))
        shape = f"{args.num_steps} gradient steps of batch 128 per iteration"
    else:
        rule = A2C(A2CConfig())
        shape = "one step per rollout"
    motive = MotiveConfig(name=args.motive, influence_schedule=((0, 1),)).build()
    pop = all_agents(env, rule, NetConfig(lstm_size=args.lstm_size), motive, args.num_seeds)
    runner = Runner(env, (pop,), args.num_seeds, args.num_envs, args.num_steps)
    state = runner.init(jax.random.PRNGKey(0))
    jax.block_until_ready(state)
    steps = runner.steps_per_iteration * args.num_seeds

    start = time.perf_counter()
    state, metrics = runner.iteration(state)
    jax.block_until_ready((state, metrics))
    first = time.perf_counter() - start
    rates, collect, update = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        state, metrics = runner.iteration(state)
        jax.block_until_ready((state, metrics))
        rates.append(steps / (time.perf_counter() - start))
    # The split waits for the rollout before updating, which costs a little: measured on
    # further iterations, not in the throughput above.
    for _ in range(args.repeats):
        timings: dict[str, float] = {}
        state, metrics = runner.iteration(state, timings)
        collect.append(timings["collect"])
        update.append(timings["update"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.env}, {args.num_agents} agents, {args.num_seeds} seed(s) × {args.num_envs} "
          f"envs × {args.num_steps} steps, {args.learner} ({shape}), motive {args.motive}, "
          f"backend {jax.default_backend()}")
    print(f"first iteration (compile included): {first:.1f} s")
    print("iterations: " + ", ".join(f"{r:,.0f}" for r in rates) + " env steps/s")
    c, u = statistics.median(collect), statistics.median(update)
    print(f"split (median): collect {c:.2f} s, update {u:.2f} s "
          f"({100 * c / (c + u):.0f}% collecting)")
    print(f"peak RSS: {peak:,.0f} MiB")
    print(f"env_steps_per_s={statistics.median(rates):.0f}")


if __name__ == "__main__":
    main()
