"""Parity of the ``cuda`` backend with the NumPy reference, kernel by kernel.

Run in its own process, with the simulator when there is no GPU::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda/test_cuda_sim.py

The simulator runs one Python thread per CUDA thread (about 0.3-0.5 ms each), so shapes are
small but chosen to hit the edges: sizes that are not multiples of the GEMM tile (64) or its
depth (16), stride 2, 'same' padding, pooling ties, split-K. On a real GPU (no simulator) the
same tests run with larger shapes (``S``).

Tolerances (float32): kernels that sum at most a few hundred products agree with the
reference to ``rtol = atol = 2e-5`` (sums in a different order); elementwise kernels to
``1e-6``; dropout and max-pool routing exactly. float64 runs agree to ``1e-12``.
"""

import importlib.util
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

if importlib.util.find_spec("numba_cuda") is None:
    pytest.skip("numba-cuda is not installed (pip install tinycnn[cuda])", allow_module_level=True)

from numba.core import config  # noqa: E402

SIM = bool(config.ENABLE_CUDASIM)
if not SIM:
    from numba import cuda as _cuda

    if not _cuda.is_available():
        pytest.skip(
            "no CUDA GPU here and the simulator is off: run with NUMBA_ENABLE_CUDASIM=1",
            allow_module_level=True,
        )

from tinycnn.kernels import _cuda_common as cc  # noqa: E402
from tinycnn.kernels import _cuda_gemm as gm  # noqa: E402
from tinycnn.kernels import cuda as K  # noqa: E402
from tinycnn.kernels import reference as R  # noqa: E402

from tinycnn import kernels  # noqa: E402
from tinycnn.errors import DTypeError, InvalidValueError  # noqa: E402

pytestmark = pytest.mark.cudasim

S = 1 if SIM else 4  # shape multiplier: tiny in the simulator, larger on a GPU
TOL = dict(rtol=2e-5, atol=2e-5)
EW = dict(rtol=1e-6, atol=1e-6)

_LAUNCHES = []


@pytest.fixture(autouse=True)
def _record_launches():
    """Collect the argument types of every kernel launch, checked by the last test."""
    with cc.record_launches() as log:
        yield
    _LAUNCHES.extend(log)


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(got, want, **tol):
    got = K.to_numpy(got)
    assert got.shape == np.shape(want)
    assert got.dtype == np.asarray(want).dtype
    np.testing.assert_allclose(got, want, **(tol or TOL))


# --------------------------------------------------------------------------- contract
def test_every_contract_name_with_the_reference_signature():
    for name in kernels.CONTRACT:
        assert callable(getattr(K, name, None)), name
        assert inspect.signature(getattr(K, name)) == inspect.signature(getattr(R, name)), name
    assert callable(K.ensure_available)
    K.ensure_available()  # the simulator (or a GPU) counts as available


def test_asarray_round_trip_and_pass_through(rng):
    x = rng.standard_normal((3, 4))  # float64, not contiguous after the slice below
    d = K.asarray(x[:, ::2], np.float32)
    assert d.shape == (3, 2) and d.dtype == np.float32 and d.is_c_contiguous()
    assert K.asarray(d) is d and K.asarray(d, np.float32) is d
    np.testing.assert_array_equal(K.to_numpy(d), x[:, ::2].astype(np.float32))
    d64 = K.asarray(d, np.float64)  # converted on the device
    assert d64.dtype == np.float64
    np.testing.assert_array_equal(K.to_numpy(d64), x[:, ::2].astype(np.float32).astype(np.float64))
    assert d.reshape(6).shape == (6,)
    y, _ = K.activation_forward(K.asarray(np.arange(-2, 2)), "relu")  # integers: computed in float32
    assert y.dtype == np.float32 and K.to_numpy(y).tolist() == [0, 0, 0, 1]
    with pytest.raises(DTypeError):
        K.activation_forward(np.arange(4) + 1j, "relu")


