"""Register-blocked direct convolution for the ``cpu`` backend (float32, stride 1, NHWC).

Why not im2col + GEMM: on this backend's target machines (AVX-512), a Numba tile that keeps
outputs in vector registers (:mod:`._cpu_simd`) runs at 200-250 GFLOP/s per core on the seed
model's layers (forward, input and weight gradient alike; measured on one Zen 5 core), while
OpenBLAS runs its 8-lane (AVX2) SGEMM at 100-120; and the direct form reads the image in place,
so there is no im2col (9x the input written and read again) and no col2im. Every thread takes
whole blocks of output pixels (forward, input gradient) or whole images (weight gradient): one
parallel region per kernel, no BLAS threads.

Why not Winograd (F(2x2,3x3) does 2.25x fewer multiplies): not built. The direct tile already
runs at twice the machine's SGEMM rate with the accuracy of a plain sum; Winograd's
elementwise stage would be the same tile on K = C (32 or 64) reductions, plus two transforms
per layer and a larger float32 error (the transforms' constants amplify it); it is the next
step if the convolutions' arithmetic is to shrink further.

The tile
--------
``acc[r, v] = sum_t a[offs[r] + t_a] * b[bo + 16 v + t_b]`` for 6 (or 12) *streams* r of ``a``
and 4 (or 2) 16-lane vectors v of ``b``, over a reduction of up to three nested loops with
their own strides (``t_a``/``t_b`` advance by (a2, b2), (a1, b1), (a0, b0)). Each reduction step
is one broadcast of ``a`` per stream, one load of ``b`` per vector and ``r * v`` FMAs, with the
24 accumulators in registers. The three kernels are three ways of indexing it (NHWC, weights
``w[p, q, c, f]`` flat as ``(KH*KW*C, F)``, ``x`` already padded so the convolution is 'valid'):

* forward: streams = 12 consecutive output pixels (``offs`` = start of each window), vectors =
  output channels, reduction = window rows p (stride ``Wp*C``) x the row's ``KW*C`` contiguous
  values (``q*C + c``; weights advance by ``F``).
* input gradient = the forward pass of ``dz`` (zero-padded by ``KH-1-pt`` ...) with the weights
  rotated by 180 degrees and transposed to ``(KH, KW, F, C)``.
* weight gradient: streams = 12 consecutive ``q*C + c`` of one window row p, vectors = output
  channels, reduction = the output pixels of a block of rows (x advances by ``C``, dz by ``F``).

Errors: every output is one sum of K = KH*KW*C (forward), KH*KW*F (input gradient) or OH*OW
per image (weight gradient; images then summed in float64) products accumulated with
single-rounding FMAs in a fixed order: the float32 error is at most about ``K * 2**-24 *
sum |terms|`` (typically ``sqrt(K)`` times that unit), the same bound as a GEMM's. The order
depends only on the shapes (and, for the weight gradient, on the thread count, through the
image blocks), so repeated runs give identical bits.
"""

import numpy as np
from numba import get_num_threads, njit, prange

from . import _cpu_memory as mem
from ._cpu_act import LINEAR, RELU, act_grad, act_value
from ._cpu_simd import AVX512, vadd, vbroadcast, vfma, vload, vstore, vzero

#: the rule (measured, see benchmarks/RESULTS.md): the direct kernels replace im2col + GEMM
#: for float32 stride-1 convolutions whose channel counts are multiples of 16 (a 16-channel
#: remainder runs the 32-lane tile storing one vector: a tile of its own would add 2 s of
#: compilation to every cold start), on CPUs with AVX-512; set False to force im2col + GEMM
#: (tests compare the two)
ENABLED = AVX512
#: output pixels per forward tile (two 6-stream tiles, or one 12-stream tile)
PIX = 12
#: pixels of output rows per weight-gradient block: dz and x of a block stay in L1/L2
DW_BLOCK_PIXELS = 512


