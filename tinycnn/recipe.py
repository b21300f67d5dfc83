"""The default training recipe: an architecture and its training settings, derived from the data.

:func:`for_data` looks only at what the data are: image size and channels, the task, the
number of training images and, where it can tell, the imaging modality (from a MedMNIST file
name, or given). :func:`tinycnn.pipeline.train` uses it for every setting it is not given.
Each choice was measured by cross-validation on the training and validation parts of
BreastMNIST and RetinaMNIST, never on a test split; the figures are in README.md ("Real data").

>>> from tinycnn import data, recipe
>>> splits = data.load_dataset("breastmnist.npz")
>>> r = recipe.for_data(splits)
>>> r.epochs, r.ensemble, r.augment
"""

import math
import os
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .errors import ConfigError

#: Training images presented per run, over all ensemble members, at 28x28 (scaled by the pixel
#: count for larger images): it bounds the training time on any data set, so a 100k-image set
#: gets few epochs, not hours. It buys RetinaMNIST's 1,080 training images 7 members of 60
#: epochs (453,600 images, about 3.5 minutes on 2 cores).
IMAGE_BUDGET = 500_000
#: Epochs for a small data set (60 did better than 30 on validation; more was not tried).
MAX_EPOCHS = 60
#: Fewest epochs a member of an ensemble gets: the ensemble is as large as the budget allows
#: with this many epochs each, up to :data:`ENSEMBLE`; below it one model is trained.
MIN_ENSEMBLE_EPOCHS = 30
#: Largest seed ensemble. On 5-fold cross-validation of train + val, 7 members scored at least
#: as well as 5, and 5 at least as well as 3, on both AUC and ACC of BreastMNIST and
#: RetinaMNIST (benchmarks/recipe_cv.py; README, "Real data").
ENSEMBLE = 7

#: The imaging modality of the 2-D MedMNIST v2 data sets, by file name.
MEDMNIST_MODALITIES = {
    "breastmnist": "ultrasound", "retinamnist": "fundus", "pneumoniamnist": "chest_xray",
    "chestmnist": "chest_xray", "dermamnist": "dermatoscopy", "bloodmnist": "microscopy",
    "pathmnist": "histology", "tissuemnist": "microscopy", "octmnist": "oct",
    "organamnist": "ct", "organcmnist": "ct", "organsmnist": "ct",
}

# Flips only where the anatomy allows: a chest film or a CT slice has a left and a right (the
# heart, the liver), ultrasound and OCT have a depth axis that must stay vertical, a fundus
# photograph may be mirrored (left and right eyes) and turned over, slides and skin have no
# orientation at all. Unknown modality: no flips. Brightness and contrast everywhere. No
# rotations or shifts: at 28x28 their bilinear resampling blurs every training image, which
# the network then sees only in training; on BreastMNIST's validation folds, adding them to
# flips, brightness and contrast lowered the AUC from 0.899 to 0.877 (README, "Real data").
_INTENSITY = dict(rotation=0.0, shift=0.0, brightness=0.1, contrast=0.1)
AUGMENTATIONS = {
    None: dict(horizontal_flip=False, vertical_flip=False, **_INTENSITY),
    "chest_xray": dict(horizontal_flip=False, vertical_flip=False, **_INTENSITY),
    "ct": dict(horizontal_flip=False, vertical_flip=False, **_INTENSITY),
    "ultrasound": dict(horizontal_flip=True, vertical_flip=False, **_INTENSITY),
    "oct": dict(horizontal_flip=True, vertical_flip=False, **_INTENSITY),
    "fundus": dict(horizontal_flip=True, vertical_flip=True, **_INTENSITY),
    "dermatoscopy": dict(horizontal_flip=True, vertical_flip=True, **_INTENSITY),
    "histology": dict(horizontal_flip=True, vertical_flip=True, **_INTENSITY),
    "microscopy": dict(horizontal_flip=True, vertical_flip=True, **_INTENSITY),
}


