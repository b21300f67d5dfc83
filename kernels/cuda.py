"""The ``cuda`` backend: the kernel contract of :mod:`tinycnn.kernels` on an NVIDIA GPU,
with numba-cuda.

Arrays are numba device arrays (C-contiguous ``DeviceNDArray``): :func:`asarray` uploads,
:func:`to_numpy` downloads, and everything in between - parameters, activations, gradients,
optimizer state and every ``ctx`` - stays on the device. Host arrays passed to any function are
uploaded first (in-place updates are then copied back), so mixing is allowed, only slower.

How each operation runs (kernels in the ``_cuda_*`` modules; each is a raw kernel plus a host
launcher that derives the launch configuration from the shapes):

- convolution: ``im2col`` then one tiled GEMM with bias and activation fused into its epilogue
  (1x1 convolutions with stride 1 and no padding skip im2col). Backward: ``dz = dy * act'``
  (from the saved output), ``db`` by a column reduction, ``dw = cols.T @ dz`` (split-K when
  M x N is small), ``dx = col2im(dz @ W.T)`` as a gather (no atomics). The backward pass
  recomputes ``cols`` from ``x`` instead of keeping the KH*KW-times-larger matrix alive.
- dense: the same GEMM (``x @ w``, ``dz @ w.T``, ``x.T @ dz``; transposes by index order).
- pooling: one thread per output (max pool keeps the int32 argmax; ties go to the first maximum
  in row-major window order); backward as a gather. Global average pool: column reduction.
- batch norm: two-pass batch statistics by deterministic column reductions; the running
  statistics are updated in place on the device.
- dropout: the mask is drawn **on the host** with ``numpy.random.default_rng(seed)`` exactly as
  the contract says (``keep = u >= rate``, u float32 of x's shape) and uploaded as uint8, so it
  matches the reference bit for bit. It costs one small upload per call; a device RNG would not
  reproduce NumPy's stream.
- losses: value and gradient in one kernel (stable from_logits forms), the loss reduced on the
  device; one float comes back to the host.
- SGD (momentum, Nesterov) and Adam: one in-place kernel per parameter (Keras formulas).

Dtypes: float32 is the GPU work dtype; float64 works everywhere too (each kernel is a template
compiled lazily per dtype: a float64 model compiles a second set on first use, and runs at the
GPU's float64 rate). Operands are converted to the dtype of the main input.
Reductions are deterministic (fixed order, no atomics).
"""

import math

import numpy as np

from ..errors import BackendError, ConfigError, DTypeError, InvalidValueError, ShapeError
from . import ELEMENTWISE
from . import _cuda_common as cc
from . import _cuda_conv as conv
from . import _cuda_elementwise as ew
from . import _cuda_gemm as gm
from . import _cuda_loss as lk
from . import _cuda_reduce as red
from ._cuda_common import ACT_CODES, FLOATS, LINEAR, SIM, cuda
from .shapes import conv_geometry, pair

__all__ = [
    "ensure_available", "asarray", "to_numpy",
    "conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward",
    "global_avgpool_forward", "global_avgpool_backward", "dense_forward", "dense_backward",
    "activation_forward", "activation_backward", "batchnorm_forward", "batchnorm_backward",
    "dropout_forward", "dropout_backward", "add", "loss_forward", "loss_backward",
    "sgd_update", "adam_update",
]  # fmt: skip

_checked = []


