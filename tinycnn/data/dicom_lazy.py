"""A folder of DICOM class folders read lazily: only the frames a batch indexes are decoded.

What :func:`tinycnn.data.load_dataset` gives for a DICOM folder with ``lazy=True``, so that a
rank of a distributed fit reads only its own samples (a data set of CT volumes does not fit
in memory, nor should every rank decode every file).
"""

from pathlib import Path

import numpy as np

from ..errors import DataError
from . import preprocess
from ._common import as_size, check_color
from ._folders import mixed_size_error, scan_class_folders
from .containers import LazyImages
from .dicom import _check_window, _pydicom, _read_frames
from .images import _check_classes


class DicomFolderDataset(LazyImages):
    """Frames of a DICOM class-folder tree, prepared as :func:`load_dataset` prepares them.

    Construction reads every file's header (``stop_before_pixels``) for its size and frame
    count; ``x[idx]`` decodes only the files of the indexed frames, then windows (or min-max
    scales each frame), converts the colour and resizes, in :func:`load_dicom_folder`'s order.

    Parameters
    ----------
    path : str or Path
        ``path/<class name>/...``, searched recursively; hidden files and DICOMDIR ignored.
    image_size : int or (int, int), optional
        Without it all frames must have one size.
    window : str or (float, float), optional
        CT window preset or (center, width); without it each frame is min-max scaled to [0, 1].
    color : {'grayscale', 'rgb'}
    skip_bad : bool
        Leave out files whose header cannot be read (listed in ``skipped``).

    Attributes
    ----------
    labels : (N,) int64
    class_names : list of str
    files : list of str
        One entry per frame, ``path#k`` for frame k of a multi-frame file.
    patient_ids : list of str
        Each frame's PatientID ('' when absent), for splits by patient.
    shape : (N, H, W, C)
    skipped : list of (str, str)
    """

    def __init__(self, path, image_size=None, window=None, color="grayscale", skip_bad=False):
        pydicom = _pydicom()
        self.color = check_color(color)
        self.image_size = None if image_size is None else as_size(image_size)
        self.window = _check_window(window)
        self.path = Path(path)
        class_names, files, labels = scan_class_folders(self.path, ignore={"DICOMDIR"})
        sources, frames, ys, names, patients, self.skipped, first = [], [], [], [], [], [], None
        for f, label in zip(files, labels, strict=True):
            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
                size = (int(ds.Rows), int(ds.Columns))
                n = int(ds.get("NumberOfFrames", 1) or 1)
                patient = str(ds.get("PatientID", "") or "").strip()
            except Exception as e:  # noqa: BLE001 - pydicom raises many types on a bad header
                if not skip_bad:
                    raise DataError(f"{f}: not a readable DICOM file ({type(e).__name__}: {e})") from e
                self.skipped.append((str(f), f"{type(e).__name__}: {e}"))
                continue
            if self.image_size is None:
                if first is None:
                    first = (f, size)
                elif size != first[1]:
                    raise mixed_size_error(first[0], first[1], f, size)
            sources += [str(f)] * n
            frames += range(n)
            ys += [label] * n
            patients += [patient] * n
            names += [f"{f}#{k}" for k in range(n)] if n > 1 else [str(f)]
        if not names:
            raise DataError(f"{path}: no readable DICOM files")
        self.labels = np.asarray(ys, np.int64)
        _check_classes(self.path, class_names, self.labels)
        self.class_names, self.files, self.patient_ids = class_names, names, patients
        self._sources, self._frames = np.asarray(sources, dtype=object), np.asarray(frames, np.int64)
        h, w = self.image_size or first[1]
        self.shape = (len(names), h, w, 1 if self.color == "grayscale" else 3)

    def _read(self, indices):
        out = np.empty((len(indices),) + tuple(self.shape[1:]), np.float32)
        sources = self._sources[indices]
        for src in dict.fromkeys(sources):  # each file once, in first-use order
            rows = np.flatnonzero(sources == src)
            frames, _ = _read_frames(Path(src))
            out[rows] = self._prepare(frames[self._frames[indices[rows]]], src)
        return out

    def _prepare(self, frames, src):
        if self.window is not None:
            frames = (preprocess.window(frames, preset=self.window) if isinstance(self.window, str)
                      else preprocess.window(frames, *self.window))
        frames = preprocess.to_grayscale(frames) if self.color == "grayscale" else preprocess.to_rgb(frames)
        if self.image_size is not None:
            frames = preprocess.resize(frames, self.image_size)
        if frames.shape[1:] != tuple(self.shape[1:]):
            raise DataError(f"{src}: decoded to {frames.shape[1:3]}, expected {self.shape[1:3]}")
        return frames if self.window is not None else preprocess.normalize(frames, "minmax")

    def subset(self, indices):
        """A data set over the frames at ``indices`` (train / val / test parts); opens no file."""
        indices = np.arange(len(self))[np.asarray(indices, dtype=np.int64)]
        sub = object.__new__(DicomFolderDataset)
        sub.__dict__.update(self.__dict__)
        sub.files = [self.files[i] for i in indices]
        sub.patient_ids = [self.patient_ids[i] for i in indices]
        sub.labels = self.labels[indices]
        sub._sources, sub._frames = self._sources[indices], self._frames[indices]
        sub.skipped = []
        sub.shape = (len(indices),) + tuple(self.shape[1:])
        return sub

    def __repr__(self):
        return (f"DicomFolderDataset({str(self.path)!r}, shape={self.shape}, classes={self.class_names}, "
                f"skipped={len(self.skipped)})")
