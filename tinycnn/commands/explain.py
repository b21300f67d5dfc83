"""``tinycnn explain``: Grad-CAM or saliency overlays, one per input file, named after it, with an index."""

import csv
import os
from collections import Counter
from pathlib import Path

from ..errors import ConfigError
from ..explain import METHODS, explain_images, save_grid, save_overlay
from ..models import load_model
from ..pipeline import images_for_model, list_images
from ._args import add_model, add_threshold, add_verbosity, probability
from ._output import Printer
from .predict import class_names, decision_threshold, prediction_rows, probability_columns

INDEX = "index.csv"
GRID = "grid.png"
GRID_CASES = 32  # the grid is an overview; every case has its own file


def add(sub):
    p = sub.add_parser("explain", help="Grad-CAM or saliency overlays of images or a folder",
                       description="Write a heatmap overlay for each image or DICOM file (named after it, in the "
                                   f"same sub-folders), {INDEX} (input file, output file, p_<class>, prediction) "
                                   f"and {GRID} (an overview).")
    add_model(p)
    p.add_argument("path", metavar="IMAGE|FOLDER", help="an image or DICOM file, or a folder searched recursively")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the overlays and the index, created if absent (required)")
    p.add_argument("--method", choices=METHODS, default="gradcam",
                   help="gradcam: where the last convolution layer found evidence; saliency / smoothgrad: which "
                        "pixels change the score most (default %(default)s)")
    p.add_argument("--layer", default=None,
                   help="the layer gradcam explains (default: the last Conv2D or ResidualBlock)")
    p.add_argument("--alpha", type=probability, default=0.4, help="heatmap opacity in [0, 1] (default %(default)s)")
    add_threshold(p)
    add_verbosity(p)
    p.set_defaults(func=run)


def _split_frame(entry):
    """'scan.dcm#3' -> ('scan.dcm', 3); a plain file -> (file, None) (:func:`tinycnn.data.files.split_frame`)."""
    from ..data.files import split_frame  # Pillow, SciPy: loaded when the command runs

    return split_frame(entry)


def output_names(entries, root, method):
    """The overlay's path (relative to the output folder) for each input: its path under ``root`` with
    the suffix replaced by ``_<method>.png`` (``_frame<k>`` added for a frame of a multi-frame file).
    Two inputs that differ only in their suffix (``a.png``, ``a.dcm``) keep it: ``a_png_gradcam.png``."""
    base = Path(root) if os.path.isdir(root) else Path(root).parent
    stems = []
    for entry in entries:
        file, frame = _split_frame(entry)
        rel = Path(os.path.relpath(file, base))
        stems.append((rel, rel.with_suffix(""), "" if frame is None else f"_frame{frame + 1}"))
    taken = Counter((stem, tag) for _, stem, tag in stems)
    out = []
    for rel, stem, tag in stems:
        if taken[(stem, tag)] > 1:
            stem = stem.with_name(rel.name.replace(".", "_"))
        out.append(str(stem) + f"{tag}_{method}.png")
    return out


def run(args):
    printer = Printer("explain", args.verbosity)
    if args.layer is not None and args.method != "gradcam":
        raise ConfigError(f"--layer applies to --method gradcam only, not {args.method}")
    model = load_model(args.model, compile=False)
    model.summary(print_fn=printer.detail)
    x, kept, skipped = images_for_model(model, list_images(args.path))
    printer.skipped(skipped)
    maps = explain_images(model, x, args.method, args.layer)
    probs = model.predict(x, batch_size=64)
    names = output_names(kept, args.path, args.method)
    classes = class_names(model, probs)
    threshold = decision_threshold(model, args.threshold, printer) if probs.shape[1] == 1 else None
    rows = prediction_rows(kept, probs, classes, threshold)
    os.makedirs(args.out, exist_ok=True)
    for name, im, hm in zip(names, x, maps, strict=True):
        path = os.path.join(args.out, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_overlay(path, im, hm, args.alpha)
    with open(os.path.join(args.out, INDEX), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["input file", "output file", *probability_columns(classes, probs), "prediction"])
        w.writerows([row[0], name, *row[1:]] for row, name in zip(rows, names, strict=True))
    shown = min(len(x), GRID_CASES)
    save_grid(os.path.join(args.out, GRID), x[:shown], maps[:shown], alpha=args.alpha,
              titles=[f"{Path(_split_frame(row[0])[0]).stem[:14]} {row[-1]}" for row in rows[:shown]])
    printer.result(f"{args.method}: {len(x)} overlay(s) written to {args.out}, each named after its input file "
                   f"(<name>_{args.method}.png, in the input's sub-folders); {INDEX} lists input file, output "
                   f"file, probability and prediction; {GRID} shows the first {shown}")
    return 0
