"""Per-layer converters: each turns one tinycnn layer into ONNX nodes.

A converter is ``f(g, layer, x) -> y``: ``g`` the :class:`~tinycnn.export.graph.Graph`,
``layer`` a built tinycnn layer, ``x`` and ``y`` :class:`~tinycnn.export.graph.Tensor` values.
It is registered for one exact layer class with :func:`register`, so a subclass that changes
what a layer computes is refused rather than exported wrongly.

**Composite layers** (a layer owning sublayers, e.g. a residual block) need no converter of
their own if they describe their graph: a method ``sublayer_graph()`` returning a sequence of
steps ``(output, op, inputs)``, where ``op`` is a sublayer, ``"add"`` or an activation name,
``inputs`` a name or a list of names, ``"input"`` the composite's input, and the last step's
output the composite's output. A residual block with a projection shortcut::

    def sublayer_graph(self):
        return [("a", self.conv1, "input"), ("b", self.bn1, "a"), ("c", self.conv2, "b"),
                ("s", self.projection, "input"), ("sum", "add", ["c", "s"]), ("out", "relu", "sum")]

Otherwise :func:`register` a converter that calls :func:`convert` on the sublayers and
:func:`add` on the branches.
"""

import numpy as np

from ..activations import default_alpha
from ..kernels import ACTIVATIONS
from ..kernels.shapes import conv_geometry
from ..layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Ensemble,
    Flatten,
    GlobalAveragePooling2D,
    Layer,
    LeakyReLU,
    MaxPooling2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from .errors import ExportError
from .graph import Tensor

_CONVERTERS = {}
_ELEMENTWISE_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


def register(*layer_classes):
    """Decorator: ``@register(MyLayer)`` makes ``f(g, layer, x) -> y`` the converter of MyLayer."""
    def deco(fn):
        for cls in layer_classes:
            _CONVERTERS[cls] = fn
        return fn
    return deco


def convert(g, layer, x):
    """Add ``layer`` applied to ``x`` to the graph; return its output.

    Raises
    ------
    ExportError
        If the layer's class has no converter and does not describe a sublayer graph.
    """
    fn = _CONVERTERS.get(type(layer))
    if fn is None and callable(getattr(layer, "sublayer_graph", None)):
        fn = _composite
    if fn is None:
        known = ", ".join(sorted(c.__name__ for c in _CONVERTERS))
        raise ExportError(
            f"layer {layer.name!r} ({type(layer).__name__}) cannot be exported to ONNX: no converter "
            f"for {type(layer).__name__} (exportable: {known}; a composite layer can describe itself "
            "with sublayer_graph(), see tinycnn.export.converters)"
        )
    outer, g.scope = g.scope, f"{g.scope}{layer.name}/"
    try:
        return fn(g, layer, x)
    finally:
        g.scope = outer


def weights(layer):
    """A layer's parameters and state (e.g. batch-norm moving statistics) by name, as NumPy arrays."""
    names = list(layer.params) + list(getattr(layer, "state", {}))
    return dict(zip(names, layer.get_weights(), strict=True))


# ------------------------------------------------------------------ building blocks
def activation(g, x, kind, alpha=0.0):
    """``kind`` (a tinycnn activation name) applied to ``x``; softmax over tinycnn's last axis."""
    if kind == "linear":
        return x
    if kind == "leaky_relu":
        y = g.node("LeakyRelu", [x.name], kind, alpha=float(alpha))
    elif kind == "softmax":
        y = g.node("Softmax", [x.name], kind, axis=x.channel_axis)
    elif kind in _ELEMENTWISE_OPS:
        y = g.node(_ELEMENTWISE_OPS[kind], [x.name], kind)
    else:
        raise ExportError(f"activation {kind!r} has no ONNX converter")
    return Tensor(y, x.layout, x.shape)


def add(g, xs):
    """Elementwise sum of tensors of one shape (a residual merge)."""
    if len(xs) < 2 or any(t.shape != xs[0].shape for t in xs):
        raise ExportError(f"'add' needs two or more tensors of one shape, got {[t.shape for t in xs]}")
    y = xs[0]
    for t in xs[1:]:
        t = g.same_layout(t, y)
        y = Tensor(g.node("Add", [y.name, t.name], "add"), y.layout, y.shape)
    return y


def _pads(layer, window):
    H, W = layer.input_shape[:2]
    _, _, (pt, pb, pl, pr) = conv_geometry(H, W, *window, layer.strides, layer.padding)
    return [pt, pl, pb, pr]  # ONNX: all begins, then all ends


