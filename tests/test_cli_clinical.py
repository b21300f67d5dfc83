"""Clinical semantics through the ``tinycnn`` console script: the positive class (by name, by
--positive, and the message when no name decides it), MedMNIST's class names, patient-level splits
with their counts, the stored operating point in train / predict / evaluate / report, and the
metrics of multi-class grades."""

import csv

import numpy as np
import pytest
from PIL import Image
from test_cli import tinycnn

from tinycnn import metrics
from tinycnn.data import load_npz, synthetic_chest_xrays
from tinycnn.models import load_model


def _breast_like(path, n=(200, 60, 60), seed=3):
    """A MedMNIST-layout file whose label 0 is the finding (synthetic nodules), as in BreastMNIST."""
    ds = synthetic_chest_xrays(sum(n), 32, seed=seed)
    y = 1 - ds.y
    img = np.round(ds.x[..., 0] * 255).astype(np.uint8)
    cut = np.cumsum((0,) + n)
    np.savez(path, **{f"{s}_images": img[a:b] for s, a, b in zip(("train", "val", "test"), cut, cut[1:], strict=False)},
             **{f"{s}_labels": y[a:b, None] for s, a, b in zip(("train", "val", "test"), cut, cut[1:], strict=False)})
    return path


@pytest.fixture(scope="module")
def breast(tmp_path_factory):
    folder = tmp_path_factory.mktemp("breast")
    data = _breast_like(folder / "breastmnist.npz")
    model = folder / "m.tcnn"
    rc, out, err = tinycnn("train", "--data", data, "--epochs", "4", "--out", model)
    assert rc == 0, err
    return data, model, out, err


def _val_scores(model_path, data, positive_label):
    """The model's p(positive) on the validation part, and the 0/1 truth."""
    model = load_model(model_path)
    x, y = load_npz(data).val
    return model, model.predict(x, batch_size=64)[:, 0], (y == positive_label).astype(int)


def test_train_names_the_medmnist_classes_and_the_positive_one_and_stores_the_operating_point(breast):
    data, model_path, out, err = breast
    assert "positive class: malignant (the other class, 'normal, benign', is named like a negative finding)" in out
    assert "task: binary (MedMNIST v2 breastmnist: its official class names)" in out
    assert "split: the official MedMNIST v2 splits of breastmnist, as stored in the .npz file" in out
    assert "malignant  normal, benign" in out and "warning" not in err
    model, p, y = _val_scores(model_path, data, 0)
    t = model.metadata["decision_threshold"]
    assert t == metrics.threshold_youden(y, p)
    assert model.metadata["positive_class"] == "malignant"
    assert model.metadata["class_names"] == ["malignant", "normal, benign"]
    assert f"operating point: decision threshold {t:.4g} on p(malignant), maximises Youden's J" in out
    test_part = out[out.index("test set:"):]
    for words in ("positive class: malignant", f"decision threshold: {t:.4g}, stored in the model",
                  "ROC-AUC of p(malignant)", "accuracy at 0.5 (MedMNIST)", f"accuracy at {t:.4g} (stored)",
                  "sensitivity for malignant", "PPV for malignant"):
        assert words in test_part, words


def test_predict_writes_p_of_the_positive_class_and_calls_at_the_stored_threshold(breast, tmp_path):
    data, model_path, _, _ = breast
    x, y = load_npz(data).test
    (tmp_path / "cases").mkdir()
    for i in range(6):
        Image.fromarray(np.round(x[i, :, :, 0] * 255).astype(np.uint8)).save(tmp_path / "cases" / f"case{i}.png")
    rc, out, err = tinycnn("predict", "--model", model_path, tmp_path / "cases", "--csv", tmp_path / "p.csv")
    assert rc == 0, err
    t = load_model(model_path).metadata["decision_threshold"]
    assert f"decision threshold: {t:.4g}, stored in the model" in out
    rows = list(csv.reader((tmp_path / "p.csv").read_text().splitlines()))
    assert rows[0] == ["file", "p_malignant", "prediction"]
    assert all(r[2] == ("malignant" if float(r[1]) >= t else "normal, benign") for r in rows[1:])
    rc, out, err = tinycnn("predict", "--model", model_path, tmp_path / "cases", "--threshold", "0", "--quiet")
    assert rc == 0 and {line.split("\t")[2] for line in out.splitlines()} == {"malignant"}


