"""Activation names accepted by layers (Keras spelling)."""

from .errors import ConfigError
from .kernels import ACTIVATIONS

#: The slope of ``activation='leaky_relu'`` given by name, as in Keras 3
#: (``keras.activations.leaky_relu``'s default ``negative_slope``); the ``LeakyReLU`` layer
#: takes its own (Keras' layer default is 0.3).
LEAKY_RELU_SLOPE = 0.2

ALIASES = {None: "linear", "linear": "linear", "relu": "relu", "sigmoid": "sigmoid",
           "tanh": "tanh", "softmax": "softmax", "leaky_relu": "leaky_relu"}


def resolve(name):
    """Return the canonical name of an activation (``None`` means linear).

    Raises
    ------
    ConfigError
        For an unknown name (the message lists the known ones).
    """
    if isinstance(name, str) or name is None:
        key = ALIASES.get(name if name is None else name.lower())
        if key in ACTIVATIONS:
            return key
    raise ConfigError(
        f"unknown activation {name!r}; choose one of {sorted(k for k in ALIASES if k)} or None"
    )


def default_alpha(name):
    """The negative slope an activation named ``name`` runs with when none is given."""
    return LEAKY_RELU_SLOPE if name == "leaky_relu" else 0.0
