"""The diagnosis pipeline: data in, a trained and evaluated diagnosis model out.

Used by the ``tinycnn demo | train | evaluate | predict`` commands and usable from Python:

>>> from tinycnn import pipeline, data
>>> splits = data.load_dataset("pneumoniamnist.npz")
>>> model, history, report = pipeline.train(splits, epochs=10)
>>> print(pipeline.format_report(report))
"""

import os
import time

import numpy as np

from . import distributed
from .errors import ConfigError, DataError, ShapeError
from .layers import BatchNormalization, Conv2D, Dense, Dropout, GlobalAveragePooling2D, MaxPooling2D
from .models import Sequential, load_model

DEMO_OUT = "tinycnn-demo.tcnn"


# ------------------------------------------------------------------ the model
def diagnosis_model(input_shape, num_classes=2, task="binary", width=16, batchnorm=True, dropout=0.2):
    """A small CNN for diagnosis: conv blocks, a last conv for Grad-CAM, global pooling.

    ``[Conv(w 2^i) BN ReLU (Pool)] x 3 -> Conv(8w) ReLU -> GlobalAveragePooling -> Dropout -> Dense``;
    the first two blocks pool below 96 px, all three from 96 px up.
    Global average pooling keeps the parameter count independent of the image size and makes
    Grad-CAM of the last conv layer equal to the class activation map.

    Parameters
    ----------
    input_shape : (H, W, C)
    num_classes : int
        2 for a binary task (one sigmoid output); K > 2 for softmax; L labels for multilabel.
    task : {'binary', 'multiclass', 'multilabel'}
    """
    H, W, C = input_shape
    # Three conv blocks, but only two of them pool below 96 px: the last conv then stays at
    # 16x16 for a 64 px image, and Grad-CAM of it resolves a nodule to about 4 px, not 8.
    blocks, pools = 3, (2 if min(H, W) < 96 else 3)
    layers = []
    for i in range(blocks):
        kw = {"input_shape": tuple(input_shape)} if i == 0 else {}
        layers.append(Conv2D(width * 2**i, 3, padding="same", activation=None if batchnorm else "relu",
                             use_bias=not batchnorm, kernel_initializer="he_uniform", **kw))
        if batchnorm:
            # momentum 0.9 (not Keras' 0.99): small medical sets give few steps per epoch, and the
            # moving statistics must settle within a few epochs for inference to be calibrated
            layers += [BatchNormalization(momentum=0.9), _relu()]
        if i < pools:
            layers.append(MaxPooling2D(2))
    layers.append(Conv2D(width * 2**blocks, 3, padding="same", activation="relu", kernel_initializer="he_uniform"))
    layers.append(GlobalAveragePooling2D())
    if dropout:
        layers.append(Dropout(dropout))
    if task == "binary":
        layers.append(Dense(1, activation="sigmoid"))
    elif task == "multiclass":
        layers.append(Dense(num_classes, activation="softmax"))
    elif task == "multilabel":
        layers.append(Dense(num_classes, activation="sigmoid"))
    else:
        raise ConfigError(f"task must be 'binary', 'multiclass' or 'multilabel', got {task!r}")
    return Sequential(layers, name="diagnosis_cnn")


def _relu():
    from .layers import ReLU

    return ReLU()


def loss_for(task):
    return {"binary": "binary_crossentropy", "multiclass": "sparse_categorical_crossentropy",
            "multilabel": "binary_crossentropy"}[task]


# ------------------------------------------------------------------ training
def train(splits, epochs=10, batch_size=32, learning_rate=1e-3, class_weight=None, augment=None,
          model=None, out=None, verbose=1, seed=0, callbacks=None, checkpoint=None, resume=None, patience=None):
    """Train a diagnosis model on ``splits`` (a :class:`tinycnn.data.DataSplits`).

    Returns ``(model, history, report)``; ``report`` holds the test metrics (or validation,
    if there is no test part). With ``out`` the model is saved with its preprocessing
    settings (image size, channels, task, class names), never with any image or label.
    """
    from . import callbacks as C
    from .optimizers import Adam
    from .random import set_random_seed

    if splits.train is None:
        raise DataError(f"{splits.source or 'the data'} has no training part")
    set_random_seed(seed)
    x, y = splits.train
    if model is None:
        model = diagnosis_model(tuple(x.shape[1:]), splits.num_classes, splits.task)
    model.compile(Adam(learning_rate), loss_for(splits.task),
                  metrics=["accuracy", "auc"] if splits.task != "multilabel" else ["auc"])
    model.metadata = {"image_size": list(x.shape[1:3]), "channels": int(x.shape[3]), "task": splits.task,
                      "class_names": [str(c) for c in splits.class_names], "value_range": [0.0, 1.0]}
    cbs = list(callbacks or [])
    if splits.val is not None and patience:
        # on the validation loss, not AUC: AUC saturates at 1.0 early while calibration still improves
        cbs.append(C.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True))
    t0 = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=splits.val,
                        class_weight=class_weight, augment=augment, verbose=verbose, callbacks=cbs,
                        checkpoint=checkpoint, resume=resume)
    model.metadata["train_seconds"] = round(time.perf_counter() - t0, 1)
    model.metadata["history"] = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    part = splits.test if splits.test is not None else splits.val
    report = evaluate(model, *part, task=splits.task) if part is not None else None
    if out and distributed.is_root():  # i14: one writer under MPI
        model.save(out)
    return model, history, report


