"""Conv2D: 2-D convolution (cross-correlation) over NHWC images, bias and activation fused.

``y[n,i,j,o] = act(b[o] + sum_{p,q,c} x[n, i*sh+p-pt, j*sw+q-pl, c] * w[p,q,c,o])``;
the formula and its gradients are documented in :mod:`tinycnn.kernels.reference`.
"""

from ..errors import ShapeError
from ..kernels.checks import padding as check_padding
from ..kernels.checks import pair
from ..kernels.shapes import conv_geometry
from .affine import Affine
from .base import positive_int


class Conv2D(Affine):
    """2-D convolution layer (Keras signature).

    Parameters
    ----------
    filters : int
        F, the number of output channels.
    kernel_size : int or (KH, KW)
    strides : int or (sh, sw), default 1
    padding : {'valid', 'same'}
    activation : str or None
    use_bias : bool
    kernel_initializer, bias_initializer : str
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer, **kwargs)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = check_padding(padding)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(
                f"{self.name}: expects images of shape (H, W, C), got input shape {tuple(input_shape)}"
            )
        H, W, _ = input_shape
        OH, OW, _ = conv_geometry(H, W, *self.kernel_size, self.strides, self.padding)
        if OH < 1 or OW < 1:
            raise ShapeError(
                f"{self.name}: input {H}x{W} is smaller than the kernel {self.kernel_size} "
                f"with padding {self.padding!r}"
            )
        return (OH, OW, self.filters)

    def build(self, input_shape):
        super().build(input_shape)
        self.build_weights(self.kernel_size + (input_shape[-1], self.filters), self.filters)

    def kernel_forward(self, B, x, activation):
        return B.conv2d_forward(x, self.params["kernel"], self.params.get("bias"), self.strides,
                                self.padding, activation)

    def kernel_backward(self, B, dy, ctx, need_dx):
        return B.conv2d_backward(dy, ctx, need_dx=need_dx)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding}
