"""Single files for prediction: images and DICOMs prepared exactly as the loaders prepare them."""

import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import preprocess
from ._common import as_size, check_color
from ._folders import looks_like_dicom
from .dicom import _read_frames
from .images import read_image


def split_frame(entry):
    """``'scan.dcm#3'`` -> ``('scan.dcm', 3)`` for frame 3 of a multi-frame DICOM (as the loaders name
    its images); a plain file -> ``(file, None)``, even one whose name holds a ``#``."""
    entry = str(entry)
    if not os.path.exists(entry) and "#" in entry:
        file, _, frame = entry.rpartition("#")
        if frame.isdigit():
            return file, int(frame)
    return entry, None


def read_images(paths, image_size, color="grayscale", window=None, skip_bad=True):
    """Read image and DICOM files into one batch, as :func:`load_dataset` would prepare them.

    Images are scaled to [0, 1] by their bit depth; DICOM frames are windowed (``window``:
    a preset name or (center, width)) or, without a window, min-max scaled per frame — the
    same mapping :func:`load_dataset` uses for DICOM folders, so a model sees at prediction
    what it saw in training. Each frame of a multi-frame DICOM is one image.

    Parameters
    ----------
    paths : sequence of str or Path
    image_size : int or (int, int)
        (height, width) every image is resized to (the model's input size).
    color : {'grayscale', 'rgb'}
    window : str or (float, float), optional
    skip_bad : bool
        Leave out unreadable files and report them instead of raising.

    Returns
    -------
    x : (N, H, W, C) float32
    kept : list of str
        The file of each image (``path#k`` for frame k of a multi-frame DICOM).
    skipped : list of (str, str)
        ``(file, reason)`` for every file left out.

    Raises
    ------
    DataError
        A file cannot be read (with ``skip_bad=False``), or no file could be read at all.
    """
    color = check_color(color)
    size = as_size(image_size)
    images, kept, skipped = [], [], []
    for p in map(Path, paths):
        try:
            if looks_like_dicom(p):
                frames, multi = _read_frames(p)
                if window is not None:
                    frames = (preprocess.window(frames, preset=window) if isinstance(window, str)
                              else preprocess.window(frames, *window))
                frames = preprocess.to_grayscale(frames) if color == "grayscale" else preprocess.to_rgb(frames)
                frames = preprocess.resize(frames, size)
                if window is None:
                    frames = preprocess.normalize(frames, "minmax")
                images.append(np.asarray(frames, np.float32))
                kept += [f"{p}#{k}" for k in range(len(frames))] if multi else [str(p)]
            else:
                images.append(read_image(p, color, size)[None])
                kept.append(str(p))
        except DataError as e:
            if not skip_bad:
                raise
            skipped.append((str(p), str(e)))
    if not images:
        raise DataError(f"none of the {len(skipped)} file(s) could be read"
                        + (f"; first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""))
    return np.concatenate(images).astype(np.float32, copy=False), kept, skipped
