"""Deterministic reductions for the ``cuda`` backend (no atomics: same input, same bits).

* :func:`colsum` - per-column sums of a batch of matrices ``X (B, M, C) -> (B, C)``: bias and
  batch-norm gradients, batch-norm statistics, global average pooling. Two passes: blocks of
  32 columns x 8 row lanes reduce a chunk of rows each into partials ``(B, G, C)`` (a
  shared-memory tree over the lanes), then :func:`sum_partials` adds the G partials per column.
  G is chosen so that tall, narrow matrices (N*H*W rows, a few channels) still fill the GPU.
* :func:`sum_rows` - one block per row of a short matrix, a shared-memory tree: the loss value.
"""

from numba import cuda

from . import _cuda_common as cc
from ._cuda_common import I64, arr, cdiv, register

LANES = 8  # row lanes per column block (blockDim.y)
COLS = 32  # columns per block (blockDim.x at most)
ROW_THREADS = 256  # threads per row in sum_rows (a power of two)

SUM, SUM_PRODUCT, SUM_SQUARED_DEVIATION = 0, 1, 2


def _colsum_signatures(T):
    return [(arr(T, 3), arr(T, 3), I64, arr(T, 3))]


@register("colsum_partial", _colsum_signatures)
def _colsum_factory(T):
    def _colsum_partial_kernel(x, y, mode, partial):
        """``partial[b, g, c] = sum over the rows r of chunk g of f(x[b, r, c])``.

        mode SUM: ``f = x``; SUM_PRODUCT: ``f = x * y[b, r, c]``;
        SUM_SQUARED_DEVIATION: ``f = (x - y[0, 0, c])**2`` (y holds the column means).
        """
        lanes = cuda.shared.array((LANES, COLS), T)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        c = cuda.blockIdx.x * cuda.blockDim.x + tx
        g = cuda.blockIdx.y
        bb = cuda.blockIdx.z
        M = x.shape[1]
        C = x.shape[2]
        G = cuda.gridDim.y
        per = (M + G - 1) // G
        r0 = g * per
        r1 = min(M, r0 + per)
        acc = T(0)
        if c < C:
            for r in range(r0 + ty, r1, LANES):
                v = x[bb, r, c]
                if mode == SUM:
                    acc += v
                elif mode == SUM_PRODUCT:
                    acc += v * y[bb, r, c]
                else:
                    d = v - y[0, 0, c]
                    acc += d * d
        lanes[ty, tx] = acc
        cuda.syncthreads()
        s = LANES // 2
        while s > 0:
            if ty < s:
                lanes[ty, tx] += lanes[ty + s, tx]
            cuda.syncthreads()
            s //= 2
        if ty == 0 and c < C:
            partial[bb, g, c] = lanes[0, tx]

    return _colsum_partial_kernel


def _sum_partials_signatures(T):
    return [(arr(T, 3), arr(T, 2), T)]


@register("sum_partials", _sum_partials_signatures)
def _sum_partials_factory(T):
    def _sum_partials_kernel(partial, out, denom):
        """``out[b, c] = sum_g partial[b, g, c] / denom``, g in order (deterministic)."""
        B = partial.shape[0]
        G = partial.shape[1]
        C = partial.shape[2]
        for e in range(cuda.grid(1), B * C, cuda.gridsize(1)):
            bb = e // C
            c = e % C
            s = T(0)
            for g in range(G):
                s += partial[bb, g, c]
            out[bb, c] = s / denom

    return _sum_partials_kernel


def _sum_rows_signatures(T):
    return [(arr(T, 2), arr(T, 1), T)]


@register("sum_rows", _sum_rows_signatures)
def _sum_rows_factory(T):
    def _sum_rows_kernel(v, out, denom):
        """``out[r] = sum_k v[r, k] / denom``; block r reduces row r (blockDim.x a power of 2)."""
        buf = cuda.shared.array(ROW_THREADS, T)
        r = cuda.blockIdx.x
        t = cuda.threadIdx.x
        L = v.shape[1]
        acc = T(0)
        for k in range(t, L, cuda.blockDim.x):
            acc += v[r, k]
        buf[t] = acc
        cuda.syncthreads()
        s = cuda.blockDim.x // 2
        while s > 0:
            if t < s:
                buf[t] += buf[t + s]
            cuda.syncthreads()
            s //= 2
        if t == 0:
            out[r] = buf[0] / denom

    return _sum_rows_kernel


def choose_chunks(B, M, C):
    """Row chunks G per column block: enough blocks for the GPU, at least ~64 rows each."""
    col_blocks = cdiv(C, COLS)
    want = cdiv(4 * cc.sm_count(), max(1, col_blocks * B))
    return int(max(1, min(cdiv(M, 8 * LANES), want, 1024)))


def colsum(x, y=None, mode=SUM, denom=1, chunks=None):
    """Column sums ``(B, M, C) -> (B, C)`` divided by ``denom`` (see the kernel for ``mode``).

    ``y`` is (B, M, C) for SUM_PRODUCT and (1, 1, C) for SUM_SQUARED_DEVIATION.
    """
    B, M, C = x.shape
    dtype = x.dtype
    G = chunks if chunks is not None else choose_chunks(B, M, C)
    bx = min(COLS, max(1, C))
    grid = (max(1, cdiv(C, bx)), G, B)
    partial = cuda.device_array((B, G, C), dtype=dtype)
    yy = x if y is None else y
    if B and C:
        cc.launch("colsum_partial", dtype, grid, (bx, LANES), x, yy, int(mode), partial)
    if G == 1 and denom == 1:
        return partial.reshape(B, C)
    return sum_partials(partial, denom)


def sum_partials(partial, denom=1):
    """``(B, G, C) -> (B, C)``: the sum over G, divided by ``denom``."""
    B, G, C = partial.shape
    out = cuda.device_array((B, C), dtype=partial.dtype)
    cc.launch_1d("sum_partials", partial.dtype, B * C, partial, out, partial.dtype.type(denom))
    return out


def sum_rows(v, denom=1):
    """``(R, L) -> (R,)``: each row's sum divided by ``denom`` (one block per row)."""
    R, L = v.shape
    threads = 32
    while threads < min(L, ROW_THREADS):
        threads *= 2
    out = cuda.device_array(R, dtype=v.dtype)
    cc.launch("sum_rows", v.dtype, max(1, R), threads, v, out, v.dtype.type(denom))
    return out
