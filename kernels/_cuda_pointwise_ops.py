"""The ``cuda`` backend's contract functions for activations, batch normalisation, dropout and sums.

Batch norm: two-pass batch statistics by deterministic column reductions; the running
statistics are updated in place on the device. Dropout: the mask is drawn **on the host**
with ``numpy.random.default_rng(seed)`` exactly as the contract says (``keep = u >= rate``, u
float32 of x's shape) and uploaded as uint8, so it matches the reference bit for bit; it costs
one small upload per call (a device RNG would not reproduce NumPy's stream).
"""

import numpy as np

from . import ACTIVATION_CODES, checks
from . import _cuda_reduce as red
from ._cuda_arrays import InPlace, asarray, flat, operands, size
from ._cuda_common import LINEAR, cuda, launch_1d


def act_grad(dy, y, act, x=None, alpha=0.0):
    """``dy * act'(...)`` for an elementwise activation code (``dy`` itself when linear)."""
    if act == LINEAR:
        return dy
    dx = cuda.device_array(dy.shape, dtype=dy.dtype)
    xs = y if x is None else x
    launch_1d("act_backward", dy.dtype, size(dy), flat(dy), flat(xs), flat(y), flat(dx), act,
              dy.dtype.type(alpha))
    return dx


def _rows(a):
    K = tuple(a.shape)[-1]
    rows = size(a) // K if K else 0
    return a.reshape(rows, K)


def activation_forward(x, kind, alpha=0.0):
    """``y = act(x)`` elementwise; softmax over the last axis."""
    dt, kind = checks.activation_args(x, kind)
    x = asarray(x, dt)
    if kind == "linear":
        y = x
    elif kind == "softmax":
        y = cuda.device_array(x.shape, dtype=dt)
        launch_1d("softmax_forward", dt, _rows(x).shape[0], _rows(x), _rows(y))
    else:
        y = cuda.device_array(x.shape, dtype=dt)
        launch_1d("act_forward", dt, size(x), flat(x), flat(y), ACTIVATION_CODES[kind], dt.type(alpha))
    return y, (x, y, kind, alpha)


def activation_backward(dy, ctx):
    """``dx = dy * act'(x)`` (softmax: ``y * (dy - sum_k dy_k y_k)`` per row)."""
    x, y, kind, alpha = ctx
    checks.grad(dy, y.shape)
    dy = asarray(dy, x.dtype)
    if kind == "softmax":
        dx = cuda.device_array(x.shape, dtype=x.dtype)
        launch_1d("softmax_backward", x.dtype, _rows(x).shape[0], _rows(dy), _rows(y), _rows(dx))
        return dx
    return act_grad(dy, y, ACTIVATION_CODES[kind], x=x, alpha=alpha)


def batchnorm_forward(x, gamma, beta, running_mean, running_var, momentum, epsilon, training, allreduce=None):
    """Normalise over every axis but the last; in training, update the running stats in place
    (statistics of the global batch with ``allreduce``: see :mod:`tinycnn.kernels`)."""
    dt = checks.batchnorm(x, gamma, beta, running_mean, running_var, allreduce)
    x, gamma, beta = operands(dt, x, gamma, beta)
    C = tuple(x.shape)[-1]
    M = size(x) // C
    x3 = x.reshape(1, M, C)
    running = InPlace(dt, running_mean, running_var)
    rm, rv = running.dev
    sync = allreduce if training else None
    if training and sync is None:
        mean = red.colsum(x3, denom=M).reshape(C)
        var = red.colsum(x3, mean.reshape(1, 1, C), red.SUM_SQUARED_DEVIATION, M).reshape(C)
    elif training:
        s, n = sync([_host(red.colsum(x3)), np.array([M], np.float64)])
        mean = asarray(s / n[0], dt)
        (q,) = sync([_host(red.colsum(x3, mean.reshape(1, 1, C), red.SUM_SQUARED_DEVIATION))])
        var = asarray(q / n[0], dt)
    else:
        mean, var = rm, rv
    inv_std = cuda.device_array(C, dtype=dt)
    T = dt.type
    launch_1d("bn_prepare", dt, C, mean, var, rm, rv, T(momentum), T(1 - momentum), T(epsilon),
              int(bool(training)), inv_std)
    running.done()
    xhat = cuda.device_array((M, C), dtype=dt)
    y = cuda.device_array((M, C), dtype=dt)
    launch_1d("bn_normalize", dt, M * C, x.reshape(M, C), mean, inv_std, gamma, beta, xhat, y)
    return y.reshape(x.shape), (xhat, gamma, inv_std, bool(training), x.shape, sync)


def _host(a):
    """A (1, C) or (C,) device array as a float64 (C,) host array (for ``allreduce``)."""
    return a.copy_to_host().reshape(-1).astype(np.float64)


def batchnorm_backward(dy, ctx):
    """``(dx, dgamma, dbeta)`` of :func:`batchnorm_forward`."""
    xhat, gamma, inv_std, training, shape, allreduce = ctx
    checks.grad(dy, shape)
    M, C = xhat.shape
    dt = xhat.dtype
    dy2 = asarray(dy, dt).reshape(M, C)
    dy3 = dy2.reshape(1, M, C)
    dbeta = red.colsum(dy3).reshape(C)
    dgamma = red.colsum(dy3, xhat.reshape(1, M, C), red.SUM_PRODUCT).reshape(C)
    sum_dy, sum_dy_xhat, count = dbeta, dgamma, M
    if allreduce is not None:
        b, g, n = allreduce([_host(dbeta), _host(dgamma), np.array([M], np.float64)])
        sum_dy, sum_dy_xhat, count = asarray(b, dt), asarray(g, dt), n[0]
    dx = cuda.device_array((M, C), dtype=dt)
    launch_1d("bn_dx", dt, M * C, dy2, xhat, gamma, inv_std, sum_dy, sum_dy_xhat, dt.type(count), int(training),
              dx)
    return dx.reshape(shape), dgamma, dbeta


def _apply_mask(x, keep, scale):
    y = cuda.device_array(x.shape, dtype=x.dtype)
    launch_1d("dropout", x.dtype, size(x), flat(x), keep, x.dtype.type(scale), flat(y))
    return y


def dropout_forward(x, rate, seed):
    """Inverted dropout ``y = x * keep / (1 - rate)``; the mask is drawn on the host with
    ``numpy.random.default_rng(seed)`` (``keep = u >= rate``, u float32 uniform of x's shape),
    exactly as the reference does, and uploaded as uint8."""
    dt, rate = checks.dropout(x, rate)
    x = asarray(x, dt)
    u = np.random.default_rng(seed).random(x.shape, dtype=np.float32)
    keep = cuda.to_device(np.ascontiguousarray((u >= rate).astype(np.uint8)).reshape(-1))
    scale = np.ones((), dt) / dt.type(1 - rate)
    return _apply_mask(x, keep, scale), (keep, scale, x.shape)


def dropout_backward(dy, ctx):
    """``dx = dy * keep / (1 - rate)``."""
    keep, scale, shape = ctx
    checks.grad(dy, shape)
    return _apply_mask(asarray(dy, scale.dtype), keep, scale)


def add(a, b):
    """``y = a + b`` elementwise for two arrays of one shape."""
    dt = checks.add(a, b)
    a, b = asarray(a, dt), asarray(b, dt)
    y = cuda.device_array(a.shape, dtype=dt)
    launch_1d("add", dt, size(a), flat(a), flat(b), flat(y))
    return y
