"""BatchNormalization over the channel (last) axis."""

import numpy as np

from .. import backend
from ..errors import ConfigError
from .base import Layer


class BatchNormalization(Layer):
    """``y = gamma * (x - mean) / sqrt(var + epsilon) + beta`` per channel.

    Training uses the batch statistics and updates the moving ones
    (``moving = momentum * moving + (1 - momentum) * batch``, Keras' convention);
    inference uses the moving statistics. The moving statistics are state, not trained
    parameters: they are saved with the weights but get no gradient.

    ``synchronized=True`` (Keras' name) asks for the statistics of the global batch when a
    data-parallel run trains one replica per process: whoever runs the processes sets
    ``layer.allreduce`` to a function that sums a list of float64 NumPy arrays over them (the
    protocol is in :mod:`tinycnn.kernels`, ``batchnorm_forward``). Without ``allreduce`` (one
    process) the layer is an ordinary batch normalisation. Setting ``allreduce`` is what
    synchronises a layer: :mod:`tinycnn.distributed` sets it on every batch-norm layer of an
    MPI fit, whatever ``synchronized`` says, so that a model means the same at any number of
    processes.
    """

    def __init__(self, momentum=0.99, epsilon=1e-3, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum!r}")
        if not epsilon > 0:
            raise ConfigError(f"epsilon must be > 0, got {epsilon!r}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.synchronized = bool(synchronized)
        #: ``f(arrays) -> arrays`` summing over the processes of a data-parallel run, or None
        self.allreduce = None
        self.state = {}

    def build(self, input_shape):
        super().build(input_shape)
        C = input_shape[-1]
        self._set_params(gamma=np.ones(C), beta=np.zeros(C))
        self.set_state(moving_mean=np.zeros(C), moving_variance=np.ones(C))

    def set_state(self, **arrays):
        B = backend.get()
        for k, v in arrays.items():
            self.state[k] = B.asarray(np.array(v, dtype=self.dtype, order="C", copy=True))  # updated in place

    def forward(self, x, training=False):
        B = backend.get()
        args = (x, self.params["gamma"], self.params["beta"], self.state["moving_mean"],
                self.state["moving_variance"], self.momentum, self.epsilon, training)
        if training and self.allreduce is not None:  # i14: set by a data-parallel runner
            y, self._ctx = B.batchnorm_forward(*args, allreduce=self.allreduce)
        else:
            y, self._ctx = B.batchnorm_forward(*args)
        return y

    def backward(self, dy, need_dx=True):
        dx, dgamma, dbeta = backend.get().batchnorm_backward(dy, self._ctx)
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        self._ctx = None
        return dx

    def get_weights(self):
        B = backend.get()
        return super().get_weights() + [np.array(B.to_numpy(self.state[k]))
                                        for k in ("moving_mean", "moving_variance")]

    def set_weights(self, weights):
        if len(weights) != 4:
            from ..errors import ShapeError

            raise ShapeError(f"layer {self.name!r} expects 4 weight arrays, got {len(weights)}")
        super().set_weights(weights[:2])
        self.set_state(moving_mean=weights[2], moving_variance=weights[3])

    def get_config(self):
        cfg = {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}
        if self.synchronized:  # absent when False: configs written before the option stay equal
            cfg["synchronized"] = True
        return cfg
