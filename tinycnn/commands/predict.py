"""``tinycnn predict``: the model's probability and call for each image file."""

import csv

from .. import distributed
from ..models import load_model
from ..pipeline import images_for_model, list_images
from ._args import add_model, add_threshold, add_verbosity
from ._output import Printer


def add(sub):
    p = sub.add_parser("predict", help="predict images or a folder of images",
                       description="Print the model's probability and call for each image or DICOM file; files "
                                   "that cannot be read are listed and left out.")
    add_model(p)
    p.add_argument("path", metavar="IMAGE|FOLDER", help="an image or DICOM file, or a folder searched recursively")
    add_threshold(p)
    p.add_argument("--csv", default=None, metavar="FILE",
                   help="also write the predictions to FILE (columns: file, probability, prediction) "
                        "(default: none)")
    add_verbosity(p)
    p.set_defaults(func=run)


def class_names(model, probs):
    """The model's class names, or '0', '1', ... when it stores none."""
    return model.metadata.get("class_names") or [str(i) for i in range(max(probs.shape[1], 2))]


def prediction_rows(files, probs, names, threshold):
    """``(file, probability, prediction)`` per case: p(positive class) and the call at ``threshold``
    for a binary model; every class's probability and the most probable class otherwise."""
    rows = []
    for f, pr in zip(files, probs, strict=True):
        if probs.shape[1] == 1:
            rows.append((f, f"{pr[0]:.4f}", names[1] if pr[0] >= threshold else names[0]))
        else:
            rows.append((f, " ".join(f"{v:.4f}" for v in pr), names[int(pr.argmax())]))
    return rows


def probability_header(names, probs):
    return f"p({names[1]})" if probs.shape[1] == 1 else "p(" + ", ".join(names) + ")"


def run(args):
    printer = Printer("predict", args.verbosity)
    model = load_model(args.model)
    model.summary(print_fn=printer.detail)
    kept, probs, skipped = distributed.predict_files(  # i14: the files split over MPI ranks
        model, list_images(args.path), images_for_model, batch_size=64)
    printer.skipped(skipped)
    names = class_names(model, probs)
    rows = prediction_rows(kept, probs, names, args.threshold)
    printer.info("\t".join(("file", probability_header(names, probs), "prediction")))
    for r in rows:
        printer.result("\t".join(r))
    if args.csv and distributed.is_root():  # i14: one writer under MPI
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "probability", "prediction"])
            w.writerows(rows)
        printer.info(f"predictions written to {args.csv}")
    return 0
