"""Synthetic chest radiographs: ground truth consistency, a local signal, no global shortcut."""

import numpy as np
import pytest
from scipy import ndimage
from scipy.stats import mannwhitneyu

from tinycnn.data import synthetic_chest_xrays
from tinycnn.errors import ConfigError


def rank_auc(scores, y):
    """ROC-AUC as the Mann-Whitney U statistic over (positives x negatives) pairs."""
    pos, neg = scores[y == 1], scores[y == 0]
    return mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))


@pytest.fixture(scope="module")
def chest():
    return synthetic_chest_xrays(n=600, image_size=64, positive_fraction=0.5, max_nodules=3, seed=5)


def test_shapes_and_types(chest):
    assert chest.x.shape == (600, 64, 64, 1) and chest.x.dtype == np.float32
    assert chest.x.min() >= 0.0 and chest.x.max() <= 1.0
    assert chest.y.shape == (600,) and set(np.unique(chest.y)) == {0, 1}
    assert chest.y.sum() == 300
    assert chest.masks.shape == (600, 64, 64) and chest.masks.dtype == bool
    assert chest.lungs.shape == (600, 64, 64) and len(chest.nodules) == 600


def test_nodules_only_in_positives_and_match_masks(chest):
    yy, xx = np.mgrid[:64, :64]
    counts = np.array([len(n) for n in chest.nodules])
    assert np.all(counts[chest.y == 0] == 0) and not chest.masks[chest.y == 0].any()
    assert counts[chest.y == 1].min() == 1 and counts[chest.y == 1].max() == 3
    for i in np.flatnonzero(chest.y)[:100]:
        disk = np.zeros((64, 64), bool)
        for r, c, rad in chest.nodules[i]:
            assert 64 / 20 <= rad <= 64 / 12
            assert chest.lungs[i, int(round(r)), int(round(c))]  # centre in a lung
            disk |= (yy - r) ** 2 + (xx - c) ** 2 <= rad**2
        np.testing.assert_array_equal(chest.masks[i], disk)


def test_every_nodule_pixel_is_lung(chest):
    assert not (chest.masks & ~chest.lungs).any()
    # Two separate lung fields per image, each a sizeable part of the film.
    labels, count = ndimage.label(chest.lungs[0])
    assert count == 2 and 0.1 < chest.lungs[0].mean() < 0.4


def test_anatomy_lungs_darker_than_body(chest):
    x = chest.x[..., 0]
    # Central column (spine / mediastinum) is brighter than the lung fields in every image.
    spine = x[:, 20:44, 30:34].mean(axis=(1, 2))
    lung = np.array([x[i][chest.lungs[i] & ~chest.masks[i]].mean() for i in range(len(x))])
    assert np.all(spine > lung + 0.1)


def test_nodules_are_locally_brighter(chest):
    x = chest.x[..., 0]
    contrast = []
    for i in np.flatnonzero(chest.y)[:100]:
        ring = ndimage.binary_dilation(chest.masks[i], iterations=3) & ~chest.masks[i] & chest.lungs[i]
        contrast.append(x[i][chest.masks[i]].mean() - x[i][ring].mean())
    assert np.median(contrast) > 0.1


def test_mean_brightness_does_not_separate_classes(chest):
    mean = chest.x.mean(axis=(1, 2, 3))
    assert abs(rank_auc(mean, chest.y) - 0.5) < 0.08
    std = chest.x.std(axis=(1, 2, 3))
    assert abs(rank_auc(std, chest.y) - 0.5) < 0.08


def test_a_local_blob_detector_separates_classes(chest):
    # Centre-minus-surround response, maximised over the lungs: a nodule is a local, findable signal.
    x = chest.x[..., 0]
    response = ndimage.uniform_filter(x, (0, 5, 5)) - ndimage.uniform_filter(x, (0, 11, 11))
    inner = ndimage.binary_erosion(chest.lungs, structure=np.ones((1, 5, 5)))
    score = np.where(inner, response, -np.inf).reshape(len(x), -1).max(axis=1)
    assert rank_auc(score, chest.y) > 0.95


def test_deterministic_and_seeded():
    a = synthetic_chest_xrays(20, 32, seed=1)
    b = synthetic_chest_xrays(20, 32, seed=1)
    c = synthetic_chest_xrays(20, 32, seed=2)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.nodules == b.nodules
    assert not np.array_equal(a.x, c.x)


def test_fractions_and_validation():
    assert synthetic_chest_xrays(10, 32, positive_fraction=0.0).y.sum() == 0
    assert synthetic_chest_xrays(10, 32, positive_fraction=1.0).masks.any(axis=(1, 2)).all()
    assert synthetic_chest_xrays(0, 32).x.shape == (0, 32, 32, 1)
    for bad in (dict(image_size=8), dict(max_nodules=0), dict(positive_fraction=1.5), dict(n=-1)):
        with pytest.raises(ConfigError):
            synthetic_chest_xrays(**{"n": 4, **bad})
