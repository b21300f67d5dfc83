"""What a person reads about a model's performance: undefined numbers are "n/a" with the reason."""

import math

import numpy as np
import pytest

from tinycnn import metrics
from tinycnn.commands._output import fmt
from tinycnn.pipeline import MIN_CASES_FOR_CI, auc_with_ci, format_report


def test_auc_is_undefined_without_both_classes():
    r = auc_with_ci(np.zeros(30, int), np.linspace(0, 1, 30), class_names=["normal", "nodule"])
    assert math.isnan(r["auc"]) and r["auc_95ci"] is None
    assert r["auc_note"].startswith("undefined: no case of class nodule")


def test_no_ci_below_the_minimum_cases_of_a_class():
    # one positive ranked last: the AUC is 0 and a bootstrap "CI" would be 0.000-0.000
    y = np.array([0, 0, 0, 1])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    r = auc_with_ci(y, s, class_names=["normal", "nodule"])
    assert r["auc"] == 0.0 and r["auc_95ci"] is None
    assert "only 1 case(s) of class nodule" in r["auc_note"] and str(MIN_CASES_FOR_CI) in r["auc_note"]
    assert metrics.bootstrap_auc_ci(y, s, n_bootstraps=200)[1:] == (0.0, 0.0)  # what it replaces


def test_a_large_enough_set_gets_the_bootstrap_ci_of_tinycnn_metrics():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(MIN_CASES_FOR_CI, int), np.ones(MIN_CASES_FOR_CI, int)]
    s = rng.random(y.size) + 0.3 * y
    r = auc_with_ci(y, s, n_bootstraps=300, seed=2)
    assert r["auc_note"] is None
    assert (r["auc"], *r["auc_95ci"]) == metrics.bootstrap_auc_ci(y, s, n_bootstraps=300, seed=2)


def test_format_report_prints_n_a_and_the_reason_never_nan():
    rep = {"task": "binary", "n": 3, "class_counts": [3, 0], "threshold": 0.5, "accuracy": 1.0,
           "sensitivity": float("nan"), "auc": float("nan"), "auc_95ci": None,
           "auc_note": "undefined: no case of class nodule in this set (the AUC needs both classes)",
           "confusion_matrix": np.array([[3, 0], [0, 0]])}
    text = format_report(rep, ["normal", "nodule"])
    assert "nan" not in text.lower()
    assert "cases: 3 (normal 3, nodule 0)" in text and "positive class: nodule" in text
    assert "ROC-AUC                     n/a   (undefined: no case of class nodule" in text
    assert "sensitivity (recall)        n/a" in text


@pytest.mark.parametrize(("value", "text"), [(float("nan"), "n/a"), (None, "n/a"), (float("inf"), "n/a"),
                                             (np.float32("nan"), "n/a"), (0.0, "0.000"), (3, "3"),
                                             (np.float64(0.12345), "0.123")])
def test_cli_numbers(value, text):
    assert fmt(value) == text
