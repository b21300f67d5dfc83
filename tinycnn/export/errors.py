"""The export's own error types (tinycnn errors, so the CLI prints them as one line)."""

from ..errors import TinyCNNError

INSTALL_HINT = 'pip install "tinycnn[onnx]"'


class ExportError(TinyCNNError, ValueError):
    """The model cannot be exported: a layer or an option with no ONNX form, an unbuilt model."""


class OnnxDependencyError(TinyCNNError, ImportError):
    """The ``onnx`` (or, for the check, ``onnxruntime``) package is not installed."""


def import_onnx():
    """Import ``onnx``, or raise an :class:`OnnxDependencyError` saying how to install it."""
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError as e:
        raise OnnxDependencyError(f"exporting to ONNX needs the onnx package: {INSTALL_HINT}") from e
    return onnx


def import_onnxruntime():
    """Import ``onnxruntime``, or raise an :class:`OnnxDependencyError` saying how to install it."""
    try:
        import onnxruntime
    except ImportError as e:
        raise OnnxDependencyError(f"checking an ONNX file needs onnxruntime: {INSTALL_HINT}") from e
    return onnxruntime
