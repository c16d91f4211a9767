"""The training configuration and its named presets.

A :class:`TrainConfig` says everything a run does; ``prosocial train`` builds one from a
preset (``--preset NAME``, default ``quick``) and command-line overrides (tyro), prints it
and saves it in the run directory's ``config.json``. Presets are plain functions returning
a config, so a paper's setting is written once, next to its source in specs.md.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import tyro

from prosocial.envs.registry import list_envs
from prosocial.learners.a2c_config import A2CConfig
from prosocial.learners.ppo import PPOConfig
from prosocial.motives.config import MotiveConfig
from prosocial.nets import NetConfig

LEARNERS = ("ppo", "a2c")


@dataclass(frozen=True)
class PopulationSpec:
    """One population of a run, parsed from ``NAME:AGENTS[:LEARNER][:frozen][:shared]``."""

    name: str
    agents: tuple[int, ...]
    learner: str = "ppo"
    trainable: bool = True
    shared: bool = False

    @classmethod
    def parse(cls, text: str, num_agents: int, default_learner: str) -> PopulationSpec:
        parts = str(text).split(":")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise ValueError(f"populations: {text!r} is not NAME:AGENTS[:LEARNER][:frozen]"
                             f"[:shared] (e.g. focal:0:ppo)")
        agents: set[int] = set()
        for item in parts[1].split(","):
            try:
                lo, _, hi = item.partition("-")
                lo_i, hi_i = int(lo), int(hi or lo)
            except ValueError:
                raise ValueError(f"populations: agents {parts[1]!r} of {text!r} must be ids "
                                 f"and ranges such as 0,2-4") from None
            if not 0 <= lo_i <= hi_i < num_agents:
                raise ValueError(f"populations: agents {item!r} of {text!r} are not in "
                                 f"0..{num_agents - 1}")
            agents.update(range(lo_i, hi_i + 1))
        learner, trainable, shared = default_learner, True, False
        for flag in parts[2:]:
            if flag in LEARNERS:
                learner = flag
            elif flag == "frozen":
                trainable = False
            elif flag == "shared":
                shared = True
            else:
                raise ValueError(f"populations: unknown option {flag!r} in {text!r} "
                                 f"(learners {', '.join(LEARNERS)}, frozen, shared)")
        return cls(parts[0], tuple(sorted(agents)), learner, trainable, shared)


@dataclass(frozen=True)
class TrainConfig:
    """One training run: environment, learner, seeds and what the run writes."""

    env: str = "harvest"
    """Environment id (``prosocial.list_envs()``)."""
    num_agents: int = 5
    """Agents in the environment."""
    max_steps: int = 1000
    """Episode length (time limit)."""
    reference: bool = False
    """Switch on every ``ref_*`` flag of the environment (behave as the reference code)."""
    total_steps: int = 1_000_000
    """Environment steps per seed to train for (rounded up to whole iterations)."""
    seed: int = 0
    """Random seed of the run; seed ``i`` of the batch uses a key split from it."""
    num_seeds: int = 1
    """Independent seeds trained side by side in one compiled program."""
    checkpoint_every: int = 20
    """Save a checkpoint every this many iterations (and always at the end)."""
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep."""
    gif_steps: int = 200
    """Steps of the evaluation episode rendered to ``episode.gif`` at the end (0: none)."""
    num_envs: int = 8
    """Parallel environments per seed."""
    num_steps: int = 128
    """Steps of every environment per iteration (the batch is num_envs × num_steps)."""
    learner: Literal["ppo", "a2c"] = "ppo"
    """Update rule of every population that names none: ppo or a2c."""
    populations: tuple[str, ...] = ()
    """Groups of agents with their own learner: ``NAME:AGENTS[:LEARNER][:frozen][:shared]``,
    e.g. ``focal:0:ppo rest:1-4:a2c``; AGENTS are ids and ranges (``0,2-4``). Default: one
    population of all agents with ``--learner``."""
    net: Annotated[NetConfig, tyro.conf.OmitArgPrefixes] = field(default_factory=NetConfig)
    """The policy network of every population."""
    ppo: Annotated[PPOConfig, tyro.conf.OmitArgPrefixes] = field(default_factory=PPOConfig)
    """PPO's settings (populations learning with ppo)."""
    a2c: A2CConfig = field(default_factory=A2CConfig)
    """A2C's settings (populations learning with a2c: ``--a2c.lr``, …)."""
    motive: MotiveConfig = field(default_factory=MotiveConfig)
    """The social motive (``--motive ia --motive.beta 0.05``)."""

    def __post_init__(self):
        if self.env not in list_envs():
            raise ValueError(f"unknown env {self.env!r}; known envs: {', '.join(list_envs())}")
        for name in ("num_agents", "max_steps", "total_steps", "num_seeds", "checkpoint_every",
                     "keep_checkpoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.gif_steps, bool) or not isinstance(self.gif_steps, int) \
                or self.gif_steps < 0:
            raise ValueError(f"gif_steps must be an integer ≥ 0, got {self.gif_steps!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        for name in ("num_envs", "num_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.learner not in LEARNERS:
            raise ValueError(f"unknown learner {self.learner!r}; learners: "
                             f"{', '.join(LEARNERS)}")
        specs = self.population_specs()
        for spec in specs:
            if spec.learner == "ppo":
                rows = self.num_envs * (len(spec.agents) if spec.shared else 1)
                self.ppo.check_batch(rows, self.num_steps)
        self.motive.build()  # validates the motive's values

    def population_specs(self) -> tuple[PopulationSpec, ...]:
        """The populations of the run (one of all agents by default)."""
        if not self.populations:
            return (PopulationSpec("agents", tuple(range(self.num_agents)), self.learner),)
        return tuple(PopulationSpec.parse(text, self.num_agents, self.learner)
                     for text in self.populations)

    @property
    def num_iterations(self) -> int:
        return -(-self.total_steps // self.steps_per_iteration)

    @property
    def steps_per_iteration(self) -> int:
        """Environment steps per seed in one iteration."""
        return self.num_envs * self.num_steps

    def env_kwargs(self) -> dict[str, Any]:
        return {"num_agents": self.num_agents, "max_steps": self.max_steps,
                "reference": self.reference}


# --- presets --------------------------------------------------------------------------------


def _quick() -> TrainConfig:
    """A short demonstration: Harvest with 5 agents and 100-step episodes; a few minutes on
    a 2-core CPU, long enough for the agents to stop wasting steps on beams and eat."""
    return TrainConfig(
        env="harvest", num_agents=5, max_steps=100, total_steps=200_000, num_seeds=1,
        checkpoint_every=25, gif_steps=100, num_envs=16, num_steps=100,
        net=NetConfig(lstm_size=128),
        ppo=PPOConfig(num_epochs=4, num_minibatches=4, lr=1e-3, ent_coef=0.01,
                      gae_lambda=0.95, max_grad_norm=0.5))


def _ssd_ppo(env: str, entropy: float, lr_start: float, lr_end: float) -> TrainConfig:
    """The SSD run scripts' PPO baseline (specs.md §8.2, §8.3, §8.5): 6 workers × 16 envs ×
    1000-step fragments = 96 000-step batches, minibatch 24 000, 10 epochs, RLlib's clip,
    value clip and adaptive KL, value coefficient 1e-4, GAE λ = 1, grad clip 40; the
    reference environment flags except ``ref_beam_order_by_id`` (specs §8.6 ``ssd/*``), and
    the horizon as a terminal state (B-20)."""
    return TrainConfig(
        env=env, num_agents=5, max_steps=1000, reference=True, total_steps=500_000_000,
        num_seeds=5, checkpoint_every=20, gif_steps=1000, num_envs=96, num_steps=1000,
        net=NetConfig(lstm_size=128),
        ppo=PPOConfig(num_epochs=10, num_minibatches=4,
                      seq_len=20, gamma=0.99, gae_lambda=1.0, clip_eps=0.3, vf_coef=1e-4,
                      vf_clip=10.0, ent_coef=entropy, kl_coef=0.2, kl_target=0.01,
                      max_grad_norm=40.0, lr_schedule=((0, lr_start), (2e7, lr_end)),
                      ref_horizon_is_terminal=True))


def _with_motive(base: TrainConfig, motive: MotiveConfig, **changes) -> TrainConfig:
    ppo_changes = {k: changes.pop(k) for k in list(changes) if k in ("ent_coef",
                                                                     "lr_schedule")}
    return dataclasses.replace(base, motive=motive, ppo=dataclasses.replace(base.ppo,
                                                                            **ppo_changes),
                               **changes)


def _ia(env: str, budget: int) -> TrainConfig:
    """[EMUREL]'s advantageous inequity aversion with PPO (specs §8.6 ``emurel/*/ia``):
    the SSD PPO baseline of the game with α = 0, β = 0.05, γλ = 0.81."""
    base = PRESETS[f"{env}-baseline"]()
    return _with_motive(base, MotiveConfig(name="ia", alpha=0.0, beta=0.05),
                        total_steps=budget)


def _si(env: str) -> TrainConfig:
    """SSD's MOA run scripts (specs §8.5): 6 workers × 32 envs (batch 192 000, minibatch
    48 000), the game's entropy and lr schedule, MOA loss weight and influence weight, the
    influence schedule 0 → 0, 1e7 → 0, 1e8 → 1, 3e8 → 0.5, clip 10, KL, visibility on;
    4 seeds."""
    base = PRESETS[f"{env}-baseline"]()
    if env == "cleanup":
        motive = MotiveConfig(name="si", moa_loss_weight=0.06663557,
                              influence_reward_weight=1.0)
        entropy, schedule = 0.00176, ((0, 0.00126), (2e7, 0.000012))
    else:
        motive = MotiveConfig(name="si", moa_loss_weight=0.091650628,
                              influence_reward_weight=2.521)
        entropy, schedule = 0.00223, ((0, 0.0012), (2e7, 0.000044))
    return _with_motive(base, motive, num_envs=192, ent_coef=entropy, lr_schedule=schedule,
                        num_seeds=4)


PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "quick": _quick,
    "harvest-baseline": lambda: _ssd_ppo("harvest", 0.000687, 0.00136, 0.000028),
    "cleanup-baseline": lambda: _ssd_ppo("cleanup", 0.00176, 0.00126, 0.000012),
    "harvest-ia": lambda: _ia("harvest", 100_000_000),
    "cleanup-ia": lambda: _ia("cleanup", 500_000_000),
    "harvest-si": lambda: _si("harvest"),
    "cleanup-si": lambda: _si("cleanup"),
}


def preset(name: str) -> TrainConfig:
    """The config of a named preset (``PRESETS``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()


# --- (de)serialisation ------------------------------------------------------------------------


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Rebuild a :class:`TrainConfig` from :func:`to_dict`'s output (e.g. ``config.json``).

    Generic over nested config dataclasses: a field whose type is a dataclass is rebuilt
    from its dict, JSON lists become tuples; unknown keys are an error naming them."""
    return _build(TrainConfig, data, "config")


def _build(cls, data: Mapping[str, Any], where: str):
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown} (written by another version?)")
    kwargs = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = _build(kind, value, f"{where}.{name}")
        else:
            kwargs[name] = _tuples(value)
    return cls(**kwargs)


def _tuples(v):
    """JSON lists back to the tuples the frozen configs hold."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v
