"""The training configuration and its named presets.

A :class:`TrainConfig` says everything a run does; ``prosocial train`` builds one from a
preset (``--preset NAME``, default ``quick``) and command-line overrides (tyro), prints it
and saves it in the run directory's ``config.json``. Presets are plain functions returning
a config, so a paper's setting is written once, next to its source in specs.md.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import tyro

from prosocial.envs.registry import list_envs
from prosocial.layout import Layout
from prosocial.learners.a2c_config import A2CConfig
from prosocial.learners.dqn_config import DQNConfig
from prosocial.learners.ppo import PPOConfig
from prosocial.motives.config import MotiveConfig
from prosocial.nets import NetConfig

LEARNERS = ("ppo", "a2c", "dqn")


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
    """Switch on the ``ref_*`` flags of the environment that make it behave as the reference
    code (``ref_beam_order_by_id`` stays a separate option)."""
    env_options: tuple[str, ...] = ()
    """Any other keyword argument of the environment as ``NAME=VALUE``
    (``ref_beam_order_by_id=true``); on the command line also ``--env.NAME VALUE`` and, for
    flags, ``--env.NAME``."""
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
    learner: Literal["ppo", "a2c", "dqn"] = "ppo"
    """Update rule of every population that names none: ppo, a2c or dqn (independent DQN
    with a ReLU Q-network of ``--dqn.hidden-sizes`` on the net's convolution)."""
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
    dqn: DQNConfig = field(default_factory=DQNConfig)
    """DQN's settings (populations learning with dqn: ``--dqn.lr``, …; specs §9.8)."""
    motive: MotiveConfig = field(default_factory=MotiveConfig)
    """The social motive (``--motive ia --motive.beta 0.05``)."""
    motive_populations: tuple[str, ...] = ()
    """Names of the populations the motive shapes; the others get none (e.g. [ECCLES]'
    ``imitator`` population, the innovator's stays selfish). Default: every population."""
    compile_cache: str = "~/.cache/prosocial/jax"
    """Directory of JAX's persistent compilation cache, so that a run of a program compiled
    before (same config shapes, same machine and versions) skips most of its compile time;
    empty: no cache. A cache the process already uses (``JAX_COMPILATION_CACHE_DIR``) is
    kept. May change on ``--resume``."""

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
        if not isinstance(self.compile_cache, str):
            raise ValueError(f"compile_cache must be a directory or empty, got "
                             f"{self.compile_cache!r}")
        if self.learner not in LEARNERS:
            raise ValueError(f"unknown learner {self.learner!r}; learners: "
                             f"{', '.join(LEARNERS)}")
        from prosocial.envs.registry import make

        env = make(self.env, **self.env_kwargs())  # unknown or invalid options, before a run
        if env.num_agents != self.num_agents:
            raise ValueError(f"{self.env} has {env.num_agents} agents; set num_agents to "
                             f"{env.num_agents} (got {self.num_agents})")
        specs = self.population_specs()
        for spec in specs:
            if spec.learner == "ppo":
                layout = Layout(self.num_seeds, self.num_agents, spec.agents, spec.shared)
                self.ppo.check_batch(layout.batch(self.num_envs), self.num_steps)
            elif spec.learner == "dqn":
                layout = Layout(self.num_seeds, self.num_agents, spec.agents, spec.shared)
                if layout.batch(self.num_envs) > self.dqn.buffer_size:
                    raise ValueError(f"dqn.buffer_size ({self.dqn.buffer_size}) is smaller "
                                     f"than the {layout.batch(self.num_envs)} transitions a "
                                     f"parameter set of {spec.name!r} stores per step")
        self.motive.build()  # validates the motive's values
        unknown = sorted(set(self.motive_populations) - {s.name for s in specs})
        if unknown:
            raise ValueError(f"motive_populations {unknown} name no population of the run "
                             f"(populations: {', '.join(s.name for s in specs)})")

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
        """Keyword arguments of ``prosocial.make(env, …)``: the hoisted fields the
        environment accepts (an environment with a fixed number of agents takes no
        ``num_agents``; its count is checked instead) and ``env_options``."""
        from prosocial.envs.registry import env_parameters

        accepted = env_parameters(self.env)
        out = {}
        for name in ("num_agents", "max_steps", "reference"):
            value = getattr(self, name)
            if name in accepted:
                out[name] = value
            elif name == "reference" and value:
                raise ValueError(f"{self.env} has no reference-compatibility mode "
                                 "(reference=True)")
        return {**out, **parse_env_options(self.env, self.env_options)}


def preset(name: str) -> TrainConfig:
    """The config of a named preset (``prosocial.experiments.presets``)."""
    from prosocial.experiments.presets import preset as named

    return named(name)


# --- (de)serialisation ------------------------------------------------------------------------


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Rebuild a :class:`TrainConfig` from :func:`to_dict`'s output (e.g. ``config.json``).

    Generic over nested config dataclasses: a field whose type is a dataclass is rebuilt
    from its dict, JSON lists become tuples; unknown keys are an error naming them."""
    return _build(TrainConfig, data, "config")


def parse_env_options(env_id: str, options) -> dict[str, Any]:
    """``("name=value", …)`` → keyword arguments of the environment, each value converted to
    the type of its parameter (bool: true/false/1/0; int; float; str)."""
    from prosocial.envs.registry import env_parameters

    params = {k: v for k, v in env_parameters(env_id).items()
              if v is not inspect.Parameter.empty}  # not *args
    out: dict[str, Any] = {}
    for text in options:
        name, sep, value = str(text).partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ValueError(f"env_options: {text!r} is not NAME=VALUE")
        if name not in params or name in ("num_agents", "max_steps", "reference"):
            allowed = sorted(set(params) - {"num_agents", "max_steps", "reference"})
            raise ValueError(f"env_options: {env_id} has no option {name!r} (options: "
                             f"{', '.join(allowed)}; num_agents, max_steps and reference "
                             f"are flags of their own)")
        out[name] = convert_env_value(name, value.strip(), params[name])
    return out


def convert_env_value(name: str, value: str, default):
    """``value`` (text) as the type of the parameter's ``default``."""
    if isinstance(default, bool):
        if value.lower() in ("true", "1", "yes", ""):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"env option {name} must be true or false, got {value!r}")
    for kind in (int, float):
        if isinstance(default, kind):
            try:
                return kind(value)
            except ValueError:
                raise ValueError(f"env option {name} must be a number ({kind.__name__}), "
                                 f"got {value!r}") from None
    return value


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
