"""ONNX export: the file passes onnx's full check and ONNX Runtime reproduces ``predict``.

Every comparison runs the exported file in ONNX Runtime (an implementation independent of
tinycnn) and asserts its outputs equal ``model.predict`` to 1e-5, on random inputs and on real
MedMNIST images from ``../shared/data/`` (skipped when that folder is absent).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinycnn import pipeline
from tinycnn.cli import main
from tinycnn.export import ExportError, OnnxDependencyError
from tinycnn.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    Layer,
    LeakyReLU,
    MaxPooling2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from tinycnn.models import Sequential, load_model
from tinycnn.random import set_random_seed

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TOL = 1e-5


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime", reason='onnxruntime is not installed (pip install "tinycnn[onnx]")')


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx", reason='onnx is not installed (pip install "tinycnn[onnx]")')


def _onnxruntime(path, x, ort):
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # a shared 2-core machine
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, out.name) == ("images", "tensor(float)", "predictions")
    return session.run(None, {"images": np.ascontiguousarray(x, np.float32)})[0]


def _export_and_compare(model, x, path, onnx, ort):
    """Export, check fully, run in ONNX Runtime; assert equal to predict; return the outputs."""
    model.export(path, format="onnx")
    onnx.checker.check_model(str(path), full_check=True)
    want = model.predict(x)
    got = _onnxruntime(path, x, ort)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    return want


def _random_images(shape, n=6, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype(np.float32)


def _train_steps(model, x, y, loss, steps=2):
    """A couple of optimizer steps, so that weights and BN moving statistics are not the initial ones."""
    model.compile(optimizer="adam", loss=loss)
    for s in range(steps):
        model.train_on_batch(x[s::steps], y[s::steps])


def _medmnist(name, n=48):
    path = DATA / f"{name}.npz"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the MedMNIST files of ../shared/data/ are not beside this checkout)")
    from tinycnn.data import load_dataset

    splits = load_dataset(path)
    (xtr, ytr), (xte, _) = splits.train, splits.test
    return np.asarray(xtr[:64]), np.asarray(ytr[:64]), np.asarray(xte[:n])


# ------------------------------------------------------------------ the seed listing
def _seed_listing(size):
    """examples/keras_seed_listing.py's architecture (the Keras listing), at a small size."""
    model = Sequential()
    model.add(Conv2D(32, (3, 3), activation='relu', input_shape=(size, size, 3)))
    model.add(MaxPooling2D((2, 2)))
    model.add(Conv2D(64, (3, 3), activation='relu'))
    model.add(MaxPooling2D((2, 2)))
    model.add(Conv2D(128, (3, 3), activation='relu'))
    model.add(MaxPooling2D((2, 2)))
    model.add(Flatten())
    model.add(Dense(512, activation='relu'))
    model.add(Dense(1, activation='sigmoid'))
    return model


def _seed_data(n, size, seed):
    spec = importlib.util.spec_from_file_location("keras_seed_listing", ROOT / "examples" / "keras_seed_listing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_data(n, size, seed=seed)


def test_seed_listing_matches_predict_on_random_inputs(tmp_path, onnx, ort):
    set_random_seed(0)
    model = _seed_listing(32)
    x, y = _seed_data(32, 32, seed=0)
    _train_steps(model, x, y, "binary_crossentropy")
    p = _export_and_compare(model, _seed_data(16, 32, seed=1)[0], tmp_path / "seed.onnx", onnx, ort)
    assert p.shape == (16, 1) and ((p > 0) & (p < 1)).all()


def test_seed_listing_matches_predict_on_retinamnist_images(tmp_path, onnx, ort):
    xtr, ytr, xte = _medmnist("retinamnist")
    set_random_seed(0)
    model = _seed_listing(28)  # 28 -> 26 -> 13 -> 11 -> 5 -> 3 -> 1
    _train_steps(model, xtr, (ytr > 0).astype(np.int64), "binary_crossentropy")
    _export_and_compare(model, xte, tmp_path / "seed28.onnx", onnx, ort)


# ------------------------------------------------------------------ the pipeline's diagnosis model
@pytest.mark.parametrize("task,k,shape", [("binary", 2, (32, 32, 1)), ("multiclass", 5, (32, 32, 3)),
                                          ("multilabel", 3, (24, 24, 1))])
def test_diagnosis_model_matches_predict_on_random_inputs(task, k, shape, tmp_path, onnx, ort):
    set_random_seed(1)
    model = pipeline.diagnosis_model(shape, k, task)
    x = _random_images(shape, n=16, seed=2)
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (16, k)) if task == "multilabel" else rng.integers(0, k, 16)
    _train_steps(model, x, y, pipeline.loss_for(task))
    p = _export_and_compare(model, _random_images(shape, seed=4), tmp_path / f"{task}.onnx", onnx, ort)
    if task == "multiclass":
        np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)


