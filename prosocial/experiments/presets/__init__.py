"""Named training configs: one module per paper, named as in specs.md §8.6.

``preset("emurel/cleanup/ia")`` returns a :class:`~prosocial.experiments.config.TrainConfig`;
``PRESETS`` maps every name (and the short aliases of earlier versions, ``ALIASES``) to the
function that builds it. Any field can be overridden on top of a preset from the command
line (``prosocial train --preset NAME --num-seeds 2 …``).
"""

from __future__ import annotations

from collections.abc import Callable

from prosocial.experiments.config import TrainConfig
from prosocial.experiments.presets import collins, eccles, emurel, quick, ssd

PRESETS: dict[str, Callable[[], TrainConfig]] = {
    **quick.PRESETS, **ssd.PRESETS, **emurel.PRESETS, **eccles.PRESETS, **collins.PRESETS}

ALIASES: dict[str, str] = {
    "harvest-baseline": "ssd/harvest/baseline",
    "cleanup-baseline": "ssd/cleanup/baseline",
    "harvest-si": "ssd/harvest/moa",
    "cleanup-si": "ssd/cleanup/moa",
    "harvest-ia": "emurel/harvest-ppo/ia",
    "cleanup-ia": "emurel/cleanup/ia",
}
PRESETS.update({alias: PRESETS[name] for alias, name in ALIASES.items()})


def preset(name: str) -> TrainConfig:
    """The config of a named preset."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()


__all__ = ["ALIASES", "PRESETS", "preset"]
