"""Clinical semantics from Python: which class is positive, the operating point chosen on validation
and stored, and the metrics of each task (binary, multi-class, ordinal, multi-label)."""

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from tinycnn import clinical, data, metrics, pipeline
from tinycnn.clinical import PositiveClassWarning, choose_positive, is_negative_name
from tinycnn.errors import ConfigError
from tinycnn.layers import Conv2D, Dense, GlobalAveragePooling2D
from tinycnn.models import Sequential, load_model


# ------------------------------------------------------------------ which class is positive
@pytest.mark.parametrize("name", ["normal", "Normal", "NORMAL", "normal, benign", "no_finding", "No Finding",
                                  "healthy", "healthy_controls", "Control", "negative", "absent", "benign",
                                  "0_normal"])
def test_names_of_negative_findings(name):
    assert is_negative_name(name)


@pytest.mark.parametrize("name", ["abnormal", "not normal", "non-benign", "malignant", "lesion", "pneumonia",
                                  "nodule", "1", "finding", "abnormality_present"])
def test_names_of_findings(name):
    assert not is_negative_name(name)


@pytest.mark.parametrize(("names", "positive", "index"), [
    (["lesion", "normal"], "lesion", 0),  # alphabetical order would have made 'normal' positive
    (["malignant", "normal, benign"], "malignant", 0),  # BreastMNIST: malignant is label 0
    (["normal", "pneumonia"], "pneumonia", 1),
    (["abnormal", "normal"], "abnormal", 0),
    (["No Finding", "Effusion"], "Effusion", 1),
])
def test_the_class_not_named_like_a_negative_finding_is_positive(names, positive, index):
    p = choose_positive(names)
    assert (p.name, p.index, p.by_name) == (positive, index, True)
    assert p.negative in p.rule and "named like a negative finding" in p.rule


def test_without_a_deciding_name_the_second_class_is_taken_and_the_rule_says_why():
    p = choose_positive(["0", "1"])
    assert (p.name, p.negative, p.by_name) == ("1", "0", False)
    assert "neither class name reads as a negative finding" in p.rule
    assert "both class names read as negative" in choose_positive(["benign", "normal"]).rule


def test_the_users_choice_wins_and_is_checked():
    assert choose_positive(["lesion", "normal"], "Normal").name == "normal"  # case-insensitive
    assert choose_positive(["lesion", "normal"], "normal").rule == "chosen by the user"
    with pytest.raises(ConfigError, match=r"positive_class 'tumour' is not one of the classes \(lesion, normal\)"):
        choose_positive(["lesion", "normal"], "tumour")
    with pytest.raises(ConfigError, match="binary tasks"):
        choose_positive(["a", "b", "c"])


def test_the_training_view_encodes_labels_as_is_positive():
    parts = {"train": np.array([0, 1, 1, 0]), "val": np.array([1, 0]), "test": None}
    splits = data.DataSplits(**{k: None if v is None else (np.zeros((len(v), 2, 2, 1)), v) for k, v in parts.items()},
                             class_names=["malignant", "normal, benign"], task="binary", num_classes=2)
    view, p = clinical.training_view(splits)
    np.testing.assert_array_equal(view.train[1], [1, 0, 0, 1])
    assert view.class_names == ["normal, benign", "malignant"] and view.test is None and p.name == "malignant"
    same, _ = clinical.training_view(splits, "normal, benign")
    assert same is splits  # the positive class is already label 1


# ------------------------------------------------------------------ a model trained with an index-0 positive class
@pytest.fixture(scope="module")
def nodule_first():
    """Synthetic chest X-rays whose classes are ['nodule', 'normal']: the finding is label 0."""
    ds = data.synthetic_chest_xrays(320, 32, seed=4)
    y = 1 - ds.y  # 0 = nodule
    splits = data.DataSplits(train=(ds.x[:200], y[:200]), val=(ds.x[200:260], y[200:260]),
                             test=(ds.x[260:], y[260:]), class_names=["nodule", "normal"], task="binary",
                             num_classes=2, source="synthetic")
    model, _, rep = pipeline.train(splits, epochs=6, verbose=0, seed=0)
    return model, splits, rep


