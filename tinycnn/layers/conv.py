"""Conv2D: 2-D convolution (cross-correlation) over NHWC images, bias and activation fused.

``y[n,i,j,o] = act(b[o] + sum_{p,q,c} x[n, i*sh+p-pt, j*sw+q-pl, c] * w[p,q,c,o])``;
the formula and its gradients are documented in :mod:`tinycnn.kernels.reference`.
"""

from .. import backend
from ..activations import resolve
from ..errors import ShapeError
from ..initializers import get as get_initializer
from ..initializers import initialize
from ..kernels import ELEMENTWISE
from ..kernels.checks import padding as check_padding
from ..kernels.checks import pair
from ..kernels.shapes import conv_geometry
from .base import Layer, positive_int


class Conv2D(Layer):
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

    has_activation = True

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = check_padding(padding)
        self.activation = resolve(activation)
        self.use_bias = bool(use_bias)
        get_initializer(kernel_initializer), get_initializer(bias_initializer)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

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
        C = input_shape[-1]
        KH, KW = self.kernel_size
        p = {"kernel": initialize(self.kernel_initializer, (KH, KW, C, self.filters), self.dtype)}
        if self.use_bias:
            p["bias"] = initialize(self.bias_initializer, (self.filters,), self.dtype)
        self._set_params(**p)

    def forward(self, x, training=False, logits=False):
        B = backend.get()
        act = "linear" if logits else self.activation
        fused = act if act in ELEMENTWISE else "linear"
        y, ctx = B.conv2d_forward(x, self.params["kernel"], self.params.get("bias"),
                                  self.strides, self.padding, fused)
        actx = None
        if fused != act:
            y, actx = B.activation_forward(y, act)
        self._ctx = (ctx, actx)
        return y

    def backward(self, dy, need_dx=True):
        B = backend.get()
        ctx, actx = self._ctx
        if actx is not None:
            dy = B.activation_backward(dy, actx)
        dx, dw, db = B.conv2d_backward(dy, ctx, need_dx=need_dx)
        self.grads["kernel"] = dw
        if self.use_bias:
            self.grads["bias"] = db
        self._ctx = None
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer}
