"""Weight initialisers (Keras names and formulas).

For a kernel of shape (KH, KW, C, F): ``fan_in = KH*KW*C``, ``fan_out = KH*KW*F``; for a dense
weight (D, U): ``fan_in = D``, ``fan_out = U``.
"""

import numpy as np

from .errors import ConfigError
from .random import generator


def _fans(shape):
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape, rng):
    """U(-l, l), ``l = sqrt(6 / (fan_in + fan_out))`` (the Keras default for kernels)."""
    fi, fo = _fans(shape)
    lim = np.sqrt(6.0 / (fi + fo))
    return rng.uniform(-lim, lim, size=shape)


def glorot_normal(shape, rng):
    """Truncated-free normal with ``std = sqrt(2 / (fan_in + fan_out))``."""
    fi, fo = _fans(shape)
    return rng.normal(0.0, np.sqrt(2.0 / (fi + fo)), size=shape)


def he_uniform(shape, rng):
    """U(-l, l), ``l = sqrt(6 / fan_in)`` (suits ReLU)."""
    fi, _ = _fans(shape)
    lim = np.sqrt(6.0 / fi)
    return rng.uniform(-lim, lim, size=shape)


def he_normal(shape, rng):
    """Normal with ``std = sqrt(2 / fan_in)`` (suits ReLU)."""
    fi, _ = _fans(shape)
    return rng.normal(0.0, np.sqrt(2.0 / fi), size=shape)


def zeros(shape, rng):
    return np.zeros(shape)


def ones(shape, rng):
    return np.ones(shape)


_ALL = {
    f.__name__: f for f in (glorot_uniform, glorot_normal, he_uniform, he_normal, zeros, ones)
}


def get(identifier):
    """Return the initialiser function for a name (or a callable ``f(shape, rng)``)."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _ALL:
        return _ALL[identifier]
    raise ConfigError(f"unknown initializer {identifier!r}; choose one of {sorted(_ALL)}")


def initialize(identifier, shape, dtype):
    """Draw an array of ``shape`` from the shared generator."""
    return np.asarray(get(identifier)(tuple(shape), generator()), dtype=dtype)
