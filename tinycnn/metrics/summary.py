"""The clinical summary of a test set in one dict. Conventions: :mod:`tinycnn.metrics`."""

import numpy as np

from ._inputs import nanmean, prepare
from .ranking import rank_auc
from .rates import confusion, one_vs_rest_rates


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
        ``precision``, ``npv``, ``f1``, ``auc`` and ``confusion_matrix`` ([[TN, FP], [FN, TP]]).
        Multi-class: ``n``, ``accuracy``, ``per_class`` ({k: {support, sensitivity, specificity,
        precision, npv, f1, auc}}), ``macro`` (the means of those rates over the classes where
        they are defined) and ``confusion_matrix``. A rate or ``auc`` is NaN where it is
        undefined (0/0; a class without positives or negatives).
    """
    cm, binary = confusion(y_true, y_score, threshold)
    y, s = prepare(y_true, y_score)
    rates = one_vs_rest_rates(cm)
    if binary:
        pos = y == 1
        auc = rank_auc(pos, s[:, 0]) if 0 < pos.sum() < pos.size else float("nan")
        return {"n": int(y.size), "positives": int(pos.sum()), "threshold": float(threshold),
                "accuracy": float(np.trace(cm) / y.size),
                **{key: float(v[1]) for key, v in rates.items()}, "auc": auc, "confusion_matrix": cm}
    aucs = np.array([rank_auc(y == k, s[:, k]) if 0 < np.sum(y == k) < y.size else np.nan
                     for k in range(s.shape[1])])
    per_class = {k: {"support": int(cm[k].sum()), **{key: float(v[k]) for key, v in rates.items()},
                     "auc": float(aucs[k])} for k in range(s.shape[1])}
    macro = {key: nanmean(v) for key, v in rates.items()}
    macro["auc"] = float(aucs.mean())
    return {"n": int(y.size), "accuracy": float(np.trace(cm) / y.size), "per_class": per_class,
            "macro": macro, "confusion_matrix": cm}
