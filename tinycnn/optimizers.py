"""Optimizers (Keras names and defaults); the update formulas are backend kernels."""

import numpy as np

from . import backend
from .errors import ConfigError


def _positive(v, name, allow_zero=False):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not (
        v >= 0 if allow_zero else v > 0
    ):
        raise ConfigError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {v!r}")
    return float(v)


class Optimizer:
    """Holds per-parameter state (``slots``) keyed by (layer index, parameter name)."""

    slot_names = ()

    def __init__(self, learning_rate):
        self.learning_rate = _positive(learning_rate, "learning_rate")
        self.iterations = 0
        self.slots = {}

    def _slots_for(self, key, p):
        if key not in self.slots:
            B = backend.get()
            self.slots[key] = {s: B.asarray(np.zeros(p.shape, dtype=p.dtype)) for s in self.slot_names}
        return self.slots[key]

    def apply(self, layers):
        """Update every parameter of ``layers`` in place from its gradient."""
        self.iterations += 1
        for i, layer in enumerate(layers):
            for name, p in layer.params.items():
                g = layer.grads.get(name)
                if g is not None:
                    self._update(p, g, self._slots_for((i, name), p))

    def get_config(self):
        return {"class_name": type(self).__name__, "learning_rate": self.learning_rate}


class SGD(Optimizer):
    """``v = momentum * v - lr * g; p += v`` (Nesterov: ``p += momentum * v - lr * g``)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        self.momentum = _positive(momentum, "momentum", allow_zero=True)
        if self.momentum >= 1:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum!r}")
        self.nesterov = bool(nesterov)
        self.slot_names = ("velocity",) if self.momentum else ()

    def _update(self, p, g, slots):
        backend.get().sgd_update(p, g, slots.get("velocity"), self.learning_rate, self.momentum,
                                 self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam with Keras defaults (lr 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7)."""

    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate)
        for v, n in ((beta_1, "beta_1"), (beta_2, "beta_2")):
            if not 0 <= v < 1:
                raise ConfigError(f"{n} must be in [0, 1), got {v!r}")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = _positive(epsilon, "epsilon")

    def _update(self, p, g, slots):
        backend.get().adam_update(p, g, slots["m"], slots["v"], self.learning_rate, self.beta_1,
                                  self.beta_2, self.epsilon, self.iterations)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


_NAMES = {"sgd": SGD, "adam": Adam}
_CLASSES = {"SGD": SGD, "Adam": Adam}


def get(identifier):
    """An optimizer for a name ('sgd', 'adam'), a config dict or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _NAMES:
        return _NAMES[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        cfg = dict(identifier)
        return _CLASSES[cfg.pop("class_name")](**cfg)
    raise ConfigError(f"unknown optimizer {identifier!r}; choose one of {sorted(_NAMES)}")
