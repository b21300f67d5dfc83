"""Where a training step of the seed model goes: per layer, per kernel, and outside the kernels.

Run::

    python benchmarks/profile_step.py --size 64              # cpu backend, 20 steps
    python benchmarks/profile_step.py --size 28 --steps 50 --threads 1
    python benchmarks/profile_step.py --size 128 --model diagnosis

How it measures: the model is warmed up (compiled), then every layer's ``forward`` and
``backward``, the optimizer's ``apply`` and the loss are wrapped in timers, and so is every
compiled Numba kernel and BLAS product (``np.matmul``) called by the backend's launchers.
Per layer it prints the wall time of forward and backward, and how much of it was spent inside
kernels; the rest of a layer's time is Python: argument checks, dispatch, allocation. The step's
time not inside any layer, loss or optimizer is the model's own Python (``train_on_batch``).
Timers add a few microseconds per call, so steps are also timed unwrapped and the overhead is
shown. A benchmark, not a test: it asserts nothing.
"""

import argparse
import collections
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="64", help="N (NxNx1; 224 means 224x224x3) or HxWxC")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--threads", type=int, default=None, help="numba and BLAS threads (default: all cores)")
    p.add_argument("--backend", default="cpu", help="tinycnn backend (default cpu)")
    p.add_argument("--model", choices=("seed", "diagnosis"), default="seed",
                   help="the seed model, or the pipeline's default diagnosis model")
    p.add_argument("--predict", action="store_true", help="profile predict() instead of a training step")
    return p.parse_args(argv)


