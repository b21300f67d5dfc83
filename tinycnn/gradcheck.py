"""Numerical gradient checks: every analytic gradient against central finite differences.

The check runs in float64 on the reference (NumPy) backend by default (``backend_name='cpu'``
checks the Numba kernels the same way). For a layer it uses the scalar
``L = sum(y * r)`` with a fixed random ``r`` (so ``dy = r``); for a model, the model's own
loss on given labels. Each parameter and the input are compared element by element (or, for
tensors larger than ``max_elements``, along random directions, as Chainer's
``check_backward`` does): ``(L(t + h e) - L(t - h e)) / 2h`` against ``<grad, e>``.

The error reported for a tensor is ``max |analytic - numeric| / max(max |analytic|,
max |numeric|, 1e-8)``: relative to the gradient's scale, so elements near zero do not make
a correct gradient look wrong.
"""

from dataclasses import dataclass, field

import numpy as np

from . import backend


@dataclass
class GradcheckResult:
    """Maximum relative error per checked tensor (``'input'`` and each parameter name)."""

    errors: dict = field(default_factory=dict)

    @property
    def max_error(self):
        return max(self.errors.values()) if self.errors else 0.0

    def ok(self, tol=1e-6):
        return self.max_error <= tol


def _rel_err(a, n):
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(n))), 1e-8)
    return float(np.max(np.abs(a - n))) / scale


def _check_tensor(t, grad, f, h, max_elements, n_directions, rng):
    """Compare ``grad`` (dL/dt) with central differences of ``f()`` perturbing ``t`` in place."""
    if t.size <= max_elements:
        num = np.zeros_like(t)
        flat, nflat = t.reshape(-1), num.reshape(-1)
        for k in range(flat.size):
            old = flat[k]
            flat[k] = old + h
            fp = f()
            flat[k] = old - h
            fm = f()
            flat[k] = old
            nflat[k] = (fp - fm) / (2 * h)
        return _rel_err(grad, num)
    an, nu = [], []
    for _ in range(n_directions):
        e = rng.standard_normal(t.shape)
        e /= np.linalg.norm(e)
        old = t.copy()
        t += h * e
        fp = f()
        t[...] = old - h * e
        fm = f()
        t[...] = old
        an.append(float(np.sum(grad * e)))
        nu.append((fp - fm) / (2 * h))
    return _rel_err(np.array(an), np.array(nu))


def gradcheck(target, x, y=None, h=1e-6, max_elements=400, n_directions=20, seed=0, backend_name="numpy"):
    """Check every parameter and input gradient of a layer or a compiled model.

    Parameters
    ----------
    target : tinycnn Layer or Sequential
        A model must be compiled (its loss is the checked function); ``y`` its labels.
    x : array (N, ...)
        Inputs (cast to float64).
    h : float
        Finite-difference step.
    max_elements : int
        Tensors up to this size are checked element by element, larger ones along
        ``n_directions`` random directions.
    backend_name : str
        The backend whose kernels are checked ('numpy', the reference, by default).

    Returns
    -------
    GradcheckResult
    """
    from .models import Sequential

    # a stream of its own, so r and the directions never coincide with inputs drawn from `seed`
    rng = np.random.default_rng([seed, 0x6772616463686B])
    x = np.array(x, dtype=np.float64)
    with backend.use_backend(backend_name):
        if isinstance(target, Sequential):
            return _check_model(target, x, y, h, max_elements, n_directions, rng)
        return _check_layer(target, x, h, max_elements, n_directions, rng)


def _check_layer(layer, x, h, max_elements, n_directions, rng):
    if not layer.built:
        layer.dtype = np.dtype("float64")
        layer.build(x.shape[1:])
    elif layer.dtype != np.float64:
        layer.dtype = np.dtype("float64")
        layer.set_weights([w.astype(np.float64) for w in layer.get_weights()])
    from .random import get_state, set_state

    state = get_state()

    def run():
        set_state(state)  # dropout draws its mask from the generator: the same mask every run
        return layer.forward(x, training=True)

    y0 = run()
    r = rng.standard_normal(np.shape(y0))

    def f():
        state_before = {k: v.copy() for k, v in getattr(layer, "state", {}).items()}
        out = float(np.sum(run() * r))
        for k, v in state_before.items():  # batch norm: the running statistics must not drift
            layer.state[k][...] = v
        return out

    f()
    run()
    dx = layer.backward(r.copy())
    grads = {k: np.array(v) for k, v in layer.grads.items()}
    res = GradcheckResult()
    res.errors["input"] = _check_tensor(x, dx, f, h, max_elements, n_directions, rng)
    for k, p in layer.params.items():
        res.errors[k] = _check_tensor(p, grads[k], f, h, max_elements, n_directions, rng)
    return res


def _check_model(model, x, y, h, max_elements, n_directions, rng):
    if y is None:
        raise ValueError("a model gradcheck needs labels y")
    if model.dtype != np.float64:
        model.set_dtype("float64")
    x, yv = model.prepare(x, y)

    def f():
        return model.compute_loss(model.forward(x, logits=model.fused_loss), yv)[0]

    _, d_out = model.compute_loss(model.forward(x, logits=model.fused_loss), yv)
    dx = model.backward(d_out)
    grads = [{k: np.array(v) for k, v in l.grads.items()} for l in model.layers]
    res = GradcheckResult()
    res.errors["input"] = _check_tensor(x, dx, f, h, max_elements, n_directions, rng)
    for i, layer in enumerate(model.layers):
        for k, p in layer.params.items():
            res.errors[f"{layer.name}.{k}"] = _check_tensor(p, grads[i][k], f, h, max_elements,
                                                            n_directions, rng)
    return res


