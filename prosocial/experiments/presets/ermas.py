"""ERMAS presets (specs §8.6 row ``ermas/bimatrix/…``, §9.9.6–9.9.8): SRAI's bimatrix runs.

Every preset is an :class:`~prosocial.ermas.loop.ErmasRunConfig` of the augmented bimatrix
game (``bimatrix``, active planner; the Fig. 3–4 commands switch to
``bimatrix-constrained``). Settings of ``yamls/bimatrix/train_ermas_ermas.yaml``:

- agents: PPO lr 3e-4, γ 0.8, GAE λ 0.9, entropy 0.025, linear policy and value;
  planner: lr 1e-4, entropy 0.1, linear (γ and GAE λ as the agents', which the configs
  do not set apart);
- common: clip 0.3, value coefficient 0.05, value clip 50, gradient clip 10, no KL
  penalty, one SGD pass over a batch of 12 000 steps in minibatches of 3000, fragments of
  200 steps (60 environments × 200 steps per batch; RLlib's 3 workers × 4 envs collect
  the same batch in five rounds), samples shuffled one by one (sequence length 1: the
  policies are feed-forward);
- ERMAS: ε 5 (SWEEP −10, 5, 20), α_λ 0.005, λ_0 8, n_inner 2, n_main 3, β 0.2 (step
  capped at 2), meta step on, E_eval 10;
- budget: 50 000 episodes × 5000 steps of the main trainer = 2.5×10⁸ steps per seed =
  6945 outer iterations of 3 × 12 000 steps; 5 seeds (Fig. 5; Fig. 4 uses 10).

Baselines (§9.9.7) train with plain PPO (``method="marl"``) and differ in the environment:
``marl`` Q = 0; ``oracle`` Q = 0.5 (the "MARL (Q = 0.5)" curve of Fig. 5; other Q with
``env_options``); ``dr`` agents' rewards + U[−1, 1] per episode; ``rr`` planner reward
concave with η = 0.2 (η ∈ {0.05, 0.1, 0.2, 1.0} from the N-matrix configs). Ablations
(§9.9.8): ``ermas-nometa`` (no meta step), ``fixed-lambda`` (``freeze_lambda``, λ_0 = 8).
``…-reference-code`` variants switch on the §12 flags of SRAI (B-28, B-30, B-31, B-32):
``share_agent_policy``, ``ref_deviation_planner_untrained``, ``ref_concav_log``,
``ref_bimatrix_extra_step``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from prosocial.ermas.loop import LINEAR, ErmasConfig, ErmasRunConfig
from prosocial.learners.ppo_config import PPOConfig

EPISODE_STEPS = 5000
BATCH = 12_000
TRAIN_EPISODES = 50_000
SEEDS = 5


def _common(**kw) -> PPOConfig:
    return PPOConfig(gamma=0.8, gae_lambda=0.9, clip_eps=0.3, vf_coef=0.05, vf_clip=50.0,
                     max_grad_norm=10.0, kl_coef=0.0, num_epochs=1, num_minibatches=4,
                     seq_len=1, **kw)


AGENT_PPO = _common(lr=3e-4, ent_coef=0.025)
PLANNER_PPO = _common(lr=1e-4, ent_coef=0.1)
ERMAS = ErmasConfig(method="ermas", epsilon=5.0, alpha_lr=0.005, initial_lambda=8.0,
                    inner_me_iterations=2, inner_main_iterations=3, metascale=0.2,
                    use_meta=True, eval_episodes=10)
MARL = dataclasses.replace(ERMAS, method="marl")


def outer_iterations(episodes: int, episode_steps: int, n_main: int,
                     batch: int = BATCH) -> int:
    """Outer iterations whose main updates see ``episodes`` × ``episode_steps`` steps."""
    return -(-episodes * episode_steps // (n_main * batch))


def _run(ermas: ErmasConfig, **env_options) -> ErmasRunConfig:
    return ErmasRunConfig(
        env="bimatrix", env_options=env_options, num_seeds=SEEDS, num_envs=BATCH // 200,
        num_steps=200, agent_ppo=AGENT_PPO, planner_ppo=PLANNER_PPO, agent_net=LINEAR,
        planner_net=LINEAR, share_agent_policy=False, train_planner=True, ermas=ermas,
        outer_iterations=outer_iterations(TRAIN_EPISODES, EPISODE_STEPS,
                                          ermas.inner_main_iterations),
        checkpoint_every=50)


def marl() -> ErmasRunConfig:
    return _run(MARL)


def oracle() -> ErmasRunConfig:
    return _run(MARL, perturb_q=0.5)


def dr() -> ErmasRunConfig:
    return _run(MARL, dr=1.0, episode_dr=True)


def rr() -> ErmasRunConfig:
    return _run(MARL, risk_eta=0.2)


def ermas() -> ErmasRunConfig:
    return _run(ERMAS)


def ermas_nometa() -> ErmasRunConfig:
    return _run(dataclasses.replace(ERMAS, use_meta=False))


def fixed_lambda() -> ErmasRunConfig:
    return _run(dataclasses.replace(ERMAS, freeze_lambda=True))


def reference_code(build: Callable[[], ErmasRunConfig]) -> Callable[[], ErmasRunConfig]:
    """The preset with SRAI's §12 behaviours (B-28, B-30, B-31, B-32)."""

    def make() -> ErmasRunConfig:
        cfg = build()
        options = dict(cfg.env_options, ref_bimatrix_extra_step=True)
        if "risk_eta" in options:
            options["ref_concav_log"] = True
        return dataclasses.replace(
            cfg, env_options=options, share_agent_policy=True,
            ermas=dataclasses.replace(cfg.ermas, ref_deviation_planner_untrained=True))

    return make


_BASE = {"marl": marl, "oracle": oracle, "dr": dr, "rr": rr, "ermas": ermas,
         "ermas-nometa": ermas_nometa, "fixed-lambda": fixed_lambda}
PRESETS: dict[str, Callable[[], ErmasRunConfig]] = {
    **{f"ermas/bimatrix/{k}": v for k, v in _BASE.items()},
    **{f"ermas/bimatrix-reference-code/{k}": reference_code(v) for k, v in _BASE.items()}}


def preset(name: str) -> ErmasRunConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown ERMAS preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]()


__all__ = ["AGENT_PPO", "ERMAS", "MARL", "PLANNER_PPO", "PRESETS", "outer_iterations",
           "preset"]
