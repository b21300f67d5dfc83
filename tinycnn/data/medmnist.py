"""Class names and task types of the MedMNIST v2 2D data sets, for ``.npz`` files that carry none.

Transcribed from the ``INFO`` dictionary of the ``medmnist`` package, version 3.0.2 on PyPI
(``medmnist/info.py``: ``INFO[name]["label"]`` and ``INFO[name]["task"]``), which describes
the files of Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D
biomedical image classification", Scientific Data 10, 41 (2023). The names are copied as the
package spells them (RetinaMNIST's grades are '0' to '4'). medmnist is not a dependency and
nothing here reads the network.

A file is recognised by its name: ``breastmnist.npz`` and the larger editions
``breastmnist_64.npz``, ``_128``, ``_224`` (any case), or by ``dataset='breastmnist'``.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

_ORGANS = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver", "lung-left",
           "lung-right", "pancreas", "spleen")

#: name -> (MedMNIST's task, label names by label index)
TABLE = {
    "pathmnist": ("multi-class", (
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
        "cancer-associated stroma", "colorectal adenocarcinoma epithelium")),
    "chestmnist": ("multi-label, binary-class", (
        "atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia",
        "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia")),
    "dermamnist": ("multi-class", (
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
        "benign keratosis-like lesions", "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions")),
    "octmnist": ("multi-class", ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal")),
    "pneumoniamnist": ("binary-class", ("normal", "pneumonia")),
    "retinamnist": ("ordinal-regression", ("0", "1", "2", "3", "4")),
    "breastmnist": ("binary-class", ("malignant", "normal, benign")),
    "bloodmnist": ("multi-class", (
        "basophil", "eosinophil", "erythroblast",
        "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte", "monocyte",
        "neutrophil", "platelet")),
    "tissuemnist": ("multi-class", (
        "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule", "Glomerular endothelial cells",
        "Interstitial endothelial cells", "Leukocytes", "Podocytes", "Proximal Tubule Segments",
        "Thick Ascending Limb")),
    "organamnist": ("multi-class", _ORGANS),
    "organcmnist": ("multi-class", _ORGANS),
    "organsmnist": ("multi-class", _ORGANS),
}

#: MedMNIST's task -> how tinycnn trains it (an ordinal task is trained as multi-class, as in the paper)
_TRAINED_AS = {"binary-class": "binary", "multi-class": "multiclass", "ordinal-regression": "multiclass",
               "multi-label, binary-class": "multilabel"}
_FILE_NAME = re.compile(r"^(?P<name>[a-z]+mnist)(?:_(?:28|64|128|224))?\.npz$")


@dataclass(frozen=True)
class MedMNISTInfo:
    """One row of the table.

    Attributes
    ----------
    name : str
        e.g. 'breastmnist'.
    medmnist_task : str
        As MedMNIST states it: 'binary-class', 'multi-class', 'ordinal-regression' or
        'multi-label, binary-class'.
    class_names : tuple of str
        By label index (by label column for multi-label).
    """

    name: str
    medmnist_task: str
    class_names: tuple

    @property
    def task(self):
        """How tinycnn trains it: 'binary', 'multiclass' or 'multilabel'."""
        return _TRAINED_AS[self.medmnist_task]

    @property
    def ordinal(self):
        """True for ordered grades (RetinaMNIST): kappa and the grade error are reported too."""
        return self.medmnist_task == "ordinal-regression"


def lookup(name):
    """The table's row for a data set name ('BreastMNIST', 'breastmnist'); ConfigError if unknown."""
    key = str(name).strip().lower()
    if key not in TABLE:
        raise ConfigError(f"dataset {name!r} is not a MedMNIST v2 2D data set; known: {', '.join(sorted(TABLE))}")
    task, names = TABLE[key]
    return MedMNISTInfo(key, task, names)


def for_file(path):
    """The table's row for a file named like a MedMNIST file (``pneumoniamnist_128.npz``), else None."""
    m = _FILE_NAME.match(Path(path).name.lower())
    return lookup(m["name"]) if m and m["name"] in TABLE else None
