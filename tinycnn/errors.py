"""tinycnn's exception types.

Every error raised for bad input at the public API is one of these. Each subclasses the
built-in a Python user already catches (``ValueError`` or ``TypeError``), so
``except ValueError`` keeps working, and each message names the argument and what was expected.
"""


class TinyCNNError(Exception):
    """Base class of every error tinycnn raises on purpose."""


class ShapeError(TinyCNNError, ValueError):
    """An array has the wrong rank or shape (for the layer, the model or the loss)."""


class DTypeError(TinyCNNError, TypeError):
    """An array has a dtype tinycnn cannot work in (e.g. strings, objects, complex)."""


class InvalidValueError(TinyCNNError, ValueError):
    """Values are out of range: NaN or inf in inputs, labels outside the classes, empty arrays."""


class ConfigError(TinyCNNError, ValueError):
    """An argument is invalid: unknown name, negative size, fit before compile, bad option."""


class DataError(TinyCNNError, ValueError):
    """A data file or folder cannot be used: missing, corrupt, truncated, mixed image sizes.

    The message names the file.
    """


class ModelFileError(TinyCNNError, ValueError):
    """A model file is unreadable, truncated, tampered with or of an unknown format version."""


class BackendError(TinyCNNError, RuntimeError):
    """A backend cannot be used here (e.g. 'cuda' without a usable GPU)."""


class TrainingError(TinyCNNError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN or inf); the last good weights are kept."""
