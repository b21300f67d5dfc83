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
                   help="also write the predictions to FILE (columns: file, p_<class> for the positive class of "
                        "a binary model or for every class, prediction) (default: none)")
    add_verbosity(p)
    p.set_defaults(func=run)


def class_names(model, probs):
    """The class of each output column: ``[negative, positive]`` for a binary model (its one
    output is p(positive)), else the class names ('0', '1', ... when the model stores none)."""
    from ..clinical import output_names

    return output_names(model.metadata or {}, probs.shape[1])


def decision_threshold(model, threshold, printer):
    """The threshold in use (--threshold, else the stored one, else 0.5); says which and why."""
    from ..clinical import threshold_in_use

    t, _, why = threshold_in_use(model.metadata or {}, threshold)
    printer.info(f"decision threshold: {t:.4g}, {why}")
    return t


def prediction_rows(files, probs, names, threshold):
    """``[file, p..., prediction]`` per case: p(positive class) and the call at ``threshold`` for a
    binary model; every class's probability and the most probable class otherwise."""
    rows = []
    for f, pr in zip(files, probs, strict=True):
        if probs.shape[1] == 1:
            rows.append([f, f"{pr[0]:.4f}", names[1] if pr[0] >= threshold else names[0]])
        else:
            rows.append([f, *(f"{v:.4f}" for v in pr), names[int(pr.argmax())]])
    return rows


def probability_columns(names, probs):
    """``p_<positive class>`` for a binary model, ``p_<class>`` for each class otherwise."""
    return [f"p_{names[1]}"] if probs.shape[1] == 1 else [f"p_{n}" for n in names]


def run(args):
    printer = Printer("predict", args.verbosity)
    model = load_model(args.model)
    model.summary(print_fn=printer.detail)
    kept, probs, skipped = distributed.predict_files(  # i14: the files split over MPI ranks
        model, list_images(args.path), images_for_model, batch_size=64)
    printer.skipped(skipped)
    names = class_names(model, probs)
    threshold = decision_threshold(model, args.threshold, printer) if probs.shape[1] == 1 else None
    rows = prediction_rows(kept, probs, names, threshold)
    header = ["file", *probability_columns(names, probs), "prediction"]
    printer.info("\t".join(header))
    for r in rows:
        printer.result("\t".join(r))
    if args.csv and distributed.is_root():  # i14: one writer under MPI
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
        printer.info(f"predictions written to {args.csv}")
    return 0
