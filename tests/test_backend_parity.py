"""One parity suite for every backend of the kernel contract (:mod:`tinycnn.kernels`).

Every test runs once per backend. Value tests compare ``cpu`` (Numba) and ``cuda``
(numba-cuda) with the NumPy reference; contract tests (signatures, dtypes, in-place updates,
bad input) hold every backend, the reference included, to the same behaviour, down to the
type and message of each error. A backend that drifts from the others fails here.

Processes. The ``cuda`` backend needs a GPU or numba's CUDA simulator, and the simulator must
be switched on before numba is imported, so ``tests/run.sh`` runs this file twice: in the main
suite (``numpy`` and ``cpu``; ``cuda`` too when a GPU is present, else its cases are skipped
with that reason), and as ``NUMBA_ENABLE_CUDASIM=1 pytest tests/test_backend_parity.py -m
cudasim``, where only the ``cuda`` cases run, on smaller shapes and with fewer Hypothesis
examples (the simulator runs one Python thread per CUDA thread, ~0.3-0.5 ms each).

Tolerances (float32). Both sides sum in a different order: a sum of L products of unit-scale
values carries a rounding error of about sqrt(L) * 6e-8 typically and L * 6e-8 at worst.
``cpu``: ``rtol=1e-4`` plus ``atol = 1e-6 * L`` with L the reduction length of each output
(KH*KW*C for y, KH*KW*F for dx, N*OH*OW for dw and db): at least 10x above the worst case for
the sizes drawn, far below an indexing mistake (which changes values by O(1)). ``cuda``
(small shapes, sums of at most a few hundred products): ``rtol = atol = 2e-5``; elementwise
kernels ``1e-6``. Dropout and max-pool routing: exact. float64: ``1e-10`` (cpu), ``1e-12``
(cuda).
"""

import importlib.util
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba.core import config
from tinycnn.kernels import CONTRACT, LOSSES
from tinycnn.kernels import reference as R
from tinycnn.kernels.shapes import conv_geometry

from tinycnn import backend
from tinycnn.errors import BackendError, ConfigError, DTypeError, InvalidValueError, ShapeError, TinyCNNError

F32 = np.float32
SIM = bool(config.ENABLE_CUDASIM)


def examples(n=8):
    """Hypothesis settings: ``n`` examples in the simulator, the profile's number elsewhere."""
    return settings(max_examples=n) if SIM else settings()


def _cuda_unavailable():
    if importlib.util.find_spec("numba_cuda") is None:
        return "numba-cuda is not installed (pip install tinycnn[cuda])"
    try:
        backend.load("cuda")
    except BackendError:
        return "no CUDA GPU here: tests/run.sh runs the cuda cases in numba's CUDA simulator"
    return None


_CUDA_MISSING = _cuda_unavailable()
_CUDA = [] if _CUDA_MISSING else [pytest.param("cuda", marks=pytest.mark.cudasim)]


@pytest.mark.cudasim
@pytest.mark.skipif(_CUDA_MISSING is not None, reason=str(_CUDA_MISSING))
def test_the_cuda_backend_is_under_test_here():
    """Reports once, as a skip, why the ``cuda`` cases do not run in this process."""
    assert _CUDA and backend.load("cuda") is not None


class Backend:
    """A backend under test: its module, and conversions between host and backend arrays."""

    def __init__(self, name):
        self.name = name
        self.mod = backend.load(name)

    def __getattr__(self, op):
        return getattr(self.mod, op)

    def np(self, a):
        return None if a is None else np.asarray(self.mod.to_numpy(a))

    def tol(self, L=1, elementwise=False, dtype=F32):
        """assert_allclose tolerances against the reference (see the module docstring)."""
        if np.dtype(dtype) == np.float64:
            return dict(rtol=1e-10, atol=1e-10) if self.name == "cpu" else dict(rtol=1e-12, atol=1e-12)
        if self.name == "cpu":
            return dict(rtol=1e-4, atol=1e-6 * max(L, 1))
        if self.name == "cuda":
            return dict(rtol=1e-6, atol=1e-6) if elementwise else dict(rtol=2e-5, atol=2e-5)
        return dict(rtol=0, atol=0)

    def close(self, got, want, L=1, elementwise=False, **tol):
        got = self.np(got)
        assert got.shape == np.shape(want)
        assert got.dtype == np.asarray(want).dtype
        np.testing.assert_allclose(got, want, **(tol or self.tol(L, elementwise, got.dtype)))


@pytest.fixture(scope="module", params=["numpy", "cpu", *_CUDA])
def B(request):
    """Every backend, the reference included (contract tests)."""
    return Backend(request.param)


@pytest.fixture(scope="module", params=["cpu", *_CUDA])
def K(request):
    """The backends compared with the reference (value tests)."""
    return Backend(request.param)


def randn(rng, *shape, dtype=F32):
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)


# --------------------------------------------------------------------------- the contract
def test_every_contract_name_with_the_reference_signature(B):
    for name in CONTRACT:
        assert callable(getattr(B.mod, name, None)), name
        assert inspect.signature(getattr(B.mod, name)) == inspect.signature(getattr(R, name)), name


