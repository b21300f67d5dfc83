"""``tinycnn train``: train a diagnosis model on a .npz file or a folder of class folders."""

import math
import warnings

from .. import pipeline
from ..errors import ConfigError
from ._args import add_verbosity, int_at_least, positive_float, positive_int, sensitivity
from ._data import add_data_options, load_labelled
from ._output import EpochPrinter, Printer, data_summary, few_case_warnings


def add(sub):
    p = sub.add_parser("train", help="train on a .npz file, an image folder or a DICOM folder",
                       description="Train a small diagnosis CNN, report its metrics on the test part and "
                                   "write it to --out.")
    add_data_options(p, "train")
    p.add_argument("--image-size", type=positive_int, default=None, metavar="N",
                   help="resize every image to N x N pixels (default: keep the size; all images must then "
                        "have one size)")
    p.add_argument("--epochs", type=positive_int, default=10, metavar="N",
                   help="passes over the training part (default %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                   help="images per training step (default %(default)s)")
    p.add_argument("--learning-rate", type=positive_float, default=1e-3, metavar="LR",
                   help="Adam's learning rate (default %(default)s)")
    p.add_argument("--class-weight", choices=["balanced"], default=None,
                   help="'balanced' weighs each class inversely to its number of training cases "
                        "(default: every case weighs the same)")
    p.add_argument("--augment", action="store_true",
                   help="random rotations, shifts, brightness and contrast changes during training; never "
                        "left-right flips, which would swap anatomy (default: off)")
    p.add_argument("--patience", type=int_at_least(1), default=None, metavar="N",
                   help="stop when the validation loss has not improved for N epochs and keep the best "
                        "weights (default: train all epochs)")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="write a checkpoint to FILE after every epoch (default: none)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its --checkpoint FILE (default: start afresh)")
    p.add_argument("--positive", default=None, metavar="NAME",
                   help="binary tasks: the class to detect; the model's probability is p(NAME) and sensitivity, "
                        "PPV and the ROC curve are about it (default: of two classes, the one not named like "
                        "normal, healthy, negative, benign, no finding, control or absent)")
    p.add_argument("--target-sensitivity", type=sensitivity, default=None, metavar="S",
                   help="binary tasks: store as the decision threshold the highest one reaching sensitivity S on "
                        "the validation part, e.g. 0.95 for screening (default: the threshold maximising "
                        "sensitivity + specificity there, Youden's J)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write the trained model to FILE (default: none; the model is then not kept)")
    add_verbosity(p)
    p.set_defaults(func=run)


def announce_positive(splits, args, printer):
    """Check --positive and --target-sensitivity against the task; say which class is positive and why."""
    from ..clinical import choose_positive, find_class

    if splits.task != "binary":
        for flag, value in (("--positive", args.positive), ("--target-sensitivity", args.target_sensitivity)):
            if value is not None:
                raise ConfigError(f"{flag} applies to binary tasks; {args.data} has {splits.num_classes} "
                                  f"{'labels' if splits.task == 'multilabel' else 'classes'} "
                                  f"({', '.join(map(str, splits.class_names))})")
        return
    if args.positive is not None:
        find_class(splits.class_names, args.positive, "--positive")
    pos = choose_positive(splits.class_names, args.positive)
    if pos.by_name:
        printer.info(f"positive class: {pos.name} ({pos.rule}); the model's probability is p({pos.name})")
    else:
        printer.warn(f"positive class: {pos.name}, taken by default ({pos.rule.split(': ', 1)[-1]}); "
                     f"sensitivity, PPV and the model's probability p({pos.name}) are about {pos.name}. If "
                     f"{pos.negative} is the finding to detect, pass --positive {_quoted(pos.negative)}")


def _quoted(name):
    return repr(name) if any(ch in name for ch in " ,;'\"$&|<>()") else name


def run(args):
    from ..data import Augmenter  # Pillow, SciPy: loaded when the command runs
    from ..random import set_random_seed

    printer = Printer("train", args.verbosity)
    if args.resume and not args.checkpoint:
        raise ConfigError("--resume needs --checkpoint FILE (the checkpoint to continue from)")
    splits = load_labelled(args, printer, "train", image_size=args.image_size)
    if splits.val is None and args.patience:
        raise ConfigError("--patience needs a validation part; this data has none (see --val-fraction)")
    announce_positive(splits, args, printer)
    printer.info(data_summary(splits))
    if splits.grouping == "image":
        printer.info("(if a patient has several images, pass --groups CSV or --group-pattern REGEX so that all of "
                     "them stay in one part)")
    for text in few_case_warnings(splits):
        printer.warn(text)
    set_random_seed(args.seed)  # the model draws its weights when built, here: --seed must cover them
    model = pipeline.diagnosis_model(splits.input_shape, splits.num_classes, splits.task)
    model.summary(print_fn=printer.detail)
    aug = Augmenter(horizontal_flip=False) if args.augment else None  # left and right are anatomy
    n_batches = math.ceil(len(splits.train[1]) / args.batch_size)
    printer.info()
    from ..clinical import PositiveClassWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PositiveClassWarning)  # announce_positive said it, with the flag
        model, _, rep = pipeline.train(splits, epochs=args.epochs, batch_size=args.batch_size,
                                       learning_rate=args.learning_rate, class_weight=args.class_weight, augment=aug,
                                       model=model, out=args.out, verbose=0, seed=args.seed,
                                       callbacks=[EpochPrinter(args.epochs, n_batches, printer)],
                                       checkpoint=args.checkpoint, resume=args.checkpoint if args.resume else None,
                                       patience=args.patience, positive_class=args.positive,
                                       target_sensitivity=args.target_sensitivity)
    printer.result("\ntest set:" if splits.test is not None else "\nvalidation set:")
    printer.result(pipeline.format_report(rep))
    if "decision_threshold" in model.metadata:
        printer.result(f"\noperating point: decision threshold {model.metadata['decision_threshold']:.4g} on "
                       f"p({model.metadata['positive_class']}), {model.metadata['threshold_rule']}; stored in the "
                       "model, used by predict, evaluate and report unless --threshold is given")
    if args.out:
        printer.result(f"\nmodel written to {args.out}")
    else:
        printer.warn("no --out FILE given: the trained model was not saved")
    return 0
