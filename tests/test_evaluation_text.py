"""What a person reads about a model's performance: undefined numbers are "n/a" with the reason."""

import math

import numpy as np
import pytest

from tinycnn import metrics
from tinycnn.commands._output import fmt
from tinycnn.metrics import MIN_CASES_FOR_CI, auc_with_ci
from tinycnn.pipeline import format_report


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
    values = {line[:31].strip(): line[31:] for line in text.splitlines()}  # labels padded to one column
    assert values["ROC-AUC of p(nodule)"].startswith("n/a   (undefined: no case of class nodule")
    assert values["sensitivity for nodule at 0.5"] == "n/a"


@pytest.mark.parametrize(("value", "text"), [(float("nan"), "n/a"), (None, "n/a"), (float("inf"), "n/a"),
                                             (np.float32("nan"), "n/a"), (0.0, "0.000"), (3, "3"),
                                             (np.float64(0.12345), "0.123")])
def test_cli_numbers(value, text):
    assert fmt(value) == text


def test_progress_bars_only_with_verbose_when_both_streams_are_terminals(monkeypatch):
    import sys

    from tinycnn.commands._output import Printer

    for out_tty, err_tty, verbosity, bars in [(True, True, 2, True), (True, True, 1, False), (False, True, 2, False),
                                              (True, False, 2, False)]:
        monkeypatch.setattr(sys.stdout, "isatty", lambda v=out_tty: v)
        monkeypatch.setattr(sys.stderr, "isatty", lambda v=err_tty: v)
        assert Printer("train", verbosity).bars is bars


def test_epoch_lines_print_n_a_for_an_undefined_value(capsys):
    from tinycnn.commands._output import EpochPrinter, Printer

    p = EpochPrinter(3, 5, Printer("train", 1))
    p.on_epoch_begin(1)
    p.on_epoch_end(1, {"loss": 0.5, "auc": 0.75, "val_auc": float("nan")})
    line = capsys.readouterr().out
    assert line.startswith("Epoch 2/3 - loss: 0.5000 - auc: 0.7500 - val_auc: n/a - ")
