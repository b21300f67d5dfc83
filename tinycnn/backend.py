"""The one place that chooses the compute backend.

Backends are modules of :mod:`tinycnn.kernels` that implement the same contract
(:data:`tinycnn.kernels.CONTRACT`): ``'numpy'`` (the readable reference), ``'cpu'`` (Numba,
the default) and ``'cuda'`` (numba-cuda, imported only when chosen). Choose with
:func:`set_backend`, the :func:`use_backend` context manager, or the ``TINYCNN_BACKEND``
environment variable. Layers never import a backend themselves: they call :func:`get`.
"""

import contextlib
import importlib
import os

from .errors import BackendError, ConfigError

_MODULES = {
    "numpy": "tinycnn.kernels.reference",
    "cpu": "tinycnn.kernels.cpu",
    "cuda": "tinycnn.kernels.cuda",
}
_ALIASES = {"reference": "numpy", "numba": "cpu", "gpu": "cuda"}
DEFAULT = "cpu"

_state = {"name": None, "module": None}


def available():
    """Names of the known backends (importable or not)."""
    return tuple(_MODULES)


def load(name):
    """The backend module for ``name`` ('numpy', 'cpu', 'cuda' or an alias), imported and
    checked as :func:`set_backend` does, without making it the active backend.

    Raises
    ------
    ConfigError
        For an unknown name.
    BackendError
        When the backend cannot run here.
    """
    return _load(name)[1]


def _load(name):
    if not isinstance(name, str):
        raise ConfigError(f"backend must be a string, one of {available()}, got {name!r}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _MODULES:
        raise ConfigError(f"unknown backend {name!r}; choose one of {available()}")
    try:
        module = importlib.import_module(_MODULES[key])
    except BackendError:
        raise
    except ImportError as e:
        hint = " (install it with `pip install tinycnn[cuda]`)" if key == "cuda" else ""
        raise BackendError(f"backend {key!r} cannot be imported{hint}: {e}") from e
    check = getattr(module, "ensure_available", None)
    if check is not None:
        check()
    return key, module


def set_backend(name):
    """Make ``name`` ('numpy', 'cpu' or 'cuda') the active backend.

    Raises
    ------
    ConfigError
        For an unknown name.
    BackendError
        When the backend cannot run here (e.g. 'cuda' without a usable GPU); there is no
        silent fallback.
    """
    key, module = _load(name)
    _state["name"], _state["module"] = key, module
    return key


def get():
    """The active backend module (initialised from ``TINYCNN_BACKEND``, else 'cpu')."""
    if _state["module"] is None:
        set_backend(os.environ.get("TINYCNN_BACKEND", DEFAULT))
    return _state["module"]


def get_backend():
    """The name of the active backend."""
    get()
    return _state["name"]


@contextlib.contextmanager
def use_backend(name):
    """Run a block with another backend, then restore the previous one.

    >>> with use_backend('numpy'):
    ...     model.fit(x, y)
    """
    prev = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(prev)
