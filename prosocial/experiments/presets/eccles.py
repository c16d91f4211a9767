"""[ECCLES]' experiments (specs.md §8.6 ``eccles/*``, §9.7).

``eccles/{coins,cleanup,harvest}/{selfish,mm,nn}`` and the ablations of §9.7.7
``eccles/{game}/nn-kl-only`` (c_im = 0, c_KL as Table 2) and ``eccles/{game}/nn-niceness-only``
(c_KL = 0):

- agents: Coins 1 innovator (agent 0) + 1 imitator, Cleanup and Harvest 1 + 4; ``selfish``
  is every agent an innovator (one population, no motive); otherwise populations
  ``innovator:0`` (no motive) and ``imitator:1..`` shaped by the reciprocity motive
  (``motive_populations``);
- learner (§9.7.6, D-21): synchronous A2C with V-trace, 32 envs × unroll 100 per step,
  discount 0.99, baseline cost 0.5, global-norm clip 40, RMSProp (decay 0.99, momentum 0,
  ε 0.01), losses summed over the batch as IMPALA's; the niceness network's loss and the
  policy-imitation KL are summed the same way (``reciprocity_reduction="sum"``) so that c_KL
  weighs against the policy loss per step as in one summed loss;
- network ([ECCLES] App. A): Conv 6@3×3 (on the Coins planes too) → MLP 32, 32 (ReLU) →
  LSTM 32 → policy and baseline heads;
- Table 2: c_im, γ_im = 0.95, c_KL, entropy, RL learning rate and the niceness network's
  learning rate, TD-λ and discount per game and variant; selfish agents take the game's MM
  column (D-25);
- budgets (D-22): Coins 1×10⁸, Cleanup and Harvest 5×10⁸ env steps; 5 seeds (ours);
  Coins episodes 500 steps, Cleanup and Harvest 1000; our corrected games (no ref flags).
"""

from __future__ import annotations

from prosocial.experiments.config import TrainConfig
from prosocial.learners.a2c_config import A2CConfig
from prosocial.motives.config import MotiveConfig
from prosocial.nets import NetConfig

# [ECCLES] Table 2: per game, the MM and AN (niceness network) columns.
TABLE2 = {
    "coins": {
        "mm": dict(imitation_weight=0.1, entropy=0.003, lr=0.0005),
        "nn": dict(imitation_weight=0.02, policy_imitation_weight=0.03, entropy=0.003,
                   lr=0.0001, niceness_lr=0.001, niceness_lambda=0.9, niceness_gamma=0.9),
    },
    "cleanup": {
        "mm": dict(imitation_weight=0.1, entropy=0.001, lr=0.0001),
        "nn": dict(imitation_weight=0.1, policy_imitation_weight=0.1, entropy=0.001,
                   lr=0.0001, niceness_lr=0.0001, niceness_lambda=0.95, niceness_gamma=0.99),
    },
    "harvest": {
        "mm": dict(imitation_weight=3.0, entropy=0.003, lr=0.0005),
        "nn": dict(imitation_weight=0.1, policy_imitation_weight=0.1, entropy=0.003,
                   lr=0.0001, niceness_lr=0.0001, niceness_lambda=0.95, niceness_gamma=0.99),
    },
}
IMITATION_DECAY = 0.95
GAMES = {  # env, agents, episode length, budget (D-22)
    "coins": ("coins", 2, 500, 100_000_000),
    "cleanup": ("cleanup", 5, 1000, 500_000_000),
    "harvest": ("harvest", 5, 1000, 500_000_000),
}
NET = NetConfig(conv_filters=6, conv_kernel=3, hidden_sizes=(32, 32), lstm_size=32,
                activation="relu", conv_on_planes=True)


def learner(entropy: float, lr: float) -> A2CConfig:
    """The A2C/V-trace learner of §9.7.6 (D-21)."""
    return A2CConfig(gamma=0.99, lr=lr, optimizer="rmsprop", rmsprop_decay=0.99,
                     rmsprop_eps=0.01, vf_coef=0.5, ent_coef=entropy, max_grad_norm=40.0,
                     reduction="sum", clip_rho=1.0, clip_pg_rho=1.0)


def eccles(game: str, variant: str, kl: bool = True, niceness_reward: bool = True
           ) -> TrainConfig:
    """The config of one game (coins, cleanup, harvest) and variant (selfish, mm, nn);
    ``kl``/``niceness_reward`` False give the NN ablations (c_KL = 0 / c_im = 0)."""
    env, n, length, budget = GAMES[game]
    column = TABLE2[game]["mm" if variant == "selfish" else variant]
    base = dict(env=env, num_agents=n, max_steps=length, total_steps=budget, num_seeds=5,
                num_envs=32, num_steps=100, learner="a2c", net=NET,
                a2c=learner(column["entropy"], column["lr"]), checkpoint_every=200,
                gif_steps=length)
    if variant == "selfish":
        return TrainConfig(**base)
    motive = MotiveConfig(
        name="reciprocity", niceness="metric" if variant == "mm" else "network", innovator=0,
        imitation_weight=column["imitation_weight"] if niceness_reward else 0.0,
        imitation_decay=IMITATION_DECAY,
        policy_imitation_weight=column.get("policy_imitation_weight", 0.0) if kl else 0.0,
        niceness_lr=column.get("niceness_lr", 0.001),
        niceness_lambda=column.get("niceness_lambda", 0.9),
        niceness_gamma=column.get("niceness_gamma", 0.9), reciprocity_reduction="sum")
    imitators = "1" if n == 2 else f"1-{n - 1}"
    return TrainConfig(**base, populations=("innovator:0:a2c", f"imitator:{imitators}:a2c"),
                       motive=motive, motive_populations=("imitator",))


PRESETS = {}
for _game in GAMES:
    for _variant in ("selfish", "mm", "nn"):
        PRESETS[f"eccles/{_game}/{_variant}"] = (
            lambda g=_game, v=_variant: eccles(g, v))
    PRESETS[f"eccles/{_game}/nn-kl-only"] = lambda g=_game: eccles(g, "nn",
                                                                  niceness_reward=False)
    PRESETS[f"eccles/{_game}/nn-niceness-only"] = lambda g=_game: eccles(g, "nn", kl=False)
