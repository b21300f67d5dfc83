"""Metrics clinicians read: accuracy, sensitivity, specificity, precision, F1, ROC/AUC.

Every function works standalone on NumPy arrays, and :func:`get` turns a name, class or
callable into a :class:`Metric` for ``model.compile(metrics=[...])``.

Conventions (used by every function here)
-----------------------------------------
Binary
    ``y_true`` of shape (N,) or (N, 1) holding 0/1 (ints, bools or floats); ``y_pred`` /
    ``y_score`` of shape (N,) or (N, 1): the score (probability) of the positive class.
    A case is **predicted positive when** ``score >= threshold``, everywhere: in the confusion
    matrix, in :func:`roc_curve` and in :func:`threshold_for_sensitivity`.
Multi-class
    ``y_pred`` of shape (N, K), K >= 2, one column per class; ``y_true`` one-hot (N, K) or
    integer labels (N,) / (N, 1). The predicted class is the argmax (``threshold`` is unused).
    ``average='macro'`` gives the unweighted mean of the per-class (one-vs-rest) values,
    ``average=None`` the per-class array of shape (K,). A two-column softmax output is two classes;
    pass ``y_score[:, 1]`` for the binary view of class 1.
Degenerate ratios
    A ratio whose denominator is 0 (e.g. precision when nothing is predicted positive) is 0.0,
    without a NumPy warning. AUC has no such fallback: it raises InvalidValueError when a class has
    no positives or no negatives, because 0.5 or 0.0 there would be a made-up number.
"""

import numpy as np
from scipy.stats import rankdata

from .errors import ConfigError, DTypeError, InvalidValueError, ShapeError

# --------------------------------------------------------------------------- input checks


def _scores(y_score, name):
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


def _labels(y_true, K, n, name="y_true"):
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


def _prepare(y_true, y_score, name="y_score"):
    s = _scores(y_score, name)
    return _labels(y_true, s.shape[1], s.shape[0]), s


def _check_threshold(threshold):
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating))
            or not np.isfinite(threshold)):
        raise ConfigError(f"threshold must be a finite number, got {threshold!r}")
    return float(threshold)


def _check_average(average):
    if average not in ("macro", None):
        raise ConfigError(f"average must be 'macro' or None, got {average!r}")