# --------------------------------------------------------------------------- tiles
@njit(cache=True)
def _tile6x4(a, offs, s0, nr, b, bo, n2, a2, b2, n1, a1, b1, n0, a0, b0, out, oo, os, add):
    """6 streams (``offs[s0:s0+6]``) x 64 channels; rows r < nr are stored (added when ``add``)."""
    o0, o1, o2, o3, o4, o5 = offs[s0], offs[s0 + 1], offs[s0 + 2], offs[s0 + 3], offs[s0 + 4], offs[s0 + 5]
    c00 = vzero(); c01 = vzero(); c02 = vzero(); c03 = vzero()  # noqa: E702
    c10 = vzero(); c11 = vzero(); c12 = vzero(); c13 = vzero()  # noqa: E702
    c20 = vzero(); c21 = vzero(); c22 = vzero(); c23 = vzero()  # noqa: E702
    c30 = vzero(); c31 = vzero(); c32 = vzero(); c33 = vzero()  # noqa: E702
    c40 = vzero(); c41 = vzero(); c42 = vzero(); c43 = vzero()  # noqa: E702
    c50 = vzero(); c51 = vzero(); c52 = vzero(); c53 = vzero()  # noqa: E702
    for t2 in range(n2):
        for t1 in range(n1):
            ta = t2 * a2 + t1 * a1
            tb = bo + t2 * b2 + t1 * b1
            for _ in range(n0):
                w0 = vload(b, tb); w1 = vload(b, tb + 16); w2 = vload(b, tb + 32); w3 = vload(b, tb + 48)  # noqa: E702
                x = vbroadcast(a, o0 + ta)
                c00 = vfma(x, w0, c00); c01 = vfma(x, w1, c01); c02 = vfma(x, w2, c02); c03 = vfma(x, w3, c03)  # noqa: E702
                x = vbroadcast(a, o1 + ta)
                c10 = vfma(x, w0, c10); c11 = vfma(x, w1, c11); c12 = vfma(x, w2, c12); c13 = vfma(x, w3, c13)  # noqa: E702
                x = vbroadcast(a, o2 + ta)
                c20 = vfma(x, w0, c20); c21 = vfma(x, w1, c21); c22 = vfma(x, w2, c22); c23 = vfma(x, w3, c23)  # noqa: E702
                x = vbroadcast(a, o3 + ta)
                c30 = vfma(x, w0, c30); c31 = vfma(x, w1, c31); c32 = vfma(x, w2, c32); c33 = vfma(x, w3, c33)  # noqa: E702
                x = vbroadcast(a, o4 + ta)
                c40 = vfma(x, w0, c40); c41 = vfma(x, w1, c41); c42 = vfma(x, w2, c42); c43 = vfma(x, w3, c43)  # noqa: E702
                x = vbroadcast(a, o5 + ta)
                c50 = vfma(x, w0, c50); c51 = vfma(x, w1, c51); c52 = vfma(x, w2, c52); c53 = vfma(x, w3, c53)  # noqa: E702
                ta += a0
                tb += b0
    _put4(out, oo, add, c00, c01, c02, c03)
    if nr > 1:
        _put4(out, oo + os, add, c10, c11, c12, c13)
    if nr > 2:
        _put4(out, oo + 2 * os, add, c20, c21, c22, c23)
    if nr > 3:
        _put4(out, oo + 3 * os, add, c30, c31, c32, c33)
    if nr > 4:
        _put4(out, oo + 4 * os, add, c40, c41, c42, c43)
    if nr > 5:
        _put4(out, oo + 5 * os, add, c50, c51, c52, c53)


