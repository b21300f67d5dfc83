"""Clinical metrics against hand counts, brute-force pair counts and their defining properties."""

import time
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinycnn import metrics as M
from tinycnn.errors import ConfigError, DTypeError, InvalidValueError, ShapeError

# Binary case counted by hand at threshold 0.5: predictions [0, 1, 1, 0, 1, 0],
# so TP = 2 (cases 2, 4), FP = 1 (case 1), FN = 1 (case 3), TN = 2 (cases 0, 5).
Y = np.array([0, 0, 1, 1, 1, 0])
S = np.array([0.1, 0.6, 0.7, 0.4, 0.9, 0.2])

# Three classes counted by hand: true 0,0,1,1,2,2 predicted (argmax) 0,1,1,1,2,0.
Y3 = np.array([0, 0, 1, 1, 2, 2])
S3 = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1],
               [0.1, 0.5, 0.4], [0.1, 0.2, 0.7], [0.5, 0.2, 0.3]])
CM3 = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])


def auc_by_pairs(y, s):
    """P(positive outranks negative) by counting every (positive, negative) pair; ties count 1/2."""
    pos, neg = s[y == 1], s[y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


binary_data = st.integers(2, 40).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 1), min_size=n, max_size=n),
    st.lists(st.integers(-6, 6), min_size=n, max_size=n),  # few values: many ties
)).map(lambda t: (np.array(t[0]), np.array(t[1], dtype=np.float64)))


# --------------------------------------------------------------------------- confusion-matrix metrics


def test_binary_metrics_by_hand():
    np.testing.assert_array_equal(M.confusion_matrix(Y, S), [[2, 1], [1, 2]])
    assert M.accuracy(Y, S) == pytest.approx(4 / 6)
    assert M.precision(Y, S) == pytest.approx(2 / 3)
    assert M.recall(Y, S) == M.sensitivity(Y, S) == pytest.approx(2 / 3)
    assert M.specificity(Y, S) == pytest.approx(2 / 3)
    assert M.f1_score(Y, S) == pytest.approx(2 / 3)
    # At 0.65: predictions [0, 0, 1, 0, 1, 0] so TP = 2, FP = 0, FN = 1, TN = 3.
    assert M.precision(Y, S, threshold=0.65) == 1.0
    assert M.recall(Y, S, threshold=0.65) == pytest.approx(2 / 3)
    assert M.specificity(Y, S, threshold=0.65) == 1.0
    assert M.f1_score(Y, S, threshold=0.65) == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))


@pytest.mark.parametrize("y, s", [
    (Y[:, None], S[:, None]), (Y.astype(bool), S), (Y.astype(np.float32), S[:, None]), (Y.tolist(), S.tolist()),
])
def test_binary_input_forms_agree(y, s):
    np.testing.assert_array_equal(M.confusion_matrix(y, s), [[2, 1], [1, 2]])
    assert M.roc_auc(y, s) == pytest.approx(8 / 9)


def test_score_equal_to_threshold_is_positive():
    assert M.recall([1, 1], [0.5, 0.49]) == 0.5
    np.testing.assert_array_equal(M.confusion_matrix([0, 1], [0.3, 0.3], threshold=0.3), [[0, 1], [0, 1]])


def test_multiclass_by_hand():
    for y in (Y3, Y3[:, None], np.eye(3)[Y3]):
        np.testing.assert_array_equal(M.confusion_matrix(y, S3), CM3)
        assert M.accuracy(y, S3) == pytest.approx(4 / 6)
    prec = np.array([1 / 2, 2 / 3, 1 / 1])
    rec = np.array([1 / 2, 2 / 2, 1 / 2])
    spec = np.array([3 / 4, 3 / 4, 4 / 4])
    np.testing.assert_allclose(M.precision(Y3, S3, average=None), prec)
    np.testing.assert_allclose(M.recall(Y3, S3, average=None), rec)
    np.testing.assert_allclose(M.specificity(Y3, S3, average=None), spec)
    np.testing.assert_allclose(M.f1_score(Y3, S3, average=None), 2 * prec * rec / (prec + rec))
    assert M.precision(Y3, S3) == pytest.approx(prec.mean())
    assert M.f1_score(Y3, S3) == pytest.approx(np.mean(2 * prec * rec / (prec + rec)))


