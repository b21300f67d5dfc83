"""One entry point for every on-disk format: :func:`load_dataset`."""

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from . import preprocess
from ._common import check_color, check_fraction
from ._folders import looks_like_dicom, scan_class_folders
from .containers import DataSplits
from .dicom import load_dicom_folder
from .dicom_lazy import DicomFolderDataset
from .groups import assign_groups
from .images import ImageFolderDataset, load_image_folder
from .npz import load_npz
from .split import stratified_group_split


def detect_format(path):
    """What :func:`load_dataset` would read at ``path``: 'npz', 'images' or 'dicom'.

    A folder counts as DICOM when most of its class folders' files have a ``.dcm`` name or
    the DICOM marker.

    Raises
    ------
    DataError
        The path is missing, or a file other than ``.npz``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return "npz"
        raise DataError(f"{path}: unsupported file; expected an .npz archive or a folder of class sub-folders")
    _, files, _ = scan_class_folders(path, ignore={"DICOMDIR"})
    n_dicom = sum(looks_like_dicom(f) for f in files)
    return "dicom" if 2 * n_dicom > len(files) else "images"


def load_dataset(
    path,
    image_size=None,
    color=None,
    val_fraction=0.15,
    test_fraction=0.15,
    seed=0,
    *,
    window=None,
    lazy=False,
    skip_bad=False,
    groups=None,
    group_pattern=None,
    dataset=None,
):
    """Load a data set from an ``.npz`` archive or a folder of class sub-folders.

    - ``*.npz``: a MedMNIST-style archive with its own train / val / test parts
      (:func:`load_npz`); the fractions are not used.
    - a folder of image class folders (:func:`load_image_folder`) or of DICOM class folders
      (:func:`load_dicom_folder`), told apart by :func:`detect_format`; it is cut into
      train / val / test by :func:`stratified_group_split`, so that no patient (DICOM
      PatientID, or the ``groups`` / ``group_pattern`` given) and no multi-frame file has
      images in two parts (:mod:`tinycnn.data.groups`). DICOM images are mapped to [0, 1] by
      ``window`` if given, else each by its own minimum and maximum.

    Parameters
    ----------
    path : str or Path
    image_size : int or (int, int), optional
        Resize to (height, width).
    color : {'grayscale', 'rgb'}, optional
        Default: as stored for ``.npz``, 'grayscale' for folders.
    val_fraction, test_fraction : float
        Shares of a folder's images for validation and test (either may be 0, giving None).
    seed : int
        For the split.
    window : str or (float, float), optional
        CT window for DICOM folders (preset name or (center, width)).
    lazy : bool
        Do not load the images: ``.npz`` images are memory-mapped (:class:`NpzImages`), image
        folders become :class:`ImageFolderDataset` parts, DICOM folders
        :class:`~tinycnn.data.dicom_lazy.DicomFolderDataset` parts.
    skip_bad : bool
        For folders: leave out unreadable files (listed in ``result.skipped``).
    groups : dict or str or Path, optional
        Folders: the group (patient) of each file, ``{file: group}`` or a CSV of ``file,group``
        rows; paths relative to ``path`` or absolute.
    group_pattern : str, optional
        Folders: a regular expression whose first parenthesised group, searched in each file's
        path inside its class folder, is its group (``r'^(patient\\d+)_'``).
    dataset : str, optional
        ``.npz``: the MedMNIST data set it holds, for the class names (default: from the file
        name, :mod:`tinycnn.data.medmnist`).

    Returns
    -------
    DataSplits
        ``x`` (N, H, W, C) float32 in [0, 1] per part; ``y`` as described there;
        ``split_rule`` says how the parts were made and, for folders, ``groups`` holds each
        case's group id.

    Raises
    ------
    DataError
        Missing path, unsupported file, unreadable data, or a folder with fewer than 2 classes.
    """
    val_fraction = check_fraction(val_fraction, "val_fraction")
    test_fraction = check_fraction(test_fraction, "test_fraction")
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
    color = check_color(color, allow_none=True)
    if dataset is not None and Path(path).is_dir():
        raise ConfigError(f"{path}: dataset names the classes of a MedMNIST .npz file; a folder's classes are "
                          "its sub-folder names")
    kind = detect_format(path)
    if kind == "npz":
        if groups is not None or group_pattern is not None:
            raise ConfigError(f"{path}: an .npz file comes split into its parts; groups and group_pattern apply to "
                              "folders")
        return load_npz(path, mmap=lazy, image_size=image_size, color=color, dataset=dataset)
    color = color or "grayscale"
    patient_ids = None
    if kind == "dicom" and lazy:
        x = DicomFolderDataset(path, image_size, window=window, color=color, skip_bad=skip_bad)
        y, class_names, skipped, files = x.labels, x.class_names, x.skipped, x.files
        patient_ids = x.patient_ids
    elif kind == "dicom":
        data = load_dicom_folder(path, image_size, window=window, color=color, skip_bad=skip_bad)
        x = data.x if window is not None else preprocess.normalize(data.x, "minmax")
        y, class_names, skipped, files = data.y, data.class_names, data.skipped, data.files
        patient_ids = data.patient_ids
    elif lazy:
        x = ImageFolderDataset(path, image_size, color, skip_bad=skip_bad)
        y, class_names, skipped, files = x.labels, x.class_names, x.skipped, x.files
    else:
        data = load_image_folder(path, image_size, color, skip_bad=skip_bad)
        x, y, class_names, skipped, files = data.x, data.y, data.class_names, data.skipped, data.files
    if len(class_names) < 2:
        raise DataError(f"{path}: found {len(class_names)} class folder(s); a classifier needs at least 2")
    fractions = (1.0 - val_fraction - test_fraction, val_fraction, test_fraction)
    ids, grouping, how = assign_groups(files, path, patient_ids, groups, group_pattern)
    parts, part_files, part_groups = [], {}, {}
    for name, idx in zip(("train", "val", "test"), stratified_group_split(y, ids, fractions, seed), strict=True):
        if len(idx) == 0:
            parts.append(None)
        else:
            part_x = x.subset(idx) if isinstance(x, (ImageFolderDataset, DicomFolderDataset)) else x[idx]
            parts.append((part_x, np.asarray(y[idx])))
            part_files[name] = [files[i] for i in idx]
            part_groups[name] = ids[idx]
    rule = (f"stratified by class: {fractions[0]:.0%} training / {val_fraction:.0%} validation / "
            f"{test_fraction:.0%} test (seed {seed}), {how}")
    return DataSplits(
        train=parts[0],
        val=parts[1],
        test=parts[2],
        class_names=list(class_names),
        task="binary" if len(class_names) == 2 else "multiclass",
        num_classes=len(class_names),
        skipped=list(skipped),
        source=str(path),
        files=part_files,
        split_rule=rule,
        groups=part_groups,
        grouping=grouping,
    )
