"""Standalone activations, batch normalisation and dropout for the ``cpu`` backend.

Each op is one or two parallel passes over flat (or (rows, channels)) views of C-contiguous
arrays; formulas as in :mod:`tinycnn.kernels.reference`.
"""

import math

import numpy as np
from numba import get_num_threads, njit, prange

from . import _cpu_memory as mem
from . import checks, reference
from ._cpu_act import CODES, FAST, LEAKY_RELU, RELU, SOFTMAX, act_grad, act_value
from ._cpu_checks import float_array


# --------------------------------------------------------------------------- activations
@njit(parallel=True, fastmath=FAST, cache=True)
def _act_forward_kernel(x, act, alpha, y):
    for i in prange(x.size):
        y[i] = act_value(x[i], act, alpha)


@njit(parallel=True, fastmath=FAST, cache=True)
def _act_backward_kernel(dy, x, y, act, alpha, dx):
    for i in prange(dy.size):
        if act == LEAKY_RELU:
            dx[i] = dy[i] if x[i] > 0 else alpha * dy[i]
        elif act == RELU:
            dx[i] = dy[i] if x[i] > 0 else np.float32(0.0)
        else:
            dx[i] = act_grad(dy[i], y[i], act)


@njit(parallel=True, fastmath=FAST, cache=True)
def _softmax_forward_kernel(x, y):
    M, K = x.shape
    for r in prange(M):
        m = x[r, 0]
        for k in range(1, K):
            m = max(m, x[r, k])
        s = 0.0
        for k in range(K):
            e = math.exp(x[r, k] - m)
            y[r, k] = e
            s += e
        inv = 1.0 / s
        for k in range(K):
            y[r, k] = y[r, k] * inv


@njit(parallel=True, fastmath=FAST, cache=True)
def _softmax_backward_kernel(dy, y, dx):
    M, K = y.shape
    for r in prange(M):
        s = 0.0
        for k in range(K):
            s += dy[r, k] * y[r, k]
        for k in range(K):
            dx[r, k] = y[r, k] * (dy[r, k] - s)


def activation_forward(x, kind, alpha=0.0):
    """``y = act(x)`` elementwise (softmax over the last axis)."""
    dt, kind = checks.activation_args(x, kind)
    x = float_array(x, "x", dtype=dt)
    act = CODES[kind]
    y = mem.take(x.shape, x.dtype)
    if act == SOFTMAX:
        _softmax_forward_kernel(x.reshape(-1, x.shape[-1]), y.reshape(-1, x.shape[-1]))
    else:
        _act_forward_kernel(x.reshape(-1), act, x.dtype.type(alpha), y.reshape(-1))
    return y, (x, y, act, float(alpha))


def activation_backward(dy, ctx):
    """``dx = dy * act'(x)``; softmax: ``y * (dy - sum_k dy_k y_k)``."""
    x, y, act, alpha = ctx
    checks.grad(dy, y.shape)
    dy = float_array(dy, "dy", dtype=y.dtype)
    dx = mem.take(y.shape, y.dtype)
    if act == SOFTMAX:
        K = y.shape[-1]
        _softmax_backward_kernel(dy.reshape(-1, K), y.reshape(-1, K), dx.reshape(-1, K))
    else:
        _act_backward_kernel(dy.reshape(-1), x.reshape(-1), y.reshape(-1), act,
                             y.dtype.type(alpha), dx.reshape(-1))
    return dx


