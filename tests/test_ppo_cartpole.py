"""End-to-end check of the PPO learner: it solves gymnax CartPole-v1 (return ≥ 475 of 500).

PureJaxRL's CartPole settings (4 envs × 128 steps, 4 epochs × 4 minibatches, Adam 2.5e-4
annealed linearly to 0, γ 0.99, λ 0.95, clip 0.2, entropy 0.01, value 0.5, grad norm 0.5,
no KL penalty, 5×10⁵ env steps) with a 64-64 tanh feed-forward network. ``seq_len=1`` makes
every step its own sequence, so minibatches are shuffled steps as in PureJaxRL.
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
WINDOW = 20  # iterations whose mean episode return must reach TARGET (≈ 4 episodes each)


def cartpole_config() -> PPOConfig:
    return PPOConfig(
        num_envs=4, num_steps=128, num_epochs=4, num_minibatches=4, seq_len=1,
        lr=2.5e-4, lr_schedule=((0, 2.5e-4), (TOTAL_STEPS, 1e-12)),
        gamma=0.99, gae_lambda=0.95, clip_eps=0.2, vf_coef=0.5, vf_clip=0.2,
        ent_coef=0.01, kl_coef=0.0, max_grad_norm=0.5,
        net=nets.NetConfig(lstm_size=None, hidden_sizes=(64, 64),
                           hidden_init_scale=math.sqrt(2), head_init_scale=0.01))


def train(seed: int = 0, stop_early: bool = True, log=None) -> list[float]:
    """Train until TOTAL_STEPS (or, with ``stop_early``, until the last WINDOW iterations
    average ≥ TARGET); returns the per-iteration mean episode return (NaN if none ended)."""
    cfg = cartpole_config()
    ppo = PPO(cfg, GymnaxEnv("CartPole-v1"), num_seeds=1)
    ts = ppo.init(jax.random.PRNGKey(seed))
    returns: list[float] = []
    for it in range(TOTAL_STEPS // cfg.steps_per_iteration):
        ts, metrics = ppo.iteration(ts)
        returns.append(float(np.asarray(metrics["returns"]).reshape(-1)[0]))
        recent = np.nanmean(returns[-WINDOW:]) if len(returns) >= WINDOW else np.nan
        if log is not None and it % 25 == 0:
            log(f"iter {it} steps {int(ts.env_steps)} return {returns[-1]:.1f} "
                f"window {recent:.1f} lr {float(metrics['learning_rate'][0]):.2e}")
        if stop_early and recent >= TARGET:
            break
    return returns


@pytest.mark.slow
def test_ppo_solves_cartpole():
    returns = train()
    final = np.nanmean(returns[-WINDOW:])
    assert final >= TARGET, (f"mean return of the last {WINDOW} iterations {final:.1f} < "
                             f"{TARGET} after {len(returns)} iterations")
