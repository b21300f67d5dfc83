"""Tiled shared-memory GEMM for the ``cuda`` backend: ``C = act(op(A) @ op(B) + bias)``.

The shape of numba's ``fast_matmul`` example (tiles in ``cuda.shared.array``, ``syncthreads``,
bounds guards, a host launcher that derives the grid from the shapes), with three standard
refinements:

* register blocking: a 16 x 16 thread block computes a 64 x 64 tile of C, each thread a 4 x 4
  sub-tile held in registers (rows ``ty + 16*i``, columns ``tx + 16*j``, so that stores stay
  coalesced and shared-memory reads are broadcasts or consecutive);
* ``op(A)`` / ``op(B)`` is the matrix or its transpose, chosen by a flag that only changes the
  index order of the tile loads: ``A @ B`` (forward), ``A.T @ B`` (weight gradients) and
  ``A @ B.T`` (input gradients) never copy a transposed matrix;
* split-K: when M x N has too few tiles to fill the GPU (a weight gradient ``cols.T @ dz`` is
  small but has a huge K = N*OH*OW), the K range is cut into S slices, each block writes a
  partial product and a deterministic second pass sums them (no atomics: results do not
  depend on scheduling).

Bias and activation are applied in the epilogue (one pass over C instead of three).
"""

import functools

from numba import cuda

from . import _cuda_common as cc
from ._cuda_common import I64, LINEAR, arr, cdiv, register

BM = BN = 64  # tile of C per block
BK = 16  # depth of one shared-memory step
TPB = 16  # threads per block side (16 x 16 = 256)
TM = BM // TPB  # rows of C per thread
TN = BN // TPB  # columns of C per thread
LOADS_A = BM * BK // (TPB * TPB)  # tile elements each thread loads per step
LOADS_B = BN * BK // (TPB * TPB)
assert BM == BN and LOADS_A == LOADS_B  # one tile loader serves both operands
BM_PAD = BM + 1  # a padding column against shared-memory bank conflicts on transposing stores
BN_PAD = BN + 1


def _gemm_signatures(T):
    # a, b, c (S, M, N), bias, trans_a, trans_b, act, has_bias, k_chunk
    return [(arr(T, 2), arr(T, 2), arr(T, 3), arr(T, 1), I64, I64, I64, I64, I64)]


@functools.cache
def _tile_loader(T):
    """The device function copying one BK-deep tile of op(a) or op(b) into shared memory
    ``S[kk, xx]`` (zero outside the matrix or beyond the K slice), transposing by index order
    only. ``k_major``: the source is stored (K, X) (a with trans_a, b without trans_b), so
    neighbouring threads read neighbouring x; else (X, K), neighbouring k. BM == BN, so one
    loader serves both operands."""

    @cuda.jit(device=True, inline="always")
    def load(src, S, tid, x0, k0, k_end, extent, k_major):
        for l in range(LOADS_A):
            e = tid + l * TPB * TPB
            if k_major:
                xx = e % BM
                kk = e // BM
            else:
                kk = e % BK
                xx = e // BK
            gx = x0 + xx
            gk = k0 + kk
            v = T(0)
            if gx < extent and gk < k_end:
                if k_major:
                    v = src[gk, gx]
                else:
                    v = src[gx, gk]
            S[kk, xx] = v

    return load


@cuda.jit(device=True, inline="always")
def _multiply_tiles(As, Bs, acc, ra, rb, tx, ty):
    """``acc += As.T @ Bs`` for this thread's TM x TN sub-tile, through registers ra, rb."""
    for kk in range(BK):
        for i in range(TM):
            ra[i] = As[kk, ty + TPB * i]
        for j in range(TN):
            rb[j] = Bs[kk, tx + TPB * j]
        for i in range(TM):
            for j in range(TN):
                acc[i, j] += ra[i] * rb[j]


@functools.cache
def _epilogue(T):
    """Device function writing this thread's sub-tile: ``c = act(acc + bias)`` in bounds."""
    activate = cc.activation(T)

    @cuda.jit(device=True, inline="always")
    def store(c, z, acc, bias, has_bias, act, row0, col0, tx, ty):
        M = c.shape[1]
        N = c.shape[2]
        for i in range(TM):
            r = row0 + ty + TPB * i
            if r < M:
                for j in range(TN):
                    col = col0 + tx + TPB * j
                    if col < N:
                        v = acc[i, j]
                        if has_bias:
                            v += bias[col]
                        c[z, r, col] = activate(v, act, T(0))

    return store


