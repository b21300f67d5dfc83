"""Train tinycnn's default recipe on a MedMNIST file; compare with the MedMNIST v2 paper.

Usage::

    python examples/train_medmnist.py ../shared/data/breastmnist.npz --seeds 0 1 2

For each seed, :func:`tinycnn.pipeline.train` with every setting taken from
:mod:`tinycnn.recipe` (derived from the data; nothing here is tuned on a test split), then the
official test split, once: AUC (binary: of the score of label 1; multi-class: the mean of the
one-vs-rest AUCs) and ACC (binary: at 0.5; multi-class: of the arg-max), the paper's
conventions. Prints each seed, then the mean and standard deviation over the seeds next to the
paper's rows (Yang et al., "MedMNIST v2", Scientific Data 10:41, 2023, Table "MedMNIST2D",
on the same test splits).

The file holds ``train_images``, ``train_labels``, ``val_images``, ``val_labels``,
``test_images``, ``test_labels`` (the MedMNIST v2 layout, labels of shape (N, 1)).
"""

import argparse
import os

import numpy as np

from tinycnn import clinical, data, get_backend, metrics, pipeline

#: The paper's rows on the same test splits (AUC, ACC), as ../shared/data/README.md lists them.
PAPER = {
    "breastmnist": [("ResNet-18 (28)", 0.901, 0.863), ("ResNet-50 (28)", 0.857, 0.812),
                    ("auto-sklearn", 0.836, 0.803), ("AutoKeras", 0.871, 0.831),
                    ("Google AutoML Vision", 0.919, 0.861)],
    "retinamnist": [("ResNet-18 (28)", 0.717, 0.524), ("ResNet-50 (28)", 0.726, 0.528),
                    ("auto-sklearn", 0.690, 0.515), ("AutoKeras", 0.719, 0.503),
                    ("Google AutoML Vision", 0.750, 0.531)],
}


def test_scores(task, p, y):
    """(AUC, ACC) with the paper's conventions (binary: ``y`` 1 for the class ``p`` scores)."""
    if task == "binary":
        return float(metrics.roc_auc(y, p[:, 0])), float(((p[:, 0] >= 0.5) == y).mean())
    return float(metrics.roc_auc(y, p)), float((p.argmax(axis=1) == y).mean())


def run(path, seed=0, verbose=0, **settings):
    """Train the default recipe (``settings`` override it, e.g. ``epochs=5``) and test once.

    Returns a dict: auc, accuracy, seconds (training), epochs, ensemble, task, n_train, n_test.
    """
    splits = data.load_npz(path)
    if splits.task == "multilabel":
        raise SystemExit("multi-label files (ChestMNIST) report per-label AUCs; not handled by this script")
    if splits.test is None:
        raise SystemExit(f"{path} has no test split")
    model, _, _ = pipeline.train(splits, seed=seed, verbose=verbose, **settings)
    x, y = splits.test
    # a binary model's output is p(positive class) (BreastMNIST: malignant, label 0): its labels are
    # y == positive; the paper's AUC of label 1's score and ACC at 0.5 are the same numbers
    y = clinical.targets(model, y, splits.class_names)[0]
    auc, acc = test_scores(splits.task, model.predict(x, batch_size=256), np.asarray(y))
    r = model.metadata["recipe"]
    return {"auc": auc, "accuracy": acc, "seconds": model.metadata["train_seconds"], "epochs": r["epochs"],
            "ensemble": r["ensemble"], "task": splits.task, "n_train": int(len(splits.train[1])),
            "n_test": int(len(y))}


def _mean_sd(values, digits=3):
    sd = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):.{digits}f} ± {sd:.{digits}f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe")
    ap.add_argument("--ensemble", type=int, default=None, help="override the recipe")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    name = os.path.basename(args.path).split(".")[0].lower()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.path}: default recipe, backend {get_backend()}, {os.cpu_count()} cores, load {load:.1f}")
    runs = []
    for seed in args.seeds:
        r = run(args.path, seed=seed, verbose=1 if args.verbose else 0, epochs=args.epochs, ensemble=args.ensemble)
        runs.append(r)
        # ACC to 4 places: on a few hundred test images one image is 0.002-0.006
        print(f"seed {seed}: test AUC {r['auc']:.3f}  ACC {r['accuracy']:.4f}  ({r['ensemble']} x {r['epochs']} "
              f"epochs on {r['n_train']} images, {r['seconds']:.0f} s)", flush=True)
    print(f"\n{'':<24}{'AUC':>16}{'ACC':>16}{'training':>12}")
    print(f"{'tinycnn (' + str(len(runs)) + ' seeds)':<24}{_mean_sd([r['auc'] for r in runs]):>16}"
          f"{_mean_sd([r['accuracy'] for r in runs], 4):>16}{np.mean([r['seconds'] for r in runs]):>10.0f} s")
    for label, auc, acc in PAPER.get(name, []):
        print(f"{label:<24}{auc:>16.3f}{acc:>16.3f}")
    if name not in PAPER:
        print("(no published row stored for this file)")
    print(f"load after: {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "")
    return runs


if __name__ == "__main__":
    main()