def test_asarray_and_to_numpy_round_trip(B, rng):
    x = rng.standard_normal((3, 4))[:, ::2]  # float64, not contiguous
    d = B.asarray(x, F32)
    assert d.shape == (3, 2) and d.dtype == F32
    assert B.asarray(d) is d and B.asarray(d, F32) is d  # the backend's own arrays pass through
    np.testing.assert_array_equal(B.np(d), x.astype(F32))
    d64 = B.asarray(d, np.float64)
    assert d64.dtype == np.float64
    np.testing.assert_array_equal(B.np(d64), x.astype(F32).astype(np.float64))


def test_integer_inputs_are_computed_in_float32_and_complex_ones_refused(B):
    y, _ = B.activation_forward(B.asarray(np.arange(-2, 2)), "relu")
    assert B.np(y).dtype == F32 and B.np(y).tolist() == [0, 0, 0, 1]
    with pytest.raises(DTypeError):
        B.activation_forward(np.arange(4) + 1j, "relu")


def test_geometry_same_rule():
    # every backend computes its windows with shapes.conv_geometry; the TensorFlow 'same' rule
    assert conv_geometry(5, 5, 2, 2, (2, 2), "same") == (3, 3, (0, 1, 0, 1))
    assert conv_geometry(7, 6, 3, 3, (1, 2), "valid") == (5, 2, (0, 0, 0, 0))


