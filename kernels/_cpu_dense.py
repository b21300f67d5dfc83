"""Dense layers on the register-blocked tiles of :mod:`._cpu_direct` (float32, U a multiple of 32).

Why: a training batch is a GEMM with M = 32 rows, on which OpenBLAS runs far below its square
rate (measured ~30-70 GFLOP/s on one core against 100-120) while the layer's weights, tens of
MB at 128x128 inputs, stream through memory three times; and each call hands the cores over to
OpenBLAS's threads. Here every product is a loop of the same 12 x 64 tile, in Numba's threads:

* forward ``y = act(x @ w + b)``: streams = 12 rows of x, vectors = 64 columns of w, reduction
  over D in chunks of :data:`D_CHUNK` rows of w (the chunk stays in cache for every row tile,
  so w is read from memory once); work items = column groups of w.
* weight gradient ``dw = x.T @ dz``: streams = 12 consecutive rows d of dw (x[:, d]), vectors
  = columns of dz, reduction over the batch; work items = blocks of rows of dw.
* input gradient ``dx = dz @ w.T``: streams = 12 rows d of w, vectors = the batch (dz
  transposed, padded to a multiple of 32), reduction over U; written as dx.T, then transposed
  back by a blocked pass (2% of the work at most).

Every output is one sum in a fixed order (forward: chunk by chunk, each chunk's partial sum
added to the output), so results are reproducible; the float32 error bound is that of a GEMM.
"""

import numpy as np
from numba import njit, prange

from . import _cpu_direct as direct
from ._cpu_direct import PIX, _tiles, bias_act_rows

#: rows of w per reduction chunk: 256 rows x 64 columns x 4 B = 64 KiB, in L2 for every row tile
D_CHUNK = 256
#: rows of dw (or of dx.T) per work item
D_BLOCK = 16 * PIX


def eligible(dtype, U):
    """The rule: float32 layers with whole 32-lane tiles of outputs, where the direct kernels run."""
    return bool(direct.ENABLED) and dtype == np.float32 and U % 32 == 0


@njit(cache=True)
def _forward_group(x, w, b, act, alpha, y, g0):
    N, D = x.shape
    U = w.shape[1]
    G = min(64, U - g0)
    xf, wf, yf = x.reshape(-1), w.reshape(-1), y.reshape(-1)
    zero, one = np.intp(0), np.intp(1)  # typed variables, not literals: see _cpu_direct._tiles
    offs = np.empty(PIX, np.intp)
    for d0 in range(0, D, D_CHUNK):
        for n0 in range(0, N, PIX):
            nr = min(PIX, N - n0)
            for r in range(PIX):
                offs[r] = (n0 + (r if r < nr else 0)) * D + d0
            _tiles(xf, offs, nr, wf, d0 * U + g0, G, one, zero, zero, one, zero, zero, min(D_CHUNK, D - d0), one, U,
                   yf, n0 * U + g0, U, np.bool_(d0 > 0))
    for n in range(N):
        bias_act_rows(yf, n * U + g0, 1, G, b[g0:], act, alpha)


@njit(parallel=True, cache=True)
def _forward_kernel(x, w, b, act, alpha, y):
    for g in prange((w.shape[1] + 63) // 64):
        _forward_group(x, w, b, act, alpha, y, np.intp(g * 64))


@njit(cache=True)
def _rows_block(a, row_step, a0, b, G, n0, out, d0, D):
    """out[d, :G] = sum_t a[d * row_step + t * a0] * b[t * G:(t + 1) * G], t < n0, for the
    rows d0..d0+D_BLOCK of out (streams = 12 consecutive rows d)."""
    zero, one = np.intp(0), np.intp(1)  # typed variables, not literals: see _cpu_direct._tiles
    offs = np.empty(PIX, np.intp)
    bf, of = b.reshape(-1), out.reshape(-1)
    for d in range(d0, min(d0 + D_BLOCK, D), PIX):
        nr = min(PIX, D - d)
        for r in range(PIX):
            offs[r] = (d + (r if r < nr else 0)) * row_step
        _tiles(a, offs, nr, bf, zero, G, one, zero, zero, one, zero, zero, n0, a0, G, of, d * G, G, np.bool_(False))


@njit(parallel=True, cache=True)
def _backward_kernel(x, dz, w, dzT, dw, dxT, need_dx):
    """dw (D, U) = x.T @ dz (stream d reads x[:, d]: offset d, step D) and, when ``need_dx``,
    dxT (D, Np) = w @ dzT (stream d reads row d of w); one parallel region, both products'
    blocks of D_BLOCK rows as its work items."""
    N, D = x.shape
    U = w.shape[1]
    nb = (D + D_BLOCK - 1) // D_BLOCK
    items = 2 * nb if need_dx else nb
    for item in prange(items):
        if item < nb:  # dw row d: x[:, d] (offset d, step D) times the rows of dz
            _rows_block(x.reshape(-1), 1, D, dz, U, N, dw, np.intp(item) * D_BLOCK, D)
        else:  # dx.T row d: w[d] (offset d*U, step 1) times the rows of dz.T
            _rows_block(w.reshape(-1), U, 1, dzT, dzT.shape[1], U, dxT, np.intp(item - nb) * D_BLOCK, D)


@njit(cache=True)
def _transpose(aT, N, out):
    """out (N, D) = aT[:, :N].T, in blocks of 64 rows of aT (cache-friendly both ways)."""
    D = aT.shape[0]
    for d0 in range(0, D, 64):
        for n in range(N):
            for d in range(d0, min(d0 + 64, D)):
                out[n, d] = aT[d, n]


def forward(x, w, b, act, y):
    """y = act(x @ w + b) into y (N, U)."""
    _forward_kernel(x, w, b, act, np.float32(0), y)


def backward(x, dz, w, dw, dx):
    """dw = x.T @ dz and, when dx is not None, dx (N, D) = dz @ w.T, through dx.T (D, Np) with
    the batch padded to whole vectors (the tile's vectors run along the batch)."""
    N, U = dz.shape
    Np = -(-N // 32) * 32
    dzT = np.zeros((U, Np), np.float32)
    dzT[:, :N] = dz.T
    dxT = np.empty((w.shape[0] if dx is not None else 0, Np), np.float32)
    _backward_kernel(x, dz, w, dzT, dw, dxT, dx is not None)
    if dx is not None:
        _transpose(dxT, N, dx)
