"""Input checks shared by every metric function: labels and scores in the forms of the module
conventions (see :mod:`tinycnn.metrics`), and ratios that are NaN where undefined."""

import numpy as np

from ..errors import ConfigError, DTypeError, InvalidValueError, ShapeError


def scores(y_score, name):
    """``y_score`` as a finite float64 array of shape (N, K), K >= 1."""
    s = np.asarray(y_score)
    if s.dtype.kind not in "biuf":
        raise DTypeError(f"{name} must be numeric, got dtype {s.dtype}")
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2 or s.shape[1] == 0:
        raise ShapeError(f"{name} must have shape (N,), (N, 1) or (N, K), got {s.shape}")
    if s.shape[0] == 0:
        raise InvalidValueError(f"{name} is empty; metrics need at least one case")
    s = s.astype(np.float64, copy=False)
    if not np.all(np.isfinite(s)):
        raise InvalidValueError(f"{name} contains NaN or inf")
    return s


def labels(y_true, K, n, name="y_true"):
    """Class indices (N,) int64 from 0/1 labels (K == 1), one-hot (N, K) or integer labels."""
    y = np.asarray(y_true)
    if y.dtype.kind not in "biuf":
        raise DTypeError(f"{name} must be numeric, got dtype {y.dtype}")
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ShapeError(f"{name} of shape {y.shape} does not match {n} predictions; expected (N,), (N, 1)"
                         + ("" if K == 1 else f" or one-hot (N, {K})") + f" with N = {n}")
    y = y.astype(np.float64, copy=False)
    if not np.all(np.isfinite(y)):
        raise InvalidValueError(f"{name} contains NaN or inf")
    if y.ndim == 2 and y.shape[1] > 1:
        if y.shape[1] != K:
            raise ShapeError(f"one-hot {name} has {y.shape[1]} columns but the predictions have {K}")
        if not (np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)):
            raise InvalidValueError(f"one-hot {name} must hold 0/1 with exactly one 1 per row")
        return y.argmax(axis=1)
    y = y.reshape(-1)
    if K == 1:
        if not np.all((y == 0) | (y == 1)):
            raise InvalidValueError(f"binary {name} must hold only 0 and 1, got values {np.unique(y)[:5]}")
    elif np.any(y != np.round(y)) or y.min() < 0 or y.max() >= K:
        raise InvalidValueError(f"{name} must be integer class labels in [0, {K - 1}], "
                                f"got values in [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def prepare(y_true, y_score, name="y_score"):
    s = scores(y_score, name)
    return labels(y_true, s.shape[1], s.shape[0]), s


def check_threshold(threshold):
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating))
            or not np.isfinite(threshold)):
        raise ConfigError(f"threshold must be a finite number, got {threshold!r}")
    return float(threshold)


def check_average(average):
    if average not in ("macro", None):
        raise ConfigError(f"average must be 'macro' or None, got {average!r}")


def ratio(num, den):
    """num / den elementwise, NaN where den == 0 (an undefined rate; no warning)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.full_like(num, np.nan), where=den != 0)


def nanmean(values):
    """The mean of the defined (non-NaN) values; NaN when none is defined (no warning)."""
    values = np.asarray(values, np.float64)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")