def ensure_available():
    """Raise :class:`BackendError` unless CUDA kernels can run here (GPU or simulator).

    Checks for a driver and a GPU, compute capability >= 7.5 (CUDA 13), and compiles and runs a
    tiny kernel once, so that a broken toolchain fails here with a clear message instead of in
    the middle of training. There is never a silent fallback to another backend.
    """
    if _checked:
        return
    if not SIM:
        try:
            ok = cuda.is_available()
        except Exception:  # pragma: no cover - depends on the machine
            ok = False
        if not ok:
            raise BackendError(
                "the 'cuda' backend needs an NVIDIA GPU with a working CUDA driver, and no CUDA "
                "GPU/driver was found (numba.cuda.is_available() is False). Choose another "
                "backend (set_backend('cpu')), or, to test the CUDA kernels without a GPU, set "
                "NUMBA_ENABLE_CUDASIM=1 before importing tinycnn: the numba CUDA simulator runs "
                "them (correct but very slow)."
            )
        major, minor = cuda.get_current_device().compute_capability
        if (major, minor) < (7, 5):  # pragma: no cover
            raise BackendError(
                f"the 'cuda' backend needs compute capability >= 7.5 (CUDA 13); this GPU has "
                f"{major}.{minor}"
            )
    try:
        probe = cuda.to_device(np.arange(4, dtype=np.float32))
        y = activation_forward(probe, "relu")[0].copy_to_host()
    except Exception as e:  # pragma: no cover - depends on the machine
        raise BackendError(
            f"the 'cuda' backend found a GPU but could not compile or run a kernel: {e!r}. "
            "Check that numba-cuda's CUDA 13 NVRTC/NVVM wheels are installed "
            "(`pip install tinycnn[cuda]`) and that the driver supports CUDA 13."
        ) from e
    if not np.array_equal(y, [0, 1, 2, 3]):  # pragma: no cover
        raise BackendError(f"the 'cuda' backend's self-test computed {y} instead of [0 1 2 3]")
    _checked.append(True)


# --------------------------------------------------------------------------- arrays
def _is_device(a):
    if SIM:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        return isinstance(a, FakeCUDAArray)
    return cuda.is_cuda_array(a)


def _device_ndarray():
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    return DeviceNDArray


def _size(a):
    return int(np.prod(a.shape, dtype=np.int64))


def _flat(a):
    return a.reshape(_size(a))


def asarray(x, dtype=None):
    """Return ``x`` as a C-contiguous device array (device arrays of the right dtype pass
    through; other device arrays, CuPy's included, are converted on the device)."""
    if _is_device(x):
        if not SIM and not isinstance(x, _device_ndarray()):
            x = cuda.as_cuda_array(x)  # e.g. a CuPy array: zero-copy view
        if not x.is_c_contiguous():
            x = cuda.to_device(np.ascontiguousarray(x.copy_to_host()))
        if dtype is None or np.dtype(dtype) == x.dtype:
            return x
        out = cuda.device_array(x.shape, dtype=np.dtype(dtype))
        ew.launch_1d("cast", out.dtype, _size(x), _flat(x), _flat(out))
        return out
    return cuda.to_device(np.ascontiguousarray(x, dtype=dtype))


def to_numpy(a):
    """Return ``a`` as a NumPy array (copied from the device)."""
    if _is_device(a):
        return asarray(a).copy_to_host()
    return np.asarray(a)


def _input(x, name="x"):
    """The main input as a device array; its dtype (float32 or float64) is the work dtype."""
    x = asarray(x)
    if x.dtype not in FLOATS:
        raise DTypeError(f"the 'cuda' backend computes in float32 or float64; {name} has dtype {x.dtype}")
    return x


def _act_code(activation, allowed):
    if activation not in allowed:
        raise ConfigError(f"activation must be one of {allowed}, got {activation!r}")
    return ACT_CODES.get(activation, -1)


def _dz(dy, y, act, x=None, alpha=0.0):
    """``dy * act'(...)`` for an elementwise activation (``dy`` itself when linear)."""
    if act == LINEAR:
        return dy
    dx = cuda.device_array(dy.shape, dtype=dy.dtype)
    xs = y if x is None else x
    ew.launch_1d(
        "act_backward", dy.dtype, _size(dy), _flat(dy), _flat(xs), _flat(y), _flat(dx), act,
        dy.dtype.type(alpha),
    )  # fmt: skip
    return dx


def _bias_grad(dz2):
    M, F = dz2.shape
    return red.colsum(dz2.reshape(1, M, F)).reshape(F)


# --------------------------------------------------------------------------- convolution

