"""tinycnn: a small, fast, honest CNN engine for medical-image diagnosis."""

__version__ = "0.1.0"

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