def test_confusion_matrix_hard_labels_and_num_classes():
    pred = S3.argmax(axis=1)
    np.testing.assert_array_equal(M.confusion_matrix(Y3, pred, num_classes=3), CM3)
    np.testing.assert_array_equal(M.confusion_matrix(Y3, S3, num_classes=3), CM3)
    np.testing.assert_array_equal(M.confusion_matrix(Y, (S >= 0.5).astype(int), num_classes=2), [[2, 1], [1, 2]])
    with pytest.raises(ShapeError, match="num_classes"):
        M.confusion_matrix(Y3, S3, num_classes=4)
    with pytest.raises(InvalidValueError, match="y_pred"):
        M.confusion_matrix(Y3, [0, 1, 3, 0, 1, 2], num_classes=3)
    with pytest.raises(ConfigError, match="num_classes"):
        M.confusion_matrix(Y, S, num_classes=1)


def test_undefined_ratios_are_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(M.precision([0, 1, 1], [0.1, 0.2, 0.3]))  # nothing predicted positive
        assert np.isnan(M.f1_score([0, 0], [0.1, 0.2]))  # no positives at all, none predicted
        assert np.isnan(M.recall([0, 0], [0.9, 0.2]))  # no positives
        assert np.isnan(M.specificity([1, 1], [0.9, 0.2]))  # no negatives
        assert np.isnan(M.negative_predictive_value([0, 1], [0.9, 0.8]))  # nothing predicted negative
        # Class 2 never occurs nor is predicted: its rates are undefined, and the macro mean is
        # that of the classes where they are defined.
        p3 = [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]]
        np.testing.assert_array_equal(M.precision([0, 1], p3, average=None), [1.0, 1.0, np.nan])
        assert M.precision([0, 1], p3) == 1.0
        assert np.isnan(M.precision([0, 1, 1], [[0.1, 0.9], [0.2, 0.8], [0.4, 0.6]], average=None)[0])
        rep = M.classification_report([0, 0], [0.1, 0.2])
        assert np.isnan(rep["sensitivity"]) and np.isnan(rep["precision"]) and rep["specificity"] == 1.0


def test_undefined_ratios_agree_with_sklearn_zero_division_nan():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(11)
    for _ in range(20):
        y = rng.integers(0, 4, 12)
        s = rng.dirichlet(np.ones(4), 12) * rng.integers(0, 2, (1, 4))  # some classes never predicted
        s[:, 3] += 1e-9 * rng.random(12)  # an argmax for every row
        pred = s.argmax(1)
        for ours, theirs in ((M.precision, skm.precision_score), (M.recall, skm.recall_score),
                             (M.f1_score, skm.f1_score)):
            for average in (None, "macro"):
                want = theirs(y, pred, labels=range(4), average=average, zero_division=np.nan)
                np.testing.assert_allclose(ours(y, s, average=average), want, equal_nan=True)


def test_negative_predictive_value_and_one_vs_rest_rates_by_hand():
    # Y, S at 0.5: TN = 2, FN = 1 (case 3) -> NPV = 2/3
    assert M.negative_predictive_value(Y, S) == pytest.approx(2 / 3)
    rates = M.one_vs_rest_rates(CM3)
    np.testing.assert_allclose(rates["npv"], [3 / 4, 3 / 3, 4 / 5])  # TN / (TN + FN) per class
    np.testing.assert_allclose(rates["precision"], M.precision(Y3, S3, average=None))
    assert M.classification_report(Y, S)["npv"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- ROC and AUC


def test_auc_by_hand_and_with_ties():
    assert M.roc_auc(Y, S) == pytest.approx(8 / 9)
    assert M.roc_auc([0, 1], [0.3, 0.3]) == 0.5
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]) == pytest.approx((1 + 0.5 + 1 + 1) / 4)


@given(binary_data)
def test_auc_matches_pair_count(data):
    y, s = data
    assume(0 < y.sum() < y.size)
    assert M.roc_auc(y, s) == pytest.approx(auc_by_pairs(y, s), abs=1e-12)


@given(binary_data)
def test_auc_properties(data):
    y, s = data
    assume(0 < y.sum() < y.size)
    auc = M.roc_auc(y, s)
    assert 0.0 <= auc <= 1.0
    assert M.roc_auc(1 - y, s) == pytest.approx(1 - auc, abs=1e-12)
    # x**3 + 2x is strictly increasing and exact on these small integers, so it keeps every tie.
    assert M.roc_auc(y, s**3 + 2 * s) == pytest.approx(auc, abs=1e-12)
    assert M.roc_auc(y, -s) == pytest.approx(1 - auc, abs=1e-12)


