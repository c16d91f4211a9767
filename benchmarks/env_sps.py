"""Environment steps per second (jit + vmap + scan, random actions, full observations).

    python benchmarks/env_sps.py --env harvest --num-agents 5 --num-envs 512
    python benchmarks/env_sps.py --env all            # the table for N = 1, 64, 512, 2048

Same as ``prosocial bench envs``. The last line of the output is ``env_steps_per_s=<number>``
(of the last configuration measured).
"""

from prosocial.bench import envs_main

if __name__ == "__main__":
    envs_main()
