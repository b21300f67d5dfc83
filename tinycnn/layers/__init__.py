"""Keras-shaped layers. Each family lives in its own short file."""

from .base import Layer
from .composite import Composite
from .conv import Conv2D
from .core import Activation, Dense, Dropout, Flatten, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .ensemble import Ensemble
from .normalization import BatchNormalization
from .pooling import GlobalAveragePooling2D, MaxPooling2D
from .residual import ResidualBlock

# Keras aliases
Convolution2D = Conv2D
MaxPool2D = MaxPooling2D
GlobalAvgPool2D = GlobalAveragePooling2D

__all__ = [
    "Layer", "Conv2D", "Dense", "Flatten", "Dropout", "MaxPooling2D", "GlobalAveragePooling2D",
    "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "Sigmoid", "Softmax", "Tanh",
    "Composite", "ResidualBlock", "Ensemble",
    "Convolution2D", "MaxPool2D", "GlobalAvgPool2D",
]

_REGISTRY = {name: globals()[name] for name in __all__ if name not in ("Layer", "Composite")}


def get(class_name):
    """The layer class for a name from a saved model's architecture."""
    from ..errors import ModelFileError

    try:
        return _REGISTRY[class_name]
    except KeyError:
        raise ModelFileError(f"unknown layer class {class_name!r} in model architecture") from None