def _ratio(num, den):
    """num / den elementwise, 0.0 where den == 0 (no warning)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


# --------------------------------------------------------------------------- confusion-matrix metrics


def _confusion(y_true, y_pred, threshold):
    """(cm, binary): the (K, K) confusion matrix and whether the scores were one column."""
    threshold = _check_threshold(threshold)
    y, s = _prepare(y_true, y_pred, "y_pred")
    binary = s.shape[1] == 1
    pred = (s[:, 0] >= threshold).astype(np.int64) if binary else s.argmax(axis=1)
    return _count(y, pred, 2 if binary else s.shape[1]), binary


def _count(y, pred, K):
    return np.bincount(y * K + pred, minlength=K * K).reshape(K, K)


def _per_class(cm):
    """One-vs-rest rates per class, each of shape (K,), from a confusion matrix."""
    tp = np.diag(cm)
    fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    return {"sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
            "precision": _ratio(tp, tp + fp),
            # 2TP / (2TP + FP + FN) is the harmonic mean of precision and recall, and stays 0/0-safe.
            "f1": _ratio(2 * tp, 2 * tp + fp + fn)}


def confusion_matrix(y_true, y_pred, threshold=0.5, num_classes=None):
    """Counts of (true class, predicted class) pairs.

    Parameters
    ----------
    y_true : array_like, (N,), (N, 1) or one-hot (N, K)
        True labels (see the module conventions).
    y_pred : array_like, (N,), (N, 1) or (N, K)
        Scores; or, when ``num_classes > 2``, predicted integer class labels of shape (N,) / (N, 1).
    threshold : float, default 0.5
        Binary only: predicted positive when ``score >= threshold``.
    num_classes : int, optional
        Number of classes K. Inferred from ``y_pred`` (2 for one score column); must match it when both
        are known. Needed only when ``y_pred`` holds hard labels of more than two classes.

    Returns
    -------
    ndarray of int64, (K, K)
        ``cm[i, j]`` = number of cases of true class i predicted as class j (binary: ``[[TN, FP], [FN, TP]]``).
    """
    if num_classes is None:
        return _confusion(y_true, y_pred, threshold)[0]
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ConfigError(f"num_classes must be an int >= 2, got {num_classes!r}")
    s = _scores(y_pred, "y_pred")
    if s.shape[1] == 1 and num_classes > 2:
        n = s.shape[0]
        return _count(_labels(y_true, num_classes, n), _labels(y_pred, num_classes, n, "y_pred"), num_classes)
    if num_classes != max(2, s.shape[1]):
        raise ShapeError(f"num_classes={num_classes} does not match y_pred of shape {s.shape} "
                         f"({max(2, s.shape[1])} classes)")
    return _confusion(y_true, y_pred, threshold)[0]


def accuracy(y_true, y_pred, threshold=0.5):
    """Fraction of cases whose predicted class is the true class.

    Parameters
    ----------
    y_true, y_pred : array_like
        Labels and scores as in the module conventions.
    threshold : float, default 0.5
        Binary only: predicted positive when ``score >= threshold``.

    Returns
    -------
    float
    """
    cm, _ = _confusion(y_true, y_pred, threshold)
    return float(np.trace(cm) / cm.sum())


def _rate(key, y_true, y_pred, threshold, average):
    _check_average(average)
    cm, binary = _confusion(y_true, y_pred, threshold)
    values = _per_class(cm)[key]
    if binary:
        return float(values[1])
    return float(values.mean()) if average == "macro" else values


_RATE_DOC = """{summary}

    Parameters
    ----------
    y_true, y_pred : array_like
        Labels and scores as in the module conventions.
    threshold : float, default 0.5
        Binary only: predicted positive when ``score >= threshold``.
    average : {{'macro', None}}, default 'macro'
        Multi-class only: the mean over classes, or None for the per-class array (K,).

    Returns
    -------
    float or ndarray (K,)
        Binary: the value for the positive class (``average`` is unused). 0.0 when {zero}.
    """


def precision(y_true, y_pred, threshold=0.5, average="macro"):
    return _rate("precision", y_true, y_pred, threshold, average)


def recall(y_true, y_pred, threshold=0.5, average="macro"):
    return _rate("sensitivity", y_true, y_pred, threshold, average)


def specificity(y_true, y_pred, threshold=0.5, average="macro"):
    return _rate("specificity", y_true, y_pred, threshold, average)


def f1_score(y_true, y_pred, threshold=0.5, average="macro"):
    return _rate("f1", y_true, y_pred, threshold, average)


precision.__doc__ = _RATE_DOC.format(summary="Positive predictive value TP / (TP + FP).",
                                     zero="no case is predicted positive")
recall.__doc__ = _RATE_DOC.format(summary="Sensitivity (recall, true-positive rate) TP / (TP + FN).",
                                  zero="there are no positive cases")
specificity.__doc__ = _RATE_DOC.format(summary="Specificity (true-negative rate) TN / (TN + FP).",
                                       zero="there are no negative cases")
f1_score.__doc__ = _RATE_DOC.format(
    summary="F1 = 2TP / (2TP + FP + FN), the harmonic mean of precision and recall.\n\n"
            "    The macro F1 is the mean of the per-class F1 values.", zero="TP + FP + FN = 0")
sensitivity = recall

# --------------------------------------------------------------------------- ROC and AUC


def _binary(y_true, y_score, what):
    y, s = _prepare(y_true, y_score)
    if s.shape[1] != 1:
        raise ShapeError(f"{what} needs binary scores of shape (N,) or (N, 1), got {s.shape}; "
                         "for class k pass y_true == k and y_score[:, k]")
    return y, s[:, 0]


def _require_both(pos, what):
    P = int(pos.sum())
    if P == 0 or P == pos.size:
        raise InvalidValueError(f"{what} is undefined: y_true has {P} positives and {pos.size - P} negatives; "
                                "it needs at least one of each")


def _auc_binary(pos, s):
    # Mann-Whitney U from mid-ranks: a tied (positive, negative) pair adds 1/2.
    P = int(pos.sum())
    U = rankdata(s)[pos].sum() - P * (P + 1) / 2
    return float(U / (P * (pos.size - P)))


def roc_curve(y_true, y_score):
    """Receiver operating characteristic of binary scores, one point per distinct score.

    Parameters
    ----------
    y_true : array_like, (N,) or (N, 1)
        0/1 labels; at least one of each.
    y_score : array_like, (N,) or (N, 1)
        Scores, higher meaning more likely positive.

    Returns
    -------
    fpr, tpr : ndarray (M + 1,)
        False- and true-positive rates, non-decreasing, from (0, 0) to (1, 1).
    thresholds : ndarray (M + 1,)
        Decreasing: ``inf`` then the M distinct scores; point i predicts positive when
        ``score >= thresholds[i]``.
    """
    y, s = _binary(y_true, y_score, "roc_curve")
    pos = y == 1
    _require_both(pos, "roc_curve")
    order = np.argsort(-s, kind="stable")
    s, hits = s[order], pos[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last case of each run of equal scores
    tps = np.cumsum(hits)[last]
    fps = last + 1 - tps
    return (np.r_[0, fps] / fps[-1], np.r_[0, tps] / tps[-1], np.r_[np.inf, s[last]])


def roc_auc(y_true, y_score, average="macro"):
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting 1/2.

    Computed from ranks (Mann-Whitney U with mid-ranks) in O(N log N). Several classes: one-vs-rest
    per class (class k against all others on ``y_score[:, k]``).

    Parameters
    ----------
    y_true, y_score : array_like
        Labels and scores as in the module conventions.
    average : {'macro', None}, default 'macro'
        Multi-class only: the mean over classes, or None for the per-class array (K,).

    Returns
    -------
    float or ndarray (K,)

    Raises
    ------
    InvalidValueError
        When a class has no positive or no negative case.
    """
    _check_average(average)
    y, s = _prepare(y_true, y_score)
    if s.shape[1] == 1:
        _require_both(y == 1, "roc_auc")
        return _auc_binary(y == 1, s[:, 0])
    aucs = []
    for k in range(s.shape[1]):
        _require_both(y == k, f"roc_auc of class {k}")
        aucs.append(_auc_binary(y == k, s[:, k]))
    return float(np.mean(aucs)) if average == "macro" else np.array(aucs)


