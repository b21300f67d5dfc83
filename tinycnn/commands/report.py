"""``tinycnn report``: a self-contained HTML report, and beside it an index tracing its cases to files."""

import csv
from pathlib import Path

from ..models import load_model
from ._args import add_model, add_threshold, add_verbosity
from ._data import add_data_options, load_for_model
from ._output import PART_LABEL, Printer
from .predict import class_names, prediction_rows, probability_columns


def add(sub):
    p = sub.add_parser("report", help="a self-contained HTML report of a model on labelled data",
                       description="Write an HTML report (training curves, ROC curve, confusion matrix, rates, "
                                   "Grad-CAM examples) of a model on the test part of labelled data (else its "
                                   "validation part). The report names no file; the case index written beside "
                                   "it (<out>.cases.csv) traces each numbered case to its file.")
    add_model(p)
    add_data_options(p, "report")
    p.add_argument("--out", default="report.html", metavar="FILE",
                   help="HTML file to write (default %(default)s)")
    add_threshold(p)
    add_verbosity(p)
    p.set_defaults(func=run)


def case_index_path(out):
    out = Path(out)
    return out.with_name(out.stem + ".cases.csv")


def write_case_index(path, files, source, part, y, data_names, probs, names, threshold, shown):
    """One row per case of the report: its number there, its file (or position in the .npz), the
    true class (``data_names[y]``), the probability of the positive class (binary) or of each
    class (``names``: the model's outputs), the call and the Grad-CAM group that shows it."""
    group = {i: title for title, idx in shown.items() for i in idx}
    where = [files[i] if files else f"{source} ({part}_images[{i}])" for i in range(len(y))]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "input file", "true class", *probability_columns(names, probs), "prediction",
                    "shown in the report"])
        for i, (label, row) in enumerate(zip(y, prediction_rows(where, probs, names, threshold), strict=True)):
            w.writerow([i + 1, row[0], data_names[int(label)], *row[1:], group.get(i, "")])


def run(args):
    from ..report import write_report  # matplotlib, SciPy

    printer = Printer("report", args.verbosity)
    model = load_model(args.model, compile=False)
    model.summary(print_fn=printer.detail)
    x, y, part, files, names = load_for_model(model, args, printer, "report")
    result = write_report(args.out, model, x, y, history=model.metadata.get("history"), threshold=args.threshold,
                          class_names=names)
    if "threshold" in result:
        printer.info(f"decision threshold: {result['threshold']:.4g}, {result['threshold_why']}")
    probs = model.predict(x, batch_size=64)
    index = case_index_path(args.out)
    write_case_index(index, files, args.data, part, y, names, probs, class_names(model, probs),
                     result.get("threshold"), result["examples"])
    auc = f", AUC {result['auc']:.3f}" if "auc" in result else ""
    printer.result(f"report on the {PART_LABEL[part]} part ({result['n']} cases{auc}) written to {args.out}")
    printer.result(f"case index written to {index}: it names the input files, so keep it with the data, "
                   "not with the report")
    return 0
