"""Metrics clinicians read: accuracy, sensitivity, specificity, precision, NPV, F1, ROC/AUC,
operating points, and the agreement of ordered grades (weighted kappa, mean absolute error).

Every function works standalone on NumPy arrays, and :func:`get` turns a name, class or
callable into a :class:`Metric` for ``model.compile(metrics=[...])``. The functions live in
:mod:`.rates` (confusion-matrix metrics), :mod:`.ranking` (ROC, AUC, per-label AUC, operating
points), :mod:`.confidence` (:func:`auc_with_ci`: the AUC and its CI, or why not), :mod:`.ordinal`
(grades) and :mod:`.summary` (:func:`classification_report`); the Keras-style objects in
:mod:`.objects`.
Everything is importable from ``tinycnn.metrics``.

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
    ``average='macro'`` gives the unweighted mean of the per-class (one-vs-rest) values over the
    classes where the value is defined, ``average=None`` the per-class array of shape (K,). A
    two-column softmax output is two classes; pass ``y_score[:, 1]`` for the binary view of
    class 1.
Undefined rates
    A ratio whose denominator is 0 (e.g. precision when nothing is predicted positive) is
    undefined: NaN, without a NumPy warning, everywhere (these functions, the compiled metrics
    in training logs, :func:`classification_report`, :mod:`tinycnn.report`). A macro average
    leaves undefined classes out (NaN when none is defined), as scikit-learn does with
    ``zero_division=np.nan``. AUC raises InvalidValueError when a class has no positives or no
    negatives (a reported summary shows NaN), because 0.5 or 0.0 there would be a made-up number.
"""

from .confidence import MIN_CASES_FOR_CI, auc_with_ci
from .objects import (
    AUC,
    Accuracy,
    F1Score,
    FunctionMetric,
    Metric,
    Precision,
    Recall,
    Sensitivity,
    Specificity,
    get,
)
from .ordinal import cohen_kappa, mean_absolute_error, quadratic_weighted_kappa
from .ranking import (
    bootstrap_auc_ci,
    per_label_auc,
    roc_auc,
    roc_curve,
    threshold_for_sensitivity,
    threshold_youden,
)
from .rates import (
    accuracy,
    confusion_matrix,
    f1_score,
    negative_predictive_value,
    one_vs_rest_rates,
    precision,
    recall,
    sensitivity,
    specificity,
)
from .summary import classification_report

__all__ = [
    "confusion_matrix", "accuracy", "precision", "recall", "sensitivity", "specificity", "f1_score",
    "negative_predictive_value", "one_vs_rest_rates", "roc_curve", "roc_auc", "threshold_for_sensitivity",
    "threshold_youden", "bootstrap_auc_ci", "per_label_auc", "auc_with_ci", "MIN_CASES_FOR_CI", "cohen_kappa",
    "quadratic_weighted_kappa", "mean_absolute_error", "classification_report", "Metric", "Accuracy",
    "Precision", "Recall", "Sensitivity", "Specificity", "F1Score", "AUC", "FunctionMetric", "get",
]
