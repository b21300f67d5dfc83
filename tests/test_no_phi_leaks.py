"""tinycnn never writes patient identifiers into model files, logs or progress output.

A DICOM data set carries planted identifiers in its tags; a model is trained on it through the
command line and used for prediction. None of the planted strings may appear in anything
tinycnn writes or prints (the file paths themselves hold no identifier: that is the user's
folder naming, which de-identification also covers).
"""

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from test_data_dicom import make_dicom  # noqa: E402

from tinycnn.cli import main  # noqa: E402

PHI = ["Zyxwvut^Quirinus", "PHI-ID-937451", "19230517", "Quirinus Hospital of Nowhere", "Plantedname^Drusilla",
       "ACC-55501234"]


def _plant(path):
    ds = pydicom.dcmread(path)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PHI[0], PHI[1], PHI[2]
    ds.InstitutionName, ds.ReferringPhysicianName, ds.AccessionNumber = PHI[3], PHI[4], PHI[5]
    ds.save_as(path, enforce_file_format=True)


def test_training_and_prediction_on_dicoms_leak_no_identifier(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for cls in ("abnormal", "normal"):
        for i in range(12):
            px = rng.integers(0, 1000, (24, 24)).astype(np.uint16)
            if cls == "abnormal":
                px[8:14, 8:14] += 2000
            _plant(make_dicom(tmp_path / "data" / cls / f"{i}.dcm", px))
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*.dcm"))
    assert all(s.encode() in raw for s in PHI)  # the identifiers really are in the input

    model = tmp_path / "m.tcnn"
    ckpt = tmp_path / "ckpt.tcnn"
    assert main(["train", "--data", str(tmp_path / "data"), "--epochs", "2", "--out", str(model),
                 "--checkpoint", str(ckpt)]) == 0
    assert main(["predict", "--model", str(model), str(tmp_path / "data"), "--csv", str(tmp_path / "p.csv")]) == 0
    assert main(["evaluate", "--model", str(model), "--data", str(tmp_path / "data")]) == 0
    printed = capsys.readouterr()
    ckpts = sorted(tmp_path.glob("ckpt*.tcnn"))  # an ensemble writes one checkpoint per member
    assert ckpts
    written = model.read_bytes() + b"".join(c.read_bytes() for c in ckpts) + (tmp_path / "p.csv").read_bytes()
    for s in PHI:
        for variant in {s, s.replace("^", " "), *(part for part in s.split("^") if len(part) >= 6)}:
            assert variant.encode() not in written, f"{variant!r} leaked into a file tinycnn wrote"
            assert variant not in printed.out and variant not in printed.err, f"{variant!r} was printed"