def _suite_cases():
    """(description, target factory, input shape, labels or None) for every layer type."""
    from .layers import (
        BatchNormalization,
        Conv2D,
        Dense,
        Dropout,
        Ensemble,
        Flatten,
        GlobalAveragePooling2D,
        LeakyReLU,
        MaxPooling2D,
        ReLU,
        ResidualBlock,
        Sigmoid,
        Softmax,
        Tanh,
    )
    from .losses import BinaryCrossentropy
    from .models import Sequential

    cases = []
    for ks, st, pad, act in [((3, 3), (1, 1), "valid", "relu"), ((3, 3), (2, 2), "same", "tanh"),
                             ((2, 2), (1, 1), "same", "sigmoid"), ((4, 3), (2, 1), "same", None),
                             ((1, 1), (3, 2), "valid", "softmax"), ((5, 5), (1, 1), "same", "relu")]:
        cases.append((f"Conv2D k={ks} s={st} {pad} {act}",
                      lambda ks=ks, st=st, pad=pad, act=act: Conv2D(3, ks, strides=st, padding=pad, activation=act),
                      (2, 7, 6, 2), None))
    for ps, st, pad in [((2, 2), None, "valid"), ((3, 3), (2, 2), "same"), ((2, 3), (1, 1), "valid"),
                        ((2, 2), (2, 2), "same")]:
        cases.append((f"MaxPooling2D p={ps} s={st} {pad}",
                      lambda ps=ps, st=st, pad=pad: MaxPooling2D(ps, strides=st, padding=pad), (2, 7, 5, 2), None))
    cases += [
        ("Dense relu", lambda: Dense(4, activation="relu"), (3, 6), None),
        ("Dense softmax", lambda: Dense(3, activation="softmax"), (3, 5), None),
        ("Flatten", Flatten, (2, 3, 3, 2), None),
        ("GlobalAveragePooling2D", GlobalAveragePooling2D, (2, 3, 5, 2), None),
        ("BatchNormalization (training)", BatchNormalization, (4, 3, 3, 2), None),
        ("Dropout 0.3", lambda: Dropout(0.3), (3, 4, 4, 2), None),
        ("ReLU", ReLU, (3, 5), None), ("LeakyReLU", LeakyReLU, (3, 5), None),
        ("Sigmoid", Sigmoid, (3, 5), None), ("Tanh", Tanh, (3, 5), None), ("Softmax", Softmax, (3, 5), None),
        ("ResidualBlock (identity shortcut)", lambda: ResidualBlock(2), (2, 5, 6, 2), None),
        ("ResidualBlock s=2 (projection)", lambda: ResidualBlock(3, strides=2), (2, 7, 5, 2), None),
        ("Ensemble of 2 models", lambda: Ensemble([Sequential([Conv2D(2, 3, input_shape=(5, 5, 2)), Flatten(),
                                                                Dense(3, activation="softmax")]) for _ in range(2)]),
         (2, 5, 5, 2), None),
    ]

    def model(loss, k, head):
        def make():
            m = Sequential([Conv2D(3, 3, activation="relu", input_shape=(7, 7, 2)), BatchNormalization(),
                            MaxPooling2D(2, padding="same"), Conv2D(4, 2, activation="tanh"), Flatten(),
                            Dense(5, activation="relu"), Dense(k, activation=head)])
            m.compile("adam", BinaryCrossentropy(from_logits=True) if head is None and k == 1 else loss)
            return m
        return make

    labels = {"binary_crossentropy": np.array([0, 1, 1]), "binary_focal_crossentropy": np.array([1, 0, 1]),
              "categorical_crossentropy": np.eye(3)[[2, 0, 1]], "sparse_categorical_crossentropy": np.array([2, 0, 1]),
              "mse": np.array([[0.5, -1.0], [2.0, 0.0], [1.0, 1.0]])}
    for loss, k, head in [("binary_crossentropy", 1, "sigmoid"), ("binary_focal_crossentropy", 1, "sigmoid"),
                          ("categorical_crossentropy", 3, "softmax"), ("sparse_categorical_crossentropy", 3, "softmax"),
                          ("mse", 2, None), ("binary_crossentropy", 1, None)]:
        name = f"model + {loss}" + (" (from logits)" if head is None and k == 1 else "")
        cases.append((name, model(loss, k, head), (3, 7, 7, 2), labels[loss]))
    return cases


def run_suite(tol=1e-6, print_fn=print):
    """Gradient-check every layer type and a small model with each loss; print a table.

    Returns True when every maximum relative error is at most ``tol``.
    """
    ok = True
    print_fn(f"{'case':<48}{'max rel. error':>16}  result")
    print_fn("-" * 74)
    for i, (name, make, shape, labels) in enumerate(_suite_cases()):
        x = np.random.default_rng(i).standard_normal(shape)
        res = gradcheck(make(), x, labels)
        passed = res.ok(tol)
        ok &= passed
        print_fn(f"{name:<48}{res.max_error:>16.2e}  {'ok' if passed else 'FAIL'}")
    print_fn("-" * 74)
    print_fn(f"every relative error <= {tol:g}: {'yes' if ok else 'NO'}")
    return ok
