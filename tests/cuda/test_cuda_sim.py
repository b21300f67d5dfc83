"""What only the ``cuda`` backend has: device arrays, the tiled GEMM, and the launch signatures
that the PTX test compiles. Its parity with the reference, op by op, is held by
``tests/test_backend_parity.py`` like every backend's.

Run in its own process, with the simulator when there is no GPU (``tests/run.sh`` runs it
together with the parity suite's cuda cases)::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_backend_parity.py tests/cuda/test_cuda_sim.py -m cudasim

The simulator runs one Python thread per CUDA thread (about 0.3-0.5 ms each), so shapes are
small but chosen to hit the edges: sizes that are not multiples of the GEMM tile (64) or its
depth (16), split-K. On a real GPU (no simulator) the same tests run with larger shapes (``S``).
Tolerances (float32): ``rtol = atol = 2e-5`` (sums of at most a few hundred products in a
different order).
"""

import importlib.util

import numpy as np
import pytest

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

from conftest import CUDA_LAUNCHES  # noqa: E402
from tinycnn.kernels import _cuda_common as cc  # noqa: E402
from tinycnn.kernels import _cuda_gemm as gm  # noqa: E402
from tinycnn.kernels import cuda as K  # noqa: E402
from tinycnn.kernels import reference as R  # noqa: E402

from tinycnn import kernels  # noqa: E402

pytestmark = pytest.mark.cudasim

S = 1 if SIM else 4  # shape multiplier: tiny in the simulator, larger on a GPU
TOL = dict(rtol=2e-5, atol=2e-5)


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


# --------------------------------------------------------------------------- device arrays
def test_ensure_available_and_device_arrays(rng):
    K.ensure_available()  # the simulator (or a GPU) counts as available
    x = rng.standard_normal((3, 4))  # float64, not contiguous after the slice below
    d = K.asarray(x[:, ::2], np.float32)
    assert d.is_c_contiguous() and not isinstance(d, np.ndarray)
    d64 = K.asarray(d, np.float64)  # converted on the device
    assert d64.dtype == np.float64 and not isinstance(d64, np.ndarray)
    assert d.reshape(6).shape == (6,)


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
    close(got, R.activation_forward(a @ b + bias, act)[0])


def test_gemm_split_k_is_summed_in_a_second_pass(rng):
    a, b = f32(rng, 50, 9), f32(rng, 50, 5)  # a weight-gradient shape: cols.T @ dz
    close(gm.gemm(K.asarray(a), K.asarray(b), trans_a=True, splits=3), a.T @ b)
    assert gm.choose_splits(9, 5, 100_000) > 1 and gm.choose_splits(4096, 4096, 100_000) == 1


# --------------------------------------------------------------------------- launch signatures
def _tour(rng):
    """One call of every contract function (and each code path that launches its own kernels),
    so that every kernel is launched at least once whatever else ran."""
    x, w, b = f32(rng, 2, 5, 5, 2), f32(rng, 3, 3, 2, 3), f32(rng, 3)
    for ww in (w, f32(rng, 1, 1, 2, 3)):  # im2col, and a 1x1 convolution without it
        y, ctx = K.conv2d_forward(x, ww, b, (1, 1), "valid", "relu")
        K.conv2d_backward(np.ones(y.shape, np.float32), ctx)
    y, ctx = K.maxpool2d_forward(x, (2, 2), (2, 2), "same")
    K.maxpool2d_backward(np.ones(y.shape, np.float32), ctx)
    y, ctx = K.global_avgpool_forward(x)
    K.global_avgpool_backward(np.ones(y.shape, np.float32), ctx)
    for kind in ("tanh", "softmax"):
        y, ctx = K.activation_forward(x, kind)
        K.activation_backward(np.ones(y.shape, np.float32), ctx)
    y, ctx = K.batchnorm_forward(x, np.ones(2, np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32),
                                 np.ones(2, np.float32), 0.9, 1e-3, True)
    K.batchnorm_backward(np.ones(y.shape, np.float32), ctx)
    y, ctx = K.dropout_forward(x, 0.5, 1)
    K.dropout_backward(np.ones(y.shape, np.float32), ctx)
    z = f32(rng, 4, 3)
    K.loss_forward("sparse_categorical_crossentropy", z, np.array([0, 1, 2, 0]), None, True)
    K.loss_forward("binary_crossentropy", z, np.ones((4, 3), np.float32), None, True)
    p = K.asarray(f32(rng, 5))
    K.sgd_update(p, f32(rng, 5), K.asarray(np.zeros(5, np.float32)), 0.1, 0.9, False)
    K.adam_update(p, f32(rng, 5), K.asarray(np.zeros(5, np.float32)), K.asarray(np.zeros(5, np.float32)),
                  0.1, 0.9, 0.999, 1e-7, 1)
    K.asarray(K.asarray(np.arange(3)), np.float32)  # a cast on the device
    gm.gemm(K.asarray(f32(rng, 50, 9)), K.asarray(f32(rng, 50, 5)), trans_a=True, splits=3)  # split-K


def test_every_launch_matches_a_signature_the_ptx_test_compiles(rng):
    """The PTX test compiles exactly ``cc.SIGNATURES``; every launch made in this process (by
    the parity suite's cuda cases and this file, recorded by tests/conftest.py) must match
    one, and every kernel must have been launched."""
    with cc.record_launches() as log:
        _tour(rng)
    launches = CUDA_LAUNCHES + log
    seen = set()
    for name, dtype, sig in launches:
        T = cc.numba.from_dtype(dtype)
        assert sig in [tuple(s) for s in cc.SIGNATURES[name](T)], (name, dtype, sig)
        seen.add(name)
    assert seen == set(cc.SIGNATURES), f"kernels never launched: {set(cc.SIGNATURES) - seen}"