def test_the_output_is_the_probability_of_the_positive_class(nodule_first):
    model, splits, rep = nodule_first
    x, y = splits.test
    p = model.predict(x, batch_size=64)[:, 0]
    assert metrics.roc_auc(y == 0, p) > 0.8  # high p for nodules, whatever their label index (inverted: < 0.2)
    meta = model.metadata
    assert meta["positive_class"] == "nodule" and meta["class_names"] == ["nodule", "normal"]
    assert meta["positive_rule"] == "the other class, 'normal', is named like a negative finding"
    assert rep["positive_class"] == "nodule" and rep["class_names"] == ["normal", "nodule"]
    assert rep["auc"] == metrics.roc_auc(y == 0, p)
    assert rep["class_counts"] == [int((y == 1).sum()), int((y == 0).sum())]  # [normal, nodule]
    again = pipeline.evaluate(model, x, y, class_names=["nodule", "normal"])
    assert again["auc"] == rep["auc"] and again["sensitivity"] == rep["sensitivity"]
    # labels of another order, matched by name
    swapped = pipeline.evaluate(model, x, 1 - y, class_names=["normal", "nodule"])
    assert swapped["auc"] == rep["auc"]


def test_the_threshold_is_chosen_on_validation_by_youden_and_stored(nodule_first, tmp_path):
    model, splits, _ = nodule_first
    xv, yv = splits.val
    pv = model.predict(xv, batch_size=64)[:, 0]
    assert model.metadata["decision_threshold"] == metrics.threshold_youden(yv == 0, pv)
    assert model.metadata["threshold_rule"] == ("maximises Youden's J (sensitivity + specificity - 1) on the "
                                                f"validation part (60 cases, {int((yv == 0).sum())} nodule)")
    model.save(tmp_path / "m.tcnn")
    back = load_model(tmp_path / "m.tcnn").metadata
    for key in ("positive_class", "positive_rule", "class_names", "decision_threshold", "threshold_rule"):
        assert back[key] == model.metadata[key], key


def test_a_target_sensitivity_takes_the_highest_threshold_reaching_it_on_validation(nodule_first):
    model, splits, _ = nodule_first
    view, positive = clinical.training_view(splits)
    meta = clinical.semantics(model, splits, view, positive, target_sensitivity=0.9)
    xv, yv = splits.val
    pv = model.predict(xv, batch_size=64)[:, 0]
    assert meta["decision_threshold"] == metrics.threshold_for_sensitivity(yv == 0, pv, 0.9)
    assert meta["threshold_rule"].startswith("the highest threshold reaching sensitivity 0.9 on the validation part")
    with pytest.raises(ConfigError, match=r"target_sensitivity must be a sensitivity in \(0, 1\]"):
        clinical.semantics(model, splits, view, positive, target_sensitivity=0)


def test_the_stored_threshold_is_used_unless_one_is_given_and_accuracy_shows_both(nodule_first):
    model, splits, _ = nodule_first
    x, y = splits.test
    p = model.predict(x, batch_size=64)[:, 0]
    t = model.metadata["decision_threshold"]
    rep = pipeline.evaluate(model, x, y)
    assert rep["threshold"] == t and rep["threshold_source"] == "stored"
    assert rep["sensitivity"] == metrics.recall(y == 0, p, threshold=t)
    shown = {a["label"]: (a["threshold"], a["accuracy"]) for a in rep["accuracy_at"]}
    assert shown["MedMNIST's convention"] == (0.5, metrics.accuracy(y == 0, p, 0.5))
    assert shown["stored"] == (t, metrics.accuracy(y == 0, p, t))
    text = pipeline.format_report(rep)
    assert f"decision threshold: {t:.4g}, stored in the model: maximises Youden's J" in text
    assert "accuracy at 0.5 (MedMNIST)" in text and f"accuracy at {t:.4g} (stored)" in text
    given = pipeline.evaluate(model, x, y, threshold=0.3)
    assert given["threshold"] == 0.3 and given["threshold_source"] == "given"
    assert given["sensitivity"] == metrics.recall(y == 0, p, threshold=0.3)
    assert "decision threshold: 0.3, given for this run (--threshold)" in pipeline.format_report(given)


