"""Image files (PNG, JPEG, TIFF, BMP) through Pillow, and folders of them with one sub-folder per class.

Pixel values are scaled to [0, 1] by their bit depth: 8-bit by 255, 16-bit by 65535. Pillow
opens 16-bit PNGs and TIFFs as mode 'I;16' (or 'I', a 32-bit container, in some versions and
formats), so 'I' images are taken to hold 16-bit data too; 32-bit float ('F') TIFFs keep their
values. Only the first frame of a multi-frame file (TIFF stack, GIF) is read.
"""

import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import DataError
from . import preprocess
from ._common import as_size, check_color
from ._folders import mixed_size_error, scan_class_folders
from .containers import ClassNames, FolderData, LazyImages

# Pillow's format plugins raise many exception types on malformed files.
_PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, Image.DecompressionBombError)
_RGB_MODES = ("RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA")


def _pixels(img):
    """A loaded Pillow image -> (H, W, C) float32 in [0, 1], C = 1 or 3."""
    mode = img.mode
    if mode == "1":
        img, mode = img.convert("L"), "L"
    if mode == "LA":
        img, mode = img.getchannel("L"), "L"
    if mode in _RGB_MODES:
        img, mode = img.convert("RGB"), "RGB"
    a = np.asarray(img)
    if mode == "F":
        x = a.astype(np.float32)
    elif mode.startswith("I"):
        x = a.astype(np.float32) / np.float32(65535.0)
    elif mode in ("L", "RGB"):
        x = a.astype(np.float32) / np.float32(255.0)
    else:
        raise ValueError(f"unsupported Pillow image mode {mode!r}")
    return x[..., None] if x.ndim == 2 else x


def _decode(path):
    """Read one file to (H, W, C) float32; any failure becomes a DataError naming the file."""
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)  # phone / camera JPEGs store their rotation
            img.load()
            return _pixels(img)
    except _PIL_ERRORS as e:
        raise DataError(f"{path}: not a readable PNG/JPEG/TIFF/BMP image ({type(e).__name__}: {e})") from e


def _finish(x, color, image_size):
    """Colour conversion, then resize (converting first leaves less to resize)."""
    x = preprocess.to_grayscale(x) if color == "grayscale" else preprocess.to_rgb(x)
    return x if image_size is None else preprocess.resize(x, image_size)


def read_image(path, color="grayscale", image_size=None):
    """Read one image file.

    Parameters
    ----------
    path : str or Path
    color : {'grayscale', 'rgb'}
        RGB images become grey by luminance; grey images are copied into three channels for
        'rgb'.
    image_size : int or (int, int), optional
        Resize to (height, width), bilinear.

    Returns
    -------
    numpy.ndarray, shape (H, W, C), float32 in [0, 1] (float TIFFs keep their values)

    Raises
    ------
    DataError
        The file is missing, corrupt or not an image (naming it).
    """
    color = check_color(color)
    image_size = None if image_size is None else as_size(image_size)
    return _finish(_decode(Path(path)), color, image_size)


def load_image_folder(path, image_size=None, color="grayscale", skip_bad=False):
    """Load a folder of images with one sub-folder per class into memory.

    Parameters
    ----------
    path : str or Path
        ``path/<class name>/<image files>``; class indices follow the sorted sub-folder names,
        images are looked for recursively, hidden files are ignored.
    image_size : int or (int, int), optional
        Resize every image to (height, width). Without it all images must have one size.
    color : {'grayscale', 'rgb'}
    skip_bad : bool
        Leave out unreadable files, recording ``(file, reason)`` in ``result.skipped``,
        instead of raising.

    Returns
    -------
    FolderData
        ``x`` (N, H, W, C) float32 in [0, 1], ``y`` (N,) int64, ``class_names``, ``files``,
        ``skipped``.

    Raises
    ------
    DataError
        Missing folder, no class sub-folders, an unreadable file (naming it), images of
        different sizes without ``image_size`` (naming two files and their sizes), or a class
        left without images.
    """
    color = check_color(color)
    image_size = None if image_size is None else as_size(image_size)
    class_names, files, labels = scan_class_folders(path)
    x, kept, skipped, first = None, [], [], None
    for i, f in enumerate(files):
        try:
            img = _decode(f)
        except DataError as e:
            if not skip_bad:
                raise
            skipped.append((str(f), str(e.__cause__ or e)))
            continue
        if image_size is None:
            if first is None:
                first = (f, img.shape[:2])
            elif img.shape[:2] != first[1]:
                raise mixed_size_error(first[0], first[1], f, img.shape[:2])
        img = _finish(img, color, image_size)
        if x is None:
            # Filled in place: stacking a list would hold the data set twice at the peak.
            x = np.empty((len(files),) + img.shape, np.float32)
        x[len(kept)] = img
        kept.append(i)
    y = labels[kept]
    _check_classes(path, class_names, y)
    return FolderData(x[: len(kept)], y, class_names, [str(files[i]) for i in kept], skipped)


