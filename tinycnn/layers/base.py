"""The layer contract, shared by every layer family.

A layer owns its parameters and their gradients (``params`` / ``grads``, dicts with the same
keys; layers with running statistics also have ``state``), builds lazily from the input shape
(batch axis excluded), and delegates all array maths to the active backend
(:func:`tinycnn.backend.get`). ``forward(x, training)`` keeps what ``backward`` needs in
``self._ctx``; ``backward(dy, need_dx)`` stores parameter gradients in ``grads`` and returns
the input gradient (None may be returned when ``need_dx`` is False). Layers whose output can
be taken before their final activation set ``has_activation`` and accept
``forward(x, training, logits=True)``.

Optional hooks with defaults here: :meth:`Layer.preserved` (passes that leave no trace) and
:meth:`Layer.get_random_state` / :meth:`Layer.set_random_state` (a layer's own random stream,
kept in training checkpoints). A layer that owns sublayers exposes their parameters, gradients
and state through its own flat dicts and extends these hooks to its sublayers.
"""

import contextlib
import re

import numpy as np

from .. import backend
from ..errors import ConfigError, ShapeError

_counts = {}


def _auto_name(cls_name):
    # Keras' snake case: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d, LeakyReLU -> leaky_re_lu
    base = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", cls_name)
    base = re.sub("([a-z])([A-Z])", r"\1_\2", base).lower()
    _counts[base] = _counts.get(base, 0) + 1
    n = _counts[base]
    return base if n == 1 else f"{base}_{n - 1}"


def positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class Layer:
    """Base class: one small contract (build, forward, backward, config).

    Parameters
    ----------
    input_shape : tuple, optional
        Shape of one example (no batch axis), e.g. ``(64, 64, 1)``; only the first layer of a
        model needs it.
    name : str, optional
    """

    #: True for layers whose output can be taken before their final activation (logits)
    has_activation = False

    def __init__(self, input_shape=None, name=None, **kwargs):
        if kwargs:
            raise ConfigError(f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}")
        if input_shape is not None:
            try:
                input_shape = tuple(int(d) for d in input_shape)
            except TypeError:
                raise ConfigError(f"input_shape must be a tuple of ints, got {input_shape!r}") from None
            if any(d < 1 for d in input_shape):
                raise ConfigError(f"input_shape must be positive, got {input_shape!r}")
        self.input_shape = input_shape
        self.name = name or _auto_name(type(self).__name__)
        self.params = {}
        self.grads = {}
        self.built = False
        self.dtype = np.dtype("float32")
        self._ctx = None
        self.output_shape = None

    # -- building ---------------------------------------------------------------------
    def build(self, input_shape):
        """Create parameters for examples of ``input_shape`` (no batch axis)."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _set_params(self, **arrays):
        B = backend.get()
        for k, v in arrays.items():
            # a copy: training updates parameters in place, and must never write into arrays the
            # caller passed to set_weights (or still holds from get_weights)
            self.params[k] = B.asarray(np.array(v, dtype=self.dtype, order="C", copy=True))
        self.grads = {k: None for k in self.params}

    def count_params(self):
        return int(sum(int(np.prod(p.shape)) for p in self.params.values()))

    # -- running ----------------------------------------------------------------------
    def forward(self, x, training=False):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def backward(self, dy, need_dx=True):
        raise NotImplementedError(f"{type(self).__name__} must implement backward")

    @contextlib.contextmanager
    def preserved(self):
        """Run passes inside without leaving a trace: ``grads`` and the context kept for
        ``backward`` are restored on exit (an explanation backpropagates through a trained
        model; an optimizer step taken afterwards must not see its gradients)."""
        grads, ctx = dict(self.grads), self._ctx
        try:
            yield self
        finally:
            self.grads, self._ctx = grads, ctx

    def release_context(self):
        """Drop what :meth:`forward` kept for :meth:`backward` (an inference pass keeps nothing)."""
        self._ctx = None

    def get_random_state(self):
        """The JSON-serialisable state of the layer's own random stream, or None when it has
        none (draws from tinycnn's shared generator, whose state checkpoints keep anyway)."""
        return None

    def set_random_state(self, state):
        """Restore a state returned by :meth:`get_random_state`."""

    def __call__(self, x, training=False):
        """Run the layer on a batch (builds it first if needed); returns a backend array."""
        if not self.built:
            self.build(tuple(x.shape[1:]))
        return self.forward(x, training=training)

    # -- weights and config -----------------------------------------------------------
    def get_weights(self):
        """Parameters as NumPy arrays, in ``params`` order."""
        B = backend.get()
        return [np.array(B.to_numpy(p)) for p in self.params.values()]

    def set_weights(self, weights):
        if len(weights) != len(self.params):
            raise ShapeError(
                f"layer {self.name!r} expects {len(self.params)} weight arrays, got {len(weights)}"
            )
        new = {}
        for (k, p), w in zip(self.params.items(), weights, strict=True):
            w = np.asarray(w)
            if tuple(w.shape) != tuple(p.shape):
                raise ShapeError(
                    f"layer {self.name!r}: weight {k!r} must have shape {tuple(p.shape)}, got {w.shape}"
                )
            new[k] = w
        self._set_params(**new)

    def get_config(self):
        cfg = {"name": self.name}
        if self.input_shape is not None:
            cfg["input_shape"] = list(self.input_shape)
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"