@njit(cache=True)
def _tile12x2(a, offs, nr, b, bo, n2, a2, b2, n1, a1, b1, n0, a0, b0, out, oo, os, add, half):
    """12 streams x 32 channels (the same contract as :func:`_tile6x4`); with ``half`` only the
    first 16 channels are stored (the second vector reads b past its row: callers leave 16
    floats of slack after b, see :func:`slack_workspace`)."""
    o0, o1, o2, o3, o4, o5 = offs[0], offs[1], offs[2], offs[3], offs[4], offs[5]
    o6, o7, o8, o9, o10, o11 = offs[6], offs[7], offs[8], offs[9], offs[10], offs[11]
    c00 = vzero(); c01 = vzero(); c10 = vzero(); c11 = vzero(); c20 = vzero(); c21 = vzero()  # noqa: E702
    c30 = vzero(); c31 = vzero(); c40 = vzero(); c41 = vzero(); c50 = vzero(); c51 = vzero()  # noqa: E702
    c60 = vzero(); c61 = vzero(); c70 = vzero(); c71 = vzero(); c80 = vzero(); c81 = vzero()  # noqa: E702
    c90 = vzero(); c91 = vzero(); ca0 = vzero(); ca1 = vzero(); cb0 = vzero(); cb1 = vzero()  # noqa: E702
    for t2 in range(n2):
        for t1 in range(n1):
            ta = t2 * a2 + t1 * a1
            tb = bo + t2 * b2 + t1 * b1
            for _ in range(n0):
                w0 = vload(b, tb); w1 = vload(b, tb + 16)  # noqa: E702
                x = vbroadcast(a, o0 + ta); c00 = vfma(x, w0, c00); c01 = vfma(x, w1, c01)  # noqa: E702
                x = vbroadcast(a, o1 + ta); c10 = vfma(x, w0, c10); c11 = vfma(x, w1, c11)  # noqa: E702
                x = vbroadcast(a, o2 + ta); c20 = vfma(x, w0, c20); c21 = vfma(x, w1, c21)  # noqa: E702
                x = vbroadcast(a, o3 + ta); c30 = vfma(x, w0, c30); c31 = vfma(x, w1, c31)  # noqa: E702
                x = vbroadcast(a, o4 + ta); c40 = vfma(x, w0, c40); c41 = vfma(x, w1, c41)  # noqa: E702
                x = vbroadcast(a, o5 + ta); c50 = vfma(x, w0, c50); c51 = vfma(x, w1, c51)  # noqa: E702
                x = vbroadcast(a, o6 + ta); c60 = vfma(x, w0, c60); c61 = vfma(x, w1, c61)  # noqa: E702
                x = vbroadcast(a, o7 + ta); c70 = vfma(x, w0, c70); c71 = vfma(x, w1, c71)  # noqa: E702
                x = vbroadcast(a, o8 + ta); c80 = vfma(x, w0, c80); c81 = vfma(x, w1, c81)  # noqa: E702
                x = vbroadcast(a, o9 + ta); c90 = vfma(x, w0, c90); c91 = vfma(x, w1, c91)  # noqa: E702
                x = vbroadcast(a, o10 + ta); ca0 = vfma(x, w0, ca0); ca1 = vfma(x, w1, ca1)  # noqa: E702
                x = vbroadcast(a, o11 + ta); cb0 = vfma(x, w0, cb0); cb1 = vfma(x, w1, cb1)  # noqa: E702
                ta += a0
                tb += b0
    _put2h(out, oo, add, half, c00, c01)
    if nr > 1:
        _put2h(out, oo + os, add, half, c10, c11)
    if nr > 2:
        _put2h(out, oo + 2 * os, add, half, c20, c21)
    if nr > 3:
        _put2h(out, oo + 3 * os, add, half, c30, c31)
    if nr > 4:
        _put2h(out, oo + 4 * os, add, half, c40, c41)
    if nr > 5:
        _put2h(out, oo + 5 * os, add, half, c50, c51)
    if nr > 6:
        _put2h(out, oo + 6 * os, add, half, c60, c61)
    if nr > 7:
        _put2h(out, oo + 7 * os, add, half, c70, c71)
    if nr > 8:
        _put2h(out, oo + 8 * os, add, half, c80, c81)
    if nr > 9:
        _put2h(out, oo + 9 * os, add, half, c90, c91)
    if nr > 10:
        _put2h(out, oo + 10 * os, add, half, ca0, ca1)
    if nr > 11:
        _put2h(out, oo + 11 * os, add, half, cb0, cb1)


@njit(cache=True)
def _put1(out, o, add, c):
    vstore(out, o, vadd(vload(out, o), c) if add else c)


@njit(cache=True)
def _put2(out, o, add, c0, c1):
    _put1(out, o, add, c0)
    _put1(out, o + 16, add, c1)


@njit(cache=True)
def _put2h(out, o, add, half, c0, c1):
    _put1(out, o, add, c0)
    if not half:
        _put1(out, o + 16, add, c1)


@njit(cache=True)
def _put4(out, o, add, c0, c1, c2, c3):
    _put2(out, o, add, c0, c1)
    _put2(out, o + 32, add, c2, c3)


