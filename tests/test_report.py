"""The HTML report (tinycnn.report): sections, embedded pictures, numbers, and no identifiers."""

import base64
import io
import re
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from tinycnn import data, metrics  # noqa: E402
from tinycnn.cli import main  # noqa: E402
from tinycnn.errors import ConfigError  # noqa: E402
from tinycnn.layers import Conv2D, Dense, GlobalAveragePooling2D  # noqa: E402
from tinycnn.models import Sequential  # noqa: E402
from tinycnn.pipeline import train  # noqa: E402
from tinycnn.report import PlotDependencyError, write_report  # noqa: E402

NAME, PID = "DOE^JANE", "PID4711"  # a DICOM-style patient name and ID planted in paths and metadata
SECTIONS = ["Training curves", "ROC curve", "Confusion matrix", "Diagnostic performance", "Grad-CAM examples"]


class _Page(HTMLParser):
    """Collects headings, image sources, every other URL-bearing attribute and forbidden tags."""

    def __init__(self):
        super().__init__()
        self.h2, self.h3, self.imgs, self.urls, self.tags = [], [], [], [], set()
        self._heading = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for k, v in attrs:
            if tag == "img" and k == "src":
                self.imgs.append(v)
            elif k in ("href", "src", "action", "srcset", "poster"):
                self.urls.append(v)
        if tag in ("h2", "h3"):
            self._heading = tag

    def handle_endtag(self, tag):
        self._heading = None if tag in ("h2", "h3") else self._heading

    def handle_data(self, text):
        if self._heading:
            getattr(self, self._heading).append(text.strip())


def _parse(path):
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    pngs = []
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        img = Image.open(io.BytesIO(raw))
        img.load()
        assert img.format == "PNG"
        pngs.append(raw)
    # base64 payloads removed: what is left is the markup and text a reader sees
    markup = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", text)
    return page, pngs, markup


def _assert_self_contained_and_anonymous(page, pngs, markup):
    assert not page.urls and not {"script", "link", "iframe", "object", "embed", "base"} & page.tags
    assert "http" not in markup.lower() and "url(" not in markup and "@import" not in markup
    for secret in (NAME, PID, "DOE", "JANE"):
        assert secret not in markup
        assert all(secret.encode() not in png for png in pngs)


@pytest.fixture(scope="module")
def binary_model():
    ds = data.synthetic_chest_xrays(360, 32, seed=4)
    splits = data.DataSplits(train=(ds.x[:240], ds.y[:240]), val=(ds.x[240:280], ds.y[240:280]),
                             test=(ds.x[280:], ds.y[280:]), class_names=["normal", "nodule"], task="binary",
                             num_classes=2, source=f"/data/{NAME}_{PID}.npz")
    model, _, _ = train(splits, epochs=3, verbose=0, seed=0)
    model.metadata.update(patient_name=NAME, patient_id=PID, source=splits.source)  # must not leak
    return model, ds.x[280:], ds.y[280:]


def test_binary_report_has_every_section_and_the_numbers_of_tinycnn_metrics(binary_model, tmp_path):
    model, x, y = binary_model
    # the report's batch size: float32 sums may differ in the last bit between batch sizes
    p = model.predict(x, batch_size=64)[:, 0]
    # a briefly trained model (AUC about 0.8) cut at its median score: every kind of case occurs
    t = round(float(np.median(p)), 4)
    called = p >= t
    groups = [int((called & (y == 1)).sum()), int((called & (y == 0)).sum()), int((~called & (y == 1)).sum())]
    assert min(groups) >= 1
    out = tmp_path / "report.html"
    res = write_report(out, model, x, y, history=model.metadata["history"], threshold=t, n_examples=3)
    page, pngs, markup = _parse(out)
    assert page.h2 == SECTIONS
    _assert_self_contained_and_anonymous(page, pngs, markup)

    shown = [min(3, g) for g in groups]
    assert len(pngs) == 2 + sum(shown)  # training curves, ROC, then one picture per Grad-CAM case
    assert page.h3 == [f"True positives: {shown[0]} shown, most confident first",
                       f"False positives: {shown[1]} shown, most confident first",
                       f"False negatives: {shown[2]} shown, most missed first"]

    cm = metrics.confusion_matrix(y, p, threshold=t)
    assert f"threshold {t:g}" in markup
    assert res["confusion_matrix"] == cm.tolist() and cm.sum() == len(y)
    for v in cm.ravel():
        assert f"<td class=\"hit\">{v}</td>" in markup or f"<td class=\"miss\">{v}</td>" in markup
    auc, lo, hi = metrics.bootstrap_auc_ci(y, p, n_bootstraps=1000, seed=0)
    assert res["auc"] == auc and res["auc_95ci"] == [lo, hi] and lo <= auc <= hi
    assert f"AUC of p(nodule), nodule against normal: <b>{auc:.3f}</b>, 95% CI {lo:.3f}–{hi:.3f}" in markup
    t95 = metrics.threshold_for_sensitivity(y, p, 0.95)
    assert res["threshold_for_95_sensitivity"] == t95 and f"<b>{t95:.3f}</b>" in markup
    (tn, fp), (fn, tp) = cm
    assert res["rates"]["NPV"] == pytest.approx(tn / (tn + fn)) and res["rates"]["PPV"] == pytest.approx(tp / (tp + fp))
    for word in ("sensitivity", "specificity", "PPV", "NPV", "F1"):
        assert f"<th class=\"\">{word}</th>" in markup


