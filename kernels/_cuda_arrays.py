"""Arrays of the ``cuda`` backend on the host side: uploads and downloads, the conversion of
operands to the work dtype, and in-place updates of arrays that live on the host."""

import numpy as np

from ..errors import DTypeError
from ._cuda_common import SIM, cuda, launch_1d


def is_device(a):
    """True for a device array (numba's, the simulator's, or any CUDA array interface)."""
    if SIM:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        return isinstance(a, FakeCUDAArray)
    return cuda.is_cuda_array(a)


def _device_ndarray():
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    return DeviceNDArray


def size(a):
    return int(np.prod(a.shape, dtype=np.int64))


def flat(a):
    return a.reshape(size(a))


def asarray(x, dtype=None):
    """Return ``x`` as a C-contiguous device array (device arrays of the right dtype pass
    through; other device arrays, CuPy's included, are converted on the device)."""
    if is_device(x):
        if not SIM and not isinstance(x, _device_ndarray()):
            x = cuda.as_cuda_array(x)  # e.g. a CuPy array: zero-copy view
        if not x.is_c_contiguous():
            x = cuda.to_device(np.ascontiguousarray(x.copy_to_host()))
        if dtype is None or np.dtype(dtype) == x.dtype:
            return x
        out = cuda.device_array(x.shape, dtype=np.dtype(dtype))
        launch_1d("cast", out.dtype, size(x), flat(x), flat(out))
        return out
    a = np.ascontiguousarray(x, dtype=dtype)
    if a.strides != _c_strides(a.shape, a.itemsize):
        # NumPy calls e.g. y[:, None] contiguous despite its 0 stride on the size-1 axis, which
        # numba would type as a non-contiguous array: a kernel specialisation of its own
        a = a.copy()
    return cuda.to_device(a)


def _c_strides(shape, itemsize):
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def to_numpy(a):
    """Return ``a`` as a NumPy array (copied from the device)."""
    if is_device(a):
        return asarray(a).copy_to_host()
    return np.asarray(a)


def operands(dtype, *arrays):
    """Each array as a device array of ``dtype`` (None stays None)."""
    return [None if a is None else asarray(a, dtype) for a in arrays]


class InPlace:
    """Device views of arrays updated in place; host arrays are uploaded, then copied back."""

    def __init__(self, dtype, *arrays):
        for a in arrays:
            if a is not None and is_device(a) and a.dtype != dtype:
                raise DTypeError(
                    f"cannot update a {a.dtype} device array in place with {dtype} values: keep "
                    "parameters, gradients, optimizer state and running statistics in one dtype"
                )
        self.host = arrays
        self.dev = [None if a is None else asarray(a, dtype) for a in arrays]

    def done(self):
        for h, d in zip(self.host, self.dev, strict=True):
            if h is not None and not is_device(h):
                h[...] = d.copy_to_host().reshape(np.shape(h))
