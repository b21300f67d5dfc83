"""Class-per-sub-folder layouts, shared by the image and DICOM loaders (private)."""

from pathlib import Path

import numpy as np

from ..errors import DataError


def _hidden(name):
    # .DS_Store, ._resource forks, .ipynb_checkpoints: OS and tool litter, never data.
    return name.startswith(".")


def scan_class_folders(root, ignore=()):
    """Files of a folder with one sub-folder per class.

    Each class folder is searched recursively (``class/patient/slice.dcm`` works); hidden files
    and folders and names in ``ignore`` are left out, and so are files lying directly in
    ``root`` (READMEs, label sheets).

    Parameters
    ----------
    root : str or Path
    ignore : collection of str
        File names to skip (e.g. ``DICOMDIR``).

    Returns
    -------
    class_names : list of str
        Sorted sub-folder names; class ``k`` is ``class_names[k]``.
    files : list of Path
        Sorted within each class, classes in order.
    labels : numpy.ndarray, shape (len(files),), int64

    Raises
    ------
    DataError
        ``root`` missing or not a folder, no class sub-folders, or an empty class folder.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not _hidden(p.name))
    if not class_dirs:
        raise DataError(f"{root}: no class sub-folders (expected one sub-folder of images per class)")
    files, labels = [], []
    for k, d in enumerate(class_dirs):
        found = sorted(
            p
            for p in d.rglob("*")
            if p.is_file()
            and p.name not in ignore
            and not any(_hidden(part) for part in p.relative_to(d).parts)
        )
        if not found:
            raise DataError(f"{d}: class folder holds no files")
        files.extend(found)
        labels.extend([k] * len(found))
    return [d.name for d in class_dirs], files, np.asarray(labels, np.int64)


def looks_like_dicom(path):
    """True for a ``.dcm`` name or the DICOM Part 10 marker ``DICM`` at byte 128."""
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def mixed_size_error(first_file, first_size, file, size):
    """The error for two images of different sizes, naming both (sizes as H x W)."""
    return DataError(
        f"images differ in size: {first_file} is {first_size[0]}x{first_size[1]} but {file} is "
        f"{size[0]}x{size[1]} (H x W); pass image_size to resize them all"
    )
