"""``tinycnn train``: train a diagnosis model on a .npz file or a folder of class folders."""

import math

from .. import pipeline
from ..errors import ConfigError
from ._args import add_verbosity, int_at_least, positive_float, positive_int
from ._data import add_data_options, load_labelled, split_rule
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
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write the trained model to FILE (default: none; the model is then not kept)")
    add_verbosity(p)
    p.set_defaults(func=run)


def run(args):
    from ..data import Augmenter  # Pillow, SciPy: loaded when the command runs

    printer = Printer("train", args.verbosity)
    if args.resume and not args.checkpoint:
        raise ConfigError("--resume needs --checkpoint FILE (the checkpoint to continue from)")
    splits = load_labelled(args, printer, "train", image_size=args.image_size)
    if splits.val is None and args.patience:
        raise ConfigError("--patience needs a validation part; this data has none (see --val-fraction)")
    printer.info(data_summary(splits, split_rule(args)))
    for text in few_case_warnings(splits):
        printer.warn(text)
    model = pipeline.diagnosis_model(splits.input_shape, splits.num_classes, splits.task)
    model.summary(print_fn=printer.detail)
    aug = Augmenter(horizontal_flip=False) if args.augment else None  # left and right are anatomy
    n_batches = math.ceil(len(splits.train[1]) / args.batch_size)
    printer.info()
    _, _, rep = pipeline.train(splits, epochs=args.epochs, batch_size=args.batch_size,
                               learning_rate=args.learning_rate, class_weight=args.class_weight, augment=aug,
                               model=model, out=args.out, verbose=0, seed=args.seed,
                               callbacks=[EpochPrinter(args.epochs, n_batches, printer)],
                               checkpoint=args.checkpoint, resume=args.checkpoint if args.resume else None,
                               patience=args.patience)
    printer.result("\ntest set:" if splits.test is not None else "\nvalidation set:")
    printer.result(pipeline.format_report(rep, splits.class_names))
    if args.out:
        printer.result(f"\nmodel written to {args.out}")
    else:
        printer.warn("no --out FILE given: the trained model was not saved")
    return 0
