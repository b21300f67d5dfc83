"""pytest-benchmark suite: each layer of the seed model, forward and backward, and the Adam update.

    python -m pytest benchmarks/bench_layers.py --benchmark-only
    python -m pytest benchmarks/bench_layers.py --benchmark-only --seed-sizes 128 --seed-backends cpu
    python -m pytest benchmarks/bench_layers.py --benchmark-disable     # smoke run: each once

Layers are driven through the layer API (``layer.forward(x, training=True)``,
``layer.backward(dy, need_dx=...)``) on the active backend, with batch-32 inputs of the shapes
they see in the seed model; the output layer is run as in a training step (logits, since
sigmoid is fused into the loss) and the first layer's backward skips the input gradient, as
the model does. A backward benchmark's forward pass runs untimed in its setup. Benchmarks are
grouped by size and layer, so each table compares the backends.
"""

import numpy as np
import pytest
import seedmodel as sm
from seedmodel import run_benchmark

_cache = {}


def seed_model(backend_name, shape):
    """One built seed model per (backend, shape), the last one only (the 224 model is 44M params)."""
    key = (backend_name, shape)
    if key not in _cache:
        _cache.clear()
        _cache[key] = sm.build_tinycnn(shape)
    return _cache[key]


def _random(B, shape, seed):
    return B.asarray(np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32))


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("index", range(len(sm.LAYER_NAMES)), ids=sm.LAYER_NAMES)
def test_layer(benchmark, seed_shape, tinycnn_backend, seed_seconds, index, direction):
    from tinycnn import backend

    B = backend.get()
    model = seed_model(tinycnn_backend, seed_shape)
    layer = model.layers[index]
    x = _random(B, (sm.BATCH,) + tuple(layer.input_shape), 1)
    kwargs = {"logits": True} if index == len(model.layers) - 1 else {}

    def forward():
        return layer.forward(x, training=True, **kwargs)

    benchmark.group = f"{sm.label(seed_shape)} {index}-{sm.LAYER_NAMES[index]} {direction}"
    if direction == "forward":
        run_benchmark(benchmark, forward, tinycnn_backend, seed_seconds)
        return
    dy = _random(B, (sm.BATCH,) + tuple(layer.output_shape), 2)

    def setup():
        forward()
        return (dy,), {"need_dx": index > 0}

    run_benchmark(benchmark, layer.backward, tinycnn_backend, seed_seconds, setup=setup)


def test_adam_update(benchmark, seed_shape, tinycnn_backend, seed_seconds):
    """One Adam update of every parameter of the model (gradients from a real step)."""
    model = seed_model(tinycnn_backend, seed_shape)
    x, y = sm.make_batch(seed_shape)
    model.train_on_batch(x, y)  # fills every layer's grads
    benchmark.group = f"{sm.label(seed_shape)} adam update ({model.count_params():,} params)"
    run_benchmark(benchmark, lambda: model.optimizer.apply(model.layers), tinycnn_backend, seed_seconds)
