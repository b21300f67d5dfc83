"""Elementwise and row-wise kernels of the ``cuda`` backend: activations, softmax, dropout,
batch-norm's per-element passes, the optimizer updates, sums and dtype casts.

Arrays are passed flattened (1-D) or as (rows, K) matrices; every kernel is a grid-stride loop,
one element (or one row, for softmax) per iteration. Scalars arrive already in the work dtype
``T`` so that float32 arithmetic stays float32. The activation formulas are the inlined device
functions of :mod:`._cuda_common`, shared with the GEMM epilogue.
"""

import math

from numba import cuda, types

from . import _cuda_common as cc
from ._cuda_common import I64, arr, register


def _act_fwd_signatures(T):
    return [(arr(T, 1), arr(T, 1), I64, T)]


@register("act_forward", _act_fwd_signatures)
def _act_fwd_factory(T):
    activate = cc.activation(T)

    def _act_forward_kernel(x, y, act, alpha):
        """``y = act(x)``; sigmoid in the overflow-free two-branch form."""
        for e in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            y[e] = activate(x[e], act, alpha)

    return _act_forward_kernel


def _act_bwd_signatures(T):
    return [(arr(T, 1), arr(T, 1), arr(T, 1), arr(T, 1), I64, T)]


@register("act_backward", _act_bwd_signatures)
def _act_bwd_factory(T):
    dz = cc.activation_grad(T)

    def _act_backward_kernel(dy, x, y, dx, act, alpha):
        """``dx = dy * act'(x)`` (see :func:`._cuda_common.activation_grad`)."""
        for e in range(cuda.grid(1), dy.shape[0], cuda.gridsize(1)):
            dx[e] = dz(dy[e], x[e], y[e], act, alpha)

    return _act_backward_kernel


def _rows_signatures(T):
    return [(arr(T, 2), arr(T, 2))]


@register("softmax_forward", _rows_signatures)
def _softmax_fwd_factory(T):
    def _softmax_forward_kernel(x, y):
        """Each row: ``y = exp(x - max) / sum(exp(x - max))``; one thread per row."""
        K = x.shape[1]
        for r in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            m = x[r, 0]
            for k in range(1, K):
                m = max(m, x[r, k])
            s = T(0)
            for k in range(K):
                ex = math.exp(x[r, k] - m)
                y[r, k] = ex
                s += ex
            for k in range(K):
                y[r, k] = y[r, k] / s

    return _softmax_forward_kernel


def _softmax_bwd_signatures(T):
    return [(arr(T, 2), arr(T, 2), arr(T, 2))]


@register("softmax_backward", _softmax_bwd_signatures)
def _softmax_bwd_factory(T):
    def _softmax_backward_kernel(dy, y, dx):
        """Each row: ``dx = y * (dy - sum_k dy_k y_k)``."""
        K = y.shape[1]
        for r in range(cuda.grid(1), y.shape[0], cuda.gridsize(1)):
            s = T(0)
            for k in range(K):
                s += dy[r, k] * y[r, k]
            for k in range(K):
                dx[r, k] = y[r, k] * (dy[r, k] - s)

    return _softmax_backward_kernel


def _dropout_signatures(T):
    return [(arr(T, 1), arr(types.uint8, 1), T, arr(T, 1))]


@register("dropout", _dropout_signatures)
def _dropout_factory(T):
    def _dropout_kernel(x, keep, scale, y):
        """``y = x * (scale if keep else 0)`` with ``scale = 1 / (1 - rate)``."""
        for e in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            s = scale if keep[e] else T(0)
            y[e] = x[e] * s

    return _dropout_kernel


def _bn_prepare_signatures(T):
    v = arr(T, 1)
    return [(v, v, v, v, T, T, T, I64, v)]


@register("bn_prepare", _bn_prepare_signatures)
def _bn_prepare_factory(T):
    def _bn_prepare_kernel(mean, var, running_mean, running_var, momentum, one_minus, eps,
                           training, inv_std):  # fmt: skip
        """Per channel: in training, ``running = momentum * running + (1 - momentum) * batch``
        (in place); ``inv_std = 1 / sqrt(var + eps)``."""
        for c in range(cuda.grid(1), mean.shape[0], cuda.gridsize(1)):
            if training:
                running_mean[c] = running_mean[c] * momentum + one_minus * mean[c]
                running_var[c] = running_var[c] * momentum + one_minus * var[c]
            inv_std[c] = T(1) / math.sqrt(var[c] + eps)

    return _bn_prepare_kernel