def test_multiclass_auc_is_one_vs_rest():
    per_class = [auc_by_pairs((Y3 == k).astype(int), S3[:, k]) for k in range(3)]
    np.testing.assert_allclose(M.roc_auc(Y3, S3, average=None), per_class)
    assert M.roc_auc(np.eye(3)[Y3], S3) == pytest.approx(np.mean(per_class))


@given(binary_data)
def test_roc_curve_shape_and_points(data):
    y, s = data
    assume(0 < y.sum() < y.size)
    fpr, tpr, thr = M.roc_curve(y, s)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert thr[0] == np.inf and np.all(np.diff(thr[1:]) < 0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    np.testing.assert_array_equal(np.sort(np.unique(s))[::-1], thr[1:])
    for f, t, th in zip(fpr[1:], tpr[1:], thr[1:], strict=True):  # every point obeys score >= threshold
        assert t == pytest.approx(M.recall(y, s, threshold=th))
        assert f == pytest.approx(1 - M.specificity(y, s, threshold=th))
    # The trapezoids under the curve give the rank AUC (a tie makes a diagonal step: half credit).
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
    assert area == pytest.approx(M.roc_auc(y, s), abs=1e-12)


def test_agrees_with_sklearn():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + 0.4 * y, 2)
    assert M.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    fpr, tpr, thr = M.roc_curve(y, s)
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_array_equal(M.confusion_matrix(y, s), skm.confusion_matrix(y, s >= 0.5))
    assert M.f1_score(y, s) == pytest.approx(skm.f1_score(y, s >= 0.5))
    y3, s3 = rng.integers(0, 3, 200), rng.dirichlet(np.ones(3), 200)
    assert M.roc_auc(y3, s3) == pytest.approx(skm.roc_auc_score(y3, s3, multi_class="ovr", average="macro"))
    assert M.precision(y3, s3) == pytest.approx(skm.precision_score(y3, s3.argmax(1), average="macro"))


# --------------------------------------------------------------------------- operating point


def test_threshold_for_sensitivity_by_hand():
    # Positive scores 0.9, 0.7, 0.4: reaching 2/3 needs two of them, reaching 0.7 needs all three.
    assert M.threshold_for_sensitivity(Y, S, target=0.6) == 0.7
    assert M.threshold_for_sensitivity(Y, S, target=2 / 3) == 0.7
    assert M.threshold_for_sensitivity(Y, S, target=0.7) == 0.4
    assert M.threshold_for_sensitivity(Y, S, target=1) == 0.4
    assert M.threshold_for_sensitivity(Y, S, target=0.1) == 0.9
    # 0.28 * 25 rounds to 7.000000000000001, yet 7 of 25 positives already give 7 / 25 >= 0.28.
    scores = np.arange(1.0, 26.0)
    assert M.threshold_for_sensitivity(np.ones(25), scores, target=0.28) == 19.0


@given(binary_data, st.floats(0.01, 1.0))
def test_threshold_for_sensitivity_reaches_target_and_is_highest(data, target):
    y, s = data
    assume(y.sum() > 0)
    t = M.threshold_for_sensitivity(y, s, target)
    assert M.recall(y, s, threshold=t) >= target
    higher = s[(y == 1) & (s > t)]
    if higher.size:  # the next positive score up is the next candidate; it must fall short
        assert M.recall(y, s, threshold=higher.min()) < target


# --------------------------------------------------------------------------- bootstrap


def _sample(n, rng):
    y = rng.integers(0, 2, n)
    return y, rng.random(n) + 0.5 * y


def test_resampled_auc_equals_auc_of_the_resample(rng):
    y, s = _sample(30, rng)
    s = np.round(s, 1)  # ties
    counts = rng.multinomial(30, np.full(30, 1 / 30), size=20)
    from tinycnn.metrics.ranking import _resampled_auc

    got = _resampled_auc(counts, y == 1, s)
    for c, a in zip(counts, got, strict=True):
        yb, sb = np.repeat(y, c), np.repeat(s, c)
        if 0 < yb.sum() < yb.size:
            assert a == pytest.approx(auc_by_pairs(yb, sb), abs=1e-12)
        else:
            assert np.isnan(a)


