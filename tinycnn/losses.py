"""Losses (Keras names). The formulas live in :func:`tinycnn.kernels.reference.loss_forward`.

A loss object knows its kernel ``kind``, whether predictions are logits, and how to check
labels against the model's output before any arithmetic runs.
"""

import numpy as np

from .errors import ConfigError, InvalidValueError, ShapeError


class Loss:
    kind = None

    def __init__(self, from_logits=False, name=None):
        self.from_logits = bool(from_logits)
        self.name = name or self.kind

    def kernel_args(self):
        return {}

    def get_config(self):
        return {"class_name": type(self).__name__, "from_logits": self.from_logits,
                **self.kernel_args()}

    def check_targets(self, y, out_shape):
        """Validate labels ``y`` for outputs of shape (N, K); return them as float/int array.

        Raises ShapeError or InvalidValueError naming what was expected.
        """
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise InvalidValueError(f"labels must be numeric, got dtype {y.dtype}")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise InvalidValueError("labels contain NaN or inf")
        K = out_shape[-1]
        if y.ndim == 1 and K == 1:
            y = y[:, None]
        if y.shape[1:] != tuple(out_shape[1:]):
            raise ShapeError(
                f"labels of shape {y.shape} do not fit the model's output {tuple(out_shape)} "
                f"for loss {self.name!r}; expected ({'N' if K == 1 else 'N, ' + str(K)}"
                f"{', 1' if K == 1 else ''})"
            )
        return y.astype(np.float64) if y.dtype.kind != "f" else y


class BinaryCrossentropy(Loss):
    kind = "binary_crossentropy"

    def check_targets(self, y, out_shape):
        y = super().check_targets(y, out_shape)
        if np.any((y < 0) | (y > 1)):
            raise InvalidValueError(f"{self.name}: labels must lie in [0, 1]")
        return y


class BinaryFocalCrossentropy(BinaryCrossentropy):
    """Focal loss for class imbalance (Lin et al. 2017): down-weights easy examples by
    ``(1 - p_t) ** gamma``; ``alpha`` (optional) weighs positives by alpha, negatives by 1-alpha."""

    kind = "binary_focal_crossentropy"

    def __init__(self, gamma=2.0, alpha=None, from_logits=False, name=None):
        super().__init__(from_logits, name)
        if not gamma >= 0:
            raise ConfigError(f"gamma must be >= 0, got {gamma!r}")
        if alpha is not None and not 0 <= alpha <= 1:
            raise ConfigError(f"alpha must be in [0, 1] or None, got {alpha!r}")
        self.gamma, self.alpha = float(gamma), (None if alpha is None else float(alpha))

    def kernel_args(self):
        return {"gamma": self.gamma, "alpha": self.alpha}


class CategoricalCrossentropy(Loss):
    kind = "categorical_crossentropy"

    def check_targets(self, y, out_shape):
        y = super().check_targets(y, out_shape)
        if np.any(y < 0):
            raise InvalidValueError(f"{self.name}: one-hot labels must be >= 0")
        return y


class SparseCategoricalCrossentropy(Loss):
    kind = "sparse_categorical_crossentropy"

    def check_targets(self, y, out_shape):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ShapeError(
                f"{self.name}: labels must be class indices of shape (N,), got {y.shape}"
            )
        if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and np.any(y != np.round(y))):
            raise InvalidValueError(f"{self.name}: labels must be integer class indices")
        K = out_shape[-1]
        if y.size and (y.min() < 0 or y.max() >= K):
            raise InvalidValueError(
                f"{self.name}: labels must lie in [0, {K - 1}] for a model with {K} outputs, "
                f"got values in [{y.min()}, {y.max()}]"
            )
        return y.astype(np.int64)


class MeanSquaredError(Loss):
    kind = "mse"


_NAMES = {
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "binary_focal_crossentropy": BinaryFocalCrossentropy,
    "focal": BinaryFocalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
}
_CLASSES = {c.__name__: c for c in set(_NAMES.values())}


def get(identifier):
    """A :class:`Loss` for a name, class or instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str) and identifier.lower() in _NAMES:
        return _NAMES[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        cfg = dict(identifier)
        return _CLASSES[cfg.pop("class_name")](**cfg)
    raise ConfigError(f"unknown loss {identifier!r}; choose one of {sorted(_NAMES)}")


binary_crossentropy = "binary_crossentropy"
categorical_crossentropy = "categorical_crossentropy"
sparse_categorical_crossentropy = "sparse_categorical_crossentropy"
mse = "mse"
binary_focal_crossentropy = "binary_focal_crossentropy"