# ------------------------------------------------------------------ the layers
@register(Conv2D)
def _conv2d(g, layer, x):
    x, w = g.nchw(x), weights(layer)
    inputs = [x.name, g.weight("kernel", w["kernel"].transpose(3, 2, 0, 1))]  # (KH,KW,C,F) -> (F,C,KH,KW)
    if "bias" in w:
        inputs.append(g.weight("bias", w["bias"]))
    y = g.node("Conv", inputs, "conv", kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
               pads=_pads(layer, layer.kernel_size))
    return activation(g, Tensor(y, "NCHW", layer.output_shape), layer.activation, getattr(layer, "alpha", 0.0))


@register(MaxPooling2D)
def _maxpool(g, layer, x):
    # ONNX pads a max pool with values that never win, as tinycnn does (-inf)
    y = g.node("MaxPool", [g.nchw(x).name], "maxpool", kernel_shape=list(layer.pool_size),
               strides=list(layer.strides), pads=_pads(layer, layer.pool_size))
    return Tensor(y, "NCHW", layer.output_shape)


@register(GlobalAveragePooling2D)
def _global_avgpool(g, layer, x):
    y = g.node("GlobalAveragePool", [g.nchw(x).name], "global_avgpool")  # (N, C, 1, 1)
    return Tensor(g.node("Flatten", [y], "flatten", axis=1), "ND", layer.output_shape)


@register(Flatten)
def _flatten(g, layer, x):
    if x.layout == "ND":
        return x
    # tinycnn flattens NHWC row-major: Dense rows follow (h, w, c), so flatten in NHWC
    return Tensor(g.node("Flatten", [g.nhwc(x).name], "flatten", axis=1), "ND", layer.output_shape)


@register(Dense)
def _dense(g, layer, x):
    w = weights(layer)
    inputs = [x.name, g.weight("kernel", w["kernel"])]
    if "bias" in w:
        inputs.append(g.weight("bias", w["bias"]))
    y = Tensor(g.node("Gemm", inputs, "dense"), "ND", layer.output_shape)
    return activation(g, y, layer.activation, getattr(layer, "alpha", 0.0))


@register(BatchNormalization)
def _batchnorm(g, layer, x):
    # inference form: the moving statistics, y = gamma * (x - mean) / sqrt(var + eps) + beta
    x, w = (g.nchw(x) if len(x.shape) == 3 else x), weights(layer)
    names = [g.weight(k, w[k]) for k in ("gamma", "beta", "moving_mean", "moving_variance")]
    y = g.node("BatchNormalization", [x.name, *names], "batchnorm", epsilon=layer.epsilon)
    return Tensor(y, x.layout, x.shape)


@register(Dropout)
def _dropout(g, layer, x):
    return x  # inference: identity


@register(Activation, ReLU, LeakyReLU, Sigmoid, Softmax, Tanh)
def _activation(g, layer, x):
    return activation(g, x, layer.activation, layer.alpha)


@register(Ensemble)
def _ensemble(g, layer, x):
    # as inference computes it: the mean over the members and the test-time flipped views
    views = [x] + [_flip(g, x, f) for f in layer.flips]
    outs = []
    for member in layer.members:
        for v in views:
            for sub in member.layers:
                v = convert(g, sub, v)
            outs.append(v)
    total = add(g, outs) if len(outs) > 1 else outs[0]
    scale = g.weight("mean_scale", np.array(1.0 / len(outs)))
    return Tensor(g.node("Mul", [total.name, scale], "mean"), total.layout, total.shape)


def _flip(g, x, which):
    """``x`` mirrored left-right ('horizontal') or top-bottom ('vertical'): a Slice with step -1."""
    axis = {"NHWC": {"horizontal": 2, "vertical": 1}, "NCHW": {"horizontal": 3, "vertical": 2}}[x.layout][which]
    ints = []
    for name, value in (("starts", -1), ("ends", -(2**63)), ("axes", axis), ("steps", -1)):
        ints.append(g.fresh(f"flip_{which}_{name}"))
        g.initializers.append(g.numpy_helper.from_array(np.array([value], np.int64), ints[-1]))
    return Tensor(g.node("Slice", [x.name, *ints], f"flip_{which}"), x.layout, x.shape)


def _composite(g, layer, x):
    values, out = {"input": x}, None
    for step in layer.sublayer_graph():
        out, op, inputs = step
        names = [inputs] if isinstance(inputs, str) else list(inputs)
        missing = [n for n in names if n not in values]
        if missing:
            raise ExportError(f"layer {layer.name!r}: step {out!r} reads {missing}, which no earlier step made")
        args = [values[n] for n in names]
        if isinstance(op, Layer) and len(args) == 1:
            values[out] = convert(g, op, args[0])
        elif op == "add":
            values[out] = add(g, args)
        elif isinstance(op, str) and op in ACTIVATIONS and len(args) == 1:
            values[out] = activation(g, args[0], op, default_alpha(op))
        else:
            raise ExportError(f"layer {layer.name!r}: step {out!r} has an op tinycnn cannot export: {op!r}")
    if out is None:
        raise ExportError(f"layer {layer.name!r}: sublayer_graph() describes no step")
    return values[out]
