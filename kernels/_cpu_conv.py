"""Conv2D for the ``cpu`` backend: Numba for the memory-bound parts, BLAS for the products.

Three paths, chosen from the shapes (formulas: :func:`tinycnn.kernels.reference.conv2d_forward`):

* **Register-blocked direct path** (:mod:`._cpu_direct`) for float32 stride-1 convolutions
  with F a multiple of 32 (and C too, when the input gradient is needed), on AVX-512 CPUs
  (:func:`._cpu_direct.eligible`): no im2col, no BLAS, about 1.5x the GEMM's arithmetic rate.
  The two paths below serve the rest (float64, strides, other channel counts, machines without
  AVX-512); forward and backward choose independently (both read the same ``ctx``).

* **GEMM path** (the general case): the batch goes through im2col in chunks of whole images,
  each chunk into one reused workspace of at most :data:`._cpu_memory.WORKSPACE_LIMIT` bytes:
  ``y[chunk] = cols @ W`` (BLAS, written straight into ``y``), then bias + activation in one
  pass while the chunk is still in cache. Backward, per chunk: ``dz = dy * act'(y)`` (with the
  bias gradient summed in the same pass), im2col again (the columns are not kept between
  forward and backward: recomputing them is cheaper than holding them, and the peak memory
  stays that of the activations), ``dw += cols.T @ dz``, ``dcols = dz @ W.T`` into the same
  workspace, and a gather-form col2im (each ``dx`` element written once, so no zero-fill and
  no write races). 1x1 kernels with stride 1 skip im2col: ``cols`` is ``x`` itself.
* **Direct path** for small windows (``KH*KW*C <= DIRECT_MAX_K``, i.e. the first layer on a
  grey or RGB image): a GEMM with K = 9 or 27 is bound by writing its output, so the direct
  loop computes each output pixel's F values in cache with the bias and activation fused, and
  backward computes ``dz`` (one output row at a time, in L1), ``dw`` and ``db`` in one pass
  over ``dy`` and ``y``, without materialising ``dz`` or the columns for the batch. At 128x128
  both directions are bound by memory traffic (the 65 MB output), not arithmetic.

Weights are (KH, KW, C, F), so ``w.reshape(KH*KW*C, F)`` is the GEMM matrix, with row
``(p*KW + q)*C + c`` as in the reference's im2col.
"""

import numpy as np
from numba import get_num_threads, njit, prange

from . import _cpu_direct as direct
from . import _cpu_memory as mem
from . import checks
from ._cpu_act import CODES, FAST, act_grad, act_value
from ._cpu_checks import bias, float_array

#: largest KH*KW*C computed by the direct loop instead of im2col + GEMM
DIRECT_MAX_K = 32
#: rows of output per block in the partial sums of the bias/weight gradients: partial sums are
#: float32 in float32 runs, so each stays short (error ~ sqrt(rows) ulp), then summed in float64
_ROWS_PER_BLOCK = 2048
#: element-wise passes over fewer elements than this run on one thread
SERIAL_BELOW = 1 << 14


