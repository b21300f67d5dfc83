"""Argument checks shared by the data modules (private)."""

import numpy as np

from ..errors import ConfigError, DTypeError, ShapeError

COLORS = ("grayscale", "rgb")


def as_size(size, name="image_size"):
    """``int`` or ``(height, width)`` -> ``(height, width)`` of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an int or a (height, width) pair, got {size!r}") from None
    for d in (h, w):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ConfigError(f"{name} must hold positive ints, got {size!r}")
    return int(h), int(w)


def check_color(color, allow_none=False):
    if color is None and allow_none:
        return None
    if color not in COLORS:
        raise ConfigError(f"color must be one of {COLORS}, got {color!r}")
    return color


def check_fraction(value, name, upper_open=True):
    """A float in [0, 1) (or [0, 1] with ``upper_open=False``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    value = float(value)
    too_big = value >= 1.0 if upper_open else value > 1.0
    if not np.isfinite(value) or value < 0.0 or too_big:
        bound = "[0, 1)" if upper_open else "[0, 1]"
        raise ConfigError(f"{name} must lie in {bound}, got {value!r}")
    return value


def as_float_images(x, name="x", ndims=(2, 3, 4)):
    """An array of images as float32 (a copy only when the dtype changes).

    Integer arrays are converted without rescaling: the preprocessing functions work on values
    as they are (Hounsfield units, raw MR intensities, [0, 1] pixels). ``ndims=None`` accepts
    any rank (for elementwise operations).
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise DTypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
    if ndims is not None and x.ndim not in ndims:
        raise ShapeError(f"{name} must have {' or '.join(map(str, ndims))} dimensions, got shape {x.shape}")
    return x.astype(np.float32, copy=False)


def as_rng(seed):
    """A :class:`numpy.random.Generator` from an int seed, a Generator or None (tinycnn's)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        from .. import random

        return random.generator()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative int, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(int(seed))
