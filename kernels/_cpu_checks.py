"""Host arrays for the ``cpu`` kernels.

What a contract function accepts is decided once for every backend by :mod:`.checks`; this
module turns an accepted argument into what a Numba kernel is compiled for: a C-contiguous,
writeable float32/float64 array, so that a kernel never sees an array it was not written for
and no call compiles a new specialisation.
"""

import numpy as np

from . import checks

FLOATS = checks.FLOATS


def float_array(a, name, ndim=None, dtype=None):
    """``a`` as a C-contiguous array of ``dtype`` (default: its work dtype, see
    :func:`.checks.work_dtype`), of rank ``ndim`` when given."""
    if (type(a) is np.ndarray and a.dtype == dtype and (ndim is None or a.ndim == ndim)
            and a.flags.c_contiguous and a.flags.writeable):
        return a  # the common case, at every kernel call: already what the kernels take
    if dtype is None:
        dtype = checks.work_dtype(a, name)
    else:
        checks.real(a, name)
    if ndim is not None:
        checks.rank(a, ndim, name)
    a = np.asarray(a)
    if not a.flags.writeable:
        # Numba compiles a separate specialisation of every kernel for read-only arrays (e.g.
        # a memory-mapped batch): one copy is far cheaper than seconds of compilation
        return np.array(a, dtype=dtype, order="C")
    return np.ascontiguousarray(a, dtype=dtype)


def same_shape(a, shape, name):
    checks.same_shape(a, shape, name)


def bias(b, F, dtype, name="b"):
    """The bias as a contiguous (F,) array, or zeros when ``b`` is None."""
    if b is None:
        return np.zeros(F, dtype)
    checks.vector(b, F, name)
    return float_array(b, name, 1, dtype)
