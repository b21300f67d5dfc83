"""Conv2D -> activation -> MaxPooling2D fused (``cpu`` backend, :mod:`tinycnn.kernels._cpu_convpool`)
and the model's plan that uses it (:mod:`tinycnn.layers.fused`).

The fused op computes the same sums in the same order as the two layers on the direct path, so
its pooled output and its weight and input gradients are compared bit for bit; the bias
gradient sums the same float32 values in another order (in float64), so it is compared to
1 ulp of float32.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tinycnn.kernels import _cpu_direct
from tinycnn.kernels import cpu as K

import tinycnn
from tinycnn.layers import Conv2D, Dense, Flatten, MaxPooling2D, fused
from tinycnn.models import Sequential


@pytest.fixture(autouse=True)
def _direct_on(monkeypatch):
    monkeypatch.setattr(_cpu_direct, "ENABLED", True)  # tested on every CPU (see test_cpu_conv_algorithms)


@st.composite
def cases(draw):
    N = draw(st.integers(1, 3))
    C = draw(st.sampled_from([1, 3, 16, 32]))
    F = draw(st.sampled_from([16, 32, 48, 64, 96]))
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pool = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    H = draw(st.integers(KH + pool[0] - 1, 11))  # at least one pooled row, odd sizes included
    W = draw(st.integers(KW + pool[1] - 1, 13))
    act = draw(st.sampled_from(["linear", "relu", "sigmoid", "tanh"]))
    return (N, H, W, C), (KH, KW, C, F), pool, padding, act


@given(case=cases(), seed=st.integers(0, 2**16), ties=st.booleans())
def test_fused_equals_conv_then_pool(case, seed, ties):
    xs, ws, pool, padding, act = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[-1]).astype(np.float32)
    if ties:  # every pre-activation negative: relu windows of equal zeros, the first must win
        x, w, b = -np.abs(x), np.abs(w), -np.abs(b)
    need_dx = xs[-1] % 16 == 0
    assert K.conv2d_maxpool_supported(xs[1:], ws, (1, 1), pool, pool, "valid", np.float32, need_dx)
    y, ctx = K.conv2d_maxpool_forward(x, w, b, padding, act, pool)
    yc, cctx = K.conv2d_forward(x, w, b, (1, 1), padding, act)
    yp, pctx = K.maxpool2d_forward(yc, pool, pool, "valid")
    np.testing.assert_array_equal(y, yp)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = K.conv2d_maxpool_backward(dy, ctx, need_dx=need_dx)
    dxc, dwc, dbc = K.conv2d_backward(K.maxpool2d_backward(dy, pctx), cctx, need_dx=need_dx)
    np.testing.assert_array_equal(dw, dwc)
    if need_dx:
        np.testing.assert_array_equal(dx, dxc)
    else:
        assert dx is None
    np.testing.assert_allclose(db, dbc, rtol=2.0**-23, atol=1e-30)
    yi, none = K.conv2d_maxpool_forward(x, w, b, padding, act, pool, training=False)
    assert none is None
    np.testing.assert_array_equal(yi, y)


def test_unsupported_shapes_are_refused_clearly():
    assert not K.conv2d_maxpool_supported((8, 8, 3), (3, 3, 3, 32), (1, 1), (2, 2), (2, 2), "valid",
                                          np.float32, True)  # no direct input gradient for C=3
    assert not K.conv2d_maxpool_supported((8, 8, 32), (3, 3, 32, 32), (1, 1), (2, 2), (1, 1), "valid",
                                          np.float32, True)  # overlapping windows
    assert not K.conv2d_maxpool_supported((8, 8, 32), (3, 3, 32, 32), (1, 1), (2, 2), (2, 2), "valid",
                                          np.float64, True)
    with pytest.raises(tinycnn.errors.ConfigError):
        K.conv2d_maxpool_forward(np.ones((1, 8, 8, 3), np.float32), np.ones((3, 3, 3, 20), np.float32), None,
                                 "valid", "relu", (2, 2))
    with pytest.raises(tinycnn.errors.ConfigError):
        K.conv2d_maxpool_backward(np.ones((1, 3, 3, 32), np.float32), None)


def small_model(seed=0):
    tinycnn.set_random_seed(seed)
    model = Sequential([Conv2D(32, 3, activation="relu", input_shape=(14, 15, 1)), MaxPooling2D(2),
                        Conv2D(32, 3, padding="same", activation="relu"), MaxPooling2D(2),
                        Flatten(), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def test_model_plan_fuses_and_trains_bit_for_bit_like_the_layers(monkeypatch):
    tinycnn.set_backend("cpu")
    rng = np.random.default_rng(0)
    x = rng.random((6, 14, 15, 1), dtype=np.float32)
    y = (rng.random(6) > 0.5).astype(np.float32)
    a, b = small_model(), small_model()
    steps = fused.plan(a.layers, np.float32)
    assert [type(s).__name__ for s in steps] == ["ConvPool", "ConvPool", "Flatten", "Dense"]
    for _ in range(2):
        a.train_on_batch(x, y)
    pa = a.predict(x)
    assert all(layer._ctx is None for layer in a.layers)  # predict keeps nothing for backward
    monkeypatch.setattr(fused, "plan", lambda layers, dtype: list(layers))
    for _ in range(2):
        b.train_on_batch(x, y)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(pa, b.predict(x))


def test_plan_without_the_fused_op_is_the_layers():
    model = small_model()
    with tinycnn.use_backend("numpy"):
        assert fused.plan(model.layers, np.float32) == model.layers
    assert fused.plan(model.layers, np.float64) == model.layers  # gradient checks: unfused
    last_two = Sequential([Conv2D(32, 3, input_shape=(8, 8, 32)), MaxPooling2D(2)])
    assert fused.plan(last_two.layers, np.float32) == last_two.layers  # the last step stays a layer
