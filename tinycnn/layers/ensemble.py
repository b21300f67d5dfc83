"""Ensemble: K trained models averaged as one layer, so K models travel in one model file."""

import numpy as np

from .. import backend
from ..errors import ConfigError, ShapeError
from .composite import Composite


class Ensemble(Composite):
    """``y = (1/K) sum_k member_k(x)``: the mean of K models' outputs (probabilities).

    Members are :class:`~tinycnn.models.Sequential` models (or their configs) with one input
    and output shape, typically the same architecture trained from K seeds. Their layers
    become this layer's sublayers (slots ``m{k}_{i}``), so a ``Sequential([Ensemble(...)])``
    is saved, loaded and predicts like any model. Backward: every member gets ``dy / K``;
    ``dx`` is the sum of the members' input gradients.

    Test-time flips: with ``flips=('horizontal',)`` (and/or ``'vertical'``), inference
    (``training=False``) also averages each member over the mirrored images, one view per
    listed flip besides the image itself; training ignores them. The views run as one batch
    of V*N images, so every layer keeps one backward context and the gradient stays exact:
    ``dx = sum_v flip_v(dx_v)``.

    The mean of the (N, U) outputs is taken on the host, where the flipped views are made too
    (free for the host backends; one copy of the batch each way on a GPU): those arrays are
    small, and the kernel contract has no scalar multiply or flip.
    """

    _AXES = {"horizontal": 2, "vertical": 1}

    def __init__(self, members, flips=(), **kwargs):
        from ..models import Sequential

        super().__init__(**kwargs)
        if isinstance(members, (str, bytes)) or not hasattr(members, "__len__") or len(members) < 1:
            raise ConfigError(f"Ensemble needs a list of one or more models, got {members!r}")
        models = []
        for m in members:
            if isinstance(m, dict):
                m = Sequential.from_config(m)
            if not isinstance(m, Sequential) or not m.layers:
                raise ConfigError(f"Ensemble members must be Sequential models with layers, got {m!r}")
            models.append(m)
        self.members = models
        if isinstance(flips, str) or any(f not in self._AXES for f in flips):
            raise ConfigError(f"flips must be a list of {sorted(self._AXES)}, got {flips!r}")
        self.flips = tuple(dict.fromkeys(flips))
        for k, m in enumerate(models):
            for i, layer in enumerate(m.layers):
                self._track(f"m{k}_{i}", layer)
        if self.input_shape is None and models[0].input_shape is not None:
            self.input_shape = tuple(models[0].input_shape)

    @property
    def output_activation(self):
        """The members' output activation ('sigmoid', 'softmax', ...) when they share one, else None:
        a mean of probabilities is a probability (the layer itself has no logits to offer)."""
        acts = {getattr(m.layers[-1], "activation", None) if m.layers[-1].has_activation else None
                for m in self.members}
        return acts.pop() if len(acts) == 1 else None

    def compute_output_shape(self, input_shape):
        shapes = set()
        for m in self.members:
            shape = tuple(input_shape)
            for layer in m.layers:
                shape = tuple(layer.output_shape) if layer.built else tuple(layer.compute_output_shape(shape))
            shapes.add(shape)
        if len(shapes) != 1:
            raise ShapeError(f"{self.name}: the members' outputs differ in shape: {sorted(shapes)}")
        return shapes.pop()

    def build(self, input_shape):
        for m in self.members:
            shape = tuple(input_shape)
            for layer in m.layers:
                shape = self._build_sublayer(layer, shape)
        super().build(input_shape)

    def forward(self, x, training=False):
        B = backend.get()
        views = () if training else self.flips
        if views:
            h = B.to_numpy(x)
            x = B.asarray(np.concatenate([h] + [np.flip(h, axis=self._AXES[f]) for f in views]))
        self._ctx = views
        total = None
        for m in self.members:
            h = x
            for layer in m.layers:
                h = layer.forward(h, training=training)
            total = h if total is None else B.add(total, h)
        y = np.asarray(B.to_numpy(total))
        n_views = len(views) + 1
        y = y.reshape(n_views, -1, *y.shape[1:]).sum(axis=0) / (len(self.members) * n_views)
        return B.asarray(np.ascontiguousarray(y))

    def backward(self, dy, need_dx=True):
        B = backend.get()
        views, self._ctx = self._ctx, None
        n_views = len(views) + 1
        d = np.asarray(B.to_numpy(dy)) / (len(self.members) * n_views)
        d_member = B.asarray(np.concatenate([d] * n_views).astype(d.dtype, copy=False))
        dx = None
        for m in self.members:
            d = d_member
            for i in range(len(m.layers) - 1, -1, -1):
                d = m.layers[i].backward(d, need_dx=need_dx or i > 0)
            if need_dx:
                dx = d if dx is None else B.add(dx, d)
        if not need_dx or not views:
            return dx
        parts = np.split(np.asarray(B.to_numpy(dx)), n_views)
        total = parts[0] + sum(np.flip(p, axis=self._AXES[f]) for p, f in zip(parts[1:], views, strict=True))
        return B.asarray(np.ascontiguousarray(total))

    def get_config(self):
        return {**super().get_config(), "members": [m.get_config() for m in self.members],
                "flips": list(self.flips)}
