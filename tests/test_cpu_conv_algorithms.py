"""The ``cpu`` backend's register-blocked direct convolution (:mod:`tinycnn.kernels._cpu_direct`)
against the float64 reference, over shapes drawn by Hypothesis.

Tolerance, from the algorithm's error bound (not a fudge factor). Each output is one sum of L
float32 products accumulated with single-rounding FMAs, then (forward) the bias is added and the
activation applied. Recursive summation of L terms has an absolute error of at most
``gamma_L * S`` with ``gamma_L = L u / (1 - L u)`` (u = 2**-24) and ``S`` the sum of the terms'
absolute values; the bias add and a float32 sigmoid/tanh add a few ulp of the result. So each
element is checked against ``1.01 * (L + 1) * u * S + 8 u |ref|`` computed elementwise from
``|x|`` and ``|w|`` (the same formula on absolute values). The reference itself runs in float64
on the same float32 inputs, so its own error is ~1e-9 of this bound. For the weight gradient
the images are summed per block in float32 and row blocks are added into the block's partial
sum: L counts every term plus every partial-sum add (``N*OH*OW + N*OH``).

The backward pass is checked with ``dz = dy * act'(y)`` gated by the backend's own float32
``y`` (the reference is given that y): where a pre-activation is within rounding of zero the
relu gate of a float64 forward may differ, and that is not an error of the kernels.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tinycnn.kernels import _cpu_direct
from tinycnn.kernels import cpu as K
from tinycnn.kernels import reference as R

U = 2.0**-24


@pytest.fixture(autouse=True)
def _direct_on(monkeypatch):
    """Run the direct path even on a CPU without AVX-512 (LLVM splits the vectors: correct,
    slower), so that it is tested everywhere."""
    monkeypatch.setattr(_cpu_direct, "ENABLED", True)


def bound(L, S, ref):
    return 1.01 * (L + 1) * U * S + 8 * U * np.abs(ref)


def assert_within(got, ref, L, S, what):
    err = np.abs(got.astype(np.float64) - ref)
    lim = bound(L, S, ref)
    worst = np.unravel_index(np.argmax(err - lim), err.shape)
    assert (err <= lim).all(), f"{what}: error {err[worst]:.3g} > bound {lim[worst]:.3g} at {worst}"


@st.composite
def cases(draw):
    N = draw(st.integers(1, 3))
    C = draw(st.sampled_from([1, 3, 16, 32, 48]))
    F = draw(st.sampled_from([16, 32, 48, 64, 80, 160]))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    padding = draw(st.sampled_from(["valid", "same"]))
    H = draw(st.integers(KH if padding == "valid" else 1, 9))
    W = draw(st.integers(KW if padding == "valid" else 1, 15))
    act = draw(st.sampled_from(["linear", "relu", "sigmoid", "tanh"]))
    bias = draw(st.booleans())
    return (N, H, W, C), (KH, KW, C, F), padding, act, bias


def run_both(case, seed):
    xs, ws, padding, act, use_bias = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[-1]).astype(np.float32) if use_bias else None
    need_dx = xs[-1] % 16 == 0  # the direct input gradient needs whole vectors of C
    assert _cpu_direct.eligible(np.float32, (1, 1), xs[-1], ws[-1], need_dx)
    y, ctx = K.conv2d_forward(x, w, b, (1, 1), padding, act)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grads = K.conv2d_backward(dy, ctx, need_dx=need_dx)
    return x, w, b, y, dy, grads, need_dx


def reference_with_gate(x, w, b, y, padding, act):
    """Reference forward in float64, and its ctx with the relu/sigmoid/tanh gate of the
    backend's float32 y (see the module docstring)."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    yr, ctx = R.conv2d_forward(x64, w64, b64, (1, 1), padding, act)
    y64 = y.astype(np.float64)  # ctx holds z as (N*OH*OW, F) and y as (N, OH, OW, F)
    return yr, ctx[:4] + (y64.reshape(-1, w.shape[-1]), y64) + ctx[6:]


def check_against_reference(x, w, b, y, dy, grads, padding, act, need_dx):
    dx, dw, db = grads
    KH, KW, C, F = w.shape
    yr, ctx = reference_with_gate(x, w, b, y, padding, act)
    ax, aw = np.abs(x).astype(np.float64), np.abs(w).astype(np.float64)
    absb = None if b is None else np.abs(b).astype(np.float64)
    S, actx = R.conv2d_forward(ax, aw, absb, (1, 1), padding, "linear")  # the forward's S
    assert_within(y, yr, KH * KW * C, S, "y")
    dxr, dwr, dbr = R.conv2d_backward(dy.astype(np.float64), ctx, need_dx=need_dx)
    dz = np.abs(R._act_grad(dy.reshape(-1, F).astype(np.float64), ctx[4], ctx[5].reshape(-1, F), act))
    abs_ctx = (actx[0], actx[1], actx[2], True, dz, dz.reshape(dy.shape), actx[6], actx[7], "linear")
    Sdx, Sdw, Sdb = R.conv2d_backward(dz.reshape(dy.shape), abs_ctx, need_dx=need_dx)
    N, OH, OW = y.shape[:3]
    assert_within(dw, dwr, N * OH * OW + N * OH, Sdw, "dw")
    if b is None:
        assert db is None
    else:
        assert_within(db, dbr, N * OH * OW, Sdb, "db")
    if need_dx:
        assert_within(dx, dxr, KH * KW * F, Sdx, "dx")
    else:
        assert dx is None