def conv2d_forward(x, w, b, stride, padding, activation="linear"):
    """``y = act(conv(x, w) + b)``: x (N,H,W,C), w (KH,KW,C,F), b (F,) or None -> (N,OH,OW,F)."""
    x = _input(x)
    dt = x.dtype
    w = asarray(w, dt)
    b = None if b is None else asarray(b, dt)
    stride = pair(stride, "strides")
    act = _act_code(activation, ELEMENTWISE)
    if x.ndim != 4 or w.ndim != 4 or x.shape[3] != w.shape[2]:
        raise ShapeError(f"conv2d: x {x.shape} (N,H,W,C) and w {w.shape} (KH,KW,C,F) do not match")
    N, H, W, C = x.shape
    KH, KW, _, F = w.shape
    OH, OW, pads = conv_geometry(H, W, KH, KW, stride, padding)
    cols = _cols(x, KH, KW, stride, pads, OH, OW)
    y = gm.gemm(cols, w.reshape(KH * KW * C, F), bias=b, act=act)
    ctx = (x, w, b is not None, y, stride, pads, act, OH, OW)
    return y.reshape(N, OH, OW, F), ctx


def _direct(KH, KW, stride, pads):
    return KH == 1 and KW == 1 and stride == (1, 1) and not any(pads)


def _cols(x, KH, KW, stride, pads, OH, OW):
    N, H, W, C = x.shape
    if _direct(KH, KW, stride, pads):
        return x.reshape(N * H * W, C)
    return conv.im2col(x, KH, KW, stride, pads, OH, OW)


def conv2d_backward(dy, ctx, need_dx=True):
    """``(dx, dw, db)`` of :func:`conv2d_forward` (dx None unless need_dx, db None without b)."""
    x, w, has_bias, y, stride, pads, act, OH, OW = ctx
    KH, KW, C, F = w.shape
    dy = asarray(dy, x.dtype).reshape(y.shape[0], F)
    dz = _dz(dy, y, act)
    db = _bias_grad(dz) if has_bias else None
    cols = _cols(x, KH, KW, stride, pads, OH, OW)
    dw = gm.gemm(cols, dz, trans_a=True).reshape(KH, KW, C, F)
    if not need_dx:
        return None, dw, db
    dcols = gm.gemm(dz, w.reshape(KH * KW * C, F), trans_b=True)
    if _direct(KH, KW, stride, pads):
        return dcols.reshape(x.shape), dw, db
    return conv.col2im(dcols, x.shape, KH, KW, stride, pads, OH, OW), dw, db


# --------------------------------------------------------------------------- pooling
def maxpool2d_forward(x, pool, stride, padding):
    """Max over each window: x (N,H,W,C) -> y (N,OH,OW,C); the argmax is kept in ctx."""
    x = _input(x)
    pool = pair(pool, "pool_size")
    stride = pool if stride is None else pair(stride, "strides")
    if x.ndim != 4:
        raise ShapeError(f"maxpool2d: x must be (N,H,W,C), got {x.shape}")
    N, H, W, C = x.shape
    OH, OW, pads = conv_geometry(H, W, pool[0], pool[1], stride, padding)
    y, arg = conv.maxpool_forward(x, pool, stride, pads, OH, OW)
    return y, (x.shape, arg, pool, stride, pads)


def maxpool2d_backward(dy, ctx):
    """The gradient goes to the remembered argmax of each window."""
    x_shape, arg, pool, stride, pads = ctx
    dy = _input(dy, "dy")
    return conv.maxpool_backward(dy, arg, x_shape, pool, stride, pads)


def global_avgpool_forward(x):
    """``y[n, c] = mean_{i,j} x[n, i, j, c]``."""
    x = _input(x)
    if x.ndim != 4:
        raise ShapeError(f"global_avgpool: x must be (N,H,W,C), got {x.shape}")
    N, H, W, C = x.shape
    return red.colsum(x.reshape(N, H * W, C), denom=H * W), x.shape


def global_avgpool_backward(dy, ctx):
    """``dx[n, i, j, c] = dy[n, c] / (H*W)``."""
    return conv.avgpool_backward(_input(dy, "dy"), ctx)