@dataclass(frozen=True)
class Recipe:
    """Everything :func:`tinycnn.pipeline.train` needs beyond the data.

    Attributes
    ----------
    width : int
        Channels of the stem; each residual stage doubles them.
    blocks : tuple of int
        Residual blocks per stage; every stage after the first halves the resolution.
    pools : int
        2x2 max-poolings in the stem (one per octave above 14 px).
    dropout : float
        Before the output layer.
    epochs, batch_size, learning_rate, warmup_fraction
        Adam at ``learning_rate`` with a linear warm-up over ``warmup_fraction`` of the steps,
        then a half cosine to zero (:class:`tinycnn.callbacks.CosineDecay`).
    augment : dict or None
        :class:`tinycnn.data.Augmenter` arguments.
    ensemble : int
        Models trained from different seeds (:func:`member_seed`) and averaged in one model file.
    test_time_flips : bool
        Also average each model over the flips its training augmentation used.
    modality : str or None
    """

    width: int = 32
    blocks: tuple = (1, 1)
    pools: int = 1
    dropout: float = 0.2
    epochs: int = MAX_EPOCHS
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_fraction: float = 0.05
    augment: dict | None = field(default_factory=lambda: dict(AUGMENTATIONS[None]))
    ensemble: int = 1
    test_time_flips: bool = True
    modality: str | None = None

    def __post_init__(self):
        for name in ("width", "pools", "epochs", "batch_size", "ensemble"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"{name} must be a positive int, got {v!r}")
        if not self.blocks or any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1
                                  for b in self.blocks):
            raise ConfigError(f"blocks must be positive ints, one per stage, got {self.blocks!r}")
        if isinstance(self.learning_rate, bool) or not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0 <= self.dropout < 1 or not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"dropout and warmup_fraction must lie in [0, 1), got {self.dropout!r} "
                              f"and {self.warmup_fraction!r}")

    def build_model(self, input_shape, num_classes, task):
        """The network, built for ``input_shape`` (H, W, C)."""
        return residual_cnn(input_shape, num_classes, task, width=self.width, blocks=self.blocks,
                            pools=self.pools, dropout=self.dropout)

    def augmenter(self):
        from .data import Augmenter

        return Augmenter(**self.augment) if self.augment else None

    def schedule(self, n_train):
        """The learning-rate callback for ``n_train`` training images."""
        from .callbacks import CosineDecay

        total = self.epochs * math.ceil(n_train / self.batch_size)
        return CosineDecay(self.learning_rate, total, warmup_steps=int(self.warmup_fraction * total))

    def replace(self, **changes):
        """A copy with some settings changed (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self):
        d = asdict(self)
        d["blocks"] = list(self.blocks)
        return d


def modality_of(source):
    """The modality of a MedMNIST file (by its name, e.g. ``.../breastmnist.npz``), else None."""
    stem = os.path.basename(os.fspath(source or "")).lower()
    stem = stem.split(".")[0].replace("_", "").replace("-", "")
    for name, modality in MEDMNIST_MODALITIES.items():
        if stem.startswith(name):
            return modality
    return None


def for_data(splits, modality=None):
    """The recipe for a :class:`tinycnn.data.DataSplits`.

    Parameters
    ----------
    splits : DataSplits
    modality : str, optional
        One of the keys of :data:`AUGMENTATIONS`; default: from the file name of a MedMNIST
        source, else unknown (no flips).
    """
    if splits.train is None:
        raise ConfigError("the recipe needs a training part")
    H, W, _ = splits.input_shape
    n = len(splits.train[1])
    if modality is None:
        modality = modality_of(splits.source)
    if modality not in AUGMENTATIONS:
        raise ConfigError(f"unknown modality {modality!r}; choose one of {sorted(m for m in AUGMENTATIONS if m)}")
    budget = IMAGE_BUDGET * (28 * 28) / (H * W)  # the cost of a step grows with the pixel count
    ensemble = int(max(1, min(ENSEMBLE, budget // (MIN_ENSEMBLE_EPOCHS * n))))
    epochs = int(max(1, min(MAX_EPOCHS, budget // (ensemble * n))))
    return Recipe(pools=stem_pools(H, W), epochs=epochs, ensemble=ensemble, modality=modality,
                  augment=dict(AUGMENTATIONS[modality]))


def stem_pools(H, W):
    """Max-poolings in the stem: one at 28 px, one more per doubling (the residual stages then
    start near 14 px)."""
    return max(1, round(math.log2(min(H, W) / 14)))


def residual_cnn(input_shape, num_classes=2, task="binary", width=32, blocks=(1, 1), pools=1, dropout=0.2):
    """A small ResNet for diagnosis.

    ``[Conv(w) BN ReLU MaxPool] x pools -> ResidualBlock(w 2^i, stride 2 from the second
    stage) ... -> Conv1x1(w 2^stages) BN ReLU -> GlobalAveragePooling -> Dropout -> Dense``.

    Parameters
    ----------
    input_shape : (H, W, C)
    num_classes : int
        2 for a binary task (one sigmoid output); K > 2 for softmax; L labels for multilabel.
    task : {'binary', 'multiclass', 'multilabel'}
    """
    from .layers import (
        BatchNormalization,
        Conv2D,
        Dropout,
        GlobalAveragePooling2D,
        MaxPooling2D,
        ReLU,
        ResidualBlock,
    )
    from .models import Sequential

    layers = []
    # fixed names (Keras' ResNets name their layers too): every build has the same architecture
    # config, so a checkpoint resumes into any model the recipe builds (ensemble members included)
    for i in range(pools):
        kw = {"input_shape": tuple(input_shape)} if i == 0 else {}
        # momentum 0.9: small medical sets give few steps per epoch (see pipeline.diagnosis_model)
        layers += [Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer="he_uniform",
                          name=f"stem{i + 1}_conv", **kw),
                   BatchNormalization(momentum=0.9, name=f"stem{i + 1}_bn"), ReLU(name=f"stem{i + 1}_relu"),
                   MaxPooling2D(2, name=f"stem{i + 1}_pool")]
    for stage, n in enumerate(blocks):
        for b in range(n):
            layers.append(ResidualBlock(width * 2**stage, strides=2 if stage and not b else 1, momentum=0.9,
                                        name=f"stage{stage + 1}_block{b + 1}"))
    # a 1x1 convolution widens the last map before pooling (as diagnosis_model's last conv):
    # more features for the classifier at little cost, and a Conv2D for Grad-CAM
    layers += [Conv2D(width * 2 ** len(blocks), 1, use_bias=False, kernel_initializer="he_uniform", name="head_conv"),
               BatchNormalization(momentum=0.9, name="head_bn"), ReLU(name="head_relu")]
    layers.append(GlobalAveragePooling2D(name="pool"))
    if dropout:
        layers.append(Dropout(dropout, name="dropout"))
    layers.append(output_layer(num_classes, task, name="output"))
    return Sequential(layers, name="residual_cnn")


def output_layer(num_classes, task, name=None):
    """The output layer of a task: one sigmoid unit for 'binary', a softmax over the classes for
    'multiclass', one sigmoid per label for 'multilabel'."""
    from .layers import Dense

    if task == "binary":
        return Dense(1, activation="sigmoid", name=name)
    if task == "multiclass":
        return Dense(num_classes, activation="softmax", name=name)
    if task == "multilabel":
        return Dense(num_classes, activation="sigmoid", name=name)
    raise ConfigError(f"task must be 'binary', 'multiclass' or 'multilabel', got {task!r}")


# ------------------------------------------------------------------ training
def member_seed(seed, k):
    """Seed of ensemble member ``k``: member 0 takes ``seed`` itself (so a one-model run equals
    the first member), the others seeds drawn from ``(seed, k)``, so that the ensembles of
    different seeds share no member."""
    if k == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), k]).generate_state(1)[0])


def member_path(path, k, K):
    """Checkpoint file of member ``k`` of ``K`` (``path`` itself for a single model)."""
    if path is None or K == 1:
        return path
    base, ext = os.path.splitext(os.fspath(path))
    return f"{base}-{k + 1}of{K}{ext}"


def fit(recipe, splits, compile_model, seed=0, model=None, augment="recipe", callbacks=None, checkpoint=None,
        resume=None, **fit_kwargs):
    """Train ``recipe.ensemble`` models on ``splits.train``; return ``(model, history)``.

    Each member is built by the recipe (or is ``model``, for a single model), compiled by
    ``compile_model(model)``, seeded with :func:`member_seed` and trained with the recipe's
    learning-rate schedule (unless ``callbacks`` already set the rate) and augmentation
    (``augment='recipe'``; None for none, or an augmenter). K > 1 members, or one member with
    test-time flips (those of the augmentation, when ``recipe.test_time_flips``), are joined into
    ``Sequential([Ensemble(members, flips)])``; the history is the mean over members, epoch by
    epoch. With ``checkpoint``, member k of K > 1 writes ``name-kofK.ext``; a resumed run skips
    the members whose checkpoint is complete and restarts the one that was interrupted.
    """
    from . import callbacks as C
    from .layers import Ensemble
    from .models import Sequential
    from .random import set_random_seed

    K = recipe.ensemble
    if model is not None and K != 1:
        raise ConfigError(f"an ensemble of {K} needs models built by the recipe; pass model=None or ensemble=1")
    x, y = splits.train
    aug = recipe.augmenter() if isinstance(augment, str) and augment == "recipe" else augment
    user_cbs = list(callbacks or [])
    sets_rate = any(isinstance(cb, (C.CosineDecay, C.ReduceLROnPlateau)) for cb in user_cbs)
    members, histories = [], []
    for k in range(K):
        if K > 1 and fit_kwargs.get("verbose", 1):
            print(f"ensemble member {k + 1} of {K} (seed {member_seed(seed, k)})", flush=True)
        set_random_seed(member_seed(seed, k))
        m = model if model is not None else recipe.build_model(tuple(x.shape[1:]), splits.num_classes, splits.task)
        compile_model(m)
        path = member_path(checkpoint, k, K)
        res = resume
        if res is not None and res is not False and K > 1:
            res = path if path is not None and os.path.exists(path) else None  # not reached before the stop
        cbs = user_cbs + ([] if sets_rate else [recipe.schedule(len(y))])
        h = m.fit(x, y, epochs=recipe.epochs, batch_size=recipe.batch_size, validation_data=splits.val,
                  augment=aug, callbacks=cbs, checkpoint=path, resume=res, **fit_kwargs)
        members.append(m)
        histories.append(h)
    flips = [f for f in ("horizontal", "vertical") if recipe.test_time_flips and getattr(aug, f"{f}_flip", False)]
    if K == 1 and not flips:
        return members[0], histories[0]
    joined = Sequential([Ensemble(members, flips=flips)], name=f"ensemble_of_{K}")
    compile_model(joined)
    history = C.History()
    n = min(len(h.epoch) for h in histories)
    history.epoch = list(range(n))
    keys = set.intersection(*(set(h.history) for h in histories))
    history.history = {key: [sum(h.history[key][e] for h in histories) / K for e in range(n)] for key in sorted(keys)}
    return joined, history
