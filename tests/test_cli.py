"""The ``tinycnn`` command as a user runs it: the installed console script, in its own process.

Output is a pipe here, as in a log file or CI: no progress bars may appear. Every error a
user can cause must be one line naming the flag or file, exit status 2, never a traceback.
"""

import csv
import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tinycnn.data import save_synthetic_npz, synthetic_chest_xrays

ROOT = pathlib.Path(__file__).parents[1]
TINYCNN = pathlib.Path(sys.executable).with_name("tinycnn")


def tinycnn(*args, cwd=None, timeout=600):
    """Run the console script; return (exit status, stdout, stderr)."""
    assert TINYCNN.exists(), f"{TINYCNN} is missing: install the package (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if k != "TINYCNN_BACKEND"}
    r = subprocess.run([str(TINYCNN), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       cwd=cwd, env=env)
    return r.returncode, r.stdout, r.stderr


def _usage_error(rc, out, err, *words):
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and out == "", (out, err)
    for w in words:
        assert w in err, (w, err)


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(path)


def _png_folder(root, n=60, size=32, seed=4):
    ds = synthetic_chest_xrays(n=n, image_size=size, seed=seed)
    for i in range(n):
        _png(root / ("nodule" if ds.y[i] else "normal") / f"{i:03d}.png", ds.x[i, :, :, 0])
    return root


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("d") / "synth.npz"
    save_synthetic_npz(path, n_train=400, n_val=80, n_test=80, image_size=32, seed=1)
    return path


@pytest.fixture(scope="module")
def trained(npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "model.tcnn"
    rc, stdout, stderr = tinycnn("train", "--data", npz, "--epochs", "2", "--out", out, "--verbose")
    assert rc == 0, stderr
    return out, stdout, stderr


# ------------------------------------------------------------------ train's output (item 7)
def test_train_prints_a_readable_summary_epoch_lines_and_no_progress_bars(trained):
    out, stdout, stderr = trained
    assert out.exists()
    assert "DataSplits(" not in stdout
    for words in ("images: 32 x 32 pixels, grayscale", "split: as stored in the .npz file", "cases per class:",
                  "Epoch 1/2 - loss: ", "Epoch 2/2 - ", "test set:", "ROC-AUC", f"model written to {out}"):
        assert words in stdout, words
    table = stdout[stdout.index("cases per class:"):].splitlines()
    assert table[2].split() == ["training", *table[2].split()[1:]] and table[2].split()[-1] == "400"
    assert table[3].split()[0] == "validation" and table[4].split()[0] == "test"
    assert "Conv2D" in stdout  # --verbose: the model's layers
    # stdout is a pipe: no bar, even with --verbose
    assert "\r" not in stdout + stderr and "batch/s" not in stdout + stderr and "it/s" not in stdout + stderr


def test_quiet_prints_only_the_result(npz, tmp_path):
    rc, out, err = tinycnn("train", "--data", npz, "--epochs", "1", "--quiet", "--out", tmp_path / "q.tcnn")
    assert rc == 0, err
    assert "Epoch" not in out and "cases per class" not in out
    assert out.lstrip().startswith("test set:") and "ROC-AUC" in out


def test_every_option_in_help_has_a_sentence_and_its_default():
    from tinycnn.cli import build_parser

    parser = build_parser()
    commands = parser.commands
    assert set(commands) == {"demo", "train", "evaluate", "predict", "explain", "report", "export", "deidentify",
                             "gradcheck"}
    for name, sub in commands.items():
        options = sub.format_help().split("options:")[1]
        blocks, current = [], None
        for line in options.splitlines():
            if line.startswith("  -"):
                current = [line]
                blocks.append(current)
            elif current is not None and line.strip():
                current.append(line)
        for block in blocks:
            text = " ".join(part.strip() for part in block)
            if text.startswith("-h, --help"):
                continue
            assert "default" in text or "(required)" in text, f"tinycnn {name}: {text}"
            assert len(text.split("  ", 1)[-1].split()) >= 4, f"tinycnn {name}: no sentence in {text}"
    rc, out, _ = tinycnn("predict", "--help")
    assert rc == 0 and "default: the decision threshold stored in the model" in " ".join(out.split())
    rc, out, _ = tinycnn("train", "--help")
    assert rc == 0 and "(default 0.15)" in out and "70%" in out


def test_resume_continues_from_the_checkpoint_and_patience_needs_validation(npz, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    # one model: an ensemble writes one checkpoint per model (tests/test_recipe.py resumes those)
    rc, out, err = tinycnn("train", "--data", npz, "--epochs", "1", "--ensemble", "1", "--checkpoint", ckpt, "--quiet")
    assert rc == 0 and ckpt.exists(), err
    rc, out, err = tinycnn("train", "--data", npz, "--epochs", "2", "--ensemble", "1", "--checkpoint", ckpt, "--resume",
                           "--patience", "3")
    assert rc == 0, err
    assert "Epoch 2/2 - loss: " in out and "Epoch 1/2" not in out
    no_val = tmp_path / "noval.npz"
    with np.load(npz) as z:
        np.savez(no_val, **{k: z[k] for k in z.files if not k.startswith("val_")})
    rc, out, err = tinycnn("train", "--data", no_val, "--patience", "2")
    assert rc == 2 and "--patience needs a validation part" in err


# ------------------------------------------------------------------ one --threshold check (item 2)
@pytest.mark.parametrize("value", ["2", "-0.1", "nan", "inf", "half"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "report", "explain"])
def test_every_command_refuses_a_threshold_outside_0_1_before_doing_anything(command, value, tmp_path):
    args = {"predict": ["--model", "m.tcnn", "img.png"], "explain": ["--model", "m.tcnn", "img.png", "--out", "o"],
            "evaluate": ["--model", "m.tcnn", "--data", "d.npz"], "report": ["--model", "m.tcnn", "--data", "d.npz"]}
    _usage_error(*tinycnn(command, *args[command], f"--threshold={value}", cwd=tmp_path), "argument --threshold")


def test_threshold_zero_calls_every_case_positive(trained, npz, tmp_path):
    model, _, _ = trained
    folder = _png_folder(tmp_path / "imgs", n=6)
    rc, out, err = tinycnn("predict", "--model", model, folder, "--threshold", "0", "--csv", tmp_path / "p.csv")
    assert rc == 0, err
    rows = list(csv.reader((tmp_path / "p.csv").read_text().splitlines()))
    assert rows[0] == ["file", "p_1", "prediction"] and len(rows) == 7  # p(positive class), here class 1
    assert {r[2] for r in rows[1:]} == {"1"}  # an .npz stores no class names: classes 0 and 1


# ------------------------------------------------------------------ files that are not model files (items 1, 3)
def test_a_text_or_damaged_model_file_is_one_line_that_says_so(trained, tmp_path):
    model, _, _ = trained
    (tmp_path / "notes.tcnn").write_text("these are my notes\n")
    raw = bytearray(model.read_bytes())
    cd = int.from_bytes(raw[-6:-2], "little")  # the directory's offset, from the end record
    raw[cd + 8] |= 0x40  # first directory record: the "strong encryption" flag bit
    (tmp_path / "flipped.tcnn").write_bytes(bytes(raw))
    _png(tmp_path / "img.png", np.zeros((32, 32)))
    for name, words in (("notes.tcnn", "is not a tinycnn model file (it looks like text)"),
                        ("flipped.tcnn", "is damaged or not a tinycnn model file")):
        rc, out, err = tinycnn("predict", "--model", tmp_path / name, tmp_path / "img.png")
        assert rc == 2 and out == "" and "Traceback" not in err
        assert err.count("\n") == 1 and words in err and "pickl" not in err.lower(), err


# ------------------------------------------------------------------ --skip-bad (item 4)
@pytest.fixture(scope="module")
def folder_with_a_bad_png(tmp_path_factory):
    root = _png_folder(tmp_path_factory.mktemp("bad") / "xrays", n=60)
    (root / "nodule" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def test_train_stops_at_a_bad_file_and_says_to_use_skip_bad(folder_with_a_bad_png):
    rc, out, err = tinycnn("train", "--data", folder_with_a_bad_png, "--epochs", "1")
    assert rc == 2 and "Traceback" not in err
    assert "zz_broken.png" in err and "--skip-bad" in err


def test_skip_bad_lists_the_skipped_file_in_train_evaluate_and_report(folder_with_a_bad_png, tmp_path):
    model = tmp_path / "m.tcnn"
    rc, out, err = tinycnn("train", "--data", folder_with_a_bad_png, "--epochs", "1", "--skip-bad", "--out", model)
    assert rc == 0, err
    assert "skipped 1 file(s)" in out and "zz_broken.png: " in out
    assert "stratified by class: 70% training / 15% validation / 15% test (seed 0)" in out
    for command, extra in (("evaluate", []), ("report", ["--out", tmp_path / "r.html"])):
        rc, out, err = tinycnn(command, "--model", model, "--data", folder_with_a_bad_png, *extra)
        assert rc == 2 and "--skip-bad" in err and "zz_broken.png" in err
        rc, out, err = tinycnn(command, "--model", model, "--data", folder_with_a_bad_png, "--skip-bad", *extra)
        assert rc == 0, err
        assert "skipped 1 file(s)" in out and "zz_broken.png: " in out


# ------------------------------------------------------------------ flags, not Python names (item 5)
def test_errors_name_flags_and_numbers_are_checked_before_any_data_is_read(tmp_path):
    missing = tmp_path / "nope.npz"  # never reached: each flag is refused first
    for flag, value in (("--epochs", "0"), ("--batch-size", "0"), ("--learning-rate", "-1"),
                        ("--learning-rate", "inf"), ("--image-size", "0"), ("--patience", "0"),
                        ("--val-fraction", "1"), ("--seed", "-1")):
        _usage_error(*tinycnn("train", "--data", missing, flag, value), f"argument {flag}")
    rc, out, err = tinycnn("train", "--data", missing)
    assert rc == 2 and "nope.npz" in err and "Traceback" not in err


def test_mixed_image_sizes_name_the_image_size_flag(tmp_path):
    folder = tmp_path / "mixed"
    for cls, size in (("a", 20), ("b", 24)):
        for i in range(3):
            _png(folder / cls / f"{i}.png", np.random.default_rng(i).random((size, size)))
    rc, out, err = tinycnn("train", "--data", folder, "--epochs", "1")
    assert rc == 2 and "Traceback" not in err
    assert "pass --image-size to resize them all" in err
    assert "image_size" not in err.replace(str(tmp_path), "")  # (pytest named the folder after this test)
    assert str(folder / "a" / "0.png") in err  # paths are left as they are


def test_other_errors_a_user_can_act_on(trained, npz, tmp_path):
    model, _, _ = trained
    three = tmp_path / "three.npz"
    rng = np.random.default_rng(0)
    np.savez(three, **{f"{s}_images": rng.integers(0, 255, (30, 32, 32), dtype=np.uint8) for s in ("train", "test")},
             **{f"{s}_labels": np.arange(30).reshape(30, 1) % 3 for s in ("train", "test")})
    rc, _, err = tinycnn("evaluate", "--model", model, "--data", three)
    assert rc == 2 and "3 classes" in err
    rc, _, err = tinycnn("predict", "--model", tmp_path / "missing.tcnn", tmp_path)
    assert rc == 2 and "does not exist" in err
    rc, _, err = tinycnn("train", "--data", npz, "--resume")
    assert rc == 2 and "--resume needs --checkpoint" in err
    rc, _, err = tinycnn("--backend", "tpu", "demo")
    assert rc == 2 and "choose from 'numpy', 'cpu', 'cuda'" in err


# ------------------------------------------------------------------ tiny evaluation sets (item 6)
def _tiny_npz(path, test_labels, val_labels=(0, 1, 0, 1, 0, 1)):
    rng = np.random.default_rng(5)
    parts = {"train": np.arange(40) % 2, "val": np.array(val_labels), "test": np.array(test_labels)}
    np.savez(path, **{f"{s}_images": rng.integers(0, 255, (len(y), 32, 32), dtype=np.uint8) for s, y in parts.items()},
             **{f"{s}_labels": y.reshape(-1, 1) for s, y in parts.items()})
    return path


def test_tiny_test_sets_print_n_a_and_why_never_a_collapsed_ci(trained, tmp_path):
    model, _, _ = trained
    rc, out, err = tinycnn("evaluate", "--model", model, "--data", _tiny_npz(tmp_path / "four.npz", [0, 0, 0, 1]))
    assert rc == 0, err
    auc_line = next(line for line in out.splitlines() if line.startswith("ROC-AUC of p(1)"))
    assert "no 95% CI: only 1 case(s) of class 1; a bootstrap CI needs at least 10 of each class" in auc_line
    assert "0.000-0.000" not in out and "nan" not in out
    assert "fewer than 20 cases of a class (0: 3, 1: 1)" in err
    rc, out, err = tinycnn("evaluate", "--model", model, "--data", _tiny_npz(tmp_path / "one.npz", [0, 0, 0]))
    assert rc == 0, err
    auc_line = next(line for line in out.splitlines() if line.startswith("ROC-AUC of p(1)"))
    assert auc_line.split(maxsplit=3)[3].startswith("n/a   (undefined: no case of class 1 in this set")


def test_an_undefined_validation_auc_reads_n_a(tmp_path):
    data = _tiny_npz(tmp_path / "val.npz", [0, 1] * 12, val_labels=[0, 0, 0])
    rc, out, err = tinycnn("train", "--data", data, "--epochs", "1")
    assert rc == 0, err
    epoch = next(line for line in out.splitlines() if line.startswith("Epoch 1/1"))
    assert "val_auc: n/a" in epoch and "nan" not in out
    assert "the validation part has fewer than 20 cases of a class (0: 3, 1: 0)" in err


# ------------------------------------------------------------------ traceable outputs (item 8)
def test_explain_names_overlays_after_their_inputs_and_writes_an_index(trained, tmp_path):
    model, _, _ = trained
    folder = _png_folder(tmp_path / "cases", n=5, seed=7)
    (folder / "normal" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    out = tmp_path / "maps"
    rc, printed, err = tinycnn("explain", "--model", model, folder, "--out", out)
    assert rc == 0, err
    inputs = sorted(p for p in folder.rglob("*.png") if p.name != "broken.png")
    expected = sorted(str(p.relative_to(folder).with_suffix("")) + "_gradcam.png" for p in inputs)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*_gradcam.png"))
    assert written == expected and (out / "grid.png").exists()
    rows = list(csv.reader((out / "index.csv").read_text().splitlines()))
    assert rows[0] == ["input file", "output file", "p_1", "prediction"]
    assert sorted(r[1] for r in rows[1:]) == expected
    assert sorted(r[0] for r in rows[1:]) == sorted(map(str, inputs))
    rc, _, _ = tinycnn("predict", "--model", model, folder, "--csv", tmp_path / "p.csv")
    predicted = {r[0]: r[1:] for r in csv.reader((tmp_path / "p.csv").read_text().splitlines())}
    assert all(predicted[r[0]] == r[2:] for r in rows[1:])  # the same probability and call as predict
    assert "index.csv" in printed and "_gradcam.png" in printed and "case_NNNN" not in printed
    assert "skipped 1 file(s)" in printed and "broken.png" in printed
    assert np.asarray(Image.open(out / expected[0])).shape == (32, 32, 3)
    rc, _, err = tinycnn("explain", "--model", model, folder, "--out", tmp_path / "x", "--layer", "nope")
    assert rc == 2 and "nope" in err


def test_report_cases_are_traced_to_their_files_by_an_index_beside_the_report(folder_with_a_bad_png, tmp_path):
    pytest.importorskip("matplotlib")
    model = tmp_path / "m.tcnn"
    rc, out, err = tinycnn("train", "--data", folder_with_a_bad_png, "--epochs", "1", "--skip-bad", "--out", model,
                           "--image-size", "24", "--augment", "--class-weight", "balanced")
    assert rc == 0 and "images: 24 x 24 pixels" in out, err
    rc, out, err = tinycnn("report", "--model", model, "--data", folder_with_a_bad_png, "--skip-bad",
                           "--out", tmp_path / "r.html")
    assert rc == 0, err
    rows = list(csv.reader((tmp_path / "r.cases.csv").read_text().splitlines()))
    assert rows[0] == ["case", "input file", "true class", "p_nodule", "prediction", "shown in the report"]
    assert [int(r[0]) for r in rows[1:]] == list(range(1, len(rows)))
    assert all(pathlib.Path(r[1]).parent.name == r[2] for r in rows[1:])  # class folder == true class
    shown = [r for r in rows[1:] if r[5]]
    html = (tmp_path / "r.html").read_text()
    assert shown and all(f"case {r[0]}:" in html for r in shown)
    assert "r.cases.csv" in out


# ------------------------------------------------------------------ the demo's data, reused (items 9, 11)
def test_demo_saves_its_data_and_the_other_commands_run_on_it(tmp_path):
    data, model = tmp_path / "demo-data", tmp_path / "demo.tcnn"
    rc, out, err = tinycnn("demo", "--n", "120", "--image-size", "32", "--epochs", "1", "--out", model,
                           "--save-data", data)
    assert rc == 0, err
    assert (data / "demo.npz").exists() and "data written to" in out
    test_pngs = sorted((data / "test").rglob("*.png"))
    assert {p.parent.name for p in test_pngs} == {"normal", "nodule"} and len(test_pngs) == 18
    rc, out, err = tinycnn("evaluate", "--model", model, "--data", data / "demo.npz")
    assert rc == 0 and "cases: 18 (normal 9, nodule 9)" in out, err
    rc, out, err = tinycnn("explain", "--model", model, data / "test", "--out", tmp_path / "maps")
    assert rc == 0 and len(list((tmp_path / "maps").rglob("*_gradcam.png"))) == 18, err
    if importlib.util.find_spec("matplotlib"):
        rc, out, err = tinycnn("report", "--model", model, "--data", data / "demo.npz", "--out", tmp_path / "r.html")
        assert rc == 0 and "18 cases" in out, err


def test_demo_refuses_a_bad_image_size_before_printing_anything(tmp_path):
    _usage_error(*tinycnn("demo", "--image-size", "0", cwd=tmp_path), "argument --image-size", ">= 32")
    assert not (tmp_path / "tinycnn-demo.tcnn").exists()


def test_deidentify_with_out_inside_in_is_a_usage_error(tmp_path):
    (tmp_path / "in").mkdir()
    rc, out, err = tinycnn("deidentify", tmp_path / "in", tmp_path / "in" / "out")
    assert rc == 2 and "outside" in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "in" / "out").exists()


# ------------------------------------------------------------------ the parser (issue 13)
def test_backend_choices_come_from_the_registry(monkeypatch):
    from tinycnn import backend
    from tinycnn.cli import build_parser

    for name in backend.available():
        assert build_parser().parse_args(["--backend", name, "gradcheck"]).backend == name
    monkeypatch.setattr(backend, "available", lambda: ("numpy", "npu"))  # a backend registered later
    assert build_parser().parse_args(["--backend", "npu", "gradcheck"]).backend == "npu"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--backend", "cpu", "gradcheck"])


def test_the_parser_loads_no_heavy_library_so_help_and_usage_errors_answer_at_once():
    code = ("import sys, tinycnn.cli; tinycnn.cli.build_parser(); "
            "print(sorted(m for m in ('scipy', 'PIL', 'matplotlib', 'pydicom', 'numba', 'onnx', 'onnxruntime', "
            "'dicomanonymizer') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_a_command_whose_module_fails_to_import_is_an_error_not_a_missing_command(monkeypatch):
    from tinycnn import cli

    monkeypatch.setitem(sys.modules, "tinycnn.privacy", None)  # as if its import raised
    with pytest.raises(ImportError):
        cli.build_parser()


# ------------------------------------------------------------------ examples
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