@njit(cache=True)
def _tiles(a, offs, nr, b, bo, G, n2, a2, b2, n1, a1, b1, n0, a0, b0, out, oo, os, add):
    """Every channel group of G (a multiple of 16) for 12 streams: 64 at a time (two 6-stream
    tiles), then 32 or 16; ``b``'s vectors start at ``b[bo]`` (channel 0 of a row of G)."""
    # every count and flag passed on is a typed variable, never a literal constant: Numba would
    # compile one specialisation of a tile per literal value (measured: 2x the compile time)
    g = np.intp(0)
    while g + 64 <= G:
        s0 = np.intp(0)
        while s0 < nr:  # one call site: LLVM keeps one copy of the tile (compile time)
            _tile6x4(a, offs, s0, min(nr - s0, 6), b, bo + g, n2, a2, b2, n1, a1, b1, n0, a0, b0, out,
                     oo + g + s0 * os, os, add)
            s0 += 6
        g += 64
    while g < G:  # 32 channels at a time; a last 16 with the tile storing one vector
        _tile12x2(a, offs, nr, b, bo + g, n2, a2, b2, n1, a1, b1, n0, a0, b0, out, oo + g, os, add, G - g == 16)
        g += 32



@njit(cache=True)
def bias_act_rows(yf, e0, rows, G, b, act, alpha):
    """yf[e0 + r*G + f] = act(yf[...] + b[f]) for r < rows. The activation is chosen outside
    the loops, so each loop is branch-free and vectorises (with C = 1 a tile has 9 FMAs per
    output, and a per-element dispatch on the activation cost more than the convolution)."""
    if act == RELU:
        for e in range(e0, e0 + rows * G, G):
            for f in range(G):
                z = yf[e + f] + b[f]
                yf[e + f] = np.float32(0.0) if z < 0 else z  # as act_value: NaN stays NaN
    elif act == LINEAR:
        for e in range(e0, e0 + rows * G, G):
            for f in range(G):
                yf[e + f] += b[f]
    else:
        for e in range(e0, e0 + rows * G, G):
            for f in range(G):
                yf[e + f] = act_value(yf[e + f] + b[f], act, alpha)


# --------------------------------------------------------------------------- kernels
# Each parallel kernel is a bare prange loop over work items that calls a serial worker: Numba's
# parallel lowering then analyses a one-line body (measured: half the compile time of the same
# loops written inside the prange). The item index is passed as np.intp: the parallel loop's own
# index is unsigned in the compiled loop, and a second type would compile the worker twice.

@njit(cache=True)
def conv_pixels(xp, wf, KH, KW, b, act, alpha, p_start, p_end, OH, OW, yf, o_start):
    """Output pixels p_start..p_end-1 (flat over N, OH, OW) of :func:`_conv_kernel`, written to
    the flat yf from pixel ``o_start`` on (yf[(p - o_start) * G + f])."""
    N, Hp, Wp, C = xp.shape
    G = b.shape[0]
    xf = xp.reshape(-1)
    zero, one = np.intp(0), np.intp(1)  # typed variables, not literals: see _tiles
    offs = np.empty(PIX, np.intp)
    # (n, i, j) of the next pixel, advanced by one per pixel: no divisions per stream (with
    # C = 1 the window has 9 values, and 3 divisions per pixel cost more than its FMAs)
    n = p_start // (OH * OW)
    i = (p_start - n * OH * OW) // OW
    j = p_start - n * OH * OW - i * OW
    for p0 in range(p_start, p_end, PIX):
        nr = min(PIX, p_end - p0)
        for r in range(nr):
            offs[r] = ((n * Hp + i) * Wp + j) * C
            j += 1
            if j == OW:
                j = 0
                i += 1
                if i == OH:
                    i = 0
                    n += 1
        for r in range(nr, PIX):
            offs[r] = offs[0]  # streams past the end repeat pixel p0, unstored
        _tiles(xf, offs, nr, wf, zero, G, one, zero, zero, KH, Wp * C, KW * C * G, KW * C, one, G, yf,
               (p0 - o_start) * G, G, np.bool_(False))
        bias_act_rows(yf, (p0 - o_start) * G, nr, G, b, act, alpha)


@njit(parallel=True, cache=True)
def _conv_kernel(xp, wf, KH, KW, b, act, alpha, nblk, y):
    """'valid' stride-1 convolution of the padded batch xp (N, Hp, Wp, C) with wf (KH*KW*C*G,)
    into y (N, OH, OW, G), then ``y = act(y + b)``; nblk blocks of PIX-pixel tiles."""
    P = y.shape[0] * y.shape[1] * y.shape[2]
    ntile = (P + PIX - 1) // PIX
    for blk in prange(nblk):
        t0, t1 = np.intp(blk) * ntile // nblk, (np.intp(blk) + 1) * ntile // nblk
        conv_pixels(xp, wf, KH, KW, b, act, alpha, t0 * PIX, min(P, t1 * PIX), y.shape[1], y.shape[2],
                     y.reshape(-1), np.intp(0))


