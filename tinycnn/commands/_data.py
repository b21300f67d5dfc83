"""Labelled data for the commands: the split options, --skip-bad, and checks that data fit a model.

Like every command module, this one imports the heavier parts of tinycnn (Pillow, SciPy,
matplotlib) only when a command runs, so ``--help`` and usage errors answer at once.
"""

from ..errors import ConfigError, DataError, ShapeError
from ._args import fraction, non_negative_int, regex
from ._output import PART_LABEL, few_case_warnings


def add_data_options(p, verb):
    """--data, --dataset, the split rule (--val-fraction, --test-fraction, --seed, --groups, --group-pattern)
    and --skip-bad."""
    p.add_argument("--data", required=True, metavar="PATH",
                   help="a MedMNIST-style .npz file (its own train/val/test parts), or a folder with one "
                        "sub-folder of images or DICOM files per class (required)")
    p.add_argument("--val-fraction", type=fraction, default=0.15, metavar="F",
                   help="folders only: share of each class held out for validation (default %(default)s)")
    p.add_argument("--test-fraction", type=fraction, default=0.15, metavar="F",
                   help="folders only: share of each class held out for testing (default %(default)s); "
                        "the rest, 70%% by default, is for training")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                   help="seed of the random split of a folder" + (" and of training" if verb == "train" else
                                                                   "; use the one `tinycnn train` used")
                        + " (default %(default)s)")
    p.add_argument("--dataset", default=None, metavar="NAME",
                   help=".npz only: the MedMNIST v2 data set it holds (e.g. breastmnist), for its official class "
                        "names and task (default: from the file name, e.g. breastmnist_64.npz; else classes 0, 1, ...)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--groups", default=None, metavar="CSV",
                   help="folders only: a CSV of file,group rows (paths relative to --data) naming each file's patient;"
                        " no group is split across training, validation and test (default: DICOM PatientID where "
                        "present, the frames of one file together, else each image alone)")
    g.add_argument("--group-pattern", type=regex, default=None, metavar="REGEX",
                   help="folders only: each file's group is the first (...) of REGEX found in its path inside its "
                        "class folder, e.g. '^(patient\\d+)_' (default: as for --groups)")
    p.add_argument("--skip-bad", action="store_true",
                   help=f"leave out files that cannot be read and {verb} on the rest; each one is listed with "
                        "the reason (default: stop with an error naming the first)")


def load_labelled(args, printer, verb, image_size=None, color=None):
    """Load ``args.data``; unreadable files are an error naming them, or with --skip-bad listed."""
    if args.val_fraction + args.test_fraction >= 1.0:
        raise ConfigError(f"--val-fraction + --test-fraction must be below 1 (got {args.val_fraction} + "
                          f"{args.test_fraction}): nothing would be left for training")
    # Every file is tried, so the error lists them all at once instead of one per run.
    from .. import (
        data,  # Pillow, SciPy: loaded when a command runs, not for --help or a usage error
        distributed,
    )

    splits = data.load_dataset(args.data, image_size=image_size, color=color, val_fraction=args.val_fraction,
                               test_fraction=args.test_fraction, seed=args.seed, skip_bad=True, dataset=args.dataset,
                               groups=args.groups, group_pattern=args.group_pattern,
                               lazy=distributed.active())  # i14: each MPI rank reads only its samples
    if splits.skipped and not args.skip_bad:
        first, why = splits.skipped[0]
        more = f" (and {len(splits.skipped) - 1} more)" if len(splits.skipped) > 1 else ""
        raise DataError(f"cannot read {first}: {why}{more}. Fix or remove the file(s), or pass --skip-bad to "
                        f"{verb} on the rest (each skipped file is then listed with the reason)")
    printer.skipped(splits.skipped)
    return splits


def load_for_model(model, args, printer, verb):
    """The labelled part of ``args.data`` to judge ``model`` on: test, else validation, else training.

    Says which part it is, and warns when it holds few cases of a class or when the data name
    other classes than the model. Returns ``(x, y, part, files, names)``: ``part`` is 'test',
    'val' or 'train'; ``files`` the file of each case (None for an ``.npz``); ``y`` indexes
    ``names``, the data's class names (the evaluation matches them to the model's by name).
    """
    from ..clinical import targets
    size = tuple(model.metadata.get("image_size", model.input_shape[:2]))
    color = "rgb" if model.input_shape[-1] == 3 else "grayscale"
    splits = load_labelled(args, printer, verb, image_size=size, color=color)
    for attr in ("test", "val", "train"):
        part = getattr(splits, attr)
        if part is not None:
            break
    if attr == "train":
        printer.warn(f"{args.data} has no test or validation part: using its training part, which says little "
                     "about new cases")
    x, y = part
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ShapeError(f"images of shape {tuple(x.shape[1:])} do not fit the model's input {model.input_shape}")
    names = [str(c) for c in splits.class_names]
    model_names = model.metadata.get("class_names") or names
    k_model = 2 if model.output_shape[-1] == 1 else model.output_shape[-1]
    if splits.num_classes != k_model:
        raise ShapeError(f"{args.data} has {splits.num_classes} classes {splits.class_names}, but the model "
                         f"predicts {k_model} ({', '.join(map(str, model_names))})")
    printer.info(f"{PART_LABEL[attr]} part of {args.data} (split: {splits.split_rule})")
    note = targets(model, y, names)[2]
    if note:
        # an .npz without names (classes 0, 1, ...) is the usual case, not a surprise worth a warning
        (printer.info if names == [str(k) for k in range(len(names))] else printer.warn)(note)
        names = [str(c) for c in model_names]
    for text in few_case_warnings(splits, parts=(attr,), class_names=names):
        printer.warn(text)
    return x, y, attr, splits.files.get(attr), names
