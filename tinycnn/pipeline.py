"""The diagnosis pipeline: data in, a trained and evaluated diagnosis model out.

Used by the ``tinycnn`` commands (:mod:`tinycnn.commands`) and usable from Python:

>>> from tinycnn import pipeline, data
>>> splits = data.load_dataset("pneumoniamnist.npz")
>>> model, history, report = pipeline.train(splits, epochs=10)
>>> print(pipeline.format_report(report))
"""

import os
import time
import warnings

from . import distributed
from .errors import DataError
from .layers import BatchNormalization, Conv2D, Dropout, GlobalAveragePooling2D, MaxPooling2D
from .models import Sequential
from .recipe import output_layer


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
    layers.append(output_layer(num_classes, task))
    return Sequential(layers, name="diagnosis_cnn")


def _relu():
    from .layers import ReLU

    return ReLU()


def loss_for(task):
    return {"binary": "binary_crossentropy", "multiclass": "sparse_categorical_crossentropy",
            "multilabel": "binary_crossentropy"}[task]


# ------------------------------------------------------------------ training
def train(splits, epochs=None, batch_size=None, learning_rate=None, class_weight=None, augment="recipe",
          model=None, out=None, verbose=1, seed=0, callbacks=None, checkpoint=None, resume=None, patience=None,
          positive_class=None, target_sensitivity=None, ensemble=None, recipe=None):
    """Train a diagnosis model on ``splits`` (a :class:`tinycnn.data.DataSplits`).

    Settings left None, the architecture (``model=None``) and the augmentation
    (``augment='recipe'``; None for none) come from ``recipe``, by default
    :func:`tinycnn.recipe.for_data` of the data; ``ensemble=K`` trains K models from
    different seeds and averages them in one model (see :func:`tinycnn.recipe.fit`).

    Binary tasks: the model's output is the probability of ``positive_class`` (default: the
    class not named like a negative finding, see :mod:`tinycnn.clinical.positive`; a
    ``PositiveClassWarning`` says when no name decided it), and the decision threshold is chosen on the
    validation part: Youden's J, or with ``target_sensitivity`` the highest threshold reaching
    it (:mod:`tinycnn.clinical.operating_point`).

    Returns ``(model, history, report)``; ``report`` holds the test metrics (or validation,
    if there is no test part). With ``out`` the model is saved with its preprocessing
    settings (image size, channels, task) and its meaning (class names, positive class,
    decision threshold: :mod:`tinycnn.clinical.model_file`), never with any image or label.
    """
    from . import callbacks as C
    from . import clinical
    from . import recipe as recipes
    from .optimizers import Adam

    if splits.train is None:
        raise DataError(f"{splits.source or 'the data'} has no training part")
    data, (splits, positive) = splits, clinical.training_view(splits, positive_class, target_sensitivity)
    _say_default_positive(positive)
    x, y = splits.train
    if model is not None and ensemble is None:
        ensemble = 1
    r = (recipe or recipes.for_data(data)).replace(epochs=epochs, batch_size=batch_size,
                                                   learning_rate=learning_rate, ensemble=ensemble)
    metadata = {"image_size": list(x.shape[1:3]), "channels": int(x.shape[3]), "task": splits.task,
                "class_names": [str(c) for c in splits.class_names], "value_range": [0.0, 1.0],
                "recipe": r.to_dict()}

    def compile_model(m):
        m.compile(Adam(r.learning_rate), loss_for(splits.task),
                  metrics=["accuracy", "auc"] if splits.task != "multilabel" else ["auc"])
        m.metadata = dict(metadata)

    cbs = list(callbacks or [])
    if splits.val is not None and patience:
        # on the validation loss, not AUC: AUC saturates at 1.0 early while calibration still improves
        cbs.append(C.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True))
    t0 = time.perf_counter()
    model, history = recipes.fit(r, splits, compile_model, seed=seed, model=model, augment=augment, callbacks=cbs,
                                 checkpoint=checkpoint, resume=resume, class_weight=class_weight, verbose=verbose)
    model.metadata["train_seconds"] = round(time.perf_counter() - t0, 1)
    model.metadata.update(clinical.semantics(model, data, splits, positive, target_sensitivity))
    model.metadata["history"] = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    part = splits.test if splits.test is not None else splits.val
    report = evaluate(model, *part, task=splits.task, class_names=splits.class_names) if part is not None else None
    if out and distributed.is_root():  # i14: one writer under MPI
        model.save(out)
    return model, history, report


def _say_default_positive(positive):
    from .clinical import PositiveClassWarning

    if positive is not None and not positive.by_name:
        warnings.warn(f"positive class: {positive.name} ({positive.rule}); the model's probability is "
                      f"p({positive.name}). If {positive.negative} is the finding to detect, pass "
                      f"positive_class={positive.negative!r}", PositiveClassWarning, stacklevel=3)


def evaluate(model, x, y, task=None, threshold=None, class_names=None):
    """Clinical metrics of ``model`` on (x, y): :func:`tinycnn.clinical.evaluate`.

    ``y`` holds class indices of ``class_names`` (default the model's; matched to the model's
    classes by name). Binary: ``threshold`` defaults to the model's stored one, else 0.5.
    """
    from . import clinical

    return clinical.evaluate(model, x, y, task=task, threshold=threshold, class_names=class_names)


def format_report(rep, class_names=None):
    """A short, clinician-readable text of :func:`evaluate`'s dict: :func:`tinycnn.clinical.format_report`."""
    from . import clinical

    return clinical.format_report(rep, class_names)


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
