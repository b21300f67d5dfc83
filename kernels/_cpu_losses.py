"""Losses for the ``cpu`` backend: one fused pass computes the per-sample loss and dL/dy.

Formulas (and the Keras conventions: "sum over batch size", probabilities clipped to
``[1e-7, 1 - 1e-7]`` with a zero gradient where the clip binds, stable forms from logits) are
those of :func:`tinycnn.kernels.reference.loss_forward`. Binary, categorical and sparse
categorical cross-entropy and MSE are Numba kernels over (N, K) rows; the focal loss, and
predictions of rank > 2, are delegated to the reference (rare, and tiny arrays).
"""

import math

import numpy as np
from numba import njit

from . import EPSILON, LOSS_CODES, checks, reference
from ._cpu_checks import float_array

_BCE, _CE, _SPARSE, _MSE = (LOSS_CODES[k] for k in ("binary_crossentropy", "categorical_crossentropy",
                                                    "sparse_categorical_crossentropy", "mse"))


@njit(cache=True)  # batches are small: a parallel launch would cost more than the loop
def _loss_kernel(kind, logits, y, t, labels, w, lo, hi, grad, per):
    """Row n: per[n] = l_n and grad[n] = w_n / N * dl_n/dy_n (no fastmath: log/exp near the
    clip bounds and the comparisons must be exact)."""
    N, K = y.shape
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for n in range(N):
        s = w[n] / N
        acc = 0.0
        if kind == _BCE or kind == _MSE:
            for k in range(K):
                z = y[n, k]
                tk = t[n, k]
                if kind == _MSE:
                    d = z - tk
                    acc += d * d
                    grad[n, k] = 2 * d * s / K
                elif logits:
                    e = math.exp(-abs(z))
                    acc += max(z, zero) - z * tk + math.log1p(e)
                    sig = one / (one + e)
                    sig = sig if z >= 0 else e * sig
                    grad[n, k] = (sig - tk) * s / K
                else:
                    p = min(max(z, lo), hi)
                    acc += -(tk * math.log(p) + (one - tk) * math.log(one - p))
                    inside = z > lo and z < hi
                    grad[n, k] = (p - tk) / (p * (one - p)) * s / K if inside else zero
            per[n] = acc / K
        else:
            if logits:
                m = y[n, 0]
                for k in range(1, K):
                    m = max(m, y[n, k])
                se = 0.0
                for k in range(K):
                    se += math.exp(y[n, k] - m)
                lse = m + math.log(se)
                tsum = 0.0
                if kind == _SPARSE:
                    tsum = 1.0
                    acc = lse - y[n, labels[n]]
                else:
                    for k in range(K):
                        acc += t[n, k] * (lse - y[n, k])
                        tsum += t[n, k]
                for k in range(K):
                    tk = (1.0 if k == labels[n] else 0.0) if kind == _SPARSE else t[n, k]
                    grad[n, k] = (math.exp(y[n, k] - lse) * tsum - tk) * s
            else:
                for k in range(K):
                    tk = (1.0 if k == labels[n] else 0.0) if kind == _SPARSE else t[n, k]
                    z = y[n, k]
                    p = min(max(z, lo), hi)
                    acc -= tk * math.log(p)
                    inside = z > lo and z < hi
                    grad[n, k] = -tk / p * s if inside else zero
            per[n] = acc


def loss_forward(kind, y_pred, y_true, sample_weight, from_logits, gamma=2.0, alpha=None):
    """``(loss, ctx)``: the batch loss ``sum_n w_n l_n / N`` as a float; ctx keeps dL/dy."""
    dt = checks.loss(kind, y_pred, y_true, sample_weight)
    y = float_array(y_pred, "y_pred", dtype=dt)
    N = y.shape[0]
    if kind == "binary_focal_crossentropy" or y.ndim > 2:
        return reference.loss_forward(kind, y, y_true, sample_weight, from_logits, gamma, alpha)
    y2 = y.reshape(N, -1)
    K = y2.shape[1]
    labels = np.zeros(1, np.int64)
    t = np.zeros((1, 1), dt)
    if kind == "sparse_categorical_crossentropy":
        labels = np.ascontiguousarray(checks.class_labels(y_true, N, K))
    else:
        t = np.ascontiguousarray(np.asarray(y_true, dtype=dt).reshape(N, K))
    w = np.ones(N, dt) if sample_weight is None else np.ascontiguousarray(np.asarray(sample_weight, dtype=dt))
    eps = EPSILON
    grad = np.empty((N, K), dt)
    per = np.empty(N, dt)
    _loss_kernel(LOSS_CODES[kind], bool(from_logits), y2, t, labels, w, dt.type(eps),
                 dt.type(1 - eps), grad, per)
    loss = float(np.dot(w.astype(np.float64), per.astype(np.float64)) / N)
    return loss, (grad.reshape(y.shape), per)


def loss_backward(ctx):
    """``dL / d y_pred``."""
    return ctx[0]
