"""Conv2D -> bias -> activation -> MaxPooling2D as one op for the ``cpu`` backend.

Why: in the seed model every convolution is followed by a 2x2 max-pool. Unfused, the
convolution writes its whole output (at 128x128 the first layer's is 65 MB), the pool reads it
and writes a quarter of it, and backward does the same again in reverse. Fused, each thread
computes the convolution for one band of PH output rows of one image into a scratch buffer that
stays in cache (:mod:`._cpu_direct`'s tiles), adds the bias, applies the activation and pools
it: only the pooled output (and the argmax, one byte per output, in training) is written.
Backward turns ``dy`` of the pooled output into the convolution's padded ``dz`` in one pass
(``dy * act'(y)`` at each window's argmax, zero elsewhere: the maximum of the activated values
is the activated value at the argmax), then takes the direct kernels' weight and input
gradients.

The results are bit for bit those of the two layers run one after the other on the direct path
(same tiles, same order of every sum, same first-maximum rule for ties and NaN), which the tests
check. Supported (:func:`supported`): what the direct path supports, with a 'valid' pool whose
stride equals its size and a window of at most 256 positions.
"""

import numpy as np
from numba import njit, prange

from ..errors import ConfigError, ShapeError
from . import _cpu_direct as direct
from . import _cpu_memory as mem
from ._cpu_act import CODES, act_grad, act_value
from ._cpu_checks import activation_code, bias, float_array, pair_of_ints, same_shape
from ._cpu_conv import ELEMENTWISE
from ._cpu_pooling import _maxpool_forward_kernel
from .shapes import conv_geometry

#: fewest input channels for which the convolution is computed band by band (below: see
#: conv2d_maxpool_forward)
BAND_MIN_C = 16
#: fewest conv pixels per work item: small images take several bands at once, so that the
#: 12-pixel tiles stay full (a 2x2-pooled 3x3 output is a 4-pixel band: a third of a tile)
MIN_ITEM_PIXELS = 4 * direct.PIX


@njit(cache=True)
def _conv_pool_bands(xp, wf, KH, KW, b, act, alpha, PH, PW, y, arg, keep_arg, t0, t1):
    """Bands t0..t1-1 (band t: image t // POH, pooled row t % POH): their conv pixels in
    tiles, then bias, activation and pooling band by band."""
    N, Hp, Wp, C = xp.shape
    _, POH, POW, G = y.shape
    OWu = POW * PW  # conv columns the pool reads; a ragged last column is never computed
    P = PH * OWu  # pixels of one band
    xf = xp.reshape(-1)
    zero, one = np.intp(0), np.intp(1)  # typed variables, not literals (see _cpu_direct._tiles)
    total = (t1 - t0) * P
    bands = np.empty(total * G, np.float32)
    offs = np.empty(direct.PIX, np.intp)
    t, rr, jj = t0, 0, 0  # band, band row and column of the next pixel (no divisions per stream)
    for p0 in range(0, total, direct.PIX):
        nr = min(direct.PIX, total - p0)
        for r in range(nr):
            n = t // POH
            offs[r] = ((n * Hp + (t - n * POH) * PH + rr) * Wp + jj) * C
            jj += 1
            if jj == OWu:
                jj = 0
                rr += 1
                if rr == PH:
                    rr = 0
                    t += 1
        for r in range(nr, direct.PIX):
            offs[r] = offs[0]
        direct._tiles(xf, offs, nr, wf, zero, G, one, zero, zero, KH, Wp * C, KW * C * G, KW * C, one, G,
                      bands, p0 * G, G, np.bool_(False))
    for t in range(t0, t1):
        n = t // POH
        i = t - n * POH
        band = bands[(t - t0) * P * G:(t - t0 + 1) * P * G]
        if keep_arg:  # training: bias and activation, then the pool with its argmax
            for e in range(0, P * G, G):
                for f in range(G):
                    band[e + f] = act_value(band[e + f] + b[f], act, alpha)
            out = y[n, i].reshape(-1)
            win = arg[n, i].reshape(-1)
            for e in range(POW * G):
                out[e] = -np.inf
                win[e] = 0
            for p in range(PH):
                for j in range(POW):
                    for q in range(PW):
                        src = (p * OWu + j * PW + q) * G
                        dst = j * G
                        k = np.uint8(p * PW + q)
                        for f in range(G):
                            val = band[src + f]
                            cur = out[dst + f]
                            wins = (val > cur) | ((val != val) & (cur == cur))
                            out[dst + f] = val if wins else cur
                            win[dst + f] = k if wins else win[dst + f]
            continue
        # inference: no argmax; bias, activation and the pool's first-maximum rule in one pass
        out = y[n, i].reshape(-1)
        for e in range(POW * G):
            out[e] = -np.inf
        for p in range(PH):
            for j in range(POW):
                for q in range(PW):
                    src = (p * OWu + j * PW + q) * G
                    dst = j * G
                    for f in range(G):
                        val = act_value(band[src + f] + b[f], act, alpha)
                        cur = out[dst + f]
                        out[dst + f] = val if (val > cur) | ((val != val) & (cur == cur)) else cur


