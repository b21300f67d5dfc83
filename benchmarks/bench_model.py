"""pytest-benchmark suite: the seed model's full training step and inference, per size and backend.

    python -m pytest benchmarks/bench_model.py --benchmark-only
    python -m pytest benchmarks/bench_model.py --benchmark-only --seed-sizes 64,128 --seed-backends cpu
    python -m pytest benchmarks/bench_model.py --benchmark-disable      # smoke run: each once

A training step is ``model.train_on_batch(x, y)`` (forward, fused sigmoid + binary
cross-entropy, backward, Adam update) on a batch of 32; inference is ``model.predict(x)``.
Benchmarks are grouped by input size, so each table compares the backends; ``extra_info``
holds the median images per second. See ``seedmodel.py`` for the model.
"""

import seedmodel as sm
from seedmodel import run_benchmark


def test_train_step(benchmark, seed_shape, tinycnn_backend, seed_seconds):
    model = sm.build_tinycnn(seed_shape)
    x, y = sm.make_batch(seed_shape)
    benchmark.group = f"train step {sm.label(seed_shape)}"
    run_benchmark(benchmark, lambda: model.train_on_batch(x, y), tinycnn_backend, seed_seconds)


def test_inference(benchmark, seed_shape, tinycnn_backend, seed_seconds):
    model = sm.build_tinycnn(seed_shape)
    x, _ = sm.make_batch(seed_shape)
    benchmark.group = f"inference {sm.label(seed_shape)}"
    run_benchmark(benchmark, lambda: model.predict(x, batch_size=sm.BATCH), tinycnn_backend, seed_seconds)
