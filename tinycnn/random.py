"""The one random generator behind every random choice tinycnn makes.

Initialisers, shuffling, dropout masks and augmentation all draw from :func:`generator`.
``set_random_seed(s)`` makes a run reproducible: the same seed, data and calls give the same
weights and the same training run. The state can be saved and restored (checkpoints).
"""

import numpy as np

_gen = {"rng": np.random.default_rng()}


def set_random_seed(seed):
    """Seed tinycnn's generator (like ``keras.utils.set_random_seed``)."""
    if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
        from .errors import ConfigError

        raise ConfigError(f"seed must be a non-negative int or None, got {seed!r}")
    _gen["rng"] = np.random.default_rng(seed)


def generator():
    """The shared :class:`numpy.random.Generator`."""
    return _gen["rng"]


def get_state():
    """The generator's state, a JSON-serialisable dict."""
    return _gen["rng"].bit_generator.state


def set_state(state):
    """Restore a state returned by :func:`get_state`."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    _gen["rng"] = rng