def threshold_for_sensitivity(y_true, y_score, target=0.95):
    """The highest threshold t whose rule ``score >= t`` reaches sensitivity ``>= target``.

    Sensitivity only changes at the scores of positive cases, so t is the m-th highest positive score,
    m being the fewest positives that make ``m / P >= target``.

    Parameters
    ----------
    y_true : array_like, (N,) or (N, 1)
        0/1 labels with at least one positive.
    y_score : array_like, (N,) or (N, 1)
        Scores.
    target : float in (0, 1], default 0.95
        Sensitivity to reach.

    Returns
    -------
    float
    """
    if isinstance(target, bool) or not isinstance(target, (int, float, np.integer, np.floating)) \
            or not 0 < target <= 1:
        raise ConfigError(f"target must be a sensitivity in (0, 1], got {target!r}")
    y, s = _binary(y_true, y_score, "threshold_for_sensitivity")
    pos_scores = np.sort(s[y == 1])[::-1]
    P = pos_scores.size
    if P == 0:
        raise InvalidValueError("threshold_for_sensitivity needs at least one positive in y_true")
    # Same comparison as recall() makes (count / P >= target), so the two never disagree by rounding.
    m = min(max(int(np.ceil(target * P)), 1), P)
    while m > 1 and (m - 1) / P >= target:
        m -= 1
    while m < P and m / P < target:
        m += 1
    return float(pos_scores[m - 1])


