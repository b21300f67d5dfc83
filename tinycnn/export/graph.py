"""The ONNX graph under construction: tensors with their layout, nodes, weights.

tinycnn works in NHWC; ONNX's Conv, MaxPool and BatchNormalization work in NCHW. Each tensor
of the graph therefore carries its layout (``'NHWC'``, ``'NCHW'``, or ``'ND'`` for flat
(N, D) tensors) and its tinycnn shape (one example, batch axis excluded, as tinycnn states
it: (H, W, C) or (D,)). A converter asks for the layout it needs (:meth:`Graph.nchw`,
:meth:`Graph.nhwc`) and a Transpose is added only where the layout changes (once per
tensor). Every name in the graph comes from the model's layer names (which its file keeps),
so exporting one model twice, or once more after saving and loading it, gives the same bytes.
"""

import re
from dataclasses import dataclass

import numpy as np

_TO_NCHW, _TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


@dataclass(frozen=True)
class Tensor:
    """A value of the graph: its ONNX name, its layout and its tinycnn shape (no batch axis)."""

    name: str
    layout: str
    shape: tuple

    @property
    def channel_axis(self):
        """The ONNX axis of tinycnn's last (channel or feature) axis."""
        return 1 if self.layout == "NCHW" else len(self.shape)


class Graph:
    """Collects nodes and initializers; knows how to change a tensor's layout.

    Parameters
    ----------
    helper, numpy_helper : modules
        ``onnx.helper`` and ``onnx.numpy_helper`` (imported by the caller, so that this module
        loads without onnx).
    """

    def __init__(self, helper, numpy_helper):
        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes = []
        self.initializers = []
        self._names = set()
        self._layouts = {}  # (tensor name, layout) -> Tensor already made for it
        self.scope = ""

    def fresh(self, name):
        """A graph-unique name: ``scope/name`` (with a suffix if already taken)."""
        base = re.sub(r"[^A-Za-z0-9_./-]", "_", f"{self.scope}{name}")
        out, k = base, 1
        while out in self._names:
            out, k = f"{base}_{k}", k + 1
        self._names.add(out)
        return out

    def weight(self, name, array):
        """Add a float32 initializer; return its name."""
        name = self.fresh(name)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def node(self, op, inputs, name, **attrs):
        """Add one node with one output; return the output's name."""
        out = self.fresh(name)
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    # -- layouts ------------------------------------------------------------------
    def _relayout(self, t, layout, perm):
        if t.layout == layout or len(t.shape) != 3:
            return t
        key = (t.name, layout)
        if key not in self._layouts:
            out = self.node("Transpose", [t.name], f"{t.name}/to_{layout.lower()}", perm=list(perm))
            self._layouts[key] = Tensor(out, layout, t.shape)
        return self._layouts[key]

    def nchw(self, t):
        """``t`` as an NCHW tensor (images only)."""
        return self._relayout(t, "NCHW", _TO_NCHW)

    def nhwc(self, t):
        """``t`` as an NHWC tensor (images only), tinycnn's own layout."""
        return self._relayout(t, "NHWC", _TO_NHWC)

    def same_layout(self, t, like):
        """``t`` in the layout of ``like`` (for elementwise merges such as Add)."""
        return self.nchw(t) if like.layout == "NCHW" else self.nhwc(t)