@register("gemm", _gemm_signatures)
def _gemm_factory(T):
    load = _tile_loader(T)
    store = _epilogue(T)

    def _gemm_kernel(a, b, c, bias, trans_a, trans_b, act, has_bias, k_chunk):
        """``c[z] = act(op(a) @ op(b) + bias)`` restricted to K slice z = blockIdx.z.

        a is (M, K), or (K, M) when trans_a; b is (K, N), or (N, K) when trans_b; c is
        (S, M, N). One extra column of padding in the shared tiles avoids bank conflicts on
        the transposing stores.
        """
        As = cuda.shared.array((BK, BM_PAD), T)
        Bs = cuda.shared.array((BK, BN_PAD), T)
        acc = cuda.local.array((TM, TN), T)
        ra = cuda.local.array(TM, T)
        rb = cuda.local.array(TN, T)

        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * TPB + tx
        row0 = cuda.blockIdx.x * BM  # rows on grid x: no 65535 limit on M
        col0 = cuda.blockIdx.y * BN
        z = cuda.blockIdx.z
        K = a.shape[0] if trans_a else a.shape[1]
        k_begin = z * k_chunk
        k_end = min(K, k_begin + k_chunk)

        for i in range(TM):
            for j in range(TN):
                acc[i, j] = T(0)
        for k0 in range(k_begin, k_end, BK):
            load(a, As, tid, row0, k0, k_end, c.shape[1], trans_a)
            load(b, Bs, tid, col0, k0, k_end, c.shape[2], 1 - trans_b)
            cuda.syncthreads()
            _multiply_tiles(As, Bs, acc, ra, rb, tx, ty)
            cuda.syncthreads()
        store(c, z, acc, bias, has_bias, act, row0, col0, tx, ty)

    return _gemm_kernel


def choose_splits(M, N, K):
    """How many K slices make enough blocks to fill the GPU (1 when the tiles already do)."""
    blocks = cdiv(M, BM) * cdiv(N, BN)
    target = 2 * cc.sm_count()
    if blocks >= target or K < 8 * BK * 4:
        return 1
    return int(max(1, min(cdiv(target, blocks), K // (8 * BK), 64)))


def gemm(a, b, trans_a=False, trans_b=False, bias=None, act=LINEAR, splits=None):
    """``act(op(a) @ op(b) + bias)`` on the device, as a new (M, N) device array.

    Parameters
    ----------
    a : device array (M, K), or (K, M) with ``trans_a``
    b : device array (K, N), or (N, K) with ``trans_b``
    bias : device array (N,) or None
    act : activation code (``LINEAR``, ``RELU``, ``SIGMOID``, ``TANH``), fused in the epilogue
    splits : number of K slices; None chooses (split-K is only used without bias/activation)
    """
    from ._cuda_reduce import sum_partials

    M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
    Kb, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if K != Kb:
        raise ValueError(f"gemm: inner dimensions differ ({K} and {Kb})")
    dtype = a.dtype
    has_bias = bias is not None
    fused = has_bias or act != LINEAR
    S = 1 if fused else (splits if splits is not None else choose_splits(M, N, K))
    S = max(1, min(int(S), max(1, cdiv(K, BK))))
    k_chunk = cdiv(cdiv(K, S), BK) * BK  # slices start on a tile boundary
    S = max(1, cdiv(K, k_chunk)) if K else 1
    grid = (max(1, cdiv(M, BM)), max(1, cdiv(N, BN)), S)
    out = cuda.device_array((S, M, N), dtype=dtype)
    bias_arg = bias if has_bias else cc.dummy(dtype)
    if M and N:
        cc.launch(
            "gemm", dtype, grid, (TPB, TPB), a, b, out, bias_arg,
            int(trans_a), int(trans_b), int(act), int(has_bias), int(k_chunk),
        )  # fmt: skip
    if S == 1:
        return out.reshape(M, N)
    return sum_partials(out.reshape(1, S, M * N)).reshape(M, N)