def test_undefined_rates_are_the_nan_of_tinycnn_metrics_and_read_n_a(binary_model, tmp_path):
    model, x, y = binary_model
    p = model.predict(x)[:, 0]
    t = float(min(1.0, p.max() + 1e-3))  # nothing is called positive: PPV is 0/0
    res = write_report(tmp_path / "r.html", model, x, y, threshold=t, n_examples=0)
    rep = metrics.classification_report(y, p, threshold=t)
    assert np.isnan(res["rates"]["PPV"]) and np.isnan(rep["precision"])
    for shown, key in (("sensitivity", "sensitivity"), ("specificity", "specificity"), ("NPV", "npv"), ("F1", "f1"),
                       ("accuracy", "accuracy")):
        assert res["rates"][shown] == pytest.approx(rep[key], nan_ok=True), shown
    _, _, markup = _parse(tmp_path / "r.html")
    assert "<td>n/a</td>" in markup


def test_a_tiny_test_set_gets_no_collapsed_ci_but_the_reason(binary_model, tmp_path):
    model, x, y = binary_model
    idx = np.r_[np.flatnonzero(y == 0)[:3], np.flatnonzero(y == 1)[:1]]  # 3 normal, 1 nodule
    res = write_report(tmp_path / "r.html", model, x[idx], y[idx], n_examples=1)
    _, _, markup = _parse(tmp_path / "r.html")
    assert res["auc_95ci"] is None and "95% CI 0" not in markup
    assert "no 95% CI: only 1 case(s) of class nodule; a bootstrap CI needs at least 10 of each class" in markup
    assert res["examples"]["True positives"] + res["examples"]["False negatives"] == [3]


def test_multiclass_report_has_one_vs_rest_roc_and_the_confusion_matrix(tmp_path):
    rng = np.random.default_rng(0)
    m = Sequential([Conv2D(4, 3, activation="relu", input_shape=(12, 12, 1)), GlobalAveragePooling2D(),
                    Dense(3, activation="softmax")])
    x = rng.random((60, 12, 12, 1)).astype(np.float32)
    y = np.arange(60) % 3
    out = tmp_path / "multi.html"
    res = write_report(out, m, x, y, n_examples=2, class_names=["a", "b", "c"])  # no history
    page, pngs, markup = _parse(out)
    assert page.h2 == SECTIONS
    _assert_self_contained_and_anonymous(page, pngs, markup)
    assert "no training history" in markup
    assert np.array(res["confusion_matrix"]).shape == (3, 3)
    for name in "abc":  # rows of the per-class AUC and rates tables
        assert markup.count(f'<td class="label">{name}</td>') == 2
    pred = m.predict(x).argmax(axis=1)
    n_right, n_wrong = min(2, int((pred == y).sum())), min(2, int((pred != y).sum()))
    assert len(pngs) == 1 + n_right + n_wrong  # ROC, then Grad-CAM cases


def test_report_refuses_bad_arguments_and_names_the_plot_extra(binary_model, tmp_path, monkeypatch):
    model, x, y = binary_model
    with pytest.raises(ConfigError, match="threshold"):
        write_report(tmp_path / "r.html", model, x, y, threshold=1.5)
    with pytest.raises(ConfigError, match="multi-label"):
        write_report(tmp_path / "r.html", model, x, np.stack([y, y], 1))
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    with pytest.raises(PlotDependencyError, match=r"pip install tinycnn\[plot\]"):
        write_report(tmp_path / "r.html", model, x, y)
    assert not (tmp_path / "r.html").exists()


def test_cli_report_on_an_npz_whose_path_names_the_patient(tmp_path, capsys):
    folder = tmp_path / f"{NAME}_{PID}"
    folder.mkdir()
    npz = data.save_synthetic_npz(folder / f"{PID}.npz", n_train=200, n_val=40, n_test=60, image_size=32, seed=5)
    splits = data.load_dataset(npz)
    model_path = tmp_path / "m.tcnn"
    train(splits, epochs=2, verbose=0, out=str(model_path))
    out = tmp_path / "r.html"
    assert main(["report", "--model", str(model_path), "--data", str(npz), "--out", str(out),
                 "--threshold", "0.4"]) == 0
    assert "60 cases" in capsys.readouterr().out
    page, pngs, markup = _parse(out)
    assert page.h2 == SECTIONS and len(pngs) >= 2
    assert "threshold 0.4" in markup and "no training history" not in markup  # history from the model file
    _assert_self_contained_and_anonymous(page, pngs, markup)


def _dicom(path, pixels):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality = NAME, PID, "OT"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def test_cli_report_on_dicoms_tagged_with_the_patient(tmp_path, capsys):
    pytest.importorskip("pydicom")
    ds = data.synthetic_chest_xrays(90, 32, seed=6)
    root = tmp_path / "dicom"
    for i, (img, label) in enumerate(zip(ds.x[..., 0], ds.y, strict=True)):
        _dicom(root / ("nodule" if label else "normal") / f"{NAME}_{PID}_{i:03d}.dcm",
               np.round(img * 4000).astype(np.uint16))
    splits = data.load_dataset(root)
    model_path = tmp_path / "m.tcnn"
    train(splits, epochs=1, verbose=0, out=str(model_path))
    out = tmp_path / "r.html"
    assert main(["report", "--model", str(model_path), "--data", str(root), "--out", str(out)]) == 0
    page, pngs, markup = _parse(out)
    assert page.h2 == SECTIONS
    _assert_self_contained_and_anonymous(page, pngs, markup)
