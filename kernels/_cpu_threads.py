"""How the ``cpu`` backend's threads share the cores with BLAS's threads.

A training step alternates Numba's parallel kernels (im2col, pooling, activations, Adam) with
BLAS GEMMs, each pool running one thread per core. Whichever pool has just finished keeps its
threads busy-waiting for a while, on cores the other pool now needs. On 2 cores that cost a
third to a half of the step, and up to 20x with a spinning OpenMP runtime. So, once, when the
backend is imported, and never overriding a choice the user made in the environment:

* **Numba's threads wait passively**: ``OMP_WAIT_POLICY=passive`` is set before Numba starts
  its OpenMP threads. If a GNU OpenMP runtime is already loaded (``import torch`` loads its own
  ``libgomp`` with global symbols, which Numba's ``omp`` layer then binds to) it read its wait
  policy too early, so Numba's own ``workqueue`` pool is used instead; that pool does not
  support calls from several Python threads at once.
* **OpenBLAS's threads go to sleep right after a GEMM**: OpenBLAS (the BLAS of NumPy's wheels)
  reads ``OPENBLAS_THREAD_TIMEOUT`` when it loads, before tinycnn could set it; so the variable
  is set, OpenBLAS re-reads its environment (``openblas_read_env``) and stops its idle threads
  (``blas_thread_shutdown_``, what it does itself before a ``fork``); it starts them again at
  its next call, with the short timeout. This changes how OpenBLAS waits for every user of it
  in the process (a GEMM is not slower: waking a thread costs microseconds). Measured on the
  seed model's training step, 2 cores: 627 -> 879 img/s at 64x64, 141 -> 186 at 128x128.
  Import the backend (``import tinycnn``) before starting BLAS work in other Python threads.
"""

import ctypes
import os

from numba import config as numba_config
from numba.np.ufunc import parallel as numba_parallel

#: OPENBLAS_THREAD_TIMEOUT: idle OpenBLAS threads sleep after 2**4 cycles (the smallest allowed)
OPENBLAS_TIMEOUT = "4"
#: names of OpenBLAS's ``openblas_get_parallel`` (0 sequential, 1 pthreads, 2 OpenMP) in its builds
GET_PARALLEL = ("openblas_get_parallel", "openblas_get_parallel64_", "scipy_openblas_get_parallel64_",
                "scipy_openblas_get_parallel_64_")


def mapped_libraries():
    """Paths of the shared libraries loaded in this process (empty where /proc is missing)."""
    try:
        with open("/proc/self/maps") as maps:
            return sorted({line.split()[-1] for line in maps if ".so" in line})
    except OSError:
        return []


def choose_numba_threading(libraries):
    """Passive OpenMP waiting, or Numba's workqueue pool if a GNU OpenMP runtime came first.

    Returns what was chosen (for tests): "user", "started", "workqueue" or "passive".
    """
    if "OMP_WAIT_POLICY" in os.environ or numba_config.THREADING_LAYER != "default":
        if "OMP_WAIT_POLICY" not in os.environ and not numba_parallel._is_initialized:
            os.environ["OMP_WAIT_POLICY"] = "passive"  # the user picked a layer; omp may be it
        return "user"
    if numba_parallel._is_initialized:
        return "started"
    if any(os.path.basename(p).startswith("libgomp.so") for p in libraries):
        numba_config.THREADING_LAYER = "workqueue"
        return "workqueue"
    os.environ["OMP_WAIT_POLICY"] = "passive"
    return "passive"


def openblas_function(lib, names):
    for name in names:
        try:
            return getattr(lib, name)
        except AttributeError:
            continue
    return None


def shorten_openblas_wait(libraries):
    """Make every loaded pthreads OpenBLAS put idle threads to sleep at once (see module doc).

    Returns the paths of the libraries changed. Leaves OpenBLAS alone if the user set a
    timeout, and any BLAS that is not a pthreads OpenBLAS exporting the needed functions.
    """
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ or "GOTO_THREAD_TIMEOUT" in os.environ:
        return []
    changed = []
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = OPENBLAS_TIMEOUT
    try:
        for path in libraries:
            if "openblas" not in os.path.basename(path).lower():
                continue
            try:
                lib = ctypes.CDLL(path)  # already loaded: the same handle, nothing re-initialised
            except OSError:
                continue
            parallel = openblas_function(lib, GET_PARALLEL)
            read_env = openblas_function(lib, ("openblas_read_env",))
            shutdown = openblas_function(lib, ("blas_thread_shutdown_",))
            if parallel is None or read_env is None or shutdown is None or parallel() != 1:  # 1: pthreads
                continue
            read_env()
            shutdown()
            changed.append(path)
    finally:
        del os.environ["OPENBLAS_THREAD_TIMEOUT"]  # the environment of child processes stays the user's
    return changed


def configure():
    """Apply both policies; returns (numba choice, OpenBLAS libraries changed)."""
    libraries = mapped_libraries()
    return choose_numba_threading(libraries), shorten_openblas_wait(libraries)
