"""Conv2D -> bias -> activation -> MaxPooling2D as one op for the ``cpu`` backend.

Why: in the seed model every convolution is followed by a 2x2 max-pool. Unfused, backward
reads ``dy`` of the pool, writes the pool's input gradient (the size of the convolution's
output: 65 MB for the first layer at 128x128), reads it again with the convolution's output to
form ``dz``, and then pads ``dz`` for the input gradient. Fused, backward is one parallel
region in which each thread takes a block of whole images: it turns their ``dy`` into the
convolution's padded ``dz`` in one pass (``dy * act'(y)`` at each window's argmax, zero
elsewhere: the maximum of the activated values is the activated value at the argmax), then
computes their weight gradient (a partial sum per block, added once at the end) and their input
gradient with :mod:`._cpu_direct`'s tiles; no other thread pool takes over in between
(measured, one core: 0.25 vs 0.39 ms at 28x28x1, 9.2 vs 16.7 ms at 128x128x1 for the first
layer). Forward writes the convolution's output once into a reused workspace and pools it
(computing it band by band in cache was measured no faster, and slower for first layers).

The results are bit for bit those of the two layers run one after the other on the direct path
(same tiles, same order of every sum, same first-maximum rule for ties and NaN), which the tests
check. Supported (:func:`supported`): what the direct path supports, with a 'valid' pool whose
stride equals its size and a window of at most 256 positions.
"""

import numpy as np
from numba import get_num_threads, njit, prange

from ..errors import ConfigError, ShapeError
from . import _cpu_direct as direct
from . import _cpu_memory as mem
from . import checks
from ._cpu_act import CODES, act_grad
from ._cpu_checks import bias, float_array
from ._cpu_pooling import _maxpool_forward_kernel


@njit(cache=True)
def _unpool_image(dy, y, arg, act, PH, PW, top, left, dzp, part, n):
    _, POH, POW, F = dy.shape
    _, Hz, Wz, _ = dzp.shape
    g = np.empty((POW, F), np.float32)
    for f in range(F):
        part[n, f] = 0
    for h in range(Hz):
        i, p = (h - top) // PH, (h - top) % PH
        if p == 0 and 0 <= h - top and i < POH:  # first conv row of pooled row i: its gradients
            for j in range(POW):
                for f in range(F):
                    g[j, f] = act_grad(dy[n, i, j, f], y[n, i, j, f], act)
                    part[n, f] += g[j, f]
        for v in range(Wz):
            dst = dzp[n, h, v]
            j, q = (v - left) // PW, (v - left) % PW
            if h < top or i >= POH or v < left or j >= POW:
                for f in range(F):
                    dst[f] = 0
                continue
            win = arg[n, i, j]
            for f in range(F):
                dst[f] = g[j, f] if win[f] == p * PW + q else np.float32(0)


@njit(parallel=True, cache=True)
def _backward_kernel(dy, y, arg, act, PH, PW, top, left, dzp, dbp, xp, nbi, part, need_dx, wrot, zero_b, dx):
    """The whole backward pass in one parallel region, each thread taking a block of whole
    images: dz of its images (dy * act'(y) at each window's argmax, zero elsewhere, into the
    padded dzp; dbp (N, F) their bias gradients), their weight gradient into part[block]
    (see :func:`._cpu_direct._dw_kernel`), and their input gradient (the forward pass of dzp
    with the rotated weights wrot, :func:`._cpu_direct.conv_pixels`)."""
    N, H, W, _ = dx.shape
    KH, KW = wrot.shape[:2]
    for blk in prange(nbi):
        n0, n1 = np.intp(blk) * N // nbi, (np.intp(blk) + 1) * N // nbi
        for n in range(n0, n1):
            _unpool_image(dy, y, arg, act, PH, PW, top, left, dzp, dbp, n)
        direct.dw_block(xp, dzp, top, left, KH, KW, nbi, part, np.intp(blk))
        if need_dx:
            direct.conv_pixels(dzp, wrot.reshape(-1), KH, KW, zero_b, np.intp(0), np.float32(0), n0 * H * W,
                                n1 * H * W, H, W, dx.reshape(-1), np.intp(0))


def supported(x_shape, w_shape, conv_stride, pool, pool_stride, pool_padding, dtype, need_dx):
    """Whether :func:`conv2d_maxpool_forward` runs these layers (shapes without the batch axis
    are fine: only channels and windows are read)."""
    PH, PW = pool
    return (direct.eligible(np.dtype(dtype), conv_stride, x_shape[-1], w_shape[-1], need_dx)
            and tuple(pool_stride) == (PH, PW) and pool_padding == "valid" and PH * PW <= 256)


