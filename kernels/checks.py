"""The kernel contract's argument checks, written once for every backend.

Each contract function of ``reference``, ``cpu`` and ``cuda`` starts with one call to the
check of its operation here, so the same bad call raises the same tinycnn error with the same
message on every backend; the kernels below that line trust what they are given. The checks
read shapes, dtypes and plain Python values only (never array contents, which may live on a
GPU), so they cost microseconds. What they return (the work dtype, normalised strides, the
output geometry) is what the backend computes with.

Errors: :class:`ShapeError` for ranks and shapes, :class:`DTypeError` for dtypes and for
values that are not arrays, :class:`ConfigError` for options (stride, padding, activation,
loss kind, rate, read-only state); the label range of a sparse loss is checked where the
labels live (:func:`class_labels`, or on the device by the ``cuda`` backend), raising
:class:`InvalidValueError` with the message of :func:`bad_labels_message`.
"""

from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, DTypeError, InvalidValueError, ShapeError
from . import ACTIVATIONS, ELEMENTWISE, LOSSES
from .shapes import conv_geometry

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
PADDINGS = ("valid", "same")


# --------------------------------------------------------------------------- basic checks
# These run several times per kernel call: attribute access first, NumPy only for non-arrays.
def shape_of(a):
    """The shape of an array of any backend (or of anything NumPy can read) as a tuple."""
    try:
        s = a.shape
    except AttributeError:
        return np.shape(a)
    return s if type(s) is tuple else tuple(s)


def _dtype_of(a):
    try:
        dt = a.dtype
    except AttributeError:
        return np.asarray(a).dtype
    return dt if isinstance(dt, np.dtype) else np.dtype(dt)


def work_dtype(a, name="x"):
    """The dtype a kernel computes ``a`` in: float32 or float64 as given; bool, integer and
    float16 arrays in float32. Anything else (complex, strings, objects) is a DTypeError."""
    dt = _dtype_of(a)
    if dt in FLOATS:
        return dt
    if dt.kind in "biu" or dt == np.float16:
        return FLOATS[0]
    raise DTypeError(f"{name} must be a float32 or float64 array, got dtype {dt}")


def real(a, name):
    """``a`` (an operand converted to the work dtype) must hold real numbers."""
    dt = _dtype_of(a)
    if dt.kind not in "biuf":
        raise DTypeError(f"{name} must be a real array, got dtype {dt}")


def rank(a, ndim, name):
    s = shape_of(a)
    if len(s) != ndim:
        raise ShapeError(f"{name} must have {ndim} dimensions, got shape {s}")


def same_shape(a, shape, name):
    if shape_of(a) != tuple(shape):
        raise ShapeError(f"{name} must have shape {tuple(shape)}, got {shape_of(a)}")


def grad(dy, shape, name="dy"):
    """A backward pass's incoming gradient: real, and of the forward output's shape."""
    real(dy, name)
    same_shape(dy, shape, name)


def vector(a, n, name):
    """``a`` is None or a real (n,) vector (a bias, gamma, beta)."""
    if a is not None:
        real(a, name)
        same_shape(a, (n,), name)


