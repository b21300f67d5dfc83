"""Labels as a model reads them: a binary model's one output is P(positive class).

Design: at training time the labels of a binary task are encoded ``y == positive index`` (1 for
the positive class, 0 for the other), so the sigmoid output *is* the probability of the
positive class whatever its index in the data (BreastMNIST's malignant is label 0). The model
file keeps ``class_names`` in the data's label order and names the output's class in
``positive_class``; anything that judges a model on labelled data encodes the labels the same
way, from the names (:func:`targets`). A model file without ``positive_class`` (written before
it was stored) predicts its second class, as it always did.
"""

import dataclasses

import numpy as np

from ..errors import ConfigError
from .operating_point import check_target_sensitivity
from .positive import choose_positive, find_class


def binary_classes(meta):
    """``(negative, positive)`` names of a binary model from its metadata (``class_names``,
    ``positive_class``; the second class when it stores none)."""
    names = [str(c) for c in (meta.get("class_names") or ("0", "1"))]
    positive = meta.get("positive_class")
    if positive is None or positive not in names:
        positive = names[1]
    return names[1 - names.index(positive)], positive


def output_names(meta, n_outputs):
    """The class of each column of the model's output: ``[negative, positive]`` for one sigmoid
    output (column 0 is P(positive); the call is negative or positive), else the class names."""
    if n_outputs == 1:
        return list(binary_classes(meta))
    names = [str(c) for c in meta.get("class_names") or ()]
    return names if len(names) == n_outputs else [str(k) for k in range(n_outputs)]


def training_view(splits, positive_class=None, target_sensitivity=None):
    """``splits`` with binary labels encoded ``y == positive index`` and classes ``[negative, positive]``.

    Returns ``(view, positive)``: ``positive`` is a :class:`~tinycnn.clinical.positive.Positive`
    for binary tasks, None otherwise (then ``view`` is ``splits``). The view is consistent (its
    labels index its class names), so training and evaluating it needs no other knowledge.
    ``target_sensitivity`` is checked here, before any training: binary tasks with a validation
    part only.
    """
    target_sensitivity = check_target_sensitivity(target_sensitivity)
    if splits.task != "binary":
        for name, value in (("positive_class", positive_class), ("target_sensitivity", target_sensitivity)):
            if value is not None:
                raise ConfigError(f"{name} applies to binary tasks; this {splits.task} task has "
                                  f"{splits.num_classes} classes, each reported against the rest")
        return splits, None
    if target_sensitivity is not None and splits.val is None:
        raise ConfigError("target_sensitivity needs a validation part to choose the threshold on")
    positive = choose_positive(splits.class_names, positive_class)
    if positive.index == 1:
        return splits, positive

    def encode(part):
        return None if part is None else (part[0], (np.asarray(part[1]) == positive.index).astype(np.int64))

    view = dataclasses.replace(splits, train=encode(splits.train), val=encode(splits.val), test=encode(splits.test),
                               class_names=[positive.negative, positive.name])
    return view, positive


def targets(model, y, class_names=None):
    """Labels ``y`` of the classes ``class_names`` (default: the model's) as ``model``'s outputs read them.

    Returns ``(targets, names, note)``: binary models get 0/1 (1 = the positive class) and
    ``names = [negative, positive]``; multi-class models get class indices in the model's order
    and its class names; multi-label ones their label matrix unchanged. Classes are matched by
    name; when the data name other classes than the model (an ``.npz`` stores none), label k is
    taken as the model's class k and ``note`` says so (else None).
    """
    meta = model.metadata or {}
    width = int(model.output_shape[-1])
    task = meta.get("task") or ("binary" if width == 1 else "multiclass")
    y = np.asarray(y)
    model_names = [str(c) for c in meta.get("class_names") or []]
    data_names = [str(c) for c in class_names] if class_names is not None else list(model_names)
    if task == "multilabel":
        return y, model_names or data_names, None
    y = y.reshape(-1).astype(np.int64)
    note = None
    if model_names and data_names and sorted(data_names) != sorted(model_names):
        note = (f"the data's classes ({', '.join(data_names)}) are not the model's ({', '.join(model_names)}): "
                "label k is taken as the model's class k")
        data_names = model_names
    if task == "binary":
        if not model_names:
            names = data_names or ["0", "1"]
            return y, [names[0], names[1]], note
        negative, positive = binary_classes(meta)
        k = find_class(data_names, positive, "the positive class")
        return (y == k).astype(np.int64), [negative, positive], note
    if model_names and data_names != model_names:
        y = np.array([model_names.index(n) for n in data_names])[y]
    return y, model_names or data_names or [str(k) for k in range(width)], note