def test_bootstrap_contains_estimate_narrows_and_is_seeded(rng):
    y, s = _sample(2000, rng)
    t0 = time.perf_counter()
    auc, low, high = M.bootstrap_auc_ci(y, s, n_bootstraps=1000)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"1000 resamples of 2000 cases took {elapsed:.2f} s"
    assert auc == M.roc_auc(y, s)
    assert low < auc < high
    _, low_small, high_small = M.bootstrap_auc_ci(y[:100], s[:100], n_bootstraps=300)
    assert high_small - low_small > 2 * (high - low)  # width shrinks like 1/sqrt(n): ~4.5x here
    assert M.bootstrap_auc_ci(y, s, n_bootstraps=50, seed=3) == M.bootstrap_auc_ci(y, s, n_bootstraps=50, seed=3)
    assert M.bootstrap_auc_ci(y, s, n_bootstraps=50, seed=3) != M.bootstrap_auc_ci(y, s, n_bootstraps=50, seed=4)


def test_bootstrap_skips_one_class_resamples_and_handles_multiclass(rng):
    y = np.r_[1, np.zeros(14, int)]  # one positive: about a third of resamples miss it
    s = np.r_[0.9, rng.random(14)]
    auc, low, high = M.bootstrap_auc_ci(y, s, n_bootstraps=200)
    assert np.isfinite([low, high]).all() and 0 <= low <= high <= 1
    y3 = rng.integers(0, 3, 300)
    s3 = rng.dirichlet(np.ones(3), 300) + 0.3 * np.eye(3)[y3]
    auc3, low3, high3 = M.bootstrap_auc_ci(y3, s3, n_bootstraps=200)
    assert auc3 == M.roc_auc(y3, s3) and low3 < auc3 < high3


# --------------------------------------------------------------------------- report


def test_classification_report_binary_and_multiclass():
    rep = M.classification_report(Y, S)
    assert rep["n"] == 6 and rep["positives"] == 3
    for key, fn in [("accuracy", M.accuracy), ("sensitivity", M.recall), ("specificity", M.specificity),
                    ("precision", M.precision), ("f1", M.f1_score), ("auc", M.roc_auc)]:
        assert rep[key] == pytest.approx(fn(Y, S)), key
    np.testing.assert_array_equal(rep["confusion_matrix"], [[2, 1], [1, 2]])
    assert np.isnan(M.classification_report([1, 1], [0.2, 0.8])["auc"])
    rep3 = M.classification_report(Y3, S3)
    np.testing.assert_array_equal(rep3["confusion_matrix"], CM3)
    assert [rep3["per_class"][k]["support"] for k in range(3)] == [2, 2, 2]
    assert [rep3["per_class"][k]["precision"] for k in range(3)] == pytest.approx(M.precision(Y3, S3, average=None))
    assert rep3["macro"]["sensitivity"] == pytest.approx(M.recall(Y3, S3))
    assert rep3["macro"]["auc"] == pytest.approx(M.roc_auc(Y3, S3))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, error, words", [
    (lambda: M.accuracy([0, 1, 1], [0.2, 0.8]), ShapeError, "y_true"),
    (lambda: M.roc_auc([0, 1], [0.2, np.nan]), InvalidValueError, "NaN"),
    (lambda: M.precision([0, 2], [0.2, 0.8]), InvalidValueError, "0 and 1"),
    (lambda: M.recall([0, 3], S3[:2]), InvalidValueError, r"\[0, 2\]"),
    (lambda: M.recall([0, 0.5], S3[:2]), InvalidValueError, "integer"),
    (lambda: M.accuracy([[1, 1, 0]], S3[:1]), InvalidValueError, "one-hot"),
    (lambda: M.accuracy(np.eye(2), S3[:2]), ShapeError, "columns"),
    (lambda: M.accuracy([], []), InvalidValueError, "empty"),
    (lambda: M.accuracy(["a", "b"], [0.1, 0.2]), DTypeError, "y_true"),
    (lambda: M.accuracy([0, 1], np.zeros((2, 2, 2))), ShapeError, "y_pred"),
    (lambda: M.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]), InvalidValueError, "no|0 negatives"),
    (lambda: M.roc_auc([0, 0, 1], S3[:3]), InvalidValueError, "class 2"),
    (lambda: M.roc_curve(Y3, S3), ShapeError, "binary"),
    (lambda: M.precision(Y3, S3, average="micro"), ConfigError, "average"),
    (lambda: M.accuracy(Y, S, threshold=np.nan), ConfigError, "threshold"),
    (lambda: M.threshold_for_sensitivity(Y, S, target=0), ConfigError, "target"),
    (lambda: M.threshold_for_sensitivity([0, 0], [0.1, 0.2]), InvalidValueError, "positive"),
    (lambda: M.bootstrap_auc_ci(Y, S, n_bootstraps=0), ConfigError, "n_bootstraps"),
    (lambda: M.bootstrap_auc_ci(Y, S, confidence=1.0), ConfigError, "confidence"),
    (lambda: M.bootstrap_auc_ci(Y, S, seed="x"), ConfigError, "seed"),
])
def test_bad_input_raises_the_right_error(call, error, words):
    with pytest.raises(error, match=words):
        call()