def _bn_normalize_signatures(T):
    m, v = arr(T, 2), arr(T, 1)
    return [(m, v, v, v, v, m, m)]


@register("bn_normalize", _bn_normalize_signatures)
def _bn_normalize_factory(T):
    def _bn_normalize_kernel(x, mean, inv_std, gamma, beta, xhat, y):
        """``xhat = (x - mean) * inv_std``; ``y = gamma * xhat + beta`` (x is (M, C))."""
        C = x.shape[1]
        for e in range(cuda.grid(1), x.shape[0] * C, cuda.gridsize(1)):
            r = e // C
            c = e % C
            h = (x[r, c] - mean[c]) * inv_std[c]
            xhat[r, c] = h
            y[r, c] = gamma[c] * h + beta[c]

    return _bn_normalize_kernel


def _bn_dx_signatures(T):
    m, v = arr(T, 2), arr(T, 1)
    return [(m, m, v, v, v, v, T, I64, m)]


@register("bn_dx", _bn_dx_signatures)
def _bn_dx_factory(T):
    def _bn_dx_kernel(dy, xhat, gamma, inv_std, dbeta, dgamma, M, training, dx):
        """Training: ``dx = gamma inv_std / M * (M dy - dbeta - xhat dgamma)``;
        inference: ``dx = gamma inv_std dy`` (x, dy are (M, C))."""
        C = dy.shape[1]
        for e in range(cuda.grid(1), dy.shape[0] * C, cuda.gridsize(1)):
            r = e // C
            c = e % C
            if training:
                dx[r, c] = (gamma[c] * inv_std[c] / M) * (M * dy[r, c] - dbeta[c] - xhat[r, c] * dgamma[c])
            else:
                dx[r, c] = gamma[c] * inv_std[c] * dy[r, c]

    return _bn_dx_kernel


def _sgd_signatures(T):
    v = arr(T, 1)
    return [(v, v, v, T, T, I64, I64)]


@register("sgd", _sgd_signatures)
def _sgd_factory(T):
    def _sgd_kernel(p, g, vel, lr, momentum, nesterov, use_momentum):
        """Keras SGD in place: ``v = momentum v - lr g``; ``p += v`` (Nesterov:
        ``p += momentum v - lr g``); without momentum ``p -= lr g``."""
        for e in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
            ge = g[e]
            if use_momentum:
                v = vel[e] * momentum - lr * ge
                vel[e] = v
                if nesterov:
                    p[e] += momentum * v - lr * ge
                else:
                    p[e] += v
            else:
                p[e] -= lr * ge

    return _sgd_kernel


def _adam_signatures(T):
    v = arr(T, 1)
    return [(v, v, v, v, T, T, T, T)]


@register("adam", _adam_signatures)
def _adam_factory(T):
    def _adam_kernel(p, g, m, v, alpha, one_minus_b1, one_minus_b2, eps):
        """Keras Adam in place (alpha = lr sqrt(1 - b2^t) / (1 - b1^t) from the host):
        ``m += (g - m)(1 - b1)``; ``v += (g^2 - v)(1 - b2)``; ``p -= alpha m / (sqrt(v) + eps)``."""
        for e in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
            ge = g[e]
            me = m[e] + (ge - m[e]) * one_minus_b1
            ve = v[e] + (ge * ge - v[e]) * one_minus_b2
            m[e] = me
            v[e] = ve
            p[e] -= alpha * me / (math.sqrt(ve) + eps)

    return _adam_kernel


def _add_signatures(T):
    v = arr(T, 1)
    return [(v, v, v)]


@register("add", _add_signatures)
def _add_factory(T):
    def _add_kernel(a, b, y):
        """``y = a + b`` elementwise (a residual connection)."""
        for e in range(cuda.grid(1), y.shape[0], cuda.gridsize(1)):
            y[e] = a[e] + b[e]

    return _add_kernel


def _cast_signatures(T):
    # T is the destination: float work arrays, or int32 class labels
    t = types
    sources = (t.float32, t.float64, t.int32, t.int64, t.uint8)
    return [(arr(s, 1), arr(T, 1)) for s in sources if s != T]


@register("cast", _cast_signatures)
def _cast_factory(T):
    def _cast_kernel(src, dst):
        """``dst = T(src)`` elementwise (dtype conversion on the device)."""
        for e in range(cuda.grid(1), src.shape[0], cuda.gridsize(1)):
            dst[e] = T(src[e])

    return _cast_kernel
