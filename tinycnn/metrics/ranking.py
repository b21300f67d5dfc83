"""Ranking metrics of scores: the ROC curve, AUC (with a bootstrap confidence interval; per label
for multi-label tasks) and operating points (the threshold reaching a sensitivity; Youden's J).
Conventions: :mod:`tinycnn.metrics`."""

import numpy as np
from scipy.stats import rankdata

from ..errors import ConfigError, InvalidValueError, ShapeError
from ._inputs import check_average, prepare


def _binary(y_true, y_score, what):
    y, s = prepare(y_true, y_score)
    if s.shape[1] != 1:
        raise ShapeError(f"{what} needs binary scores of shape (N,) or (N, 1), got {s.shape}; "
                         "for class k pass y_true == k and y_score[:, k]")
    return y, s[:, 0]


def _require_both(pos, what):
    P = int(pos.sum())
    if P == 0 or P == pos.size:
        raise InvalidValueError(f"{what} is undefined: y_true has {P} positives and {pos.size - P} negatives; "
                                "it needs at least one of each")


def rank_auc(pos, s):
    """AUC of scores ``s`` (N,) for the cases ``pos`` (N,) bool against the others, from mid-ranks
    (Mann-Whitney U: a tied (positive, negative) pair adds 1/2); both groups non-empty."""
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
    check_average(average)
    y, s = prepare(y_true, y_score)
    if s.shape[1] == 1:
        _require_both(y == 1, "roc_auc")
        return rank_auc(y == 1, s[:, 0])
    aucs = []
    for k in range(s.shape[1]):
        _require_both(y == k, f"roc_auc of class {k}")
        aucs.append(rank_auc(y == k, s[:, k]))
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


def threshold_youden(y_true, y_score):
    """The threshold t whose rule ``score >= t`` maximises Youden's J = sensitivity + specificity - 1.

    J is evaluated at every distinct score (the points of :func:`roc_curve`); of equally good
    thresholds the highest is taken (fewest cases called positive).

    Parameters
    ----------
    y_true : array_like, (N,) or (N, 1)
        0/1 labels with at least one of each.
    y_score : array_like, (N,) or (N, 1)
        Scores.

    Returns
    -------
    float
    """
    y, s = _binary(y_true, y_score, "threshold_youden")
    P, N = int(y.sum()), int(y.size - y.sum())
    fpr, tpr, thresholds = roc_curve(y, s)
    # J * P * N = TP * N - FP * P, in integers, so that equal J compare equal (in float, 1 - 1/3 > 2/3);
    # point 0 (threshold inf) calls no case positive and is never an operating point
    j = np.rint(tpr[1:] * P).astype(np.int64) * N - np.rint(fpr[1:] * N).astype(np.int64) * P
    return float(thresholds[1:][int(np.argmax(j))])


def per_label_auc(y_true, y_score):
    """ROC-AUC of each label of a multi-label task, NaN where a label lacks positives or negatives.

    Parameters
    ----------
    y_true : array_like, (N, L)
        0/1 per label.
    y_score : array_like, (N, L)
        The score of each label.

    Returns
    -------
    ndarray (L,)
        MedMNIST's multi-label AUC is the mean of these (:func:`numpy.nanmean` leaves the
        undefined ones out).
    """
    y, s = np.asarray(y_true), np.asarray(y_score)
    if y.ndim != 2 or s.shape != y.shape:
        raise ShapeError(f"per_label_auc needs y_true and y_score of one shape (N, L), got {y.shape} and {s.shape}")
    out = np.full(y.shape[1], np.nan)
    for k in range(y.shape[1]):
        yk, sk = prepare(y[:, k], s[:, k])
        if 0 < yk.sum() < yk.size:
            out[k] = rank_auc(yk == 1, sk[:, 0])
    return out


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
    y, s = prepare(y_true, y_score)
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
