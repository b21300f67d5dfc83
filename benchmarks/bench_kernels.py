"""Per-op benchmarks of the seed model's layers: the NumPy reference against the ``cpu`` backend.

Run explicitly (benchmarks are not tests, the test command does not collect them)::

    python -m pytest benchmarks/bench_kernels.py --benchmark-group-by=group \
        --benchmark-columns=min,median,rounds

Each group is one op in one direction at the shapes of the seed model (Conv2D(32)-MaxPool-
Conv2D(64)-MaxPool-Conv2D(128)-MaxPool-Flatten-Dense(512)-Dense(1), 'valid', batch 32,
float32); compare the ``numpy`` and ``cpu`` rows within a group. The image size is
``TINYCNN_BENCH_SIZE`` (default 128, grey; 224 means 224x224x3). Forward ops allocate their
outputs from the backend (as in training); backward ops reuse one forward's ``ctx``.
"""

import os

import numpy as np
import pytest
from tinycnn.kernels import cpu, reference

BACKENDS = {"numpy": reference, "cpu": cpu}
SIZE = int(os.environ.get("TINYCNN_BENCH_SIZE", "128"))
CHANNELS = 3 if SIZE >= 224 else 1
BATCH = 32


def _layers():
    """(name, kind, input shape, params) of every layer of the seed model at SIZE."""
    out, h, c = [], SIZE, CHANNELS
    for i, f in enumerate((32, 64, 128)):
        out.append((f"conv{i + 1}", "conv", (BATCH, h, h, c), {"w": (3, 3, c, f)}))
        h -= 2
        out.append((f"pool{i + 1}", "pool", (BATCH, h, h, f), {}))
        h //= 2
        c = f
    out.append(("dense1", "dense", (BATCH, h * h * c), {"w": (h * h * c, 512)}))
    out.append(("dense2", "dense", (BATCH, 512), {"w": (512, 1)}))
    return out


LAYERS = _layers()


def _forward(B, kind, x, w, b, last):
    if kind == "conv":
        return B.conv2d_forward(x, w, b, (1, 1), "valid", "relu")
    if kind == "pool":
        return B.maxpool2d_forward(x, (2, 2), (2, 2), "valid")
    return B.dense_forward(x, w, b, "linear" if last else "relu")


def _backward(B, kind, dy, ctx, first):
    if kind == "conv":
        return B.conv2d_backward(dy, ctx, need_dx=not first)
    if kind == "pool":
        return B.maxpool2d_backward(dy, ctx)
    return B.dense_backward(dy, ctx)


def _setup(name, kind, shape, params):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    w = b = None
    if "w" in params:
        fan_in = int(np.prod(params["w"][:-1]))
        w = (rng.standard_normal(params["w"]) * np.sqrt(2 / fan_in)).astype(np.float32)
        b = np.zeros(params["w"][-1], np.float32)
    return x, w, b


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("layer", LAYERS, ids=[entry[0] for entry in LAYERS])
def test_forward(benchmark, backend, layer):
    name, kind, shape, params = layer
    B = BACKENDS[backend]
    x, w, b = _setup(*layer)
    benchmark.group = f"{name} forward {shape}"
    benchmark.pedantic(_forward, args=(B, kind, x, w, b, name == "dense2"), rounds=5,
                       warmup_rounds=1)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("layer", LAYERS, ids=[entry[0] for entry in LAYERS])
def test_backward(benchmark, backend, layer):
    name, kind, shape, params = layer
    B = BACKENDS[backend]
    x, w, b = _setup(*layer)
    y, ctx = _forward(B, kind, x, w, b, name == "dense2")
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    benchmark.group = f"{name} backward {shape}"
    benchmark.pedantic(_backward, args=(B, kind, dy, ctx, name == "conv1"), rounds=5,
                       warmup_rounds=1)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_bce_loss(benchmark, backend):
    B = BACKENDS[backend]
    rng = np.random.default_rng(0)
    z = rng.standard_normal((BATCH, 1)).astype(np.float32)
    t = (rng.random((BATCH, 1)) > 0.5).astype(np.float32)
    benchmark.group = "binary_crossentropy from logits, forward + backward"

    def run():
        loss, ctx = B.loss_forward("binary_crossentropy", z, t, None, True)
        return B.loss_backward(ctx)

    benchmark.pedantic(run, rounds=20, warmup_rounds=2)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_adam_all_parameters(benchmark, backend):
    """One Adam step over every parameter of the model (dense1's kernel dominates)."""
    B = BACKENDS[backend]
    rng = np.random.default_rng(0)
    params = []
    for _, _, _, p in LAYERS:
        if "w" in p:
            for shape in (p["w"], p["w"][-1:]):
                a = rng.standard_normal(shape).astype(np.float32)
                params.append((a, a * 0.01, np.zeros_like(a), np.zeros_like(a)))
    benchmark.group = f"adam, all {sum(p[0].size for p in params)} parameters"
    step = [0]

    def run():
        step[0] += 1
        for p, g, m, v in params:
            B.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7, step[0])

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