# --------------------------------------------------------------------------- GEMM
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_transposes_with_ragged_tiles(rng, trans_a, trans_b):
    M, N, Kd = 70 * S, 20 * S, 37 * S  # two row tiles, a partial column tile, 3 K steps
    a = f32(rng, Kd, M) if trans_a else f32(rng, M, Kd)
    b = f32(rng, N, Kd) if trans_b else f32(rng, Kd, N)
    want = (a.T if trans_a else a) @ (b.T if trans_b else b)
    close(gm.gemm(K.asarray(a), K.asarray(b), trans_a, trans_b, splits=1), want)


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh"])
def test_gemm_epilogue_bias_and_activation(rng, act):
    a, b, bias = f32(rng, 5, 3) * 4, f32(rng, 3, 7), f32(rng, 7)
    got = gm.gemm(K.asarray(a), K.asarray(b), bias=K.asarray(bias), act=kernels.ACTIVATION_CODES[act])
    close(got, R._act(a @ b + bias, act))


def test_gemm_split_k_is_summed_in_a_second_pass(rng):
    a, b = f32(rng, 50, 9), f32(rng, 50, 5)  # a weight-gradient shape: cols.T @ dz
    close(gm.gemm(K.asarray(a), K.asarray(b), trans_a=True, splits=3), a.T @ b)
    assert gm.choose_splits(9, 5, 100_000) > 1 and gm.choose_splits(4096, 4096, 100_000) == 1


# --------------------------------------------------------------------------- convolution
CONV_CASES = [
    # (N, H, W, C), (KH, KW, F), stride, padding, activation, bias
    ((2, 6, 6, 3), (3, 3, 4), (1, 1), "valid", "relu", True),
    ((2, 7, 6, 2), (3, 3, 5), (2, 2), "same", "linear", True),
    ((1, 5, 7, 3), (3, 2, 4), (2, 1), "valid", "tanh", False),
    ((2, 5, 5, 3), (1, 1, 4), (1, 1), "same", "sigmoid", True),  # 1x1: no im2col
]


@pytest.mark.parametrize("xs,ws,stride,padding,act,bias", CONV_CASES)
def test_conv2d_forward_backward(rng, xs, ws, stride, padding, act, bias):
    x = f32(rng, xs[0] * S, *xs[1:])
    w = f32(rng, ws[0], ws[1], xs[3], ws[2])
    b = f32(rng, ws[2]) if bias else None
    y, ctx = K.conv2d_forward(K.asarray(x), K.asarray(w), None if b is None else K.asarray(b), stride,
                              padding, act)  # fmt: skip
    yr, ctxr = R.conv2d_forward(x, w, b, stride, padding, act)
    close(y, yr)
    dy = f32(rng, *yr.shape)
    got, want = K.conv2d_backward(K.asarray(dy), ctx), R.conv2d_backward(dy, ctxr)
    for g, r in zip(got, want, strict=True):
        if r is None:
            assert g is None
        else:
            close(g, r)
    dx, dw, db = K.conv2d_backward(K.asarray(dy), ctx, need_dx=False)
    assert dx is None
    close(dw, want[1])


