"""ResidualBlock: the basic block of a ResNet (He et al. 2016), as one composite layer."""

from .. import backend
from ..errors import ConfigError, ShapeError
from ..kernels.checks import pair
from ..kernels.shapes import conv_geometry
from .base import positive_int
from .composite import Composite
from .conv import Conv2D
from .core import ReLU
from .normalization import BatchNormalization


class ResidualBlock(Composite):
    """``y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    ``conv1`` is 3x3 with ``strides``, ``conv2`` 3x3, both 'same' and without bias (batch norm
    follows). The shortcut is the identity when the block keeps the shape (stride 1 and as
    many filters as input channels), else a 1x1 convolution with ``strides`` and batch norm
    (ResNet's projection shortcut, option B).

    Backward: ``dz = dy * [z > 0]`` for the sum ``z``; ``dz`` flows through both branches and
    ``dx`` is the sum of the two branches' input gradients.

    Parameters
    ----------
    filters : int
        F, the output channels.
    strides : int or (sh, sw), default 1
        2 halves the resolution (rounded up).
    momentum : float
        Momentum of the batch-norm moving statistics (Keras' convention).
    kernel_initializer : str
    """

    def __init__(self, filters, strides=1, momentum=0.99, kernel_initializer="he_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters")
        self.strides = pair(strides, "strides")
        if not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.kernel_initializer = kernel_initializer
        conv = dict(padding="same", use_bias=False, kernel_initializer=kernel_initializer)
        self._track("conv1", Conv2D(filters, 3, strides=self.strides, name=f"{self.name}_conv1", **conv))
        self._track("bn1", BatchNormalization(momentum=self.momentum, name=f"{self.name}_bn1"))
        self._track("relu1", ReLU(name=f"{self.name}_relu1"))
        self._track("conv2", Conv2D(filters, 3, name=f"{self.name}_conv2", **conv))
        self._track("bn2", BatchNormalization(momentum=self.momentum, name=f"{self.name}_bn2"))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"{self.name}: expects images of shape (H, W, C), got input shape {tuple(input_shape)}")
        H, W, _ = input_shape
        OH, OW, _ = conv_geometry(H, W, 3, 3, self.strides, "same")
        return (OH, OW, self.filters)

    @property
    def projects(self):
        """True when the shortcut is a 1x1 convolution (the block changes the shape)."""
        return "proj" in self._sublayers

    def build(self, input_shape):
        super().build(input_shape)
        if self.strides != (1, 1) or input_shape[-1] != self.filters:
            self._track("proj", Conv2D(self.filters, 1, strides=self.strides, use_bias=False,
                                       kernel_initializer=self.kernel_initializer, name=f"{self.name}_proj"))
            self._track("proj_bn", BatchNormalization(momentum=self.momentum, name=f"{self.name}_proj_bn"))
        shape = tuple(input_shape)
        for slot in ("conv1", "bn1", "relu1", "conv2", "bn2"):
            shape = self._build_sublayer(self._sublayers[slot], shape)
        if self.projects:
            self._build_sublayer(self._sublayers["proj_bn"],
                                 self._build_sublayer(self._sublayers["proj"], input_shape))

    def _main(self):
        return [self._sublayers[s] for s in ("conv1", "bn1", "relu1", "conv2", "bn2")]

    def _shortcut(self):
        return [self._sublayers[s] for s in ("proj", "proj_bn")] if self.projects else []

    def forward(self, x, training=False):
        B = backend.get()
        h = x
        for layer in self._main():
            h = layer.forward(h, training=training)
        s = x
        for layer in self._shortcut():
            s = layer.forward(s, training=training)
        y, self._ctx = B.activation_forward(B.add(h, s), "relu")
        return y

    def sublayer_graph(self):
        """The block as steps ``(output, op, inputs)`` for the ONNX exporter
        (:mod:`tinycnn.export.converters`)."""
        steps, x = [], "input"
        for slot in ("conv1", "bn1", "relu1", "conv2", "bn2"):
            steps.append((slot, self._sublayers[slot], x))
            x = slot
        shortcut = "input"
        if self.projects:
            steps += [("proj", self._sublayers["proj"], "input"), ("proj_bn", self._sublayers["proj_bn"], "proj")]
            shortcut = "proj_bn"
        return steps + [("sum", "add", ["bn2", shortcut]), ("out", "relu", "sum")]

    def backward(self, dy, need_dx=True):
        B = backend.get()
        dz = B.activation_backward(dy, self._ctx)
        self._ctx = None
        d = _backward_through(self._main(), dz, need_dx)
        ds = _backward_through(self._shortcut(), dz, need_dx)
        return B.add(d, ds) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": list(self.strides),
                "momentum": self.momentum, "kernel_initializer": self.kernel_initializer}


def _backward_through(layers, d, need_dx):
    """Backpropagate ``d`` through ``layers`` (run forward in order); the first layer computes
    an input gradient only when ``need_dx`` (an identity branch returns ``d`` itself)."""
    for i in range(len(layers) - 1, -1, -1):
        d = layers[i].backward(d, need_dx=need_dx or i > 0)
    return d
