"""Atomic file writes: a temporary file in the target's folder, flushed and fsynced, then renamed.

A reader never sees a half-written file, and a write that fails (an exception, a full disk)
leaves the previous file, if any, as it was.
"""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path, suffix=""):
    """Open a binary file that replaces ``path`` when the ``with`` block ends without an error.

    >>> with atomic_write("model.onnx", suffix=".onnx") as f:
    ...     f.write(data)
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
