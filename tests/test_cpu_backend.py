"""What only the ``cpu`` backend has: its two convolution paths, chunked im2col, the buffer
pool, parallel kernels at sizes Hypothesis does not draw, and its threads. Its parity with the
reference, op by op, and its argument checks are held by ``tests/test_backend_parity.py`` like
every backend's.

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
from tinycnn.kernels import _cpu_conv, _cpu_memory
from tinycnn.kernels import cpu as K
from tinycnn.kernels import reference as R

F32 = np.float32


def close(actual, expected, L=1, rtol=1e-4):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-6 * max(L, 1))


def randn(rng, shape, dtype=F32):
    return rng.standard_normal(shape).astype(dtype)


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
    path = draw(st.sampled_from(["direct", "gemm"]))
    return (N, H, W, C), (KH, KW, C, F), stride, padding, act, path


@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_both_conv_paths_match_reference(case, seed):
    """Each path forced for any geometry (the parity suite runs the one the shapes choose)."""
    xs, ws, stride, padding, act, path = case
    rng = np.random.default_rng(seed)
    x, w, b = randn(rng, xs), randn(rng, ws), randn(rng, ws[-1])
    limit = {"direct": 10**9, "gemm": 0}[path]
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


# --------------------------------------------------------------------------- optimizers
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
