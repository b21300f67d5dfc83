"""``tinycnn demo``: train on built-in synthetic chest X-rays; optionally keep the data to try the
other commands on."""

import os
import time
from pathlib import Path

import numpy as np

from .. import pipeline
from ._args import add_verbosity, int_at_least, non_negative_int, positive_int
from ._output import EpochPrinter, Printer, data_summary, few_case_warnings

DEMO_OUT = "tinycnn-demo.tcnn"
SPLIT_RULE = "stratified by class: 70% training / 15% validation / 15% test"


def add(sub):
    p = sub.add_parser("demo", help="train a small diagnosis model on built-in synthetic chest X-rays",
                       description="Generate synthetic chest radiographs (half with lung nodules), train a "
                                   "small CNN on them and print its test metrics. Nothing is downloaded.")
    p.add_argument("--out", default=DEMO_OUT, metavar="FILE", help="model file to write (default %(default)s)")
    p.add_argument("--n", type=int_at_least(40), default=2400, help="number of synthetic cases (default %(default)s)")
    p.add_argument("--image-size", type=int_at_least(32), default=64, metavar="N",
                   help="image height and width in pixels, at least 32 (default %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=12, metavar="N",
                   help="passes over the training part (default %(default)s)")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                   help="seed of the images, the split and training (default %(default)s)")
    p.add_argument("--save-data", default=None, metavar="DIR",
                   help="also write the data to DIR: demo.npz (the three parts, for evaluate, report and train) "
                        "and test/<class>/*.png (the test images, for predict and explain) (default: not written)")
    add_verbosity(p)
    p.set_defaults(func=run)


def save_demo_data(splits, folder):
    """Write ``splits`` as ``folder/demo.npz`` (MedMNIST layout, uint8) and the test part as PNG files
    in ``folder/test/<class name>/``; return the two paths."""
    from PIL import Image

    folder = Path(folder)
    arrays = {}
    for part in ("train", "val", "test"):
        x, y = getattr(splits, part)
        arrays[f"{part}_images"] = np.round(x[..., 0] * 255).astype(np.uint8)
        arrays[f"{part}_labels"] = y.astype(np.uint8)[:, None]
    folder.mkdir(parents=True, exist_ok=True)
    npz = folder / "demo.npz"
    np.savez_compressed(npz, **arrays)
    x, y = splits.test
    for i, (img, label) in enumerate(zip(arrays["test_images"], y, strict=True)):
        sub = folder / "test" / splits.class_names[label]
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(sub / f"case_{i + 1:04d}.png")
    return npz, folder / "test"


def run(args):
    from ..data import Augmenter
    from ..random import set_random_seed

    printer = Printer("demo", args.verbosity)
    t0 = time.perf_counter()
    printer.info(f"tinycnn demo: synthetic chest radiographs, {args.n} cases at {args.image_size}x{args.image_size} "
                 "(nodule = positive); nothing is downloaded")
    splits = pipeline.demo_splits(args.n, args.image_size, args.seed)
    printer.info(data_summary(splits, f"{SPLIT_RULE} (seed {args.seed})"))
    for text in few_case_warnings(splits):
        printer.warn(text)
    if args.save_data:
        npz, pngs = save_demo_data(splits, args.save_data)
        printer.info(f"data written to {npz} and {pngs}{os.sep}")
    set_random_seed(args.seed)  # the model draws its weights when built, here: --seed must cover them
    model = pipeline.diagnosis_model(splits.input_shape, splits.num_classes, splits.task)
    model.summary(print_fn=printer.detail)
    printer.info()
    n_batches = -(-len(splits.train[1]) // 32)
    _, _, rep = pipeline.train(splits, epochs=args.epochs, batch_size=32, out=args.out, model=model, verbose=0,
                               seed=args.seed, callbacks=[EpochPrinter(args.epochs, n_batches, printer)],
                               augment=Augmenter(horizontal_flip=False, rotation=5, shift=0.03,
                                                      brightness=0.05, contrast=0.05))
    printer.result("\ntest set:")
    printer.result(pipeline.format_report(rep, splits.class_names))
    printer.result(f"\nmodel written to {args.out}  ({time.perf_counter() - t0:.0f} s in all)")
    if args.save_data:
        printer.info(f"\ntry the other commands on the saved data:\n"
                     f"  tinycnn evaluate --model {args.out} --data {npz}\n"
                     f"  tinycnn report --model {args.out} --data {npz} --out demo-report.html\n"
                     f"  tinycnn predict --model {args.out} {pngs}\n"
                     f"  tinycnn explain --model {args.out} {pngs} --out demo-heatmaps")
    return 0