def test_evaluate_and_report_use_the_stored_threshold_unless_one_is_given(breast, tmp_path):
    data, model_path, _, _ = breast
    t = load_model(model_path).metadata["decision_threshold"]
    rc, out, err = tinycnn("evaluate", "--model", model_path, "--data", data)
    assert rc == 0, err
    assert f"decision threshold: {t:.4g}, stored in the model: maximises Youden's J" in out
    assert f"sensitivity for malignant at {t:.4g}" in out
    rc, out, err = tinycnn("evaluate", "--model", model_path, "--data", data, "--threshold", "0.3")
    assert rc == 0, err
    assert "decision threshold: 0.3, given for this run (--threshold)" in out
    for words in ("accuracy at 0.5 (MedMNIST)", f"accuracy at {t:.4g} (stored)", "accuracy at 0.3 (given)",
                  "sensitivity for malignant at 0.3"):
        assert words in out, words
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install 'tinycnn[plot]')")
    rc, out, err = tinycnn("report", "--model", model_path, "--data", data, "--out", tmp_path / "r.html")
    assert rc == 0, err
    html = (tmp_path / "r.html").read_text()
    assert f"malignant when p(malignant) ≥ {t:.4g}; threshold stored in the model" in html
    assert list(csv.reader((tmp_path / "r.cases.csv").read_text().splitlines()))[0][3] == "p_malignant"


