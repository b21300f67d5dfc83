"""tinycnn: a small, fast, honest CNN engine for medical-image diagnosis.

Keras-shaped: ``from tinycnn.models import Sequential``, ``from tinycnn.layers import Conv2D``.
The compute backend is chosen in one place, :mod:`tinycnn.backend`.
"""

__version__ = "0.1.0"

from . import backend, callbacks, layers, losses, models, optimizers  # noqa: F401
from .backend import get_backend, set_backend, use_backend  # noqa: F401
from .errors import (  # noqa: F401
    BackendError,
    ConfigError,
    DataError,
    DTypeError,
    InvalidValueError,
    ModelFileError,
    ShapeError,
    TinyCNNError,
    TrainingError,
)
from .models import Sequential, load_model  # noqa: F401
from .random import set_random_seed  # noqa: F401

_LAZY = {"metrics", "data", "explain", "privacy", "report", "pipeline", "gradcheck", "io", "export"}


def __getattr__(name):
    # the heavier submodules (Pillow, SciPy, pydicom, matplotlib) load on first use
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'tinycnn' has no attribute {name!r}")
