"""The shared part of Dense and Conv2D: ``y = act(op(x, kernel) + bias)``.

Both layers own a ``kernel`` and an optional ``bias``, call one backend kernel that adds the
bias and applies the elementwise activations (relu, sigmoid, tanh) in the same pass, and run
any other activation (softmax, leaky relu) as a separate backend op after it. Only ``op`` and
the weight shapes differ, so a subclass names its backend functions and shapes; everything
else is here once.
"""

from .. import backend
from ..activations import default_alpha, resolve
from ..initializers import get as get_initializer
from ..initializers import initialize
from ..kernels import ELEMENTWISE
from .base import Layer


class Affine(Layer):
    """Base class of layers computing ``y = act(op(x, kernel) + bias)``.

    A subclass implements :meth:`kernel_forward` / :meth:`kernel_backward` (the backend calls of
    ``op``, fused with bias and an elementwise activation) and calls :meth:`build_weights` from
    ``build``. ``forward(x, training, logits=True)`` returns ``op(x, kernel) + bias`` without
    the activation (the logits).
    """

    has_activation = True

    def __init__(self, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.activation = resolve(activation)
        self.alpha = default_alpha(self.activation)  # leaky_relu's slope when named (Keras 3: 0.2)
        self.use_bias = bool(use_bias)
        get_initializer(kernel_initializer), get_initializer(bias_initializer)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def build_weights(self, kernel_shape, units):
        """Create ``kernel`` of ``kernel_shape`` and, with ``use_bias``, ``bias`` of (units,)."""
        p = {"kernel": initialize(self.kernel_initializer, kernel_shape, self.dtype)}
        if self.use_bias:
            p["bias"] = initialize(self.bias_initializer, (units,), self.dtype)
        self._set_params(**p)

    def kernel_forward(self, B, x, activation):
        """``(y, ctx)`` of backend ``B``'s fused kernel with an activation from ELEMENTWISE."""
        raise NotImplementedError(f"{type(self).__name__} must implement kernel_forward")

    def kernel_backward(self, B, dy, ctx, need_dx):
        """``(dx, dkernel, dbias)`` of :meth:`kernel_forward`."""
        raise NotImplementedError(f"{type(self).__name__} must implement kernel_backward")

    def forward(self, x, training=False, logits=False):
        B = backend.get()
        act = "linear" if logits else self.activation
        fused = act if act in ELEMENTWISE else "linear"
        y, ctx = self.kernel_forward(B, x, fused)
        actx = None
        if fused != act:
            y, actx = B.activation_forward(y, act, self.alpha)
        self._ctx = (ctx, actx)
        return y

    def backward(self, dy, need_dx=True):
        B = backend.get()
        ctx, actx = self._ctx
        if actx is not None:
            dy = B.activation_backward(dy, actx)
        dx, dw, db = self.kernel_backward(B, dy, ctx, need_dx)
        self.grads["kernel"] = dw
        if self.use_bias:
            self.grads["bias"] = db
        self._ctx = None
        return dx

    def get_config(self):
        return {**super().get_config(), "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer}
