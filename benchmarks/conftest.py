"""Shared machinery of the pytest-benchmark suites (``bench_model.py``, ``bench_layers.py``).

Not collected by the project's test command (``testpaths = ["tests"]``); run a suite by naming
its file::

    python -m pytest benchmarks/bench_model.py --benchmark-only
    python -m pytest benchmarks/bench_layers.py --benchmark-only --seed-sizes 64 --seed-backends cpu

Options: ``--seed-sizes`` (default 28,64,128,224; 224 means 224x224x3), ``--seed-backends``
(default numpy,cpu,cuda; those that cannot run here are skipped with the reason) and
``--seed-seconds`` (time budget of one benchmark: its number of rounds is chosen from a timed
warm-up call). With ``--benchmark-disable`` each benchmark runs its function once: a smoke run.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import seedmodel as sm  # noqa: E402


def pytest_addoption(parser):
    group = parser.getgroup("tinycnn seed-model benchmarks")
    group.addoption("--seed-sizes", default=sm.DEFAULT_SIZES,
                    help="input sizes: N (NxNx1; 224 means 224x224x3) or HxWxC, comma-separated")
    group.addoption("--seed-backends", default="numpy,cpu,cuda", help="tinycnn backends, comma-separated")
    group.addoption("--seed-seconds", type=float, default=2.0,
                    help="approximate time budget of one benchmark (rounds = budget / warm call time)")


def pytest_generate_tests(metafunc):
    cfg = metafunc.config
    if "seed_shape" in metafunc.fixturenames:
        shapes = sm.parse_sizes(cfg.getoption("--seed-sizes"))
        metafunc.parametrize("seed_shape", shapes, ids=[sm.label(s) for s in shapes])
    if "tinycnn_backend" in metafunc.fixturenames:
        names = [b.strip() for b in cfg.getoption("--seed-backends").split(",") if b.strip()]
        metafunc.parametrize("tinycnn_backend", names, indirect=True)


@pytest.fixture
def tinycnn_backend(request):
    """Make the parametrised backend active (skip when it cannot run here); restore after."""
    from tinycnn import backend

    name = request.param
    prev = dict(backend._state)
    try:
        backend.set_backend(name)
    except Exception as e:  # BackendError without a GPU, or a backend module that fails to import
        pytest.skip(f"backend {name!r} unavailable: {type(e).__name__}: {e}")
    if name == "cuda":
        from numba.core import config

        if config.ENABLE_CUDASIM:
            pytest.skip("the CUDA simulator is on: timings would mean nothing")
    yield name
    backend._state.update(prev)


@pytest.fixture
def seed_seconds(request):
    return request.config.getoption("--seed-seconds")
