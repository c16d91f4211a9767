"""GIF rendering, learning-curve plots and the training progress bar."""

import io

import imageio.v3 as iio
import numpy as np
import pytest

from prosocial.io import MetricsLogger, TrainingProgress, plot_learning_curves, read_metrics
from prosocial.io.plots import _summary
from prosocial.io.render import upscale, write_gif

PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 200, 0], [30, 60, 250], [180, 180, 180]],
                   np.uint8)


def _frames(t, h=4, w=6):
    codes = (np.arange(t)[:, None, None] + np.arange(h)[:, None] * 2 + np.arange(w)) % 5
    return PALETTE[codes]


def test_upscale_is_nearest_neighbour():
    img = np.array([[[1], [2]], [[3], [4]]], np.uint8)
    np.testing.assert_array_equal(upscale(img, 2)[..., 0], [[1, 1, 2, 2], [1, 1, 2, 2],
                                                            [3, 3, 4, 4], [3, 3, 4, 4]])
    with pytest.raises(ValueError, match="scale"):
        upscale(img, 0)


def test_gif_frames_size_and_pixels(tmp_path):
    frames = _frames(5)
    path = write_gif(frames, tmp_path / "gifs" / "ep.gif", fps=20, scale=3)
    back = iio.imread(path, index=None)
    assert back.shape == (5, 12, 18, 3)
    np.testing.assert_array_equal(back, upscale(frames, 3))
    meta = iio.immeta(path)
    assert meta["duration"] == 50 and meta["loop"] == 0

    # every=2 keeps frames 0, 2, 4 of five; of six frames 0, 2, 4 and the last (5)
    back = iio.imread(write_gif(frames, tmp_path / "a.gif", scale=1, every=2), index=None)
    np.testing.assert_array_equal(back, frames[[0, 2, 4]])
    frames6 = _frames(6)
    back = iio.imread(write_gif(frames6, tmp_path / "b.gif", scale=1, every=2), index=None)
    np.testing.assert_array_equal(back, frames6[[0, 2, 4, 5]])
    assert "loop" not in iio.immeta(write_gif(frames, tmp_path / "c.gif", loop=False))


def test_gif_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"uint8\[T, H, W, 3\]"):
        write_gif(np.zeros((4, 6, 3), np.uint8), tmp_path / "x.gif")
    with pytest.raises(ValueError, match="must be uint8"):
        write_gif(np.zeros((2, 4, 6, 3), np.float32), tmp_path / "x.gif")
    with pytest.raises(ValueError, match="every"):
        write_gif(_frames(2), tmp_path / "x.gif", every=0)
    with pytest.raises(ValueError, match="fps"):
        write_gif(_frames(2), tmp_path / "x.gif", fps=0)


def test_summary_statistics():
    values = np.array([[1.0, 3.0, 5.0], [np.nan, 2.0, 4.0], [np.nan, np.nan, np.nan]])
    centre, low, high, ok = _summary(values, "minmax")
    np.testing.assert_array_equal(ok, [True, True, False])
    np.testing.assert_allclose(centre[:2], [3.0, 3.0])
    np.testing.assert_allclose(low[:2], [1.0, 2.0])
    np.testing.assert_allclose(high[:2], [5.0, 4.0])
    centre, low, high, _ = _summary(values, "std")
    spread = np.sqrt(8 / 3)  # population std of (1, 3, 5)
    np.testing.assert_allclose([low[0], high[0], low[1], high[1]],
                               [3 - spread, 3 + spread, 2.0, 4.0])


def _log_run(run_dir, num_seeds):
    with MetricsLogger(run_dir, num_seeds=num_seeds, tensorboard=False) as log:
        for u in range(12):
            ret = np.full(num_seeds, np.nan) if u < 3 or u % 4 == 1 else \
                10.0 * u + np.arange(num_seeds)
            log.log(u, 1000 * u, {"collective_return": ret,
                                  "returns": np.outer(np.arange(num_seeds) + u, [1, 2, 3])})


@pytest.mark.parametrize("num_seeds, ys, width", [
    (1, ("collective_return",), 500),
    (3, ("collective_return", "returns", "returns_1"), 1500),
])
def test_plot_learning_curves(tmp_path, num_seeds, ys, width):
    _log_run(tmp_path, num_seeds)
    path = plot_learning_curves(tmp_path, tmp_path / "plots" / "curves.png", ys=ys,
                                band="std", title="harvest")
    image = iio.imread(path)
    assert image.shape[:2] == (420, width)  # panels of 5 in × (3.6 + 0.6) in at 100 dpi
    # the drawn curves put many colours on the page, not a blank canvas
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 50
    assert path.stat().st_size > 10_000


def test_plot_bad_input(tmp_path):
    _log_run(tmp_path, 2)
    metrics = read_metrics(tmp_path)
    with pytest.raises(ValueError, match="no metric 'missing'"):
        plot_learning_curves(metrics, tmp_path / "p.png", ys=("missing",))
    with pytest.raises(ValueError, match="band"):
        plot_learning_curves(metrics, tmp_path / "p.png", band="iqr")
    with pytest.raises(ValueError, match="x must be"):
        plot_learning_curves(metrics, tmp_path / "p.png", x="time")
    with pytest.raises(ValueError, match="non-empty sequence"):
        plot_learning_curves(metrics, tmp_path / "p.png", ys="collective_return")
    assert not (tmp_path / "p.png").exists()


def test_progress_bar_shows_steps_and_return():
    out = io.StringIO()
    with TrainingProgress(10_000, initial_env_steps=2_000, disable=False, file=out) as bar:
        bar.update(4_000, collective_return=12.5)
        bar.update(6_000, collective_return=float("nan"))  # keeps the last return shown
        assert bar.env_steps == 6_000 and not bar.disabled
    text = out.getvalue()
    assert "6.00k/10.0k" in text and "collective_return=12.5" in text and "step/s" in text

    quiet = io.StringIO()
    for disable in (True, None):  # None: a StringIO is not a terminal
        with TrainingProgress(100, disable=disable, file=quiet) as bar:
            bar.update(50, collective_return=1.0)
            assert bar.disabled
    assert quiet.getvalue() == ""
    with pytest.raises(ValueError, match="non-negative"):
        TrainingProgress(-1)