def test_conv2d_float64(rng):
    x, w, b = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 3)), rng.standard_normal(3)
    y, ctx = K.conv2d_forward(x, w, b, (2, 2), "same", "tanh")  # host arrays are uploaded
    yr, ctxr = R.conv2d_forward(x, w, b, (2, 2), "same", "tanh")
    close(y, yr, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(yr.shape)
    for g, r in zip(K.conv2d_backward(dy, ctx), R.conv2d_backward(dy, ctxr), strict=True):
        close(g, r, rtol=1e-12, atol=1e-12)


@st.composite
def window_cases(draw):
    """A random small NHWC input and window: valid or same padding, stride 1-3, odd sizes."""
    padding = draw(st.sampled_from(["valid", "same"]))
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H = draw(st.integers(KH if padding == "valid" else 1, 7))
    W = draw(st.integers(KW if padding == "valid" else 1, 7))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return (draw(st.integers(1, 2)), H, W, draw(st.integers(1, 3))), (KH, KW), stride, padding


@settings(max_examples=8 if SIM else 60, deadline=None)
@given(case=window_cases(), F=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_conv2d_random_geometry(case, F, seed):
    (N, H, W, C), (KH, KW), stride, padding = case
    rng = np.random.default_rng(seed)
    x, w, b = f32(rng, N, H, W, C), f32(rng, KH, KW, C, F), f32(rng, F)
    y, ctx = K.conv2d_forward(x, w, b, stride, padding, "linear")
    yr, ctxr = R.conv2d_forward(x, w, b, stride, padding, "linear")
    close(y, yr)
    dy = f32(rng, *yr.shape)
    for g, r in zip(K.conv2d_backward(dy, ctx), R.conv2d_backward(dy, ctxr), strict=True):
        close(g, r)


@settings(max_examples=10 if SIM else 80, deadline=None)
@given(case=window_cases(), seed=st.integers(0, 2**16))
def test_maxpool_random_geometry_with_many_ties(case, seed):
    shape, pool, stride, padding = case
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, shape).astype(np.float32)  # three values: ties everywhere
    y, ctx = K.maxpool2d_forward(x, pool, stride, padding)
    yr, ctxr = R.maxpool2d_forward(x, pool, stride, padding)
    np.testing.assert_array_equal(K.to_numpy(y), yr)
    dy = f32(rng, *yr.shape)
    np.testing.assert_allclose(K.to_numpy(K.maxpool2d_backward(dy, ctx)), R.maxpool2d_backward(dy, ctxr),
                               rtol=1e-6, atol=1e-6)  # fmt: skip


# --------------------------------------------------------------------------- pooling
@pytest.mark.parametrize(
    "shape,pool,stride,padding",
    [((2, 6, 6, 3), (2, 2), (2, 2), "valid"), ((1, 7, 5, 2), (3, 3), (2, 2), "same"),
     ((1, 5, 6, 2), (3, 2), (1, 2), "valid")],
)  # fmt: skip
def test_maxpool(rng, shape, pool, stride, padding):
    x = f32(rng, shape[0] * S, *shape[1:])
    y, ctx = K.maxpool2d_forward(K.asarray(x), pool, stride, padding)
    yr, ctxr = R.maxpool2d_forward(x, pool, stride, padding)
    np.testing.assert_array_equal(K.to_numpy(y), yr)
    np.testing.assert_array_equal(K.to_numpy(ctx[1]), ctxr[1])  # the same argmax
    dy = f32(rng, *yr.shape)
    np.testing.assert_array_equal(K.to_numpy(K.maxpool2d_backward(K.asarray(dy), ctx)),
                                  R.maxpool2d_backward(dy, ctxr))  # fmt: skip


def test_maxpool_ties_route_to_the_first_maximum():
    # constant windows: every element ties, the first one (row-major) gets the gradient
    x = np.ones((1, 4, 4, 1), np.float32)
    y, ctx = K.maxpool2d_forward(x, (2, 2), (2, 2), "valid")
    dx = K.to_numpy(K.maxpool2d_backward(np.full((1, 2, 2, 1), 3, np.float32), ctx))
    want = np.zeros((4, 4), np.float32)
    want[::2, ::2] = 3
    np.testing.assert_array_equal(dx[0, :, :, 0], want)
    # overlapping windows (stride < pool) that share one maximum: gradients add up there
    x = np.zeros((1, 5, 5, 1), np.float32)
    x[0, 2, 2, 0] = 1
    dy = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    y, ctx = K.maxpool2d_forward(x, (3, 3), (1, 1), "valid")
    yr, ctxr = R.maxpool2d_forward(x, (3, 3), (1, 1), "valid")
    got = K.to_numpy(K.maxpool2d_backward(dy, ctx))
    np.testing.assert_array_equal(got, R.maxpool2d_backward(dy, ctxr))
    assert got[0, 2, 2, 0] == dy.sum() and got.sum() == dy.sum()


def test_global_avgpool(rng):
    x = f32(rng, 2 * S, 5, 3, 4)
    y, ctx = K.global_avgpool_forward(K.asarray(x))
    yr, ctxr = R.global_avgpool_forward(x)
    close(y, yr, **EW)
    dy = f32(rng, *yr.shape)
    close(K.global_avgpool_backward(K.asarray(dy), ctx), R.global_avgpool_backward(dy, ctxr), **EW)


# --------------------------------------------------------------------------- dense
@pytest.mark.parametrize("act,bias", [("linear", True), ("relu", False), ("sigmoid", True), ("tanh", True)])
def test_dense(rng, act, bias):
    x, w = f32(rng, 3 * S, 10), f32(rng, 10, 6)
    b = f32(rng, 6) if bias else None
    y, ctx = K.dense_forward(x, w, b, act)
    yr, ctxr = R.dense_forward(x, w, b, act)
    close(y, yr)
    dy = f32(rng, *yr.shape)
    for g, r in zip(K.dense_backward(dy, ctx), R.dense_backward(dy, ctxr), strict=True):
        assert (g is None) == (r is None)
        if r is not None:
            close(g, r)
    assert K.dense_backward(dy, ctx, need_dx=False)[0] is None


# --------------------------------------------------------------------------- activations
@pytest.mark.parametrize("kind", ["linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"])
def test_activations(rng, kind):
    x = f32(rng, 2 * S, 3, 7) * 5
    x[0, 0, :3] = [0, 60, -60]  # relu at 0, saturated sigmoid / softmax
    y, ctx = K.activation_forward(K.asarray(x), kind, alpha=0.2)
    yr, ctxr = R.activation_forward(x, kind, alpha=0.2)
    close(y, yr, **EW)
    dy = f32(rng, *x.shape)
    close(K.activation_backward(K.asarray(dy), ctx), R.activation_backward(dy, ctxr), **EW)


# --------------------------------------------------------------------------- batch norm
@pytest.mark.parametrize("shape,training", [((2, 3, 4, 5), True), ((2, 3, 4, 5), False), ((7, 3), True)])
def test_batchnorm(rng, shape, training):
    x = f32(rng, shape[0] * S, *shape[1:]) * 3 + 1
    C = shape[-1]
    gamma, beta = f32(rng, C), f32(rng, C)
    rm, rv = f32(rng, C), np.abs(f32(rng, C)) + 0.5
    rm_d, rv_d = K.asarray(rm), K.asarray(rv)
    y, ctx = K.batchnorm_forward(K.asarray(x), gamma, beta, rm_d, rv_d, 0.9, 1e-3, training)
    yr, ctxr = R.batchnorm_forward(x, gamma, beta, rm, rv, 0.9, 1e-3, training)
    close(y, yr)
    close(rm_d, rm, **EW)  # updated in place on the device (unchanged in inference)
    close(rv_d, rv, **EW)
    dy = f32(rng, *x.shape)
    for g, r in zip(K.batchnorm_backward(K.asarray(dy), ctx), R.batchnorm_backward(dy, ctxr), strict=True):
        close(g, r, rtol=1e-4, atol=1e-4)  # training dx subtracts near-equal sums


def test_batchnorm_updates_host_running_stats_in_place(rng):
    x = f32(rng, 6, 3)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    rm2, rv2 = rm.copy(), rv.copy()
    K.batchnorm_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32), rm, rv, 0.5, 1e-3, True)
    R.batchnorm_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32), rm2, rv2, 0.5, 1e-3, True)
    np.testing.assert_allclose(rm, rm2, **EW)
    np.testing.assert_allclose(rv, rv2, **EW)