@pytest.mark.parametrize("name,task,k", [("breastmnist", "binary", 2), ("retinamnist", "multiclass", 5)])
def test_diagnosis_model_matches_predict_on_medmnist_images(name, task, k, tmp_path, onnx, ort):
    xtr, ytr, xte = _medmnist(name)
    assert xte.shape[-1] == (1 if name == "breastmnist" else 3)  # grey ultrasound, RGB fundus
    set_random_seed(2)
    model = pipeline.diagnosis_model(xte.shape[1:], k, task)
    _train_steps(model, xtr, ytr, pipeline.loss_for(task))
    _export_and_compare(model, xte, tmp_path / f"{name}.onnx", onnx, ort)


# ------------------------------------------------------------------ every layer and activation
def _every_layer_model(head):
    """Every layer type, every activation (standalone and fused), stride 2, 'same' with odd and
    even kernels, 'valid', BN on images and on vectors; ``head`` 'flatten' or 'gap'."""
    layers = [
        Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(15, 16, 3)),  # 15x16 -> 8x8
        Conv2D(5, 2, padding="same", activation="tanh"),                   # even kernel: pads (0, 1)
        BatchNormalization(momentum=0.5),
        LeakyReLU(0.1),
        Conv2D(6, 3, activation="leaky_relu", use_bias=False),             # valid: 6x6
        Conv2D(6, (4, 2), strides=(2, 1), padding="same", activation="sigmoid"),  # even, stride 2: 3x6
        MaxPooling2D(3, strides=2, padding="same"),                        # 2x3
        Activation("softmax"),                                             # over channels, on images
        Conv2D(7, 1, activation="linear"),
        MaxPooling2D(2, strides=1),                                        # valid: 1x2
        Dropout(0.25),
    ]
    layers.append(Flatten() if head == "flatten" else GlobalAveragePooling2D())
    layers += [
        Dense(8, activation="relu"), BatchNormalization(momentum=0.5), Sigmoid(),
        Dense(8, activation="leaky_relu"), Activation("leaky_relu", alpha=0.2), Tanh(),
        Dense(6, activation="sigmoid"), ReLU(), Dense(6, activation="tanh"), Activation("linear"),
        Dense(5, activation="softmax"), Dropout(0.5), Dense(4), Softmax(),
    ]
    return Sequential(layers, name=f"every_layer_{head}")


@pytest.mark.parametrize("head", ["flatten", "gap"])
def test_every_layer_and_every_prefix_matches_predict(head, tmp_path, onnx, ort):
    """Each prefix of the model is exported too, so each layer's own output is compared."""
    set_random_seed(3)
    model = _every_layer_model(head)
    x = _random_images((15, 16, 3), n=16, seed=5)
    _train_steps(model, x, np.random.default_rng(6).integers(0, 4, 16), "sparse_categorical_crossentropy")
    bn = model.layers[2].get_weights()
    assert not np.allclose(bn[2], 0) and not np.allclose(bn[3], 1)  # moving statistics moved
    x = _random_images((15, 16, 3), n=5, seed=7) * 4 - 2  # negative values: leaky slopes matter
    for k in range(1, len(model.layers) + 1):
        prefix = Sequential(model.layers[:k], name=f"prefix{k}")
        _export_and_compare(prefix, x, tmp_path / f"p{k}.onnx", onnx, ort)


@pytest.mark.parametrize("act", ["linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"])
def test_each_activation_fused_and_standalone(act, tmp_path, onnx, ort):
    set_random_seed(4)
    x = _random_images((5, 6, 2), seed=8) * 6 - 3
    fused = Sequential([Conv2D(3, 3, padding="same", activation=act, input_shape=(5, 6, 2)), Flatten(),
                        Dense(4, activation=act)])
    _export_and_compare(fused, x, tmp_path / "fused.onnx", onnx, ort)
    alone = Sequential([Conv2D(3, 3, padding="same", input_shape=(5, 6, 2)), Activation(act, alpha=0.05),
                        Flatten(), Dense(4), Activation(act, alpha=0.3)])
    _export_and_compare(alone, x, tmp_path / "alone.onnx", onnx, ort)


