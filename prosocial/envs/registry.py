"""Environment ids, construction by id, and the PettingZoo entry point."""

from __future__ import annotations

import inspect

from prosocial.envs.bimatrix import Bimatrix, ConstrainedBimatrix
from prosocial.envs.cleanup import Cleanup
from prosocial.envs.coins import CoinGame2Coin, CoinGameLOLA, Coins, CoinsTorus
from prosocial.envs.core import Env
from prosocial.envs.forage import Forage
from prosocial.envs.harvest import Harvest
from prosocial.envs.matrix_games import MATRIX_GAMES
from prosocial.envs.nmatrix import NMatrix

_REGISTRY: dict[str, type[Env]] = {
    "harvest": Harvest, "cleanup": Cleanup, "coins": Coins, "coins-torus": CoinsTorus,
    "coin-game-lola": CoinGameLOLA, "coin-game-2coin": CoinGame2Coin,
    "bimatrix": Bimatrix, "bimatrix-constrained": ConstrainedBimatrix,
    "coop_bimatrix_3": NMatrix, **MATRIX_GAMES, "forage": Forage,
}


def list_envs() -> list[str]:
    """The registered environment ids."""
    return sorted(_REGISTRY)


def _accepted_kwargs(cls) -> set[str]:
    names = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names |= {p for p in inspect.signature(klass.__init__).parameters
                      if p not in ("self", "kwargs")}
    return names


def env_parameters(env_id: str) -> dict[str, object]:
    """The keyword arguments an environment accepts, with their defaults."""
    if env_id not in _REGISTRY:
        raise ValueError(f"unknown env id {env_id!r}; known ids: {', '.join(list_envs())}")
    out: dict[str, object] = {}
    for klass in reversed(_REGISTRY[env_id].__mro__):
        if "__init__" in vars(klass):
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.name not in ("self", "kwargs"):
                    out[p.name] = p.default
    return out


def make(env_id: str, **kwargs) -> Env:
    """Build a registered environment: ``make("cleanup", num_agents=5, reference=True)``.

    Unknown ids and unknown keyword arguments raise a ``ValueError`` naming what is allowed.
    """
    if env_id not in _REGISTRY:
        raise ValueError(f"unknown env id {env_id!r}; known ids: {', '.join(list_envs())}")
    cls = _REGISTRY[env_id]
    unknown = set(kwargs) - _accepted_kwargs(cls)
    if unknown:
        raise ValueError(f"{env_id}: unknown arguments {sorted(unknown)}; "
                         f"accepted: {sorted(_accepted_kwargs(cls))}")
    return cls(**kwargs)


def pettingzoo_env(env_id: str, **kwargs):
    """A PettingZoo ``ParallelEnv`` (NumPy in and out) over ``make(env_id, **kwargs)``."""
    from prosocial.envs.adapters.pettingzoo import PettingZooEnv

    render_mode = kwargs.pop("render_mode", None)
    return PettingZooEnv(make(env_id, **kwargs), render_mode=render_mode)
