"""The tinycnn command end to end: train, evaluate, predict; errors a user can act on."""

import csv
import importlib.util
import pathlib

import numpy as np
import pytest
from PIL import Image

from tinycnn.cli import main
from tinycnn.data import save_synthetic_npz

ROOT = pathlib.Path(__file__).parents[1]


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("d") / "synth.npz"
    save_synthetic_npz(path, n_train=400, n_val=80, n_test=80, image_size=32, seed=1)
    return path


@pytest.fixture(scope="module")
def trained(npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "model.tcnn"
    assert main(["train", "--data", str(npz), "--epochs", "3", "--out", str(out)]) == 0
    return out


def _png(path, arr):
    Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(path)


def test_train_writes_a_model_and_prints_test_metrics(trained, capsys):
    assert trained.exists()
    from tinycnn.models import load_model

    m = load_model(trained)
    assert m.metadata["class_names"] and m.metadata["image_size"] == [32, 32]
    assert "history" in m.metadata


def test_evaluate_prints_clinical_metrics(trained, npz, capsys):
    assert main(["evaluate", "--model", str(trained), "--data", str(npz)]) == 0
    out = capsys.readouterr().out
    for word in ("ROC-AUC", "sensitivity", "specificity", "confusion matrix"):
        assert word in out


def test_predict_folder_to_csv_and_skips_a_corrupt_file(trained, tmp_path, capsys):
    from tinycnn.data import synthetic_chest_xrays

    ds = synthetic_chest_xrays(n=4, image_size=48, seed=3)  # another size: resized to the model's
    for i in range(4):
        _png(tmp_path / f"img{i}.png", ds.x[i, :, :, 0])
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out_csv = tmp_path / "p.csv"
    assert main(["predict", "--model", str(trained), str(tmp_path), "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "broken.png" in out
    rows = list(csv.reader(out_csv.open()))
    assert rows[0] == ["file", "probability", "prediction"] and len(rows) == 5
    assert all(0 <= float(r[1]) <= 1 for r in rows[1:])


def test_errors_a_user_can_act_on(trained, tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope.npz")]) == 2
    assert "nope.npz" in capsys.readouterr().err
    folder = tmp_path / "mixed"
    for cls, size in (("a", 20), ("b", 24)):
        (folder / cls).mkdir(parents=True)
        for i in range(3):
            _png(folder / cls / f"{i}.png", np.random.default_rng(i).random((size, size)))
    assert main(["train", "--data", str(folder), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "size" in err and ".png" in err
    three = tmp_path / "three.npz"
    rng = np.random.default_rng(0)
    np.savez(three, **{f"{s}_images": rng.integers(0, 255, (30, 32, 32), dtype=np.uint8) for s in ("train", "test")},
             **{f"{s}_labels": np.arange(30).reshape(30, 1) % 3 for s in ("train", "test")})
    assert main(["evaluate", "--model", str(trained), "--data", str(three)]) == 2
    assert "3 classes" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "missing.tcnn"), str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_on_an_image_folder_with_resizing(tmp_path, capsys):
    from tinycnn.data import synthetic_chest_xrays

    ds = synthetic_chest_xrays(n=60, image_size=40, seed=4)
    for i in range(60):
        d = tmp_path / "data" / ("nodule" if ds.y[i] else "normal")
        d.mkdir(parents=True, exist_ok=True)
        _png(d / f"{i}.png", ds.x[i, :, :, 0])
    assert main(["train", "--data", str(tmp_path / "data"), "--image-size", "32", "--epochs", "1",
                 "--augment", "--class-weight", "balanced", "--out", str(tmp_path / "m.tcnn")]) == 0
    assert (tmp_path / "m.tcnn").exists()


@pytest.mark.parametrize("classes", [2, 3])
def test_medmnist_example_on_a_generated_file(tmp_path, classes):
    rng = np.random.default_rng(classes)
    parts = {}
    for split, n in (("train", 240), ("val", 60), ("test", 60)):
        y = rng.integers(0, classes, n)
        x = rng.normal(100, 20, (n, 28, 28))
        for i in np.flatnonzero(y):  # class 1: a bright square, class 2: a dark one, anywhere
            r, c = rng.integers(2, 20, 2)
            x[i, r:r + 6, c:c + 6] += 80 if y[i] == 1 else -80
        parts[f"{split}_images"] = np.clip(x, 0, 255).astype(np.uint8)
        parts[f"{split}_labels"] = y.reshape(n, 1)
    np.savez(tmp_path / "m.npz", **parts)
    spec = importlib.util.spec_from_file_location("train_medmnist", ROOT / "examples" / "train_medmnist.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = mod.run(str(tmp_path / "m.npz"), epochs=12, ensemble=1, verbose=0)  # one model: the CI budget
    assert r["task"] == ("binary" if classes == 2 else "multiclass")
    assert r["auc"] > 0.9 and r["accuracy"] > 0.8, r
