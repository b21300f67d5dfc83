"""GPU benchmark of tinycnn's ``cuda`` backend: SGEMM throughput against cuBLAS (through CuPy,
when importable), per-kernel timings, and the seed model's training step.

Usage::

    python benchmarks/bench_cuda.py                 # everything, default sizes
    python benchmarks/bench_cuda.py --quick         # smaller matrices, fewer repetitions
    python benchmarks/bench_cuda.py --sizes 64,128  # seed-model input sizes (see seedmodel.py)

Prints figures and ratios; asserts nothing (correctness lives in tests/cuda). Without a usable
GPU it prints why and exits with status 0. ``--smoke`` runs tiny sizes under the numba CUDA
simulator, only to check that this script works; its figures mean nothing.

Timing: CUDA events around ``reps`` back-to-back calls after a warm-up call (which also pays
for the JIT compilation); the figure is the mean time per call, Python launch overhead
included, because that is what a training step pays. tinycnn's GEMM allocates its output on
each call, as the backend does.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for seedmodel


def why_no_gpu(smoke=False):
    """A sentence saying why this machine cannot be benchmarked, or None."""
    try:
        import numba_cuda  # noqa: F401
    except ImportError:
        return "numba-cuda is not installed (pip install tinycnn[cuda])"
    from numba.core import config

    if config.ENABLE_CUDASIM:
        if smoke:
            return None
        return "the numba CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): timings would be meaningless"
    from numba import cuda

    try:
        if not cuda.is_available():
            return "no CUDA GPU/driver was found (numba.cuda.is_available() is False)"
    except Exception as e:  # pragma: no cover - depends on the machine
        return f"the CUDA driver cannot be used ({e})"
    return None


def cupy_or_none():
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception:
        return None


class Timer:
    """Mean milliseconds per call of ``fn`` measured with CUDA events."""

    def __init__(self, reps):
        from numba import cuda

        self.cuda = cuda
        self.reps = reps

    def __call__(self, fn):
        fn()  # warm-up (and JIT compilation)
        self.cuda.synchronize()
        start, end = self.cuda.event(), self.cuda.event()
        start.record()
        for _ in range(self.reps):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / self.reps


def device_line():
    from numba import cuda
    from tinycnn.kernels import _cuda_common as cc

    dev = cuda.get_current_device()
    name = getattr(dev, "name", b"simulator")
    name = name.decode() if isinstance(name, bytes) else str(name)
    import numba_cuda

    return (f"device: {name}, compute capability {dev.compute_capability}, {cc.sm_count()} SMs; "
            f"numba-cuda {numba_cuda.__version__}")  # fmt: skip


def bench_sgemm(sizes, timer, cp):
    from tinycnn.kernels import _cuda_gemm as gm
    from tinycnn.kernels import cuda as K

    print("\nSGEMM (float32), GFLOP/s: tinycnn tiled GEMM vs cuBLAS (CuPy)")
    print(f"{'M=N=K':>7} {'op':>8} {'tinycnn':>10} {'cuBLAS':>10} {'ratio':>7} {'max rel err':>12}")
    rng = np.random.default_rng(0)
    for n in sizes:
        a = K.asarray(rng.uniform(-1, 1, (n, n)).astype(np.float32))
        b = K.asarray(rng.uniform(-1, 1, (n, n)).astype(np.float32))
        flops = 2.0 * n * n * n
        for op, ta, tb in (("A@B", False, False), ("A.T@B", True, False), ("A@B.T", False, True)):
            ms = timer(lambda a=a, b=b, ta=ta, tb=tb: gm.gemm(a, b, ta, tb))
            ours = flops / ms / 1e6
            if cp is not None:
                ca, cb = cp.asarray(a), cp.asarray(b)
                cop = (ca.T if ta else ca, cb.T if tb else cb)
                ms_cp = timer(lambda cop=cop: cp.matmul(*cop))
                theirs = flops / ms_cp / 1e6
                want = cp.asnumpy(cp.matmul(*cop))
                got = K.to_numpy(gm.gemm(a, b, ta, tb))
                err = float(np.abs(got - want).max() / np.abs(want).max())
                print(f"{n:>7} {op:>8} {ours:>10.0f} {theirs:>10.0f} {ours / theirs:>7.2f} {err:>12.1e}")
            else:
                print(f"{n:>7} {op:>8} {ours:>10.0f} {'-':>10} {'-':>7} {'-':>12}")
    if cp is None:
        print("(CuPy not importable: install cupy-cuda13x to compare with cuBLAS)")


def bench_seed_gemms(shapes, timer, cp, batch, limit=None):
    import seedmodel
    from tinycnn.kernels import _cuda_gemm as gm
    from tinycnn.kernels import cuda as K

    rng = np.random.default_rng(0)
    for shape in shapes:
        print(f"\nseed-model GEMMs of one training step, input {seedmodel.label(shape)}, batch {batch} (ms)")
        print(f"{'product':<22} {'m':>8} {'k':>8} {'n':>6} {'tinycnn':>9} {'cuBLAS':>9} {'ratio':>7}")
        tot = [0.0, 0.0]
        for g in seedmodel.gemms(shape, batch)[:limit]:
            m, k, n, tr = g["m"], g["k"], g["n"], g["trans"]
            a = K.asarray(rng.uniform(-1, 1, (k, m) if "a" in tr else (m, k)).astype(np.float32))
            b = K.asarray(rng.uniform(-1, 1, (n, k) if "b" in tr else (k, n)).astype(np.float32))
            ms = timer(lambda a=a, b=b, tr=tr: gm.gemm(a, b, "a" in tr, "b" in tr))
            tot[0] += ms
            line = f"{g['name']:<22} {m:>8} {k:>8} {n:>6} {ms:>9.3f}"
            if cp is not None:
                ca, cb = cp.asarray(a), cp.asarray(b)
                ca, cb = (ca.T if "a" in tr else ca), (cb.T if "b" in tr else cb)
                ms_cp = timer(lambda ca=ca, cb=cb: cp.matmul(ca, cb))
                tot[1] += ms_cp
                line += f" {ms_cp:>9.3f} {ms_cp / ms:>7.2f}"
            print(line)
        print(f"{'total':<22} {'':>8} {'':>8} {'':>6} {tot[0]:>9.3f}" + (
            f" {tot[1]:>9.3f} {tot[1] / tot[0]:>7.2f}" if cp is not None else ""))  # fmt: skip


def bench_kernels(shape, timer, batch, small=False):
    """Per-operation times of the backend on the seed model's second convolution's shapes."""
    from tinycnn.kernels import cuda as K

    rng = np.random.default_rng(0)
    H, W, _ = shape
    C, F = (2, 3) if small else (32, 64)
    x = K.asarray(rng.standard_normal((batch, H, W, C)).astype(np.float32))
    w = K.asarray(rng.standard_normal((3, 3, C, F)).astype(np.float32) * 0.1)
    b = K.asarray(np.zeros(F, np.float32))
    y, ctx = K.conv2d_forward(x, w, b, (1, 1), "same", "relu")
    dy = K.asarray(rng.standard_normal(y.shape).astype(np.float32))
    p, pctx = K.maxpool2d_forward(y, (2, 2), (2, 2), "valid")
    dp = K.asarray(rng.standard_normal(p.shape).astype(np.float32))
    g, beta = K.asarray(np.ones(F, np.float32)), K.asarray(np.zeros(F, np.float32))
    rm, rv = K.asarray(np.zeros(F, np.float32)), K.asarray(np.ones(F, np.float32))
    bn, bctx = K.batchnorm_forward(y, g, beta, rm, rv, 0.99, 1e-3, True)
    n_par = 100 if small else 1 << 20
    par = [K.asarray(rng.standard_normal(n_par).astype(np.float32) * s) for s in (1, 1, 0, 0)]
    logits = K.asarray(rng.standard_normal((batch, 10)).astype(np.float32))
    labels = K.asarray(rng.integers(0, 10, batch).astype(np.int32))
    cases = [
        ("conv2d_forward 3x3 same relu", lambda: K.conv2d_forward(x, w, b, (1, 1), "same", "relu")),
        ("conv2d_backward (dx, dw, db)", lambda: K.conv2d_backward(dy, ctx)),
        ("conv2d_backward need_dx=False", lambda: K.conv2d_backward(dy, ctx, need_dx=False)),
        ("maxpool2d_forward 2x2", lambda: K.maxpool2d_forward(y, (2, 2), (2, 2), "valid")),
        ("maxpool2d_backward", lambda: K.maxpool2d_backward(dp, pctx)),
        ("batchnorm_forward (training)", lambda: K.batchnorm_forward(y, g, beta, rm, rv, 0.99, 1e-3, True)),
        ("batchnorm_backward", lambda: K.batchnorm_backward(dy, bctx)),
        ("activation relu fwd", lambda: K.activation_forward(y, "relu")),
        ("dropout_forward (host mask)", lambda: K.dropout_forward(y, 0.5, 0)),
        ("global_avgpool_forward", lambda: K.global_avgpool_forward(y)),
        ("sparse CE from logits (fwd)", lambda: K.loss_forward("sparse_categorical_crossentropy", logits,
                                                               labels, None, True)),
        (f"adam_update {n_par} params", lambda: K.adam_update(*par, 1e-3, 0.9, 0.999, 1e-7, 1)),
        (f"sgd_update nesterov {n_par}", lambda: K.sgd_update(par[0], par[1], par[2], 1e-3, 0.9, True)),
    ]  # fmt: skip
    print(f"\nkernel timings (ms per call), x = {batch}x{H}x{W}x{C}, {F} filters")
    for name, fn in cases:
        print(f"{name:<34} {timer(fn):>9.3f}")


def bench_model(shapes, timer, batch):
    import seedmodel

    from tinycnn import backend

    backend.set_backend("cuda")
    print(f"\nseed model on the cuda backend: train_on_batch, batch {batch} (upload of the batch included)")
    for shape in shapes:
        model = seedmodel.build_tinycnn(shape)
        x, y = seedmodel.make_batch(shape, batch)
        ms = timer(lambda model=model, x=x, y=y: model.train_on_batch(x, y))
        gflop = seedmodel.flops(shape, batch) / 1e9
        print(f"{seedmodel.label(shape):>10}: {ms:8.2f} ms/step, {batch / ms * 1e3:8.0f} images/s, "
              f"{gflop / ms * 1e3:7.0f} GEMM GFLOP/s")  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller matrices, fewer repetitions")
    parser.add_argument("--sizes", default=None, help="seed-model input sizes, e.g. 28,64,128,224")
    parser.add_argument("--reps", type=int, default=None, help="timed calls per figure")
    parser.add_argument("--smoke", action="store_true", help="tiny run under the simulator (checks the script)")
    args = parser.parse_args(argv)

    reason = why_no_gpu(args.smoke)
    if reason:
        print(f"bench_cuda: {reason}; nothing to benchmark.")
        return 0
    import seedmodel
    from tinycnn.kernels import cuda as K

    K.ensure_available()
    if args.smoke:
        gemm_sizes, sizes, reps, batch = [24], "22", 1, 2
    elif args.quick:
        gemm_sizes, sizes, reps, batch = [512, 1024, 2048], "28,64", 5, seedmodel.BATCH
    else:
        gemm_sizes, sizes, reps, batch = [512, 1024, 2048, 4096], seedmodel.DEFAULT_SIZES, 20, seedmodel.BATCH
    shapes = seedmodel.parse_sizes(args.sizes or sizes)
    timer = Timer(args.reps or reps)
    cp = None if args.smoke else cupy_or_none()
    print(device_line() + (f"; CuPy {cp.__version__}" if cp is not None else "; CuPy not available"))
    if args.smoke:
        print("SMOKE RUN under the simulator: the figures below mean nothing")
    bench_sgemm(gemm_sizes, timer, cp)
    if args.smoke:
        bench_seed_gemms(shapes, timer, cp, 1, limit=1)
        bench_kernels((6, 6, 1), timer, 1, small=True)
    else:
        bench_seed_gemms(shapes, timer, cp, batch)
        bench_kernels(shapes[-1], timer, batch)
    if not args.smoke:
        bench_model(shapes, timer, batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