# --------------------------------------------------------------------------- bootstrap


def _resampled_auc(counts, pos, s):
    """AUC of each resample, (B,), NaN where it lacks a class.

    ``counts[b, i]`` is how often case i is drawn in resample b. With cases grouped by distinct score
    (ascending), a positive beats the negatives of lower groups and ties half of its own group's.
    """
    order = np.argsort(s, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(s[order])) + 1]
    w = counts[:, order]
    wp = w * pos[order]
    gp, gn = np.add.reduceat(wp, starts, axis=1), np.add.reduceat(w - wp, starts, axis=1)
    below = np.cumsum(gn, axis=1) - gn
    U = (gp * (below + 0.5 * gn)).sum(axis=1)
    den = gp.sum(axis=1) * gn.sum(axis=1)
    return np.where(den > 0, U / np.maximum(den, 1), np.nan)


def bootstrap_auc_ci(y_true, y_score, n_bootstraps=1000, confidence=0.95, seed=0):
    """AUC with a percentile-bootstrap confidence interval.

    Cases are resampled with replacement; resamples lacking a class are skipped (for several classes,
    lacking a positive or negative of any class). Multi-class scores give the macro one-vs-rest AUC.

    Parameters
    ----------
    y_true, y_score : array_like
        Labels and scores as in the module conventions.
    n_bootstraps : int, default 1000
        Number of resamples.
    confidence : float in (0, 1), default 0.95
        Coverage of the interval.
    seed : int, numpy.random.Generator or None, default 0
        Seeds the resampling (tinycnn's global generator is left alone).

    Returns
    -------
    auc, low, high : float
        The AUC of the data and the interval's bounds.
    """
    if isinstance(n_bootstraps, bool) or not isinstance(n_bootstraps, (int, np.integer)) or n_bootstraps < 1:
        raise ConfigError(f"n_bootstraps must be an int >= 1, got {n_bootstraps!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)) \
            or not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence!r}")
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise ConfigError(f"seed must be a non-negative int, a Generator or None, got {seed!r}") from None
    auc = roc_auc(y_true, y_score)
    y, s = _prepare(y_true, y_score)
    columns = [(y == 1, s[:, 0])] if s.shape[1] == 1 else [(y == k, s[:, k]) for k in range(s.shape[1])]
    n = y.size
    # Chunks of about 1M draws bound the memory of the (B, N) count matrices.
    chunk = max(1, 2**20 // n)
    aucs = []
    for start in range(0, n_bootstraps, chunk):
        b = min(chunk, n_bootstraps - start)
        draws = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)
        aucs.append(np.mean([_resampled_auc(counts, pos, col) for pos, col in columns], axis=0))
    aucs = np.concatenate(aucs)
    aucs = aucs[~np.isnan(aucs)]
    if aucs.size == 0:
        raise InvalidValueError("every bootstrap resample lacked a class; the data are too small for a CI")
    tail = (1 - confidence) / 2
    low, high = np.quantile(aucs, [tail, 1 - tail])
    return auc, float(low), float(high)


# --------------------------------------------------------------------------- report