@njit(cache=True)
def _dz_image(dy, y, act, top, left, dzp, part, n):
    _, OH, OW, F = dy.shape
    _, Hz, Wz, _ = dzp.shape
    for f in range(F):
        part[n, f] = 0
    for h in range(Hz):
        for v in range(Wz):
            i, j = h - top, v - left
            dst = dzp[n, h, v]
            if i < 0 or i >= OH or j < 0 or j >= OW:
                for f in range(F):
                    dst[f] = 0
                continue
            for f in range(F):
                g = act_grad(dy[n, i, j, f], y[n, i, j, f], act)
                dst[f] = g
                part[n, f] += g


@njit(parallel=True, cache=True)
def _dz_kernel(dy, y, act, top, left, dzp, part):
    """dzp[n, top + i, left + j] = dy * act'(y) (borders zero); part (N, F) float64 = the bias
    gradient of each image (its column sums of dz)."""
    for n in prange(dy.shape[0]):
        _dz_image(dy, y, act, top, left, dzp, part, np.intp(n))


@njit(cache=True)
def dw_block(xp, dzp, top, left, KH, KW, nbi, part, blk):
    N, Hp, Wp, C = xp.shape
    _, Hz, Wz, F = dzp.shape
    OH, OW = Hp - KH + 1, Wp - KW + 1
    U = KW * C
    K = KH * U
    rows = max(1, DW_BLOCK_PIXELS // OW)
    xf = xp.reshape(-1)
    zf = dzp.reshape(-1)
    zero, one = np.intp(0), np.intp(1)  # typed variables, not literals: see _tiles
    out = part[blk].reshape(-1)
    offs = np.empty(PIX, np.intp)
    # images and row blocks outside, the rows k of dw inside: a block of dz is read from memory
    # once and then from cache by every k (the other nesting reads all of dz K/12 times)
    for n in range(blk * N // nbi, (blk + 1) * N // nbi):
        for i0 in range(0, OH, rows):
            base = (n * Hp + i0) * Wp * C
            zo = ((n * Hz + top + i0) * Wz + left) * F
            for k0 in range(0, K, PIX):
                nr = min(PIX, K - k0)
                for r in range(PIX):  # dw row k = p*U + u reads x at p*Wp*C + u of the window
                    k = k0 + (r if r < nr else 0)
                    p = k // U
                    offs[r] = base + p * Wp * C + k - p * U
                _tiles(xf, offs, nr, zf, zo, F, one, zero, zero, min(rows, OH - i0), Wp * C, Wz * F, OW, C, F,
                       out, k0 * F, F, np.bool_(True))


@njit(parallel=True, cache=True)
def _dw_kernel(xp, dzp, top, left, KH, KW, nbi, part):
    """part (nbi, KH*KW*C, F), zeroed, += the weight gradient of image block b (images
    ``b*N//nbi .. (b+1)*N//nbi``): one work item per block, so the threads take whole images."""
    for blk in prange(nbi):
        dw_block(xp, dzp, top, left, KH, KW, nbi, part, np.intp(blk))


@njit(cache=True)
def sum_blocks(part, out):
    """out = the blocks' partial sums added in float64, in block order (part (nbi, M)); serial:
    M <= KH*KW*C*F is small, and one more parallel kernel costs a second of compilation."""
    nbi, M = part.shape
    for e in range(M):
        acc = 0.0
        for blk in range(nbi):
            acc += part[blk, e]
        out[e] = acc


@njit(cache=True)
def rotate(w, wrot):
    """wrot[p, q, f, c] = w[KH-1-p, KW-1-q, c, f]: the input gradient's weights."""
    KH, KW, C, F = w.shape
    for p in range(KH):
        for q in range(KW):
            for c in range(C):
                for f in range(F):
                    wrot[p, q, f, c] = w[KH - 1 - p, KW - 1 - q, c, f]


@njit(cache=True)
def _pad_row(x, top, left, xp, t):
    N, H, W, C = x.shape
    _, Hp, Wp, _ = xp.shape
    n = t // Hp
    h = t - n * Hp - top
    for v in range(Wp):
        dst = xp[n, t - n * Hp, v]
        inside = 0 <= h < H and left <= v < left + W
        for c in range(C):
            dst[c] = x[n, h, v - left, c] if inside else np.float32(0)


@njit(parallel=True, cache=True)
def _pad_kernel(x, top, left, xp):
    """xp[n, top + h, left + v] = x[n, h, v]; the border is zero."""
    for t in prange(xp.shape[0] * xp.shape[1]):
        _pad_row(x, top, left, xp, np.intp(t))


# --------------------------------------------------------------------------- launchers
def eligible(dtype, stride, C, F, need_dx=True):
    """Whether a convolution (forward and weight gradient; input gradient too when ``need_dx``)
    takes the direct path. The rule is a function of the shapes only, so a model always takes
    the same path on the same machine, and its results are reproducible."""
    return (ENABLED and dtype == np.float32 and tuple(stride) == (1, 1) and F % 16 == 0
            and (C % 16 == 0 or not need_dx))


def _blocks(P):
    """Forward/input-gradient work blocks: a few per thread, at least one tile each."""
    return max(1, min(8 * get_num_threads(), -(-P // PIX)))


def pad(x, pads):
    """x zero-padded by (pt, pb, pl, pr) into a workspace, or x itself when nothing is padded."""
    pt, pb, pl, pr = pads
    if not (pt or pb or pl or pr):
        return x
    N, H, W, C = x.shape
    xp = mem.workspace("direct_xpad", (N, H + pt + pb, W + pl + pr, C), x.dtype)
    _pad_kernel(x, pt, pl, xp)
    return xp


def forward(x, w, b, pads, act, alpha, y):
    """y = act(conv(x, w) + b), stride 1; y (N, OH, OW, F) float32, written in place."""
    KH, KW, _, F = w.shape
    xp = pad(x, pads)
    wf = w.reshape(-1)
    if F % 32:  # the half tile reads 16 floats past the last row of w
        wf = slack_workspace("direct_w", wf.shape)
        wf[...] = w.reshape(-1)
    _conv_kernel(xp, wf, KH, KW, b, act, alpha, _blocks(y.shape[0] * y.shape[1] * y.shape[2]), y)


def slack_workspace(name, shape):
    """A float32 workspace of ``shape`` followed by 16 floats of slack (the half tile reads them)."""
    n = int(np.prod(shape))
    return mem.workspace(name, (n + 16,), np.float32)[:n].reshape(shape)


def dz_layout(x_shape, w_shape, out_hw, pads, need_dx):
    """(top, bottom, left, right): the zero border of dz that makes the input gradient a
    'valid' convolution (KH-1-pt rows on top, ...); none when no input gradient is needed."""
    if not need_dx:
        return 0, 0, 0, 0
    _, H, W, _ = x_shape
    KH, KW = w_shape[:2]
    OH, OW = out_hw
    top, left = KH - 1 - pads[0], KW - 1 - pads[2]
    return top, H + KH - 1 - top - OH, left, W + KW - 1 - left - OW


def backward(x, w, y, dy, pads, act, need_dx, dw, dx):
    """Fill dw (KH, KW, C, F) and, when ``need_dx``, dx (N, H, W, C); return db (F,) float64."""
    N, OH, OW, F = y.shape
    top, bottom, left, right = dz_layout(x.shape, w.shape, (OH, OW), pads, need_dx)
    dzp = slack_workspace("direct_dz", (N, OH + top + bottom, OW + left + right, F))
    dbp = np.empty((N, F))
    _dz_kernel(dy, y, act, top, left, dzp, dbp)
    gradients_from_dz(x, w, dzp, top, left, pads, need_dx, dw, dx)
    return dbp.sum(axis=0)


def gradients_from_dz(x, w, dzp, top, left, pads, need_dx, dw, dx):
    """dw and (when ``need_dx``) dx from dz, laid out as :func:`dz_layout` says."""
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    xp = pad(x, pads)
    nbi = max(1, min(N, get_num_threads()))
    part = np.zeros((nbi, KH * KW * C, F), np.float32)
    _dw_kernel(xp, dzp, top, left, KH, KW, nbi, part)
    sum_blocks(part.reshape(nbi, -1), dw.reshape(-1))
    if need_dx:
        wrot = slack_workspace("direct_wrot", (KH, KW, F, C))
        rotate(w, wrot)
        zero = np.zeros(C, np.float32)
        _conv_kernel(dzp, wrot.reshape(-1), KH, KW, zero, 0, np.float32(0), _blocks(N * H * W), dx)
