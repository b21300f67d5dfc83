"""Composite layers (ResidualBlock, Ensemble): flat views of their sublayers' weights, and
everything built on a layer's dicts (optimizers, save/load, checkpoints, backend moves, dtypes)
working on them unchanged. Their gradient checks are in test_gradients.py."""

import numpy as np
import pytest

from tinycnn import use_backend
from tinycnn.errors import ConfigError, ShapeError
from tinycnn.layers import (
    BatchNormalization,
    Conv2D,
    Dense,
    Ensemble,
    GlobalAveragePooling2D,
    ResidualBlock,
)
from tinycnn.models import Sequential, load_model
from tinycnn.random import set_random_seed


def res_model(shape=(9, 9, 2), k=1, seed=0):
    set_random_seed(seed)
    act = "sigmoid" if k == 1 else "softmax"
    # named: a checkpoint is resumed only into a model of the same architecture, names included
    return Sequential([Conv2D(4, 3, padding="same", input_shape=shape, name="stem"), BatchNormalization(name="bn"),
                       ResidualBlock(4, name="res1"), ResidualBlock(6, strides=2, name="res2"),
                       GlobalAveragePooling2D(name="gap"), Dense(k, activation=act, name="head")])


def data(n=24, shape=(9, 9, 2), seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = (x[:, :4, :4].mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    return x, y


def test_residual_block_shapes_and_shortcut_choice():
    m = res_model()
    same, down = m.layers[2], m.layers[3]
    assert same.output_shape == (9, 9, 4) and not same.projects
    assert down.output_shape == (5, 5, 6) and down.projects  # 'same' with stride 2 rounds up
    assert sorted(same.params) == ["bn1.beta", "bn1.gamma", "bn2.beta", "bn2.gamma", "conv1.kernel", "conv2.kernel"]
    assert {"proj.kernel", "proj_bn.gamma", "proj_bn.beta"} <= set(down.params)
    assert sorted(down.state) == sorted(f"{b}.{s}" for b in ("bn1", "bn2", "proj_bn")
                                        for s in ("moving_mean", "moving_variance"))
    assert same.count_params() == 2 * 3 * 3 * 4 * 4 + 4 * 4


def test_views_are_live_both_ways():
    blk = res_model().layers[2]
    conv1 = blk.sublayers[0]
    assert blk.params["conv1.kernel"] is conv1.params["kernel"]
    new = np.ones_like(conv1.params["kernel"])
    blk.params["conv1.kernel"] = new
    assert conv1.params["kernel"] is new
    blk.grads = {k: None for k in blk.params}
    assert conv1.grads["kernel"] is None
    with pytest.raises(KeyError):
        blk.params["conv9.kernel"]
    with pytest.raises(TypeError):
        del blk.params["conv1.kernel"]


def test_a_training_step_updates_the_sublayers_in_place():
    m = res_model()
    m.compile("adam", "binary_crossentropy")
    x, y = data()
    blk = m.layers[3]
    before = {k: np.array(v) for k, v in blk.params.items()}
    stats = np.array(blk.state["proj_bn.moving_mean"])
    m.train_on_batch(x, y)
    for k, v in blk.params.items():
        assert not np.array_equal(v, before[k]), k
    assert not np.array_equal(blk.state["proj_bn.moving_mean"], stats)
    assert (3, "proj.kernel") in m.optimizer.slots


def test_get_set_weights_round_trip_and_wrong_counts():
    m, m2 = res_model(seed=0), res_model(seed=1)
    m2.set_weights(m.get_weights())
    x, _ = data()
    np.testing.assert_array_equal(m.predict(x), m2.predict(x))
    with pytest.raises(ShapeError):
        m.layers[2].set_weights(m.layers[2].get_weights()[:-1])


def test_save_load_predicts_bit_identically_and_resumes(tmp_path):
    m = res_model()
    m.compile("adam", "binary_crossentropy")
    x, y = data()
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    m.save(tmp_path / "r.tcnn")
    m2 = load_model(tmp_path / "r.tcnn")
    assert isinstance(m2.layers[3], ResidualBlock) and m2.layers[3].strides == (2, 2)
    np.testing.assert_array_equal(m.predict(x), m2.predict(x))
    assert m.train_on_batch(x[:8], y[:8]) == m2.train_on_batch(x[:8], y[:8])
    for a, b in zip(m.get_weights(), m2.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_resume_equals_an_uninterrupted_run(tmp_path):
    x, y = data()
    full = res_model(seed=3)
    full.compile("adam", "binary_crossentropy")
    set_random_seed(7)
    full.fit(x, y, epochs=2, batch_size=8, verbose=0)
    part = res_model(seed=3)
    part.compile("adam", "binary_crossentropy")
    set_random_seed(7)
    ck = tmp_path / "ck.tcnn"
    part.fit(x, y, epochs=1, batch_size=8, verbose=0, checkpoint=ck)
    resumed = res_model(seed=11)
    resumed.compile("adam", "binary_crossentropy")
    resumed.fit(x, y, epochs=2, batch_size=8, verbose=0, checkpoint=ck, resume=True)
    for a, b in zip(full.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_backend_move_and_float64():
    x, y = data()
    with use_backend("numpy"):
        m = res_model()
        m.compile("adam", "binary_crossentropy")
        m.fit(x, y, epochs=1, batch_size=8, verbose=0)
        p_ref = m.predict(x)
    with use_backend("cpu"):
        np.testing.assert_allclose(m.predict(x), p_ref, rtol=1e-4, atol=1e-5)
        m.set_dtype("float64")
        assert all(a.dtype == np.float64 for a in m.layers[3].params.values())
        np.testing.assert_allclose(m.predict(x), p_ref, rtol=1e-4, atol=1e-5)


def test_bad_arguments_are_tinycnn_errors():
    with pytest.raises(ConfigError):
        ResidualBlock(0)
    with pytest.raises(ConfigError):
        ResidualBlock(4, strides=0)
    with pytest.raises(ConfigError):
        ResidualBlock(4, momentum=1.0)
    with pytest.raises(ShapeError):
        Sequential([Dense(3, input_shape=(5,)), ResidualBlock(4)])


# --------------------------------------------------------------------------- Ensemble
def test_ensemble_is_the_mean_of_its_members_and_one_file(tmp_path):
    x, _ = data()
    members = [res_model(k=3, seed=s) for s in (0, 1, 2)]
    expected = np.mean([m.predict(x) for m in members], axis=0)
    ens = Sequential([Ensemble(members)])
    assert ens.output_shape == (3,) and ens.count_params() == sum(m.count_params() for m in members)
    np.testing.assert_allclose(ens.predict(x), expected, rtol=1e-6, atol=1e-7)
    ens.compile("adam", "sparse_categorical_crossentropy")
    ens.save(tmp_path / "e.tcnn")
    back = load_model(tmp_path / "e.tcnn")
    np.testing.assert_array_equal(back.predict(x), ens.predict(x))
    assert len(back.layers[0].members) == 3


def test_ensemble_test_time_flips_average_the_mirrored_views_at_inference_only(tmp_path):
    x, _ = data()
    members = [res_model(k=3, seed=s) for s in (0, 1)]
    views = (x, x[:, :, ::-1], x[:, ::-1])
    expected = np.mean([m.predict(np.ascontiguousarray(v)) for m in members for v in views], axis=0)
    ens = Sequential([Ensemble(members, flips=["horizontal", "vertical"])])
    np.testing.assert_allclose(ens.predict(x), expected, rtol=1e-5, atol=1e-7)
    ens.compile("adam", "sparse_categorical_crossentropy")
    ens.save(tmp_path / "f.tcnn")
    back = load_model(tmp_path / "f.tcnn")
    assert back.layers[0].flips == ("horizontal", "vertical")
    np.testing.assert_array_equal(back.predict(x), ens.predict(x))
    # training sees the images as they are (batch statistics of the N images, not of 3N views)
    got = np.array(ens.layers[0].forward(x, training=True))
    want = []
    for m in members:
        h = x
        for layer in m.layers:
            h = layer.forward(h, training=True)
        want.append(np.array(h))
    np.testing.assert_allclose(got, np.mean(want, axis=0), rtol=1e-5, atol=1e-7)
    with pytest.raises(ConfigError):
        Ensemble(members, flips="horizontal")
    with pytest.raises(ConfigError):
        Ensemble(members, flips=["diagonal"])


def test_ensemble_refuses_bad_members():
    with pytest.raises(ConfigError):
        Ensemble([])
    with pytest.raises(ConfigError):
        Ensemble([Dense(3)])
    with pytest.raises(ShapeError):
        Sequential([Ensemble([res_model(k=1), res_model(k=3)])])


def test_layer_hooks_reach_the_sublayers():
    """preserved() restores every sublayer's gradients and contexts; release_context() drops
    them; a seeded Dropout inside an ensemble member keeps its random stream in checkpoints."""
    from tinycnn.layers import Dropout, Flatten

    x, y = data()
    m = res_model()
    m.compile("adam", "binary_crossentropy")
    m.train_on_batch(x, y)
    blk = m.layers[3]
    grads = {k: np.array(v) for k, v in blk.grads.items()}
    with m.preserved():
        m.forward(x, training=True)
        m.backward(np.ones((len(x), 1), np.float32))
    for k, g in blk.grads.items():
        np.testing.assert_array_equal(g, grads[k])
    blk.forward(m.forward(x, stop=3), training=True)
    blk.release_context()
    assert all(layer._ctx is None for layer in blk.sublayers)  # noqa: SLF001 - what release_context promises

    def member(seed):
        set_random_seed(seed)
        return Sequential([Flatten(input_shape=(9, 9, 2)), Dropout(0.5, seed=7), Dense(1, activation="sigmoid")])

    ens = Ensemble([member(0), member(1)])
    state = ens.get_random_state()
    assert sorted(state) == ["m0_1", "m1_1"]
    ens.members[0].layers[1].forward(x.reshape(len(x), -1), training=True)  # advances member 0's stream
    assert ens.get_random_state() != state
    ens.set_random_state(state)
    assert ens.get_random_state() == state
    assert res_model().layers[2].get_random_state() is None
