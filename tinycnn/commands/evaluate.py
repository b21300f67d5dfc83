"""``tinycnn evaluate``: clinical metrics of a model file on labelled data."""

from .. import pipeline
from ..models import load_model
from ._args import add_model, add_threshold, add_verbosity
from ._data import add_data_options, load_for_model
from ._output import Printer


def add(sub):
    p = sub.add_parser("evaluate", help="clinical metrics of a model file on labelled data",
                       description="Print ROC-AUC with its 95%% CI, accuracy, sensitivity, specificity, PPV, F1 "
                                   "and the confusion matrix of a model on the test part of labelled data (else "
                                   "its validation part): for a binary model about its positive class, at its "
                                   "stored decision threshold; for several classes each against the rest (ordered "
                                   "grades: also weighted kappa); for several labels each label's AUC.")
    add_model(p)
    add_data_options(p, "evaluate")
    add_threshold(p)
    add_verbosity(p)
    p.set_defaults(func=run)


def run(args):
    printer = Printer("evaluate", args.verbosity)
    model = load_model(args.model)
    model.summary(print_fn=printer.detail)
    x, y, _, _, names = load_for_model(model, args, printer, "evaluate")
    rep = pipeline.evaluate(model, x, y, threshold=args.threshold, class_names=names)
    printer.result(pipeline.format_report(rep))
    return 0
