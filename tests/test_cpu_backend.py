"""The ``cpu`` backend against the NumPy reference (float32 parity), plus its own machinery:
chunked im2col, the buffer pool, and argument checks.

Tolerances. Both backends compute in float32; a sum of L products of unit-scale values carries
a rounding error of about sqrt(L) * 6e-8 typically and L * 6e-8 at worst, and the two backends
add in different orders (BLAS blocking, per-block partial sums). Hence ``rtol=1e-4`` plus
``atol = 1e-6 * L`` with L the reduction length of each output (KH*KW*C for y, KH*KW*F for dx,
N*OH*OW for dw and db): at least 10x above the worst case for the sizes drawn here, and still
far below the size of any indexing mistake (which changes values by O(1)).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tinycnn.kernels import CONTRACT, _cpu_conv, _cpu_memory
from tinycnn.kernels import cpu as K
from tinycnn.kernels import reference as R
from tinycnn.kernels.shapes import conv_geometry

from tinycnn.errors import ConfigError, DTypeError, ShapeError, TinyCNNError

F32 = np.float32


def close(actual, expected, L=1, rtol=1e-4):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-6 * max(L, 1))


def randn(rng, shape, dtype=F32):
    return rng.standard_normal(shape).astype(dtype)


def test_every_contract_name_is_implemented():
    missing = [name for name in CONTRACT if not callable(getattr(K, name, None))]
    assert not missing


# --------------------------------------------------------------------------- convolution
@st.composite
def conv_cases(draw):
    N = draw(st.integers(1, 4))
    C = draw(st.integers(1, 8))
    F = draw(st.integers(1, 6))
    KH, KW = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    H = draw(st.integers(KH if padding == "valid" else 1, 11))
    W = draw(st.integers(KW if padding == "valid" else 1, 11))
    act = draw(st.sampled_from(["linear", "relu", "sigmoid", "tanh"]))
    path = draw(st.sampled_from(["default", "direct", "gemm"]))
    return (N, H, W, C), (KH, KW, C, F), stride, padding, act, path


@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv_matches_reference(case, seed):
    xs, ws, stride, padding, act, path = case
    rng = np.random.default_rng(seed)
    x, w, b = randn(rng, xs), randn(rng, ws), randn(rng, ws[-1])
    limit = {"default": _cpu_conv.DIRECT_MAX_K, "direct": 10**9, "gemm": 0}[path]
    saved, _cpu_conv.DIRECT_MAX_K = _cpu_conv.DIRECT_MAX_K, limit
    try:
        y, ctx = K.conv2d_forward(x, w, b, stride, padding, act)
        yr, ctxr = R.conv2d_forward(x, w, b, stride, padding, act)
        dy = randn(rng, y.shape)
        dx, dw, db = K.conv2d_backward(dy, ctx)
        dxr, dwr, dbr = R.conv2d_backward(dy, ctxr)
    finally:
        _cpu_conv.DIRECT_MAX_K = saved
    KH, KW, C, F = ws
    rows = y.shape[0] * y.shape[1] * y.shape[2]
    assert y.dtype == dx.dtype == dw.dtype == db.dtype == F32
    close(y, yr, KH * KW * C)
    close(dx, dxr, KH * KW * F)
    close(dw, dwr, rows)
    close(db, dbr, rows)


@pytest.mark.parametrize("C, act", [(1, "relu"), (3, "sigmoid"), (12, "relu"), (12, "tanh")])
def test_conv_large_enough_for_the_parallel_paths(rng, C, act):
    """Hypothesis draws small arrays, which take the single-threaded variants of the
    element-wise passes; this size (>= SERIAL_BELOW outputs, several partial-sum blocks)
    runs the parallel kernels and the multi-block reductions."""
    x, w, b = randn(rng, (3, 40, 36, C)), randn(rng, (3, 3, C, 24)), randn(rng, 24)
    y, ctx = K.conv2d_forward(x, w, b, (1, 1), "same", act)
    yr, ctxr = R.conv2d_forward(x, w, b, (1, 1), "same", act)
    assert y.size >= _cpu_conv.SERIAL_BELOW
    dy = randn(rng, y.shape)
    close(y, yr, 9 * C)
    rows = 3 * 40 * 36
    for got, exp, L in zip(K.conv2d_backward(dy, ctx), R.conv2d_backward(dy, ctxr),
                           (9 * 24, rows, rows), strict=True):
        close(got, exp, L)


def test_conv_without_bias_and_without_dx(rng):
    x, w = randn(rng, (2, 6, 7, 5)), randn(rng, (3, 3, 5, 4))
    y, ctx = K.conv2d_forward(x, w, None, (1, 1), "valid", "relu")
    dy = randn(rng, y.shape)
    dx, dw, db = K.conv2d_backward(dy, ctx, need_dx=False)
    _, dwr, _ = R.conv2d_backward(dy, R.conv2d_forward(x, w, None, (1, 1), "valid", "relu")[1])
    assert dx is None and db is None
    close(dw, dwr, 2 * 4 * 5)


@pytest.mark.parametrize("ks, C", [((3, 3), 1), ((3, 3), 6), ((1, 1), 40)])
def test_conv_float64(rng, ks, C):
    x, w, b = randn(rng, (2, 8, 7, C), np.float64), randn(rng, ks + (C, 3), np.float64), randn(rng, 3)
    y, ctx = K.conv2d_forward(x, w, b, (1, 2), "same", "tanh")
    yr, ctxr = R.conv2d_forward(x, w, b, (1, 2), "same", "tanh")
    dy = randn(rng, y.shape, np.float64)
    assert y.dtype == np.float64
    for a, e in zip(K.conv2d_backward(dy, ctx), R.conv2d_backward(dy, ctxr), strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y, yr, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("ks, C", [((3, 3), 1), ((3, 3), 8), ((1, 1), 40), ((2, 3), 9)])
def test_chunked_im2col_equals_unchunked(rng, monkeypatch, ks, C):
    x, w, b = randn(rng, (5, 9, 8, C)), randn(rng, ks + (C, 6)), randn(rng, 6)
    y0, ctx0 = K.conv2d_forward(x, w, b, (1, 1), "same", "relu")
    dy = randn(rng, y0.shape)
    g0 = K.conv2d_backward(dy, ctx0)
    monkeypatch.setattr(_cpu_memory, "WORKSPACE_LIMIT", 1)  # one image per chunk
    y1, ctx1 = K.conv2d_forward(x, w, b, (1, 1), "same", "relu")
    g1 = K.conv2d_backward(dy, ctx1)
    np.testing.assert_array_equal(y1, y0)
    for a, e in zip(g1, g0, strict=True):
        close(a, e, 5 * 9 * 8)


def test_workspace_reuse_keeps_earlier_results(rng):
    """Two forwards, then the two backwards in reverse order, equal fresh one-shot calls:
    the second call must not overwrite the arrays (or workspaces) the first one returned."""
    xa, xb = randn(rng, (3, 10, 9, 4)), randn(rng, (3, 10, 9, 4))
    w, b = randn(rng, (3, 3, 4, 5)), randn(rng, 5)
    ya, ca = K.conv2d_forward(xa, w, b, (1, 1), "valid", "relu")
    yb, cb = K.conv2d_forward(xb, w, b, (1, 1), "valid", "relu")
    ya_copy = ya.copy()
    pa, pca = K.maxpool2d_forward(ya, (2, 2), (2, 2), "valid")
    pb, pcb = K.maxpool2d_forward(yb, (2, 2), (2, 2), "valid")
    da, db_ = randn(rng, pa.shape), randn(rng, pb.shape)
    gb = K.conv2d_backward(K.maxpool2d_backward(db_, pcb), cb)
    ga = K.conv2d_backward(K.maxpool2d_backward(da, pca), ca)
    np.testing.assert_array_equal(ya, ya_copy)
    for x, d, got in ((xa, da, ga), (xb, db_, gb)):
        y, c = K.conv2d_forward(x, w, b, (1, 1), "valid", "relu")
        p, pc = K.maxpool2d_forward(y, (2, 2), (2, 2), "valid")
        fresh = K.conv2d_backward(K.maxpool2d_backward(d, pc), c)
        for a, e in zip(got, fresh, strict=True):
            np.testing.assert_array_equal(a, e)
    # dense: the same discipline
    x1, x2, wd = randn(rng, (64, 300)), randn(rng, (64, 300)), randn(rng, (300, 257))
    y1, c1 = K.dense_forward(x1, wd, None, "sigmoid")
    y2, c2 = K.dense_forward(x2, wd, None, "sigmoid")
    g2 = K.dense_backward(np.ones_like(y2), c2)
    g1 = K.dense_backward(np.ones_like(y1), c1)
    for x, g in ((x1, g1), (x2, g2)):
        exp = R.dense_backward(np.ones_like(y1), R.dense_forward(x, wd, None, "sigmoid")[1])
        close(g[0], exp[0], 257)
        close(g[1], exp[1], 64)


def test_pool_reuses_only_released_buffers():
    shape = (64, 1024)
    a = _cpu_memory.take(shape, F32)
    view = a[:3]
    del a
    b = _cpu_memory.take(shape, F32)
    assert not np.shares_memory(b, view)  # a view keeps its buffer alive
    del view
    c = _cpu_memory.take(shape, F32)
    assert not np.shares_memory(c, b)
    held, _ = _cpu_memory.pooled_bytes()
    assert held >= 2 * 64 * 1024 * 4


# --------------------------------------------------------------------------- pooling
@st.composite
def pool_cases(draw):
    PH, PW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    H = draw(st.integers(PH if padding == "valid" else 1, 10))
    W = draw(st.integers(PW if padding == "valid" else 1, 10))
    return (draw(st.integers(1, 4)), H, W, draw(st.integers(1, 5))), (PH, PW), stride, padding


@given(case=pool_cases(), seed=st.integers(0, 2**16), coarse=st.booleans())
def test_maxpool_matches_reference(case, seed, coarse):
    xs, pool, stride, padding = case
    rng = np.random.default_rng(seed)
    # coarse values make ties common: the gradient must still go to exactly one element
    x = rng.integers(0, 3, xs).astype(F32) if coarse else randn(rng, xs)
    y, ctx = K.maxpool2d_forward(x, pool, stride, padding)
    yr, ctxr = R.maxpool2d_forward(x, pool, stride, padding)
    dy = randn(rng, y.shape)
    np.testing.assert_array_equal(y, yr)
    close(K.maxpool2d_backward(dy, ctx), R.maxpool2d_backward(dy, ctxr), pool[0] * pool[1])


def test_maxpool_ties_go_to_the_first_maximum():
    x = np.ones((1, 4, 4, 2), F32)
    y, ctx = K.maxpool2d_forward(x, (2, 2), (2, 2), "valid")
    dx = K.maxpool2d_backward(np.ones_like(y), ctx)
    expected = np.zeros_like(x)
    expected[:, ::2, ::2, :] = 1
    np.testing.assert_array_equal(dx, expected)
    x[0, 1, 1, 0] = np.nan  # NaN wins, as np.argmax decides
    y, ctx = K.maxpool2d_forward(x, (2, 2), (2, 2), "valid")
    assert np.isnan(y[0, 0, 0, 0]) and K.maxpool2d_backward(np.ones_like(y), ctx)[0, 1, 1, 0] == 1


def test_global_avgpool_matches_reference(rng):
    x = randn(rng, (3, 5, 7, 4))
    y, ctx = K.global_avgpool_forward(x)
    yr, ctxr = R.global_avgpool_forward(x)
    close(y, yr, 35)
    dy = randn(rng, y.shape)
    close(K.global_avgpool_backward(dy, ctx), R.global_avgpool_backward(dy, ctxr))


# --------------------------------------------------------------------------- dense, activations
@given(N=st.integers(1, 5), D=st.integers(1, 40), U=st.integers(1, 9), seed=st.integers(0, 999),
       act=st.sampled_from(["linear", "relu", "sigmoid", "tanh"]), use_bias=st.booleans())
def test_dense_matches_reference(N, D, U, seed, act, use_bias):
    rng = np.random.default_rng(seed)
    x, w = randn(rng, (N, D)), randn(rng, (D, U))
    b = randn(rng, U) if use_bias else None
    y, ctx = K.dense_forward(x, w, b, act)
    yr, ctxr = R.dense_forward(x, w, b, act)
    close(y, yr, D)
    dy = randn(rng, y.shape)
    got, exp = K.dense_backward(dy, ctx), R.dense_backward(dy, ctxr)
    close(got[0], exp[0], U)
    close(got[1], exp[1], N)
    assert (got[2] is None) == (b is None)
    if b is not None:
        close(got[2], exp[2], N)
    assert K.dense_backward(dy, ctx, need_dx=False)[0] is None


@pytest.mark.parametrize("kind", ["linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"])
def test_activations_match_reference(rng, kind):
    x = randn(rng, (3, 4, 5)) * 4
    x[0, 0, :2] = [60.0, -60.0]  # saturated sigmoid/tanh/softmax stay finite
    y, ctx = K.activation_forward(x, kind, alpha=0.2)
    yr, ctxr = R.activation_forward(x, kind, alpha=0.2)
    close(y, yr, 5)
    dy = randn(rng, x.shape)
    close(K.activation_backward(dy, ctx), R.activation_backward(dy, ctxr), 5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_matches_reference_and_checks_shapes(rng, dtype):
    a, b = randn(rng, (3, 5, 4, 2), dtype), randn(rng, (3, 5, 4, 2), dtype)
    y = K.add(a, b)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, R.add(a, b))
    with pytest.raises(ShapeError):
        K.add(a, b[:, :4])


# --------------------------------------------------------------------------- batch norm, dropout
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_matches_reference(rng, training):
    x = randn(rng, (4, 5, 3, 6)) * 3 + 2
    gamma, beta = randn(rng, 6), randn(rng, 6)
    rm, rv = rng.random(6).astype(F32), rng.random(6).astype(F32) + 0.5
    m1, v1, m2, v2 = rm.copy(), rv.copy(), rm.copy(), rv.copy()
    y, ctx = K.batchnorm_forward(x, gamma, beta, m1, v1, 0.9, 1e-3, training)
    yr, ctxr = R.batchnorm_forward(x, gamma, beta, m2, v2, 0.9, 1e-3, training)
    close(y, yr, 60)
    close(m1, m2, 60)
    close(v1, v2, 60)
    dy = randn(rng, x.shape)
    for a, e in zip(K.batchnorm_backward(dy, ctx), R.batchnorm_backward(dy, ctxr), strict=True):
        close(a, e, 60, rtol=1e-3)


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.75])
def test_dropout_matches_reference(rng, rate):
    x = randn(rng, (4, 33))
    y, ctx = K.dropout_forward(x, rate, seed=7)
    yr, ctxr = R.dropout_forward(x, rate, seed=7)
    np.testing.assert_array_equal(y, yr)
    dy = randn(rng, x.shape)
    np.testing.assert_array_equal(K.dropout_backward(dy, ctx), R.dropout_backward(dy, ctxr))


# --------------------------------------------------------------------------- losses
LOSS_CASES = [(k, lg) for k in ("binary_crossentropy", "categorical_crossentropy",
                                "sparse_categorical_crossentropy", "mse",
                                "binary_focal_crossentropy") for lg in (False, True)]


@pytest.mark.parametrize("kind, logits", LOSS_CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_losses_match_reference(rng, kind, logits, weighted):
    N, C = 6, 4
    z = randn(rng, (N, C)) * 3
    if kind == "binary_crossentropy":
        z = z[:, :1]
    if not logits:  # probabilities, including values beyond the clip bounds
        z = (R._act(z, "softmax") if "categorical" in kind else R._act(z, "sigmoid")).astype(F32)
        z.flat[0] = 0.0
    if kind == "sparse_categorical_crossentropy":
        t = rng.integers(0, C, N)
    elif kind == "categorical_crossentropy":
        t = np.eye(C, dtype=F32)[rng.integers(0, C, N)]
    else:
        t = (rng.random(z.shape) > 0.5).astype(F32)
    w = rng.random(N).astype(F32) if weighted else None
    loss, ctx = K.loss_forward(kind, z, t, w, logits)
    lr_, ctxr = R.loss_forward(kind, z, t, w, logits)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, lr_, rtol=1e-5, atol=1e-6)
    close(K.loss_backward(ctx), R.loss_backward(ctxr))


def test_bce_from_logits_is_stable():
    z = np.array([[80.0], [-80.0], [0.0]], F32)
    t = np.array([[0.0], [1.0], [1.0]], F32)
    loss, ctx = K.loss_forward("binary_crossentropy", z, t, None, True)
    assert np.isfinite(loss) and np.all(np.isfinite(K.loss_backward(ctx)))
    np.testing.assert_allclose(loss, (80 + 80 + np.log(2)) / 3, rtol=1e-6)


# --------------------------------------------------------------------------- optimizers
def test_adam_updates_in_place_like_reference(rng):
    p = randn(rng, (5, 7))
    m, v = np.zeros_like(p), np.zeros_like(p)
    pr, mr, vr = p.copy(), m.copy(), v.copy()
    ids = id(p), id(m), id(v)
    for t in range(1, 6):
        g = randn(rng, p.shape)
        assert K.adam_update(p, g, m, v, 1e-2, 0.9, 0.999, 1e-7, t) is None
        R.adam_update(pr, g, mr, vr, 1e-2, 0.9, 0.999, 1e-7, t)
    assert (id(p), id(m), id(v)) == ids
    np.testing.assert_allclose(m, mr, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(v, vr, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p, pr, rtol=1e-5, atol=1e-6)


def test_adam_large_parameter_parallel_path(rng):
    p = randn(rng, (300, 100))
    m, v = np.zeros_like(p), np.zeros_like(p)
    pr, mr, vr = p.copy(), m.copy(), v.copy()
    for t in range(1, 4):
        g = randn(rng, p.shape)
        K.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7, t)
        R.adam_update(pr, g, mr, vr, 1e-3, 0.9, 0.999, 1e-7, t)
    np.testing.assert_allclose(p, pr, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, vr, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_updates_in_place_like_reference(rng, momentum, nesterov):
    p = randn(rng, (4, 3, 2))
    vel = np.zeros_like(p)
    pr, velr = p.copy(), vel.copy()
    for _ in range(5):
        g = randn(rng, p.shape)
        K.sgd_update(p, g, vel, 0.05, momentum, nesterov)
        R.sgd_update(pr, g, velr, 0.05, momentum, nesterov)
    np.testing.assert_allclose(p, pr, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vel, velr, rtol=1e-5, atol=1e-6)


def test_optimizers_handle_non_contiguous_parameters(rng):
    base = randn(rng, (6, 8))
    p, pr = base[:, ::2], base.copy()[:, ::2]
    g = randn(rng, p.shape)
    m, v = np.zeros_like(p), np.zeros_like(p)
    K.adam_update(p, g, m, v, 0.1, 0.9, 0.999, 1e-7, 1)
    R.adam_update(pr, g, np.zeros_like(p), np.zeros_like(p), 0.1, 0.9, 0.999, 1e-7, 1)
    close(p, pr)


# --------------------------------------------------------------------------- bad input
BAD_CALLS = [
    (ShapeError, lambda: K.conv2d_forward(np.ones((2, 5, 5), F32), np.ones((3, 3, 1, 2), F32),
                                          None, (1, 1), "valid")),
    (ShapeError, lambda: K.conv2d_forward(np.ones((1, 5, 5, 3), F32), np.ones((3, 3, 2, 2), F32),
                                          None, (1, 1), "valid")),
    (ShapeError, lambda: K.conv2d_forward(np.ones((1, 2, 2, 1), F32), np.ones((3, 3, 1, 2), F32),
                                          None, (1, 1), "valid")),
    (ShapeError, lambda: K.conv2d_forward(np.ones((1, 5, 5, 1), F32), np.ones((3, 3, 1, 2), F32),
                                          np.ones(3, F32), (1, 1), "valid")),
    (ConfigError, lambda: K.conv2d_forward(np.ones((1, 5, 5, 1), F32), np.ones((3, 3, 1, 2), F32),
                                           None, (0, 1), "valid")),
    (ConfigError, lambda: K.conv2d_forward(np.ones((1, 5, 5, 1), F32), np.ones((3, 3, 1, 2), F32),
                                           None, (1, 1), "full")),
    (ConfigError, lambda: K.conv2d_forward(np.ones((1, 5, 5, 1), F32), np.ones((3, 3, 1, 2), F32),
                                           None, (1, 1), "valid", "softmax")),
    (DTypeError, lambda: K.conv2d_forward(np.ones((1, 5, 5, 1), complex), np.ones((3, 3, 1, 2)),
                                          None, (1, 1), "valid")),
    (DTypeError, lambda: K.dense_forward(np.array([["a"]]), np.ones((1, 1)), None)),
    (ShapeError, lambda: K.dense_forward(np.ones((2, 3), F32), np.ones((4, 2), F32), None)),
    (ShapeError, lambda: K.maxpool2d_forward(np.ones((1, 1, 1, 1), F32), (2, 2), (2, 2), "valid")),
    (ShapeError, lambda: K.global_avgpool_forward(np.ones((2, 3), F32))),
    (ShapeError, lambda: K.loss_forward("mse", np.ones((2, 3), F32), np.ones((2, 2)), None, False)),
    (ShapeError, lambda: K.loss_forward("mse", np.ones((2, 1), F32), np.ones((2, 1)), np.ones(3),
                                        False)),
    (ConfigError, lambda: K.loss_forward("hinge", np.ones((2, 1), F32), np.ones(2), None, False)),
    (ShapeError, lambda: K.adam_update(np.ones(3, F32), np.ones(4, F32), np.zeros(3, F32),
                                       np.zeros(3, F32), 0.1, 0.9, 0.999, 1e-7, 1)),
    (DTypeError, lambda: K.sgd_update(np.ones(3, int), np.ones(3), None, 0.1, 0.0, False)),
    (ConfigError, lambda: K.adam_update(_readonly(np.ones(3, F32)), np.ones(3, F32), np.zeros(3, F32),
                                        np.zeros(3, F32), 0.1, 0.9, 0.999, 1e-7, 1)),
    (ShapeError, lambda: K.activation_forward(np.ones((2, 0), F32), "softmax")),
    (ShapeError, lambda: K.global_avgpool_forward(np.ones((1, 0, 3, 2), F32))),
    (ShapeError, lambda: K.loss_forward("categorical_crossentropy", np.ones((2, 0), F32),
                                        np.ones((2, 0)), None, True)),
]


def _readonly(a):
    a.flags.writeable = False
    return a


def test_read_only_inputs_work(rng):
    x, w = _readonly(randn(rng, (2, 6, 6, 3))), _readonly(randn(rng, (3, 3, 3, 4)))
    y, ctx = K.conv2d_forward(x, w, None, (1, 1), "valid", "relu")
    close(y, R.conv2d_forward(x, w, None, (1, 1), "valid", "relu")[0], 27)


@pytest.mark.parametrize("error, call", BAD_CALLS)
def test_bad_input_raises_tinycnn_errors(error, call):
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, TinyCNNError)


def test_backward_checks_dy_shape(rng):
    y, ctx = K.conv2d_forward(randn(rng, (1, 5, 5, 2)), randn(rng, (3, 3, 2, 3)), None, (1, 1), "valid")
    with pytest.raises(ShapeError):
        K.conv2d_backward(np.ones((1, 3, 3, 4), F32), ctx)
    y, ctx = K.maxpool2d_forward(randn(rng, (1, 4, 4, 2)), (2, 2), (2, 2), "valid")
    with pytest.raises(ShapeError):
        K.maxpool2d_backward(np.ones((1, 3, 2, 2), F32), ctx)


def test_geometry_shared_with_reference():
    # the launcher relies on shapes.conv_geometry; a sanity check of the 'same' rule it uses
    assert conv_geometry(5, 5, 2, 2, (2, 2), "same")[:2] == (3, 3)


# --------------------------------------------------------------------------- whole models
def test_whole_model_same_predictions_gradients_and_update_as_reference():
    """A seed-like model (convs with both paddings, pooling, batch norm, dense) in float32: the
    same weights give the same predictions, loss, parameter gradients and update on the ``cpu``
    backend as on the NumPy reference. Tolerance: float32 sums of up to a few thousand terms in
    different orders (see the module docstring), relative to each array's scale. SGD with
    momentum, whose step is linear in the gradient (Adam's first step is ~lr * sign(g), which
    turns rounding noise in a near-zero gradient into a full step; its kernel is compared
    with the reference's above)."""
    import tinycnn
    from tinycnn.backend import use_backend
    from tinycnn.layers import BatchNormalization, Conv2D, Dense, Flatten, MaxPooling2D
    from tinycnn.models import Sequential

    rng = np.random.default_rng(3)
    x = rng.random((16, 20, 20, 1), dtype=F32)
    y = (x[:, 5:15, 5:15, 0].mean(axis=(1, 2)) > 0.5).astype(F32)
    seen, weights = {}, None
    for name in ("numpy", "cpu"):
        with use_backend(name):
            m = Sequential([Conv2D(8, 3, activation="relu", input_shape=(20, 20, 1)), MaxPooling2D(),
                            Conv2D(16, 3, padding="same", activation="relu"), BatchNormalization(),
                            MaxPooling2D(), Flatten(), Dense(16, activation="relu"), Dense(1, activation="sigmoid")])
            m.compile(tinycnn.optimizers.SGD(0.1, momentum=0.9), "binary_crossentropy")
            weights = weights or m.get_weights()
            m.set_weights(weights)
            pred = m.predict(x, verbose=0)
            loss = m.train_on_batch(x, y)
            grads = [np.array(K.to_numpy(l.grads[k])) for l in m.layers for k in l.grads if l.grads[k] is not None]
            seen[name] = (pred, loss, grads, m.get_weights())
    (p0, l0, g0, w0), (p1, l1, g1, w1) = seen["numpy"], seen["cpu"]
    np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-6)
    assert l1 == pytest.approx(l0, rel=1e-5)
    assert len(g0) == len(g1) == 10
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(b).max())
    for a, b, before in zip(w1, w0, weights, strict=True):  # the steps taken
        np.testing.assert_allclose(a - before, b - before, rtol=1e-3, atol=1e-4 * np.abs(b - before).max())


