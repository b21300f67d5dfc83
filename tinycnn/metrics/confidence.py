"""The AUC with its bootstrap confidence interval where they mean something, and why not where
they do not (a class absent, too few cases of one). Conventions: :mod:`tinycnn.metrics`."""

import numpy as np

from ._inputs import prepare
from .ranking import bootstrap_auc_ci, roc_auc

MIN_CASES_FOR_CI = 10  # of each class, for a bootstrap CI of the AUC


def auc_with_ci(y, score, n_bootstraps=500, seed=0, class_names=None):
    """ROC-AUC and its percentile-bootstrap 95% CI, or ``n/a`` and why.

    Binary scores give the AUC of the positive class; (N, K) scores the macro one-vs-rest AUC
    (MedMNIST's multi-class AUC: the mean over classes of class k's score against all others).
    The AUC is undefined without a case of each class. The CI is left out with fewer than
    ``MIN_CASES_FOR_CI`` cases of a class: the resamples then repeat the same few cases and
    the interval collapses (to 0.000-0.000 for one badly ranked positive) instead of showing
    how uncertain the AUC is.

    Parameters
    ----------
    y : array (N,) of class indices (0/1 for binary scores)
    score : array (N,) or (N, 1) binary scores, or (N, K) class scores
    n_bootstraps : int
    seed : int
    class_names : sequence of str, optional
        For the note; default ('negative', 'positive') for binary scores, '0', '1', ... otherwise.

    Returns
    -------
    dict
        ``auc`` (NaN when undefined), ``auc_95ci`` ([low, high] or None) and ``auc_note``
        (why either is missing, else None).
    """
    y, s = prepare(y, score)
    K = max(2, s.shape[1])
    default = ("negative", "positive") if K == 2 else range(K)
    names = [str(c) for c in (class_names if class_names is not None else default)]
    # one-vs-rest: class k needs cases of k and of the others, which every other class present supplies
    smallest = [int(c) for c in np.bincount(y, minlength=K)]
    if min(smallest) == 0:
        missing = names[smallest.index(0)]
        what = "the AUC needs both classes" if K == 2 else "each class's one-vs-rest AUC needs cases of it"
        return {"auc": float("nan"), "auc_95ci": None,
                "auc_note": f"undefined: no case of class {missing} in this set ({what})"}
    if min(smallest) < MIN_CASES_FOR_CI:
        few = int(np.argmin(smallest))
        return {"auc": roc_auc(y, s), "auc_95ci": None,
                "auc_note": f"no 95% CI: only {smallest[few]} case(s) of class {names[few]}; a bootstrap CI needs "
                            f"at least {MIN_CASES_FOR_CI} of each class"}
    auc, lo, hi = bootstrap_auc_ci(y, s, n_bootstraps=n_bootstraps, seed=seed)
    return {"auc": auc, "auc_95ci": [lo, hi], "auc_note": None}
