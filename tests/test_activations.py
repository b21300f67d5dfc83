"""Activations given by name follow Keras 3: ``activation='leaky_relu'`` has slope 0.2.

Checked by the definition on negative inputs, fused inside Conv2D and Dense, as an
``Activation`` layer, and through save/load; the ``LeakyReLU`` layer keeps its own slope.
"""

import numpy as np
import pytest

from tinycnn.activations import LEAKY_RELU_SLOPE
from tinycnn.layers import Activation, Conv2D, Dense, LeakyReLU
from tinycnn.models import Sequential, load_model


def _identity_dense():
    layer = Dense(3, activation="leaky_relu", use_bias=False)
    layer.build((3,))
    layer.set_weights([np.eye(3, dtype=np.float32)])
    return layer


def _identity_conv():
    layer = Conv2D(2, 1, activation="leaky_relu", use_bias=False)
    layer.build((2, 2, 2))
    layer.set_weights([np.eye(2, dtype=np.float32).reshape(1, 1, 2, 2)])
    return layer


@pytest.mark.parametrize("backend_name", ["numpy", "cpu"])
@pytest.mark.parametrize("make, shape", [(_identity_dense, (4, 3)), (_identity_conv, (4, 2, 2, 2))])
def test_named_leaky_relu_has_keras_slope_in_fused_layers(backend_name, make, shape):
    import tinycnn

    with tinycnn.use_backend(backend_name):
        layer = make()
        x = np.linspace(-2, 2, int(np.prod(shape)), dtype=np.float32).reshape(shape)
        y = np.asarray(tinycnn.backend.get().to_numpy(layer(x)))
    assert LEAKY_RELU_SLOPE == 0.2
    np.testing.assert_allclose(y, np.where(x > 0, x, 0.2 * x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("layer, slope", [(Activation("leaky_relu"), 0.2), (Activation("leaky_relu", alpha=0.1), 0.1),
                                          (LeakyReLU(), 0.3), (LeakyReLU(negative_slope=0.05), 0.05)])
def test_activation_layers_slope(layer, slope):
    x = np.array([[-3.0, -1.0, 0.0, 2.0]], dtype=np.float32)
    np.testing.assert_allclose(np.asarray(layer(x)), np.where(x > 0, x, slope * x), rtol=1e-6)


def test_named_slope_survives_save_and_load(tmp_path):
    model = Sequential([Dense(4, activation="leaky_relu", input_shape=(3,)), Activation("leaky_relu")])
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    path = tmp_path / "m.tcnn"
    model.save(path)
    np.testing.assert_array_equal(load_model(path).predict(x), model.predict(x))