# --------------------------------------------------------------------------- Metric objects


@pytest.mark.parametrize("identifier, name, fn", [
    ("accuracy", "accuracy", M.accuracy), ("acc", "accuracy", M.accuracy),
    ("precision", "precision", M.precision), ("recall", "recall", M.recall),
    ("sensitivity", "sensitivity", M.recall), ("specificity", "specificity", M.specificity),
    ("AUC", "auc", M.roc_auc), ("auc", "auc", M.roc_auc), ("f1", "f1_score", M.f1_score),
    ("f1_score", "f1_score", M.f1_score), (M.F1Score, "f1_score", M.f1_score),
    ({"class_name": "Precision", "threshold": 0.5}, "precision", M.precision),
])
def test_get_names_and_values(identifier, name, fn):
    metric = M.get(identifier)
    assert isinstance(metric, M.Metric) and metric.name == name
    for y, s in ((Y, S), (Y3, S3)):
        value = metric(y, s)
        assert type(value) is float and value == pytest.approx(fn(y, s))


def test_get_instances_callables_and_unknown_names():
    m = M.Specificity(threshold=0.65, name="spec_65")
    assert M.get(m) is m and m.name == "spec_65" and m(Y, S) == M.specificity(Y, S, threshold=0.65)

    def youden(y_true, y_pred):
        return M.recall(y_true, y_pred) + M.specificity(y_true, y_pred) - 1

    wrapped = M.get(youden)
    assert wrapped.name == "youden" and wrapped(Y, S) == pytest.approx(1 / 3)
    with pytest.raises(ConfigError, match="'sensitivity'"):
        M.get("sensitivty")
    with pytest.raises(ConfigError, match="threshold"):
        M.Precision(threshold="high")
    with pytest.raises(ConfigError, match="name"):
        M.Recall(name="")


def test_accuracy_follows_the_loss():
    multi_label_y = np.array([[1, 0, 1], [0, 1, 1]])
    multi_label_p = np.array([[0.9, 0.2, 0.3], [0.1, 0.8, 0.7]])
    # Binary cross-entropy over three sigmoid outputs: 5 of 6 elements right, though the argmaxes differ.
    assert M.get("acc", loss="binary_crossentropy")(multi_label_y, multi_label_p) == pytest.approx(5 / 6)
    assert M.get("accuracy", loss="mse")(Y, S) == M.accuracy(Y, S)
    assert M.get("accuracy", loss="categorical_crossentropy")(np.eye(3)[Y3], S3) == pytest.approx(4 / 6)
    with pytest.raises(ShapeError, match="one-hot"):
        M.get("accuracy", loss="categorical_crossentropy")(Y3, S3)
    assert M.get("accuracy", loss="sparse_categorical_crossentropy")(Y3[:, None], S3) == pytest.approx(4 / 6)
    with pytest.raises(ShapeError, match="integer labels"):
        M.get("accuracy", loss="sparse_categorical_crossentropy")(np.eye(3)[Y3], S3)


def test_compiled_model_logs_match_the_functions(rng):
    from tinycnn import backend
    from tinycnn.layers import Dense
    from tinycnn.models import Sequential

    backend.set_backend("numpy")
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.standard_normal(40) > 0).astype(np.float64)
    model = Sequential([Dense(1, activation="sigmoid", input_shape=(3,))])
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=["acc", "AUC", "sensitivity", M.Specificity(threshold=0.3)])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    p = model.predict(x)
    assert logs["accuracy"] == pytest.approx(M.accuracy(y, p))
    assert logs["auc"] == pytest.approx(M.roc_auc(y, p))
    assert logs["sensitivity"] == pytest.approx(M.recall(y, p))
    assert logs["specificity"] == pytest.approx(M.specificity(y, p, threshold=0.3))