# --------------------------------------------------------------------------- options
def pair(v, name):
    """``v`` as a pair of positive ints: an int, or a sequence of two ints."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        out = (int(v), int(v))
    else:
        try:
            items = tuple(v)
            out = tuple(int(t) for t in items)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an int or a pair of ints, got {v!r}") from None
        if len(out) != 2 or any(isinstance(t, bool) or int(t) != t for t in items):
            raise ConfigError(f"{name} must be an int or a pair of ints, got {v!r}")
    if out[0] < 1 or out[1] < 1:
        raise ConfigError(f"{name} must be positive, got {v!r}")
    return out


def padding(v):
    """'valid' or 'same' (any case), in lower case."""
    if not isinstance(v, str) or v.lower() not in PADDINGS:
        raise ConfigError(f"padding must be 'valid' or 'same', got {v!r}")
    return v.lower()


def activation(kind, allowed=ACTIVATIONS):
    """An activation name from ``allowed`` (None means 'linear')."""
    if kind is None:
        return "linear"
    if not isinstance(kind, str) or kind not in allowed:
        raise ConfigError(f"activation must be one of {allowed}, got {kind!r}")
    return kind


# --------------------------------------------------------------------------- operations
class Window(NamedTuple):
    """Where the windows of a convolution or pooling lie: ``stride`` (sh, sw), ``pads``
    (pt, pb, pl, pr) and the output size OH x OW."""

    stride: tuple
    pads: tuple
    OH: int
    OW: int


def _window(x, KH, KW, stride, pad, what):
    _, H, W, _ = shape_of(x)
    OH, OW, pads = conv_geometry(H, W, KH, KW, stride, pad)
    if OH < 1 or OW < 1:
        raise ShapeError(f"input {H}x{W} is smaller than the {what} {KH}x{KW} ({pad!r})")
    return Window(stride, pads, OH, OW)


def conv2d(x, w, b, stride, pad, act):
    """``conv2d_forward``'s arguments -> ``(dtype, Window, activation)``."""
    dt = work_dtype(x)
    rank(x, 4, "x")
    real(w, "w")
    rank(w, 4, "w")
    C = shape_of(x)[3]
    KH, KW, Cw, F = shape_of(w)
    if Cw != C:
        raise ShapeError(f"w has {Cw} input channels but x has {C} (x {shape_of(x)}, w {shape_of(w)})")
    stride = pair(stride, "stride")
    pad = padding(pad)
    window = _window(x, KH, KW, stride, pad, "kernel")
    vector(b, F, "b")
    return dt, window, activation(act, ELEMENTWISE)


def maxpool2d(x, pool, stride, pad):
    """``maxpool2d_forward``'s arguments -> ``(dtype, (PH, PW), Window)``."""
    dt = work_dtype(x)
    rank(x, 4, "x")
    pool = pair(pool, "pool")
    window = _window(x, *pool, pair(stride, "stride"), padding(pad), "pool")
    return dt, pool, window


def global_avgpool(x):
    """``global_avgpool_forward``'s argument -> dtype."""
    dt = work_dtype(x)
    rank(x, 4, "x")
    if shape_of(x)[1] * shape_of(x)[2] == 0:
        raise ShapeError(f"global average pooling needs a non-empty image, got shape {shape_of(x)}")
    return dt


def dense(x, w, b, act):
    """``dense_forward``'s arguments -> ``(dtype, activation)``."""
    dt = work_dtype(x)
    rank(x, 2, "x")
    real(w, "w")
    rank(w, 2, "w")
    D, U = shape_of(w)
    if shape_of(x)[1] != D:
        raise ShapeError(f"w has shape {shape_of(w)} but x has {shape_of(x)[1]} features (x {shape_of(x)})")
    vector(b, U, "b")
    return dt, activation(act, ELEMENTWISE)


def activation_args(x, kind):
    """``activation_forward``'s arguments -> ``(dtype, kind)``."""
    dt = work_dtype(x)
    kind = activation(kind)
    s = shape_of(x)
    if kind == "softmax" and (len(s) == 0 or s[-1] == 0):
        raise ShapeError(f"softmax needs a non-empty last axis, got shape {s}")
    return dt, kind


def batchnorm(x, gamma, beta, running_mean, running_var, allreduce=None):
    """``batchnorm_forward``'s arrays -> dtype. The running statistics are updated in place,
    so they must be arrays (of the backend, or NumPy arrays), not lists or numbers;
    ``allreduce`` is None or a callable."""
    dt = work_dtype(x)
    if allreduce is not None and not callable(allreduce):
        raise ConfigError(f"allreduce must be None or a callable f(arrays) -> arrays, got {allreduce!r}")
    s = shape_of(x)
    if len(s) == 0:
        raise ShapeError("batch normalisation needs x with a channel (last) axis, got a scalar")
    C = s[-1]
    for name, a in (("running_mean", running_mean), ("running_var", running_var)):
        if not (hasattr(a, "shape") and hasattr(a, "dtype")):
            raise DTypeError(f"{name} must be an array (it is updated in place), got {type(a).__name__}")
    for name, a in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        real(a, name)
        same_shape(a, (C,), name)
    return dt