# --------------------------------------------------------------------------- threads
_THREADS_PROBE = """
import ctypes, json, os, sys
if sys.argv[1] == "preload":  # what `import torch` does: a libgomp loaded, with global symbols
    ctypes.CDLL("libgomp.so.1", mode=ctypes.RTLD_GLOBAL)
import numba, numpy as np
np.ones((300, 300)) @ np.ones((300, 300))  # OpenBLAS's threads started before tinycnn's import
import tinycnn
from tinycnn.kernels import cpu
x = np.ones((2, 5, 5, 1), np.float32)
cpu.conv2d_forward(x, np.ones((3, 3, 1, 2), np.float32), None, (1, 1), "valid", "relu")
timeouts = [ctypes.CDLL(p).openblas_thread_timeout() for p in cpu.THREADS[1]]
print(json.dumps([numba.threading_layer(), os.environ.get("OMP_WAIT_POLICY"), timeouts,
                  os.environ.get("OPENBLAS_THREAD_TIMEOUT")]))
"""


def _threads_probe(preload, **env_extra):
    import json
    import os
    import subprocess
    import sys

    drop = ("OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER", "OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", _THREADS_PROBE, "preload" if preload else "-"],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _has_libgomp():
    import ctypes.util

    return ctypes.util.find_library("gomp") is not None


