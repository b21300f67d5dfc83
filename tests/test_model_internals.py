"""The documented model internals (forward/backward over a range of layers, the loss, the
training step and its gradient hooks, passes that leave no trace) and seeded dropout."""

import threading

import numpy as np
import pytest

import tinycnn
from tinycnn import backend
from tinycnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tinycnn.models import Sequential
from tinycnn.random import set_random_seed


@pytest.fixture(autouse=True)
def _reference_backend():
    with backend.use_backend("numpy"):  # exact and fast at these sizes
        yield


def _model(head="sigmoid", k=1, dropout=None):
    set_random_seed(0)
    # fixed names: a checkpoint is resumed only by a model of the same architecture, names included
    layers = [Conv2D(3, 3, activation="relu", input_shape=(6, 6, 2), name="conv"), BatchNormalization(name="bn"),
              MaxPooling2D(name="pool"), Flatten(name="flat")]
    if dropout is not None:
        layers.append(dropout)
    m = Sequential(layers + [Dense(k, activation=head, name="head")])
    m.compile(tinycnn.optimizers.SGD(0.1), "binary_crossentropy" if k == 1 else "categorical_crossentropy")
    return m


def _data(n=4, k=1):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 2, n).astype(np.float32) if k == 1 else np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    return x, y


def test_forward_in_pieces_equals_one_pass_and_logits_follow_one_rule():
    m = _model()
    x, _ = _data()
    full = m.forward(x)
    a = m.forward(x, stop=2)
    np.testing.assert_array_equal(m.forward(a, start=2), full)
    np.testing.assert_array_equal(m.forward(x, stop=-1), m.forward(x, stop=len(m.layers) - 1))
    logits = m.forward(x, logits=True)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), full, rtol=1e-6)
    # logits apply to the model's last layer only, and only when it is in the range
    np.testing.assert_array_equal(m.forward(x, stop=1, logits=True), m.forward(x, stop=1))
    assert m.fused_loss  # sigmoid + binary cross-entropy train from logits


def test_backward_in_pieces_equals_one_pass():
    m = _model()
    x, y = _data()
    m.forward(x, training=True, logits=True)
    _, d_out = m.compute_loss(m.forward(x, training=True, logits=True), y)
    dx = m.backward(d_out)
    grads = [{k: v.copy() for k, v in layer.grads.items()} for layer in m.layers]
    m.forward(x, training=True, logits=True)
    d2 = m.backward(d_out, start=2)  # the gradient at the output of layer 1
    assert d2.shape == (len(x),) + m.layers[1].output_shape
    np.testing.assert_array_equal(m.backward(d2, stop=2), dx)
    for layer, saved in zip(m.layers, grads, strict=True):
        for k, v in saved.items():
            np.testing.assert_array_equal(layer.grads[k], v)
    m.forward(x, training=True, logits=True)
    assert m.backward(d_out, need_dx=False) is None  # the first layer skips its input gradient


def test_compute_loss_is_the_loss_evaluate_reports():
    m = _model()
    x, y = _data()
    loss, d_out = m.compute_loss(m.forward(x, logits=m.fused_loss), y)
    assert d_out.shape == (len(x), 1)
    assert loss == pytest.approx(m.evaluate(x, y, verbose=0))


def _params(m):
    return [np.array(p) for layer in m.layers for p in layer.params.values()]


def test_gradient_hooks_run_when_every_gradient_is_ready_and_before_the_update():
    m = _model()
    x, y = _data()
    before = _params(m)
    seen = []

    def hook(model):
        assert model is m
        # every parameter has its gradient, and no parameter has moved yet
        seen.append({(i, k): g.copy() for i, layer in enumerate(model.layers) for k, g in layer.grads.items()})
        for p, p0 in zip(_params(model), before, strict=True):
            np.testing.assert_array_equal(p, p0)
        for layer in model.layers:  # e.g. an allreduce: here, zero every gradient in place
            for g in layer.grads.values():
                g[...] = 0

    m.gradient_hooks.append(hook)
    m.train_on_batch(x, y)
    assert len(seen) == 1 and len(seen[0]) == len(before)
    assert all(np.any(g != 0) for g in seen[0].values())
    for p, p0 in zip(_params(m), before, strict=True):  # plain SGD applied the zeroed gradients
        np.testing.assert_array_equal(p, p0)
    m.gradient_hooks.clear()
    m.train_on_batch(x, y)
    assert not np.array_equal(_params(m)[0], before[0])


def test_a_non_finite_loss_stops_before_hooks_and_update():
    m = _model()
    x, y = _data()
    calls = []
    m.gradient_hooks.append(calls.append)
    m.layers[-1].set_weights([np.full((12, 1), np.inf, np.float32), np.zeros(1, np.float32)])
    before = _params(m)
    with pytest.raises(tinycnn.TrainingError, match="loss became"), np.errstate(invalid="ignore"):
        m.train_step(x, y)
    assert calls == []
    for p, p0 in zip(_params(m), before, strict=True):
        np.testing.assert_array_equal(p, p0)


def test_preserved_leaves_gradients_and_backward_context_as_they_were():
    m = _model()
    x, y = _data()
    m.train_on_batch(x, y)
    grads = [{k: v.copy() for k, v in layer.grads.items()} for layer in m.layers]
    out = m.forward(x, training=True, logits=True)  # a pending backward
    with m.preserved():
        m.backward(m.compute_loss(m.forward(x[:2], logits=True), y[:2])[1])
    for layer, saved in zip(m.layers, grads, strict=True):
        for k, v in saved.items():
            np.testing.assert_array_equal(layer.grads[k], v)
    m.backward(m.compute_loss(out, y)[1])  # the pending backward still has its context