def test_a_model_file_without_a_threshold_uses_0_5_and_says_so(nodule_first, tmp_path):
    model, splits, _ = nodule_first
    model.save(tmp_path / "old.tcnn")
    old = load_model(tmp_path / "old.tcnn")
    for key in ("decision_threshold", "threshold_rule"):
        del old.metadata[key]
    rep = pipeline.evaluate(old, *splits.test)
    assert rep["threshold"] == 0.5 and rep["threshold_source"] == "default"
    assert "the model file stores no decision threshold" in pipeline.format_report(rep)
    assert [a["threshold"] for a in rep["accuracy_at"]] == [0.5]


def test_the_onnx_file_names_the_positive_class_and_the_threshold(nodule_first, tmp_path):
    onnx = pytest.importorskip("onnx", reason='onnx is not installed (pip install "tinycnn[onnx]")')
    model, _, _ = nodule_first
    model.export(tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert props["positive_class"] == "nodule" and json.loads(props["class_names"]) == ["nodule", "normal"]
    assert float(props["decision_threshold"]) == model.metadata["decision_threshold"]


def test_training_warns_when_no_name_decides_the_positive_class():
    ds = data.synthetic_chest_xrays(48, 32, seed=1)
    splits = data.DataSplits(train=(ds.x[:32], ds.y[:32]), val=(ds.x[32:], ds.y[32:]), test=None,
                             class_names=["0", "1"], task="binary", num_classes=2)
    with pytest.warns(PositiveClassWarning, match=r"positive class: 1 .* pass positive_class='0'"):
        model, _, _ = pipeline.train(splits, epochs=1, verbose=0)
    assert model.metadata["positive_class"] == "1"
    with pytest.raises(ConfigError, match="positive_class applies to binary tasks"):
        pipeline.train(data.DataSplits(train=(ds.x, ds.y % 3), val=None, test=None, class_names=["a", "b", "c"],
                                       task="multiclass", num_classes=3), positive_class="a")
    no_val = data.DataSplits(train=(ds.x, ds.y), val=None, test=None, class_names=["normal", "nodule"],
                             task="binary", num_classes=2)
    with pytest.raises(ConfigError, match="target_sensitivity needs a validation part"):  # before any training
        pipeline.train(no_val, target_sensitivity=0.9, callbacks=[_Forbidden()])
    model, _, _ = pipeline.train(no_val, epochs=1, verbose=0)
    assert model.metadata["decision_threshold"] == 0.5
    assert model.metadata["threshold_rule"] == "0.5 by default: no validation part to choose a threshold on"


class _Forbidden:
    def __getattr__(self, name):
        raise AssertionError(f"training started ({name})")


# ------------------------------------------------------------------ multi-class, ordinal, multi-label
def _untrained(shape, k, activation, metadata):
    model = Sequential([Conv2D(4, 3, activation="relu", input_shape=shape), GlobalAveragePooling2D(),
                        Dense(k, activation=activation)])
    model.metadata = metadata
    return model


def test_multi_class_ordinal_metrics_are_scikit_learns():
    rng = np.random.default_rng(0)
    x = rng.random((150, 8, 8, 3)).astype(np.float32)
    y = np.arange(150) % 5
    model = _untrained((8, 8, 3), 5, "softmax", {"task": "multiclass", "class_names": list("01234"), "ordinal": True})
    p = model.predict(x, batch_size=64)
    rep = pipeline.evaluate(model, x, y)
    assert rep["auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-9)
    assert rep["auc_95ci"] is not None and rep["auc_95ci"][0] <= rep["auc"] <= rep["auc_95ci"][1]
    assert rep["quadratic_kappa"] == pytest.approx(
        skm.cohen_kappa_score(y, p.argmax(1), weights="quadratic", labels=range(5)))
    assert rep["mean_absolute_error"] == pytest.approx(skm.mean_absolute_error(y, p.argmax(1)))
    np.testing.assert_allclose([rep["per_class"][k]["sensitivity"] for k in range(5)],
                               skm.recall_score(y, p.argmax(1), average=None, labels=range(5), zero_division=np.nan))
    text = pipeline.format_report(rep)
    for words in ("macro ROC-AUC (one vs rest)", "95% CI", "quadratic-weighted kappa", "mean absolute grade error",
                  "each class against the rest:"):
        assert words in text, words
    model.metadata["ordinal"] = False
    assert "kappa" not in pipeline.format_report(pipeline.evaluate(model, x, y))


def test_multi_label_metrics_are_per_label_aucs_and_their_mean():
    rng = np.random.default_rng(1)
    x = rng.random((90, 8, 8, 1)).astype(np.float32)
    y = (rng.random((90, 4)) < 0.4).astype(int)
    y[:, 3] = 0  # a label without positives: its AUC is undefined
    names = ["atelectasis", "cardiomegaly", "effusion", "hernia"]
    model = _untrained((8, 8, 1), 4, "sigmoid", {"task": "multilabel", "class_names": names})
    p = model.predict(x, batch_size=64)
    rep = pipeline.evaluate(model, x, y)
    np.testing.assert_allclose(rep["per_label_auc"][:3], skm.roc_auc_score(y[:, :3], p[:, :3], average=None))
    assert math.isnan(rep["per_label_auc"][3]) and rep["labels_with_auc"] == 3
    assert rep["auc"] == pytest.approx(skm.roc_auc_score(y[:, :3], p[:, :3], average="macro"))
    text = pipeline.format_report(rep)
    assert "mean ROC-AUC over labels" in text and "(over 3 labels; 1 without both classes: n/a)" in text
    assert "hernia" in text and "nan" not in text


def test_data_classes_unknown_to_the_model_are_matched_by_index_and_said(nodule_first):
    model, splits, _ = nodule_first
    x, y = splits.test
    rep = pipeline.evaluate(model, x, y, class_names=["0", "1"])
    assert rep["note"].startswith("the data's classes (0, 1) are not the model's (nodule, normal)")
    assert rep["auc"] == pipeline.evaluate(model, x, y)["auc"]


def test_the_html_report_uses_the_stored_threshold_and_names_the_positive_class(nodule_first, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install 'tinycnn[plot]')")
    from tinycnn.report import write_report

    model, splits, _ = nodule_first
    x, y = splits.test
    t = model.metadata["decision_threshold"]
    res = write_report(tmp_path / "r.html", model, x, y, n_examples=0, class_names=["nodule", "normal"])
    html = (tmp_path / "r.html").read_text()
    assert res["threshold"] == t and res["threshold_source"] == "stored" and res["positive_class"] == "nodule"
    assert f"nodule when p(nodule) ≥ {t:.4g}; threshold stored in the model: maximises Youden" in html
    assert f"at threshold {t:.4g} (stored in the model)" in html and "at threshold 0.5 (MedMNIST" in html
    p = model.predict(x, batch_size=64)[:, 0]
    assert res["rates"]["sensitivity"] == metrics.recall(y == 0, p, threshold=t)
    res = write_report(tmp_path / "r2.html", model, x, y, threshold=0.25, n_examples=0)
    assert res["threshold"] == 0.25 and res["threshold_source"] == "given"
