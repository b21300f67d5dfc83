"""The default recipe: settings derived from the data, the residual network, ensembles in one
file, and the real-data check on BreastMNIST."""

import pathlib
import time

import numpy as np
import pytest

from tinycnn import data, pipeline, recipe
from tinycnn.errors import ConfigError
from tinycnn.layers import Conv2D, Ensemble, ResidualBlock
from tinycnn.models import load_model

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def splits_of(n, shape=(28, 28, 1), task="binary", k=2, source="", seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *shape), dtype=np.float32)
    y = rng.integers(0, k, n) if task != "multilabel" else rng.integers(0, 2, (n, k))
    part = (x, y)
    names = ["normal", "lesion"] if k == 2 else [f"class{i}" for i in range(k)]  # binary: the positive by name
    return data.DataSplits(train=part, val=part, test=None, class_names=names,
                           task=task, num_classes=k, source=source)


@pytest.mark.parametrize("source, modality, hflip, vflip", [
    ("/x/breastmnist.npz", "ultrasound", True, False),
    ("retinamnist_224.npz", "fundus", True, True),
    ("PneumoniaMNIST.npz", "chest_xray", False, False),
    ("organamnist.npz", "ct", False, False),
    ("pathmnist.npz", "histology", True, True),
    ("my_xrays/", None, False, False),
])
def test_modality_from_the_file_name_sets_the_flips(source, modality, hflip, vflip):
    r = recipe.for_data(splits_of(10, source=source))
    assert r.modality == modality
    assert (r.augment["horizontal_flip"], r.augment["vertical_flip"]) == (hflip, vflip)


def test_small_sets_get_an_ensemble_and_large_ones_a_bounded_budget():
    small = recipe.for_data(splits_of(546))
    assert (small.ensemble, small.epochs) == (recipe.ENSEMBLE, recipe.MAX_EPOCHS)
    # 100k images: one model, and training images presented stay within the budget
    big = recipe.for_data(_fake_sized(100_000, (28, 28, 3)))
    assert big.ensemble == 1 and big.epochs * 100_000 <= recipe.IMAGE_BUDGET
    # in between: as many members as get MIN_ENSEMBLE_EPOCHS each, within the budget
    mid = recipe.for_data(_fake_sized(5_000, (28, 28, 1)))
    assert 1 < mid.ensemble < recipe.ENSEMBLE and mid.epochs >= recipe.MIN_ENSEMBLE_EPOCHS
    assert mid.ensemble * mid.epochs * 5_000 <= recipe.IMAGE_BUDGET
    assert (mid.ensemble + 1) * recipe.MIN_ENSEMBLE_EPOCHS * 5_000 > recipe.IMAGE_BUDGET
    # larger images cost more per step: fewer epochs, more pooling in the stem
    large = recipe.for_data(_fake_sized(2_000, (224, 224, 1)))
    assert large.pools == 4 and large.epochs * 2_000 * (224 * 224) <= recipe.IMAGE_BUDGET * 28 * 28


def _fake_sized(n, shape):
    """DataSplits with n training images of ``shape`` without allocating them."""
    x = np.broadcast_to(np.zeros(shape, np.float32), (n, *shape))
    return data.DataSplits(train=(x, np.zeros(n, int)), val=None, test=None, class_names=["0", "1"],
                           task="binary", num_classes=2)


def test_unknown_modality_and_bad_settings_are_refused():
    with pytest.raises(ConfigError):
        recipe.for_data(splits_of(10), modality="sonar")
    with pytest.raises(ConfigError):
        pipeline.train(splits_of(10), ensemble=0, verbose=0)
    with pytest.raises(ConfigError):
        pipeline.train(splits_of(10), model=recipe.residual_cnn((28, 28, 1)), ensemble=2, verbose=0)


@pytest.mark.parametrize("shape, task, k, units, final", [
    ((28, 28, 1), "binary", 2, 1, (7, 7, 64)),
    ((28, 28, 3), "multiclass", 5, 5, (7, 7, 64)),
    ((64, 64, 1), "multilabel", 14, 14, (8, 8, 64)),
])
def test_residual_cnn_shapes(shape, task, k, units, final):
    m = recipe.residual_cnn(shape, k, task, pools=recipe.stem_pools(*shape[:2]))
    blocks = [layer for layer in m.layers if isinstance(layer, ResidualBlock)]
    assert blocks[-1].output_shape == final
    assert m.output_shape == (units,)


