"""Keras-style metric objects for ``model.compile(metrics=[...])``: a name and a function of a
whole epoch's labels and predictions, and :func:`get` to make one from a name, class,
config dict or callable."""

import numpy as np

from ..errors import ConfigError, ShapeError
from ._inputs import check_threshold, labels, scores
from .ranking import roc_auc
from .rates import accuracy, f1_score, precision, recall, specificity


class Metric:
    """A named function of a whole epoch's ``(y_true, y_pred)`` returning a float.

    The model gathers every label and prediction of the epoch and calls the metric once, so ratios such
    as precision or AUC are exact, not averages of per-batch values. ``name`` is the history key.
    """

    default_name = None

    def __init__(self, name=None):
        name = self.default_name if name is None else name
        if not isinstance(name, str) or not name:
            raise ConfigError(f"metric name must be a non-empty string, got {name!r}")
        self.name = name

    def result(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} must define result(y_true, y_pred)")

    def __call__(self, y_true, y_pred):
        return float(self.result(y_true, y_pred))

    def get_config(self):
        return {"class_name": type(self).__name__, "name": self.name}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "class_name")
        return f"{type(self).__name__}({args})"


class _Thresholded(Metric):
    def __init__(self, threshold=0.5, name=None):
        super().__init__(name)
        self.threshold = check_threshold(threshold)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


_ACCURACY_MODES = (None, "binary", "categorical", "sparse_categorical")


class Accuracy(_Thresholded):
    """Accuracy; ``mode`` fixes how labels are read (None infers it from the shapes).

    'binary' compares ``score >= threshold`` with the 0/1 labels element by element, which also covers
    several independent sigmoid outputs (multi-label); 'categorical' wants one-hot labels and
    'sparse_categorical' integer labels, both compared with the argmax.
    """

    default_name = "accuracy"

    def __init__(self, threshold=0.5, name=None, mode=None):
        super().__init__(threshold, name)
        if mode not in _ACCURACY_MODES:
            raise ConfigError(f"mode must be one of {_ACCURACY_MODES}, got {mode!r}")
        self.mode = mode

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}

    def result(self, y_true, y_pred):
        s = scores(y_pred, "y_pred")
        if self.mode == "binary" and s.shape[1] > 1:
            y = np.asarray(y_true)
            if y.shape != s.shape:
                raise ShapeError(f"binary accuracy needs y_true of shape {s.shape}, got {y.shape}")
            y = labels(y.reshape(-1), 1, y.size)
            return float(np.mean((s.reshape(-1) >= self.threshold) == y))
        y_ndim = np.ndim(y_true)
        if self.mode == "categorical" and (y_ndim != 2 or np.shape(y_true)[1] != s.shape[1]):
            raise ShapeError(f"categorical accuracy needs one-hot y_true of shape (N, {s.shape[1]}), "
                             f"got {np.shape(y_true)}")
        if self.mode == "sparse_categorical" and not (y_ndim == 1 or np.shape(y_true)[1:] == (1,)):
            raise ShapeError(f"sparse categorical accuracy needs integer labels (N,) or (N, 1), "
                             f"got {np.shape(y_true)}")
        return accuracy(y_true, s, self.threshold)


class _Rate(_Thresholded):
    """A macro-averaged confusion-matrix rate (the positive class's value for binary scores)."""

    function = None

    def result(self, y_true, y_pred):
        return type(self).function(y_true, y_pred, self.threshold, "macro")


class Precision(_Rate):
    """Metric form of :func:`precision`."""

    default_name, function = "precision", precision


class Recall(_Rate):
    """Metric form of :func:`recall`."""

    default_name, function = "recall", recall


class Sensitivity(Recall):
    """Metric form of :func:`sensitivity` (the same value as :class:`Recall`)."""

    default_name = "sensitivity"


class Specificity(_Rate):
    """Metric form of :func:`specificity`."""

    default_name, function = "specificity", specificity


class F1Score(_Rate):
    """Metric form of :func:`f1_score`."""

    default_name, function = "f1_score", f1_score


class AUC(Metric):
    """Metric form of :func:`roc_auc` (macro one-vs-rest for several classes); no threshold."""

    default_name = "auc"

    def result(self, y_true, y_pred):
        return roc_auc(y_true, y_pred)


class FunctionMetric(Metric):
    """Wraps a plain ``f(y_true, y_pred) -> float``; the name defaults to ``f.__name__``."""

    def __init__(self, fn, name=None):
        if not callable(fn):
            raise ConfigError(f"FunctionMetric needs a callable, got {fn!r}")
        super().__init__(name if name is not None else getattr(fn, "__name__", type(fn).__name__))
        self.fn = fn

    def result(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


_NAMES = {"precision": Precision, "recall": Recall, "sensitivity": Sensitivity, "specificity": Specificity,
          "auc": AUC, "f1_score": F1Score, "f1": F1Score}
_CLASSES = {c.__name__: c for c in (Accuracy, Precision, Recall, Sensitivity, Specificity, AUC, F1Score)}
# Which accuracy each loss implies. mse is absent: one output column reads as binary, several as
# classes, which shape inference already does.
_LOSS_ACCURACY = {"binary_crossentropy": "binary", "bce": "binary", "binary_focal_crossentropy": "binary",
                  "focal": "binary", "categorical_crossentropy": "categorical",
                  "sparse_categorical_crossentropy": "sparse_categorical"}


def get(identifier, loss=None):
    """A :class:`Metric` for a name, Metric class or instance, config dict or plain callable.

    Parameters
    ----------
    identifier : str, Metric, type, dict or callable
        'accuracy' / 'acc', 'precision', 'recall', 'sensitivity', 'specificity', 'auc', 'f1_score' / 'f1'
        (any case); a Metric (returned as is); one of the Metric classes; ``{'class_name': ..., **args}``;
        or ``f(y_true, y_pred) -> float``.
    loss : str or Loss, optional
        The compiled loss, which decides how 'accuracy' reads labels (binary for binary cross-entropy
        and focal loss, categorical or sparse categorical for those losses); None infers from shapes.

    Returns
    -------
    Metric
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric) and identifier is not FunctionMetric:
        return identifier()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        config = dict(identifier)
        return _CLASSES[config.pop("class_name")](**config)
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            loss_kind = getattr(loss, "kind", loss)
            return Accuracy(mode=_LOSS_ACCURACY.get(loss_kind.lower() if isinstance(loss_kind, str) else None))
        if key in _NAMES:
            return _NAMES[key]()
    elif callable(identifier) and not isinstance(identifier, type):
        return FunctionMetric(identifier)
    known = sorted(["accuracy", "acc", *_NAMES])
    raise ConfigError(f"unknown metric {identifier!r}; choose one of {known}, a Metric class or instance, "
                      "or a callable f(y_true, y_pred) -> float")