# --------------------------------------------------------------------------- dropout
def test_dropout_matches_the_reference_bit_for_bit(rng):
    x = f32(rng, 3 * S, 4, 5)
    y, ctx = K.dropout_forward(K.asarray(x), 0.3, 42)
    yr, ctxr = R.dropout_forward(x, 0.3, 42)
    np.testing.assert_array_equal(K.to_numpy(y), yr)
    dy = f32(rng, *x.shape)
    np.testing.assert_array_equal(K.to_numpy(K.dropout_backward(K.asarray(dy), ctx)),
                                  R.dropout_backward(dy, ctxr))  # fmt: skip


# --------------------------------------------------------------------------- losses
def _loss_inputs(rng, kind, from_logits, N=5 * S, Kc=3):
    if kind == "sparse_categorical_crossentropy":
        y_true = rng.integers(0, Kc, N)
    elif kind == "categorical_crossentropy":
        y_true = np.eye(Kc, dtype=np.float32)[rng.integers(0, Kc, N)]
    else:
        y_true = rng.integers(0, 2, (N, Kc)).astype(np.float32)
    z = f32(rng, N, Kc) * 3
    if from_logits:
        y_pred = z
    elif kind == "mse":
        y_pred = z
    elif kind.startswith("binary"):
        y_pred = R._act(z, "sigmoid")
        y_pred[0, 0] = 1.0  # clipped: zero gradient there
    else:
        y_pred = R._act(z, "softmax")
    return y_pred, y_true