# --------------------------------------------------------------------------- Numba kernels
@njit(inline="always", cache=True)
def window_columns(q, pl, sw, W, OW):
    """``(jlo, jhi)``: the output columns j whose input column ``j*sw + q - pl`` (window
    offset q, left padding pl) lies inside ``0..W-1``; shared by conv and pooling loops."""
    return max(0, (pl - q + sw - 1) // sw), min(OW, (W - 1 + pl - q) // sw + 1)


@njit(parallel=True, fastmath=FAST, cache=True)
def _direct_forward_kernel(x, w2, b, KH, KW, sh, sw, pt, pl, act, alpha, nb, y):
    """Output rows y[n, i] (OW x F) are accumulated in a per-block scratch row that stays in
    L1: start from the bias, add each window offset's contribution for all j at once
    (independent updates, no dependency chain), then write the activated row to y in one
    sequential pass (the output is the only large memory stream)."""
    N, H, W, C = x.shape
    _, OH, OW, F = y.shape
    rows = N * OH
    for blk in prange(nb):
        out = np.empty((OW, F), dtype=y.dtype)
        for t in range(blk * rows // nb, (blk + 1) * rows // nb):
            n = t // OH
            i = t - n * OH
            for j in range(OW):
                for f in range(F):
                    out[j, f] = b[f]
            for p in range(KH):
                h = i * sh + p - pt
                if h < 0 or h >= H:
                    continue
                xrow = x[n, h]
                for q in range(KW):
                    jlo, jhi = window_columns(q, pl, sw, W, OW)
                    for c in range(C):
                        wk = w2[(p * KW + q) * C + c]
                        for j in range(jlo, jhi):
                            xv = xrow[j * sw + q - pl, c]
                            o = out[j]
                            for f in range(F):
                                o[f] += xv * wk[f]
            dst = y[n, i]
            for j in range(OW):
                for f in range(F):
                    dst[j, f] = act_value(out[j, f], act, alpha)


@njit(parallel=True, fastmath=FAST, cache=True)
def _direct_backward_w_kernel(x, y, dy, KH, KW, sh, sw, pt, pl, act, part):
    """part (blocks, K + 1, F), zeroed: rows 0..K-1 collect dw, row K db. Per output row, dz
    is computed once into a scratch row (in L1), then each tap's dw row takes four output
    columns per update (a quarter of the loads/stores of one column at a time)."""
    N, H, W, C = x.shape
    _, OH, OW, F = y.shape
    K = KH * KW * C
    nb = part.shape[0]
    rows = N * OH
    for blk in prange(nb):
        acc = part[blk]
        dz = np.empty((OW, F), dtype=y.dtype)
        for t in range(blk * rows // nb, (blk + 1) * rows // nb):
            n = t // OH
            i = t - n * OH
            for j in range(OW):
                for f in range(F):
                    g = act_grad(dy[n, i, j, f], y[n, i, j, f], act)
                    dz[j, f] = g
                    acc[K, f] += g
            for p in range(KH):
                h = i * sh + p - pt
                if h < 0 or h >= H:
                    continue
                xrow = x[n, h]
                for q in range(KW):
                    jlo, jhi = window_columns(q, pl, sw, W, OW)
                    for c in range(C):
                        a = acc[(p * KW + q) * C + c]
                        j = jlo
                        while j + 4 <= jhi:
                            v = j * sw + q - pl
                            x0, x1 = xrow[v, c], xrow[v + sw, c]
                            x2, x3 = xrow[v + 2 * sw, c], xrow[v + 3 * sw, c]
                            d0, d1, d2, d3 = dz[j], dz[j + 1], dz[j + 2], dz[j + 3]
                            for f in range(F):
                                a[f] += (x0 * d0[f] + x1 * d1[f]) + (x2 * d2[f] + x3 * d3[f])
                            j += 4
                        while j < jhi:
                            xv = xrow[j * sw + q - pl, c]
                            d = dz[j]
                            for f in range(F):
                                a[f] += xv * d[f]
                            j += 1


@njit(parallel=True, fastmath=FAST, cache=True)
def _direct_backward_x_kernel(dy, y, w2, KH, KW, sh, sw, pt, pl, act, dx):
    N, H, W, C = dx.shape
    _, OH, OW, F = dy.shape
    for t in prange(N * H):
        n = t // H
        h = t - n * H
        for v in range(W):
            out = dx[n, h, v]
            for c in range(C):
                out[c] = 0
            for p in range(KH):
                ii = h + pt - p
                if ii < 0 or ii % sh != 0 or ii // sh >= OH:
                    continue
                i = ii // sh
                for q in range(KW):
                    jj = v + pl - q
                    if jj < 0 or jj % sw != 0 or jj // sw >= OW:
                        continue
                    j = jj // sw
                    k0 = (p * KW + q) * C
                    for f in range(F):
                        g = act_grad(dy[n, i, j, f], y[n, i, j, f], act)
                        for c in range(C):
                            out[c] += w2[k0 + c, f] * g


@njit(parallel=True, fastmath=FAST, cache=True)
def _im2col_kernel(x, n0, n1, KH, KW, sh, sw, pt, pl, OH, OW, cols):
    """cols[((n-n0)*OH + i)*OW + j, (p*KW + q)*C + c] = xpad[n, i*sh + p, j*sw + q, c]."""
    N, H, W, C = x.shape
    for t in prange((n1 - n0) * OH):
        nl = t // OH
        i = t - nl * OH
        n = n0 + nl
        for j in range(OW):
            row = cols[t * OW + j]
            for p in range(KH):
                h = i * sh + p - pt
                for q in range(KW):
                    v = j * sw + q - pl
                    k0 = (p * KW + q) * C
                    if h < 0 or h >= H or v < 0 or v >= W:
                        for c in range(C):
                            row[k0 + c] = 0
                    else:
                        src = x[n, h, v]
                        for c in range(C):
                            row[k0 + c] = src[c]


@njit(parallel=True, fastmath=FAST, cache=True)
def _col2im_kernel(dcols, n0, n1, KH, KW, sh, sw, pt, pl, OH, OW, dx):
    """col2im for images n0..n1, one thread per image row: dx[n,h,:,:] is zeroed, then every
    window (i, j) and offset (p, q) that lands on row h adds its dcols entries (no races, no
    separate zero-fill pass, no division in the inner loops)."""
    N, H, W, C = dx.shape
    for t in prange((n1 - n0) * H):
        nl = t // H
        h = t - nl * H
        out = dx[n0 + nl, h]
        for v in range(W):
            for c in range(C):
                out[v, c] = 0
        for p in range(KH):
            ii = h + pt - p
            if ii < 0 or ii % sh != 0 or ii // sh >= OH:
                continue
            base = (nl * OH + ii // sh) * OW
            for q in range(KW):
                k0 = (p * KW + q) * C
                jlo, jhi = window_columns(q, pl, sw, W, OW)
                for j in range(jlo, jhi):
                    src = dcols[base + j]
                    dst = out[j * sw + q - pl]
                    for c in range(C):
                        dst[c] += src[k0 + c]


@njit(parallel=True, fastmath=FAST, cache=True)
def _bias_act_kernel(z, b, act, alpha):
    """In place over the rows of z (M, F): z = act(z + b)."""
    M, F = z.shape
    for r in prange(M):
        row = z[r]
        for f in range(F):
            row[f] = act_value(row[f] + b[f], act, alpha)


@njit(fastmath=FAST, cache=True)
def _bias_act_serial(z, b, act, alpha):
    """_bias_act_kernel without threads, for small arrays (a parallel launch costs ~10 us)."""
    M, F = z.shape
    for r in range(M):
        for f in range(F):
            z[r, f] = act_value(z[r, f] + b[f], act, alpha)


@njit(fastmath=FAST, cache=True)
def _act_grad_serial(dy, y, act, dz, part):
    """_act_grad_kernel without threads, for small arrays."""
    M, F = dy.shape
    acc = part[0]
    for r in range(M):
        for f in range(F):
            g = act_grad(dy[r, f], y[r, f], act)
            dz[r, f] = g
            acc[f] += g


@njit(parallel=True, fastmath=FAST, cache=True)
def _act_grad_kernel(dy, y, act, dz, part):
    """dz = dy * act'(y) over rows (M, F); part (blocks, F) accumulates the column sums of dz."""
    M, F = dy.shape
    nb = part.shape[0]
    for blk in prange(nb):
        acc = part[blk]
        for r in range(blk * M // nb, (blk + 1) * M // nb):
            for f in range(F):
                g = act_grad(dy[r, f], y[r, f], act)
                dz[r, f] = g
                acc[f] += g


# --------------------------------------------------------------------------- helpers
def _blocks(rows):
    """Number of partial-sum blocks: enough for every thread, each at most ~_ROWS_PER_BLOCK."""
    return max(2 * get_num_threads(), min(4096, -(-rows // _ROWS_PER_BLOCK)), 1)


def _chunks(N, per_image):
    """(n0, n1) image ranges whose workspace stays within the limits (at least one image)."""
    budget = min(int(mem.WORKSPACE_LIMIT), int(mem.CHUNK_TARGET))
    step = max(1, min(N, budget // max(per_image, 1)))
    return [(n0, min(N, n0 + step)) for n0 in range(0, N, step)]


def act_and_bias_grad(dy2d, y2d, act, dz, part=None, serial_below=SERIAL_BELOW):
    """dz = dy * act'(y) for (M, F) rows; adds the column sums of dz (the bias gradient) to
    ``part`` (blocks, F), created zeroed when None, and returns it. Arrays with fewer than
    ``serial_below`` elements are done on one thread."""
    if part is None:
        part = np.zeros((_blocks(dy2d.shape[0]), dy2d.shape[1]), dy2d.dtype)
    if dy2d.size < serial_below:
        _act_grad_serial(dy2d, y2d, act, dz, part)
    else:
        _act_grad_kernel(dy2d, y2d, act, dz, part)
    return part


def bias_act(z2d, b, act):
    """z = act(z + b) in place over (M, F) rows."""
    kernel = _bias_act_serial if z2d.size < SERIAL_BELOW else _bias_act_kernel
    kernel(z2d, b, act, z2d.dtype.type(0))


# --------------------------------------------------------------------------- launchers
def conv2d_forward(x, w, b, stride, padding, activation="linear"):
    """Convolution + bias + activation, NHWC; see the module docstring for the two paths."""
    dt, ((sh, sw), pads, OH, OW), activation = checks.conv2d(x, w, b, stride, padding, activation)
    x, w = float_array(x, "x", 4, dt), float_array(w, "w", 4, dt)
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    pt, _, pl, _ = pads
    bb = bias(b, F, dt)
    act = CODES[activation]
    K = KH * KW * C
    w2 = w.reshape(K, F)
    y = mem.take((N, OH, OW, F), dt)
    y2d = y.reshape(N * OH * OW, F)
    if direct.eligible(dt, (sh, sw), C, F, need_dx=False):
        direct.forward(x, w, bb, pads, act, dt.type(0), y)
    elif K <= DIRECT_MAX_K:
        nb = min(4 * get_num_threads(), max(N * OH, 1))
        _direct_forward_kernel(x, w2, bb, KH, KW, sh, sw, pt, pl, act, dt.type(0), nb, y)
    elif KH == KW == 1 and sh == sw == 1:
        np.matmul(x.reshape(N * H * W, C), w2, out=y2d)
        bias_act(y2d, bb, act)
    else:
        for n0, n1 in _chunks(N, OH * OW * (K + F) * dt.itemsize):
            r0, r1 = n0 * OH * OW, n1 * OH * OW
            cols = mem.workspace("cols", (r1 - r0, K), dt)
            _im2col_kernel(x, n0, n1, KH, KW, sh, sw, pt, pl, OH, OW, cols)
            np.matmul(cols, w2, out=y2d[r0:r1])
            bias_act(y2d[r0:r1], bb, act)
    return y, (x, w, b is not None, y, (sh, sw), pads, act)


def conv2d_backward(dy, ctx, need_dx=True):
    """``(dx, dw, db)`` of :func:`conv2d_forward`; ``dz = dy * act'(y)`` is applied first."""
    x, w, has_bias, y, (sh, sw), (pt, pb, pl, pr), act = ctx
    dt = y.dtype
    checks.grad(dy, y.shape)
    dy = float_array(dy, "dy", 4, dt)
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    _, OH, OW, _ = y.shape
    K = KH * KW * C
    w2 = w.reshape(K, F)
    dw = mem.take(w.shape, dt)
    dw2 = dw.reshape(K, F)
    dx = mem.take(x.shape, dt) if need_dx else None
    if direct.eligible(dt, (sh, sw), C, F, need_dx):
        db_sum = direct.backward(x, w, y, dy, (pt, pb, pl, pr), act, need_dx, dw, dx)
    elif K <= DIRECT_MAX_K:
        part = np.zeros((min(_blocks(N * OH * OW), max(N * OH, 1)), K + 1, F), dt)
        _direct_backward_w_kernel(x, y, dy, KH, KW, sh, sw, pt, pl, act, part)
        total = part.sum(axis=0, dtype=np.float64)
        dw2[...] = total[:K]
        db_sum = total[K]
        if need_dx:
            _direct_backward_x_kernel(dy, y, w2, KH, KW, sh, sw, pt, pl, act, dx)
    else:
        y2d = y.reshape(-1, F)
        dy2d = dy.reshape(-1, F)
        pointwise = KH == KW == 1 and sh == sw == 1
        chunks = _chunks(N, OH * OW * (K + F) * dt.itemsize)
        part = np.zeros((_blocks((chunks[0][1] - chunks[0][0]) * OH * OW if chunks else 0), F), dt)
        for n0, n1 in chunks:
            r0, r1 = n0 * OH * OW, n1 * OH * OW
            dz = mem.workspace("dz", (r1 - r0, F), dt)
            act_and_bias_grad(dy2d[r0:r1], y2d[r0:r1], act, dz, part)
            if pointwise:
                cols = x.reshape(-1, C)[r0:r1]
            else:
                cols = mem.workspace("cols", (r1 - r0, K), dt)
                _im2col_kernel(x, n0, n1, KH, KW, sh, sw, pt, pl, OH, OW, cols)
            if n0 == 0:
                np.matmul(cols.T, dz, out=dw2)
            else:
                tmp = mem.workspace("dw", (K, F), dt)
                np.matmul(cols.T, dz, out=tmp)
                dw2 += tmp
            if need_dx:
                if pointwise:
                    np.matmul(dz, w2.T, out=dx.reshape(-1, C)[r0:r1])
                else:
                    np.matmul(dz, w2.T, out=cols)  # the columns are dead: reuse their space
                    _col2im_kernel(cols, n0, n1, KH, KW, sh, sw, pt, pl, OH, OW, dx)
        if N == 0:
            dw2[...] = 0
        db_sum = part.sum(axis=0, dtype=np.float64)
    db = db_sum.astype(dt) if has_bias else None
    return dx, dw, db
