"""Pooling layers: MaxPooling2D and GlobalAveragePooling2D (NHWC)."""

from .. import backend
from ..errors import ShapeError
from ..kernels.checks import padding as check_padding
from ..kernels.checks import pair
from ..kernels.shapes import conv_geometry
from .base import Layer


class MaxPooling2D(Layer):
    """Max pooling: ``y[n,i,j,c] = max_{p,q} x[n, i*sh+p-pt, j*sw+q-pl, c]``.

    Parameters
    ----------
    pool_size : int or (PH, PW), default 2
    strides : int, pair or None (default: the pool size)
    padding : {'valid', 'same'}

    The backward pass sends each output's gradient to exactly one input: the first maximum of
    its window in row-major order (ties do not split or duplicate the gradient).
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, "strides")
        self.padding = check_padding(padding)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"{self.name}: expects (H, W, C) inputs, got {tuple(input_shape)}")
        H, W, C = input_shape
        OH, OW, _ = conv_geometry(H, W, *self.pool_size, self.strides, self.padding)
        if OH < 1 or OW < 1:
            raise ShapeError(f"{self.name}: input {H}x{W} is smaller than the pool {self.pool_size}")
        return (OH, OW, C)

    def forward(self, x, training=False):
        y, self._ctx = backend.get().maxpool2d_forward(x, self.pool_size, self.strides, self.padding)
        return y

    def backward(self, dy, need_dx=True):
        dx = backend.get().maxpool2d_backward(dy, self._ctx)
        self._ctx = None
        return dx

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding}


class GlobalAveragePooling2D(Layer):
    """``y[n,c] = mean_{i,j} x[n,i,j,c]``: (N, H, W, C) -> (N, C)."""

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"{self.name}: expects (H, W, C) inputs, got {tuple(input_shape)}")
        return (input_shape[-1],)

    def forward(self, x, training=False):
        y, self._ctx = backend.get().global_avgpool_forward(x)
        return y

    def backward(self, dy, need_dx=True):
        dx = backend.get().global_avgpool_backward(dy, self._ctx)
        self._ctx = None
        return dx
