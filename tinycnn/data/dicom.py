"""DICOM files (CT, MR, X-ray) through pydicom, and folders of them with one sub-folder per class.

pydicom is an optional dependency (``pip install tinycnn[dicom]``), imported on first use.
Pixel values come out in modality units: the Modality LUT or ``RescaleSlope`` /
``RescaleIntercept`` is applied (so CT is in Hounsfield units), including the per-frame
rescale of enhanced multi-frame files. MONOCHROME1 images (where low values display white)
are inverted within their stored bit range, so that high always means dense as in
MONOCHROME2. PALETTE COLOR images (common in ultrasound) are mapped through their colour
tables to RGB. Compressed transfer syntaxes need pydicom's optional decoders (pylibjpeg, GDCM);
without them the file is reported as unreadable.
"""

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from . import preprocess
from ._common import as_size, check_color
from ._folders import mixed_size_error, scan_class_folders
from .containers import FolderData
from .images import _check_classes

# pydicom reports damaged or undecodable data with many exception types.
_PIXEL_ERRORS = (ValueError, RuntimeError, NotImplementedError, AttributeError, KeyError, TypeError, OSError, EOFError)


def _pydicom():
    try:
        import pydicom
    except ImportError as e:
        raise ImportError("reading DICOM files needs pydicom: pip install 'tinycnn[dicom]'") from e
    return pydicom


def _apply_color_lut():
    try:
        from pydicom.pixels import apply_color_lut
    except ImportError:  # pydicom 2.x
        from pydicom.pixel_data_handlers.util import apply_color_lut
    return apply_color_lut


def _rescale(ds, n_frames):
    """(slope, intercept) as arrays of shape (n_frames, 1, 1), or None when absent."""

    def pair(item):
        if "RescaleSlope" in item or "RescaleIntercept" in item:
            return float(item.get("RescaleSlope", 1.0) or 1.0), float(item.get("RescaleIntercept", 0.0) or 0.0)
        return None

    def from_group(group):
        seq = group.get("PixelValueTransformationSequence") if group is not None else None
        return pair(seq[0]) if seq else None

    found = pair(ds)
    if found is None and ds.get("SharedFunctionalGroupsSequence"):
        found = from_group(ds.SharedFunctionalGroupsSequence[0])
    if found is not None:
        slope, intercept = np.full(n_frames, found[0]), np.full(n_frames, found[1])
    else:
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
        pairs = [from_group(g) for g in per_frame]
        if len(pairs) != n_frames or any(p is None for p in pairs):
            return None
        slope, intercept = (np.array(v) for v in zip(*pairs, strict=True))
    return slope[:, None, None], intercept[:, None, None]


def _read_frames(path, with_patient=False):
    """One DICOM file -> (frames (F, H, W, C) float32, was it multi-frame[, its PatientID or ''])."""
    pydicom = _pydicom()
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as e:
        raise DataError(f"{path}: not a DICOM file (no DICM marker at byte 128)") from e
    except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: unreadable DICOM file ({type(e).__name__}: {e})") from e
    frames, multi = _frames_of(ds, path)
    if with_patient:
        return frames, multi, str(ds.get("PatientID", "") or "").strip()
    return frames, multi


def _frames_of(ds, path):
    """The pixels of a read DICOM data set -> (frames (F, H, W, C) float32, was it multi-frame)."""
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DataError(f"{path}: DICOM file holds no pixel data")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    try:
        arr = ds.pixel_array
        if photometric == "PALETTE COLOR":  # stored values index the file's colour tables
            arr = _apply_color_lut()(arr, ds)
    except _PIXEL_ERRORS as e:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        hint = ""
        if syntax is not None and getattr(syntax, "is_compressed", False):
            hint = f"; {syntax.name} data may need pydicom's decoders (pip install pylibjpeg pylibjpeg-libjpeg)"
        raise DataError(f"{path}: cannot decode the pixel data ({type(e).__name__}: {e}){hint}") from e
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    color = int(ds.get("SamplesPerPixel", 1)) > 1 or photometric == "PALETTE COLOR"
    frames = arr.reshape((n_frames,) + arr.shape[-3 if color else -2 :])
    if color:
        # pydicom has already converted YBR data to RGB; no rescale applies to colour.
        return frames.astype(np.float32), n_frames > 1
    frames = frames.astype(np.float64)
    if photometric == "MONOCHROME1" and "PixelData" in ds:
        bits = int(ds.BitsStored)
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if int(ds.PixelRepresentation) else (0, 2**bits - 1)
        frames = (lo + hi) - frames
    if ds.get("ModalityLUTSequence"):
        try:
            from pydicom.pixels import apply_modality_lut
        except ImportError:  # pydicom 2.x
            from pydicom.pixel_data_handlers.util import apply_modality_lut

        frames = apply_modality_lut(frames.astype(arr.dtype), ds).astype(np.float64)
    else:
        rescale = _rescale(ds, n_frames)
        if rescale is not None:
            frames = frames * rescale[0] + rescale[1]
    return frames.astype(np.float32)[..., None], n_frames > 1


