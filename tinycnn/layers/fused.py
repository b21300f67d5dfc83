"""Which layers of a Sequential run fused: the plan that a model's forward and backward loops follow.

A ``Conv2D`` (stride 1, an element-wise activation) directly followed by a ``MaxPooling2D``
whose stride equals its size ('valid') runs as one backend op when the active backend has one
(``conv2d_maxpool_forward``, the ``cpu`` backend) and supports the shapes: the convolution's
output is then never written out (see :mod:`tinycnn.kernels._cpu_convpool`). The fused step
gives the same numbers as the two layers (tested bit for bit); it exists only for whole-model
passes (training steps and ``predict``): code that drives layers one by one (explanations,
gradient checks) calls the layers themselves, which are untouched.
"""

from .. import backend
from ..kernels import ELEMENTWISE
from .conv import Conv2D
from .pooling import MaxPooling2D


class ConvPool:
    """A ``Conv2D`` and the ``MaxPooling2D`` after it, run as one op; it has the layers'
    ``forward(x, training)`` / ``backward(dy, need_dx)`` interface and writes the convolution's
    gradients into ``conv.grads``."""

    def __init__(self, conv, pool):
        self.conv, self.pool = conv, pool
        self._ctx = None

    def forward(self, x, training=False):
        conv = self.conv
        y, self._ctx = backend.get().conv2d_maxpool_forward(
            x, conv.params["kernel"], conv.params.get("bias"), conv.padding, conv.activation,
            self.pool.pool_size, training=training)
        return y

    def release_context(self):
        self._ctx = None

    def backward(self, dy, need_dx=True):
        dx, dw, db = backend.get().conv2d_maxpool_backward(dy, self._ctx, need_dx=need_dx)
        self.conv.grads["kernel"] = dw
        if self.conv.use_bias:
            self.conv.grads["bias"] = db
        self._ctx = None
        return dx


def _fusable(conv, pool, dtype, need_dx, B):
    return (isinstance(conv, Conv2D) and isinstance(pool, MaxPooling2D) and conv.built
            and conv.activation in ELEMENTWISE and conv.strides == (1, 1)
            and B.conv2d_maxpool_supported(conv.input_shape, conv.params["kernel"].shape, conv.strides,
                                           pool.pool_size, pool.strides, pool.padding, dtype, need_dx))


def plan(layers, dtype):
    """The steps of a whole-model pass: each layer, or a :class:`ConvPool` in place of a
    fusable (Conv2D, MaxPooling2D) pair. A step's index > 0 means it needs an input gradient."""
    B = backend.get()
    if getattr(B, "conv2d_maxpool_forward", None) is None:
        return list(layers)
    steps, i = [], 0
    while i < len(layers):
        # never the model's last two layers: the last step must stay a layer (it may be asked
        # for logits)
        if i + 2 < len(layers) and _fusable(layers[i], layers[i + 1], dtype, len(steps) > 0, B):
            steps.append(ConvPool(layers[i], layers[i + 1]))
            i += 2
        else:
            steps.append(layers[i])
            i += 1
    return steps
