"""Ensemble: K trained models averaged as one layer, so K models travel in one model file."""

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

    The mean of the (N, U) outputs is taken on the host: those arrays are tiny, and the
    kernel contract has no scalar multiply.
    """

    def __init__(self, members, **kwargs):
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
        for k, m in enumerate(models):
            for i, layer in enumerate(m.layers):
                self._track(f"m{k}_{i}", layer)
        if self.input_shape is None and models[0].input_shape is not None:
            self.input_shape = tuple(models[0].input_shape)

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
        total = None
        for m in self.members:
            h = x
            for layer in m.layers:
                h = layer.forward(h, training=training)
            total = h if total is None else B.add(total, h)
        return B.asarray(B.to_numpy(total) / len(self.members))

    def backward(self, dy, need_dx=True):
        B = backend.get()
        d_member = B.asarray(B.to_numpy(dy) / len(self.members))
        dx = None
        for m in self.members:
            d = d_member
            for i in range(len(m.layers) - 1, -1, -1):
                d = m.layers[i].backward(d, need_dx=need_dx or i > 0)
            if need_dx:
                dx = d if dx is None else B.add(dx, d)
        return dx

    def get_config(self):
        return {**super().get_config(), "members": [m.get_config() for m in self.members]}
