"""De-identify a file or a folder of DICOM files into a new folder, with a log that holds no value."""

import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError
from . import profile
from .record import BurnedInRejected, note_warnings, read_dicom
from .walker import Deidentifier, load_pydicom

LOG_NAME = "deidentification_log.json"
PROFILE = f"DICOM PS3.15 Table E.1-1 ({profile.EDITION}) Basic Application Level Confidentiality Profile"
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
REJECTED_REASON = "flagged as possibly holding burned-in text; rejected (reject_burned_in)"


@dataclass
class TreeSummary:
    """Outcome of :func:`deidentify_tree`.

    Attributes
    ----------
    written, skipped, flagged : int
        Files written, input files not written, written files with at least one flag.
    log_path : pathlib.Path
        The ``deidentification_log.json`` written in the output folder.
    skip_reasons, flag_counts : dict of str to int
        How many files each reason or flag concerns.
    random_key : bool
        True when no key was given: the output links to no other run.
    rejected : list of pathlib.Path
        Input files not written because they may hold burned-in text (``reject_burned_in``),
        relative to ``in_path``. Kept in memory only: the log names no input file.
    """

    written: int
    skipped: int
    flagged: int
    log_path: Path
    skip_reasons: dict
    flag_counts: dict
    random_key: bool
    rejected: list = field(default_factory=list)


class _Skip(Exception):
    """A file of a folder that is logged as skipped instead of failing the whole run."""


def _inputs(src, dst):
    """The resolved input root, its files in a stable order, and whether it is a folder."""
    if not src.exists():
        raise DataError(f"{src}: no such file or folder")
    src_r, dst_r = src.resolve(), dst.resolve()
    if dst_r.exists() and not dst_r.is_dir():
        raise ConfigError(f"the output folder (out_path, OUT) {dst} exists and is not a folder")
    if src_r.is_dir():
        if dst_r == src_r or src_r in dst_r.parents or dst_r in src_r.parents:
            raise ConfigError(f"the output folder (out_path, OUT) {dst} must lie outside the input {src}, "
                              "and not contain it: de-identified copies are never mixed with the originals")
        files = sorted((Path(root) / name for root, _, names in os.walk(src_r) for name in names),
                       key=lambda p: p.relative_to(src_r).as_posix())
        return src_r, files, True
    if dst_r in (src_r, src_r.parent):
        raise ConfigError(f"the output folder (out_path, OUT) {dst} must not be the input file nor its folder")
    return src_r, [src_r], False


def run_tree(deid, in_path, out_path, *, hash_folder_names=False):
    """:func:`deidentify_tree` with an existing :class:`Deidentifier` (its key and policies)."""
    pydicom = load_pydicom()
    src_r, files, is_dir = _inputs(Path(in_path), Path(out_path))
    dst_r = Path(out_path).resolve()
    written, skipped, rejected, taken = [], [], [], set()
    for index, path in enumerate(files):
        rel = path.relative_to(src_r).as_posix() if is_dir else path.name
        entry = {"index": index, "source": deid.source_id(rel)}
        folder = Path(rel).parent
        if hash_folder_names:
            folder = Path(*[deid.source_id("folder:" + p) for p in folder.parts])
        # pydicom's warnings quote the malformed values, which may be identifying: they are
        # counted into the log instead of reaching the console.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                name, log = _write_one(deid, pydicom, path, rel, dst_r / folder, taken, not is_dir)
            except _Skip as why:
                skipped.append({**entry, "reason": str(why)})
                if str(why) == REJECTED_REASON:
                    rejected.append(Path(rel))
                continue
        note_warnings(log, caught)
        written.append({**entry, "output": (folder / name).as_posix(), **log.to_dict()})
    dst_r.mkdir(parents=True, exist_ok=True)
    log_path = dst_r / LOG_NAME
    record = {
        "tool": "tinycnn.privacy", "profile": PROFILE,
        "options_declared": [f"{code} {meaning}" for code, meaning in deid.options.codes()],
        "options": {"date_policy": deid.date_policy, "age_policy": deid.age_policy,
                    "sex_policy": deid.sex_policy, "keep_descriptors": deid.keep_descriptors,
                    "reject_burned_in": deid.reject_burned_in, "hash_folder_names": hash_folder_names},
        "key": "random, this run only" if deid.random_key else "given",
        "folder_names": "hashed" if hash_folder_names else "copied as they are: check them for identifying text",
        "files": written, "skipped": skipped,
    }
    log_path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    flags = Counter(f for w in written for f in w["flags"])
    return TreeSummary(written=len(written), skipped=len(skipped),
                       flagged=sum(bool(w["flags"]) for w in written), log_path=log_path,
                       skip_reasons=dict(Counter(s["reason"] for s in skipped)),
                       flag_counts=dict(flags), random_key=deid.random_key, rejected=rejected)