def test_the_same_seed_trains_the_same_model_and_stores_the_same_threshold(breast, tmp_path):
    data, model_path, _, _ = breast
    rc, _, err = tinycnn("train", "--data", data, "--epochs", "4", "--out", tmp_path / "again.tcnn", "--quiet")
    assert rc == 0, err
    first, again = load_model(model_path), load_model(tmp_path / "again.tcnn")
    assert again.metadata["decision_threshold"] == first.metadata["decision_threshold"]
    for a, b in zip(first.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_model_file_without_a_threshold_says_it_uses_0_5(breast, tmp_path):
    data, model_path, _, _ = breast
    old = load_model(model_path)
    del old.metadata["decision_threshold"], old.metadata["threshold_rule"]
    old.save(tmp_path / "old.tcnn")
    rc, out, err = tinycnn("evaluate", "--model", tmp_path / "old.tcnn", "--data", data)
    assert rc == 0, err
    assert "decision threshold: 0.5, the default: the model file stores no decision threshold" in out


def test_positive_and_target_sensitivity_flags(tmp_path):
    data = _breast_like(tmp_path / "scans.npz", n=(160, 60, 40), seed=5)
    model_path = tmp_path / "m.tcnn"
    rc, out, err = tinycnn("train", "--data", data, "--dataset", "breastmnist", "--epochs", "2", "--out", model_path,
                           "--positive", "Normal, Benign", "--target-sensitivity", "0.9", "--quiet")
    assert rc == 0, err
    model, p, y = _val_scores(model_path, data, 1)
    meta = model.metadata
    assert (meta["positive_class"], meta["positive_rule"]) == ("normal, benign", "chosen by the user")
    assert meta["decision_threshold"] == metrics.threshold_for_sensitivity(y, p, 0.9)
    assert meta["threshold_rule"].startswith("the highest threshold reaching sensitivity 0.9 on the validation part")
    rc, out, err = tinycnn("train", "--data", data, "--positive", "benign")
    assert rc == 2 and "--positive 'benign' is not one of the classes (0, 1)" in err and "Traceback" not in err
    rc, out, err = tinycnn("train", "--data", data, "--target-sensitivity", "0")
    assert rc == 2 and "argument --target-sensitivity: must be a sensitivity in (0, 1]" in err


def _png_patients(root, classes=("a", "b"), patients=6, images=3, size=32):
    """``root/<class>/p<k><class>_<i>.png``: several images of each patient, class b brighter."""
    rng = np.random.default_rng(0)
    for c, cls in enumerate(classes):
        for k in range(patients):
            for i in range(images):
                img = rng.integers(0, 120, (size, size)) + 100 * c
                path = root / cls / f"p{k}{cls}_{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img.astype(np.uint8)).save(path)
    return root


def test_no_deciding_name_is_a_warning_with_the_flag_and_groups_are_kept_and_counted(tmp_path):
    root = _png_patients(tmp_path / "scans")
    rc, out, err = tinycnn("train", "--data", root, "--epochs", "1", "--group-pattern", r"^(p\d+\w)_")
    assert rc == 0, err
    assert "tinycnn train: warning: positive class: b, taken by default (neither class name reads as a negative " \
           "finding" in err and "If a is the finding to detect, pass --positive a" in err
    assert r"by the file-name pattern '^(p\\d+\\w)_' (12 groups)" in out
    table = out[out.index("cases per class:"):].splitlines()
    assert table[1].split() == ["a", "b", "total", "groups"]
    groups = [int(table[i].split()[-1]) for i in (2, 3, 4)]
    assert sum(groups) == 12 and min(groups) >= 1  # each patient in exactly one part
    rc, out, err = tinycnn("train", "--data", root, "--epochs", "1", "--positive", "A", "--quiet")
    assert rc == 0 and "warning: positive class" not in err, err
    (tmp_path / "g.csv").write_text("file,group\na/p0a_0.png,1\n")
    rc, out, err = tinycnn("train", "--data", root, "--groups", tmp_path / "g.csv")
    assert rc == 2 and "35 file(s) have no group in the groups in g.csv" in err and "Traceback" not in err
    rc, out, err = tinycnn("train", "--data", root, "--group-pattern", "(")
    assert rc == 2 and "argument --group-pattern: not a regular expression" in err


def test_a_dicom_folder_is_split_by_patient_and_counted_without_showing_the_ids(tmp_path):
    pydicom = pytest.importorskip("pydicom", reason="pydicom is not installed (pip install 'tinycnn[dicom]')")
    from test_data_dicom import make_dicom

    rng = np.random.default_rng(1)
    for cls in ("lesion", "normal"):
        for k in range(5):
            for i in range(2):
                path = make_dicom(tmp_path / "d" / cls / f"{k}_{i}.dcm",
                                  rng.integers(0, 1000, (24, 24)).astype(np.uint16) + (1500 if cls == "lesion" else 0))
                ds = pydicom.dcmread(path)
                ds.PatientID = f"SECRET-{cls}-{k}"
                ds.save_as(path, enforce_file_format=True)
    rc, out, err = tinycnn("train", "--data", tmp_path / "d", "--epochs", "1")
    assert rc == 0, err
    assert "by patient (DICOM PatientID: 10 patients)" in out and "positive class: lesion" in out
    table = out[out.index("cases per class:"):].splitlines()
    assert table[1].split()[-1] == "patients" and sum(int(table[i].split()[-1]) for i in (2, 3, 4)) == 10
    assert "SECRET" not in out + err


def test_graded_multi_class_data_get_macro_auc_kappa_and_per_class_sensitivity(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {}
    for part, n in (("train", 150), ("val", 50), ("test", 60)):
        y = np.arange(n) % 5
        x = rng.integers(0, 60, (n, 28, 28, 3)) + (30 * y)[:, None, None, None]  # brighter with the grade
        arrays[f"{part}_images"], arrays[f"{part}_labels"] = x.astype(np.uint8), y[:, None]
    np.savez(tmp_path / "retinamnist.npz", **arrays)
    rc, out, err = tinycnn("train", "--data", tmp_path / "retinamnist.npz", "--epochs", "1", "--out",
                           tmp_path / "r.tcnn")
    assert rc == 0, err
    assert "task: multi-class, ordered grades (MedMNIST v2 retinamnist" in out
    test_part = out[out.index("test set:"):]
    for words in ("macro ROC-AUC (one vs rest)", "95% CI", "quadratic-weighted kappa", "mean absolute grade error",
                  "each class against the rest:", "sensitivity"):
        assert words in test_part, words
    assert "positive class" not in out and "operating point" not in out
    rc, out, err = tinycnn("train", "--data", tmp_path / "retinamnist.npz", "--positive", "4")
    assert rc == 2 and "--positive applies to binary tasks" in err
