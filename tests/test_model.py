"""The Keras-shaped API: building, training to accuracy, files, seeds, callbacks, bad input."""

import numpy as np
import pytest

import tinycnn
from tinycnn import callbacks as C
from tinycnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, GlobalAveragePooling2D, MaxPooling2D
from tinycnn.models import Sequential, load_model
from tinycnn.random import set_random_seed


def blobs(n, size=16, seed=0):
    """Noise images; label 1 when a bright blob is present (a learnable task)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, (n, size, size, 1)).astype(np.float32)
    y = rng.integers(0, 2, n)
    for i in np.flatnonzero(y):
        r, c = rng.integers(2, size - 4, 2)
        x[i, r:r + 3, c:c + 3, 0] += 1.5
    return x, y


def small_model(size=16, out=1, act="sigmoid", dropout=False):
    layers = [Conv2D(8, 3, activation="relu", input_shape=(size, size, 1)), MaxPooling2D(),
              Conv2D(16, 3, activation="relu"), MaxPooling2D(), Flatten()]
    if dropout:
        layers.append(Dropout(0.25))
    layers += [Dense(16, activation="relu"), Dense(out, activation=act)]
    return Sequential(layers)


def test_seed_listing_summary_has_keras_parameter_count(capsys):
    model = Sequential()
    model.add(Conv2D(32, (3, 3), activation="relu", input_shape=(224, 224, 3)))
    model.add(MaxPooling2D((2, 2)))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPooling2D((2, 2)))
    model.add(Conv2D(128, (3, 3), activation="relu"))
    model.add(MaxPooling2D((2, 2)))
    model.add(Flatten())
    model.add(Dense(512, activation="relu"))
    model.add(Dense(1, activation="sigmoid"))
    model.summary()
    out = capsys.readouterr().out
    assert "Total params: 44,396,609" in out and "(None, 26, 26, 128)" in out
    assert model.count_params() == 44_396_609


def test_seed_listing_example_runs_and_learns():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "examples" / "keras_seed_listing.py"
    spec = importlib.util.spec_from_file_location("seed_listing", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    set_random_seed(0)
    loss, acc = mod.main(size=24, n_train=512, n_test=128, epochs=6)
    assert acc >= 0.9, (loss, acc)


def test_small_cnn_reaches_95_percent_on_blob_task():
    set_random_seed(0)
    x, y = blobs(800, seed=0)
    xt, yt = blobs(300, seed=1)
    model = small_model(dropout=True)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=8, batch_size=32, validation_split=0.1, verbose=0)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(hist.history["loss"]) == 8 and hist.history["loss"][-1] < hist.history["loss"][0]
    loss, acc = model.evaluate(xt, yt, verbose=0)
    assert acc >= 0.95, acc
    p = model.predict(xt)
    assert p.shape == (300, 1) and np.all((p >= 0) & (p <= 1))
    assert ((p[:, 0] >= 0.5) == yt).mean() == pytest.approx(acc)


def test_multiclass_softmax_and_evaluate_conventions():
    set_random_seed(1)
    x, yb = blobs(300, seed=2)
    y = yb + 2 * (x.mean(axis=(1, 2, 3)) > np.median(x.mean(axis=(1, 2, 3))))  # 4 classes
    model = small_model(out=4, act="softmax")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    res = model.evaluate(x, y, verbose=0)
    assert isinstance(res, list) and len(res) == 2
    d = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(d) == {"loss", "accuracy"}
    model.compile("sgd", "categorical_crossentropy")
    assert isinstance(model.evaluate(x, np.eye(4)[y], verbose=0), float)
    np.testing.assert_allclose(model.predict(x).sum(axis=1), 1, rtol=1e-5)


def test_same_seed_same_weights_and_same_run():
    def run():
        set_random_seed(42)
        x, y = blobs(96, seed=3)
        m = small_model(dropout=True)
        m.compile("adam", "binary_crossentropy")
        h = m.fit(x, y, epochs=2, batch_size=16, verbose=0)
        return m.get_weights(), h.history["loss"]

    (w1, l1), (w2, l2) = run(), run()
    assert l1 == l2
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_array_equal(a, b)


def test_save_load_predicts_bit_identically_and_resumes_optimizer(tmp_path):
    set_random_seed(5)
    x, y = blobs(64, seed=4)
    m = Sequential([Conv2D(4, 3, activation="relu", input_shape=(16, 16, 1)), BatchNormalization(),
                    GlobalAveragePooling2D(), Dense(1, activation="sigmoid")])
    m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    m.fit(x, y, epochs=1, verbose=0)
    m.save(tmp_path / "m.tcnn")
    m2 = load_model(tmp_path / "m.tcnn")
    np.testing.assert_array_equal(m.predict(x), m2.predict(x))
    assert m2.optimizer.iterations == m.optimizer.iterations
    # one more identical step on both: the optimizer state came back too
    l1, l2 = m.train_on_batch(x[:8], y[:8]), m2.train_on_batch(x[:8], y[:8])
    assert l1 == l2
    for a, b in zip(m.get_weights(), m2.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_file_never_unpickles(tmp_path):
    import zipfile

    m = small_model()
    m.compile("adam", "binary_crossentropy")
    path = tmp_path / "m.tcnn"
    m.save(path)
    raw = zipfile.ZipFile(path).namelist()
    assert "__meta__.npy" in raw and all(n.endswith(".npy") for n in raw)
    bad = tmp_path / "bad.tcnn"
    np.savez(bad, __meta__=np.array([{"evil": 1}], dtype=object), __checksum__=np.zeros(3, np.uint8))
    with pytest.raises(tinycnn.ModelFileError):
        load_model(bad)


def test_callbacks_early_stopping_checkpoint_csv_reduce_lr(tmp_path):
    set_random_seed(3)
    x, y = blobs(200, seed=5)
    m = small_model()
    m.compile(tinycnn.optimizers.Adam(learning_rate=0.003), "binary_crossentropy", metrics=["accuracy"])
    es = C.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    ck = C.ModelCheckpoint(tmp_path / "best.tcnn", monitor="val_accuracy", save_best_only=True)
    csv = C.CSVLogger(tmp_path / "log.csv")
    rl = C.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_delta=10.0)
    h = m.fit(x, y, epochs=6, validation_split=0.25, callbacks=[es, ck, csv, rl], verbose=0)
    n = len(h.history["loss"])
    lines = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert len(lines) == n + 1 and lines[0].startswith("epoch,")
    assert (tmp_path / "best.tcnn").exists()
    # the first epoch improves on "no value yet"; with min_delta=10 no later epoch does
    assert m.optimizer.learning_rate == pytest.approx(0.003 * 0.5 ** (n - 1))
    if es.stopped_epoch is not None:
        best = int(np.argmin(h.history["val_loss"]))
        assert es.best == pytest.approx(h.history["val_loss"][best])


def test_model_checkpoint_save_weights_only_leaves_out_the_optimizer_state(tmp_path):
    import zipfile

    x, y = blobs(32, seed=7)
    m = small_model()
    m.compile("adam", "binary_crossentropy")
    full = C.ModelCheckpoint(tmp_path / "full-{epoch}.tcnn", monitor="loss")
    light = C.ModelCheckpoint(tmp_path / "light-{epoch}.tcnn", monitor="loss", save_weights_only=True)
    m.fit(x, y, epochs=1, batch_size=16, callbacks=[full, light], verbose=0)
    names = {p: zipfile.ZipFile(tmp_path / p).namelist() for p in ("full-1.tcnn", "light-1.tcnn")}
    assert any(n.startswith("opt/") for n in names["full-1.tcnn"])
    assert not any(n.startswith("opt/") for n in names["light-1.tcnn"])
    assert (tmp_path / "light-1.tcnn").stat().st_size < 0.5 * (tmp_path / "full-1.tcnn").stat().st_size
    loaded = load_model(tmp_path / "light-1.tcnn")
    np.testing.assert_array_equal(loaded.predict(x), m.predict(x))


def test_class_weight_balanced_changes_the_loss():
    x, y = blobs(64, seed=6)
    y[:48] = 0
    m = small_model()
    m.compile("sgd", "binary_crossentropy")
    w0 = m.get_weights()
    plain = m.fit(x, y, epochs=1, verbose=0, shuffle=False).history["loss"][0]
    m.set_weights(w0)
    m.optimizer = tinycnn.optimizers.SGD()
    weighted = m.fit(x, y, epochs=1, verbose=0, shuffle=False, class_weight="balanced").history["loss"][0]
    assert plain != weighted


@pytest.mark.parametrize("backend_name", ["numpy", "cpu"])
def test_training_never_writes_into_arrays_given_to_set_weights(backend_name):
    from tinycnn.backend import use_backend

    x, y = blobs(16, seed=3)
    with use_backend(backend_name):
        m = Sequential([Conv2D(4, 3, activation="relu", input_shape=(16, 16, 1)), BatchNormalization(),
                        MaxPooling2D(), Flatten(), Dense(1, activation="sigmoid")])  # BN: moving stats too
        m.compile("adam", "binary_crossentropy")
        given = [w.astype(np.float32) for w in m.get_weights()]
        kept = [w.copy() for w in given]
        m.set_weights(given)
        m.train_on_batch(x, y)
        assert any(not np.array_equal(a, b) for a, b in zip(m.get_weights(), kept, strict=True))
    for a, b in zip(given, kept, strict=True):
        np.testing.assert_array_equal(a, b)


def test_backend_switch_keeps_the_model(tmp_path):
    from tinycnn.backend import use_backend

    set_random_seed(9)
    x, y = blobs(32, seed=7)
    m = small_model()
    m.compile("adam", "binary_crossentropy")
    with use_backend("numpy"):
        m.fit(x, y, epochs=1, verbose=0)
        p_ref = m.predict(x)
    np.testing.assert_allclose(m.predict(x), p_ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("bad, err", [
    (np.zeros((4, 16, 16)), tinycnn.ShapeError),           # missing channel axis
    (np.zeros((4, 16, 15, 1)), tinycnn.ShapeError),        # wrong size
    (np.full((4, 16, 16, 1), np.nan), tinycnn.InvalidValueError),
    (np.zeros((4, 16, 16, 1), dtype=complex), tinycnn.DTypeError),
    (np.array(["a"] * 4), tinycnn.DTypeError),
    (np.zeros((0, 16, 16, 1)), tinycnn.InvalidValueError),
])
def test_bad_inputs_raise_clear_errors(bad, err):
    m = small_model()
    m.compile("adam", "binary_crossentropy")
    with pytest.raises(err):
        m.fit(bad, np.zeros(len(bad)), verbose=0)
    with pytest.raises(err):
        m.predict(bad)


def test_bad_labels_names_and_order_raise_clear_errors():
    x, y = blobs(8)
    m = small_model()
    with pytest.raises(tinycnn.ConfigError, match="compile"):
        m.fit(x, y)
    m.compile("adam", "binary_crossentropy")
    with pytest.raises(tinycnn.ShapeError, match="labels"):
        m.fit(x, np.zeros((8, 3)), verbose=0)
    with pytest.raises(tinycnn.ShapeError):
        m.fit(x, y[:5], verbose=0)
    with pytest.raises(tinycnn.InvalidValueError):
        m.fit(x, y + 3, verbose=0)
    with pytest.raises(tinycnn.ConfigError, match="activation"):
        Dense(3, activation="relux")
    with pytest.raises(tinycnn.ConfigError, match="loss"):
        m.compile("adam", "crossentropy-ish")
    with pytest.raises(tinycnn.ConfigError, match="optimizer"):
        m.compile("adagrad-ish", "mse")
    with pytest.raises(tinycnn.ConfigError):
        Conv2D(0, 3)
    with pytest.raises(tinycnn.ConfigError):
        Conv2D(4, 3, padding="full")
    m2 = small_model(out=3, act="softmax")
    m2.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(tinycnn.InvalidValueError, match="labels must lie"):
        m2.fit(x, np.full(8, 3), verbose=0)
    with pytest.raises(tinycnn.ConfigError):
        m2.fit(x, np.zeros(8), batch_size=0, verbose=0)


def test_nan_loss_stops_training_and_keeps_last_good_weights():
    x, y = blobs(32)
    m = small_model()
    m.compile(tinycnn.optimizers.SGD(learning_rate=0.1), "mse")
    m.fit(x, y, epochs=1, verbose=0)
    good = m.get_weights()
    m.layers[0].params["kernel"][0, 0, 0, 0] = np.nan  # corrupt one weight: the loss becomes nan
    corrupted = m.get_weights()
    with pytest.raises(tinycnn.TrainingError, match="loss became"):
        m.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(m.get_weights(), corrupted, strict=True):
        np.testing.assert_array_equal(a, b)  # no update was applied after the bad loss
    assert len(good) == len(corrupted)
