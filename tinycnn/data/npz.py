"""MedMNIST-style ``.npz`` archives: ``{train,val,test}_{images,labels}``.

Images are uint8 (N, H, W) grayscale or (N, H, W, 3) RGB (uint16 and float arrays are read
too); labels are (N, 1) or (N,) class indices, or (N, L) 0/1 for multi-label tasks.

Memory-mapping. ``np.load`` cannot memory-map the members of an ``.npz`` (they are entries of a
zip file). With ``mmap=True`` an uncompressed member (``np.savez``) is mapped in place: its
``.npy`` header is parsed at the member's offset inside the zip and ``np.memmap`` opens the
archive itself there, with no copy. A compressed member (``np.savez_compressed``) is first
streamed, never held whole in memory, into a ``.npy`` in a cache folder and mapped from there.
The images then come as an :class:`NpzImages`, which converts only the images it is indexed
with to float32.
"""

import os
import shutil
import struct
import tempfile
import weakref
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from . import medmnist, preprocess
from ._common import as_size, check_color
from .containers import DataSplits, LazyImages

SPLITS = ("train", "val", "test")
# What a damaged archive can raise, from zipfile, zlib or numpy's .npy parser.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error)
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _scale_of(dtype, path, key):
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if dtype.kind == "f":
        return 1.0
    raise DataError(f"{path}: {key} has dtype {dtype}; expected uint8, uint16 or float images")


def _to_nhwc(raw, scale, image_size, color):
    """(k, H, W) or (k, H, W, C) stored images -> (k, H', W', C') float32."""
    x = np.asarray(raw, np.float32)
    if scale != 1.0:
        x /= np.float32(scale)
    if x.ndim == 3:
        x = x[..., None]
    if color == "grayscale":
        x = preprocess.to_grayscale(x)
    elif color == "rgb":
        x = preprocess.to_rgb(x)
    if image_size is not None:
        x = preprocess.resize(x, image_size)
    return x


class NpzImages(LazyImages):
    """Images of one ``.npz`` split, memory-mapped and converted on indexing.

    ``x[idx]`` reads only the indexed images from disk and returns them as float32
    (k, H, W, C) in [0, 1] (resized and colour-converted if asked).

    Parameters
    ----------
    raw : numpy.memmap, shape (N, H, W) or (N, H, W, C)
        The stored images.
    scale : float
        Divisor to [0, 1] (255 for uint8, 65535 for uint16, 1 for floats).
    image_size : (int, int), optional
    color : {'grayscale', 'rgb'}, optional
    """

    def __init__(self, raw, scale, image_size=None, color=None):
        self.raw, self.scale, self.image_size, self.color = raw, scale, image_size, color
        h, w = image_size if image_size is not None else raw.shape[1:3]
        c = raw.shape[3] if raw.ndim == 4 else 1
        c = {"grayscale": 1, "rgb": 3, None: c}[color]
        self.shape = (raw.shape[0], h, w, c)

    def _read(self, indices):
        return _to_nhwc(self.raw[indices], self.scale, self.image_size, self.color)


def _memmap_member(path, key, cache_dir):
    """Memory-map member ``key + '.npy'`` of the zip at ``path`` (see the module docstring).

    Returns the map and the temporary folder made for it (None when mapped in place or when
    ``cache_dir`` was given).
    """
    member = key + ".npy"
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as f:
                f.seek(info.header_offset)
                local = f.read(30)
                if len(local) < 30 or local[:4] != b"PK\x03\x04":
                    raise DataError(f"{path}: bad zip entry header for key {key!r}")
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                f.seek(info.header_offset + 30 + name_len + extra_len)
                version = np.lib.format.read_magic(f)
                reader = _HEADER_READERS.get(version)
                if reader is not None:
                    shape, fortran, dtype = reader(f)
                    return _checked_memmap(path, key, dtype, shape, fortran, f.tell()), None
        # Compressed (or a .npy format version without a public header reader): stream the
        # member into a .npy once, then map that file.
        tmp = None
        if cache_dir is None:
            cache_dir = tmp = tempfile.mkdtemp(prefix="tinycnn-npz-")
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        target = Path(cache_dir) / f"{Path(path).stem}-{key}.npy"
        with zf.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
    return np.load(target, mmap_mode="r", allow_pickle=False), tmp


def _read_key(archive, path, key, mmap, cache_dir):
    try:
        if not mmap:
            return archive[key]
        raw, tmp = _memmap_member(path, key, cache_dir)
    except _READ_ERRORS as e:
        raise DataError(f"{path}: cannot read key {key} ({type(e).__name__}: {e})") from e
    if tmp is not None:
        # The extracted .npy lives exactly as long as the map that reads it.
        weakref.finalize(raw, shutil.rmtree, tmp, True)
    return raw


def _checked_memmap(path, key, dtype, shape, fortran, offset):
    if dtype.hasobject:
        raise DataError(f"{path}: {key} holds Python objects; only numeric arrays are read")
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if offset + nbytes > os.path.getsize(path):
        raise DataError(f"{path}: {key} is truncated ({nbytes} bytes expected)")
    order = "F" if fortran else "C"
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)


def _labels(y, path, key, n):
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise DataError(f"{path}: {key} has dtype {y.dtype}; expected integer labels")
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise DataError(f"{path}: {key} has shape {y.shape}; expected ({n},), ({n}, 1) or ({n}, L)")
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)) or np.any(y < 0):
        raise DataError(f"{path}: {key} must hold non-negative integers")
    return y.astype(np.int64)