# --------------------------------------------------------------------------- dense
def dense_forward(x, w, b, activation="linear"):
    """``y = act(x @ w + b)``: x (N, D), w (D, U), b (U,) or None."""
    x = _input(x)
    w = asarray(w, x.dtype)
    b = None if b is None else asarray(b, x.dtype)
    act = _act_code(activation, ELEMENTWISE)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ShapeError(f"dense: x {x.shape} (N,D) and w {w.shape} (D,U) do not match")
    y = gm.gemm(x, w, bias=b, act=act)
    return y, (x, w, b is not None, y, act)


def dense_backward(dy, ctx, need_dx=True):
    """``dz = dy * act'``; ``dx = dz @ w.T``; ``dw = x.T @ dz``; ``db = sum_n dz``."""
    x, w, has_bias, y, act = ctx
    dz = _dz(asarray(dy, x.dtype).reshape(y.shape), y, act)
    dx = gm.gemm(dz, w, trans_b=True) if need_dx else None
    dw = gm.gemm(x, dz, trans_a=True)
    return dx, dw, (_bias_grad(dz) if has_bias else None)


# --------------------------------------------------------------------------- activations
def activation_forward(x, kind, alpha=0.0):
    """``y = act(x)`` elementwise; softmax over the last axis."""
    x = _input(x)
    if kind not in ACT_CODES and kind != "softmax":
        raise ConfigError(f"unknown activation {kind!r}")
    if kind == "linear":
        y = x
    elif kind == "softmax":
        y = cuda.device_array(x.shape, dtype=x.dtype)
        K = tuple(x.shape)[-1]
        rows = _size(x) // K if K else 0
        ew.launch_1d("softmax_forward", x.dtype, rows, x.reshape(rows, K), y.reshape(rows, K))
    else:
        y = cuda.device_array(x.shape, dtype=x.dtype)
        ew.launch_1d(
            "act_forward", x.dtype, _size(x), _flat(x), _flat(y), ACT_CODES[kind], x.dtype.type(alpha)
        )
    return y, (x, y, kind, alpha)


def activation_backward(dy, ctx):
    """``dx = dy * act'(x)`` (softmax: ``y * (dy - sum_k dy_k y_k)`` per row)."""
    x, y, kind, alpha = ctx
    dy = asarray(dy, x.dtype).reshape(x.shape)
    if kind == "softmax":
        dx = cuda.device_array(x.shape, dtype=x.dtype)
        K = tuple(x.shape)[-1]
        rows = _size(x) // K if K else 0
        ew.launch_1d(
            "softmax_backward", x.dtype, rows, dy.reshape(rows, K), y.reshape(rows, K), dx.reshape(rows, K)
        )
        return dx
    return _dz(dy, y, ACT_CODES[kind], x=x, alpha=alpha)


# --------------------------------------------------------------------------- batch norm
class _InPlace:
    """Device views of arrays updated in place; host arrays are uploaded, then copied back."""

    def __init__(self, dtype, *arrays):
        for a in arrays:
            if a is not None and _is_device(a) and a.dtype != dtype:
                raise DTypeError(
                    f"cannot update a {a.dtype} device array in place with {dtype} values: keep "
                    "parameters, gradients, optimizer state and running statistics in one dtype"
                )
        self.host = arrays
        self.dev = [None if a is None else asarray(a, dtype) for a in arrays]

    def done(self):
        for h, d in zip(self.host, self.dev, strict=True):
            if h is not None and not _is_device(h):
                h[...] = d.copy_to_host().reshape(np.shape(h))


