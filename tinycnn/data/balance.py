"""Helpers for class imbalance: loss weights and oversampling."""

import numpy as np

from ..errors import InvalidValueError, ShapeError
from ._common import as_rng


def _class_labels(y):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ShapeError(f"y must be (N,) class indices, got shape {y.shape}")
    if y.size == 0:
        raise InvalidValueError("y is empty")
    if y.dtype.kind not in "biuf" or np.any(y != np.round(y)) or np.any(y < 0):
        raise InvalidValueError("y must hold non-negative integer class indices")
    return y.astype(np.int64)


def class_weights_balanced(y):
    """Per-class loss weights that make every class count equally.

    ``weight[c] = n_samples / (n_classes * count[c])``, the formula of Keras' and
    scikit-learn's ``class_weight='balanced'``, over the classes present in ``y``.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Class indices.

    Returns
    -------
    dict of int -> float
        Weight of each class present in ``y``.
    """
    y = _class_labels(y)
    classes, counts = np.unique(y, return_counts=True)
    weights = len(y) / (len(classes) * counts)
    return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}


def oversample_indices(y, seed=0):
    """Indices that repeat minority-class samples until every class is as large as the largest.

    Each class is repeated whole as many times as fits, and the remainder is drawn without
    replacement, so no sample appears more than once above its fair share. The result is
    shuffled.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Class indices.
    seed : int or numpy.random.Generator

    Returns
    -------
    numpy.ndarray, shape (n_present_classes * max_count,), int64
        Indices into ``y``; every original index appears at least once.
    """
    y = _class_labels(y)
    rng = as_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    target = counts.max()
    chosen = []
    for c, count in zip(classes, counts, strict=True):
        members = np.flatnonzero(y == c)
        whole, rest = divmod(int(target), int(count))
        chosen.append(np.tile(members, whole))
        chosen.append(rng.choice(members, rest, replace=False))
    return rng.permutation(np.concatenate(chosen)).astype(np.int64)
