"""Shared machinery of the ``cuda`` backend: the numba-cuda import guard, the kernel registry,
the launch helpers and the device functions every kernel may inline.

Every CUDA kernel of the backend is written once as a *factory* ``factory(T) -> pyfunc``
where ``T`` is the numba float type (``float32`` or ``float64``); the factory's closure makes
``T`` a compile-time constant, so shared/local arrays and literals (``T(1.0)``) have the work
dtype and a float32 kernel contains no float64 arithmetic. :func:`get_kernel` jits a factory
lazily, once per dtype (a "templated" kernel), and numba compiles it on its first launch.

Each factory is registered with the argument types it is launched with
(:data:`SIGNATURES`); the PTX test compiles exactly those, and the simulator test checks that
every launch it makes matches one of them (:func:`record_launches`).

Device functions are declared ``inline="always"``: Numba inlines them into the calling kernel
at its own IR level, so the kernel compiles to the same PTX as if the helper were written out
in it and, unlike a separately compiled device function, compiling it does not ask the CUDA
driver for the current device (which fails on a machine without a GPU).
"""

import contextlib
import functools
import math

from ..errors import BackendError
from . import ACTIVATION_CODES


class CudaImportError(BackendError, ImportError):
    """numba-cuda is not installed (an ImportError, so ``except ImportError`` works too)."""


try:
    import numba_cuda  # noqa: F401  (NVIDIA's package; numba.cuda redirects to it)
except ImportError as e:
    raise CudaImportError(
        "the 'cuda' backend needs NVIDIA's numba-cuda package, which is not installed; "
        "install it with `pip install tinycnn[cuda]` (numba-cuda with the CUDA 13 NVRTC/NVVM wheels)"
    ) from e

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import cuda, types  # noqa: E402
from numba.core import config  # noqa: E402

SIM = bool(config.ENABLE_CUDASIM)
"""True when numba runs CUDA kernels in its Python simulator (``NUMBA_ENABLE_CUDASIM=1``)."""

if not SIM and getattr(cuda, "implementation", None) != "NVIDIA":  # pragma: no cover
    raise CudaImportError(
        "numba.cuda is numba's deprecated built-in CUDA target, not NVIDIA's numba-cuda; "
        "install it with `pip install tinycnn[cuda]`"
    )

LINEAR, RELU, SIGMOID, TANH, LEAKY_RELU = (
    ACTIVATION_CODES[k] for k in ("linear", "relu", "sigmoid", "tanh", "leaky_relu"))

# Argument-type shorthands for the signature table.
I64 = types.int64


def arr(T, ndim):
    """The numba type of a C-contiguous device array of ``T`` with ``ndim`` dimensions."""
    return types.Array(T, ndim, "C")


_FACTORIES = {}
SIGNATURES = {}
"""kernel name -> function ``T -> [tuple of argument types]``: what the backend launches."""


def register(name, signatures):
    """Register a kernel factory under ``name`` with its launch ``signatures(T)``."""

    def deco(factory):
        _FACTORIES[name] = factory
        SIGNATURES[name] = signatures
        return factory

    return deco


def factory(name):
    """The plain-Python kernel factory registered under ``name`` (used by the PTX test)."""
    return _FACTORIES[name]


@functools.cache
def get_kernel(name, dtype):
    """The jitted kernel ``name`` for ``dtype`` (compiled by numba on its first launch)."""
    T = numba.from_dtype(np.dtype(dtype))
    return cuda.jit(_FACTORIES[name](T))


_recorder = []


@contextlib.contextmanager
def record_launches():
    """Collect ``(name, dtype, argument types)`` of every launch in the block (for tests)."""
    log = []
    _recorder.append(log)
    try:
        yield log
    finally:
        _recorder.remove(log)


