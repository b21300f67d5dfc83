"""Pooling for the ``cpu`` backend: max pooling (with its argmax) and global average pooling.

Max pooling keeps, per output, the index ``p*PW + q`` of the winning window position (uint8
when the window has at most 256 positions): a quarter of the memory of keeping the input. The
winner is the first maximum in row-major window order, exactly as ``np.argmax`` in the
reference: padding counts as -inf and never wins a tie, NaN wins (first NaN). Backward sends
each output's gradient to that one input, so ties never split or duplicate a gradient.
"""

import numpy as np
from numba import njit, prange

from . import _cpu_memory as mem
from . import checks
from ._cpu_checks import float_array
from ._cpu_conv import window_columns


# no fastmath here: the comparisons must keep NaN semantics, and there is nothing to contract
@njit(parallel=True, cache=True)
def _maxpool_forward_kernel(x, PH, PW, sh, sw, pt, pl, y, arg):
    N, H, W, C = x.shape
    _, OH, OW, _ = y.shape
    for t in prange(N * OH):
        n = t // OH
        i = t - n * OH
        for j in range(OW):
            best = y[n, i, j]
            idx = arg[n, i, j]
            for c in range(C):
                best[c] = -np.inf
                idx[c] = 0
            for p in range(PH):
                h = i * sh + p - pt
                if h < 0 or h >= H:
                    continue
                for q in range(PW):
                    v = j * sw + q - pl
                    if v < 0 or v >= W:
                        continue
                    k = p * PW + q
                    src = x[n, h, v]
                    for c in range(C):  # selects, not branches: the loop vectorises
                        val = src[c]
                        b = best[c]
                        wins = (val > b) | ((val != val) & (b == b))
                        best[c] = val if wins else b
                        idx[c] = k if wins else idx[c]


@njit(parallel=True, cache=True)
def _maxpool_backward_kernel(dy, arg, PH, PW, sh, sw, pt, pl, dx):
    """One thread per dx row: zero it, then add each window's dy where its argmax lands."""
    N, H, W, C = dx.shape
    _, OH, OW, _ = dy.shape
    for t in prange(N * H):
        n = t // H
        h = t - n * H
        out = dx[n, h]
        for v in range(W):
            for c in range(C):
                out[v, c] = 0
        for p in range(PH):
            ii = h + pt - p
            if ii < 0 or ii % sh != 0 or ii // sh >= OH:
                continue
            i = ii // sh
            for q in range(PW):
                k = p * PW + q
                jlo, jhi = window_columns(q, pl, sw, W, OW)
                for j in range(jlo, jhi):
                    g = dy[n, i, j]
                    a = arg[n, i, j]
                    dst = out[j * sw + q - pl]
                    for c in range(C):
                        if a[c] == k:
                            dst[c] += g[c]


@njit(parallel=True, cache=True)
def _global_avgpool_forward_kernel(x, y):
    N, H, W, C = x.shape
    scale = 1.0 / (H * W)
    for n in prange(N):
        acc = np.zeros(C)  # float64 accumulation: H*W can be tens of thousands of terms
        for h in range(H):
            for v in range(W):
                src = x[n, h, v]
                for c in range(C):
                    acc[c] += src[c]
        for c in range(C):
            y[n, c] = acc[c] * scale


@njit(parallel=True, cache=True)
def _global_avgpool_backward_kernel(dy, dx):
    N, H, W, C = dx.shape
    scale = 1.0 / (H * W)
    for t in prange(N * H):
        n = t // H
        h = t - n * H
        for v in range(W):
            dst = dx[n, h, v]
            for c in range(C):
                dst[c] = dy[n, c] * scale


def maxpool2d_forward(x, pool, stride, padding):
    """Max pooling, NHWC; ``y`` (N, OH, OW, C) and the argmax kept in ``ctx``."""
    dt, (PH, PW), ((sh, sw), pads, OH, OW) = checks.maxpool2d(x, pool, stride, padding)
    x = float_array(x, "x", 4, dt)
    N, H, W, C = x.shape
    pt, _, pl, _ = pads
    y = mem.take((N, OH, OW, C), x.dtype)
    arg = mem.take((N, OH, OW, C), np.uint8 if PH * PW <= 256 else np.int32)
    _maxpool_forward_kernel(x, PH, PW, sh, sw, pt, pl, y, arg)
    return y, (x.shape, arg, (PH, PW), (sh, sw), pads)


def maxpool2d_backward(dy, ctx):
    """``dx``: each ``dy`` goes to its window's first maximum; every other element is zero."""
    x_shape, arg, (PH, PW), (sh, sw), (pt, _, pl, _) = ctx
    checks.grad(dy, arg.shape)
    dy = float_array(dy, "dy", 4)
    dx = mem.take(x_shape, dy.dtype)
    _maxpool_backward_kernel(dy, arg, PH, PW, sh, sw, pt, pl, dx)
    return dx


def global_avgpool_forward(x):
    """``y[n,c] = mean_{i,j} x[n,i,j,c]``."""
    x = float_array(x, "x", 4, checks.global_avgpool(x))
    y = np.empty((x.shape[0], x.shape[3]), x.dtype)
    _global_avgpool_forward_kernel(x, y)
    return y, x.shape


def global_avgpool_backward(dy, ctx):
    """``dx[n,i,j,c] = dy[n,c] / (H*W)``."""
    N, H, W, C = ctx
    checks.grad(dy, (N, C))
    dy = float_array(dy, "dy", 2)
    dx = mem.take(ctx, dy.dtype)
    _global_avgpool_backward_kernel(dy, dx)
    return dx