# --------------------------------------------------------------------------- batch norm
@njit(parallel=True, fastmath=FAST, cache=True)
def _channel_moments_kernel(x, part):
    """part (blocks, 2, C) float64: per block, the channel sums of x and of (x - mean)**2,
    two passes so that the variance does not suffer from cancellation."""
    M, C = x.shape
    nb = part.shape[0]
    for blk in prange(nb):
        for r in range(blk * M // nb, (blk + 1) * M // nb):
            for c in range(C):
                part[blk, 0, c] += x[r, c]
    mean = np.zeros(C)
    for blk in range(nb):
        for c in range(C):
            mean[c] += part[blk, 0, c]
    for c in range(C):
        mean[c] /= max(M, 1)
    for blk in prange(nb):
        for r in range(blk * M // nb, (blk + 1) * M // nb):
            for c in range(C):
                d = x[r, c] - mean[c]
                part[blk, 1, c] += d * d


@njit(parallel=True, fastmath=FAST, cache=True)
def _normalize_kernel(x, mean, scale, beta, y):
    """y = (x - mean) * scale + beta, with scale = gamma / sqrt(var + eps) per channel."""
    M, C = x.shape
    for r in prange(M):
        for c in range(C):
            y[r, c] = (x[r, c] - mean[c]) * scale[c] + beta[c]


@njit(parallel=True, fastmath=FAST, cache=True)
def _bn_grad_sums_kernel(dy, x, mean, inv_std, part):
    """part (blocks, 2, C) float64: sums of dy and of dy * xhat."""
    M, C = x.shape
    nb = part.shape[0]
    for blk in prange(nb):
        for r in range(blk * M // nb, (blk + 1) * M // nb):
            for c in range(C):
                g = dy[r, c]
                part[blk, 0, c] += g
                part[blk, 1, c] += g * ((x[r, c] - mean[c]) * inv_std[c])


@njit(parallel=True, fastmath=FAST, cache=True)
def _bn_backward_kernel(dy, x, mean, inv_std, k, dbeta, dgamma, M, dx):
    """dx = k * (M dy - dbeta - xhat dgamma), with k = gamma * inv_std / M per channel."""
    R, C = x.shape
    for r in prange(R):
        for c in range(C):
            xhat = (x[r, c] - mean[c]) * inv_std[c]
            dx[r, c] = k[c] * (M * dy[r, c] - dbeta[c] - xhat * dgamma[c])


def _blocks(rows):
    return max(2 * get_num_threads(), min(1024, -(-rows // 2048)), 1)


def batchnorm_forward(x, gamma, beta, running_mean, running_var, momentum, epsilon, training, allreduce=None):
    """Batch normalisation over every axis but the last; running statistics updated in place.
    Synchronized statistics (``allreduce`` in training) are computed by the reference."""
    dt = checks.batchnorm(x, gamma, beta, running_mean, running_var, allreduce)
    if training and allreduce is not None:
        y, ctx = reference.batchnorm_forward(x, gamma, beta, running_mean, running_var, momentum, epsilon,
                                             training, allreduce)
        return y, ("reference", ctx)
    x = float_array(x, "x", dtype=dt)
    C = x.shape[-1]
    gamma = float_array(gamma, "gamma", 1, dt)
    beta = float_array(beta, "beta", 1, dt)
    x2 = x.reshape(-1, C)
    if training:
        part = np.zeros((_blocks(x2.shape[0]), 2, C))
        _channel_moments_kernel(x2, part)
        M = max(x2.shape[0], 1)
        tot = part.sum(axis=0)
        mean, var = tot[0] / M, tot[1] / M
        running_mean *= momentum
        running_mean += (1 - momentum) * mean.astype(running_mean.dtype)
        running_var *= momentum
        running_var += (1 - momentum) * var.astype(running_var.dtype)
    else:
        mean = np.asarray(running_mean, np.float64)
        var = np.asarray(running_var, np.float64)
    inv_std = 1.0 / np.sqrt(var + epsilon)
    y = mem.take(x.shape, dt)
    _normalize_kernel(x2, mean.astype(dt), (gamma * inv_std).astype(dt), beta, y.reshape(-1, C))
    return y, (x2, mean.astype(dt), inv_std.astype(dt), gamma, bool(training), x.shape)


def batchnorm_backward(dy, ctx):
    """``(dx, dgamma, dbeta)`` of :func:`batchnorm_forward`."""
    if isinstance(ctx[0], str):
        return reference.batchnorm_backward(dy, ctx[1])
    x2, mean, inv_std, gamma, training, shape = ctx
    dt = x2.dtype
    checks.grad(dy, shape)
    dy = float_array(dy, "dy", dtype=dt)
    C = x2.shape[1]
    dy2 = dy.reshape(-1, C)
    part = np.zeros((_blocks(x2.shape[0]), 2, C))
    _bn_grad_sums_kernel(dy2, x2, mean, inv_std, part)
    tot = part.sum(axis=0)
    dbeta, dgamma = tot[0].astype(dt), tot[1].astype(dt)
    dx = mem.take(shape, dt)
    if training:
        M = x2.shape[0]
        k = (gamma * inv_std / M).astype(dt)
        _bn_backward_kernel(dy2, x2, mean, inv_std, k, dbeta, dgamma, dt.type(M), dx.reshape(-1, C))
    else:
        zeros = np.zeros(C, dt)
        _bn_backward_kernel(dy2, x2, mean, inv_std, (gamma * inv_std).astype(dt), zeros, zeros,
                            dt.type(1), dx.reshape(-1, C))
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------- dropout
@njit(parallel=True, fastmath=FAST, cache=True)
def _dropout_forward_kernel(x, u, rate, scale, y, keep):
    zero = np.float32(0.0)
    for i in prange(x.size):
        k = u[i] >= rate
        keep[i] = k
        y[i] = x[i] * (scale if k else zero)


@njit(parallel=True, fastmath=FAST, cache=True)
def _dropout_backward_kernel(dy, keep, scale, dx):
    zero = np.float32(0.0)
    for i in prange(dy.size):
        dx[i] = dy[i] * (scale if keep[i] else zero)


def dropout_forward(x, rate, seed):
    """Inverted dropout; the mask is ``default_rng(seed).random(x.shape, float32) >= rate``
    (the same draw as the reference), kept as one byte per element."""
    dt, rate = checks.dropout(x, rate)
    x = float_array(x, "x", dtype=dt)
    u = mem.workspace("dropout_u", x.shape, np.float32)
    np.random.default_rng(seed).random(out=u, dtype=np.float32)
    scale = x.dtype.type(1) / x.dtype.type(1 - rate)
    y = mem.take(x.shape, x.dtype)
    keep = mem.take(x.shape, np.bool_)
    _dropout_forward_kernel(x.reshape(-1), u.reshape(-1), np.float32(rate), scale, y.reshape(-1),
                            keep.reshape(-1))
    return y, (keep, scale)


def dropout_backward(dy, ctx):
    """``dx = dy * keep / (1 - rate)``."""
    keep, scale = ctx
    checks.grad(dy, keep.shape)
    dy = float_array(dy, "dy", dtype=scale.dtype)
    dx = mem.take(dy.shape, dy.dtype)
    _dropout_backward_kernel(dy.reshape(-1), keep.reshape(-1), scale, dx.reshape(-1))
    return dx
