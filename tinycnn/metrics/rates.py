"""Confusion-matrix metrics: the confusion matrix, accuracy, and each class's rates
(sensitivity, specificity, precision, NPV, F1). Conventions: :mod:`tinycnn.metrics`."""

import numpy as np

from ..errors import ConfigError, ShapeError
from ._inputs import check_average, check_threshold, labels, nanmean, prepare, ratio, scores


def confusion(y_true, y_pred, threshold):
    """(cm, binary): the (K, K) confusion matrix and whether the scores were one column."""
    threshold = check_threshold(threshold)
    y, s = prepare(y_true, y_pred, "y_pred")
    binary = s.shape[1] == 1
    pred = (s[:, 0] >= threshold).astype(np.int64) if binary else s.argmax(axis=1)
    return _count(y, pred, 2 if binary else s.shape[1]), binary


def _count(y, pred, K):
    return np.bincount(y * K + pred, minlength=K * K).reshape(K, K)


def one_vs_rest_rates(cm):
    """Each class's rates against all others, from a confusion matrix (rows: true class).

    Parameters
    ----------
    cm : array (K, K)
        ``cm[i, j]`` = number of cases of true class i predicted as class j.

    Returns
    -------
    dict of ndarray (K,)
        ``sensitivity`` TP / (TP + FN), ``specificity`` TN / (TN + FP), ``precision`` (PPV)
        TP / (TP + FP), ``npv`` TN / (TN + FN) and ``f1`` 2TP / (2TP + FP + FN); NaN where the
        denominator is 0. For a binary matrix, index 1 is the positive class.
    """
    cm = np.asarray(cm)
    tp = np.diag(cm)
    fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    return {"sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
            "precision": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn),
            # 2TP / (2TP + FP + FN) is the harmonic mean of precision and recall
            "f1": ratio(2 * tp, 2 * tp + fp + fn)}


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
        return confusion(y_true, y_pred, threshold)[0]
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ConfigError(f"num_classes must be an int >= 2, got {num_classes!r}")
    s = scores(y_pred, "y_pred")
    if s.shape[1] == 1 and num_classes > 2:
        n = s.shape[0]
        return _count(labels(y_true, num_classes, n), labels(y_pred, num_classes, n, "y_pred"), num_classes)
    if num_classes != max(2, s.shape[1]):
        raise ShapeError(f"num_classes={num_classes} does not match y_pred of shape {s.shape} "
                         f"({max(2, s.shape[1])} classes)")
    return confusion(y_true, y_pred, threshold)[0]


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
    cm, _ = confusion(y_true, y_pred, threshold)
    return float(np.trace(cm) / cm.sum())


def _rate(key, y_true, y_pred, threshold, average):
    check_average(average)
    cm, binary = confusion(y_true, y_pred, threshold)
    values = one_vs_rest_rates(cm)[key]
    if binary:
        return float(values[1])
    return nanmean(values) if average == "macro" else values


_RATE_DOC = """{summary}

    Parameters
    ----------
    y_true, y_pred : array_like
        Labels and scores as in the module conventions.
    threshold : float, default 0.5
        Binary only: predicted positive when ``score >= threshold``.
    average : {{'macro', None}}, default 'macro'
        Multi-class only: the mean over the classes where the value is defined, or None for
        the per-class array (K,).

    Returns
    -------
    float or ndarray (K,)
        Binary: the value for the positive class (``average`` is unused). NaN (undefined) when
        {zero}.
    """


def precision(y_true, y_pred, threshold=0.5, average="macro"):
    return _rate("precision", y_true, y_pred, threshold, average)


def recall(y_true, y_pred, threshold=0.5, average="macro"):
    return _rate("sensitivity", y_true, y_pred, threshold, average)


def specificity(y_true, y_pred, threshold=0.5, average="macro"):
    return _rate("specificity", y_true, y_pred, threshold, average)


def f1_score(y_true, y_pred, threshold=0.5, average="macro"):
    return _rate("f1", y_true, y_pred, threshold, average)


def negative_predictive_value(y_true, y_pred, threshold=0.5, average="macro"):
    return _rate("npv", y_true, y_pred, threshold, average)


precision.__doc__ = _RATE_DOC.format(summary="Positive predictive value TP / (TP + FP).",
                                     zero="no case is predicted positive")
recall.__doc__ = _RATE_DOC.format(summary="Sensitivity (recall, true-positive rate) TP / (TP + FN).",
                                  zero="there are no positive cases")
specificity.__doc__ = _RATE_DOC.format(summary="Specificity (true-negative rate) TN / (TN + FP).",
                                       zero="there are no negative cases")
f1_score.__doc__ = _RATE_DOC.format(
    summary="F1 = 2TP / (2TP + FP + FN), the harmonic mean of precision and recall.\n\n"
            "    The macro F1 is the mean of the per-class F1 values.", zero="TP + FP + FN = 0")
negative_predictive_value.__doc__ = _RATE_DOC.format(
    summary="Negative predictive value (NPV) TN / (TN + FN).", zero="no case is predicted negative")
sensitivity = recall