def dropout(x, rate):
    """``dropout_forward``'s arguments -> ``(dtype, rate)``."""
    dt = work_dtype(x)
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(f"dropout rate must be a number in [0, 1), got {rate!r}") from None
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"dropout rate must be in [0, 1), got {rate}")
    return dt, rate


# --------------------------------------------------------------------------- sums
def add(a, b):
    """``add``'s operands -> the work dtype (``a``'s); ``b`` must be real and of ``a``'s shape."""
    dt = work_dtype(a, "a")
    real(b, "b")
    same_shape(b, shape_of(a), "b")
    return dt


# --------------------------------------------------------------------------- losses
def loss(kind, y_pred, y_true, sample_weight):
    """``loss_forward``'s arguments -> dtype. Shapes only: the values of sparse labels are
    checked where they live (:func:`class_labels`)."""
    if kind not in LOSSES:
        raise ConfigError(f"unknown loss {kind!r}; choose one of {LOSSES}")
    dt = work_dtype(y_pred, "y_pred")
    s = shape_of(y_pred)
    if len(s) == 0 or s[0] == 0:
        raise ShapeError(f"y_pred must have a non-empty batch axis, got shape {s}")
    N, size = s[0], int(np.prod(s))
    if size == 0:
        raise ShapeError(f"y_pred must not be empty, got shape {s}")
    if kind in ("categorical_crossentropy", "sparse_categorical_crossentropy") and len(s) != 2:
        raise ShapeError(f"{kind} needs y_pred of shape (N, classes), got {s}")
    real(y_true, "y_true")
    if kind == "sparse_categorical_crossentropy":
        if int(np.prod(shape_of(y_true))) != N:
            raise ShapeError(f"y_true must hold {N} class indices, got shape {shape_of(y_true)}")
    elif int(np.prod(shape_of(y_true))) != size:
        raise ShapeError(f"y_true has shape {shape_of(y_true)}, y_pred {s}")
    if sample_weight is not None:
        real(sample_weight, "sample_weight")
        if shape_of(sample_weight) != (N,):
            raise ShapeError(f"sample_weight must have shape ({N},), got {shape_of(sample_weight)}")
    return dt


def bad_labels_message(K, count):
    return f"sparse labels must be integer class indices in [0, {K}); {count} are not"


def class_labels(y_true, N, K):
    """Sparse labels (a host array) as (N,) int64, each an integer in [0, K)."""
    lab = np.asarray(y_true).reshape(N)
    bad = int(np.count_nonzero((lab < 0) | (lab >= K) | (lab != np.floor(lab))))
    if bad:
        raise InvalidValueError(bad_labels_message(K, bad))
    return lab.astype(np.int64)


# --------------------------------------------------------------------------- optimizers
def update(p, g, **state):
    """An in-place optimizer update: a float32/float64 parameter array, a gradient of its
    shape, and state arrays (None allowed) of its shape that can be written."""
    # written out (no helper calls): it runs for every parameter at every step
    shape, dt = getattr(p, "shape", None), getattr(p, "dtype", None)
    if shape is None or dt not in FLOATS:
        raise DTypeError(f"parameters must be float32 or float64 arrays, got {type(p).__name__ if dt is None else dt}")
    real(g, "the gradient")
    if shape_of(g) != shape:
        raise ShapeError(f"the gradient has shape {shape_of(g)}, the parameter {shape}")
    for name, a in (("p", p), *state.items()):
        if a is None:
            continue
        if getattr(a, "dtype", None) is None or getattr(a, "shape", None) is None:
            raise DTypeError(f"{name} must be an array updated in place, got {type(a).__name__}")
        if a.shape != shape:
            raise ShapeError(f"{name} has shape {shape_of(a)}, the parameter {shape}")
        flags = getattr(a, "flags", None)
        if flags is not None and not getattr(flags, "writeable", True):
            raise ConfigError(f"{name} is read-only; optimizer updates happen in place")