def _numpy_has_pthreads_openblas():
    import ctypes
    import os

    from tinycnn.kernels import _cpu_threads as T

    for path in T.mapped_libraries():
        if "openblas" in os.path.basename(path).lower():
            get_parallel = T.openblas_function(ctypes.CDLL(path), T.GET_PARALLEL)
            if get_parallel is not None and get_parallel() == 1:
                return True
    return False


@pytest.mark.skipif(not _has_libgomp(), reason="GNU OpenMP (libgomp) is not installed here")
def test_numba_threads_wait_passively_or_avoid_a_foreign_openmp():
    # Alone: Numba's OpenMP layer, told to wait passively (spinning threads starve BLAS).
    assert _threads_probe(False)[:2] == ["omp", "passive"]
    # An OpenMP runtime already loaded (as by `import torch`) read its wait policy too early:
    # tinycnn uses Numba's own pool instead, and leaves the environment alone.
    assert _threads_probe(True)[:2] == ["workqueue", None]
    # The user's own choices are kept.
    assert _threads_probe(True, NUMBA_THREADING_LAYER="omp")[:2] == ["omp", "passive"]
    assert _threads_probe(True, OMP_WAIT_POLICY="active")[:2] == ["omp", "active"]


@pytest.mark.skipif(not _numpy_has_pthreads_openblas(), reason="NumPy here does not use a pthreads OpenBLAS")
def test_openblas_threads_sleep_after_a_gemm_unless_the_user_chose():
    _, _, timeouts, env = _threads_probe(False)
    # NumPy's OpenBLAS, already running before the import, now waits 2**4 cycles; the
    # variable used to tell it so is gone again (child processes see the user's environment).
    assert timeouts and all(t == 4 for t in timeouts) and env is None
    _, _, timeouts, env = _threads_probe(False, OPENBLAS_THREAD_TIMEOUT="20")
    assert timeouts == [] and env == "20"
