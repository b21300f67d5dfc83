"""The seed model and its arithmetic, shared by the benchmark suites and ``compare.py``.

The seed model is the Keras listing of the design card:
Conv32-Pool-Conv64-Pool-Conv128-Pool-Flatten-Dense512-Dense1 (3x3 'valid' convolutions with
relu, 2x2 max-pools, a relu Dense layer, a sigmoid output, binary cross-entropy, Adam),
trained on batches of 32 NHWC float32 images.

This module imports NumPy and tinycnn only (never PyTorch): it sits next to the scripts that
use it and is imported as ``seedmodel`` (``benchmarks/`` is on ``sys.path`` for both a script
run from there and pytest's collection of ``benchmarks/bench_*.py``).
"""

import functools
import math
import time

import numpy as np

BATCH = 32
FILTERS = (32, 64, 128)
UNITS = 512
#: the sizes of the issue; 224 means the listing's 224x224x3, the others are grey-scale
DEFAULT_SIZES = "28,64,128,224"
_CHANNELS = {224: 3}


def parse_sizes(text):
    """``"28,64,224"`` -> ``[(28, 28, 1), (64, 64, 1), (224, 224, 3)]``.

    A plain number N means NxNx1, except 224 which means 224x224x3 (the listing's input);
    ``HxWxC`` (e.g. ``96x96x3``) gives the shape explicitly.
    """
    shapes = []
    for tok in str(text).split(","):
        tok = tok.strip().lower()
        if not tok:
            continue
        parts = tok.split("x")
        if len(parts) == 1:
            n = int(parts[0])
            shape = (n, n, _CHANNELS.get(n, 1))
        elif len(parts) == 3:
            shape = tuple(int(p) for p in parts)
        else:
            raise ValueError(f"size {tok!r}: give N or HxWxC")
        if min(shape) < 1 or min(shape[:2]) < 22:
            raise ValueError(f"size {tok!r}: the seed model needs images of at least 22x22")
        shapes.append(shape)
    if not shapes:
        raise ValueError("no sizes given")
    return shapes


def label(shape):
    return "x".join(str(d) for d in shape)


def build_tinycnn(shape, seed=0):
    """The seed model for inputs of ``shape`` (H, W, C), compiled as in the listing.

    Builds on the active tinycnn backend (choose it before calling).
    """
    import tinycnn
    from tinycnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from tinycnn.models import Sequential

    tinycnn.set_random_seed(seed)
    model = Sequential()
    model.add(Conv2D(FILTERS[0], (3, 3), activation="relu", input_shape=tuple(shape)))
    model.add(MaxPooling2D((2, 2)))
    model.add(Conv2D(FILTERS[1], (3, 3), activation="relu"))
    model.add(MaxPooling2D((2, 2)))
    model.add(Conv2D(FILTERS[2], (3, 3), activation="relu"))
    model.add(MaxPooling2D((2, 2)))
    model.add(Flatten())
    model.add(Dense(UNITS, activation="relu"))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


#: short, stable names for the seed model's layers (tinycnn's own names carry global counters)
LAYER_NAMES = ("conv32", "pool1", "conv64", "pool2", "conv128", "pool3", "flatten", "dense512", "dense1")