# ------------------------------------------------------------------ composite layers
class _Residual(Layer):
    """A residual block as the extension point expects one: sublayers plus sublayer_graph()."""

    def __init__(self, filters, strides=1, project=False, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)
        self.bn1 = BatchNormalization()
        self.relu1 = ReLU()
        self.conv2 = Conv2D(filters, 3, padding="same")
        self.projection = Conv2D(filters, 1, strides=strides) if project else None
        self.main = [self.conv1, self.bn1, self.relu1, self.conv2]

    def compute_output_shape(self, input_shape):
        for layer in self.main:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    def build(self, input_shape):
        super().build(input_shape)
        shape = tuple(input_shape)
        for layer in self.main:
            layer.build(shape)
            shape = layer.output_shape
        if self.projection is not None:
            self.projection.build(tuple(input_shape))
        rng = np.random.default_rng(9)  # non-trivial moving statistics
        self.bn1.set_state(moving_mean=rng.normal(0, 0.5, shape[-1]), moving_variance=rng.uniform(0.5, 2, shape[-1]))

    def forward(self, x, training=False):
        y = x
        for layer in self.main:
            y = layer.forward(y, training=training)
        s = x if self.projection is None else self.projection.forward(x, training=training)
        return np.maximum(y + s, 0)

    def sublayer_graph(self):
        steps = [("a", self.conv1, "input"), ("b", self.bn1, "a"), ("c", self.relu1, "b"), ("d", self.conv2, "c")]
        short = "input"
        if self.projection is not None:
            steps.append(("s", self.projection, "input"))
            short = "s"
        return steps + [("sum", "add", ["d", short]), ("out", "relu", "sum")]


def test_composite_residual_blocks_export_from_their_sublayer_graph(tmp_path, onnx, ort):
    set_random_seed(5)
    model = Sequential([Conv2D(4, 3, padding="same", activation="relu", input_shape=(9, 9, 1)),
                        _Residual(4, name="identity_block"),                        # identity shortcut
                        _Residual(6, strides=2, project=True, name="projection_block"),  # 1x1 stride-2 shortcut
                        GlobalAveragePooling2D(), Dense(3, activation="softmax")])
    _export_and_compare(model, _random_images((9, 9, 1), seed=10), tmp_path / "res.onnx", onnx, ort)
    proto = onnx.load(str(tmp_path / "res.onnx"))
    assert [n.op_type for n in proto.graph.node].count("Add") == 2
    assert any(n.name.startswith("projection_block/") for n in proto.graph.node)


def test_a_composite_with_a_bad_graph_is_refused_by_name(onnx):
    class Broken(_Residual):
        def sublayer_graph(self):
            return [("a", self.conv1, "nowhere")]

    model = Sequential([Broken(2, name="broken_block", input_shape=(4, 4, 2))])
    with pytest.raises(ExportError, match=r"broken_block.*'a' reads \['nowhere'\]"):
        model.export("unused.onnx")


# ------------------------------------------------------------------ errors
class _Doubler(Layer):
    def forward(self, x, training=False):
        return x * 2


class _MyConv(Conv2D):
    """A subclass may compute something else: it is not exported as a Conv2D."""


@pytest.mark.parametrize("layer,cls", [(_Doubler(name="doubler"), "_Doubler"),
                                       (_MyConv(2, 3, name="doubler"), "_MyConv")])
