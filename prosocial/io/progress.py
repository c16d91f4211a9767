"""Terminal progress bar for training runs (tqdm).

Shows environment steps done out of the budget, steps per second, elapsed time and ETA,
and the latest collective return as a postfix, e.g.::

    training:  42%|████▏     | 4.20M/10.0M [03:10<04:22, 22.1kstep/s, collective_return=312]

On a resumed run, pass the restored step count as ``initial_env_steps``: the bar starts
there and the rate and ETA count only this session's steps. With ``disable=None`` (the
default) the bar is shown only when the output stream is a terminal, so logs of batch jobs
and CI stay free of carriage-return noise.
"""

from __future__ import annotations

import math
from typing import IO, Any

from tqdm import tqdm


class TrainingProgress:
    """A progress bar over environment steps.

    Args:
      total_env_steps: the run's step budget (per seed).
      initial_env_steps: steps already done (when resuming).
      disable: True hides the bar, False always shows it, None shows it on a TTY only.
      desc: label at the left of the bar.
      file: stream to draw on (default: standard error).
    """

    def __init__(self, total_env_steps: int, initial_env_steps: int = 0,
                 disable: bool | None = None, desc: str = "training", file: IO | None = None):
        if total_env_steps < 0 or initial_env_steps < 0:
            raise ValueError("step counts must be non-negative, got "
                             f"total={total_env_steps}, initial={initial_env_steps}")
        self._postfix: dict[str, Any] = {}
        self._bar = tqdm(total=int(total_env_steps), initial=int(initial_env_steps),
                         desc=desc, unit="step", unit_scale=True, dynamic_ncols=True,
                         smoothing=0.1, disable=disable, file=file)

    @property
    def disabled(self) -> bool:
        return bool(self._bar.disable)

    @property
    def env_steps(self) -> int:
        """The step count shown (the last value given to :meth:`update`)."""
        return int(self._bar.n)

    def update(self, env_steps: int, collective_return: float | None = None,
               **postfix: Any) -> None:
        """Move the bar to ``env_steps`` (the run's total so far, not an increment).

        ``collective_return`` and any extra ``postfix`` values are shown after the rate;
        a NaN or None return (no episode finished yet) keeps the last one shown.
        """
        if collective_return is not None and math.isfinite(float(collective_return)):
            self._postfix["collective_return"] = f"{float(collective_return):.4g}"
        self._postfix.update(postfix)
        self._bar.set_postfix(self._postfix, refresh=False)
        self._bar.update(int(env_steps) - self._bar.n)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> TrainingProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