def make_batch(shape, batch=BATCH, seed=0):
    """A fixed random batch: images in [0, 1) (N, H, W, C) float32 and 0/1 labels (N,) float32."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch,) + tuple(shape), dtype=np.float32)
    y = np.zeros(batch, dtype=np.float32)
    y[rng.permutation(batch)[: batch // 2]] = 1.0  # both classes present
    return x, y


def geometry(shape):
    """Per conv layer: (H, W, C, OH, OW, F) of its input/output, and the Flatten width D."""
    H, W, C = shape
    convs = []
    for F in FILTERS:
        OH, OW = H - 2, W - 2  # 3x3 'valid'
        convs.append((H, W, C, OH, OW, F))
        H, W, C = OH // 2, OW // 2, F  # 2x2 max-pool, stride 2, 'valid'
    return convs, H * W * C


def gemms(shape, batch=BATCH):
    """The matrix products of one training step of the seed model, im2col form.

    Returns a list of dicts: ``name``, ``phase`` ('forward' or 'backward'), ``m, k, n`` (an
    (m, k) @ (k, n) product), ``trans`` (which operand is used transposed, as the backward
    GEMMs do: dW = cols.T @ dz, dX = dz @ w.T) and ``flops`` = 2 m k n.
    The first convolution needs no input gradient (``need_dx=False``), so it has no dX GEMM;
    PyTorch skips it as well (the input does not require a gradient).
    """
    convs, D = geometry(shape)
    out = []

    def add(name, phase, m, k, n, trans):
        out.append({"name": name, "phase": phase, "m": m, "k": k, "n": n, "trans": trans,
                    "flops": 2 * m * k * n})

    for i, (_, _, C, OH, OW, F) in enumerate(convs):
        M, K = batch * OH * OW, 9 * C
        tag = f"conv{F}"
        add(f"{tag} fwd  cols@w", "forward", M, K, F, "")
        add(f"{tag} dW   cols.T@dz", "backward", K, M, F, "a")
        if i > 0:
            add(f"{tag} dX   dz@w.T", "backward", M, F, K, "b")
    for din, dout in ((D, UNITS), (UNITS, 1)):
        tag = f"dense{dout}"
        add(f"{tag} fwd  x@w", "forward", batch, din, dout, "")
        add(f"{tag} dW   x.T@dy", "backward", din, batch, dout, "a")
        add(f"{tag} dX   dy@w.T", "backward", batch, dout, din, "b")
    return out


@functools.cache
def model_flops(which, shape, batch=BATCH, phase=None):
    """Multiply-add arithmetic (x 2) of one training step (``phase=None``) or of the forward
    pass (``'forward'``) of the seed or the diagnosis model: every Conv2D's and Dense layer's
    forward product, weight gradient and input gradient (none for the first layer), whatever
    the algorithm (for the seed model this equals :func:`flops`). Batch norm, pooling and
    activations are not counted."""
    import tinycnn
    from tinycnn.layers import Conv2D, Dense

    with tinycnn.use_backend("numpy"):
        if which == "seed":
            model = build_tinycnn(shape)
        else:
            from tinycnn.pipeline import diagnosis_model

            model = diagnosis_model(tuple(shape))
    total = 0
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Conv2D):
            KH, KW = layer.kernel_size
            OH, OW, F = layer.output_shape
            f = 2 * OH * OW * KH * KW * layer.input_shape[-1] * F
        elif isinstance(layer, Dense):
            f = 2 * layer.input_shape[0] * layer.units
        else:
            continue
        total += f if phase == "forward" else f * (2 if i == 0 else 3)
    return batch * total


def flops(shape, batch=BATCH, phase=None):
    """GEMM flops of one step (``phase=None``) or of its forward pass only (``'forward'``)."""
    return sum(g["flops"] for g in gemms(shape, batch) if phase is None or g["phase"] == phase)


class GemmSet:
    """Operands for timing the GEMMs of :func:`gemms` with ``numpy.matmul`` (float32).

    Each product writes into a preallocated output (``out=``), so what is timed is the BLAS
    call itself: the floor a GEMM-based training step cannot beat. One scratch buffer per role
    is sized for the largest product and shared by the layers, to keep the memory modest.
    """

    def __init__(self, shape, batch=BATCH, seed=0):
        self.specs = gemms(shape, batch)
        rng = np.random.default_rng(seed)
        need = {"a": 0, "b": 0, "c": 0}
        for g in self.specs:
            need["a"] = max(need["a"], g["m"] * g["k"])
            need["b"] = max(need["b"], g["k"] * g["n"])
            need["c"] = max(need["c"], g["m"] * g["n"])
        self._buf = {r: rng.uniform(-1, 1, n).astype(np.float32) for r, n in need.items()}
        self.ops = []
        for g in self.specs:
            m, k, n = g["m"], g["k"], g["n"]
            # the stored layouts of the real operands: cols (M, K), w (K, F), dz (M, F)
            a = self._buf["a"][: m * k].reshape((k, m) if "a" in g["trans"] else (m, k))
            b = self._buf["b"][: k * n].reshape((n, k) if "b" in g["trans"] else (k, n))
            a = a.T if "a" in g["trans"] else a
            b = b.T if "b" in g["trans"] else b
            c = self._buf["c"][: m * n].reshape(m, n)
            self.ops.append((a, b, c))

    def run(self, phase=None):
        """Run every product (or those of one phase); return the seconds each took."""
        times = []
        for g, (a, b, c) in zip(self.specs, self.ops, strict=True):
            if phase is not None and g["phase"] != phase:
                continue
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter() - t0)
        return times


def sync_for(backend_name):
    """A function that waits for the device (cuda), or does nothing (host backends)."""
    if backend_name == "cuda":
        from numba import cuda

        return cuda.synchronize
    return lambda: None


def run_benchmark(benchmark, fn, backend_name, seconds, setup=None, images=BATCH):
    """Time ``fn`` with pytest-benchmark, waiting for the device (cuda) inside the timing.

    Two untimed warm-up calls first (the first compiles, for 'cpu' and 'cuda'); the second's
    time sets the number of rounds so that the benchmark takes about ``seconds``. ``setup``
    (untimed, before each call) returns ``(args, kwargs)``. Records img/s in ``extra_info``.
    """
    sync = sync_for(backend_name)

    def call(*args, **kwargs):
        out = fn(*args, **kwargs)
        sync()
        return out

    def prepared():
        if setup is None:
            return None
        r = setup()
        sync()
        return r

    if benchmark.disabled:
        return benchmark.pedantic(call, setup=prepared if setup else None)
    dt = None
    for _ in range(1 if backend_name == "numpy" else 2):
        args, kwargs = prepared() or ((), {})
        t0 = time.perf_counter()
        call(*args, **kwargs)
        dt = time.perf_counter() - t0
    rounds = int(min(200, max(1, math.floor(seconds / max(dt, 1e-9)))))
    result = benchmark.pedantic(call, setup=prepared if setup else None, rounds=rounds, warmup_rounds=0)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update({"backend": backend_name, "batch": images, "img_per_s_median": images / median})
    return result