class Timers:
    """Accumulated seconds and call counts per label; a stack so nested kernel time is attributed
    to the innermost open layer section."""

    def __init__(self):
        self.total = collections.defaultdict(float)
        self.calls = collections.Counter()
        self.inside = collections.defaultdict(float)  # kernel seconds inside each section
        self.stack = []

    def wrap_section(self, label, fn):
        def timed(*args, **kwargs):
            self.stack.append(label)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[label] += time.perf_counter() - t0
                self.calls[label] += 1
                self.stack.pop()

        return timed

    def wrap_kernel(self, label, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self.total["kernel " + label] += dt
                self.calls["kernel " + label] += 1
                if self.stack:
                    self.inside[self.stack[-1]] += dt

        return timed


def instrument_kernels(timers):
    """Wrap every compiled kernel the cpu launchers call, and np.matmul as they see it."""
    import types

    import numpy as np
    from numba.core.registry import CPUDispatcher

    from tinycnn import kernels

    undo = []
    for name in sorted(os.listdir(os.path.dirname(kernels.__file__))):
        if not ((name.startswith("_cpu_") and name.endswith(".py")) or name == "cpu.py") or name == "_cpu_act.py":
            continue
        mod = sys.modules.get(f"tinycnn.kernels.{name[:-3]}")
        if mod is None:
            continue
        for attr, obj in list(vars(mod).items()):
            # launchers call kernels through module globals (looked up at call time); helpers
            # compiled into other kernels are never called from Python and stay untouched
            if isinstance(obj, CPUDispatcher) and (attr.endswith("_kernel") or attr.endswith("_serial")):
                setattr(mod, attr, timers.wrap_kernel(f"{name[:-3].lstrip('_').removeprefix('cpu_')}.{attr}", obj))
                undo.append((mod, attr, obj))
        if getattr(mod, "np", None) is np:
            proxy = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
            proxy.matmul = timers.wrap_kernel(f"BLAS np.matmul ({name[:-3].lstrip('_')})", np.matmul)
            mod.np = proxy
            undo.append((mod, "np", np))
    return undo


def build(args):
    import numpy as np
    import seedmodel as sm

    import tinycnn

    tinycnn.set_backend(args.backend)
    shape = sm.parse_sizes(args.size)[0]
    if args.model == "seed":
        model = sm.build_tinycnn(shape)
    else:
        from tinycnn.pipeline import diagnosis_model

        tinycnn.set_random_seed(0)
        model = diagnosis_model(shape)
        model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = sm.make_batch(shape)
    return model, np.asarray(x), y, shape


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[k] = str(args.threads)
    import seedmodel as sm

    model, x, y, shape = build(args)
    step = (lambda: model.predict(x, batch_size=sm.BATCH)) if args.predict else (lambda: model.train_on_batch(x, y))
    for _ in range(3):
        step()
    plain = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        plain.append(time.perf_counter() - t0)

    timers = Timers()
    undo = instrument_kernels(timers)
    names = []
    for i, layer in enumerate(model.layers):
        label = f"{i}-{type(layer).__name__}"
        names.append(label)
        layer.forward = timers.wrap_section(f"{label} fwd", layer.forward)
        layer.backward = timers.wrap_section(f"{label} bwd", layer.backward)
    # fused steps (tinycnn.layers.fused) are made afresh by each pass: wrap their class, labelled
    # by the convolution they start with
    from tinycnn.layers import fused

    index = {id(layer): i for i, layer in enumerate(model.layers)}
    plain_fwd, plain_bwd = fused.ConvPool.forward, fused.ConvPool.backward

    def fwd(step, *a, **k):
        return timers.wrap_section(f"{index[id(step.conv)]}-ConvPool fwd", plain_fwd)(step, *a, **k)

    def bwd(step, *a, **k):
        return timers.wrap_section(f"{index[id(step.conv)]}-ConvPool bwd", plain_bwd)(step, *a, **k)

    fused.ConvPool.forward, fused.ConvPool.backward = fwd, bwd
    if not args.predict:
        model.optimizer.apply = timers.wrap_section("optimizer", model.optimizer.apply)
        model.compute_loss = timers.wrap_section("loss", model.compute_loss)
    wrapped = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        wrapped.append(time.perf_counter() - t0)
    for mod, attr, obj in undo:
        setattr(mod, attr, obj)
    fused.ConvPool.forward, fused.ConvPool.backward = plain_fwd, plain_bwd

    n = args.steps
    step_s = sorted(wrapped)[n // 2]
    plain_s = sorted(plain)[n // 2]
    what = "predict" if args.predict else "training step"
    print(f"{args.model} model, {sm.label(shape)}, batch {sm.BATCH}, backend {args.backend}, "
          f"threads {os.environ.get('NUMBA_NUM_THREADS', 'all')}, load average {os.getloadavg()[0]:.1f}")
    print(f"{what}: median {plain_s * 1e3:.2f} ms unwrapped ({sm.BATCH / plain_s:.0f} img/s), "
          f"{step_s * 1e3:.2f} ms with timers (mean per step below, ms)")
    names = [nm for i, nm in enumerate(names) for nm in (nm, f"{i}-ConvPool")]
    sections = [f"{nm} fwd" for nm in names] + [f"{nm} bwd" for nm in reversed(names)]
    sections += [] if args.predict else ["loss", "optimizer"]
    rows, tot_sec, tot_in = [], 0.0, 0.0
    for s in sections:
        if not timers.calls[s]:
            continue
        t, k = timers.total[s] / n, timers.inside[s] / n
        tot_sec += t
        tot_in += k
        rows.append((s, t, k))
    mean_step = sum(wrapped) / n
    print(f"  {'section':<28}{'ms':>9}{'in kernels':>12}{'outside':>10}{'% of step':>11}")
    for s, t, k in rows:
        print(f"  {s:<28}{t * 1e3:9.3f}{k * 1e3:12.3f}{(t - k) * 1e3:10.3f}{100 * t / mean_step:10.1f}%")
    rest = mean_step - tot_sec
    print(f"  {'model (outside layers)':<28}{rest * 1e3:9.3f}{0:12.3f}{rest * 1e3:10.3f}"
          f"{100 * rest / mean_step:10.1f}%")
    outside = mean_step - tot_in
    print(f"  {'step (mean)':<28}{mean_step * 1e3:9.3f}{tot_in * 1e3:12.3f}{outside * 1e3:10.3f}")
    print(f"  outside kernels (Python, dispatch, allocation, timers): {100 * outside / mean_step:.1f}% "
          f"of the step; timer overhead ~{max(mean_step - sum(plain) / n, 0) * 1e3:.2f} ms/step")
    print("\n  kernels (ms per step, calls per step)")
    ks = sorted((k for k in timers.total if k.startswith("kernel ")), key=lambda k: -timers.total[k])
    for k in ks:
        print(f"  {k[7:]:<52}{timers.total[k] / n * 1e3:9.3f}{timers.calls[k] / n:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