def conv2d_maxpool_forward(x, w, b, padding, activation, pool, training=True):
    """``maxpool(act(conv(x, w) + b))``, pool stride = pool size, 'valid' pooling.

    Parameters
    ----------
    x : (N, H, W, C) float32; w : (KH, KW, C, F); b : (F,) or None
    padding : 'valid' | 'same' (of the convolution, stride 1)
    activation : one of ``ELEMENTWISE``
    pool : (PH, PW)
    training : bool
        False: nothing for backward is kept (no argmax), ctx is None.

    Returns
    -------
    y : (N, OH // PH, OW // PW, F), ctx
    """
    dt, window, activation = checks.conv2d(x, w, b, (1, 1), padding, activation)
    PH, PW = checks.pair(pool, "pool")
    x, w = float_array(x, "x", 4, dt), float_array(w, "w", 4, dt)
    N = x.shape[0]
    F = w.shape[-1]
    if not supported(x.shape, w.shape, (1, 1), (PH, PW), (PH, PW), "valid", x.dtype, False):
        raise ConfigError("conv2d_maxpool_forward: these shapes/dtype are not supported (see supported())")
    OH, OW, pads = window.OH, window.OW, window.pads
    POH, POW = OH // PH, OW // PW
    if POH < 1 or POW < 1:
        raise ShapeError(f"the convolution's {OH}x{OW} output is smaller than the pool {PH}x{PW}")
    bb = bias(b, F, x.dtype)
    act = CODES[activation]
    y = mem.take((N, POH, POW, F), x.dtype)
    # forward: the convolution's output into a reused workspace, then pooled. Computing it band
    # by band in cache instead was measured no faster with 16+ channels (the pool pass is a
    # small part) and slower for first layers (0.88 vs 0.66 ms at 28x28x1, 19.3 vs 16.8 ms
    # at 128x128x1); fusion pays in backward
    full = mem.workspace("convpool_full", (N, OH, OW, F), np.float32)
    direct.forward(x, w, bb, pads, act, np.float32(0), full)
    arg = mem.take((N, POH, POW, F), np.uint8)
    _maxpool_forward_kernel(full, PH, PW, PH, PW, 0, 0, y, arg)
    if not training:
        return y, None
    return y, (x, w, b is not None, y, arg, (OH, OW), pads, act, (PH, PW))


def conv2d_maxpool_backward(dy, ctx, need_dx=True):
    """``(dx, dw, db)`` of :func:`conv2d_maxpool_forward` (dx None unless ``need_dx``)."""
    if ctx is None:
        raise ConfigError("conv2d_maxpool_backward needs the ctx of a training forward pass")
    x, w, has_bias, y, arg, (OH, OW), pads, act, (PH, PW) = ctx
    checks.grad(dy, y.shape)
    dy = float_array(dy, "dy", 4, y.dtype)
    N, _, _, C = x.shape
    F = w.shape[-1]
    if need_dx and not direct.eligible(x.dtype, (1, 1), C, F, True):
        raise ConfigError(f"conv2d_maxpool_backward: no direct input gradient for C={C} (see supported())")
    KH, KW = w.shape[:2]
    top, bottom, left, right = direct.dz_layout(x.shape, w.shape, (OH, OW), pads, need_dx)
    dzp = direct.slack_workspace("direct_dz", (N, OH + top + bottom, OW + left + right, F))
    dbp = np.empty((N, F))
    nbi = max(1, min(N, get_num_threads()))
    part = np.zeros((nbi, KH * KW * C, F), np.float32)
    wrot = direct.slack_workspace("direct_wrot", (KH, KW, F, C))
    if need_dx:
        direct.rotate(w, wrot)
    dw = mem.take(w.shape, w.dtype)
    dx = mem.take(x.shape, x.dtype) if need_dx else np.empty((N, 0, 0, C), x.dtype)
    _backward_kernel(dy, y, arg, act, PH, PW, top, left, dzp, dbp, direct.pad(x, pads), nbi, part, need_dx,
                     wrot, np.zeros(C, np.float32), dx)
    direct.sum_blocks(part.reshape(nbi, -1), dw.reshape(-1))
    return (dx if need_dx else None), dw, (dbp.sum(axis=0).astype(y.dtype) if has_bias else None)
