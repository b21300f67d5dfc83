"""Launcher-side argument checks for the ``cpu`` backend.

Layers validate user input; these checks only make sure that no Numba kernel ever sees an
array it was not written for (wrong rank, mismatched shapes, unsupported dtype), so that a
mistake surfaces as a clear tinycnn error, never as a typing traceback or a crash.
"""

import numpy as np

from ..errors import ConfigError, DTypeError, ShapeError

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(a, name, ndim=None, dtype=None):
    """``a`` as a C-contiguous float32/float64 array (of ``dtype`` when given) of rank ``ndim``."""
    if not isinstance(a, np.ndarray):
        a = np.asarray(a)
    if dtype is None:
        if a.dtype not in FLOATS:
            if a.dtype.kind in "biu" or a.dtype == np.float16:
                a = a.astype(np.float32)
            else:
                raise DTypeError(f"{name} must be a float32 or float64 array, got dtype {a.dtype}")
        dtype = a.dtype
    elif a.dtype != dtype:
        if a.dtype.kind not in "biuf":
            raise DTypeError(f"{name} must be a real array, got dtype {a.dtype}")
        a = a.astype(dtype)
    if ndim is not None and a.ndim != ndim:
        raise ShapeError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    if not a.flags.writeable:
        # Numba compiles a separate specialisation of every kernel for read-only arrays (e.g.
        # a memory-mapped batch): one copy is far cheaper than seconds of compilation
        return np.array(a, order="C")
    return np.ascontiguousarray(a)


def same_shape(a, shape, name):
    if tuple(a.shape) != tuple(shape):
        raise ShapeError(f"{name} must have shape {tuple(shape)}, got {tuple(a.shape)}")


def bias(b, F, dtype, name="b"):
    """The bias as a contiguous (F,) array, or zeros when ``b`` is None."""
    if b is None:
        return np.zeros(F, dtype)
    b = float_array(b, name, 1, dtype)
    same_shape(b, (F,), name)
    return b


def pair_of_ints(v, name):
    try:
        a, b_ = (int(t) for t in v)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a pair of positive ints, got {v!r}") from None
    if a < 1 or b_ < 1:
        raise ConfigError(f"{name} must be a pair of positive ints, got {v!r}")
    return a, b_


def activation_code(kind, allowed, codes):
    if kind is None:
        kind = "linear"
    if kind not in allowed:
        raise ConfigError(f"activation must be one of {allowed}, got {kind!r}")
    return codes[kind]
