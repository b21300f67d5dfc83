"""Float64 gradient checks of every layer and of whole models, shapes chosen by Hypothesis."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from tinycnn.kernels.shapes import conv_geometry

from tinycnn.gradcheck import gradcheck
from tinycnn.layers import (
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    LeakyReLU,
    MaxPooling2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from tinycnn.models import Sequential

TOL = 1e-6  # the bar `python -m tinycnn gradcheck` holds every layer to


def _x(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


@given(n=st.integers(1, 2), h=st.integers(1, 7), w=st.integers(1, 7), c=st.integers(1, 3),
       f=st.integers(1, 3), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
       sw=st.integers(1, 3), padding=st.sampled_from(["valid", "same"]),
       act=st.sampled_from([None, "relu", "sigmoid", "tanh", "softmax"]), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_conv2d_gradients(n, h, w, c, f, kh, kw, sh, sw, padding, act, bias, seed):
    OH, OW, _ = conv_geometry(h, w, kh, kw, (sh, sw), padding)
    assume(OH >= 1 and OW >= 1)
    layer = Conv2D(f, (kh, kw), strides=(sh, sw), padding=padding, activation=act, use_bias=bias)
    res = gradcheck(layer, _x(seed, (n, h, w, c)))
    assert res.ok(TOL), res.errors


@given(h=st.integers(1, 8), w=st.integers(1, 8), ph=st.integers(1, 3), pw=st.integers(1, 3),
       sh=st.integers(1, 3), sw=st.integers(1, 3), padding=st.sampled_from(["valid", "same"]),
       seed=st.integers(0, 2**16))
def test_maxpool_gradients(h, w, ph, pw, sh, sw, padding, seed):
    OH, OW, _ = conv_geometry(h, w, ph, pw, (sh, sw), padding)
    assume(OH >= 1 and OW >= 1)
    res = gradcheck(MaxPooling2D((ph, pw), strides=(sh, sw), padding=padding), _x(seed, (2, h, w, 2)))
    assert res.ok(TOL), res.errors


@pytest.mark.parametrize("layer_fn, shape", [
    (lambda: Dense(3, activation="relu"), (4, 5)),
    (lambda: Dense(4, activation="softmax", use_bias=False), (3, 6)),
    (lambda: Dense(2, activation="tanh"), (2, 7)),
    (lambda: BatchNormalization(momentum=0.9), (4, 3, 2, 3)),
    (lambda: BatchNormalization(), (5, 4)),
    (lambda: GlobalAveragePooling2D(), (2, 3, 4, 5)),
    (lambda: Flatten(), (2, 3, 2, 2)),
    (lambda: Dropout(0.4), (3, 4, 4, 2)),
    (lambda: ReLU(), (3, 5)),
    (lambda: LeakyReLU(negative_slope=0.2), (3, 5)),
    (lambda: Sigmoid(), (3, 5)),
    (lambda: Tanh(), (3, 5)),
    (lambda: Softmax(), (3, 5)),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_layer_gradients(layer_fn, shape, seed):
    res = gradcheck(layer_fn(), _x(seed, shape))
    assert res.ok(TOL), res.errors


def test_even_kernel_same_padding_and_large_tensor_random_directions():
    layer = Conv2D(6, (4, 2), strides=(2, 1), padding="same", activation="tanh")
    res = gradcheck(layer, _x(3, (2, 9, 8, 5)), max_elements=50, n_directions=10)
    assert res.ok(TOL), res.errors


LOSS_HEADS = [("binary_crossentropy", "sigmoid", 1), ("binary_focal_crossentropy", "sigmoid", 1),
              ("categorical_crossentropy", "softmax", 3), ("sparse_categorical_crossentropy", "softmax", 3),
              ("mse", "linear", 2), ("binary_crossentropy", "linear-logits", 1)]


@pytest.mark.parametrize("loss, head, k", LOSS_HEADS)
def test_whole_model_gradients(loss, head, k):
    from tinycnn.losses import BinaryCrossentropy

    model = Sequential([Conv2D(3, 3, activation="relu", input_shape=(6, 7, 2)), BatchNormalization(),
                        MaxPooling2D(2, padding="same"), Conv2D(2, 2, padding="same", activation="tanh"),
                        Flatten(), Dense(4, activation="relu"),
                        Dense(k, activation=None if head.startswith("linear") else head)])
    loss_obj = BinaryCrossentropy(from_logits=True) if head == "linear-logits" else loss
    model.compile("adam", loss_obj)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 6, 7, 2))
    if loss == "sparse_categorical_crossentropy":
        y = np.array([0, 2, 1])
    elif loss == "categorical_crossentropy":
        y = np.eye(3)[[1, 0, 2]]
    elif loss == "mse":
        y = rng.standard_normal((3, 2))
    else:
        y = np.array([0, 1, 1])
    res = gradcheck(model, x, y)
    assert res.ok(TOL), res.errors


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    """The check must be able to fail: break the relu derivative and watch it."""
    from tinycnn.kernels import reference as R

    orig = R._act_grad

    def broken(dy, z, y, kind, alpha=0.0):
        g = orig(dy, z, y, kind, alpha)
        return g * 1.01 if kind == "relu" else g

    monkeypatch.setattr(R, "_act_grad", broken)
    res = gradcheck(Dense(3, activation="relu"), _x(0, (4, 5)))
    assert not res.ok(TOL)


def test_gradcheck_command_passes_and_prints_a_table(capsys):
    from tinycnn.cli import main

    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "Conv2D" in out and "model + sparse_categorical_crossentropy" in out and "yes" in out


# --------------------------------------------------------------------------- composite layers
@pytest.mark.parametrize("backend_name", ["numpy", "cpu"])
@pytest.mark.parametrize("filters, strides, shape", [
    (2, 1, (3, 5, 6, 2)),       # identity shortcut
    (3, 1, (3, 5, 6, 2)),       # 1x1 projection: more channels
    (3, 2, (2, 7, 5, 2)),       # projection with stride 2, odd sizes
    (2, (2, 1), (2, 6, 5, 2)),  # unequal strides
])
def test_residual_block_gradients(backend_name, filters, strides, shape):
    from tinycnn.layers import ResidualBlock

    res = gradcheck(ResidualBlock(filters, strides=strides, momentum=0.9), _x(4, shape), backend_name=backend_name)
    assert res.ok(TOL), res.errors


@pytest.mark.parametrize("backend_name", ["numpy", "cpu"])
@pytest.mark.parametrize("flips", [(), ("horizontal", "vertical")])
def test_ensemble_of_residual_models_gradients(backend_name, flips):
    """A whole model whose one layer averages two members, each with a residual block (and, at
    inference, where the model gradient is checked, over flipped views of the images)."""
    from tinycnn.layers import Ensemble, ResidualBlock

    def member():
        return Sequential([Conv2D(2, 3, input_shape=(6, 5, 2)), BatchNormalization(), ResidualBlock(3, strides=2),
                           GlobalAveragePooling2D(), Dense(3, activation="softmax")])

    model = Sequential([Ensemble([member(), member()], flips=flips)])
    model.compile("adam", "sparse_categorical_crossentropy")
    res = gradcheck(model, _x(5, (3, 6, 5, 2)), np.array([0, 2, 1]), backend_name=backend_name)
    assert res.ok(TOL), res.errors
