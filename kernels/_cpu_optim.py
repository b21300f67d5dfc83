"""Optimizer updates for the ``cpu`` backend: one parallel pass over each parameter, in place.

Adam reads p, g, m, v and writes p, m, v once each (the memory-traffic minimum); the step's
scalars (``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``) are computed on the host in
float64 and passed in the parameter's dtype, so float32 parameters are updated in float32.
Arrays that are not C-contiguous (they cannot be updated through a flat view) go to the
reference, which updates them in place too.
"""

import math

import numpy as np
from numba import njit, prange

from . import checks, reference
from ._cpu_act import FAST

#: parameters with fewer elements than this are updated on one thread
SERIAL_BELOW = 1 << 14


@njit(fastmath=FAST, cache=True, inline="always")
def _adam_at(i, p, g, m, v, alpha, one_minus_b1, one_minus_b2, eps):
    """One element of Adam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); p -= alpha m / (sqrt v + eps)."""
    gi = g[i]
    mi = m[i] + (gi - m[i]) * one_minus_b1
    vi = v[i] + (gi * gi - v[i]) * one_minus_b2
    m[i] = mi
    v[i] = vi
    p[i] -= alpha * mi / (math.sqrt(vi) + eps)


@njit(parallel=True, fastmath=FAST, cache=True)
def _adam_kernel(p, g, m, v, alpha, one_minus_b1, one_minus_b2, eps):
    for i in prange(p.size):
        _adam_at(i, p, g, m, v, alpha, one_minus_b1, one_minus_b2, eps)


@njit(fastmath=FAST, cache=True)
def _adam_serial(p, g, m, v, alpha, one_minus_b1, one_minus_b2, eps):
    """_adam_kernel without threads, for small parameters (biases)."""
    for i in range(p.size):
        _adam_at(i, p, g, m, v, alpha, one_minus_b1, one_minus_b2, eps)


@njit(parallel=True, fastmath=FAST, cache=True)
def _sgd_kernel(p, g, vel, lr, momentum, nesterov):
    """momentum == 0: p -= lr g; else vel = momentum vel - lr g; p += vel (Nesterov:
    p += momentum vel - lr g)."""
    if momentum == 0:
        for i in prange(p.size):
            p[i] -= lr * g[i]
    else:
        for i in prange(p.size):
            vi = momentum * vel[i] - lr * g[i]
            vel[i] = vi
            p[i] += momentum * vi - lr * g[i] if nesterov else vi


def _flat(a, p):
    """A flat view of ``a`` (checked: p's shape, writeable), or None unless it is a
    C-contiguous NumPy array of p's dtype (the reference then updates it in place)."""
    if not isinstance(a, np.ndarray) or a.dtype != p.dtype or not a.flags.c_contiguous:
        return None
    return a.reshape(-1)


def _grad(g, p):
    return np.ascontiguousarray(g, dtype=p.dtype).reshape(-1)


def adam_update(p, g, m, v, lr, beta_1, beta_2, epsilon, t):
    """Adam in place (Keras form), step ``t`` counted from 1."""
    checks.update(p, g, m=m, v=v)
    flat = [_flat(a, p) for a in (p, m, v)]
    if any(f is None for f in flat):
        return reference.adam_update(p, g, m, v, lr, beta_1, beta_2, epsilon, t)
    dt = p.dtype.type
    alpha = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    kernel = _adam_serial if p.size < SERIAL_BELOW else _adam_kernel
    kernel(flat[0], _grad(g, p), flat[1], flat[2], dt(alpha), dt(1 - beta_1),
                 dt(1 - beta_2), dt(epsilon))


def sgd_update(p, g, velocity, lr, momentum, nesterov):
    """SGD with (optionally Nesterov) momentum, in place."""
    checks.update(p, g, velocity=velocity if momentum else None)
    fp = _flat(p, p)
    fv = fp if momentum == 0 or velocity is None else _flat(velocity, p)
    if fp is None or fv is None:
        return reference.sgd_update(p, g, velocity, lr, momentum, nesterov)
    dt = p.dtype.type
    _sgd_kernel(fp, _grad(g, p), fv, dt(lr), dt(momentum), bool(nesterov))