@given(case=cases(), seed=st.integers(0, 2**16))
def test_direct_conv_matches_reference_within_its_error_bound(case, seed):
    x, w, b, y, dy, grads, need_dx = run_both(case, seed)
    check_against_reference(x, w, b, y, dy, grads, case[2], case[3], need_dx)


def test_direct_conv_is_deterministic_and_close_to_im2col(rng, monkeypatch):
    """Two runs give the same bits (resume stays bit-identical); the im2col + GEMM path on the
    same inputs agrees within the error bound of both (twice the bound of one)."""
    x = rng.standard_normal((5, 12, 11, 32)).astype(np.float32)
    w = rng.standard_normal((3, 3, 32, 96)).astype(np.float32)
    b = rng.standard_normal(96).astype(np.float32)
    dy = rng.standard_normal((5, 12, 11, 96)).astype(np.float32)
    outs = []
    for enabled in (True, True, False):
        monkeypatch.setattr(_cpu_direct, "ENABLED", enabled)
        y, ctx = K.conv2d_forward(x, w, b, (1, 1), "same", "linear")
        outs.append([np.array(a) for a in (y, *K.conv2d_backward(dy, ctx))])
    for a, e in zip(outs[0], outs[1], strict=True):
        np.testing.assert_array_equal(a, e)
    S, _ = R.conv2d_forward(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64),
                            np.abs(b).astype(np.float64), (1, 1), "same", "linear")
    err = np.abs(outs[0][0].astype(np.float64) - outs[2][0])
    assert (err <= 2 * bound(9 * 32, S, outs[2][0])).all()


def test_rule_is_a_function_of_the_shapes():
    assert _cpu_direct.eligible(np.float32, (1, 1), 32, 64)
    assert _cpu_direct.eligible(np.float32, (1, 1), 1, 32, need_dx=False)
    assert not _cpu_direct.eligible(np.float32, (1, 1), 1, 32, need_dx=True)
    assert not _cpu_direct.eligible(np.float64, (1, 1), 32, 64)  # gradient checks: float64 path
    assert not _cpu_direct.eligible(np.float32, (2, 2), 32, 64)
    assert not _cpu_direct.eligible(np.float32, (1, 1), 32, 24)
    assert _cpu_direct.eligible(np.float32, (1, 1), 16, 16)  # the 32-lane tile, half stored


def test_large_batch_runs_every_thread_block(rng):
    """More tiles than threads, and several weight-gradient row blocks (OW * rows > 512)."""
    x = rng.standard_normal((4, 30, 40, 32)).astype(np.float32)
    w = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    y, ctx = K.conv2d_forward(x, w, b, (1, 1), "valid", "relu")
    assert y.shape[1] * y.shape[2] > _cpu_direct.DW_BLOCK_PIXELS
    dy = rng.standard_normal(y.shape).astype(np.float32)
    check_against_reference(x, w, b, y, dy, K.conv2d_backward(dy, ctx), "valid", "relu", True)


# --------------------------------------------------------------------------- dense on the same tiles
@given(N=st.integers(1, 40), D=st.integers(1, 300), U=st.sampled_from([32, 64, 96, 160, 512]),
       act=st.sampled_from(["linear", "relu", "sigmoid"]), seed=st.integers(0, 2**16))
def test_dense_tiles_match_reference_within_the_bound(N, D, U, act, seed):
    """Same bound as the convolutions: y sums D products (in chunks of D_CHUNK added to the
    output: D + D/D_CHUNK roundings), dw sums N, dx sums U."""
    from tinycnn.kernels import _cpu_dense

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D)).astype(np.float32)
    w = rng.standard_normal((D, U)).astype(np.float32)
    b = rng.standard_normal(U).astype(np.float32)
    assert _cpu_dense.eligible(np.float32, U)
    y, ctx = K.dense_forward(x, w, b, act)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = K.dense_backward(dy, ctx)
    ax, aw = np.abs(x).astype(np.float64), np.abs(w).astype(np.float64)
    yr, ctxr = R.dense_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), act)
    assert_within(y, yr, D + D // _cpu_dense.D_CHUNK + 1, ax @ aw + np.abs(b), "y")
    y64 = y.astype(np.float64)  # the backend's own gate, as for the convolutions
    dxr, dwr, dbr = R.dense_backward(dy.astype(np.float64), ctxr[:3] + (y64, y64, act))
    dz = np.abs(R._act_grad(dy.astype(np.float64), y64, y64, act))
    assert_within(dw, dwr, N, ax.T @ dz, "dw")
    assert_within(dx, dxr, U, dz @ aw.T, "dx")
    assert_within(db, dbr, N, dz.sum(axis=0), "db")


def test_direct_path_off_when_numba_targets_a_cpu_without_avx512():
    """NUMBA_CPU_NAME=generic (portable caches): 16-lane vectors would be split and spilled, so
    the rule must fall back to im2col + GEMM (checked in a fresh process: read at import)."""
    import os
    import subprocess
    import sys

    code = "from tinycnn.kernels import _cpu_simd, _cpu_direct; print(_cpu_simd.AVX512, _cpu_direct.ENABLED)"
    env = {**os.environ, "NUMBA_CPU_NAME": "generic"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