def batchnorm_forward(x, gamma, beta, running_mean, running_var, momentum, epsilon, training):
    """Normalise over every axis but the last; in training, update the running stats in place."""
    x = _input(x)
    dt = x.dtype
    C = tuple(x.shape)[-1]
    M = _size(x) // C
    x2 = x.reshape(M, C)
    gamma, beta = asarray(gamma, dt), asarray(beta, dt)
    running = _InPlace(dt, running_mean, running_var)
    rm, rv = running.dev
    if training:
        mean = red.colsum(x2.reshape(1, M, C), denom=M).reshape(C)
        var = red.colsum(x2.reshape(1, M, C), mean.reshape(1, 1, C), red.SUM_SQUARED_DEVIATION, M)
        var = var.reshape(C)
    else:
        mean, var = rm, rv
    inv_std = cuda.device_array(C, dtype=dt)
    T = dt.type
    ew.launch_1d(
        "bn_prepare", dt, C, mean, var, rm, rv, T(momentum), T(1 - momentum), T(epsilon),
        int(bool(training)), inv_std,
    )  # fmt: skip
    running.done()
    xhat = cuda.device_array((M, C), dtype=dt)
    y = cuda.device_array((M, C), dtype=dt)
    ew.launch_1d("bn_normalize", dt, M * C, x2, mean, inv_std, gamma, beta, xhat, y)
    return y.reshape(x.shape), (xhat, gamma, inv_std, bool(training))


def batchnorm_backward(dy, ctx):
    """``(dx, dgamma, dbeta)`` of :func:`batchnorm_forward`."""
    xhat, gamma, inv_std, training = ctx
    M, C = xhat.shape
    dy = asarray(dy, xhat.dtype)
    shape = dy.shape
    dy3 = dy.reshape(1, M, C)
    dbeta = red.colsum(dy3).reshape(C)
    dgamma = red.colsum(dy3, xhat.reshape(1, M, C), red.SUM_PRODUCT).reshape(C)
    dx = cuda.device_array((M, C), dtype=xhat.dtype)
    ew.launch_1d(
        "bn_dx", xhat.dtype, M * C, dy.reshape(M, C), xhat, gamma, inv_std, dbeta, dgamma,
        xhat.dtype.type(M), int(training), dx,
    )  # fmt: skip
    return dx.reshape(shape), dgamma, dbeta


# --------------------------------------------------------------------------- dropout
def dropout_forward(x, rate, seed):
    """Inverted dropout ``y = x * keep / (1 - rate)``; the mask is drawn on the host with
    ``numpy.random.default_rng(seed)`` (``keep = u >= rate``, u float32 uniform of x's shape),
    exactly as the reference does, and uploaded as uint8."""
    x = _input(x)
    u = np.random.default_rng(seed).random(x.shape, dtype=np.float32)
    keep = cuda.to_device(np.ascontiguousarray((u >= rate).astype(np.uint8)).reshape(-1))
    scale = np.ones((), x.dtype) / x.dtype.type(1 - rate)
    return _apply_mask(x, keep, scale), (keep, scale)


def _apply_mask(x, keep, scale):
    y = cuda.device_array(x.shape, dtype=x.dtype)
    ew.launch_1d("dropout", x.dtype, _size(x), _flat(x), keep, x.dtype.type(scale), _flat(y))
    return y


def dropout_backward(dy, ctx):
    """``dx = dy * keep / (1 - rate)``."""
    keep, scale = ctx
    return _apply_mask(asarray(dy, scale.dtype), keep, scale)


# --------------------------------------------------------------------------- sums
def add(a, b):
    """``y = a + b`` elementwise for two arrays of one shape."""
    a = _input(a, "a")
    b = asarray(b, a.dtype)
    if tuple(b.shape) != tuple(a.shape):
        raise ShapeError(f"add: b has shape {tuple(b.shape)}, a has {tuple(a.shape)}")
    y = cuda.device_array(a.shape, dtype=a.dtype)
    ew.launch_1d("add", a.dtype, _size(a), _flat(a), _flat(b), _flat(y))
    return y


# --------------------------------------------------------------------------- losses
_ELEMENTWISE_LOSSES = {
    "binary_crossentropy": lk.BINARY_CROSSENTROPY,
    "mse": lk.MSE,
    "binary_focal_crossentropy": lk.BINARY_FOCAL,
}