# ------------------------------------------------------------------ seeded dropout
def _masks(layer, n=3):
    x = np.ones((2, 50), np.float32)
    return [layer.forward(x, training=True) != 0 for _ in range(n)]


def test_dropout_seed_gives_its_own_deterministic_masks():
    set_random_seed(1)
    a = _masks(Dropout(0.5, seed=7))
    set_random_seed(2)  # the shared generator does not matter to a seeded layer
    b = _masks(Dropout(0.5, seed=7))
    for ma, mb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(a[0], a[1])  # each call draws a new mask
    assert not np.array_equal(a[0], _masks(Dropout(0.5, seed=8))[0])
    set_random_seed(1)
    c = _masks(Dropout(0.5))  # unseeded: the shared generator decides
    set_random_seed(1)
    np.testing.assert_array_equal(c[0], _masks(Dropout(0.5))[0])


def test_dropout_seed_is_saved_in_the_config_and_the_model_file(tmp_path):
    assert Dropout(0.5, seed=7).get_config()["seed"] == 7
    assert "seed" not in Dropout(0.5).get_config()  # configs written before seeds are unchanged
    with pytest.raises(tinycnn.ConfigError, match="seed"):
        Dropout(0.5, seed=-1)
    m = _model(dropout=Dropout(0.3, seed=11))
    m.save(tmp_path / "m.tcnn")
    loaded = tinycnn.models.load_model(tmp_path / "m.tcnn")
    assert loaded.layers[4].seed == 11
    x = np.ones((2, 12), np.float32)
    np.testing.assert_array_equal(loaded.layers[4].forward(x, training=True), Dropout(0.3, seed=11).forward(
        x, training=True))


def test_resume_with_a_seeded_dropout_equals_an_uninterrupted_run(tmp_path):
    x, y = _data(16)
    straight = _model(dropout=Dropout(0.3, seed=5, name="drop"))
    set_random_seed(3)
    straight.fit(x, y, epochs=2, batch_size=4, verbose=0, checkpoint=tmp_path / "a.ckpt")
    first = _model(dropout=Dropout(0.3, seed=5, name="drop"))
    set_random_seed(3)
    first.fit(x, y, epochs=1, batch_size=4, verbose=0, checkpoint=tmp_path / "b.ckpt")
    resumed = _model(dropout=Dropout(0.3, seed=5, name="drop"))  # a fresh process would build it anew
    resumed.fit(x, y, epochs=2, batch_size=4, verbose=0, checkpoint=tmp_path / "b.ckpt", resume=True)
    for wa, wb in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


# ------------------------------------------------------------------ the data-parallel hooks
class _Exchange:
    """An allreduce between threads standing in for processes: each contributes its arrays,
    every one gets the sums (float64)."""

    def __init__(self, n):
        self.barrier = threading.Barrier(n, timeout=60)
        self.slots = [None] * n

    def allreduce(self, rank):
        def reduce(arrays):
            self.slots[rank] = [np.asarray(a, np.float64) for a in arrays]
            self.barrier.wait()
            total = [sum(parts) for parts in zip(*self.slots, strict=True)]
            self.barrier.wait()  # everyone has read before the next round overwrites
            return total

        return reduce


def test_two_replicas_with_both_hooks_take_the_step_of_one_model_on_the_whole_batch():
    """What a data-parallel run (issue 14) does with the hooks: each replica trains on half the
    batch, batch norm uses the statistics of the whole batch (BatchNormalization(synchronized=
    True) + layer.allreduce) and a gradient hook averages the gradients. One step then equals
    one step of a single model on the whole batch (float64, to 1e-10)."""

    def model():
        set_random_seed(0)
        m = Sequential([Conv2D(3, 3, activation="relu", input_shape=(6, 6, 2), name="conv"),
                        BatchNormalization(synchronized=True, name="bn"), Flatten(name="flat"),
                        Dense(1, activation="sigmoid", name="head")])
        m.compile(tinycnn.optimizers.SGD(0.1), "binary_crossentropy")
        return m.set_dtype("float64")

    x, y = _data(8)
    single = model()
    single.train_on_batch(x, y)
    exchange = _Exchange(2)
    replicas = [model(), model()]

    def average_gradients(reduce):
        def hook(m):
            grads = [g for layer in m.layers for g in layer.grads.values()]
            for g, total in zip(grads, reduce(grads), strict=True):
                g[...] = total / 2
        return hook

    for rank, m in enumerate(replicas):
        m.layers[1].allreduce = exchange.allreduce(rank)
        m.gradient_hooks.append(average_gradients(exchange.allreduce(rank)))
    threads = [threading.Thread(target=m.train_on_batch, args=(x[4 * r:4 * r + 4], y[4 * r:4 * r + 4]))
               for r, m in enumerate(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for m in replicas:
        for w, w1 in zip(m.get_weights(), single.get_weights(), strict=True):
            np.testing.assert_allclose(w, w1, rtol=1e-10, atol=1e-10)
    assert BatchNormalization(synchronized=True).get_config()["synchronized"] is True
    assert "synchronized" not in BatchNormalization().get_config()
