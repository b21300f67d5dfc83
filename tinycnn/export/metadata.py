"""What an ONNX file says about its model (``metadata_props``), under stable keys.

Only the keys below are written, from the model's architecture and the settings the pipeline
stores with it; nothing else of ``model.metadata`` is copied (its training history, its
timings), and no image, label or patient identifier is ever part of a model. Values are
strings (JSON for lists); keys are written sorted.

Always:

- ``tinycnn_version``: the tinycnn that wrote the file.
- ``input_layout``: ``NHWC`` for images (``ND`` for flat inputs); ``input_dtype``: ``float32``;
  ``input_shape``: one example's shape, JSON, e.g. ``[28, 28, 1]``.
- ``image_size`` (``[H, W]``, JSON), ``channels`` and ``color`` (``grayscale`` / ``rgb``): images.
- ``output_activation``: the activation of the output, ``sigmoid`` (one probability per output),
  ``softmax`` (a distribution over the classes), ``linear``, ...

When the model's metadata has them (``tinycnn train`` stores the first three):

- ``value_range``: the pixel range the model was trained on, JSON, e.g. ``[0.0, 1.0]``.
- ``task``: ``binary``, ``multiclass`` or ``multilabel``.
- ``class_names``: JSON list, in output order (a binary model's one output is the probability
  of the second name unless ``positive_class`` says otherwise).
- ``positive_class``: the class whose probability a binary output is.
- ``decision_threshold``: the stored operating point on that probability (read from the
  metadata's ``decision_threshold`` or ``threshold``).
"""

import json
import math
import numbers

from .. import __version__
from ..layers import Dropout, Flatten
from .errors import ExportError

_COLOR = {1: "grayscale", 3: "rgb"}


def _number(value, key):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ExportError(f"the model's metadata {key!r} must be a finite number, got {value!r}")
    return repr(float(value))


def _output_activation(last):
    if getattr(last, "output_activation", None):  # an Ensemble: its members' (a mean of probabilities)
        return str(last.output_activation)
    return str(getattr(last, "activation", "linear")) if last.has_activation else "linear"


def metadata_props(model):
    """The ``metadata_props`` of ``model``'s ONNX file, as a dict of strings sorted by key."""
    meta = model.metadata or {}
    shape = [int(d) for d in model.input_shape]
    # the activation that made the output: Dropout and Flatten after it do not change values
    last = next((l for l in reversed(model.layers) if not isinstance(l, (Dropout, Flatten))), model.layers[-1])
    props = {
        "tinycnn_version": __version__,
        "input_layout": "NHWC" if len(shape) == 3 else "ND",
        "input_dtype": "float32",
        "input_shape": json.dumps(shape),
        "output_activation": _output_activation(last),
    }
    if len(shape) == 3:
        props["image_size"] = json.dumps(shape[:2])
        props["channels"] = str(shape[2])
        if shape[2] in _COLOR:
            props["color"] = _COLOR[shape[2]]
    if "value_range" in meta:
        props["value_range"] = json.dumps([float(v) for v in meta["value_range"]])
    if meta.get("task"):
        props["task"] = str(meta["task"])
    if meta.get("class_names"):
        props["class_names"] = json.dumps([str(c) for c in meta["class_names"]])
    if meta.get("positive_class") is not None:
        props["positive_class"] = str(meta["positive_class"])
    for key in ("decision_threshold", "threshold"):  # the stored operating point, under either name
        if meta.get(key) is not None:
            props["decision_threshold"] = _number(meta[key], key)
            break
    return dict(sorted(props.items()))
