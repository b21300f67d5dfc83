"""Who computes what: each rank's share of a batch or a data set, and a fingerprint of the data
so that ranks refuse to start when they do not see the same samples."""

import hashlib
import json
from pathlib import Path

import numpy as np

#: rows of an in-memory array hashed into its fingerprint (hashing gigabytes would take seconds)
SAMPLED_ROWS = 16


def bounds(n, size, rank):
    """Rows ``[lo, hi)`` of ``n`` that ``rank`` of ``size`` takes: contiguous, in rank order,
    the first ``n % size`` ranks one more (``numpy.array_split``'s rule).

    >>> [bounds(5, 2, r) for r in range(2)]
    [(0, 3), (3, 5)]
    """
    base, extra = divmod(int(n), int(size))
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class RowView:
    """Rows ``[lo, hi)`` of an array or lazy data set, indexed like it, read only when indexed
    (slicing a lazy data set would read the whole slice at once)."""

    def __init__(self, x, lo, hi):
        self.x, self.lo = x, lo
        self.shape = (hi - lo,) + tuple(x.shape[1:])
        self.dtype = getattr(x, "dtype", np.dtype(np.float32))

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, idx):
        return self.x[np.asarray(idx) + self.lo]


def _digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
    return h.hexdigest()[:16]


def data_fingerprint(x):
    """A short digest of a data set's identity and a line describing it.

    A data set with ``files`` (image and DICOM folders) is identified by its file list (paths
    relative to its folder, so nodes may mount it at different places) and shape; an array
    or memory map by its shape, dtype and the bytes of a few evenly spaced samples.

    Returns
    -------
    (str, str)
        ``(digest, description)``.
    """
    if x is None:
        return "none", "none"
    files = getattr(x, "files", None)
    shape = tuple(int(d) for d in getattr(x, "shape", np.shape(x)))
    if files is not None:
        root = getattr(x, "path", None)
        names = []
        for f in files:
            try:
                names.append(str(Path(f).relative_to(root)) if root is not None else str(f))
            except ValueError:
                names.append(str(f))
        return _digest(shape, "\n".join(names)), f"{len(names)} files, shape {shape}"
    raw = getattr(x, "raw", x)  # a memory-mapped .npz: hash the stored bytes, not a conversion
    n = shape[0] if shape else 0
    rows = np.unique(np.linspace(0, n - 1, min(n, SAMPLED_ROWS)).astype(np.int64)) if n else np.zeros(0, int)
    sample = np.ascontiguousarray(np.asarray(raw[rows] if n else raw))
    return _digest(shape, sample.dtype, sample.tobytes()), f"shape {shape}, dtype {sample.dtype}"


def array_fingerprint(a):
    """Digest and description of a small array (labels, sample weights), hashed whole."""
    if a is None:
        return "none", "none"
    a = np.ascontiguousarray(np.asarray(a))
    return _digest(a.shape, a.dtype, a.tobytes()), f"shape {a.shape}"


def config_fingerprint(obj):
    """Digest and description of a JSON-like configuration (architecture, fit arguments)."""
    text = json.dumps(obj, sort_keys=True, default=repr)
    return _digest(text), text if len(text) <= 120 else text[:117] + "..."