def launch(name, dtype, grid, block, *args):
    """Launch kernel ``name`` compiled for ``dtype`` on ``grid`` x ``block``."""
    dtype = np.dtype(dtype)
    # Python ints type as int64: one specialisation per kernel, whatever int type the shapes had
    args = tuple(int(a) if isinstance(a, (int, np.integer)) and not isinstance(a, bool) else a for a in args)
    if _recorder:
        sig = tuple(numba.typeof(a) for a in args)
        for log in _recorder:
            log.append((name, dtype, sig))
    get_kernel(name, dtype)[grid, block](*args)


def launch_1d(name, dtype, total, *args):
    """Launch a grid-stride kernel over ``total`` items (no launch when there are none)."""
    if total:
        blocks, threads = grid_1d(total)
        launch(name, dtype, blocks, threads, *args)


def cdiv(a, b):
    """Ceiling division of non-negative ints."""
    return -(-a // b)


def grid_1d(total, threads=256):
    """``(blocks, threads)`` for a grid-stride loop over ``total`` items.

    Small problems get fewer threads (a multiple of 32) so that no warp is wasted, which also
    keeps the simulator cheap; the block count is capped because the loop strides anyway.
    """
    threads = max(32, min(threads, cdiv(max(total, 1), 32) * 32))
    return max(1, min(cdiv(total, threads), 1 << 20)), threads


@functools.cache
def sm_count():
    """Streaming multiprocessors of the current device (a guess of 16 in the simulator)."""
    try:
        return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
    except Exception:
        return 16


@functools.cache
def dummy(dtype):
    """A 1-element device array passed where a kernel's optional input is absent."""
    return cuda.device_array(1, dtype=np.dtype(dtype))


# --------------------------------------------------------------------------- device functions
@cuda.jit(device=True, inline="always")
def nhwc(e, H, W, C):
    """``(n, h, w, c)`` of the flat index ``e`` of a C-contiguous (N, H, W, C) array."""
    c = e % C
    t = e // C
    w = t % W
    t = t // W
    return t // H, t % H, w, c


@cuda.jit(device=True, inline="always")
def window_at(h, pad, p, s, O):
    """The window ``i < O`` whose offset ``p`` lands on input row ``h = i*s + p - pad``, or -1."""
    t = h + pad - p
    if t >= 0 and t % s == 0 and t // s < O:
        return t // s
    return -1


@functools.cache
def activation(T):
    """The device function ``act(v, code, alpha)`` for work type ``T`` (codes of
    :data:`tinycnn.kernels.ACTIVATION_CODES`; softmax is a row kernel of its own).
    NaN propagates through relu, as it does through the reference's ``np.maximum``."""

    @cuda.jit(device=True, inline="always")
    def act(v, code, alpha):
        # leaky relu last: the GEMM epilogue (relu, sigmoid, tanh) never pays for its test
        if code == RELU:
            if v < 0:
                v = T(0)
        elif code == SIGMOID:
            e = math.exp(-abs(v))  # exp of a non-positive number: no overflow
            if v >= 0:
                v = T(1) / (T(1) + e)
            else:
                v = e / (T(1) + e)
        elif code == TANH:
            v = math.tanh(v)
        elif code == LEAKY_RELU:
            if not v > 0:
                v = alpha * v
        return v

    return act


@functools.cache
def activation_grad(T):
    """The device function ``dz(g, x, y, code, alpha)``: ``g * act'`` at input x, output y
    (relu ``[x > 0]``, leaky ``1 or alpha``, sigmoid ``y (1 - y)``, tanh ``1 - y**2``; for
    relu, x may be the output y, since ``y > 0`` iff ``x > 0``)."""

    @cuda.jit(device=True, inline="always")
    def dz(g, x, y, code, alpha):
        if code == RELU:
            if not x > 0:
                g = T(0)
        elif code == LEAKY_RELU:
            if not x > 0:
                g = g * alpha
        elif code == SIGMOID:
            g = g * y * (T(1) - y)
        elif code == TANH:
            g = g * (T(1) - y * y)
        return g

    return dz
