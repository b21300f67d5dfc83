"""``tinycnn train``: train a diagnosis model on a .npz file or a folder of class folders."""

import argparse
import math
import warnings

from .. import pipeline
from ..callbacks import Callback
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
    p.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                   help="passes over the training part (default: the recipe's, 60 for small data sets, fewer "
                        "for large ones so that training stays within minutes)")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                   help="images per training step (default: the recipe's, 32)")
    p.add_argument("--learning-rate", type=positive_float, default=None, metavar="LR",
                   help="Adam's peak learning rate, reached after a 5%% warm-up and decayed along a half cosine "
                        "(default: the recipe's, 0.001)")
    p.add_argument("--class-weight", choices=["balanced"], default=None,
                   help="'balanced' weighs each class inversely to its number of training cases "
                        "(default: every case weighs the same)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="random brightness and contrast changes during training, and flips only where the "
                        "modality allows them (read from a MedMNIST file name: never for chest films, CT or an "
                        "unknown source, whose left and right are anatomy); --no-augment turns it off "
                        "(default: on)")
    p.add_argument("--ensemble", type=positive_int, default=None, metavar="K",
                   help="train K models from different seeds and average them in one model file (default: the "
                        "recipe's: as many, up to 7, as its image budget trains for 30 epochs or more each; 1 for "
                        "large data sets)")
    p.add_argument("--patience", type=int_at_least(1), default=None, metavar="N",
                   help="stop when the validation loss has not improved for N epochs and keep the best "
                        "weights (default: train all epochs)")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="write a checkpoint to FILE after every epoch; an ensemble of K writes one per model, "
                        "NAME-1ofK.EXT ... (default: none)")
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


def describe(r, augment):
    """One line saying what the recipe will train."""
    aug = r.augment if augment and r.augment else {}
    flips = [f for f in ("horizontal", "vertical") if aug.get(f"{f}_flip")]
    parts = [f"{' and '.join(flips)} flips" if flips else "no flips"]
    parts += [k for k in ("rotation", "shift", "brightness", "contrast") if aug.get(k)]
    what = f"{r.ensemble} models (seeds averaged in one file)" if r.ensemble > 1 else "one model"
    tta = ", the same flips averaged at test time" if flips and r.test_time_flips else ""
    return (f"recipe: {what}, a residual CNN ({r.width}-{r.width * 2 ** (len(r.blocks) - 1)} channels), "
            f"{r.epochs} epochs of batch {r.batch_size}, Adam {r.learning_rate:g} with warm-up and cosine decay; "
            f"augmentation: {', '.join(parts) if aug else 'none'}{tta} (modality: {r.modality or 'unknown'})")


class MemberHeader(Callback):
    """Says which model of an ensemble trains next."""

    def __init__(self, K, printer):
        self.K, self.k, self.printer = K, 0, printer

    def on_train_begin(self, logs=None):
        self.k += 1
        if self.K > 1:
            self.printer.info(f"model {self.k} of {self.K}")


def run(args):
    from .. import recipe  # Pillow, SciPy: loaded when the command runs
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
    r = recipe.for_data(splits).replace(epochs=args.epochs, batch_size=args.batch_size,
                                        learning_rate=args.learning_rate, ensemble=args.ensemble)
    printer.info(describe(r, args.augment))
    set_random_seed(args.seed)
    r.build_model(splits.input_shape, splits.num_classes, splits.task).summary(print_fn=printer.detail)
    n_batches = math.ceil(len(splits.train[1]) / r.batch_size)
    printer.info()
    from ..clinical import PositiveClassWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PositiveClassWarning)  # announce_positive said it, with the flag
        model, _, rep = pipeline.train(splits, recipe=r, class_weight=args.class_weight,
                                       augment="recipe" if args.augment else None, out=args.out, verbose=0,
                                       seed=args.seed, callbacks=[MemberHeader(r.ensemble, printer),
                                                                  EpochPrinter(r.epochs, n_batches, printer)],
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
