"""Dense, Flatten, Dropout and the activation layers."""

import numpy as np

from .. import backend, distributed
from ..activations import default_alpha, resolve
from ..errors import ConfigError, ShapeError
from ..random import generator
from .affine import Affine
from .base import Layer, positive_int


class Dense(Affine):
    """Fully connected layer: ``y = act(x @ w + b)``, x (N, D), w (D, U), b (U,)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer, **kwargs)
        self.units = positive_int(units, "units")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ShapeError(
                f"{self.name}: Dense expects flat inputs (D,), got {tuple(input_shape)}; "
                "add a Flatten() or GlobalAveragePooling2D() layer before it"
            )
        return (self.units,)

    def build(self, input_shape):
        super().build(input_shape)
        self.build_weights((input_shape[0], self.units), self.units)

    def kernel_forward(self, B, x, activation):
        return B.dense_forward(x, self.params["kernel"], self.params.get("bias"), activation)

    def kernel_backward(self, B, dy, ctx, need_dx):
        return B.dense_backward(dy, ctx, need_dx=need_dx)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C), row-major (so w rows follow NHWC order)."""

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self._ctx = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx=True):
        return dy.reshape(self._ctx)


class Dropout(Layer):
    """Inverted dropout: in training zero each value with probability ``rate`` and scale the rest
    by ``1 / (1 - rate)``; identity in inference.

    Masks come from tinycnn's shared generator (:func:`tinycnn.random.generator`), or, with
    ``seed``, from the layer's own generator seeded with it (Keras' meaning): the same seed
    gives the same sequence of masks whatever else draws random numbers. The seed is saved in
    the config, the generator's state in training checkpoints.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ConfigError(f"Dropout rate must be a float in [0, 1), got {rate!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ConfigError(f"Dropout seed must be a non-negative int or None, got {seed!r}")
        self.rate = float(rate)
        self.seed = None if seed is None else int(seed)
        self._rng = None if seed is None else np.random.default_rng(self.seed)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._ctx = None
            return x
        rng = generator() if self._rng is None else self._rng
        seed = int(rng.integers(2**63 - 1))
        if distributed.fit_session() is not None:  # i14: each MPI rank masks its samples differently
            seed = distributed.fit_session().rank_seed(seed)
        y, self._ctx = backend.get().dropout_forward(x, self.rate, seed)
        return y

    def backward(self, dy, need_dx=True):
        if self._ctx is None:
            return dy
        dx = backend.get().dropout_backward(dy, self._ctx)
        self._ctx = None
        return dx

    def get_random_state(self):
        return None if self._rng is None else self._rng.bit_generator.state

    def set_random_state(self, state):
        if self._rng is not None and state is not None:
            self._rng.bit_generator.state = state

    def get_config(self):
        cfg = {**super().get_config(), "rate": self.rate}
        if self.seed is not None:  # absent when unset: configs written before seeds stay equal
            cfg["seed"] = self.seed
        return cfg


class Activation(Layer):
    """Apply an activation by name: ``Activation('relu')``."""

    has_activation = True

    def __init__(self, activation, **kwargs):
        alpha = kwargs.pop("alpha", None)
        super().__init__(**kwargs)
        self.activation = resolve(activation)
        self.alpha = default_alpha(self.activation) if alpha is None else float(alpha)

    def forward(self, x, training=False, logits=False):
        if logits or self.activation == "linear":
            self._ctx = None
            return x
        y, self._ctx = backend.get().activation_forward(x, self.activation, self.alpha)
        return y

    def backward(self, dy, need_dx=True):
        if self._ctx is None:
            return dy
        dx = backend.get().activation_backward(dy, self._ctx)
        self._ctx = None
        return dx

    def get_config(self):
        cfg = {**super().get_config(), "activation": self.activation}
        if self.activation == "leaky_relu":
            cfg["alpha"] = self.alpha
        return cfg


class ReLU(Activation):
    def __init__(self, **kwargs):
        super().__init__("relu", **kwargs)

    def get_config(self):
        return {k: v for k, v in super().get_config().items() if k != "activation"}


class LeakyReLU(Activation):
    """``y = x if x > 0 else alpha * x`` (Keras 3 calls alpha ``negative_slope``; both work)."""

    def __init__(self, negative_slope=0.3, alpha=None, **kwargs):
        slope = negative_slope if alpha is None else alpha
        if not isinstance(slope, (int, float)) or isinstance(slope, bool) or slope < 0:
            raise ConfigError(f"LeakyReLU negative_slope must be a float >= 0, got {slope!r}")
        super().__init__("leaky_relu", alpha=float(slope), **kwargs)

    def get_config(self):
        cfg = {k: v for k, v in super().get_config().items() if k not in ("activation", "alpha")}
        return {**cfg, "negative_slope": self.alpha}


class Sigmoid(Activation):
    def __init__(self, **kwargs):
        super().__init__("sigmoid", **kwargs)

    def get_config(self):
        return {k: v for k, v in super().get_config().items() if k != "activation"}


class Tanh(Activation):
    def __init__(self, **kwargs):
        super().__init__("tanh", **kwargs)

    def get_config(self):
        return {k: v for k, v in super().get_config().items() if k != "activation"}


class Softmax(Activation):
    """Softmax over the last axis."""

    def __init__(self, **kwargs):
        super().__init__("softmax", **kwargs)

    def get_config(self):
        return {k: v for k, v in super().get_config().items() if k != "activation"}
