"""Augmenter: determinism, shapes, and each transform checked on its own."""

import numpy as np
import pytest

import tinycnn.random
from tinycnn.data import Augmenter
from tinycnn.errors import ConfigError, ShapeError

OFF = dict(horizontal_flip=False, vertical_flip=False, rotation=0, shift=0, brightness=0, contrast=0)


@pytest.fixture
def batch():
    return np.random.default_rng(7).random((6, 9, 8, 2)).astype(np.float32)


def test_same_seed_same_output_and_shape(batch):
    aug = Augmenter(vertical_flip=True)
    keep = batch.copy()
    a = aug(batch, np.random.default_rng(3))
    b = aug(batch, np.random.default_rng(3))
    c = aug(batch, np.random.default_rng(4))
    assert a.shape == batch.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(batch, keep)  # the input is left alone
    assert aug(batch.astype(np.float64), np.random.default_rng(3)).dtype == np.float32


def test_default_generator_follows_set_random_seed(batch):
    aug = Augmenter()
    tinycnn.random.set_random_seed(11)
    a = aug(batch)
    tinycnn.random.set_random_seed(11)
    np.testing.assert_array_equal(aug(batch), a)


def test_everything_off_is_identity(batch):
    np.testing.assert_array_equal(Augmenter(**OFF)(batch, np.random.default_rng(0)), batch)


def test_flips_mirror_whole_images(batch):
    many = np.tile(batch, (5, 1, 1, 1))
    out = Augmenter(**{**OFF, "horizontal_flip": True})(many, np.random.default_rng(0))
    flipped = np.array([np.array_equal(o, b[:, ::-1]) for o, b in zip(out, many, strict=True)])
    kept = np.array([np.array_equal(o, b) for o, b in zip(out, many, strict=True)])
    assert np.all(flipped | kept)
    assert 0 < flipped.sum() < len(out)  # 30 coin flips: both outcomes occur
    v = Augmenter(**{**OFF, "vertical_flip": True})(batch, np.random.default_rng(1))
    assert all(np.array_equal(o, b) or np.array_equal(o, b[::-1]) for o, b in zip(v, batch, strict=True))


def test_brightness_adds_one_offset_per_image(batch):
    out = Augmenter(**{**OFF, "brightness": 0.2})(batch, np.random.default_rng(0))
    delta = (out - batch).reshape(len(batch), -1)
    np.testing.assert_allclose(delta, delta[:, :1] * np.ones_like(delta), atol=1e-6)
    assert np.all(np.abs(delta[:, 0]) <= 0.2) and np.ptp(delta[:, 0]) > 0


def test_contrast_scales_about_channel_mean(batch):
    out = Augmenter(**{**OFF, "contrast": 0.3})(batch, np.random.default_rng(0))
    mean = batch.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out.mean(axis=(1, 2), keepdims=True), mean, atol=1e-6)
    factor = (out - mean) / (batch - mean)
    per_image = factor.reshape(len(batch), -1)
    np.testing.assert_allclose(per_image, per_image[:, :1] * np.ones_like(per_image), rtol=1e-3)
    assert np.all((per_image[:, 0] >= 0.7) & (per_image[:, 0] <= 1.3))


def test_affine_matches_rot90_and_integer_shift():
    aug = Augmenter(**OFF)
    img = np.random.default_rng(2).random((7, 7, 1)).astype(np.float32)
    quarter = aug._affine(img, np.pi / 2, np.zeros(2))
    # A quarter turn of a square image about its centre lands exactly on the pixel grid.
    assert np.allclose(quarter[..., 0], np.rot90(img[..., 0], 1)) or np.allclose(
        quarter[..., 0], np.rot90(img[..., 0], -1)
    )
    moved = aug._affine(img, 0.0, np.array([2.0, -1.0]))
    # Content moves down 2 rows and left 1 column; the uncovered border repeats the edge.
    np.testing.assert_allclose(moved[2:, :-1, 0], img[:-2, 1:, 0], atol=1e-6)
    np.testing.assert_allclose(moved[0, :-1, 0], img[0, 1:, 0], atol=1e-6)


def test_rotation_and_shift_keep_range_and_vary(batch):
    out = Augmenter(**{**OFF, "rotation": 30, "shift": 0.2})(batch, np.random.default_rng(5))
    # Bilinear interpolation with edge fill never leaves the input's range.
    assert out.min() >= batch.min() - 1e-6 and out.max() <= batch.max() + 1e-6
    assert not np.allclose(out, batch)


def test_value_range_clips():
    x = np.full((4, 3, 3, 1), 0.95, np.float32)
    out = Augmenter(**{**OFF, "brightness": 0.5}, value_range=(0, 1))(x, np.random.default_rng(0))
    assert out.max() <= 1.0 and out.min() >= 0.0


def test_config_and_validation(batch):
    aug = Augmenter(rotation=5, fill_mode="reflect")
    assert Augmenter(**aug.get_config()).get_config() == aug.get_config()
    assert "rotation=5.0" in repr(aug)
    for bad in (dict(rotation=-1), dict(shift=1.0), dict(contrast=1.5), dict(brightness="x"),
                dict(fill_mode="zeros"), dict(value_range=(1, 0))):
        with pytest.raises(ConfigError):
            Augmenter(**bad)
    with pytest.raises(ShapeError):
        aug(batch[0], np.random.default_rng(0))
    assert aug(batch[:0], np.random.default_rng(0)).shape == (0, 9, 8, 2)
