"""Export: tinycnn models for inference stacks that do not run tinycnn.

``model.export("m.onnx", format="onnx")`` (Keras 3's spelling) or ``tinycnn export --model
m.tcnn --out m.onnx`` writes an ONNX file that ONNX Runtime (servers, edge devices, PACS
plug-ins) runs as tinycnn's ``predict`` does: input ``images``, float32 (N, H, W, C) in the
value range the model was trained on; output ``predictions``. Needs ``pip install
"tinycnn[onnx]"`` (onnx, and onnxruntime for the check).

- :mod:`.build`: the model as an ONNX graph, the file; :mod:`.converters`: one converter per
  layer class (the registry, and how composite layers export); :mod:`.graph`: layouts and names;
  :mod:`.metadata`: the ``metadata_props``; :mod:`.verify`: ONNX Runtime against ``predict``.
"""

from .build import INPUT, OPSET, OUTPUT, export_onnx, to_onnx
from .cli import add_cli
from .converters import register
from .errors import ExportError, OnnxDependencyError

FORMATS = ("onnx",)

__all__ = ["export_model", "export_onnx", "to_onnx", "register", "ExportError", "OnnxDependencyError",
           "INPUT", "OUTPUT", "OPSET", "FORMATS", "add_cli"]


def export_model(model, filepath, format="onnx"):
    """Write ``model`` for inference elsewhere, in ``format`` (``'onnx'``)."""
    if format not in FORMATS:
        raise ExportError(f"format must be one of {list(FORMATS)}, got {format!r}")
    export_onnx(model, filepath)
