"""Environment steps per second (jit + vmap + scan, random actions, AutoReset).

    python benchmarks/env_sps.py --env harvest --num-agents 5 --num-envs 512
    python benchmarks/env_sps.py --env all            # the table for 1, 64, 512, 2048 envs

The same measurement and table as ``prosocial bench envs`` (``prosocial.bench``): two
throughputs per configuration, each the median of ``--repeats`` timed calls of one jitted
``lax.scan`` of ``--num-steps`` steps:

- ``full``: the rollout returns a checksum of *every* element of every observation leaf,
  so XLA must build each agent's whole view on every step. This is the honest number for
  a learner, which reads every observation.
- ``pixel``: the older variant, whose checksum reads one pixel of the RGB view (or one
  element of each leaf); XLA may then skip most of the view gathering, so it measures the
  dynamics more than the observations.

The last line of the output is ``env_steps_per_s=<number>``: the ``full`` throughput of
the last configuration measured (``--mode pixel``: the pixel one).
"""

from __future__ import annotations

from prosocial.bench import envs_main


def main(argv=None) -> None:
    envs_main(argv, prog="benchmarks/env_sps.py")


if __name__ == "__main__":
    main()
