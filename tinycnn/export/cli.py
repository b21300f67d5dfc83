"""``tinycnn export --model m.tcnn --out m.onnx``: a model file as ONNX, checked with ONNX Runtime."""

import os

from .errors import INSTALL_HINT, OnnxDependencyError

# a file whose outputs differ more than this from tinycnn's predict is reported as failed
TOLERANCE = 1e-4


def _cmd_export(args):
    from ..models import load_model
    from .build import INPUT, OPSET, OUTPUT, export_onnx
    from .metadata import metadata_props

    model = load_model(args.model, compile=False)
    export_onnx(model, args.out)
    props = metadata_props(model)
    shape = ", ".join(map(str, model.input_shape))
    rng = f" in {props['value_range']}" if "value_range" in props else ""
    print(f"wrote {args.out} (ONNX opset {OPSET}, {os.path.getsize(args.out) / 1e6:.1f} MB)")
    print(f"  input  {INPUT!r}: float32 (N, {shape}), {props['input_layout']}{rng}")
    print(f"  output {OUTPUT!r}: (N, {', '.join(map(str, model.output_shape))}), "
          f"{props['output_activation']}" + (f", classes {props['class_names']}" if "class_names" in props else ""))
    if args.no_check:
        return 0
    try:
        from .verify import check_export

        diff, n = check_export(model, args.out)
    except OnnxDependencyError:
        print(f"  not checked: onnxruntime is not installed ({INSTALL_HINT})")
        return 0
    ok = diff <= TOLERANCE
    print(f"  ONNX Runtime vs tinycnn predict on {n} random inputs: largest difference {diff:.1e}"
          + ("" if ok else f"  FAILED (more than {TOLERANCE:.0e})"))
    return 0 if ok else 1


def add_cli(sub):
    """Register ``tinycnn export``."""
    p = sub.add_parser("export", help="write a model file as ONNX, for ONNX Runtime and other inference stacks")
    p.add_argument("--model", required=True, help="the tinycnn model file to export (.tcnn) (required)")
    p.add_argument("--out", required=True, help="the ONNX file to write (.onnx) (required)")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default onnx)")
    p.add_argument("--no-check", action="store_true",
                   help="do not run the file with ONNX Runtime against tinycnn's predict (default: run it "
                        "when onnxruntime is installed)")
    p.set_defaults(func=_cmd_export)
