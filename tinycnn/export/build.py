"""A tinycnn model as an ONNX ``ModelProto``, and written to a file.

The graph takes ``images``: float32 (N, H, W, C), exactly what :meth:`Sequential.predict`
takes (N free), and gives ``predictions``: what ``predict`` returns (probabilities for sigmoid
and softmax heads). Opset 13 and the IR version it needs (7): every ONNX Runtime since 1.6
(2020) runs the file. The file is deterministic: fixed producer fields, no timestamp, names
from the model's layer names, metadata sorted, so exporting one model twice gives one file.
"""


from .. import __version__
from .._files import atomic_write
from .converters import convert
from .errors import ExportError, import_onnx
from .graph import Graph, Tensor
from .metadata import metadata_props

OPSET = 13
INPUT, OUTPUT = "images", "predictions"


def _name_output(g, y):
    """Make the graph's last value be called OUTPUT (renaming its producer and readers)."""
    producer = next((n for n in g.nodes if y.name in n.output), None)
    if producer is None:  # the input itself (a model of Dropout layers only)
        g.nodes.append(g.helper.make_node("Identity", [y.name], [OUTPUT], name=OUTPUT))
        return
    for n in g.nodes:
        for seq in (n.input, n.output):
            for i, name in enumerate(seq):
                if name == y.name:
                    seq[i] = OUTPUT
        if n is producer:
            n.name = OUTPUT


def to_onnx(model):
    """Convert a built model; return a checked ``onnx.ModelProto``.

    Raises
    ------
    ExportError
        The model is not built, or has a layer that cannot be exported (named in the message).
    OnnxDependencyError
        The ``onnx`` package is not installed.
    """
    onnx = import_onnx()
    helper = onnx.helper
    if not model.layers or not model.built:
        raise ExportError("the model is not built yet: give input_shape= to its first layer (or call build())")
    shape = tuple(int(d) for d in model.input_shape)
    if len(shape) not in (1, 3):
        raise ExportError(f"inputs of shape {shape} cannot be exported: images (H, W, C) or vectors (D,) only")
    g = Graph(helper, onnx.numpy_helper)
    for reserved in (INPUT, OUTPUT):  # no layer's value may take these names
        g.fresh(reserved)
    y = Tensor(INPUT, "NHWC" if len(shape) == 3 else "ND", shape)
    for layer in model.layers:
        y = convert(g, layer, y)
    y = g.nhwc(y)
    _name_output(g, y)

    float32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes, model.name,
        [helper.make_tensor_value_info(INPUT, float32, ["N", *shape])],
        [helper.make_tensor_value_info(OUTPUT, float32, ["N", *map(int, model.output_shape)])],
        initializer=g.initializers,
    )
    opsets = [helper.make_opsetid("", OPSET)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="tinycnn", producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets),
                              doc_string=f"tinycnn model {model.name!r}: input {INPUT} float32 (N, "
                                         f"{', '.join(map(str, shape))}) channels-last, output {OUTPUT}")
    helper.set_model_props(proto, metadata_props(model))
    onnx.checker.check_model(proto, full_check=True)  # also infers and checks every shape
    return proto


def export_onnx(model, filepath):
    """Write ``model`` as an ONNX file at ``filepath`` (atomically: a temporary file, then a rename)."""
    data = to_onnx(model).SerializeToString()
    with atomic_write(filepath, suffix=".onnx") as f:
        f.write(data)