def classification_report(y_true, y_score, threshold=0.5):
    """The usual clinical summary in one dict (easy to print or log).

    Parameters
    ----------
    y_true, y_score : array_like
        Labels and scores as in the module conventions.
    threshold : float, default 0.5
        Binary only: predicted positive when ``score >= threshold``.

    Returns
    -------
    dict
        Binary: ``n``, ``positives``, ``threshold``, ``accuracy``, ``sensitivity``, ``specificity``,
        ``precision``, ``f1``, ``auc`` and ``confusion_matrix`` ([[TN, FP], [FN, TP]]).
        Multi-class: ``n``, ``accuracy``, ``per_class`` ({k: {support, sensitivity, specificity,
        precision, f1, auc}}), ``macro`` (the means of those rates) and ``confusion_matrix``.
        ``auc`` is NaN where it is undefined (a class without positives or negatives).
    """
    cm, binary = _confusion(y_true, y_score, threshold)
    y, s = _prepare(y_true, y_score)
    rates = _per_class(cm)
    if binary:
        pos = y == 1
        auc = _auc_binary(pos, s[:, 0]) if 0 < pos.sum() < pos.size else float("nan")
        return {"n": int(y.size), "positives": int(pos.sum()), "threshold": float(threshold),
                "accuracy": float(np.trace(cm) / y.size),
                **{key: float(v[1]) for key, v in rates.items()}, "auc": auc, "confusion_matrix": cm}
    aucs = np.array([_auc_binary(y == k, s[:, k]) if 0 < np.sum(y == k) < y.size else np.nan
                     for k in range(s.shape[1])])
    per_class = {k: {"support": int(cm[k].sum()), **{key: float(v[k]) for key, v in rates.items()},
                     "auc": float(aucs[k])} for k in range(s.shape[1])}
    macro = {key: float(v.mean()) for key, v in rates.items()}
    macro["auc"] = float(aucs.mean())
    return {"n": int(y.size), "accuracy": float(np.trace(cm) / y.size), "per_class": per_class,
            "macro": macro, "confusion_matrix": cm}


# --------------------------------------------------------------------------- Metric objects


class Metric:
    """A named function of a whole epoch's ``(y_true, y_pred)`` returning a float.

    The model gathers every label and prediction of the epoch and calls the metric once, so ratios such
    as precision or AUC are exact, not averages of per-batch values. ``name`` is the history key.
    """

    default_name = None

    def __init__(self, name=None):
        name = self.default_name if name is None else name
        if not isinstance(name, str) or not name:
            raise ConfigError(f"metric name must be a non-empty string, got {name!r}")
        self.name = name

    def result(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} must define result(y_true, y_pred)")

    def __call__(self, y_true, y_pred):
        return float(self.result(y_true, y_pred))

    def get_config(self):
        return {"class_name": type(self).__name__, "name": self.name}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "class_name")
        return f"{type(self).__name__}({args})"


class _Thresholded(Metric):
    def __init__(self, threshold=0.5, name=None):
        super().__init__(name)
        self.threshold = _check_threshold(threshold)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


_ACCURACY_MODES = (None, "binary", "categorical", "sparse_categorical")


class Accuracy(_Thresholded):
    """Accuracy; ``mode`` fixes how labels are read (None infers it from the shapes).

    'binary' compares ``score >= threshold`` with the 0/1 labels element by element, which also covers
    several independent sigmoid outputs (multi-label); 'categorical' wants one-hot labels and
    'sparse_categorical' integer labels, both compared with the argmax.
    """

    default_name = "accuracy"

    def __init__(self, threshold=0.5, name=None, mode=None):
        super().__init__(threshold, name)
        if mode not in _ACCURACY_MODES:
            raise ConfigError(f"mode must be one of {_ACCURACY_MODES}, got {mode!r}")
        self.mode = mode

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}

    def result(self, y_true, y_pred):
        s = _scores(y_pred, "y_pred")
        if self.mode == "binary" and s.shape[1] > 1:
            y = np.asarray(y_true)
            if y.shape != s.shape:
                raise ShapeError(f"binary accuracy needs y_true of shape {s.shape}, got {y.shape}")
            y = _labels(y.reshape(-1), 1, y.size)
            return float(np.mean((s.reshape(-1) >= self.threshold) == y))
        y_ndim = np.ndim(y_true)
        if self.mode == "categorical" and (y_ndim != 2 or np.shape(y_true)[1] != s.shape[1]):
            raise ShapeError(f"categorical accuracy needs one-hot y_true of shape (N, {s.shape[1]}), "
                             f"got {np.shape(y_true)}")
        if self.mode == "sparse_categorical" and not (y_ndim == 1 or np.shape(y_true)[1:] == (1,)):
            raise ShapeError(f"sparse categorical accuracy needs integer labels (N,) or (N, 1), "
                             f"got {np.shape(y_true)}")
        return accuracy(y_true, s, self.threshold)


