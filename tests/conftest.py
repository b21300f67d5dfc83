import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from tinycnn import backend

# Hypothesis profiles. "ci" (the default) is derandomized: the examples are a fixed function of
# each test, so a run passes or fails the same way every time, and a failure prints the blob
# that replays it (@reproduce_failure). A fixed, modest budget keeps the suite inside CI's time
# on 2 cores. "dev" explores at random with a larger budget: run it by hand to hunt for new
# failures (HYPOTHESIS_PROFILE=dev python -m pytest tests/test_fuzz_engine.py), then turn
# each one into a fixed regression test.
_COMMON = dict(deadline=None, print_blob=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=25, derandomize=True, **_COMMON)
settings.register_profile("dev", max_examples=200, derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def backends_here():
    """Backends that can run on this machine (cuda only with a GPU or the simulator)."""
    names = []
    for name in ("numpy", "cpu", "cuda"):
        try:
            backend.load(name)
        except Exception:
            continue
        names.append(name)
    return names


#: ``(kernel name, dtype, argument types)`` of every CUDA kernel launched by any test of this
#: session (checked against the signatures the PTX test compiles, in tests/cuda/test_cuda_sim.py)
CUDA_LAUNCHES = []


@pytest.fixture(autouse=True)
def _record_cuda_launches():
    common = sys.modules.get("tinycnn.kernels._cuda_common")
    if common is None:  # the cuda backend was never imported in this process
        yield
        return
    with common.record_launches() as log:
        yield
    CUDA_LAUNCHES.extend(log)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _restore_backend():
    prev = backend._state.copy()
    yield
    backend._state.update(prev)
