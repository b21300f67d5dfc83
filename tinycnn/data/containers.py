"""What the loaders return: labelled splits, a loaded folder, and lazily read image arrays."""

from dataclasses import dataclass, field

import numpy as np

TASKS = ("binary", "multiclass", "multilabel")


def _describe(a):
    return "None" if a is None else f"{type(a).__name__}{tuple(a.shape)} {a.dtype}"


@dataclass(repr=False)
class DataSplits:
    """A data set cut into train / validation / test parts.

    Attributes
    ----------
    train, val, test : tuple of (x, y) or None
        ``x`` has shape (N, H, W, C), float32 in [0, 1] (a numpy array, or a lazy array such as
        :class:`ImageFolderDataset` that reads only the images it is indexed with); ``y`` is
        (N,) int class indices for 'binary' and 'multiclass', (N, L) 0/1 ints for 'multilabel'.
        A part the source does not hold is None.
    class_names : list of str
        One name per class (per label for 'multilabel'); index ``k`` names class ``k``.
    task : {'binary', 'multiclass', 'multilabel'}
    num_classes : int
        Number of classes (2 for 'binary'), or number of labels L for 'multilabel'.
    skipped : list of (str, str)
        ``(file, reason)`` for each file left out by ``skip_bad=True``.
    source : str
        The file or folder the data came from.
    files : dict of str to list of str
        For folders: the file of each case of each part (``files['test'][i]`` is the file of
        ``test[0][i]``; ``path#frame`` for a frame of a multi-frame DICOM); empty for ``.npz``.
    dataset : str
        The MedMNIST data set the classes were named from ('breastmnist'), else ''.
    ordinal : bool
        The classes are ordered grades (RetinaMNIST): trained as 'multiclass', also judged by
        weighted kappa and the mean grade error.
    split_rule : str
        How the parts were made, in words (the official MedMNIST splits; stratified by class and
        grouped by patient...).
    groups : dict of str to numpy.ndarray
        For folders: the group of each case of each part (int ids; never a patient identifier).
        No group occurs in two parts.
    grouping : str
        What a group is: 'patient', 'group' (given by the user), 'file' (the frames of one
        file) or 'image'; '' for ``.npz``.
    """

    train: tuple | None
    val: tuple | None
    test: tuple | None
    class_names: list
    task: str
    num_classes: int
    skipped: list = field(default_factory=list)
    source: str = ""
    files: dict = field(default_factory=dict)
    dataset: str = ""
    ordinal: bool = False
    split_rule: str = ""
    groups: dict = field(default_factory=dict)
    grouping: str = ""

    @property
    def input_shape(self):
        """(H, W, C) of one image: what a model's first layer takes."""
        for part in (self.train, self.val, self.test):
            if part is not None:
                return tuple(part[0].shape[1:])
        return None

    def __repr__(self):
        parts = []
        for name in ("train", "val", "test"):
            part = getattr(self, name)
            desc = "None" if part is None else f"(x={_describe(part[0])}, y={_describe(part[1])})"
            parts.append(f"{name}={desc}")
        return (
            f"DataSplits({', '.join(parts)}, task={self.task!r}, num_classes={self.num_classes}, "
            f"class_names={self.class_names!r}, skipped={len(self.skipped)}, source={self.source!r})"
        )


class ClassNames:
    """``num_classes`` and ``task`` of a single-label data set whose classes are ``class_names``."""

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def task(self):
        return "binary" if self.num_classes == 2 else "multiclass"


@dataclass(repr=False)
class FolderData(ClassNames):
    """Images loaded from a folder with one sub-folder per class.

    Attributes
    ----------
    x : numpy.ndarray, shape (N, H, W, C), float32
    y : numpy.ndarray, shape (N,), int64
        Class index of each image: the position of its sub-folder among the sorted names.
    class_names : list of str
        The sorted sub-folder names.
    files : list of str
        The file of each image (a multi-frame DICOM gives one entry per frame, ``path#frame``).
    skipped : list of (str, str)
        ``(file, reason)`` for each file left out by ``skip_bad=True``.
    patient_ids : list of str or None
        DICOM folders: the PatientID of each image ('' where the file has none), used only to
        keep a patient's images in one part of a split; never printed or saved.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list
    files: list
    skipped: list = field(default_factory=list)
    patient_ids: list | None = None


    def __repr__(self):
        return (
            f"FolderData(x={_describe(self.x)}, y={_describe(self.y)}, class_names={self.class_names!r}, "
            f"skipped={len(self.skipped)})"
        )


class LazyImages:
    """Base of array-likes that read images only when indexed.

    ``x[idx]`` behaves like indexing a numpy array of shape (N, H, W, C) float32: an int gives
    one (H, W, C) image, a slice, an int array or a boolean mask gives (k, H, W, C), and further
    indices (``x[idx, ..., 0]``) apply to the result. A model's ``fit`` indexes its inputs by
    batch, so only one batch is in memory at a time. ``np.asarray(x)`` reads everything.

    Subclasses set ``shape`` and implement ``_read(indices) -> (k, H, W, C) float32``.
    """

    dtype = np.dtype(np.float32)
    ndim = 4
    shape = (0, 0, 0, 0)

    def __len__(self):
        return self.shape[0]

    @property
    def nbytes(self):
        """Bytes the whole array would take in memory."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def _read(self, indices):
        raise NotImplementedError

    def _read_unique(self, indices):
        # Oversampling repeats indices: read each image once and fan the copies out.
        uniq, inverse = np.unique(indices, return_inverse=True)
        if len(uniq) == len(indices):
            order = np.argsort(indices, kind="stable")
            out = np.empty((len(indices),) + tuple(self.shape[1:]), np.float32)
            # Reading in index order keeps file and memory-map access sequential.
            out[order] = self._read(indices[order])
            return out
        return self._read(uniq)[inverse.ravel()]

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            if key and key[0] is Ellipsis:
                # The Ellipsis may stand for the image axes too: resolve it on the full array.
                return self._read_unique(np.arange(len(self)))[key]
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        idx = np.arange(len(self))[key]
        if idx.ndim == 0:
            out = self._read_unique(idx.reshape(1))[0]
            return out[rest] if rest else out
        out = self._read_unique(idx.ravel()).reshape(idx.shape + tuple(self.shape[1:]))
        return out[(slice(None),) * idx.ndim + rest] if rest else out

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self):
        return f"{type(self).__name__}(shape={tuple(self.shape)}, dtype=float32)"
