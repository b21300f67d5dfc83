"""Preprocessing against values worked out by hand."""

import numpy as np
import pytest

from tinycnn.data import (
    WINDOW_PRESETS,
    center_crop,
    crop,
    fit_normalization,
    normalize,
    resize,
    to_grayscale,
    to_rgb,
    window,
)
from tinycnn.errors import ConfigError, DTypeError, ShapeError

GRID = np.arange(20, dtype=np.float32).reshape(4, 5)  # GRID[r, c] = 5 r + c


def test_crop_and_center_crop_all_layouts():
    np.testing.assert_array_equal(crop(GRID, (1, 2, 2, 3)), [[7, 8, 9], [12, 13, 14]])
    # 4x5 -> 2x2: margins (2, 3) -> top 1, left 1 (odd extra pixel at the bottom / right).
    np.testing.assert_array_equal(center_crop(GRID, 2), [[6, 7], [11, 12]])
    batch = np.stack([GRID, GRID + 100])[..., None]
    out = center_crop(batch, (2, 2))
    assert out.shape == (2, 2, 2, 1)
    np.testing.assert_array_equal(out[1, :, :, 0], [[106, 107], [111, 112]])
    assert center_crop(GRID[..., None], 3).shape == (3, 3, 1)
    with pytest.raises(ShapeError):
        crop(GRID, (3, 0, 2, 2))
    with pytest.raises(ShapeError):
        center_crop(GRID, 5)
    with pytest.raises(ConfigError):
        crop(GRID, (0, 0, 0, 1))


def test_resize_bilinear_keeps_float_values():
    # A linear ramp in HU survives bilinear upsampling exactly in the interior, with no 8-bit rounding.
    ramp = np.array([[-1000.0, 1000.0]] * 2, np.float32)
    out = resize(ramp, (2, 4))
    assert out.dtype == np.float32 and out.shape == (2, 4)
    # Pillow samples at pixel centres: output x=0.5..3.5 -> input (x+0.5)/2-0.5 = -0.25, 0.25, 0.75, 1.25
    # (clamped to [0, 1]) -> -1000, -500, 500, 1000.
    np.testing.assert_allclose(out[0], [-1000, -500, 500, 1000], atol=1e-3)
    big = np.full((8, 8), 40000.0, np.float32)
    np.testing.assert_allclose(resize(big, 3), 40000.0, rtol=1e-6)


def test_resize_layouts_and_methods():
    batch = np.random.default_rng(0).random((3, 6, 6, 2)).astype(np.float32)
    out = resize(batch, (3, 4), method="nearest")
    assert out.shape == (3, 3, 4, 2)
    # Nearest from 6 to 3 rows picks rows 1, 3, 5 (centres 2i+1); columns 6->4 picks floor((j+0.5)*1.5).
    np.testing.assert_array_equal(out[2, :, :, 1], batch[2][[1, 3, 5]][:, [0, 2, 3, 5], 1])
    assert resize(batch[0], 5).shape == (5, 5, 2)
    with pytest.raises(ConfigError):
        resize(batch, 4, method="cubic-ish")


def test_normalize_minmax_and_zscore_per_image():
    x = np.array([[[1.0], [3.0]], [[5.0], [9.0]]], np.float32)  # one (2, 2, 1) image
    np.testing.assert_allclose(normalize(x)[..., 0], [[0, 0.25], [0.5, 1.0]])
    z = normalize(x, "zscore")[..., 0]
    mean, std = 4.5, np.sqrt(((np.array([1, 3, 5, 9]) - 4.5) ** 2).mean())
    np.testing.assert_allclose(z, (np.array([[1, 3], [5, 9]]) - mean) / std, rtol=1e-6)
    batch = np.stack([x, 10 * x, np.full_like(x, 7)])
    out = normalize(batch)
    np.testing.assert_allclose(out[1], out[0], rtol=1e-6)  # each image by its own range
    np.testing.assert_array_equal(out[2], 0.0)  # a constant image becomes zeros, not NaN


def test_fit_normalization_and_dataset_stats():
    rng = np.random.default_rng(1)
    x = rng.normal([10.0, -3.0], [2.0, 0.5], (700, 3, 3, 2)).astype(np.float32)
    stats = fit_normalization(x, chunk=64)  # several chunks, merged
    flat = x.reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(stats.mean, flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.std, flat.std(0), rtol=1e-5)
    np.testing.assert_array_equal(stats.min, flat.min(0).astype(np.float32))
    z = normalize(x, "zscore", per_image=False, stats=stats)
    np.testing.assert_allclose(z.reshape(-1, 2).mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.reshape(-1, 2).std(0), 1.0, atol=1e-4)
    np.testing.assert_allclose(normalize(x[:1], "zscore", per_image=False, mean=10.0, std=2.0), (x[:1] - 10) / 2,
                               rtol=1e-6)
    mm = normalize(x, "minmax", per_image=False, stats=stats)
    assert mm.min() == 0.0 and mm.max() == 1.0
    with pytest.raises(ConfigError):
        normalize(x, "zscore", mean=1.0, std=2.0)  # dataset statistics need per_image=False
    with pytest.raises(ConfigError):
        normalize(x, "zscore", per_image=False, mean=1.0)


def test_window_formula_and_presets():
    hu = np.array([-1350.0, -600.0, 150.0, 0.0, 1000.0], np.float32)
    # lung: center -600, width 1500 -> [-1350, 150]
    np.testing.assert_allclose(window(hu, preset="lung"), [0.0, 0.5, 1.0, 0.9, 1.0], rtol=1e-6)
    assert WINDOW_PRESETS == {
        "lung": (-600.0, 1500.0), "mediastinum": (50.0, 350.0), "brain": (40.0, 80.0), "bone": (400.0, 1800.0)
    }
    # brain: [0, 80]
    np.testing.assert_allclose(window(np.array([0.0, 20.0, 40.0, 100.0]), preset="brain"), [0, 0.25, 0.5, 1.0])
    # bone: [-500, 1300]
    np.testing.assert_allclose(window(np.array([-500.0, 400.0, 1300.0]), preset="bone"), [0, 0.5, 1.0])
    np.testing.assert_allclose(window(np.array([-125.0, 50.0, 225.0]), preset="mediastinum"), [0, 0.5, 1])
    np.testing.assert_allclose(window(np.array([5.0]), center=10, width=20), [0.25])
    with pytest.raises(ConfigError):
        window(hu)
    with pytest.raises(ConfigError):
        window(hu, preset="liver")
    with pytest.raises(ConfigError):
        window(hu, center=0, width=0)


def test_color_conversion():
    rgb = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0], [0.5, 0.5, 0.5]]], np.float32)
    g = to_grayscale(rgb)
    assert g.shape == (2, 2, 1)
    np.testing.assert_allclose(g[..., 0], [[0.299, 0.587], [0.114, 0.5]], rtol=1e-6)
    back = to_rgb(g)
    assert back.shape == (2, 2, 3)
    np.testing.assert_array_equal(back[..., 0], back[..., 2])
    assert to_rgb(GRID).shape == (4, 5, 3)
    assert to_grayscale(rgb[None]).shape == (1, 2, 2, 1)
    with pytest.raises(ShapeError):
        to_rgb(np.zeros((2, 2, 2)))


def test_input_validation():
    with pytest.raises(DTypeError):
        normalize(np.array(["a", "b"]))
    with pytest.raises(ShapeError):
        normalize(np.zeros(5))
    with pytest.raises(ShapeError):
        resize(np.zeros((1, 2, 2, 1, 1)), 3)