def evaluate(model, x, y, task=None, threshold=0.5):
    """Clinical metrics of ``model`` on (x, y): a dict from :func:`tinycnn.metrics.classification_report`
    plus ``n`` and the threshold reaching 95% sensitivity (binary)."""
    from . import metrics

    task = task or model.metadata.get("task", "binary")
    p = distributed.predict(model, x, batch_size=64)  # i14: split over MPI ranks when distributed
    y = np.asarray(y)
    if task == "multilabel":
        aucs = [metrics.roc_auc(y[:, k], p[:, k]) for k in range(y.shape[1])
                if 0 < y[:, k].sum() < len(y)]
        return {"task": task, "n": int(len(y)), "auc": float(np.mean(aucs)) if aucs else float("nan"),
                "accuracy": float(((p >= threshold) == (y > 0.5)).mean())}
    score = p[:, 0] if task == "binary" else p
    rep = metrics.classification_report(y, score, threshold=threshold)
    rep = {"task": task, "n": int(len(y)), **rep}
    if task == "binary" and 0 < y.sum() < len(y):
        rep["auc_95ci"] = list(metrics.bootstrap_auc_ci(y, score, n_bootstraps=500, seed=0)[1:])
        rep["threshold_for_95_sensitivity"] = float(metrics.threshold_for_sensitivity(y, score, 0.95))
    return rep


def format_report(rep, class_names=None):
    """A short, clinician-readable text of :func:`evaluate`'s dict."""
    if rep is None:
        return "no evaluation data"
    lines = [f"cases: {rep['n']}"]

    def f(k, label):
        if k in rep and np.isscalar(rep[k]):
            lines.append(f"{label:<28}{rep[k]:.3f}")

    f("auc", "ROC-AUC")
    if "auc_95ci" in rep:
        lines[-1] += f"   (95% CI {rep['auc_95ci'][0]:.3f}-{rep['auc_95ci'][1]:.3f})"
    for k, label in [("accuracy", "accuracy"), ("sensitivity", "sensitivity (recall)"),
                     ("specificity", "specificity"), ("precision", "precision (PPV)"), ("f1", "F1")]:
        f(k, label)
    if "threshold_for_95_sensitivity" in rep:
        lines.append(f"{'threshold for 95% sens.':<28}{rep['threshold_for_95_sensitivity']:.3f}")
    cm = rep.get("confusion_matrix")
    if cm is not None:
        cm = np.asarray(cm)
        names = class_names or [str(i) for i in range(len(cm))]
        w = max(8, *(len(str(n)) + 2 for n in names))
        lines.append("confusion matrix (rows: true, columns: predicted)")
        lines.append(" " * w + "".join(f"{str(n):>{w}}" for n in names))
        for n, row in zip(names, cm, strict=True):
            lines.append(f"{str(n):>{w}}" + "".join(f"{v:>{w}}" for v in row))
    return "\n".join(lines)


# ------------------------------------------------------------------ images for prediction
def images_for_model(model, paths):
    """Read image or DICOM files and bring them to the model's input (size, channels, range)."""
    from . import data

    meta = model.metadata
    size = tuple(meta.get("image_size", model.input_shape[:2]))
    color = "rgb" if model.input_shape[-1] == 3 else "grayscale"
    return data.read_images(paths, image_size=size, color=color)


def list_images(path):
    """The image/DICOM files of a file or folder (recursively), sorted."""
    if not os.path.exists(path):
        raise DataError(f"{path!r} does not exist")
    if os.path.isfile(path):
        return [path]
    out = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
    if not out:
        raise DataError(f"{path!r} holds no files")
    return out


