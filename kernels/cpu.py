"""The ``cpu`` backend (the default): Numba kernels for the memory-bound work, BLAS for products.

Every name of :data:`tinycnn.kernels.CONTRACT` is here, with the reference's signature and
formulas (:mod:`tinycnn.kernels.reference`); float32 is the fast path, float64 works too.

Where the work happens
----------------------
- Convolution (:mod:`._cpu_conv`): a register-blocked direct convolution in explicit AVX-512
  vectors (:mod:`._cpu_direct`) for float32 stride-1 layers with whole vectors of channels;
  otherwise im2col in cache-sized chunks + BLAS GEMM + fused bias and activation (backward
  recomputes the columns per chunk), or a direct loop for first layers with ``KH*KW*C <= 32``.
- Beyond the contract, Conv2D -> activation -> MaxPooling2D as one op
  (:mod:`._cpu_convpool`, ``conv2d_maxpool_*``): the convolution's output is never written.
- Dense: the same register-blocked tiles (:mod:`._cpu_dense`) for float32 layers with a multiple
  of 32 units, else BLAS GEMMs (``np.matmul(..., out=...)``) + a fused bias/activation pass;
  backward fuses ``act'`` with the bias gradient.
- Pooling (:mod:`._cpu_pooling`), activations, batch norm, dropout (:mod:`._cpu_elementwise`),
  losses (:mod:`._cpu_losses`, focal loss delegated to the reference), optimizers
  (:mod:`._cpu_optim`, one pass per parameter).

Memory (:mod:`._cpu_memory`)
----------------------------
Returned arrays come from a caching pool that reuses a buffer only once nothing outside the
pool refers to it, so arrays the caller keeps are never overwritten, and no page faults are
paid per step. Scratch workspaces are per thread; im2col chunks the batch so that one workspace
stays below ``_cpu_memory.WORKSPACE_LIMIT`` (256 MiB) and, for speed, near
``_cpu_memory.CHUNK_TARGET``. :func:`release_memory` gives it all back.

Inputs given to a forward call must not be modified in place before the matching backward
(the backward reads them again, as the reference does).

Threads
-------
Numba's threads and OpenBLAS's threads take turns on the same cores, and whichever pool has
just finished would otherwise keep spinning on cores the other needs (measured: a third of the
step, up to 20x with a spinning OpenMP runtime). :mod:`._cpu_threads` makes both wait
passively, once, at import, leaving alone any choice the user made in the environment. Both
pools default to one thread per core.
"""


import numpy as np

from . import _cpu_dense, _cpu_threads, checks
from ._cpu_act import CODES
from ._cpu_checks import bias, float_array
from ._cpu_conv import act_and_bias_grad, bias_act, conv2d_backward, conv2d_forward
from ._cpu_convpool import conv2d_maxpool_backward, conv2d_maxpool_forward
from ._cpu_convpool import supported as conv2d_maxpool_supported
from ._cpu_elementwise import (
    activation_backward,
    activation_forward,
    batchnorm_backward,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
)
from ._cpu_losses import loss_backward, loss_forward
from ._cpu_memory import pooled_bytes, release_memory, take, workspace
from ._cpu_optim import adam_update, sgd_update
from ._cpu_pooling import (
    global_avgpool_backward,
    global_avgpool_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)

__all__ = [
    "asarray", "to_numpy", "conv2d_forward", "conv2d_backward", "maxpool2d_forward",
    "maxpool2d_backward", "global_avgpool_forward", "global_avgpool_backward", "dense_forward",
    "dense_backward", "activation_forward", "activation_backward", "batchnorm_forward",
    "batchnorm_backward", "dropout_forward", "dropout_backward", "add", "loss_forward", "loss_backward",
    "sgd_update", "adam_update", "release_memory", "pooled_bytes",
    # beyond the contract: Conv2D + MaxPooling2D fused (tinycnn.layers.fused uses them when present)
    "conv2d_maxpool_forward", "conv2d_maxpool_backward", "conv2d_maxpool_supported",
]

#: what :func:`._cpu_threads.configure` did at import: (Numba's choice, OpenBLAS libraries changed)
THREADS = _cpu_threads.configure()


def asarray(x, dtype=None):
    """Return ``x`` as a C-contiguous NumPy array (host memory is this backend's memory)."""
    return np.ascontiguousarray(x, dtype=dtype)


def to_numpy(a):
    """Return ``a`` as a NumPy array."""
    return np.asarray(a)


def dense_forward(x, w, b, activation="linear"):
    """``y = act(x @ w + b)``: one BLAS GEMM into a pooled buffer, then one fused pass."""
    dt, activation = checks.dense(x, w, b, activation)
    x, w = float_array(x, "x", 2, dt), float_array(w, "w", 2, dt)
    N, U = x.shape[0], w.shape[1]
    bb = bias(b, U, dt)
    act = CODES[activation]
    y = take((N, U), dt)
    if _cpu_dense.eligible(dt, U):
        _cpu_dense.forward(x, w, bb, act, y)
    else:
        np.matmul(x, w, out=y)
        bias_act(y, bb, act)
    return y, (x, w, b is not None, y, act)


def dense_backward(dy, ctx, need_dx=True):
    """``dz = dy * act'(y)`` (bias gradient summed in the same pass); ``dw = x.T @ dz``,
    ``dx = dz @ w.T`` by BLAS."""
    x, w, has_bias, y, act = ctx
    dt = y.dtype
    checks.grad(dy, y.shape)
    dy = float_array(dy, "dy", 2, dt)
    dz = workspace("dense_dz", y.shape, dt)
    # a batch of Dense outputs is small (32 x 512): one thread beats a parallel launch
    part = act_and_bias_grad(dy, y, act, dz, serial_below=1 << 18)
    dw = take(w.shape, dt)
    dx = take(x.shape, dt) if need_dx else None
    if _cpu_dense.eligible(dt, w.shape[1]):
        _cpu_dense.backward(x, dz, w, dw, dx)
    else:
        np.matmul(x.T, dz, out=dw)
        if need_dx:
            np.matmul(dz, w.T, out=dx)
    db = part.sum(axis=0, dtype=np.float64).astype(dt) if has_bias else None
    return dx, dw, db


def add(a, b):
    """``y = a + b`` elementwise into a pooled buffer (NumPy's add is memory-bound already)."""
    dt = checks.add(a, b)
    a, b = float_array(a, "a", dtype=dt), float_array(b, "b", dtype=dt)
    y = take(a.shape, dt)
    np.add(a, b, out=y)
    return y
