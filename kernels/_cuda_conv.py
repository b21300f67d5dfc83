"""Window kernels of the ``cuda`` backend: im2col / col2im and pooling (NHWC).

Every kernel is a grid-stride loop with one thread per *output* element, so a thread writes
exactly one value and no atomics are needed. The backward kernels are written as gathers:
``col2im`` and ``maxpool_backward`` give each input element the sum over the windows that
contain it, in the same order as the NumPy reference adds them (so results match it bit for
bit where the reference sums in that order).

Index maps (``pt``, ``pl`` = padding before the first row / column):
``cols[(n*OH + i)*OW + j, (p*KW + q)*C + c] = x[n, i*sh + p - pt, j*sw + q - pl, c]``
(zero outside the image); a window (i, j) covers rows ``i*sh - pt .. i*sh - pt + KH - 1``.
"""

import numpy as np
from numba import cuda, types

from ._cuda_common import I64, arr, launch_1d, nhwc, register, window_at

_WINDOW = (I64,) * 8  # KH, KW, sh, sw, pt, pl, OH, OW


def _im2col_signatures(T):
    return [(arr(T, 4), arr(T, 2)) + _WINDOW]


@register("im2col", _im2col_signatures)
def _im2col_factory(T):
    def _im2col_kernel(x, cols, KH, KW, sh, sw, pt, pl, OH, OW):
        """Unfold x (N, H, W, C) into cols (N*OH*OW, KH*KW*C)."""
        H = x.shape[1]
        W = x.shape[2]
        C = x.shape[3]
        KKC = KH * KW * C
        total = cols.shape[0] * KKC
        for e in range(cuda.grid(1), total, cuda.gridsize(1)):
            col = e % KKC  # neighbouring threads: neighbouring channels, coalesced
            row = e // KKC
            c = col % C
            t = col // C
            q = t % KW
            p = t // KW
            j = row % OW
            t = row // OW
            i = t % OH
            n = t // OH
            h = i * sh + p - pt
            w = j * sw + q - pl
            v = T(0)
            if h >= 0 and h < H and w >= 0 and w < W:
                v = x[n, h, w, c]
            cols[row, col] = v

    return _im2col_kernel


def _col2im_signatures(T):
    return [(arr(T, 2), arr(T, 4)) + _WINDOW]


@register("col2im", _col2im_signatures)
def _col2im_factory(T):
    def _col2im_kernel(dcols, dx, KH, KW, sh, sw, pt, pl, OH, OW):
        """Fold dcols (N*OH*OW, KH*KW*C) into dx (N, H, W, C), summing overlaps over (p, q)."""
        C = dx.shape[3]
        for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
            n, h, w, c = nhwc(e, dx.shape[1], dx.shape[2], C)
            acc = T(0)
            for p in range(KH):
                i = window_at(h, pt, p, sh, OH)
                if i >= 0:
                    for q in range(KW):
                        j = window_at(w, pl, q, sw, OW)
                        if j >= 0:
                            acc += dcols[(n * OH + i) * OW + j, (p * KW + q) * C + c]
            dx[n, h, w, c] = acc

    return _col2im_kernel


def _maxpool_fwd_signatures(T):
    return [(arr(T, 4), arr(T, 4), arr(types.int32, 4), I64, I64, I64, I64, I64, I64)]


@register("maxpool_forward", _maxpool_fwd_signatures)
def _maxpool_fwd_factory(T):
    def _maxpool_forward_kernel(x, y, arg, PH, PW, sh, sw, pt, pl):
        """``y = max over the window`` (padding never wins); ``arg = p*PW + q`` of the first
        maximum in row-major window order (strict ``>``: ties keep the earlier element; the
        first NaN wins, as in ``np.argmax``)."""
        H = x.shape[1]
        W = x.shape[2]
        for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            n, i, j, c = nhwc(e, y.shape[1], y.shape[2], y.shape[3])
            best = T(0)
            where = -1
            for p in range(PH):
                h = i * sh + p - pt
                if h >= 0 and h < H:
                    for q in range(PW):
                        w = j * sw + q - pl
                        if w >= 0 and w < W:
                            v = x[n, h, w, c]
                            if where < 0 or v > best or (v != v and best == best):
                                best = v
                                where = p * PW + q
            y[n, i, j, c] = best
            arg[n, i, j, c] = where

    return _maxpool_forward_kernel