# ------------------------------------------------------------------ command line
def _cmd_demo(args):
    from . import data

    t0 = time.perf_counter()
    print(f"tinycnn demo: synthetic chest radiographs, {args.n} cases at {args.image_size}x{args.image_size} "
          "(nodule = positive); nothing is downloaded")
    ds = data.synthetic_chest_xrays(n=args.n, image_size=args.image_size, positive_fraction=0.5, seed=args.seed)
    tr, va, te = data.stratified_split(ds.y, (0.7, 0.15, 0.15), seed=args.seed)
    splits = data.DataSplits(train=(ds.x[tr], ds.y[tr]), val=(ds.x[va], ds.y[va]), test=(ds.x[te], ds.y[te]),
                             class_names=["normal", "nodule"], task="binary", num_classes=2,
                             source="synthetic_chest_xrays")
    model, hist, rep = train(splits, epochs=args.epochs, batch_size=32, out=args.out,
                             verbose=1 if args.verbose else 2, seed=args.seed,
                             augment=data.Augmenter(horizontal_flip=False, rotation=5, shift=0.03,
                                                          brightness=0.05, contrast=0.05))
    print("\ntest set:")
    print(format_report(rep, splits.class_names))
    print(f"\nmodel written to {args.out}  ({time.perf_counter() - t0:.0f} s in all)")
    return 0


def _cmd_train(args):
    from . import data

    splits = data.load_dataset(args.data, image_size=args.image_size, seed=args.seed,
                               lazy=distributed.active())  # i14: each MPI rank reads only its samples
    print(splits)
    aug = data.Augmenter(horizontal_flip=False) if args.augment else None  # left and right are anatomy
    model, hist, rep = train(splits, epochs=args.epochs, batch_size=args.batch_size,
                             learning_rate=args.learning_rate, class_weight=args.class_weight, augment=aug,
                             out=args.out, verbose=1, seed=args.seed, checkpoint=args.checkpoint,
                             resume=args.checkpoint if args.resume else None, patience=args.patience)
    print("\ntest set:" if splits.test is not None else "\nvalidation set:")
    print(format_report(rep, splits.class_names))
    if args.out:
        print(f"\nmodel written to {args.out}")
    return 0


def _cmd_evaluate(args):
    from . import data

    model = load_model(args.model)
    size = tuple(model.metadata.get("image_size", model.input_shape[:2]))
    color = "rgb" if model.input_shape[-1] == 3 else "grayscale"
    splits = data.load_dataset(args.data, image_size=size, color=color,
                               lazy=distributed.active())  # i14: each MPI rank reads only its samples
    part = splits.test or splits.val or splits.train
    x, y = part
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ShapeError(f"images of shape {tuple(x.shape[1:])} do not fit the model's input {model.input_shape}")
    names = model.metadata.get("class_names") or splits.class_names
    k_model = 2 if model.output_shape[-1] == 1 else model.output_shape[-1]
    if splits.num_classes != k_model:
        raise ShapeError(f"{args.data} has {splits.num_classes} classes {splits.class_names}, but the model "
                         f"predicts {k_model} ({', '.join(map(str, names))})")
    rep = evaluate(model, x, y, threshold=args.threshold)
    print(format_report(rep, names))
    return 0


def _cmd_predict(args):
    import csv

    model = load_model(args.model)
    files = list_images(args.path)
    kept, p, skipped = distributed.predict_files(model, files, images_for_model)  # i14: files split over ranks
    for f, why in skipped:
        print(f"skipped {f}: {why}")
    names = model.metadata.get("class_names") or [str(i) for i in range(max(p.shape[1], 2))]
    rows = []
    for f, pr in zip(kept, p, strict=True):
        if p.shape[1] == 1:
            label = names[1] if pr[0] >= args.threshold else names[0]
            rows.append((f, f"{pr[0]:.4f}", label))
        else:
            rows.append((f, " ".join(f"{v:.4f}" for v in pr), names[int(pr.argmax())]))
    for r in rows:
        print("\t".join(r))
    if args.csv and distributed.is_root():  # i14: one writer under MPI
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "probability", "prediction"])
            w.writerows(rows)
    return 0


def add_cli(sub):
    p = sub.add_parser("demo", help="train a small diagnosis model on built-in synthetic chest X-rays")
    p.add_argument("--out", default=DEMO_OUT, help=f"model file to write (default {DEMO_OUT})")
    p.add_argument("--n", type=int, default=2400, help="number of synthetic cases")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true", help="progress bar per epoch")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train on a .npz file, an image folder or a DICOM folder")
    p.add_argument("--data", required=True, help="MedMNIST-style .npz, or a folder with one sub-folder per class")
    p.add_argument("--image-size", type=int, default=None, help="resize images to N x N")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--class-weight", choices=["balanced"], default=None)
    p.add_argument("--augment", action="store_true", help="random flips, rotations, shifts, brightness")
    p.add_argument("--patience", type=int, default=None, help="early stopping on the validation loss")
    p.add_argument("--checkpoint", default=None, help="write a checkpoint here after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="model file to write")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="clinical metrics of a model file on labelled data")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--threshold", type=float, default=0.5)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="predict images or a folder of images")
    p.add_argument("--model", required=True)
    p.add_argument("path", metavar="IMAGE|FOLDER")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--csv", default=None, help="also write the predictions to this CSV file")
    p.set_defaults(func=_cmd_predict)