class _Rate(_Thresholded):
    """A macro-averaged confusion-matrix rate (the positive class's value for binary scores)."""

    function = None

    def result(self, y_true, y_pred):
        return type(self).function(y_true, y_pred, self.threshold, "macro")


class Precision(_Rate):
    """Metric form of :func:`precision`."""

    default_name, function = "precision", precision


class Recall(_Rate):
    """Metric form of :func:`recall`."""

    default_name, function = "recall", recall


class Sensitivity(Recall):
    """Metric form of :func:`sensitivity` (the same value as :class:`Recall`)."""

    default_name = "sensitivity"


class Specificity(_Rate):
    """Metric form of :func:`specificity`."""

    default_name, function = "specificity", specificity


class F1Score(_Rate):
    """Metric form of :func:`f1_score`."""

    default_name, function = "f1_score", f1_score


class AUC(Metric):
    """Metric form of :func:`roc_auc` (macro one-vs-rest for several classes); no threshold."""

    default_name = "auc"

    def result(self, y_true, y_pred):
        return roc_auc(y_true, y_pred)


class FunctionMetric(Metric):
    """Wraps a plain ``f(y_true, y_pred) -> float``; the name defaults to ``f.__name__``."""

    def __init__(self, fn, name=None):
        if not callable(fn):
            raise ConfigError(f"FunctionMetric needs a callable, got {fn!r}")
        super().__init__(name if name is not None else getattr(fn, "__name__", type(fn).__name__))
        self.fn = fn

    def result(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


_NAMES = {"precision": Precision, "recall": Recall, "sensitivity": Sensitivity, "specificity": Specificity,
          "auc": AUC, "f1_score": F1Score, "f1": F1Score}
_CLASSES = {c.__name__: c for c in (Accuracy, Precision, Recall, Sensitivity, Specificity, AUC, F1Score)}
# Which accuracy each loss implies. mse is absent: one output column reads as binary, several as
# classes, which shape inference already does.
_LOSS_ACCURACY = {"binary_crossentropy": "binary", "bce": "binary", "binary_focal_crossentropy": "binary",
                  "focal": "binary", "categorical_crossentropy": "categorical",
                  "sparse_categorical_crossentropy": "sparse_categorical"}


def get(identifier, loss=None):
    """A :class:`Metric` for a name, Metric class or instance, config dict or plain callable.

    Parameters
    ----------
    identifier : str, Metric, type, dict or callable
        'accuracy' / 'acc', 'precision', 'recall', 'sensitivity', 'specificity', 'auc', 'f1_score' / 'f1'
        (any case); a Metric (returned as is); one of the Metric classes; ``{'class_name': ..., **args}``;
        or ``f(y_true, y_pred) -> float``.
    loss : str or Loss, optional
        The compiled loss, which decides how 'accuracy' reads labels (binary for binary cross-entropy
        and focal loss, categorical or sparse categorical for those losses); None infers from shapes.

    Returns
    -------
    Metric
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric) and identifier is not FunctionMetric:
        return identifier()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        config = dict(identifier)
        return _CLASSES[config.pop("class_name")](**config)
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            loss_kind = getattr(loss, "kind", loss)
            return Accuracy(mode=_LOSS_ACCURACY.get(loss_kind.lower() if isinstance(loss_kind, str) else None))
        if key in _NAMES:
            return _NAMES[key]()
    elif callable(identifier) and not isinstance(identifier, type):
        return FunctionMetric(identifier)
    known = sorted(["accuracy", "acc", *_NAMES])
    raise ConfigError(f"unknown metric {identifier!r}; choose one of {known}, a Metric class or instance, "
                      "or a callable f(y_true, y_pred) -> float")
