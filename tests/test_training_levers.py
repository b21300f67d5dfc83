"""Training levers of the default recipe: the learning-rate schedule, weight averaging, label
smoothing."""

import math

import numpy as np
import pytest

from tinycnn import callbacks as C
from tinycnn.errors import ConfigError
from tinycnn.layers import Dense, Flatten
from tinycnn.models import Sequential
from tinycnn.random import set_random_seed


def tiny(seed=0):
    set_random_seed(seed)
    # named: a checkpoint resumes only into a model of the same architecture, names included
    m = Sequential([Flatten(input_shape=(3, 3, 1), name="flat"), Dense(4, activation="relu", name="hidden"),
                    Dense(1, activation="sigmoid", name="out")])
    m.compile("adam", "binary_crossentropy")
    return m


def xy(n=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, 3, 1)).astype(np.float32)
    return x, (x.sum(axis=(1, 2, 3)) > 0).astype(int)


class _Rates(C.Callback):
    def on_train_begin(self, logs=None):
        self.steps, self.rates = [], []

    def on_batch_end(self, batch, logs=None):
        self.steps.append(self.model.optimizer.iterations)
        self.rates.append(self.model.optimizer.learning_rate)


def test_cosine_decay_follows_its_formula_step_by_step():
    sched = C.CosineDecay(0.01, total_steps=10, warmup_steps=2, alpha=0.1)
    assert [sched.rate(s) for s in (1, 2)] == [0.005, 0.01]
    assert sched.rate(10) == pytest.approx(0.001)
    assert sched.rate(6) == pytest.approx(0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert sched.rate(50) == pytest.approx(0.001)  # past the end: stays at the floor

    m = tiny()
    rec = _Rates()
    x, y = xy()
    # callbacks run in list order: _Rates sees the rate of the step just taken, before CosineDecay sets the next
    m.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[rec, C.CosineDecay(0.01, total_steps=10, warmup_steps=2)])
    assert rec.steps == list(range(1, 11))
    np.testing.assert_allclose(rec.rates, [C.CosineDecay(0.01, 10, 2).rate(s) for s in range(1, 10)] + [1e-12])


def test_cosine_decay_continues_after_resume(tmp_path):
    x, y = xy()
    full = tiny(1)
    full.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[C.CosineDecay(0.01, 15, 3)])
    part = tiny(1)
    part.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[C.CosineDecay(0.01, 15, 3)],
             checkpoint=tmp_path / "c.tcnn")
    resumed = tiny(1)
    resumed.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[C.CosineDecay(0.01, 15, 3)],
                checkpoint=tmp_path / "c.tcnn", resume=True)
    for a, b in zip(full.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs", [dict(learning_rate=0, total_steps=5), dict(learning_rate=0.1, total_steps=0),
                                    dict(learning_rate=0.1, total_steps=5, warmup_steps=5),
                                    dict(learning_rate=0.1, total_steps=5, alpha=1.0),
                                    dict(learning_rate=0.1, total_steps=2.5)])
def test_cosine_decay_refuses_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        C.CosineDecay(**kwargs)
