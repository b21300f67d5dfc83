"""Which images of a folder must stay in one part of a split: a patient's, or a file's frames.

A model tested on a patient it was trained on (another image of the same breast, the next
frame of the same cine loop) looks better than it is. So a folder is split by groups, never
per image when groups are known. The group of an image is, in this order of precedence:

1. the group the user gives: a CSV of ``file,group`` rows (``groups=``) or a regular
   expression whose first parenthesised group (else whole match) is searched in each file's
   path inside its class folder (``group_pattern=``, e.g. ``^(patient\\d+)_``);
2. its DICOM PatientID, where the file has one;
3. its file (the frames of a multi-frame DICOM share it).

Group labels may be patient identifiers: they are turned into integer ids here and never
printed or saved.
"""

import csv
import re
from pathlib import Path, PurePath

import numpy as np

from ..errors import ConfigError, DataError
from .files import split_frame

_SHOWN = 3  # files named in an error listing missing ones


def _key(path, root):
    """A file's identity for matching: its resolved absolute path (relative paths are under ``root``)."""
    path = Path(path)
    return str((path if path.is_absolute() else Path(root) / path).resolve())


def read_group_csv(path, root):
    """``{resolved file path: group}`` from a CSV of ``file,group`` rows.

    Paths are relative to ``root`` (the data folder) or absolute; a first row whose first cell
    is ``file`` is a header.

    Raises
    ------
    DataError
        A missing or unreadable file, a row without two cells or with an empty group.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read the groups file ({type(e).__name__}: {e})") from None
    if rows and rows[0] and rows[0][0].strip().lower() == "file":
        rows = [None] + rows[1:]  # keep line numbers for the messages
    out = {}
    for line, row in enumerate(rows, start=1):
        if row is None or not any(cell.strip() for cell in row):
            continue
        if len(row) != 2 or not row[1].strip():
            raise DataError(f"{path}, line {line}: expected two cells, file and group, got {row!r}")
        out[_key(row[0].strip(), root)] = row[1].strip()
    if not out:
        raise DataError(f"{path}: holds no file,group rows")
    return out


def _inner(file, root):
    """The path of ``file`` inside its class folder, '/'-separated (``root/class/p01/a.png`` -> ``p01/a.png``)."""
    rel = PurePath(file).relative_to(root) if PurePath(file).is_relative_to(root) else PurePath(file)
    return "/".join(rel.parts[1:]) if len(rel.parts) > 1 else rel.name


def _missing(files, what):
    shown = ", ".join(files[:_SHOWN]) + (f" and {len(files) - _SHOWN} more" if len(files) > _SHOWN else "")
    return DataError(f"{len(files)} file(s) {what}: {shown}; every file needs a group, or its images could land "
                     "in training and test at once")


def assign_groups(entries, root, patient_ids=None, groups=None, group_pattern=None):
    """The group of each image, as integer ids, and what the groups are.

    Parameters
    ----------
    entries : list of str
        The file of each image (``path#frame`` for a frame of a multi-frame DICOM).
    root : str or Path
        The data folder (``root/<class>/...``).
    patient_ids : list of str, optional
        The DICOM PatientID of each image ('' where unknown).
    groups : dict or str or Path, optional
        ``{file: group}`` (paths relative to ``root`` or absolute), or a CSV file of such rows.
    group_pattern : str, optional
        A regular expression searched in each file's path inside its class folder.

    Returns
    -------
    ids : numpy.ndarray (N,) int64
        Images with one id must stay in one part.
    grouping : str
        'group' (given by the user), 'patient', 'file' or 'image' (each image alone).
    description : str
        How the groups were formed, in words, with their number.

    Raises
    ------
    ConfigError
        Both ``groups`` and ``group_pattern``, or a pattern that is not a regular expression.
    DataError
        A file without a group (not in the CSV, not matching the pattern).
    """
    if groups is not None and group_pattern is not None:
        raise ConfigError("give groups or group_pattern, not both")
    root = Path(root)
    sources = [split_frame(e)[0] for e in entries]
    if groups is not None or group_pattern is not None:
        labels, where = _user_groups(sources, root, groups, group_pattern)
        ids = np.unique(labels, return_inverse=True)[1].reshape(-1)
        return ids, "group", f"by {where} ({ids.max() + 1} groups)"
    known = [p for p in (patient_ids or []) if p]
    if known:
        labels = [("patient", p) if p else ("file", f) for p, f in zip(patient_ids, sources, strict=True)]
        ids = _ids(labels)
        alone = len({f for (kind, f) in labels if kind == "file"})
        extra = f"; {alone} file(s) without one are each their own group" if alone else ""
        return ids, "patient", f"by patient (DICOM PatientID: {len(set(known))} patients{extra})"
    ids = _ids(sources)
    if ids.max() + 1 < len(sources):
        return ids, "file", f"by file: the frames of a multi-frame file stay together ({ids.max() + 1} files)"
    return ids, "image", "per image: no patient information (every image is its own group)"


def _ids(labels):
    index = {}
    return np.array([index.setdefault(label, len(index)) for label in labels], np.int64)


def _user_groups(sources, root, groups, pattern):
    """The user's group label of each source file, and how they were given (for the description)."""
    if pattern is not None:
        try:
            rx = re.compile(pattern)
        except (re.error, TypeError) as e:
            raise ConfigError(f"group_pattern {pattern!r} is not a regular expression ({e})") from None
        found = [rx.search(_inner(f, root)) for f in sources]
        missing = sorted({f for f, m in zip(sources, found, strict=True) if m is None})
        if missing:
            raise _missing(missing, f"do not match group_pattern {pattern!r}")
        labels = [m.group(1) if rx.groups else m.group(0) for m in found]
        return labels, f"the file-name pattern {pattern!r}"
    if isinstance(groups, dict):
        table, where = {_key(f, root): str(g) for f, g in groups.items()}, "the given groups"
    else:
        table, where = read_group_csv(groups, root), f"the groups in {Path(groups).name}"
    keys = [_key(f, root) for f in sources]
    missing = sorted({f for f, k in zip(sources, keys, strict=True) if k not in table})
    if missing:
        raise _missing(missing, f"have no group in {where}")
    return [table[k] for k in keys], where