def _check_classes(path, class_names, y):
    counts = np.bincount(y, minlength=len(class_names))
    empty = [class_names[k] for k in np.flatnonzero(counts == 0)]
    if empty:
        raise DataError(f"{path}: no readable images in class folder(s) {empty}")


class ImageFolderDataset(ClassNames, LazyImages):
    """A folder of class sub-folders, read lazily: ``x[idx]`` decodes only the indexed files.

    Behaves like a float32 array of shape (N, H, W, C) (see :class:`LazyImages`), so a model's
    ``fit`` can take it in place of an array without the data set ever being in memory whole.
    Construction opens every file's header (to check it is an image and, without
    ``image_size``, that all sizes agree) but decodes no pixels.

    Parameters
    ----------
    path : str or Path
        ``path/<class name>/<image files>``, as for :func:`load_image_folder`.
    image_size : int or (int, int), optional
        Resize to (height, width); without it all images must have one size.
    color : {'grayscale', 'rgb'}
    skip_bad : bool
        Leave out files whose header cannot be read (listed in ``skipped``). A file that
        passes the header check but fails to decode still raises DataError when indexed.

    Attributes
    ----------
    labels : numpy.ndarray, shape (N,), int64
    class_names : list of str
    files : list of str
    shape : tuple (N, H, W, C)
    skipped : list of (str, str)
    """

    def __init__(self, path, image_size=None, color="grayscale", skip_bad=False):
        self.color = check_color(color)
        self.image_size = None if image_size is None else as_size(image_size)
        self.path = Path(path)
        class_names, files, labels = scan_class_folders(self.path)
        kept, sizes, self.skipped = [], [], []
        for i, f in enumerate(files):
            try:
                with Image.open(f) as img:
                    sizes.append((img.size[1], img.size[0]))
            except _PIL_ERRORS as e:
                if not skip_bad:
                    raise DataError(f"{f}: not a readable PNG/JPEG/TIFF/BMP image ({e})") from e
                self.skipped.append((str(f), f"{type(e).__name__}: {e}"))
                continue
            kept.append(i)
        if self.image_size is None:
            for i, s in zip(kept, sizes, strict=True):
                if s != sizes[0]:
                    raise mixed_size_error(files[kept[0]], sizes[0], files[i], s)
        channels = 1 if self.color == "grayscale" else 3
        self.labels = labels[kept]
        _check_classes(self.path, class_names, self.labels)
        self.class_names = class_names
        self.files = [str(files[i]) for i in kept]
        h, w = self.image_size or sizes[0]
        self.shape = (len(self.files), h, w, channels)

    def _read(self, indices):
        out = np.empty((len(indices),) + tuple(self.shape[1:]), np.float32)
        for j, i in enumerate(indices):
            img = _finish(_decode(self.files[i]), self.color, self.image_size)
            if img.shape != out.shape[1:]:
                raise DataError(f"{self.files[i]}: decoded to {img.shape[:2]}, expected {self.shape[1:3]}")
            out[j] = img
        return out

    def subset(self, indices):
        """A dataset over the images at ``indices`` (for train / val / test parts).

        Parameters
        ----------
        indices : array_like of int, shape (K,)

        Returns
        -------
        ImageFolderDataset
            Shape (K, H, W, C), same classes and settings; no file is opened.
        """
        indices = np.arange(len(self))[np.asarray(indices, dtype=np.int64)]
        sub = object.__new__(ImageFolderDataset)
        sub.__dict__.update(self.__dict__)
        sub.files = [self.files[i] for i in indices]
        sub.labels = self.labels[indices]
        sub.skipped = []
        sub.shape = (len(indices),) + tuple(self.shape[1:])
        return sub

    def __repr__(self):
        return (
            f"ImageFolderDataset({str(self.path)!r}, shape={self.shape}, classes={self.class_names}, "
            f"skipped={len(self.skipped)})"
        )
