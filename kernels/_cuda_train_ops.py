"""The ``cuda`` backend's contract functions for losses and optimizer updates.

Losses: value and gradient in one kernel (stable from_logits forms), the loss reduced on the
device; one float (and the count of bad sparse labels) comes back to the host. SGD (momentum,
Nesterov) and Adam: one in-place kernel per parameter (Keras formulas).
"""

import math

import numpy as np

from ..errors import InvalidValueError
from . import LOSS_CODES, checks
from . import _cuda_common as cc
from . import _cuda_reduce as red
from ._cuda_arrays import InPlace, asarray, flat, is_device, size
from ._cuda_common import cuda, launch_1d

_CATEGORICAL = ("categorical_crossentropy", "sparse_categorical_crossentropy")


def _labels(y_true, N, K):
    """Sparse labels as an (N,) int32 device array: host labels are checked on the host, device
    labels by the loss kernel (which counts those outside [0, K))."""
    if is_device(y_true):
        return asarray(y_true, np.int32).reshape(N)
    return asarray(checks.class_labels(y_true, N, K).astype(np.int32))


def loss_forward(kind, y_pred, y_true, sample_weight, from_logits, gamma=2.0, alpha=None):
    """``(loss, ctx)``: ``loss = sum_n w_n l_n / N`` as a Python float (reduced on the device),
    ctx holds the gradient ``d loss / d y_pred`` on the device (see the reference for each l)."""
    dt = checks.loss(kind, y_pred, y_true, sample_weight)
    T = dt.type
    y = asarray(y_pred, dt)
    N = y.shape[0]
    K = size(y) // N
    y2 = y.reshape(N, K)
    has_w = sample_weight is not None
    w = asarray(sample_weight, dt).reshape(N) if has_w else cc.dummy(dt)
    grad = cuda.device_array((N, K), dtype=dt)
    contrib = cuda.device_array((2, N), dtype=dt)
    logits = int(bool(from_logits))
    if kind in _CATEGORICAL:
        sparse = kind == "sparse_categorical_crossentropy"
        labels = _labels(y_true, N, K) if sparse else cc.dummy(np.int32)
        t = y2 if sparse else asarray(y_true, dt).reshape(N, K)
        launch_1d("loss_categorical", dt, N, int(sparse), logits, y2, t, labels, w, int(has_w), grad, contrib)
    else:
        t = asarray(y_true, dt).reshape(N, K)
        a = T(0.0 if alpha is None else alpha)
        launch_1d("loss_elementwise", dt, N, LOSS_CODES[kind], logits, y2, t, w, int(has_w), T(gamma), a,
                  int(alpha is not None), grad, contrib)
    total, bad = red.sum_rows(contrib).copy_to_host()
    if bad:
        raise InvalidValueError(checks.bad_labels_message(K, int(bad)))
    return float(T(total) / T(N)), (grad.reshape(y.shape),)


def loss_backward(ctx):
    """``d loss / d y_pred`` (a device array of y_pred's shape)."""
    return ctx[0]


def sgd_update(p, g, velocity, lr, momentum, nesterov):
    """In place: ``v = momentum * v - lr * g``; ``p += v`` (Nesterov ``p += momentum * v - lr *
    g``); without momentum ``p -= lr * g``."""
    use_momentum = momentum != 0
    checks.update(p, g, velocity=velocity if use_momentum else None)
    dt = np.dtype(p.dtype)
    state = InPlace(dt, p, velocity if use_momentum else None)
    pd, vd = state.dev
    T = dt.type
    launch_1d("sgd", dt, size(pd), flat(pd), flat(asarray(g, dt)), flat(vd) if use_momentum else cc.dummy(dt),
              T(lr), T(momentum), int(bool(nesterov)), int(use_momentum))
    state.done()


def adam_update(p, g, m, v, lr, beta_1, beta_2, epsilon, t):
    """In place (Keras): ``alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``;
    ``m += (g - m)(1 - beta_1)``; ``v += (g^2 - v)(1 - beta_2)``; ``p -= alpha m / (sqrt(v) + eps)``."""
    checks.update(p, g, m=m, v=v)
    dt = np.dtype(p.dtype)
    state = InPlace(dt, p, m, v)
    pd, md, vd = state.dev
    T = dt.type
    alpha = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    launch_1d("adam", dt, size(pd), flat(pd), flat(asarray(g, dt)), flat(md), flat(vd), T(alpha),
              T(1 - beta_1), T(1 - beta_2), T(epsilon))
    state.done()
