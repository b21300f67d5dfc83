"""Every CUDA kernel of the ``cuda`` backend compiles for real GPUs (no GPU needed).

Run in its own process, *without* the simulator::

    python -m pytest tests/cuda/test_cuda_ptx.py

``numba.cuda.compile_ptx`` runs the whole numba-cuda pipeline (typing, lowering, NVVM) for
compute capability 8.0 (A100) and 9.0 (H100), with exactly the argument types the backend
launches (``_cuda_common.SIGNATURES``; the simulator test checks that every launch matches one
of them). This catches what the simulator lets through: Python objects, non-constant shared
array shapes, float64 creeping into float32 kernels. The device functions the kernels share
(``_cuda_common``, ``_cuda_gemm``) are declared ``inline="always"``: Numba inlines them into
each kernel before code generation, so compiling needs no GPU (a separately compiled device
function makes ``compile_ptx`` ask the driver for the current device, which fails here; a test
below keeps every device function inlined). Also checked here, where no GPU exists: the backend
refuses to start with a clear message, and a missing numba-cuda is an ImportError naming the
install command.
"""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

if importlib.util.find_spec("numba_cuda") is None:
    pytest.skip("numba-cuda is not installed (pip install tinycnn[cuda])", allow_module_level=True)

from numba.core import config  # noqa: E402

if config.ENABLE_CUDASIM:
    pytest.skip(
        "PTX compilation is unavailable under the simulator: run without NUMBA_ENABLE_CUDASIM",
        allow_module_level=True,
    )

import numba  # noqa: E402
from numba import cuda  # noqa: E402
from tinycnn.kernels import _cuda_common as cc  # noqa: E402
from tinycnn.kernels import cuda as K  # noqa: E402, F401  (imports every kernel module)

from tinycnn.errors import BackendError  # noqa: E402

pytestmark = pytest.mark.ptx


def _toolchain_missing():
    try:
        cuda.compile_ptx(lambda a: None, (numba.float32[::1],), cc=(8, 0))
    except Exception as e:  # e.g. DynamicLibNotFoundError: libnvrtc.so
        return f"NVRTC/NVVM not usable ({type(e).__name__}); install `pip install tinycnn[cuda]`"
    return None


_MISSING = _toolchain_missing()

TARGETS = [(8, 0), (9, 0)]  # A100, H100


def _cases():
    """float32 (the work dtype) for every target; float64 and the int32 label cast once."""
    out = []
    for name in sorted(cc.SIGNATURES):
        dtypes = [(numba.float32, TARGETS), (numba.float64, TARGETS[:1])]
        if name == "cast":
            dtypes.append((numba.int32, TARGETS[:1]))
        for T, targets in dtypes:
            for i in range(len(cc.SIGNATURES[name](T))):
                out += [(name, T, i, target) for target in targets]
    return out


CASES = _cases()
F64_OPS = re.compile(r"\.f64\b")


@pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))
@pytest.mark.parametrize(
    "name,T,i,target", CASES, ids=[f"{n}-{T}-{i}-sm{a}{b}" for n, T, i, (a, b) in CASES]
)
def test_kernel_compiles(name, T, i, target):
    sig = cc.SIGNATURES[name](T)[i]
    ptx, restype = cuda.compile_ptx(cc.factory(name)(T), sig, cc=target)
    assert restype == numba.void
    assert f".target sm_{target[0]}{target[1]}" in ptx
    if T == numba.float32 and numba.float64 not in [getattr(a, "dtype", a) for a in sig]:
        # no float64 arithmetic sneaks into a float32 kernel (float64 runs ~32-64x slower)
        assert not F64_OPS.search(ptx), f"{name}: float64 instructions in the float32 kernel"
    if name == "gemm" and T == numba.float32:
        # the 4x4 accumulator lives in registers, not in local memory
        assert ".local" not in ptx


def _device_functions():
    """Every device function the kernels call: module-level ones and those made per dtype."""
    from tinycnn.kernels import _cuda_gemm as gm

    found = []
    for module in (cc, gm):
        for name, obj in vars(module).items():
            if getattr(obj, "targetoptions", {}).get("device"):
                found.append((f"{module.__name__}.{name}", obj))
    for T in (numba.float32, numba.float64):
        for make in (cc.activation, cc.activation_grad, gm._epilogue, gm._tile_loader):
            found.append((f"{make.__name__}({T})", make(T)))
    return found


def test_device_functions_are_inlined_so_compiling_needs_no_gpu():
    functions = _device_functions()
    assert len(functions) >= 9
    for name, f in functions:
        assert f.targetoptions.get("inline") == "always", (
            f"{name} must be declared cuda.jit(device=True, inline='always'): a device function "
            "compiled on its own makes compile_ptx ask the CUDA driver for the current device")


def test_signature_table_covers_every_kernel():
    assert set(cc.SIGNATURES) == set(cc._FACTORIES)
    assert {"gemm", "im2col", "col2im", "maxpool_forward", "maxpool_backward", "adam", "sgd"} <= set(
        cc.SIGNATURES
    )


@pytest.mark.skipif(cuda.is_available(), reason="a CUDA GPU is present")
def test_no_gpu_is_a_clear_error_never_a_fallback():
    from tinycnn import backend

    with pytest.raises(BackendError) as e:
        K.ensure_available()
    msg = str(e.value)
    assert "no CUDA GPU/driver was found" in msg and "NUMBA_ENABLE_CUDASIM=1" in msg
    before = backend._state.copy()
    with pytest.raises(BackendError):
        backend.set_backend("cuda")
    assert backend._state == before  # the active backend did not change


def test_missing_numba_cuda_is_an_import_error_naming_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['numba_cuda'] = None\n"
        "try:\n"
        "    import tinycnn.kernels.cuda\n"
        "except ImportError as e:\n"
        "    from tinycnn.errors import BackendError\n"
        "    assert isinstance(e, BackendError), type(e)\n"
        "    assert 'pip install tinycnn[cuda]' in str(e), str(e)\n"
        "    print('OK')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.stdout.strip() == "OK", out.stderr