def _maxpool_bwd_signatures(T):
    return [(arr(T, 4), arr(types.int32, 4), arr(T, 4), I64, I64, I64, I64, I64, I64)]


@register("maxpool_backward", _maxpool_bwd_signatures)
def _maxpool_bwd_factory(T):
    def _maxpool_backward_kernel(dy, arg, dx, PH, PW, sh, sw, pt, pl):
        """``dx[n, h, w, c] = sum of dy[n, i, j, c]`` over the windows (i, j) whose remembered
        argmax is (h, w); windows visited in increasing (i, j), the reference's order."""
        OH = dy.shape[1]
        OW = dy.shape[2]
        for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
            n, h, w, c = nhwc(e, dx.shape[1], dx.shape[2], dx.shape[3])
            acc = T(0)
            for p in range(PH - 1, -1, -1):  # p descending = window row i ascending
                i = window_at(h, pt, p, sh, OH)
                if i >= 0:
                    for q in range(PW - 1, -1, -1):
                        j = window_at(w, pl, q, sw, OW)
                        if j >= 0 and arg[n, i, j, c] == p * PW + q:
                            acc += dy[n, i, j, c]
            dx[n, h, w, c] = acc

    return _maxpool_backward_kernel


def _avgpool_bwd_signatures(T):
    return [(arr(T, 2), arr(T, 4), T)]


@register("avgpool_backward", _avgpool_bwd_signatures)
def _avgpool_bwd_factory(T):
    def _avgpool_backward_kernel(dy, dx, hw):
        """``dx[n, i, j, c] = dy[n, c] / (H*W)``."""
        for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
            n, h, w, c = nhwc(e, dx.shape[1], dx.shape[2], dx.shape[3])
            dx[n, h, w, c] = dy[n, c] / hw

    return _avgpool_backward_kernel


def im2col(x, KH, KW, stride, pads, OH, OW):
    """x (N, H, W, C) -> cols (N*OH*OW, KH*KW*C) on the device."""
    N, H, W, C = x.shape
    cols = cuda.device_array((N * OH * OW, KH * KW * C), dtype=x.dtype)
    launch_1d(
        "im2col", x.dtype, cols.size, x, cols, KH, KW, stride[0], stride[1], pads[0], pads[2], OH, OW
    )
    return cols


def col2im(dcols, x_shape, KH, KW, stride, pads, OH, OW):
    """dcols (N*OH*OW, KH*KW*C) -> dx (N, H, W, C), the adjoint of :func:`im2col`."""
    dx = cuda.device_array(x_shape, dtype=dcols.dtype)
    launch_1d(
        "col2im", dcols.dtype, dx.size, dcols, dx, KH, KW, stride[0], stride[1], pads[0], pads[2], OH, OW
    )
    return dx


def maxpool_forward(x, pool, stride, pads, OH, OW):
    """-> (y (N, OH, OW, C), arg int32 (N, OH, OW, C))."""
    N, H, W, C = x.shape
    y = cuda.device_array((N, OH, OW, C), dtype=x.dtype)
    arg = cuda.device_array((N, OH, OW, C), dtype=np.int32)
    launch_1d(
        "maxpool_forward", x.dtype, y.size, x, y, arg, pool[0], pool[1], stride[0], stride[1],
        pads[0], pads[2],
    )  # fmt: skip
    return y, arg


def maxpool_backward(dy, arg, x_shape, pool, stride, pads):
    dx = cuda.device_array(x_shape, dtype=dy.dtype)
    launch_1d(
        "maxpool_backward", dy.dtype, dx.size, dy, arg, dx, pool[0], pool[1], stride[0], stride[1],
        pads[0], pads[2],
    )  # fmt: skip
    return dx


def avgpool_backward(dy, x_shape):
    dx = cuda.device_array(x_shape, dtype=dy.dtype)
    hw = dy.dtype.type(x_shape[1] * x_shape[2])
    launch_1d("avgpool_backward", dy.dtype, dx.size, dy, dx, hw)
    return dx
