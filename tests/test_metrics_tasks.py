"""Metrics of each task against scikit-learn: macro one-vs-rest AUC, weighted kappa, mean absolute
grade error, per-label AUC, Youden's operating point, and the AUC's CI or why there is none."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from tinycnn import metrics as M
from tinycnn.errors import ConfigError, InvalidValueError


def _scores(rng, y, K, signal=1.0):
    """Softmax scores (N, K) that favour the true class by ``signal``."""
    logits = rng.normal(size=(len(y), K))
    logits[np.arange(len(y)), y] += signal
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(4))
def test_macro_one_vs_rest_auc_is_scikit_learns(seed):
    rng = np.random.default_rng(seed)
    K = 3 + seed
    y = rng.integers(0, K, 150)
    y[:K] = np.arange(K)  # every class present
    s = _scores(rng, y, K)
    assert M.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s, multi_class="ovr", average="macro"), abs=1e-12)
    np.testing.assert_allclose(M.roc_auc(y, s, average=None),
                               [skm.roc_auc_score(y == k, s[:, k]) for k in range(K)], atol=1e-12)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(3))
def test_kappa_is_scikit_learns_over_all_grades(weights, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, 120)
    s = _scores(rng, y, 5, signal=1.5)
    expected = skm.cohen_kappa_score(y, s.argmax(axis=1), weights=weights, labels=range(5))
    assert M.cohen_kappa(y, s, weights) == pytest.approx(expected, abs=1e-12)
    assert M.cohen_kappa(y, s.argmax(axis=1), weights, num_classes=5) == pytest.approx(expected, abs=1e-12)
    if weights == "quadratic":
        assert M.quadratic_weighted_kappa(y, s) == pytest.approx(expected, abs=1e-12)


def test_kappa_weights_count_grade_distance_even_for_a_grade_nobody_has():
    # grades 0, 1, 4 only: scikit-learn without labels= would space them 0, 1, 2
    y, p = np.array([0, 0, 1, 4, 1, 4, 0, 0]), np.array([4, 4, 0, 0, 4, 1, 1, 0])
    assert M.quadratic_weighted_kappa(y, p, num_classes=5) == pytest.approx(
        skm.cohen_kappa_score(y, p, weights="quadratic", labels=range(5)))
    assert M.quadratic_weighted_kappa(y, p, num_classes=5) != pytest.approx(
        skm.cohen_kappa_score(y, p, weights="quadratic"))


def test_kappa_perfect_chance_and_undefined():
    y = np.array([0, 1, 2, 3, 4] * 4)
    assert M.quadratic_weighted_kappa(y, y, num_classes=5) == 1.0
    assert math.isnan(M.cohen_kappa(np.zeros(6, int), np.zeros(6, int), num_classes=3))  # chance explains all
    with pytest.raises(ConfigError, match="weights"):
        M.cohen_kappa(y, y, weights="cubic", num_classes=5)
    with pytest.raises(InvalidValueError):
        M.cohen_kappa(y, np.full(20, 7), num_classes=5)


def test_mean_absolute_grade_error_is_scikit_learns():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 90)
    s = _scores(rng, y, 5)
    assert M.mean_absolute_error(y, s) == pytest.approx(skm.mean_absolute_error(y, s.argmax(axis=1)))
    assert M.mean_absolute_error([0, 4, 2], [1, 1, 2]) == pytest.approx(4 / 3)


def test_per_label_auc_is_scikit_learns_and_nan_where_a_label_lacks_a_class():
    rng = np.random.default_rng(5)
    y = (rng.random((80, 6)) < 0.3).astype(int)
    s = rng.random((80, 6)) + 0.4 * y
    np.testing.assert_allclose(M.per_label_auc(y, s), skm.roc_auc_score(y, s, average=None), atol=1e-12)
    assert np.mean(M.per_label_auc(y, s)) == pytest.approx(skm.roc_auc_score(y, s, average="macro"))
    y[:, 2] = 0
    aucs = M.per_label_auc(y, s)
    assert math.isnan(aucs[2]) and np.all(np.isfinite(np.delete(aucs, 2)))


@pytest.mark.parametrize("seed", range(4))
def test_youden_threshold_is_the_roc_point_of_largest_j(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 100)
    s = np.round(rng.random(100) + 0.5 * y, 1 + seed % 2)  # rounded: ties
    _, _, thr = skm.roc_curve(y, s, drop_intermediate=False)
    P, N = int(y.sum()), int((y == 0).sum())
    # J * P * N in integers, so that equal J compare equal
    j = {t: int(((s >= t) & (y == 1)).sum()) * N - int(((s >= t) & (y == 0)).sum()) * P for t in thr[1:]}
    best = max(j.values())
    assert M.threshold_youden(y, s) == max(t for t, v in j.items() if v == best)  # the highest of the best


def test_youden_by_hand():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.9])
    # t = 0.4: sens 1, spec 2/3 (J 2/3); t = 0.7: sens 2/3, spec 1 (J 2/3) -> the higher threshold
    assert M.threshold_youden(y, s) == 0.7


def test_auc_with_ci_multiclass_gives_the_macro_auc_its_ci_or_why_not():
    rng = np.random.default_rng(7)
    y = np.repeat(np.arange(3), 30)
    s = _scores(rng, y, 3)
    r = M.auc_with_ci(y, s, n_bootstraps=200, seed=1, class_names=["a", "b", "c"])
    assert (r["auc"], *r["auc_95ci"]) == M.bootstrap_auc_ci(y, s, n_bootstraps=200, seed=1)
    assert r["auc"] == pytest.approx(skm.roc_auc_score(y, s, multi_class="ovr"))
    few = np.r_[np.arange(60), 60 + np.arange(4)]  # class c: 4 cases
    r = M.auc_with_ci(y[few], s[few], class_names=["a", "b", "c"])
    assert r["auc_95ci"] is None and "only 4 case(s) of class c" in r["auc_note"] and np.isfinite(r["auc"])
    r = M.auc_with_ci(y[:60], s[:60], class_names=["a", "b", "c"])
    assert math.isnan(r["auc"]) and r["auc_note"].startswith("undefined: no case of class c")
