"""The diagnosis pipeline: data in, a trained and evaluated diagnosis model out.

Used by the ``tinycnn`` commands (:mod:`tinycnn.commands`) and usable from Python:

>>> from tinycnn import pipeline, data
>>> splits = data.load_dataset("pneumoniamnist.npz")
>>> model, history, report = pipeline.train(splits, epochs=10)
>>> print(pipeline.format_report(report))
"""

import os
import time

import numpy as np

from . import distributed
from .errors import ConfigError, DataError
from .layers import BatchNormalization, Conv2D, Dense, Dropout, GlobalAveragePooling2D, MaxPooling2D
from .models import Sequential


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
    report = evaluate(model, *part, task=splits.task, class_names=splits.class_names) if part is not None else None
    if out and distributed.is_root():  # i14: one writer under MPI
        model.save(out)
    return model, history, report


def evaluate(model, x, y, task=None, threshold=0.5, class_names=None):
    """Clinical metrics of ``model`` on (x, y).

    A dict from :func:`tinycnn.metrics.classification_report` plus ``n``, ``class_counts`` and,
    for binary tasks, ``auc_95ci`` and ``auc_note`` from :func:`auc_with_ci` and the threshold
    reaching 95% sensitivity (when there is a positive case).
    """
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
    k = 2 if task == "binary" else score.shape[1]
    rep = {"task": task, "n": int(len(y)), "class_counts": np.bincount(y.reshape(-1), minlength=k).tolist(), **rep}
    if task == "binary":
        rep.update(auc_with_ci(y, score, class_names=class_names))
        if y.sum() > 0:
            rep["threshold_for_95_sensitivity"] = float(metrics.threshold_for_sensitivity(y, score, 0.95))
    return rep


MIN_CASES_FOR_CI = 10  # of each class, for a bootstrap CI of the AUC


def auc_with_ci(y, score, n_bootstraps=500, seed=0, class_names=None):
    """ROC-AUC of binary scores and its percentile-bootstrap 95% CI, where they mean something.

    The AUC is undefined without a case of each class. The CI is left out with fewer than
    ``MIN_CASES_FOR_CI`` cases of a class: the resamples then repeat the same few cases and
    the interval collapses (to 0.000-0.000 for one badly ranked positive) instead of
    showing how uncertain the AUC is.

    Parameters
    ----------
    y : array (N,) of 0/1
    score : array (N,)
    class_names : (str, str), optional
        For the note; default ('negative', 'positive').

    Returns
    -------
    dict
        ``auc`` (NaN when undefined), ``auc_95ci`` ([low, high] or None) and ``auc_note``
        (why either is missing, else None).
    """
    from . import metrics

    y = np.asarray(y).reshape(-1)
    names = [str(c) for c in (class_names or ("negative", "positive"))]
    counts = [int((y == 0).sum()), int((y == 1).sum())]
    if min(counts) == 0:
        missing = names[counts.index(0)]
        return {"auc": float("nan"), "auc_95ci": None,
                "auc_note": f"undefined: no case of class {missing} in this set (the AUC needs both classes)"}
    if min(counts) < MIN_CASES_FOR_CI:
        few = min(range(2), key=lambda c: counts[c])
        return {"auc": metrics.roc_auc(y, score), "auc_95ci": None,
                "auc_note": f"no 95% CI: only {counts[few]} case(s) of class {names[few]}; a bootstrap CI needs "
                            f"at least {MIN_CASES_FOR_CI} of each class"}
    auc, lo, hi = metrics.bootstrap_auc_ci(y, score, n_bootstraps=n_bootstraps, seed=seed)
    return {"auc": auc, "auc_95ci": [lo, hi], "auc_note": None}


def _num(v):
    """A number for the report text: ``n/a`` where it is undefined (NaN or missing)."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"


def format_report(rep, class_names=None):
    """A short, clinician-readable text of :func:`evaluate`'s dict; undefined numbers read ``n/a``."""
    if rep is None:
        return "no evaluation data"
    cm = rep.get("confusion_matrix")
    names = [str(c) for c in (class_names or range(len(cm) if cm is not None else 2))]
    counts = rep.get("class_counts")
    head = f"cases: {rep['n']}"
    if counts is not None and len(counts) == len(names):
        head += " (" + ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True)) + ")"
    lines = [head]
    if rep.get("task") == "binary":
        lines.append(f"positive class: {names[1]}; a case is called {names[1]} when p({names[1]}) >= "
                     f"{rep.get('threshold', 0.5):g}")
    if "auc" in rep and np.isscalar(rep["auc"]):
        line = f"{'ROC-AUC':<28}{_num(rep['auc'])}"
        if rep.get("auc_95ci"):
            line += f"   (95% CI {rep['auc_95ci'][0]:.3f}-{rep['auc_95ci'][1]:.3f})"
        if rep.get("auc_note"):
            line += f"   ({rep['auc_note']})"
        lines.append(line)
    for k, label in [("accuracy", "accuracy"), ("sensitivity", "sensitivity (recall)"),
                     ("specificity", "specificity"), ("precision", "precision (PPV)"), ("f1", "F1")]:
        if k in rep and np.isscalar(rep[k]):
            lines.append(f"{label:<28}{_num(rep[k])}")
    if "threshold_for_95_sensitivity" in rep:
        lines.append(f"{'threshold for 95% sens.':<28}{rep['threshold_for_95_sensitivity']:.3f}")
    if cm is not None:
        cm = np.asarray(cm)
        w = max(8, *(len(n) + 2 for n in names))
        lines.append("confusion matrix (rows: true, columns: predicted)")
        lines.append(" " * w + "".join(f"{n:>{w}}" for n in names))
        for n, row in zip(names, cm, strict=True):
            lines.append(f"{n:>{w}}" + "".join(f"{v:>{w}}" for v in row))
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


# ------------------------------------------------------------------ the demo's data
DEMO_CLASSES = ["normal", "nodule"]


def demo_splits(n=2400, image_size=64, seed=0):
    """The demo's data: ``n`` synthetic chest radiographs, half with nodules, cut 70/15/15 by class."""
    from . import data

    ds = data.synthetic_chest_xrays(n=n, image_size=image_size, positive_fraction=0.5, seed=seed)
    tr, va, te = data.stratified_split(ds.y, (0.7, 0.15, 0.15), seed=seed)
    return data.DataSplits(train=(ds.x[tr], ds.y[tr]), val=(ds.x[va], ds.y[va]), test=(ds.x[te], ds.y[te]),
                           class_names=list(DEMO_CLASSES), task="binary", num_classes=2,
                           source="synthetic_chest_xrays")