LOSS_CASES = [(k, fl) for k in kernels.LOSSES for fl in (False, True) if not (k == "mse" and fl)]


@pytest.mark.parametrize("kind,from_logits", LOSS_CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_losses(rng, kind, from_logits, weighted):
    y_pred, y_true = _loss_inputs(rng, kind, from_logits)
    w = rng.uniform(0.5, 2, y_pred.shape[0]).astype(np.float32) if weighted else None
    extra = dict(gamma=2.0, alpha=0.25) if kind == "binary_focal_crossentropy" and weighted else {}
    loss, ctx = K.loss_forward(kind, K.asarray(y_pred), y_true, w, from_logits, **extra)
    loss_r, ctx_r = R.loss_forward(kind, y_pred, y_true, w, from_logits, **extra)
    assert isinstance(loss, float)
    assert loss == pytest.approx(loss_r, rel=2e-6, abs=1e-7)
    close(K.loss_backward(ctx), R.loss_backward(ctx_r), rtol=2e-5, atol=1e-7)


def test_loss_shapes_and_bad_labels(rng):
    y = R._act(f32(rng, 4), "sigmoid")  # (N,) predictions
    t = np.array([0, 1, 1, 0], np.float32)
    loss, ctx = K.loss_forward("binary_crossentropy", y, t, None, False)
    loss_r, ctx_r = R.loss_forward("binary_crossentropy", y, t, None, False)
    assert loss == pytest.approx(loss_r, rel=2e-6)
    close(K.loss_backward(ctx), R.loss_backward(ctx_r), rtol=2e-5, atol=1e-7)
    z = f32(rng, 4, 3)
    labels = np.array([[0], [2], [1], [2]])  # (N, 1) labels, uploaded by the caller
    got = K.loss_forward("sparse_categorical_crossentropy", z, K.asarray(labels), None, True)[0]
    assert got == pytest.approx(R.loss_forward("sparse_categorical_crossentropy", z, labels, None, True)[0])
    with pytest.raises(InvalidValueError, match="labels"):
        K.loss_forward("sparse_categorical_crossentropy", z, np.array([0, 3, 1, 2]), None, True)


# --------------------------------------------------------------------------- optimizers
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd(rng, momentum, nesterov):
    p, v = f32(rng, 4 * S, 3), np.zeros((4 * S, 3), np.float32)
    pd, vd = K.asarray(p), K.asarray(v)
    for _ in range(3):
        g = f32(rng, 4 * S, 3)
        K.sgd_update(pd, K.asarray(g), vd, 0.01, momentum, nesterov)
        R.sgd_update(p, g, v, 0.01, momentum, nesterov)
    close(pd, p, **EW)
    close(vd, v, **EW)


def test_adam(rng):
    p = f32(rng, 5 * S, 2)
    m, v = np.zeros_like(p), np.zeros_like(p)
    pd, md, vd = K.asarray(p), K.asarray(m), K.asarray(v)
    for t in range(1, 4):
        g = f32(rng, 5 * S, 2)
        K.adam_update(pd, K.asarray(g), md, vd, 1e-3, 0.9, 0.999, 1e-7, t)
        R.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7, t)
    close(pd, p, **EW)
    close(md, m, **EW)
    close(vd, v, **EW)
    # host arrays are updated in place too
    ph, mh, vh = p.copy(), m.copy(), v.copy()
    K.adam_update(ph, g, mh, vh, 1e-3, 0.9, 0.999, 1e-7, 4)
    R.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7, 4)
    np.testing.assert_allclose(ph, p, **EW)


