"""Cross-validate the default recipe's ensemble size on a MedMNIST file's train + val parts.

Never reads the test part. The train and validation parts are pooled and cut into stratified
folds; in each fold, ``--members`` models of the default recipe (each with its test-time flips)
are trained from the seeds the recipe gives its ensemble members (:func:`tinycnn.recipe.member_seed`),
and the held-out fold is scored by the mean of the first K members' probabilities, for each K
in ``--sizes``. Every K sees the same folds and the same members, so differences between sizes
are paired. Prints the mean over folds of the held-out AUC and ACC (the MedMNIST conventions:
binary AUC of the positive class and ACC at 0.5; multi-class macro one-vs-rest AUC and arg-max
ACC) and the training time per member.

    python benchmarks/recipe_cv.py ../shared/data/retinamnist.npz --folds 5 --members 7 --sizes 1 3 5 7
"""

import argparse
import dataclasses
import time

import numpy as np

from tinycnn import clinical, data, metrics, pipeline, recipe


def scores(y, p, task):
    """(AUC, ACC) of probabilities ``p`` against labels ``y`` (as the model reads them)."""
    if task == "binary":
        return metrics.roc_auc(y, p[:, 0]), float(np.mean((p[:, 0] >= 0.5) == y))
    return metrics.roc_auc(y, p, average="macro"), float(np.mean(p.argmax(axis=1) == y))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", help="a MedMNIST .npz file")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--members", type=int, default=7, help="models trained per fold")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 3, 5, 7], help="ensemble sizes to score")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    splits = data.load_dataset(args.path)
    x = np.concatenate([splits.train[0], splits.val[0]])
    y = np.concatenate([np.asarray(splits.train[1]), np.asarray(splits.val[1])])
    # stratified folds: deal each class's shuffled samples round-robin over the folds
    rng = np.random.default_rng(args.seed)
    fold = np.empty(len(y), np.int64)
    for c in np.unique(y, axis=0):
        idx = np.flatnonzero(y == c) if y.ndim == 1 else np.flatnonzero((y == c).all(axis=1))
        fold[rng.permutation(idx)] = np.arange(len(idx)) % args.folds
    r = recipe.for_data(splits)
    print(f"{args.path}: {len(y)} train+val images, {args.folds} folds, {args.members} members per fold; "
          f"recipe: {r.epochs} epochs, flips {r.augment.get('horizontal_flip')}/{r.augment.get('vertical_flip')}",
          flush=True)
    table = {k: [] for k in args.sizes}
    seconds = []
    for f in range(args.folds):
        held = fold == f
        cut = dataclasses.replace(splits, train=(x[~held], y[~held]), val=(x[held], y[held]), test=None)
        probs, target = [], None
        for k in range(args.members):
            t0 = time.perf_counter()
            model, _, _ = pipeline.train(cut, ensemble=1, seed=recipe.member_seed(args.seed + f, k), verbose=0)
            seconds.append(time.perf_counter() - t0)
            probs.append(model.predict(x[held], batch_size=128))
            target = clinical.targets(model, y[held], splits.class_names)[0]
        for K in args.sizes:
            table[K].append(scores(target, np.mean(probs[:K], axis=0), cut.task))
        print(f"fold {f + 1}: " + "; ".join(f"K={K} AUC {table[K][-1][0]:.4f} ACC {table[K][-1][1]:.4f}"
                                            for K in args.sizes), flush=True)
    print(f"\nmean over {args.folds} folds (held-out AUC / ACC), {np.median(seconds):.0f} s per member (median):")
    for K in args.sizes:
        a = np.array(table[K])
        print(f"  ensemble of {K}: AUC {a[:, 0].mean():.4f} / ACC {a[:, 1].mean():.4f}")


if __name__ == "__main__":
    main()