def read_dicom(path):
    """Read a DICOM file's pixels in modality units.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    numpy.ndarray, float32
        (H, W) for a single-frame grey image, (F, H, W) for F frames; colour images keep a
        last axis of 3: (H, W, 3) or (F, H, W, 3). CT values are in Hounsfield units.

    Raises
    ------
    DataError
        Missing file, not DICOM, no pixel data or undecodable pixels (naming the file).
    ImportError
        pydicom is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    frames, multi = _read_frames(path)
    if frames.shape[-1] == 1:
        frames = frames[..., 0]
    return frames if multi else frames[0]


def _check_window(window):
    if window is None or isinstance(window, str):
        if window is not None and window not in preprocess.WINDOW_PRESETS:
            raise ConfigError(f"window must be one of {sorted(preprocess.WINDOW_PRESETS)} or (center, width)")
        return window
    try:
        center, width = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ConfigError(f"window must be a preset name or (center, width), got {window!r}") from None
    if width <= 0:
        raise ConfigError(f"window width must be positive, got {width}")
    return center, width


def load_dicom_folder(path, image_size=None, window=None, color="grayscale", skip_bad=False):
    """Load a folder of DICOM files with one sub-folder per class into memory.

    Parameters
    ----------
    path : str or Path
        ``path/<class name>/...`` searched recursively (``class/patient/slice.dcm``); hidden
        files and ``DICOMDIR`` are ignored. Class indices follow the sorted sub-folder names.
        Each frame of a multi-frame file is one image.
    image_size : int or (int, int), optional
        Resize every image to (height, width) (in float, so Hounsfield units survive).
        Without it all images must have one size.
    window : str or (float, float), optional
        A CT window preset ('lung', 'mediastinum', 'brain', 'bone') or (center, width) in
        modality units, mapping values to [0, 1]. Without it values stay in modality units.
    color : {'grayscale', 'rgb'}
    skip_bad : bool
        Leave out unreadable files, recording ``(file, reason)`` in ``result.skipped``.

    Returns
    -------
    FolderData
        ``x`` (N, H, W, C) float32, ``y`` (N,) int64, ``class_names``, ``files`` (one entry per
        frame, ``path#frame`` for multi-frame files), ``skipped``, ``patient_ids`` (for the
        split only).

    Raises
    ------
    DataError
        Missing folder, no class sub-folders, a non-DICOM or unreadable file (naming it), images
        of different sizes without ``image_size`` (naming two files and their sizes).
    """
    color = check_color(color)
    image_size = None if image_size is None else as_size(image_size)
    window = _check_window(window)
    class_names, files, labels = scan_class_folders(path, ignore={"DICOMDIR"})
    images, ys, names, patients, skipped, first = [], [], [], [], [], None
    for f, label in zip(files, labels, strict=True):
        try:
            frames, multi, patient = _read_frames(f, with_patient=True)
        except DataError as e:
            if not skip_bad:
                raise
            skipped.append((str(f), str(e)))
            continue
        if image_size is None:
            if first is None:
                first = (f, frames.shape[1:3])
            elif frames.shape[1:3] != first[1]:
                raise mixed_size_error(first[0], first[1], f, frames.shape[1:3])
        if window is not None:
            frames = preprocess.window(frames, preset=window) if isinstance(window, str) else (
                preprocess.window(frames, *window)
            )
        frames = preprocess.to_grayscale(frames) if color == "grayscale" else preprocess.to_rgb(frames)
        if image_size is not None:
            frames = preprocess.resize(frames, image_size)
        images.append(frames)
        ys.extend([label] * len(frames))
        patients.extend([patient] * len(frames))
        names.extend([f"{f}#{k}" for k in range(len(frames))] if multi else [str(f)])
    if not images:
        raise DataError(f"{path}: no readable DICOM files")
    y = np.asarray(ys, np.int64)
    _check_classes(path, class_names, y)
    return FolderData(np.concatenate(images), y, class_names, names, skipped, patients)
