"""Agreement of ordered grades (diabetic-retinopathy grade 0-4, a tumour stage): Cohen's kappa,
linearly or quadratically weighted, and the mean absolute grade error. Conventions:
:mod:`tinycnn.metrics`; the predicted grade of (N, K) scores is their argmax."""

import numpy as np

from ..errors import ConfigError
from ._inputs import labels, scores

_WEIGHTS = (None, "linear", "quadratic")


def _grades(y_true, y_pred, num_classes):
    """(true grades, predicted grades, K): y_pred as (N, K) scores or (N,) integer grades."""
    s = scores(y_pred, "y_pred")
    n = s.shape[0]
    if s.shape[1] > 1:
        K = s.shape[1]
        if num_classes is not None and num_classes != K:
            raise ConfigError(f"num_classes={num_classes} does not match y_pred with {K} columns")
        return labels(y_true, K, n), s.argmax(axis=1), K
    if num_classes is None:
        num_classes = int(max(np.max(y_true), s.max())) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ConfigError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return labels(y_true, num_classes, n), labels(s[:, 0], num_classes, n, "y_pred"), int(num_classes)


def cohen_kappa(y_true, y_pred, weights=None, num_classes=None):
    """Cohen's kappa: agreement of predicted and true grades beyond chance, 1 - sum(w O) / sum(w E).

    ``O`` is the (K, K) confusion matrix, ``E`` the outer product of its row and column sums over
    N (the counts expected by chance), ``w[i, j]`` the cost of calling grade i grade j: 1 off the
    diagonal (unweighted), ``|i - j|`` (linear) or ``(i - j)**2`` (quadratic). Weights use the
    grades themselves, 0 to K - 1, so a grade absent from both still spaces the others
    (scikit-learn's ``cohen_kappa_score`` with ``labels=range(K)``).

    Parameters
    ----------
    y_true : array_like, (N,) or (N, 1)
        True grades 0 .. K - 1.
    y_pred : array_like, (N, K) scores or (N,) predicted grades
    weights : {None, 'linear', 'quadratic'}
    num_classes : int, optional
        K; inferred from the scores' columns, or from the largest grade.

    Returns
    -------
    float
        1 for perfect agreement, 0 for chance; NaN when undefined (chance alone explains every
        disagreement, e.g. every case of one grade).
    """
    if weights not in _WEIGHTS:
        raise ConfigError(f"weights must be one of {_WEIGHTS}, got {weights!r}")
    y, pred, K = _grades(y_true, y_pred, num_classes)
    O = np.bincount(y * K + pred, minlength=K * K).reshape(K, K).astype(np.float64)
    E = np.outer(O.sum(axis=1), O.sum(axis=0)) / y.size
    i, j = np.indices((K, K))
    w = {None: (i != j).astype(np.float64), "linear": np.abs(i - j), "quadratic": (i - j) ** 2.0}[weights]
    expected = float((w * E).sum())
    return float("nan") if expected == 0 else 1.0 - float((w * O).sum()) / expected


def quadratic_weighted_kappa(y_true, y_pred, num_classes=None):
    """:func:`cohen_kappa` with quadratic weights, the usual agreement score of graded images."""
    return cohen_kappa(y_true, y_pred, "quadratic", num_classes)


def mean_absolute_error(y_true, y_pred):
    """Mean of ``|true grade - predicted grade|`` (in grades).

    Parameters
    ----------
    y_true : array_like, (N,) or (N, 1)
        True grades.
    y_pred : array_like, (N, K) scores (argmax) or (N,) predicted grades

    Returns
    -------
    float
    """
    y, pred, _ = _grades(y_true, y_pred, None)
    return float(np.mean(np.abs(y - pred)))
