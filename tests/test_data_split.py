"""Stratified splits, batch index streams and class-imbalance helpers."""

import numpy as np
import pytest

from tinycnn.data import batches, class_weights_balanced, oversample_indices, stratified_split
from tinycnn.errors import ConfigError, InvalidValueError, ShapeError


def _check_partition(parts, n):
    together = np.concatenate(parts)
    assert len(together) == n and np.array_equal(np.sort(together), np.arange(n))
    for p in parts:
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)  # sorted, no repeats


def test_proportions_per_class_and_total():
    y = np.repeat([0, 1, 2], [700, 200, 100])
    parts = stratified_split(y, (0.7, 0.15, 0.15), seed=0)
    _check_partition(parts, len(y))
    for p, f in zip(parts, (0.7, 0.15, 0.15), strict=True):
        assert abs(len(p) - f * len(y)) <= 1
        for c, count in enumerate((700, 200, 100)):
            assert abs((y[p] == c).sum() - f * count) <= 1.5


def test_rare_class_reaches_every_split():
    y = np.array([0] * 40 + [1] * 3)
    train, val, test = stratified_split(y, seed=2)
    for p in (train, val, test):
        assert (y[p] == 1).sum() == 1
    _check_partition((train, val, test), len(y))
    # Two samples cannot cover three parts: none is invented, the split stays a partition.
    y2 = np.array([0] * 20 + [1] * 2)
    parts = stratified_split(y2, seed=0)
    _check_partition(parts, len(y2))
    assert sum((y2[p] == 1).sum() for p in parts) == 2


def test_seed_controls_membership_and_zero_fraction():
    y = np.repeat([0, 1], 50)
    a = stratified_split(y, (0.8, 0.2), seed=1)
    b = stratified_split(y, (0.8, 0.2), seed=1)
    c = stratified_split(y, (0.8, 0.2), seed=2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    train, val, test = stratified_split(y, (0.9, 0.0, 0.1), seed=0)
    assert len(val) == 0 and len(train) == 90 and len(test) == 10


def test_multilabel_rows_are_strata():
    y = np.array([[1, 0]] * 30 + [[0, 1]] * 10 + [[1, 1]] * 20)
    parts = stratified_split(y, (0.5, 0.5), seed=0)
    _check_partition(parts, len(y))
    for p in parts:
        assert (y[p] == [0, 1]).all(axis=1).sum() == 5


def test_split_validation():
    with pytest.raises(ConfigError):
        stratified_split([0, 1], (0.5, 0.4))
    with pytest.raises(ConfigError):
        stratified_split([0, 1], (1.2, -0.2))
    with pytest.raises(InvalidValueError):
        stratified_split([], (1.0,))
    with pytest.raises(ShapeError):
        stratified_split(np.zeros((2, 2, 2)))


def test_batches_cover_everything():
    ordered = list(batches(10, 4, shuffle=False))
    assert [b.tolist() for b in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [len(b) for b in batches(10, 4, shuffle=False, drop_last=True)] == [4, 4]
    shuffled = list(batches(10, 3, shuffle=True, rng=np.random.default_rng(0)))
    assert np.array_equal(np.sort(np.concatenate(shuffled)), np.arange(10))
    assert not np.array_equal(np.concatenate(shuffled), np.arange(10))
    again = list(batches(10, 3, shuffle=True, rng=np.random.default_rng(0)))
    assert all(np.array_equal(p, q) for p, q in zip(shuffled, again, strict=True))
    assert list(batches(0, 3)) == []
    with pytest.raises(ConfigError):
        list(batches(10, 0))


def test_class_weights_balanced_formula():
    y = np.array([0] * 6 + [1] * 3 + [2] * 1)
    # n / (k * count): 10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)
    w = class_weights_balanced(y)
    assert w.keys() == {0, 1, 2}
    np.testing.assert_allclose([w[0], w[1], w[2]], [10 / 18, 10 / 9, 10 / 3])
    # Weighted counts are equal per class.
    np.testing.assert_allclose([w[c] * (y == c).sum() for c in range(3)], 10 / 3)
    assert class_weights_balanced(y[:, None]) == w
    with pytest.raises(InvalidValueError):
        class_weights_balanced([0, 1.5])
    with pytest.raises(ShapeError):
        class_weights_balanced(np.zeros((3, 2)))


def test_oversample_balances_and_keeps_every_sample():
    y = np.array([0] * 10 + [1] * 3 + [2] * 4)
    idx = oversample_indices(y, seed=0)
    assert len(idx) == 30
    np.testing.assert_array_equal(np.bincount(y[idx]), [10, 10, 10])
    assert set(idx.tolist()) == set(range(len(y)))
    counts = np.bincount(idx, minlength=len(y))
    # 10 = 3*3 + 1 for class 1, 10 = 2*4 + 2 for class 2: copies differ by at most one.
    assert set(counts[10:13]) <= {3, 4} and set(counts[13:]) <= {2, 3}
    np.testing.assert_array_equal(idx, oversample_indices(y, seed=0))
    assert not np.array_equal(idx, oversample_indices(y, seed=1))