# --------------------------------------------------------------------------- convolution
@st.composite
def conv_cases(draw):
    small = SIM
    N = draw(st.integers(1, 2 if small else 4))
    C = draw(st.integers(1, 3 if small else 8))
    F = draw(st.integers(1, 3 if small else 6))
    KH, KW = draw(st.integers(1, 3 if small else 5)), draw(st.integers(1, 3 if small else 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    H = draw(st.integers(KH if padding == "valid" else 1, 7 if small else 11))
    W = draw(st.integers(KW if padding == "valid" else 1, 7 if small else 11))
    act = draw(st.sampled_from(["linear", "relu", "sigmoid", "tanh"]))
    return (N, H, W, C), (KH, KW, C, F), stride, padding, act


def check_conv(K, rng, xs, ws, stride, padding, act, bias=True):
    x, w = randn(rng, *xs), randn(rng, *ws)
    b = randn(rng, ws[-1]) if bias else None
    y, ctx = K.conv2d_forward(K.asarray(x), K.asarray(w), None if b is None else K.asarray(b), stride,
                              padding, act)
    yr, ctxr = R.conv2d_forward(x, w, b, stride, padding, act)
    KH, KW, C, F = ws
    rows = yr.shape[0] * yr.shape[1] * yr.shape[2]
    K.close(y, yr, KH * KW * C)
    dy = randn(rng, *yr.shape)
    got, want = K.conv2d_backward(K.asarray(dy), ctx), R.conv2d_backward(dy, ctxr)
    for g, r, L in zip(got, want, (KH * KW * F, rows, rows), strict=True):
        assert (g is None) == (r is None)
        if r is not None:
            K.close(g, r, L)
    dx, dw, _ = K.conv2d_backward(K.asarray(dy), ctx, need_dx=False)
    assert dx is None
    K.close(dw, want[1], rows)


def test_conv2d_random_geometry(K):
    @examples()
    @given(case=conv_cases(), seed=st.integers(0, 2**16))
    def run(case, seed):
        check_conv(K, np.random.default_rng(seed), *case)

    run()


CONV_CASES = [
    # (N, H, W, C), (KH, KW, F), stride, padding, activation, bias
    ((2, 6, 6, 3), (3, 3, 4), (1, 1), "valid", "relu", True),
    ((2, 7, 6, 2), (3, 3, 5), (2, 2), "same", "linear", True),
    ((1, 5, 7, 3), (3, 2, 4), (2, 1), "valid", "tanh", False),
    ((2, 5, 5, 3), (1, 1, 4), (1, 1), "same", "sigmoid", True),  # 1x1: no im2col
    ((2, 6, 7, 5), (3, 3, 4), (1, 1), "valid", "relu", False),  # no bias
]


@pytest.mark.parametrize("xs,ws,stride,padding,act,bias", CONV_CASES)
def test_conv2d_cases(K, rng, xs, ws, stride, padding, act, bias):
    check_conv(K, rng, xs, ws[:2] + (xs[3], ws[2]), stride, padding, act, bias)


FLOAT64_CASES = [((2, 8, 7, 1), (3, 3, 1, 3), (1, 2), "same"), ((2, 8, 7, 6), (3, 3, 6, 3), (1, 2), "same"),
                 ((2, 8, 7, 40), (1, 1, 40, 3), (1, 2), "same"), ((1, 5, 5, 2), (3, 3, 2, 3), (2, 2), "same")]


@pytest.mark.parametrize("xs,ws,stride,padding", FLOAT64_CASES[-1:] if SIM else FLOAT64_CASES)
def test_conv2d_float64(K, rng, xs, ws, stride, padding):
    x, w, b = randn(rng, *xs, dtype=np.float64), randn(rng, *ws, dtype=np.float64), randn(rng, ws[3])
    y, ctx = K.conv2d_forward(x, w, b, stride, padding, "tanh")  # host arrays are accepted everywhere
    yr, ctxr = R.conv2d_forward(x, w, b, stride, padding, "tanh")
    K.close(y, yr)
    dy = randn(rng, *yr.shape, dtype=np.float64)
    for g, r in zip(K.conv2d_backward(dy, ctx), R.conv2d_backward(dy, ctxr), strict=True):
        K.close(g, r)


# --------------------------------------------------------------------------- pooling
@st.composite
def pool_cases(draw):
    small = SIM
    PH, PW = draw(st.integers(1, 3 if small else 4)), draw(st.integers(1, 3 if small else 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    H = draw(st.integers(PH if padding == "valid" else 1, 7 if small else 10))
    W = draw(st.integers(PW if padding == "valid" else 1, 7 if small else 10))
    shape = (draw(st.integers(1, 2 if small else 4)), H, W, draw(st.integers(1, 3 if small else 5)))
    return shape, (PH, PW), stride, padding


def test_maxpool_random_geometry(K):
    @examples(10)
    @given(case=pool_cases(), seed=st.integers(0, 2**16), coarse=st.booleans())
    def run(case, seed, coarse):
        shape, pool, stride, padding = case
        rng = np.random.default_rng(seed)
        # coarse values make ties common: the gradient must still go to exactly one element
        x = rng.integers(0, 3, shape).astype(F32) if coarse else randn(rng, *shape)
        y, ctx = K.maxpool2d_forward(K.asarray(x), pool, stride, padding)
        yr, ctxr = R.maxpool2d_forward(x, pool, stride, padding)
        np.testing.assert_array_equal(K.np(y), yr)
        dy = randn(rng, *yr.shape)
        K.close(K.maxpool2d_backward(K.asarray(dy), ctx), R.maxpool2d_backward(dy, ctxr), pool[0] * pool[1],
                elementwise=True)

    run()


@pytest.mark.parametrize("shape,pool,stride,padding", [
    ((2, 6, 6, 3), (2, 2), (2, 2), "valid"), ((1, 7, 5, 2), (3, 3), (2, 2), "same"),
    ((1, 5, 6, 2), (3, 2), (1, 2), "valid")])
def test_maxpool_routes_each_gradient_exactly(K, rng, shape, pool, stride, padding):
    x = randn(rng, *shape)  # no ties: dx equal bit for bit means the same argmax everywhere
    y, ctx = K.maxpool2d_forward(K.asarray(x), pool, stride, padding)
    yr, ctxr = R.maxpool2d_forward(x, pool, stride, padding)
    np.testing.assert_array_equal(K.np(y), yr)
    dy = randn(rng, *yr.shape)
    np.testing.assert_array_equal(K.np(K.maxpool2d_backward(K.asarray(dy), ctx)), R.maxpool2d_backward(dy, ctxr))


def test_maxpool_ties_and_nan_go_to_the_first_maximum(K):
    # constant windows: every element ties, the first one (row-major) gets the gradient
    x = np.ones((1, 4, 4, 2), F32)
    y, ctx = K.maxpool2d_forward(x, (2, 2), (2, 2), "valid")
    dx = K.np(K.maxpool2d_backward(np.full((1, 2, 2, 2), 3, F32), ctx))
    want = np.zeros_like(x)
    want[:, ::2, ::2, :] = 3
    np.testing.assert_array_equal(dx, want)
    # NaN wins, as np.argmax decides (the first NaN of the window)
    x[0, 1, 1, 0] = np.nan
    y, ctx = K.maxpool2d_forward(x, (2, 2), (2, 2), "valid")
    assert np.isnan(K.np(y)[0, 0, 0, 0])
    assert K.np(K.maxpool2d_backward(np.ones((1, 2, 2, 2), F32), ctx))[0, 1, 1, 0] == 1
    # overlapping windows (stride < pool) that share one maximum: gradients add up there
    x = np.zeros((1, 5, 5, 1), F32)
    x[0, 2, 2, 0] = 1
    dy = np.arange(1, 10, dtype=F32).reshape(1, 3, 3, 1)
    y, ctx = K.maxpool2d_forward(x, (3, 3), (1, 1), "valid")
    got = K.np(K.maxpool2d_backward(dy, ctx))
    np.testing.assert_array_equal(got, R.maxpool2d_backward(dy, R.maxpool2d_forward(x, (3, 3), (1, 1), "valid")[1]))
    assert got[0, 2, 2, 0] == dy.sum() and got.sum() == dy.sum()


def test_global_avgpool(K, rng):
    x = randn(rng, 3, 5, 7, 4)
    y, ctx = K.global_avgpool_forward(K.asarray(x))
    yr, ctxr = R.global_avgpool_forward(x)
    K.close(y, yr, 35, elementwise=True)
    dy = randn(rng, *yr.shape)
    K.close(K.global_avgpool_backward(K.asarray(dy), ctx), R.global_avgpool_backward(dy, ctxr), elementwise=True)


@pytest.mark.parametrize("dtype", [F32, np.float64])
def test_add(K, rng, dtype):
    a, b = randn(rng, 3, 5, 4, 2, dtype=dtype), randn(rng, 3, 5, 4, 2, dtype=dtype)
    got = K.np(K.add(K.asarray(a), b))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, a + b)  # one rounding per element: exact everywhere


# --------------------------------------------------------------------------- dense, activations
def test_dense_random_sizes(K):
    @examples(4)
    @given(N=st.integers(1, 5), D=st.integers(1, 12 if SIM else 40), U=st.integers(1, 9), seed=st.integers(0, 999),
           act=st.sampled_from(["linear", "relu", "sigmoid", "tanh"]), use_bias=st.booleans())
    def run(N, D, U, seed, act, use_bias):
        rng = np.random.default_rng(seed)
        x, w = randn(rng, N, D), randn(rng, D, U)
        b = randn(rng, U) if use_bias else None
        y, ctx = K.dense_forward(K.asarray(x), K.asarray(w), None if b is None else K.asarray(b), act)
        yr, ctxr = R.dense_forward(x, w, b, act)
        K.close(y, yr, D)
        dy = randn(rng, *yr.shape)
        got, want = K.dense_backward(K.asarray(dy), ctx), R.dense_backward(dy, ctxr)
        for g, r, L in zip(got, want, (U, N, N), strict=True):
            assert (g is None) == (r is None)
            if r is not None:
                K.close(g, r, L)
        assert K.dense_backward(K.asarray(dy), ctx, need_dx=False)[0] is None

    run()


@pytest.mark.parametrize("act,bias", [("linear", True), ("relu", False), ("sigmoid", True), ("tanh", True)])
def test_dense_cases(K, rng, act, bias):
    x, w = randn(rng, 3, 10), randn(rng, 10, 6)
    b = randn(rng, 6) if bias else None
    y, ctx = K.dense_forward(x, w, b, act)  # host arrays are accepted everywhere
    yr, ctxr = R.dense_forward(x, w, b, act)
    K.close(y, yr, 10)
    dy = randn(rng, *yr.shape)
    for g, r, L in zip(K.dense_backward(dy, ctx), R.dense_backward(dy, ctxr), (6, 3, 3), strict=True):
        assert (g is None) == (r is None)
        if r is not None:
            K.close(g, r, L)


@pytest.mark.parametrize("kind", ["linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"])
def test_activations(K, rng, kind):
    x = randn(rng, 3, 4, 5) * 4
    x[0, 0, :3] = [60.0, -60.0, 0.0]  # saturated sigmoid/tanh/softmax stay finite; relu at 0
    y, ctx = K.activation_forward(K.asarray(x), kind, alpha=0.2)
    yr, ctxr = R.activation_forward(x, kind, alpha=0.2)
    K.close(y, yr, 5, elementwise=True)
    dy = randn(rng, *x.shape)
    K.close(K.activation_backward(K.asarray(dy), ctx), R.activation_backward(dy, ctxr), 5, elementwise=True)


def test_nan_passes_through_relu(K):
    x = np.array([np.nan, -1.0, 2.0], F32)
    y, _ = K.activation_forward(x, "relu")
    np.testing.assert_array_equal(K.np(y), R.activation_forward(x, "relu")[0])


# --------------------------------------------------------------------------- batch norm, dropout
@pytest.mark.parametrize("shape,training", [((4, 5, 3, 6), True), ((4, 5, 3, 6), False), ((7, 3), True)])
def test_batchnorm(K, rng, shape, training):
    x = randn(rng, *shape) * 3 + 2
    C = shape[-1]
    M = x.size // C
    gamma, beta = randn(rng, C), randn(rng, C)
    rm, rv = rng.random(C).astype(F32), rng.random(C).astype(F32) + 0.5
    rm_k, rv_k = K.asarray(rm.copy()), K.asarray(rv.copy())
    y, ctx = K.batchnorm_forward(K.asarray(x), gamma, beta, rm_k, rv_k, 0.9, 1e-3, training)
    yr, ctxr = R.batchnorm_forward(x, gamma, beta, rm, rv, 0.9, 1e-3, training)
    K.close(y, yr, M)
    K.close(rm_k, rm, M, elementwise=True)  # updated in place (unchanged in inference)
    K.close(rv_k, rv, M, elementwise=True)
    dy = randn(rng, *shape)
    for g, r in zip(K.batchnorm_backward(K.asarray(dy), ctx), R.batchnorm_backward(dy, ctxr), strict=True):
        # training dx subtracts near-equal sums
        K.close(g, r, **(dict(rtol=1e-3, atol=1e-6 * M) if K.name == "cpu" else dict(rtol=1e-4, atol=1e-4)))


def test_batchnorm_updates_host_running_statistics_in_place(K, rng):
    x = randn(rng, 6, 3)
    rm, rv = np.zeros(3, F32), np.ones(3, F32)
    rm2, rv2 = rm.copy(), rv.copy()
    K.batchnorm_forward(x, np.ones(3, F32), np.zeros(3, F32), rm, rv, 0.5, 1e-3, True)
    R.batchnorm_forward(x, np.ones(3, F32), np.zeros(3, F32), rm2, rv2, 0.5, 1e-3, True)
    np.testing.assert_allclose(rm, rm2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rv, rv2, rtol=1e-6, atol=1e-6)


class _Peer:
    """The other process of a two-process data-parallel run, holding the rest of the batch: its
    ``__call__`` is the ``allreduce`` of the process under test, adding this process's sums (in
    float64) in the order the contract gives (forward: [sum x, count], [sum (x - mean)**2];
    backward: [sum dy, sum dy * xhat, count])."""

    def __init__(self, x, dy, epsilon):
        C = x.shape[-1]
        self.x, self.dy, self.epsilon = x.reshape(-1, C).astype(np.float64), dy.reshape(-1, C), epsilon
        self.calls = 0

    def __call__(self, arrays):
        self.calls += 1
        n_here = len(self.x)
        if self.calls == 1:
            s, n = arrays
            self.n = n[0] + n_here
            self.mean = (s + self.x.sum(axis=0)) / self.n
            return [s + self.x.sum(axis=0), n + n_here]
        if self.calls == 2:
            (q,) = arrays
            q = q + ((self.x - self.mean) ** 2).sum(axis=0)
            self.var = q / self.n
            return [q]
        sum_dy, sum_dy_xhat, n = arrays
        xhat = (self.x - self.mean) / np.sqrt(self.var + self.epsilon)
        self.dgamma = (self.dy * xhat).sum(axis=0)
        return [sum_dy + self.dy.sum(axis=0), sum_dy_xhat + self.dgamma, n + n_here]


@pytest.mark.parametrize("shape", [(6, 3, 2, 4), (9, 3)])
def test_synchronized_batchnorm_is_batchnorm_of_the_global_batch(B, rng, shape):
    """One half of the batch here, the other on a peer: outputs, running statistics, dx and the
    summed dgamma equal batch normalisation of the whole batch (reference, float64; float32
    results to rtol 1e-4, atol 1e-5)."""
    x, dy = randn(rng, *shape) * 3 + 1, randn(rng, *shape)
    C, h = shape[-1], shape[0] // 3
    gamma, beta = randn(rng, C), randn(rng, C)
    rm, rv = np.zeros(C), np.ones(C)
    full, ctx = R.batchnorm_forward(x.astype(np.float64), gamma, beta, rm, rv, 0.9, 1e-3, True)
    full_dx, full_dgamma, _ = R.batchnorm_backward(dy.astype(np.float64), ctx)
    peer = _Peer(x[h:], dy[h:], 1e-3)
    rm_b, rv_b = B.asarray(np.zeros(C, F32)), B.asarray(np.ones(C, F32))
    y, ctx = B.batchnorm_forward(B.asarray(x[:h]), gamma, beta, rm_b, rv_b, 0.9, 1e-3, True, allreduce=peer)
    dx, dgamma, _ = B.batchnorm_backward(B.asarray(dy[:h]), ctx)
    assert peer.calls == 3
    tol = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(B.np(y), full[:h], **tol)
    np.testing.assert_allclose(B.np(rm_b), rm, **tol)
    np.testing.assert_allclose(B.np(rv_b), rv, **tol)
    np.testing.assert_allclose(B.np(dx), full_dx[:h], **tol)
    np.testing.assert_allclose(B.np(dgamma) + peer.dgamma, full_dgamma, **tol)
    # inference ignores allreduce
    B.batchnorm_forward(x[:h], gamma, beta, rm_b, rv_b, 0.9, 1e-3, False, allreduce=peer)
    assert peer.calls == 3


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.75])
def test_dropout_matches_the_reference_bit_for_bit(K, rng, rate):
    x = randn(rng, 4, 33)
    y, ctx = K.dropout_forward(K.asarray(x), rate, 7)
    yr, ctxr = R.dropout_forward(x, rate, 7)
    np.testing.assert_array_equal(K.np(y), yr)
    dy = randn(rng, *x.shape)
    np.testing.assert_array_equal(K.np(K.dropout_backward(K.asarray(dy), ctx)), R.dropout_backward(dy, ctxr))


# --------------------------------------------------------------------------- losses
def _loss_inputs(rng, kind, logits, N=6, C=4):
    z = randn(rng, N, C) * 3
    if kind == "binary_crossentropy":
        z = z[:, :1]
    if not logits and kind != "mse":  # probabilities, including values beyond the clip bounds
        z = R.activation_forward(z, "softmax" if "categorical" in kind else "sigmoid")[0]
        z.flat[0] = 0.0
        z.flat[1] = 1.0
    if kind == "sparse_categorical_crossentropy":
        t = rng.integers(0, C, N)
    elif kind == "categorical_crossentropy":
        t = np.eye(C, dtype=F32)[rng.integers(0, C, N)]
    else:
        t = (rng.random(z.shape) > 0.5).astype(F32)
    return z, t


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("logits", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_losses(K, rng, kind, logits, weighted):
    z, t = _loss_inputs(rng, kind, logits)
    w = rng.uniform(0.5, 2, z.shape[0]).astype(F32) if weighted else None
    extra = dict(gamma=2.0, alpha=0.25) if kind == "binary_focal_crossentropy" and weighted else {}
    loss, ctx = K.loss_forward(kind, K.asarray(z), t, w, logits, **extra)
    loss_r, ctx_r = R.loss_forward(kind, z, t, w, logits, **extra)
    assert isinstance(loss, float)
    cuda = K.name == "cuda"
    assert loss == (pytest.approx(loss_r, rel=2e-6, abs=1e-7) if cuda else pytest.approx(loss_r, rel=1e-5, abs=1e-6))
    K.close(K.loss_backward(ctx), R.loss_backward(ctx_r), **(dict(rtol=2e-5, atol=1e-7) if cuda else {}))


def test_loss_shapes_and_labels(K, rng):
    y = R.activation_forward(randn(rng, 4), "sigmoid")[0]  # (N,) predictions
    t = np.array([0, 1, 1, 0], F32)
    loss, ctx = K.loss_forward("binary_crossentropy", y, t, None, False)
    loss_r, ctx_r = R.loss_forward("binary_crossentropy", y, t, None, False)
    assert loss == pytest.approx(loss_r, rel=2e-6)
    K.close(K.loss_backward(ctx), R.loss_backward(ctx_r), rtol=2e-5, atol=1e-7)
    z = randn(rng, 4, 3)
    labels = np.array([[0], [2], [1], [2]])  # (N, 1) labels, in the backend's memory
    got = K.loss_forward("sparse_categorical_crossentropy", z, K.asarray(labels), None, True)[0]
    assert got == pytest.approx(R.loss_forward("sparse_categorical_crossentropy", z, labels, None, True)[0])
    for bad in (np.array([0, 3, 1, 2]), K.asarray(np.array([0, 3, 1, -1]))):  # host, then backend memory
        with pytest.raises(InvalidValueError, match="labels"):
            K.loss_forward("sparse_categorical_crossentropy", z, bad, None, True)


def test_bce_from_logits_is_stable(K):
    z = np.array([[80.0], [-80.0], [0.0]], F32)
    t = np.array([[0.0], [1.0], [1.0]], F32)
    loss, ctx = K.loss_forward("binary_crossentropy", z, t, None, True)
    assert np.isfinite(loss) and np.all(np.isfinite(K.np(K.loss_backward(ctx))))
    np.testing.assert_allclose(loss, (80 + 80 + np.log(2)) / 3, rtol=1e-6)


# --------------------------------------------------------------------------- optimizers
def test_adam_updates_in_place_like_the_reference(K, rng):
    p = randn(rng, 5, 7)
    m, v = np.zeros_like(p), np.zeros_like(p)
    pk, mk, vk = K.asarray(p.copy()), K.asarray(m.copy()), K.asarray(v.copy())
    ids = id(pk), id(mk), id(vk)
    for t in range(1, 6):
        g = randn(rng, *p.shape)
        assert K.adam_update(pk, K.asarray(g), mk, vk, 1e-2, 0.9, 0.999, 1e-7, t) is None
        R.adam_update(p, g, m, v, 1e-2, 0.9, 0.999, 1e-7, t)
    assert (id(pk), id(mk), id(vk)) == ids
    K.close(mk, m, rtol=1e-5, atol=1e-7)
    K.close(vk, v, rtol=1e-5, atol=1e-7)
    K.close(pk, p, rtol=1e-5, atol=1e-6)
    # host arrays are updated in place too
    ph, mh, vh = p.copy(), m.copy(), v.copy()
    K.adam_update(ph, g, mh, vh, 1e-3, 0.9, 0.999, 1e-7, 6)
    R.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7, 6)
    np.testing.assert_allclose(ph, p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_updates_in_place_like_the_reference(K, rng, momentum, nesterov):
    p, vel = randn(rng, 4, 3, 2), np.zeros((4, 3, 2), F32)
    pk, vk = K.asarray(p.copy()), K.asarray(vel.copy())
    for _ in range(5):
        g = randn(rng, *p.shape)
        K.sgd_update(pk, K.asarray(g), vk, 0.05, momentum, nesterov)
        R.sgd_update(p, g, vel, 0.05, momentum, nesterov)
    K.close(pk, p, rtol=1e-5, atol=1e-6)
    K.close(vk, vel, rtol=1e-5, atol=1e-6)


def test_optimizers_update_non_contiguous_host_parameters(K, rng):
    base = randn(rng, 6, 8)
    p, pr = base[:, ::2], base.copy()[:, ::2]
    g = randn(rng, *p.shape)
    K.adam_update(p, g, np.zeros_like(p), np.zeros_like(p), 0.1, 0.9, 0.999, 1e-7, 1)
    R.adam_update(pr, g, np.zeros_like(p), np.zeros_like(p), 0.1, 0.9, 0.999, 1e-7, 1)
    np.testing.assert_allclose(p, pr, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(base[:, 1::2], base.copy()[:, 1::2])  # the rest untouched


# --------------------------------------------------------------------------- bad input
def _readonly(a):
    a.flags.writeable = False
    return a


def _ones(*shape, dtype=F32):
    return np.ones(shape, dtype)


X4, W4 = _ones(1, 5, 5, 1), _ones(3, 3, 1, 2)
BAD_CALLS = {
    "conv x rank": (ShapeError, lambda B: B.conv2d_forward(_ones(2, 5, 5), W4, None, (1, 1), "valid")),
    "conv channels": (ShapeError, lambda B: B.conv2d_forward(_ones(1, 5, 5, 3), _ones(3, 3, 2, 2), None, (1, 1),
                                                             "valid")),
    "conv too small": (ShapeError, lambda B: B.conv2d_forward(_ones(1, 2, 2, 1), W4, None, (1, 1), "valid")),
    "conv bias shape": (ShapeError, lambda B: B.conv2d_forward(X4, W4, _ones(3), (1, 1), "valid")),
    "conv zero stride": (ConfigError, lambda B: B.conv2d_forward(X4, W4, None, (0, 1), "valid")),
    "conv stride None": (ConfigError, lambda B: B.conv2d_forward(X4, W4, None, None, "valid")),
    "conv padding full": (ConfigError, lambda B: B.conv2d_forward(X4, W4, None, (1, 1), "full")),
    "conv padding bogus": (ConfigError, lambda B: B.conv2d_forward(X4, W4, None, (1, 1), "bogus")),
    "conv softmax": (ConfigError, lambda B: B.conv2d_forward(X4, W4, None, (1, 1), "valid", "softmax")),
    "conv complex": (DTypeError, lambda B: B.conv2d_forward(_ones(1, 5, 5, 1, dtype=complex), _ones(3, 3, 1, 2),
                                                            None, (1, 1), "valid")),
    "dense strings": (DTypeError, lambda B: B.dense_forward(np.array([["a"]]), _ones(1, 1), None)),
    "dense shapes": (ShapeError, lambda B: B.dense_forward(_ones(2, 3), _ones(4, 2), None)),
    "dense activation": (ConfigError, lambda B: B.dense_forward(_ones(2, 3), _ones(3, 2), None, "swish")),
    "maxpool too small": (ShapeError, lambda B: B.maxpool2d_forward(_ones(1, 1, 1, 1), (2, 2), (2, 2), "valid")),
    "maxpool stride None": (ConfigError, lambda B: B.maxpool2d_forward(_ones(1, 4, 4, 1), (2, 2), None, "valid")),
    "maxpool zero pool": (ConfigError, lambda B: B.maxpool2d_forward(_ones(1, 4, 4, 1), (0, 2), (2, 2), "valid")),
    "maxpool padding": (ConfigError, lambda B: B.maxpool2d_forward(_ones(1, 4, 4, 1), (2, 2), (2, 2), "bogus")),
    "avgpool rank": (ShapeError, lambda B: B.global_avgpool_forward(_ones(2, 3))),
    "avgpool empty": (ShapeError, lambda B: B.global_avgpool_forward(_ones(1, 0, 3, 2))),
    "activation kind": (ConfigError, lambda B: B.activation_forward(_ones(2, 3), "swish")),
    "softmax empty": (ShapeError, lambda B: B.activation_forward(_ones(2, 0), "softmax")),
    "batchnorm list": (DTypeError, lambda B: B.batchnorm_forward(_ones(4, 3), _ones(3), _ones(3), [0.0] * 3,
                                                                _ones(3), 0.9, 1e-3, True)),
    "batchnorm allreduce": (ConfigError, lambda B: B.batchnorm_forward(_ones(4, 3), _ones(3), _ones(3), _ones(3),
                                                                      _ones(3), 0.9, 1e-3, True, allreduce=1)),
    "batchnorm gamma": (ShapeError, lambda B: B.batchnorm_forward(_ones(4, 3), _ones(2), _ones(3), _ones(3),
                                                                 _ones(3), 0.9, 1e-3, True)),
    "dropout rate": (ConfigError, lambda B: B.dropout_forward(_ones(4, 3), 1.0, 0)),
    "add shapes": (ShapeError, lambda B: B.add(_ones(2, 3), _ones(3, 2))),
    "add complex": (DTypeError, lambda B: B.add(_ones(2, 3), _ones(2, 3, dtype=complex))),
    "loss kind": (ConfigError, lambda B: B.loss_forward("hinge", _ones(2, 1), _ones(2), None, False)),
    "loss targets": (ShapeError, lambda B: B.loss_forward("mse", _ones(2, 3), _ones(2, 2), None, False)),
    "loss weights": (ShapeError, lambda B: B.loss_forward("mse", _ones(2, 1), _ones(2, 1), _ones(3), False)),
    "loss empty batch": (ShapeError, lambda B: B.loss_forward("mse", _ones(0, 1), _ones(0, 1), None, False)),
    "loss no classes": (ShapeError, lambda B: B.loss_forward("categorical_crossentropy", _ones(2, 0), _ones(2, 0),
                                                            None, True)),
    "loss rank": (ShapeError, lambda B: B.loss_forward("categorical_crossentropy", _ones(2, 3, 2), _ones(2, 3, 2),
                                                      None, True)),
    "sparse labels": (InvalidValueError, lambda B: B.loss_forward("sparse_categorical_crossentropy", _ones(3, 2),
                                                                  np.array([0, 2, 1.5]), None, True)),
    "adam gradient": (ShapeError, lambda B: B.adam_update(_ones(3), _ones(4), _ones(3), _ones(3), 0.1, 0.9, 0.999,
                                                          1e-7, 1)),
    "sgd int parameter": (DTypeError, lambda B: B.sgd_update(np.ones(3, int), np.ones(3), None, 0.1, 0.0, False)),
    "adam read-only": (ConfigError, lambda B: B.adam_update(_readonly(_ones(3)), _ones(3), _ones(3), _ones(3), 0.1,
                                                            0.9, 0.999, 1e-7, 1)),
    "sgd velocity shape": (ShapeError, lambda B: B.sgd_update(_ones(3), _ones(3), _ones(2), 0.1, 0.9, False)),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_the_same_tinycnn_error_everywhere(B, case):
    error, call = BAD_CALLS[case]
    with pytest.raises(error) as info:
        call(B)
    assert isinstance(info.value, TinyCNNError)
    with pytest.raises(error) as ref:
        call(Backend("numpy"))
    assert str(info.value) == str(ref.value)  # the same message, word for word


def test_backward_checks_the_gradient_shape(B, rng):
    _, ctx = B.conv2d_forward(randn(rng, 1, 5, 5, 2), randn(rng, 3, 3, 2, 3), None, (1, 1), "valid")
    backwards = [
        lambda: B.conv2d_backward(_ones(1, 3, 3, 4), ctx),
        lambda: B.maxpool2d_backward(_ones(1, 3, 2, 2), B.maxpool2d_forward(randn(rng, 1, 4, 4, 2), 2, 2, "valid")[1]),
        lambda: B.dense_backward(_ones(2, 3), B.dense_forward(randn(rng, 2, 4), randn(rng, 4, 2), None)[1]),
        lambda: B.activation_backward(_ones(2, 3), B.activation_forward(randn(rng, 3, 2), "tanh")[1]),
        lambda: B.global_avgpool_backward(_ones(2, 3), B.global_avgpool_forward(randn(rng, 2, 3, 3, 2))[1]),
        lambda: B.batchnorm_backward(_ones(4, 2), B.batchnorm_forward(randn(rng, 4, 3), _ones(3), _ones(3),
                                                                      np.zeros(3, F32), _ones(3), 0.9, 1e-3,
                                                                      True)[1]),
        lambda: B.dropout_backward(_ones(3, 3), B.dropout_forward(randn(rng, 3, 4), 0.5, 1)[1]),
    ]
    for call in backwards:
        with pytest.raises(ShapeError, match="dy must have shape"):
            call()


def test_read_only_inputs_work(B, rng):
    x, w = _readonly(randn(rng, 2, 6, 6, 3)), _readonly(randn(rng, 3, 3, 3, 4))
    y, _ = B.conv2d_forward(x, w, None, (1, 1), "valid", "relu")
    np.testing.assert_allclose(B.np(y), R.conv2d_forward(x, w, None, (1, 1), "valid", "relu")[0],
                               rtol=1e-4, atol=1e-6 * 27)


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


def test_two_training_steps_match_the_reference(K, rng):
    """Same loss (rel 1e-6) and the same weights and moments (atol 1e-6) after two steps."""
    x = randn(rng, 2, 6, 6, 1)
    labels = rng.integers(0, 3, 2)
    host = {"cw": randn(rng, 3, 3, 1, 4) * 0.5, "cb": randn(rng, 4) * 0.1, "dw": randn(rng, 16, 3) * 0.3,
            "db": np.zeros(3, F32)}
    ref = {k: v.copy() for k, v in host.items()}
    ref_state = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in host.items()}
    dev = {k: K.asarray(v.copy()) for k, v in host.items()}
    dev_state = {k: (K.asarray(np.zeros_like(v)), K.asarray(np.zeros_like(v))) for k, v in host.items()}
    xd, ld = K.asarray(x), K.asarray(labels.astype(np.int32))
    for t in (1, 2):
        loss = _train_step(K.mod, dev, dev_state, xd, ld, t)
        loss_r = _train_step(R, ref, ref_state, x, labels, t)
        assert loss == pytest.approx(loss_r, rel=1e-6)
    for k in host:
        assert type(dev[k]) is type(xd)  # the parameters stayed in the backend's memory
        K.close(dev[k], ref[k], rtol=1e-5, atol=1e-6)
        K.close(dev_state[k][0], ref_state[k][0], rtol=1e-5, atol=1e-6)
        K.close(dev_state[k][1], ref_state[k][1], rtol=1e-5, atol=1e-7)
    assert not np.allclose(K.np(dev["cw"]), host["cw"])  # and they did move


def test_whole_model_same_predictions_gradients_and_update_as_the_reference(K):
    """A seed-like model (convs with both paddings, pooling, batch norm, dense) in float32: the
    same weights give the same predictions, loss, parameter gradients and update as on the
    NumPy reference. Tolerance: float32 sums of up to a few thousand terms in different orders,
    relative to each array's scale. SGD with momentum, whose step is linear in the gradient
    (Adam's first step is ~lr * sign(g), which turns rounding noise in a near-zero gradient into
    a full step; its kernel is compared with the reference's above)."""
    import tinycnn
    from tinycnn.layers import BatchNormalization, Conv2D, Dense, Flatten, MaxPooling2D
    from tinycnn.models import Sequential

    n, size, f1, f2, units = (4, 8, 4, 4, 4) if SIM else (16, 20, 8, 16, 16)
    rng = np.random.default_rng(3)
    x = rng.random((n, size, size, 1), dtype=F32)
    y = (x[:, 2:-2, 2:-2, 0].mean(axis=(1, 2)) > 0.5).astype(F32)
    seen, weights = {}, None
    for name in ("numpy", K.name):
        with backend.use_backend(name):
            m = Sequential([Conv2D(f1, 3, activation="relu", input_shape=(size, size, 1)), MaxPooling2D(),
                            Conv2D(f2, 3, padding="same", activation="relu"), BatchNormalization(),
                            MaxPooling2D(), Flatten(), Dense(units, activation="relu"), Dense(1, activation="sigmoid")])
            m.compile(tinycnn.optimizers.SGD(0.1, momentum=0.9), "binary_crossentropy")
            weights = weights or m.get_weights()
            m.set_weights(weights)
            pred = m.predict(x, verbose=0)
            loss = m.train_on_batch(x, y)
            grads = [K.np(l.grads[k]) for l in m.layers for k in l.grads if l.grads[k] is not None]
            seen[name] = (pred, loss, grads, m.get_weights())
    (p0, l0, g0, w0), (p1, l1, g1, w1) = seen["numpy"], seen[K.name]
    np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-6)
    assert l1 == pytest.approx(l0, rel=1e-5)
    assert len(g0) == len(g1) == 10
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(b).max())
    for a, b, before in zip(w1, w0, weights, strict=True):  # the steps taken
        np.testing.assert_allclose(a - before, b - before, rtol=1e-3, atol=1e-4 * np.abs(b - before).max())
