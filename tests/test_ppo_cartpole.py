"""End-to-end check of the PPO learner: it solves gymnax CartPole-v1 (return ≥ 475 of 500).

PureJaxRL's CartPole settings (4 envs × 128 steps, 4 epochs × 4 minibatches, γ 0.99,
λ 0.95, clip 0.2 on the ratio and on the value change, entropy 0.01, grad norm 0.5, no KL
penalty, learning rate annealed linearly to 0 over 5×10⁵ env steps) with a 64-64 tanh
feed-forward network, except two settings. ``seq_len=1`` makes every step its own
sequence, so minibatches are shuffled steps as in PureJaxRL.

PureJaxRL has separate actor and critic networks; ours share the torso. With a shared
torso, value targets up to ~100 give value gradients that swamp the policy gradient under
the 0.5 global-norm clip, and PureJaxRL's own settings (lr 2.5e-4, value coefficient 0.5)
plateau at a return of ~250 — in our learner and in a PureJaxRL reimplementation with a
shared torso alike. A small value coefficient (0.01; our value loss has no ½) and lr 1e-3
solve it: 500 at the end in each of 6 seeds tried, the 20-iteration mean first ≥ 475 after
~1×10⁵ env steps.
"""

import math

import jax
import numpy as np
import pytest

from prosocial import nets
from prosocial.envs.adapters.gymnax import GymnaxEnv
from prosocial.learners.ppo import PPO, PPOConfig

TOTAL_STEPS = 500_000
TARGET = 475.0
WINDOW = 20  # last iterations whose mean episode return must reach TARGET (~1 episode each)


def cartpole_config() -> PPOConfig:
    return PPOConfig(
        num_envs=4, num_steps=128, num_epochs=4, num_minibatches=4, seq_len=1,
        lr=1e-3, lr_schedule=((0, 1e-3), (TOTAL_STEPS, 1e-12)),
        gamma=0.99, gae_lambda=0.95, clip_eps=0.2, vf_coef=0.01, vf_clip=0.2,
        ent_coef=0.01, kl_coef=0.0, max_grad_norm=0.5,
        net=nets.NetConfig(lstm_size=None, hidden_sizes=(64, 64),
                           hidden_init_scale=math.sqrt(2), head_init_scale=0.01))


def train(seed: int = 0, log=None) -> list[float]:
    """Train for TOTAL_STEPS env steps; returns every iteration's mean episode return (NaN
    where no episode ended)."""
    cfg = cartpole_config()
    ppo = PPO(cfg, GymnaxEnv("CartPole-v1"), num_seeds=1)
    ts = ppo.init(jax.random.PRNGKey(seed))
    returns: list[float] = []
    for it in range(TOTAL_STEPS // cfg.steps_per_iteration):
        ts, metrics = ppo.iteration(ts)
        returns.append(float(np.asarray(metrics["returns"]).reshape(-1)[0]))
        if log is not None and it % 25 == 0:
            recent = np.nanmean(returns[-WINDOW:])
            log(f"iter {it} steps {int(ts.env_steps)} return {returns[-1]:.1f} "
                f"window {recent:.1f} lr {float(metrics['learning_rate'][0]):.2e}")
    return returns


@pytest.mark.slow
def test_ppo_solves_cartpole():
    returns = train()
    final = np.nanmean(returns[-WINDOW:])
    assert final >= TARGET, (f"mean return of the last {WINDOW} iterations {final:.1f} < "
                             f"{TARGET} after {len(returns)} iterations")