# --------------------------------------------------------------------------- a training step
def _train_step(B, params, state, x, labels, t):
    """Forward, loss, backward and Adam of conv(3x3, 4, relu) -> maxpool(2) -> dense(3), chained
    through the contract of backend module ``B`` (arrays stay in B's memory)."""
    y1, c1 = B.conv2d_forward(x, params["cw"], params["cb"], (1, 1), "valid", "relu")
    y2, c2 = B.maxpool2d_forward(y1, (2, 2), (2, 2), "valid")
    flat = y2.reshape(y2.shape[0], -1)
    z, c3 = B.dense_forward(flat, params["dw"], params["db"], "linear")
    loss, cl = B.loss_forward("sparse_categorical_crossentropy", z, labels, None, True)
    dz = B.loss_backward(cl)
    dflat, ddw, ddb = B.dense_backward(dz, c3)
    dy1 = B.maxpool2d_backward(dflat.reshape(y2.shape), c2)
    _, dcw, dcb = B.conv2d_backward(dy1, c1, need_dx=False)
    grads = {"cw": dcw, "cb": dcb, "dw": ddw, "db": ddb}
    for k in params:
        B.adam_update(params[k], grads[k], state[k][0], state[k][1], 1e-2, 0.9, 0.999, 1e-7, t)
    return loss


def test_one_training_step_matches_the_reference(rng):
    """Same loss (rel 1e-6) and same updated weights and moments (atol 1e-6) after two steps."""
    x = f32(rng, 2 * S, 6, 6, 1)
    labels = rng.integers(0, 3, 2 * S)
    host = {"cw": f32(rng, 3, 3, 1, 4) * 0.5, "cb": f32(rng, 4) * 0.1, "dw": f32(rng, 16, 3) * 0.3,
            "db": np.zeros(3, np.float32)}  # fmt: skip
    ref = {k: v.copy() for k, v in host.items()}
    ref_state = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in host.items()}
    dev = {k: K.asarray(v) for k, v in host.items()}
    dev_state = {k: (K.asarray(np.zeros_like(v)), K.asarray(np.zeros_like(v))) for k, v in host.items()}
    xd, ld = K.asarray(x), K.asarray(labels.astype(np.int32))
    for t in (1, 2):
        loss = _train_step(K, dev, dev_state, xd, ld, t)
        loss_r = _train_step(R, ref, ref_state, x, labels, t)
        assert loss == pytest.approx(loss_r, rel=1e-6)
    for k in host:
        assert not isinstance(dev[k], np.ndarray)  # the parameters stayed on the device
        close(dev[k], ref[k], rtol=1e-5, atol=1e-6)
        close(dev_state[k][0], ref_state[k][0], rtol=1e-5, atol=1e-6)
        close(dev_state[k][1], ref_state[k][1], rtol=1e-5, atol=1e-7)
    assert not np.allclose(K.to_numpy(dev["cw"]), host["cw"])  # and they did move


# --------------------------------------------------------------------------- launch signatures
def test_every_launch_matches_a_signature_the_ptx_test_compiles():
    """The PTX test compiles exactly ``cc.SIGNATURES``; every launch of this file must match one."""
    assert _LAUNCHES, "run the whole file: the launches of the other tests are checked here"
    seen = set()
    for name, dtype, sig in _LAUNCHES:
        T = cc.numba.from_dtype(dtype)
        assert sig in [tuple(s) for s in cc.SIGNATURES[name](T)], (name, dtype, sig)
        seen.add(name)
    assert seen == set(cc.SIGNATURES), f"kernels never launched: {set(cc.SIGNATURES) - seen}"
