"""Shared machinery of the ``cuda`` backend: the numba-cuda import guard, the kernel registry
and the launch helpers.

Every CUDA kernel of the backend is written once as a *factory* ``factory(T) -> pyfunc``
where ``T`` is the numba float type (``float32`` or ``float64``); the factory's closure makes
``T`` a compile-time constant, so shared/local arrays and literals (``T(1.0)``) have the work
dtype and a float32 kernel contains no float64 arithmetic. :func:`get_kernel` jits a factory
lazily, once per dtype (a "templated" kernel), and numba compiles it on its first launch.

Each factory is registered with the argument types it is launched with
(:data:`SIGNATURES`); the PTX test compiles exactly those, and the simulator test checks that
every launch it makes matches one of them (:func:`record_launches`).
"""

import contextlib
import functools

from ..errors import BackendError


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

# Activation codes shared by the GEMM epilogue and the elementwise kernels.
LINEAR, RELU, SIGMOID, TANH, LEAKY_RELU = 0, 1, 2, 3, 4
ACT_CODES = {"linear": LINEAR, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH, "leaky_relu": LEAKY_RELU}

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

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