def _write_one(deid, pydicom, path, rel, folder, taken, single):
    """Read, de-identify and write one file of a tree; its output name and log, or _Skip."""
    ds, log = _read_for_tree(deid, pydicom, path, single)
    name = f"{ds.get('SOPInstanceUID') or deid.source_id(rel)}.dcm"
    target = folder / name
    if target in taken:
        raise _Skip("duplicate SOPInstanceUID: the same instance was already written")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        ds.save_as(target, enforce_file_format=True)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        target.unlink(missing_ok=True)
        raise _Skip(f"cannot be written as DICOM, e.g. incomplete file meta ({type(exc).__name__})") from None
    taken.add(target)
    return name, log


def _read_for_tree(deid, pydicom, path, single):
    try:
        ds = read_dicom(pydicom, path)
    except DataError as exc:
        if single:
            raise
        raise _Skip(exc.reason) from None
    if ds.file_meta.get("MediaStorageSOPClassUID") == _DICOMDIR_CLASS:
        if single:
            raise DataError(f"{path}: a DICOMDIR index, not an image; de-identify its folder instead")
        raise _Skip("DICOMDIR index: its file references would point at the original names")
    try:
        return deid.process(pydicom, ds)  # a fresh read: no copy needed
    except BurnedInRejected as exc:
        if single:
            raise BurnedInRejected(f"{path}: {exc}") from None
        raise _Skip(REJECTED_REASON) from None


def deidentify_tree(in_path, out_path, key=None, *, hash_folder_names=False, **policies):
    """De-identify a DICOM file, or every DICOM file under a folder, into ``out_path``.

    Output files are named after their new SOPInstanceUID (``<uid>.dcm``) in the same sub-folder
    as the input, and ``deidentification_log.json`` lists per file a running index, a keyed hash
    of the original relative path, the output name, the actions and the flags, never a value or an
    original file name. Files that are not DICOM (no ``DICM`` marker), DICOMDIR indexes, second
    copies of an instance and, with ``reject_burned_in``, images that may hold burned-in text are
    skipped and logged with a reason.

    Parameters
    ----------
    in_path : str or os.PathLike
        A DICOM file or a folder; nothing in it is ever written.
    out_path : str or os.PathLike
        Output folder (created). It must not be ``in_path``, lie inside it or contain it; for a
        single file, it must not be the file's folder.
    key : bytes, str or None
        See :class:`Deidentifier`; ``None`` gives a random key valid for this call only.
    hash_folder_names : bool
        Replace each sub-folder name by a keyed hash. By default the names are copied, as they often
        are class labels; check that they hold no names or dates.
    **policies
        ``date_policy``, ``age_policy``, ``sex_policy``, ``keep_descriptors``, ``reject_burned_in``
        (see :class:`Deidentifier`).

    Returns
    -------
    TreeSummary

    Raises
    ------
    ConfigError
        ``out_path`` overlaps ``in_path``, or a policy is unknown.
    DataError
        ``in_path`` is missing, or is a single file that is not a readable DICOM file (or, with
        ``reject_burned_in``, a single file flagged for burned-in text: nothing is written).
    """
    return Deidentifier(key, **policies).deidentify_tree(in_path, out_path, hash_folder_names=hash_folder_names)