def test_ensemble_training_gives_one_file_and_resumes_member_by_member(tmp_path):
    s = splits_of(48, seed=1)
    r = recipe.for_data(s).replace(epochs=2, ensemble=2, width=4)
    model, hist, _ = pipeline.train(s, recipe=r, verbose=0, seed=3, out=tmp_path / "e.tcnn",
                                    checkpoint=tmp_path / "ck.tcnn")
    ens = model.layers[0]
    assert isinstance(ens, Ensemble) and len(ens.members) == 2
    assert (tmp_path / "ck-1of2.tcnn").exists() and (tmp_path / "ck-2of2.tcnn").exists()
    w0, w1 = (m.get_weights()[0] for m in ens.members)
    assert not np.array_equal(w0, w1)  # different seeds
    assert len(hist.history["loss"]) == 2
    back = load_model(tmp_path / "e.tcnn")
    np.testing.assert_array_equal(back.predict(s.train[0]), model.predict(s.train[0]))
    assert back.metadata["recipe"]["ensemble"] == 2
    # member 0 of an ensemble is the single model of the same seed
    single, _, _ = pipeline.train(s, recipe=r.replace(ensemble=1), verbose=0, seed=3)
    np.testing.assert_array_equal(single.get_weights()[0], w0)
    # the second member's checkpoint lost: resuming retrains only it, to the same weights
    (tmp_path / "ck-2of2.tcnn").unlink()
    again, _, _ = pipeline.train(s, recipe=r, verbose=0, seed=3, checkpoint=tmp_path / "ck.tcnn", resume=True)
    for a, b in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_grad_cam_of_an_ensemble_is_the_mean_of_its_members_maps():
    from tinycnn import explain

    s = splits_of(24, shape=(16, 16, 1), seed=2)
    model, _, _ = pipeline.train(s, recipe=recipe.for_data(s).replace(epochs=1, ensemble=2, width=4), verbose=0)
    x = s.train[0][:5]
    cams = explain.grad_cam(model, x)
    members = [explain.grad_cam(m, x) for m in model.layers[0].members]
    np.testing.assert_allclose(cams, explain._normalise(np.mean(members, axis=0)), rtol=1e-6)


@pytest.mark.skipif(not (SHARED / "breastmnist.npz").exists(),
                    reason=f"the real MedMNIST file {SHARED / 'breastmnist.npz'} is absent")
def test_default_recipe_on_real_breastmnist():
    """The default recipe, shortened to one model of 20 epochs so that it fits CI (5-35 s on 2
    shared cores), still reaches a test AUC of 0.85 on the official test split (deterministic:
    one seed, the same numbers every run)."""
    splits = data.load_dataset(str(SHARED / "breastmnist.npz"))
    t0 = time.perf_counter()
    model, _, rep = pipeline.train(splits, epochs=20, ensemble=1, seed=0, verbose=0)
    seconds = time.perf_counter() - t0
    assert model.metadata["recipe"]["modality"] == "ultrasound"
    assert rep["auc"] >= 0.85, (rep["auc"], seconds)


def test_grad_cam_default_layer_is_the_last_conv2d_or_residual_block():
    from tinycnn import explain
    from tinycnn.layers import Dense, GlobalAveragePooling2D
    from tinycnn.models import Sequential

    x = np.random.default_rng(4).random((3, 12, 12, 1), dtype=np.float32)
    m = Sequential([Conv2D(4, 3, input_shape=(12, 12, 1)), ResidualBlock(4, name="block"), GlobalAveragePooling2D(),
                    Dense(1, activation="sigmoid")])
    np.testing.assert_array_equal(explain.grad_cam(m, x), explain.grad_cam(m, x, layer="block"))
    r = recipe.residual_cnn((12, 12, 1), width=4)
    np.testing.assert_array_equal(explain.grad_cam(r, x), explain.grad_cam(r, x, layer="head_conv"))


def test_test_time_flips_follow_the_training_flips():
    s = splits_of(16, seed=5, source="breastmnist.npz")  # ultrasound: left-right flips only
    r = recipe.for_data(s).replace(epochs=1, ensemble=1, width=4)
    model, _, _ = pipeline.train(s, recipe=r, verbose=0)
    assert isinstance(model.layers[0], Ensemble) and model.layers[0].flips == ("horizontal",)
    plain, _, _ = pipeline.train(s, recipe=r, augment=None, verbose=0)  # trained without flips: none at test
    assert isinstance(plain.layers[0], Conv2D)
    off, _, _ = pipeline.train(s, recipe=r.replace(test_time_flips=False), verbose=0)
    assert not isinstance(off.layers[0], Ensemble)


def test_the_default_model_exports_to_onnx_and_predicts_the_same(tmp_path):
    """An ensemble of residual networks with test-time flips, as ONNX (ResidualBlock describes
    its graph; Ensemble has a converter: members, mirrored views, their mean)."""
    ort = pytest.importorskip("onnxruntime")
    from tinycnn.export import export_onnx

    s = splits_of(16, shape=(12, 12, 3), task="multiclass", k=3, source="retinamnist.npz", seed=6)
    model, _, _ = pipeline.train(s, recipe=recipe.for_data(s).replace(epochs=1, ensemble=2, width=4), verbose=0)
    assert model.layers[0].flips == ("horizontal", "vertical")
    export_onnx(model, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    x = s.train[0][:5]
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-6)
    import onnx

    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert props["output_activation"] == "softmax"  # the mean of the members' softmax outputs