@njit(parallel=True, cache=True)
def _conv_pool_kernel(xp, wf, KH, KW, b, act, alpha, PH, PW, bpi, y, arg, keep_arg):
    """y (N, POH, POW, F) = maxpool(act(conv(xp) + b)), ``bpi`` bands of PH conv rows per work
    item; arg = window index p*PW + q of the first maximum (NaN wins, as in
    :mod:`._cpu_pooling`), written only when ``keep_arg``."""
    T = y.shape[0] * y.shape[1]
    for item in prange((T + bpi - 1) // bpi):
        t0 = np.intp(item) * bpi
        _conv_pool_bands(xp, wf, KH, KW, b, act, alpha, PH, PW, y, arg, keep_arg, t0, min(t0 + bpi, T))


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
def _unpool_dz_kernel(dy, y, arg, act, PH, PW, top, left, dzp, part):
    """dzp[n, top + h, left + v, f] = dy * act'(y) of the pooled output whose argmax is (h, v),
    zero elsewhere (border, ragged edge, losers), one sequential pass per image; part (N, F)
    float64 = each image's bias gradient."""
    for n in prange(dy.shape[0]):
        _unpool_image(dy, y, arg, act, PH, PW, top, left, dzp, part, np.intp(n))


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
    x = float_array(x, "x", 4)
    w = float_array(w, "w", 4, x.dtype)
    N, H, W, C = x.shape
    KH, KW, Cw, F = w.shape
    PH, PW = pair_of_ints(pool, "pool")
    if Cw != C:
        raise ShapeError(f"w has {Cw} input channels but x has {C} (x {x.shape}, w {w.shape})")
    if padding not in ("valid", "same"):
        raise ConfigError(f"padding must be 'valid' or 'same', got {padding!r}")
    if not supported(x.shape, w.shape, (1, 1), (PH, PW), (PH, PW), "valid", x.dtype, False):
        raise ConfigError("conv2d_maxpool_forward: these shapes/dtype are not supported (see supported())")
    OH, OW, pads = conv_geometry(H, W, KH, KW, (1, 1), padding)
    POH, POW = OH // PH, OW // PW
    if POH < 1 or POW < 1:
        raise ShapeError(f"the convolution's {OH}x{OW} output is smaller than the pool {PH}x{PW}")
    bb = bias(b, F, x.dtype)
    act = activation_code(activation, ELEMENTWISE, CODES)
    y = mem.take((N, POH, POW, F), x.dtype)
    arg = mem.take((N, POH, POW, F), np.uint8) if training else np.empty((1, 1, 1, 1), np.uint8)
    if C < BAND_MIN_C:
        # a window of few channels (a grey or RGB first layer): each tile has a reduction of
        # KH*KW*C steps only, and the band's bookkeeping costs more than writing the
        # convolution's output once and pooling it (measured at 28 and 128: 0.60 vs 0.92 ms,
        # 18 vs 21 ms); the numbers are the same, and backward is fused either way
        full = mem.workspace("convpool_full", (N, OH, OW, F), np.float32)
        direct.forward(x, w, bb, pads, act, np.float32(0), full)
        if not training:
            arg = mem.take((N, POH, POW, F), np.uint8)
        _maxpool_forward_kernel(full, PH, PW, PH, PW, 0, 0, y, arg)
    else:
        xp = direct.pad(x, pads)
        bpi = max(1, -(-MIN_ITEM_PIXELS // (PH * POW * PW)))  # bands per work item
        _conv_pool_kernel(xp, w.reshape(-1), KH, KW, bb, act, np.float32(0), PH, PW, bpi, y, arg, training)
    if not training:
        return y, None
    return y, (x, w, b is not None, y, arg, (OH, OW), pads, act, (PH, PW))


def conv2d_maxpool_backward(dy, ctx, need_dx=True):
    """``(dx, dw, db)`` of :func:`conv2d_maxpool_forward` (dx None unless ``need_dx``)."""
    if ctx is None:
        raise ConfigError("conv2d_maxpool_backward needs the ctx of a training forward pass")
    x, w, has_bias, y, arg, (OH, OW), pads, act, (PH, PW) = ctx
    dy = float_array(dy, "dy", 4, y.dtype)
    same_shape(dy, y.shape, "dy")
    N, _, _, C = x.shape
    F = w.shape[-1]
    if need_dx and not direct.eligible(x.dtype, (1, 1), C, F, True):
        raise ConfigError(f"conv2d_maxpool_backward: no direct input gradient for C={C} (see supported())")
    top, bottom, left, right = direct.dz_layout(x.shape, w.shape, (OH, OW), pads, need_dx)
    dzp = mem.workspace("direct_dz", (N, OH + top + bottom, OW + left + right, F), np.float32)
    dbp = np.empty((N, F))
    _unpool_dz_kernel(dy, y, arg, act, PH, PW, top, left, dzp, dbp)
    dw = mem.take(w.shape, w.dtype)
    dx = mem.take(x.shape, x.dtype) if need_dx else None
    direct.gradients_from_dz(x, w, dzp, top, left, pads, need_dx, dw, dx)
    return dx, dw, (dbp.sum(axis=0).astype(y.dtype) if has_bias else None)
