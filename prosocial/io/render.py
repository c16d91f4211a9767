"""Episode renders to animated GIF.

Environments render one pixel per grid cell (``env.render(state) -> uint8[H, W, 3]``), so
a 16×38 Harvest map is a 16×38 image: :func:`write_gif` enlarges it by an integer factor
with nearest-neighbour repetition (each cell becomes a sharp ``scale × scale`` block; no
blurring between cells) and can keep every k-th frame to bound the file size. Measured:
100 steps of 5-agent Harvest at scale 8 (128×304 px) make a 45 kB GIF, so a 1000-step
episode is about half a megabyte, and ``every=4`` divides that by about four.

GIFs hold at most 256 colours per frame, which the environments' small palettes never
exceed, so colours come back exactly. The writer merges consecutive identical frames into
one longer frame (the animation's timing is unchanged).
"""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np


def upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of ``[..., H, W, C]`` images by an integer factor."""
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return np.repeat(np.repeat(frames, scale, axis=-3), scale, axis=-2)


def write_gif(frames, path: str | os.PathLike, fps: float = 10.0, scale: int = 8,
              every: int = 1, loop: bool = True) -> Path:
    """Write ``frames`` (uint8[T, H, W, 3], NumPy or JAX) as an animated GIF.

    Args:
      frames: the episode's renders, one per step.
      path: output file (parents are created).
      fps: playback frames per second of the written (kept) frames. GIF stores delays in
        hundredths of a second, so rates above 50 are rounded by viewers.
      scale: pixels per cell along each axis.
      every: keep frames 0, every, 2·every, …, and always the last one (the episode's end).
      loop: repeat forever (otherwise play once).

    Returns:
      The path written.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be uint8[T, H, W, 3] with T >= 1, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if int(every) != every or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    keep = np.arange(0, len(frames), every)
    if keep[-1] != len(frames) - 1:
        keep = np.append(keep, len(frames) - 1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Pillow's loop=0 means forever; without the option the GIF plays once.
    options = {"loop": 0} if loop else {}
    iio.imwrite(path, upscale(frames[keep], scale), extension=".gif",
                duration=1000.0 / fps, **options)
    return path
