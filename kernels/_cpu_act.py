"""Scalar activation helpers shared by the ``cpu`` kernels (compiled into their callers).

Activations are passed to kernels as small int codes (:data:`tinycnn.kernels.ACTIVATION_CODES`),
not strings, so that one compiled specialisation serves every activation. Constants are
float32 so that float32 arrays stay in float32 arithmetic (Numba would otherwise promote to
float64); with float64 arrays they are promoted exactly.
"""

import math

import numpy as np
from numba import njit

from . import ACTIVATION_CODES as CODES

LINEAR, RELU, SIGMOID, TANH, LEAKY_RELU, SOFTMAX = (
    CODES[k] for k in ("linear", "relu", "sigmoid", "tanh", "leaky_relu", "softmax"))

#: fast-math flags that keep NaN and inf semantics (no 'nnan'/'ninf'/'afn'): reductions may be
#: reassociated (vectorised), products contracted into FMAs. NaN must still propagate so that a
#: diverging training run is detected.
FAST = {"nsz", "arcp", "contract", "reassoc"}


@njit(cache=True)
def act_value(z, act, alpha):
    """``act(z)`` for one value; NaN propagates like ``np.maximum`` (relu) does."""
    if act == RELU:
        return np.float32(0.0) if z < 0 else z
    if act == SIGMOID:
        one = np.float32(1.0)
        e = math.exp(-abs(z))  # exp of a non-positive number: no overflow
        s = one / (one + e)
        return s if z >= 0 else e * s
    if act == TANH:
        return math.tanh(z)
    if act == LEAKY_RELU:
        return z if z > 0 else alpha * z
    return z


@njit(cache=True)
def act_grad(dy, y, act):
    """``dL/dz`` from ``dy`` and the activation's output ``y`` (relu, sigmoid, tanh, linear)."""
    one = np.float32(1.0)
    if act == RELU:
        return dy if y > 0 else np.float32(0.0)
    if act == SIGMOID:
        return dy * y * (one - y)
    if act == TANH:
        return dy * (one - y * y)
    return dy