def test_a_layer_without_converter_gets_an_error_naming_it(layer, cls, tmp_path, onnx):
    model = Sequential([Conv2D(2, 3, input_shape=(6, 6, 1)), layer, Flatten(), Dense(1)])
    with pytest.raises(ExportError, match=rf"layer 'doubler' \({cls}\) cannot be exported to ONNX"):
        model.export(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    assert not list(tmp_path.iterdir())  # no temporary file left behind


def test_unbuilt_model_and_unknown_format_are_refused(tmp_path, onnx):
    with pytest.raises(ExportError, match="not built"):
        Sequential([Dense(2)]).export(tmp_path / "m.onnx")
    model = Sequential([Dense(2, input_shape=(3,))])
    with pytest.raises(ExportError, match=r"format must be one of \['onnx'\], got 'tf_saved_model'"):
        model.export(tmp_path / "m.onnx", format="tf_saved_model")


def test_missing_onnx_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    model = Sequential([Dense(2, input_shape=(3,))])
    model.save(tmp_path / "m.tcnn")
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails as if not installed
    with pytest.raises(OnnxDependencyError, match=r'pip install "tinycnn\[onnx\]"'):
        model.export(tmp_path / "m.onnx")
    assert main(["export", "--model", str(tmp_path / "m.tcnn"), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinycnn export: error:") and 'pip install "tinycnn[onnx]"' in err
    assert len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ metadata and determinism
def _props(proto):
    return {p.key: p.value for p in proto.metadata_props}


def test_metadata_holds_classes_preprocessing_and_operating_point_but_nothing_else(tmp_path, onnx):
    model = pipeline.diagnosis_model((16, 16, 1), 2, "binary")
    model.metadata = {"image_size": [16, 16], "channels": 1, "task": "binary", "value_range": [0.0, 1.0],
                      "class_names": ["malignant", "normal, benign"], "positive_class": "malignant",
                      "decision_threshold": 0.37, "history": {"loss": [0.7]}, "train_seconds": 3.2,
                      "patient_id": "PAT-0042"}
    model.export(tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    props = _props(proto)
    from tinycnn import __version__

    assert props == {"channels": "1", "class_names": json.dumps(["malignant", "normal, benign"]),
                     "color": "grayscale", "decision_threshold": "0.37", "image_size": "[16, 16]",
                     "input_dtype": "float32", "input_layout": "NHWC", "input_shape": "[16, 16, 1]",
                     "output_activation": "sigmoid", "positive_class": "malignant", "task": "binary",
                     "tinycnn_version": __version__, "value_range": "[0.0, 1.0]"}
    assert [p.key for p in proto.metadata_props] == sorted(props)
    assert b"PAT-0042" not in (tmp_path / "m.onnx").read_bytes()
    assert (proto.producer_name, proto.producer_version, proto.ir_version) == ("tinycnn", __version__, 7)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 13)]
    model.metadata["decision_threshold"] = "high"
    with pytest.raises(ExportError, match="'decision_threshold' must be a finite number"):
        model.export(tmp_path / "bad.onnx")


def _trained_model_file(tmp_path):
    from tinycnn import data

    path = tmp_path / "synth.npz"
    data.save_synthetic_npz(path, n_train=48, n_val=16, n_test=16, image_size=32, seed=0)
    model, _, _ = pipeline.train(data.load_dataset(path), epochs=1, batch_size=16, verbose=0,
                                 out=tmp_path / "m.tcnn")
    return model, tmp_path / "m.tcnn"


def test_re_export_is_byte_identical_and_the_console_script_matches_it(tmp_path, onnx, ort):
    model, tcnn = _trained_model_file(tmp_path)
    model.export(tmp_path / "a.onnx")
    model.export(tmp_path / "b.onnx")
    load_model(tcnn).export(tmp_path / "c.onnx")
    exe = Path(sys.executable).with_name("tinycnn")  # the console script pip installed
    env = {k: v for k, v in os.environ.items() if k != "TINYCNN_BACKEND"}
    out = subprocess.run([str(exe), "export", "--model", str(tcnn), "--out", str(tmp_path / "d.onnx")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "ONNX Runtime vs tinycnn predict on 8 random inputs: largest difference" in out.stdout
    assert "FAILED" not in out.stdout and 'classes ["0", "1"]' in out.stdout  # an .npz names no classes
    a = (tmp_path / "a.onnx").read_bytes()
    for other in "bcd":
        assert (tmp_path / f"{other}.onnx").read_bytes() == a
    props = _props(onnx.load(str(tmp_path / "a.onnx")))
    assert props["class_names"] == '["0", "1"]' and props["value_range"] == "[0.0, 1.0]" and "history" not in props
    x = _random_images((32, 32, 1), seed=11)
    np.testing.assert_allclose(_onnxruntime(tmp_path / "d.onnx", x, ort), model.predict(x), rtol=TOL, atol=TOL)


def test_cli_export_of_a_missing_model_file_is_one_line(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path / "nope.tcnn"), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinycnn export: error:") and "nope.tcnn" in err


@pytest.mark.parametrize("layers", [
    [Flatten(input_shape=(4, 5, 2)), Dense(3, activation="sigmoid")],            # an MLP on images
    [Dense(4, activation="tanh", input_shape=(7,)), BatchNormalization(), Dense(2)],  # vectors in
    [Conv2D(3, 2, strides=2, padding="same", input_shape=(5, 7, 2)), BatchNormalization(),
     Activation("softmax")],                                                    # a feature map out (NHWC)
    [Dropout(0.5, input_shape=(3, 4, 2))],                                      # the input itself out
], ids=["flatten_first", "vectors", "feature_map_out", "identity"])
def test_inputs_and_outputs_of_other_shapes(layers, tmp_path, onnx, ort):
    model = Sequential(layers)
    x = np.random.default_rng(12).normal(0, 1, (3, *model.input_shape)).astype(np.float32)
    _export_and_compare(model, x, tmp_path / "m.onnx", onnx, ort)
