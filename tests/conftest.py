import os

import numpy as np
import pytest

# Hypothesis: a fixed, modest budget keeps the suite inside CI's time on 2 cores.
from hypothesis import HealthCheck, settings

from tinycnn import backend

settings.register_profile("ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def backends_here():
    """Backends that can run on this machine (cuda only with a GPU or the simulator)."""
    names = []
    for name in ("numpy", "cpu", "cuda"):
        try:
            backend._load(name)
        except Exception:
            continue
        names.append(name)
    return names


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _restore_backend():
    prev = backend._state.copy()
    yield
    backend._state.update(prev)