def load_npz(path, split=None, mmap=False, image_size=None, color=None, class_names=None, cache_dir=None,
             dataset=None):
    """Load a MedMNIST-style ``.npz`` archive.

    Parameters
    ----------
    path : str or Path
    split : {'train', 'val', 'test'} or sequence of them, optional
        Parts to read (others come back as None); by default every part present ('train' is
        required, 'val' and 'test' are optional).
    mmap : bool
        Memory-map the images instead of reading them (see the module docstring); ``x`` is then
        an :class:`NpzImages`.
    image_size : int or (int, int), optional
        Resize to this (height, width).
    color : {'grayscale', 'rgb'}, optional
        Convert to this; by default images keep their stored channels.
    class_names : list of str, optional
        Names for the classes (labels); default: the official MedMNIST v2 names when the file is
        named like a MedMNIST file (``breastmnist.npz``, ``breastmnist_64.npz``, ...) or
        ``dataset`` names one (:mod:`tinycnn.data.medmnist`), else ``['0', '1', ...]``.
    cache_dir : str or Path, optional
        Where ``mmap=True`` extracts compressed members; default a temporary folder removed when
        the returned images are garbage-collected.
    dataset : str, optional
        The MedMNIST data set the file holds ('breastmnist'), for a file not named after it.

    Returns
    -------
    DataSplits
        ``x`` float32 (N, H, W, C) in [0, 1]; ``y`` int (N,) ('binary', 'multiclass') or
        (N, L) ('multilabel', when labels have L > 1 columns). A MedMNIST file also gets its
        ``dataset``, whether it is ``ordinal`` and the number of classes of the table.

    Raises
    ------
    DataError
        Missing file or key, truncated or corrupt archive, inconsistent arrays (naming the file
        and the key).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    color = check_color(color, allow_none=True)
    image_size = None if image_size is None else as_size(image_size)
    info = medmnist.lookup(dataset) if dataset is not None else medmnist.for_file(path)
    wanted = SPLITS if split is None else (split,) if isinstance(split, str) else tuple(split)
    if any(s not in SPLITS for s in wanted):
        raise ConfigError(f"split must be None or among {SPLITS}, got {split!r}")
    try:
        archive = np.load(path, allow_pickle=False)
    except _READ_ERRORS as e:
        raise DataError(f"{path}: not a readable .npz archive ({e})") from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single array, not an .npz archive of named arrays")
    with archive:
        keys = set(archive.files)
        for s in wanted:
            required = split is not None or s == "train" or f"{s}_images" in keys or f"{s}_labels" in keys
            for kind in ("images", "labels"):
                if required and f"{s}_{kind}" not in keys:
                    raise DataError(f"{path}: missing key {s}_{kind} (found {sorted(keys)})")
        parts = {}
        for s in wanted:
            if f"{s}_images" not in keys:
                continue
            key = f"{s}_images"
            raw = _read_key(archive, path, key, mmap, cache_dir)
            y = _labels(_read_key(archive, path, f"{s}_labels", False, None), path, f"{s}_labels", len(raw))
            if raw.ndim not in (3, 4) or (raw.ndim == 4 and raw.shape[3] not in (1, 3)):
                raise DataError(f"{path}: {key} has shape {raw.shape}; expected (N, H, W) or (N, H, W, 1|3)")
            scale = _scale_of(raw.dtype, path, key)
            if mmap:
                x = NpzImages(raw, scale, image_size, color)
            else:
                x = _to_nhwc(raw, scale, image_size, color)
            parts[s] = (x, y)
    return _assemble(parts, path, class_names, info)


def _assemble(parts, path, class_names, info=None):
    ys = [y for _, y in parts.values()]
    widths = {y.shape[1] if y.ndim == 2 else 1 for y in ys}
    if len(widths) > 1:
        raise DataError(f"{path}: label arrays disagree on the number of columns {sorted(widths)}")
    if widths.pop() > 1:
        if any(np.any(y > 1) for y in ys):
            raise DataError(f"{path}: multi-label arrays (N, L) must hold 0/1 values")
        task, num_classes = "multilabel", ys[0].shape[1]
    else:
        parts = {s: (x, y.reshape(-1)) for s, (x, y) in parts.items()}
        num_classes = max(2, int(max(y.max(initial=0) for y in ys)) + 1)
        task = "binary" if num_classes == 2 else "multiclass"
    if info is not None:
        task, num_classes = _check_medmnist(info, path, task, num_classes)
    if class_names is None:
        class_names = list(info.class_names) if info is not None else [str(k) for k in range(num_classes)]
    elif len(class_names) != num_classes:
        raise DataError(f"{path}: {len(class_names)} class names given for {num_classes} classes")
    official = f"the official MedMNIST v2 splits of {info.name}, " if info is not None else ""
    return DataSplits(
        train=parts.get("train"),
        val=parts.get("val"),
        test=parts.get("test"),
        class_names=list(class_names),
        task=task,
        num_classes=num_classes,
        source=str(path),
        dataset=info.name if info is not None else "",
        ordinal=info is not None and info.ordinal,
        split_rule=f"{official}as stored in the .npz file (its train / val / test parts)",
    )


def _check_medmnist(info, path, task, num_classes):
    """The task and number of classes of the table, once the labels are seen to fit it."""
    K = len(info.class_names)
    fits = num_classes == K if info.task == "multilabel" else task != "multilabel" and num_classes <= K
    if not fits:
        found = f"{num_classes} label columns" if task == "multilabel" else f"labels 0 to {num_classes - 1}"
        raise DataError(f"{path}: MedMNIST's {info.name} has {K} {'labels' if info.task == 'multilabel' else 'classes'}"
                        f" ({info.medmnist_task}) but the file holds {found}; give the right data set name "
                        "(dataset= in Python, --dataset on the command line) or rename the file")
    return info.task, K