def loss_forward(kind, y_pred, y_true, sample_weight, from_logits, gamma=2.0, alpha=None):
    """``(loss, ctx)``: ``loss = sum_n w_n l_n / N`` as a Python float (reduced on the device),
    ctx holds the gradient ``d loss / d y_pred`` on the device (see the reference for each l)."""
    y = _input(y_pred, "y_pred")
    dt = y.dtype
    T = dt.type
    N = y.shape[0]
    if N == 0:
        raise InvalidValueError("loss of an empty batch")
    K = _size(y) // N
    y2 = y.reshape(N, K)
    has_w = sample_weight is not None
    w = asarray(sample_weight, dt).reshape(N) if has_w else cc.dummy(dt)
    grad = cuda.device_array((N, K), dtype=dt)
    contrib = cuda.device_array((2, N), dtype=dt)
    if kind in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        sparse = kind == "sparse_categorical_crossentropy"
        if sparse:
            labels = asarray(y_true if _is_device(y_true) else np.asarray(y_true), np.int32)
            labels, t = labels.reshape(_size(labels)), y2
            if labels.shape[0] != N:
                raise ShapeError(f"sparse labels: expected {N} labels, got {labels.shape[0]}")
        else:
            labels, t = cc.dummy(np.int32), asarray(y_true, dt).reshape(N, K)
        args = (int(sparse), int(bool(from_logits)), y2, t, labels, w, int(has_w), grad, contrib)
        ew.launch_1d("loss_categorical", dt, N, *args)
    elif kind in _ELEMENTWISE_LOSSES:
        t = asarray(y_true, dt).reshape(N, K)
        a = T(0.0 if alpha is None else alpha)
        args = (_ELEMENTWISE_LOSSES[kind], int(bool(from_logits)), y2, t, w, int(has_w), T(gamma), a,
                int(alpha is not None), grad, contrib)  # fmt: skip
        ew.launch_1d("loss_elementwise", dt, N, *args)
    else:
        raise ConfigError(f"unknown loss {kind!r}")
    total, bad = red.sum_rows(contrib).copy_to_host()
    if bad:
        raise InvalidValueError(f"sparse labels must be integers in [0, {K}); {int(bad)} are not")
    return float(T(total) / T(N)), (grad.reshape(y.shape),)


def loss_backward(ctx):
    """``d loss / d y_pred`` (a device array of y_pred's shape)."""
    return ctx[0]


# --------------------------------------------------------------------------- optimizers
def sgd_update(p, g, velocity, lr, momentum, nesterov):
    """In place: ``v = momentum * v - lr * g``; ``p += v`` (Nesterov ``p += momentum * v - lr *
    g``); without momentum ``p -= lr * g``."""
    dt = _param_dtype(p)
    use_momentum = momentum != 0
    state = _InPlace(dt, p, velocity if use_momentum else None)
    pd, vd = state.dev
    gd = asarray(g, dt)
    T = dt.type
    ew.launch_1d(
        "sgd", dt, _size(pd), _flat(pd), _flat(gd), _flat(vd) if use_momentum else cc.dummy(dt),
        T(lr), T(momentum), int(bool(nesterov)), int(use_momentum),
    )  # fmt: skip
    state.done()


def adam_update(p, g, m, v, lr, beta_1, beta_2, epsilon, t):
    """In place (Keras): ``alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``;
    ``m += (g - m)(1 - beta_1)``; ``v += (g^2 - v)(1 - beta_2)``; ``p -= alpha m / (sqrt(v) + eps)``."""
    dt = _param_dtype(p)
    state = _InPlace(dt, p, m, v)
    pd, md, vd = state.dev
    gd = asarray(g, dt)
    T = dt.type
    alpha = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    ew.launch_1d(
        "adam", dt, _size(pd), _flat(pd), _flat(gd), _flat(md), _flat(vd), T(alpha), T(1 - beta_1),
        T(1 - beta_2), T(epsilon),
    )  # fmt: skip
    state.done()


def _param_dtype(p):
    dt = np.dtype(p.dtype)
    if dt not in FLOATS:
        raise DTypeError(f"parameters must be float32 or float64, got {dt}")
    return dt
