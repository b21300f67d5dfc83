"""The ``cuda`` backend: the kernel contract of :mod:`tinycnn.kernels` on an NVIDIA GPU,
with numba-cuda.

Arrays are numba device arrays (C-contiguous ``DeviceNDArray``): :func:`asarray` uploads,
:func:`to_numpy` downloads, and everything in between - parameters, activations, gradients,
optimizer state and every ``ctx`` - stays on the device. Host arrays passed to any function are
uploaded first (in-place updates are then copied back), so mixing is allowed, only slower.

Where each part lives: the contract functions in :mod:`._cuda_layer_ops` (convolution,
pooling, dense), :mod:`._cuda_pointwise_ops` (activations, batch norm, dropout, sums) and
:mod:`._cuda_train_ops` (losses, optimizers); arrays in :mod:`._cuda_arrays`; the kernels,
each a raw kernel plus a host launcher that derives the launch configuration from the shapes,
in :mod:`._cuda_conv` (im2col, col2im, pooling), :mod:`._cuda_gemm`, :mod:`._cuda_elementwise`,
:mod:`._cuda_loss` and :mod:`._cuda_reduce`; registry, launch helpers and the inlined device
functions in :mod:`._cuda_common`. Arguments are checked by :mod:`.checks`, as on every backend.

- convolution: ``im2col`` then one tiled GEMM with bias and activation fused into its epilogue
  (1x1 convolutions with stride 1 and no padding skip im2col). Backward: ``dz = dy * act'``
  (from the saved output), ``db`` by a column reduction, ``dw = cols.T @ dz`` (split-K when
  M x N is small), ``dx = col2im(dz @ W.T)`` as a gather (no atomics). The backward pass
  recomputes ``cols`` from ``x`` instead of keeping the KH*KW-times-larger matrix alive.
- dense: the same GEMM (``x @ w``, ``dz @ w.T``, ``x.T @ dz``; transposes by index order).
- pooling: one thread per output (max pool keeps the int32 argmax; ties go to the first maximum
  in row-major window order); backward as a gather. Global average pool: column reduction.
- batch norm: two-pass batch statistics by deterministic column reductions; the running
  statistics are updated in place on the device.
- dropout: the mask is drawn **on the host** with ``numpy.random.default_rng(seed)`` exactly as
  the contract says (``keep = u >= rate``, u float32 of x's shape) and uploaded as uint8, so it
  matches the reference bit for bit. It costs one small upload per call; a device RNG would not
  reproduce NumPy's stream.
- losses: value and gradient in one kernel (stable from_logits forms), the loss reduced on the
  device; one float comes back to the host.
- SGD (momentum, Nesterov) and Adam: one in-place kernel per parameter (Keras formulas).

Dtypes: float32 is the GPU work dtype; float64 works everywhere too (each kernel is a template
compiled lazily per dtype: a float64 model compiles a second set on first use, and runs at the
GPU's float64 rate). Operands are converted to the dtype of the main input.
Reductions are deterministic (fixed order, no atomics).
"""

import numpy as np

from ..errors import BackendError
from . import _cuda_elementwise, _cuda_loss  # noqa: F401  (register their kernels)
from ._cuda_arrays import asarray, to_numpy
from ._cuda_common import SIM, cuda
from ._cuda_layer_ops import (
    conv2d_backward,
    conv2d_forward,
    dense_backward,
    dense_forward,
    global_avgpool_backward,
    global_avgpool_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)
from ._cuda_pointwise_ops import (
    activation_backward,
    activation_forward,
    add,
    batchnorm_backward,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
)
from ._cuda_train_ops import adam_update, loss_backward, loss_forward, sgd_update

__all__ = [
    "ensure_available", "asarray", "to_numpy",
    "conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward",
    "global_avgpool_forward", "global_avgpool_backward", "dense_forward", "dense_backward",
    "activation_forward", "activation_backward", "batchnorm_forward", "batchnorm_backward",
    "dropout_forward", "dropout_backward", "add", "loss_forward", "loss_backward",
    "sgd_update", "adam_update",
]  # fmt: skip

_checked = []


def ensure_available():
    """Raise :class:`BackendError` unless CUDA kernels can run here (GPU or simulator).

    Checks for a driver and a GPU, compute capability >= 7.5 (CUDA 13), and compiles and runs a
    tiny kernel once, so that a broken toolchain fails here with a clear message instead of in
    the middle of training. There is never a silent fallback to another backend.
    """
    if _checked:
        return
    if not SIM:
        try:
            ok = cuda.is_available()
        except Exception:  # pragma: no cover - depends on the machine
            ok = False
        if not ok:
            raise BackendError(
                "the 'cuda' backend needs an NVIDIA GPU with a working CUDA driver, and no CUDA "
                "GPU/driver was found (numba.cuda.is_available() is False). Choose another "
                "backend (set_backend('cpu')), or, to test the CUDA kernels without a GPU, set "
                "NUMBA_ENABLE_CUDASIM=1 before importing tinycnn: the numba CUDA simulator runs "
                "them (correct but very slow)."
            )
        major, minor = cuda.get_current_device().compute_capability
        if (major, minor) < (7, 5):  # pragma: no cover
            raise BackendError(
                f"the 'cuda' backend needs compute capability >= 7.5 (CUDA 13); this GPU has "
                f"{major}.{minor}"
            )
    try:
        probe = cuda.to_device(np.arange(4, dtype=np.float32))
        y = activation_forward(probe, "relu")[0].copy_to_host()
    except Exception as e:  # pragma: no cover - depends on the machine
        raise BackendError(
            f"the 'cuda' backend found a GPU but could not compile or run a kernel: {e!r}. "
            "Check that numba-cuda's CUDA 13 NVRTC/NVVM wheels are installed "
            "(`pip install tinycnn[cuda]`) and that the driver supports CUDA 13."
        ) from e
    if not np.array_equal(y, [0, 1, 2, 3]):  # pragma: no cover
        raise BackendError(f"the 'cuda' backend's self-test computed {y} instead of [0 1 2 3]")
    _checked.append(True)
