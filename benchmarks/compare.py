"""tinycnn against PyTorch CPU on the seed model: training step and inference, in img/s.

Run::

    python benchmarks/compare.py                       # sizes 28,64,128,224, all backends
    python benchmarks/compare.py --quick --sizes 28,64 # a smoke run
    python benchmarks/compare.py --json out.json       # also write every figure as JSON

How it measures
---------------
* The seed model (Conv32-Pool-Conv64-Pool-Conv128-Pool-Flatten-Dense512-Dense1, relu, sigmoid
  output, binary cross-entropy, Adam; see ``seedmodel.py``), batch 32, float32. A "training
  step" is forward, loss, backward and the optimizer update: ``model.train_on_batch(x, y)`` for
  tinycnn, ``zero_grad; loss_fn(model(x), y).backward(); opt.step()`` for PyTorch (whose model
  has the same layer shapes, BCE-with-logits = tinycnn's fused sigmoid + BCE, and Adam with
  the same hyper-parameters; the worker checks with copied weights that both compute the same
  outputs and loss). Inference is ``model.predict(x)`` / ``sigmoid(model(x))`` without grad.
* In one process, every contender (each tinycnn backend, PyTorch, and numpy.matmul GEMMs) is
  warmed up, then timed once per round, rounds repeated (ABAB...): median and best are
  reported. PyTorch gets ``torch.set_num_threads`` = numba's thread count = OpenBLAS's.
* Two such processes: "default" (the environment a user has; PyTorch NCHW contiguous tensors)
  and "tuned" (``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000``, which stop glibc
  from handing large blocks back to the kernel after each step, and PyTorch ``channels_last``).
  tinycnn runs in both, so each ratio compares contenders measured side by side.
* GEMM throughput: ``numpy.matmul`` float32 of 1024^3 and of every product of the step in
  im2col form (forward ``cols @ w``, backward ``cols.T @ dz`` and ``dz @ w.T``, dense layers),
  into preallocated outputs, in the same rounds. The "GEMM-only floor" is the summed time of
  the step's products: a step built on these GEMMs cannot be faster (img/s = 32 / floor).
* In their own processes: the cpu backend's time to the first training step with an empty
  and a warm ``NUMBA_CACHE_DIR``, and the peak resident memory (``ru_maxrss``) of training at
  224x224x3 for tinycnn and PyTorch, absolute and above the baseline after imports and data.

Benchmarks are not tests: this prints figures and ratios, and PASS/MISS against the project's
targets; it asserts nothing.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import seedmodel as sm  # noqa: E402

TUNED_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: PyTorch train img/s (default / tuned) measured earlier on the 2-core development machine;
#: printed for context only, never used in a computation.
EARLIER_TORCH = {"28x28x1": ("~1600-1800", "~2200-2500"), "64x64x1": ("~225-255", "~330-350"),
                 "128x128x1": ("~37-41", "~68-80"), "224x224x3": ("~7.3", "~21")}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=sm.DEFAULT_SIZES,
                   help="image sizes: N (NxNx1; 224 means 224x224x3) or HxWxC, comma-separated")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per size (default 7, --quick 3)")
    p.add_argument("--backends", default="numpy,cpu,cuda",
                   help="tinycnn backends to time (unavailable ones are skipped)")
    p.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    p.add_argument("--quick", action="store_true", help="small repeat counts: a smoke run")
    p.add_argument("--json", metavar="PATH", help="write every measurement to PATH")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for numba, OpenBLAS and PyTorch (default: NUMBA_NUM_THREADS or the usable cores)")
    p.add_argument("--numpy-max-size", type=int, default=128,
                   help="time the slow numpy reference backend only up to this image height (default 128)")
    p.add_argument("--memory-size", default="224",
                   help="size for the peak-memory measurement (default 224 = 224x224x3)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--no-compile-time", action="store_true", help="skip the cpu backend's compile-time measurement")
    p.add_argument("--gemm-detail", action="store_true", help="print each GEMM of the step with its GFLOP/s")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is None:
        try:  # fail early on a bad size
            sm.parse_sizes(args.sizes)
            sm.parse_sizes(args.memory_size)
        except ValueError as e:
            p.error(str(e))
        if args.repeats is not None and args.repeats < 1:
            p.error("--repeats must be at least 1")
    return args


def default_threads():
    if os.environ.get("NUMBA_NUM_THREADS"):
        return int(os.environ["NUMBA_NUM_THREADS"])
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def child_env(threads, tuned, extra=None):
    """The environment of a worker: the user's, with the malloc settings removed (default) or
    set (tuned), and one thread count for every threaded library."""
    env = {k: v for k, v in os.environ.items() if k not in TUNED_ENV}
    if tuned:
        env.update(TUNED_ENV)
    env.update({k: str(threads) for k in THREAD_VARS})
    env.update(extra or {})
    return env


def run_worker(kind, cfg, env, tmpdir):
    """Run ``compare.py --worker kind`` in a fresh process; return (result, error)."""
    out = os.path.join(tmpdir, f"{cfg['tag']}.json")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--config", json.dumps(cfg), "--out", out]
    proc = subprocess.run(cmd, env=env, cwd=HERE)
    if proc.returncode != 0 or not os.path.exists(out):
        return None, f"worker {cfg['tag']!r} failed (exit status {proc.returncode}; its error is printed above)"
    with open(out) as f:
        return json.load(f), None


def worker_main(args):
    import compare_workers as cw

    result = cw.WORKERS[args.worker](json.loads(args.config))
    with open(args.out, "w") as f:
        json.dump(result, f)
    return 0


# --------------------------------------------------------------------------- formatting
def ips(seconds):
    return sm.BATCH / seconds


def _pct(x):
    return f"{100 * x:.0f}%"


def find(timing, size, who, kind):
    if not timing or size not in timing["sizes"]:
        return None
    for r in timing["sizes"][size]["results"]:
        if r["who"] == who and r["kind"] == kind:
            return r
    return None


def print_table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        cells = [str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        print("  " + "  ".join(cells))


def report_timing(t, gemm_detail):
    layout = "channels_last" if t["channels_last"] else "NCHW contiguous"
    env = ("MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000" if t["env"] == "tuned"
           else "malloc defaults")
    print(f"\n== Process '{t['env']}': {env}; PyTorch {layout} ==")
    thr = f"numba threads {t['numba_threads']}"
    if "torch_threads" in t:
        thr += f", torch {t['torch_version']} threads {t['torch_threads']}"
    if "numba_threading_layer" in t:
        thr += f", numba threading layer {t['numba_threading_layer']}"
    print("  " + thr)
    la = t.get("loadavg_1min")
    if la:
        busy = max(la) > t["numba_threads"] + 1
        print(f"  load average (1 min) at the start / end of this process: {la[0]:.1f} / {la[1]:.1f}"
              + (" -- other jobs were running: these figures are noisy" if busy else ""))
    for n in t["notes"]:
        print("  note: " + n)
    if t.get("parity"):
        p = t["parity"]
        print(f"  same-computation check ({p['size']}, tinycnn-{p['backend']} vs torch, copied weights): "
              f"params {p['params_tinycnn']:,} vs {p['params_torch']:,}; loss {p['loss_tinycnn']:.6f} vs "
              f"{p['loss_torch']:.6f}; max |prob diff| {p['max_abs_prob_diff']:.1e}; worst relative gradient "
              f"diff {p['max_rel_grad_diff']:.1e}; after one Adam step max |prob diff| "
              f"{p['max_abs_prob_diff_after_step']:.1e} (the step itself moved them by up to "
              f"{p['max_abs_prob_change_by_step']:.1e})")
    models = []
    for s in t["sizes"].values():
        for r in s["results"]:
            if r["who"] != "gemm" and r["who"] not in models:
                models.append(r["who"])
    tiny = [m for m in models if m.startswith("tinycnn")]
    for kind, what in (("train", "training step"), ("infer", "inference")):
        ratio_note = "; ratio = tinycnn / torch (medians)" if "torch" in models else ""
        print(f"\n  {what}, batch {sm.BATCH}: img/s median [best]{ratio_note}")
        header = ["size"] + models + ([f"{m[8:]}/torch" for m in tiny] if "torch" in models else [])
        rows = []
        for size in t["sizes"]:
            row = [size]
            for m in models:
                r = find(t, size, m, kind)
                row.append(f"{ips(r['median_s']):.1f} [{ips(r['best_s']):.1f}]" if r else "-")
            if "torch" in models:
                tr = find(t, size, "torch", kind)
                for m in tiny:
                    r = find(t, size, m, kind)
                    row.append(f"{tr['median_s'] / r['median_s']:.2f}x" if r and tr else "-")
            rows.append(row)
        print_table(rows, header)
    print("\n  GEMM throughput (numpy.matmul float32, same rounds) and the GEMM-only floor of a step")
    rows = []
    for size, s in t["sizes"].items():
        sq, st, fw = (find(t, size, "gemm", k) for k in ("1024^3", "step", "forward"))
        shape = tuple(s["shape"])
        g, g_best = (2 * 1024**3 / sq[k] / 1e9 for k in ("median_s", "best_s"))
        rows.append([size, f"{g:.1f} [{g_best:.1f}]", f"{sm.flops(shape) / 1e9:.2f}", f"{st['median_s'] * 1e3:.1f}",
                     f"{ips(st['median_s']):.1f}", f"{ips(sm.flops(shape) / (g * 1e9)):.1f}",
                     f"{ips(fw['median_s']):.1f}"])
    print_table(rows, ["size", "1024^3 GFLOP/s median [best]", "step GFLOP", "floor ms", "floor img/s",
                       "floor img/s @1024^3 rate", "fwd-only floor img/s"])
    print("\n  achieved GFLOP/s (the step's GEMM flops / time), as a fraction of the 1024^3 GEMM rate and of the floor")
    rows = []
    for size, s in t["sizes"].items():
        shape = tuple(s["shape"])
        g = 2 * 1024**3 / find(t, size, "gemm", "1024^3")["median_s"] / 1e9
        for m in models:
            for kind, gk, phase in (("train", "step", None), ("infer", "forward", "forward")):
                r, fl = find(t, size, m, kind), find(t, size, "gemm", gk)
                if r:
                    a = sm.flops(shape, phase=phase) / r["median_s"] / 1e9
                    rows.append([size, m, kind, f"{a:.1f}", _pct(a / g), _pct(fl["median_s"] / r["median_s"])])
    print_table(rows, ["size", "who", "kind", "GFLOP/s", "of GEMM rate", "of GEMM-only floor"])
    if gemm_detail:
        for size in t["sizes"]:
            print(f"\n  the step's GEMMs at {size} (median ms, GFLOP/s)")
            rows = [[o["name"], f"{o['m']}x{o['k']}x{o['n']}", f"{o['median_s'] * 1e3:.2f}",
                     f"{o['flops'] / o['median_s'] / 1e9:.1f}"] for o in find(t, size, "gemm", "step")["ops"]]
            print_table(rows, ["gemm", "m x k x n", "ms", "GFLOP/s"])


def train_ips(t, size, who):
    r = find(t, size, who, "train")
    return ips(r["median_s"]) if r else None


def report_summary(timings, sizes):
    d, tu = timings.get("default"), timings.get("tuned")
    print("\n== Summary: training step img/s (medians); PyTorch as a user gets it / tuned ==")
    for size in sizes:
        parts = []
        for who in ("tinycnn-numpy", "tinycnn-cpu", "tinycnn-cuda", "torch"):
            a, b = train_ips(d, size, who), train_ips(tu, size, who)
            if a or b:
                f = lambda v: f"{v:.1f}" if v else "-"  # noqa: E731
                parts.append(f"{who} {f(a)} / {f(b)}")
        print(f"  {size:10s} " + "; ".join(parts))
        if size in EARLIER_TORCH and (train_ips(d, size, "torch") or train_ips(tu, size, "torch")):
            print(f"  {'':10s} (PyTorch measured earlier on the 2-core dev machine, for context: "
                  f"{EARLIER_TORCH[size][0]} / {EARLIER_TORCH[size][1]})")


def targets(timings):
    """Print the project's targets for the 'cpu' backend with the measured ratio and PASS/MISS
    (rows with no goal are information); return them as dicts for the JSON report."""
    d, tu = timings.get("default"), timings.get("tuned")
    out = []

    def ratio(ta, a, tb, b, size):
        x, y = train_ips(ta, size, a), train_ips(tb, size, b)
        return x / y if x and y else None

    for size in ("64x64x1", "128x128x1"):
        out.append((f"cpu >= 1.5x PyTorch default at {size} (default process)",
                    ratio(d, "tinycnn-cpu", d, "torch", size), 1.5))
    for size in ("28x28x1", "64x64x1", "128x128x1", "224x224x3"):
        out.append((f"cpu >= 1.0x PyTorch tuned at {size} (tuned process, side by side)",
                    ratio(tu, "tinycnn-cpu", tu, "torch", size), 1.0))
        out.append((f"   info: tinycnn as shipped (default process) / PyTorch tuned at {size}, two processes",
                    ratio(d, "tinycnn-cpu", tu, "torch", size), None))
    floor = None
    r, g = find(d, "128x128x1", "tinycnn-cpu", "train"), find(d, "128x128x1", "gemm", "step")
    if r and g:
        floor = g["median_s"] / r["median_s"]
    out.append(("cpu step at 128x128x1 >= 75% of its GEMM-only floor (default process)", floor, 0.75))
    out.append(("cpu >= 3x the numpy backend at 64x64x1 (default process)",
                ratio(d, "tinycnn-cpu", d, "tinycnn-numpy", "64x64x1"), 3.0))
    print("\n== Targets (figures, not assertions; ratios of median img/s) ==")
    rows = []
    for text, v, goal in out:
        verdict = "" if v is None or goal is None else ("PASS" if v >= goal else "MISS")
        rows.append([text, "n/a (not measured)" if v is None else f"{v:.2f}",
                     "" if goal is None else f">= {goal:g}", verdict])
    print_table(rows, ["target", "measured", "goal", ""])
    print("  (the info rows compare processes run one after the other: only meaningful on a quiet machine)")
    return [{"target": t, "measured": v, "goal": g, "pass": None if v is None or g is None else v >= g}
            for t, v, g in out]


def report_compile(c):
    print(f"\n== cpu backend: time to the first training step, fresh process ({c['cold']['size']}) ==")
    rows = []
    for k in ("cold", "warm"):
        r = c.get(k)
        if r:
            rows.append([{"cold": "empty NUMBA_CACHE_DIR", "warm": "warm cache"}[k], f"{r['import_s']:.2f}",
                         f"{r['steps_s'][0]:.2f}", f"{r['to_first_step_done_s']:.2f}", f"{r['steps_s'][-1]:.3f}",
                         f"{r['predict_s'][0]:.3f}"])
    print_table(rows, ["", "import+set_backend s", "1st step s", "start->1st step done s", "3rd step s",
                       "1st predict s"])
    print(f"  numba cache files written: {c.get('cache_files', '?')}")


def report_memory(mem, note):
    print(f"\n== Peak resident memory of training (ru_maxrss; one process each; {note}) ==")
    rows = [[m["who"] + (" channels_last" if m.get("channels_last") else ""), m["env"], m["size"],
             f"{m['baseline_mib']:.0f}", f"{m['peak_mib']:.0f}", f"{m['delta_mib']:.0f}",
             f"{min(m['step_s']):.2f}"] for m in mem if "who" in m]
    print_table(rows, ["who", "process", "size", "baseline MiB", "peak MiB", "delta MiB", "fastest step s"])
    for m in mem:
        if "error" in m:
            print("  note: " + m["error"])


# --------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    quick = args.quick
    repeats = args.repeats or (3 if quick else 7)
    threads = args.threads or default_threads()
    backends = [b.strip().lower() for b in args.backends.split(",") if b.strip()]
    sizes = [sm.label(s) for s in sm.parse_sizes(args.sizes)]
    torch_on = not args.no_torch
    if torch_on:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            print("note: PyTorch is not installed: timing tinycnn only")
            torch_on = False
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "argv": sys.argv[1:],
              "machine": {"platform": platform.platform(), "cpu": _cpu_name(), "usable_cores": default_threads()},
              "threads": threads, "repeats": repeats, "quick": quick}
    print(f"tinycnn vs PyTorch CPU, seed model, batch {sm.BATCH}, float32 — {report['date']}")
    print(f"machine: {report['machine']['cpu']}, {report['machine']['usable_cores']} usable cores; "
          f"threads {threads} (numba, OpenBLAS, torch); {repeats} rounds per size{' (quick)' if quick else ''}")
    base = {"sizes": args.sizes, "backends": backends, "torch": torch_on, "threads": threads,
            "repeats": repeats, "warmup": 2 if quick else 3, "min_sample_s": 0.05 if quick else 0.25,
            "numpy_max_size": args.numpy_max_size, "gap_s": 0.25}
    tmp = tempfile.mkdtemp(prefix="tinycnn-compare-")
    try:
        if "cpu" in backends and not args.no_compile_time:
            report["compile"] = measure_compile(args, threads, tmp, sizes)
        timings = {}
        for env in ("default", "tuned"):
            cfg = {**base, "env": env, "tag": env, "channels_last": env == "tuned", "parity": env == "default"}
            print(f"\n[running the '{env}' process: {', '.join(sizes)}]", flush=True)
            res, err = run_worker("timing", cfg, child_env(threads, env == "tuned"), tmp)
            if err:
                print("note: " + err)
                continue
            timings[env] = res
            report_timing(res, args.gemm_detail)
        report["timing"] = timings
        if not args.no_memory:
            report["memory"] = measure_memory(args, backends, torch_on, threads, tmp, quick)
        report["gpu"] = gpu_section(backends, timings, threads, args.sizes, quick)
        report_summary(timings, sizes)
        report["targets"] = targets(timings)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def measure_compile(args, threads, tmp, sizes):
    size = min(sizes, key=lambda s: sm.flops(sm.parse_sizes(s)[0]))
    cache = os.path.join(tmp, "numba-cache")
    os.makedirs(cache)
    out = {}
    for k in ("cold", "warm"):
        print(f"\n[compile time: {k} numba cache, {size}]", flush=True)
        res, err = run_worker("compile", {"tag": f"compile-{k}", "size": size, "backend": "cpu"},
                              child_env(threads, False, {"NUMBA_CACHE_DIR": cache}), tmp)
        if err:
            print("note: " + err + " (is the cpu backend importable?)")
            return {"error": err}
        out[k] = res
    out["cache_files"] = sum(len(f) for _, _, f in os.walk(cache))
    report_compile(out)
    return out


def measure_memory(args, backends, torch_on, threads, tmp, quick):
    size = sm.label(sm.parse_sizes(args.memory_size)[0])
    steps = {"warmup": 1, "steps": 1 if quick else 2}
    runs = []
    tb = "cpu" if "cpu" in backends else next((b for b in backends if b != "cuda"), None)
    if tb:
        runs += [{"who": f"tinycnn-{tb}", "env": "default"}, {"who": f"tinycnn-{tb}", "env": "tuned"}]
    if torch_on:
        runs += [{"who": "torch", "env": "default", "channels_last": False},
                 {"who": "torch", "env": "tuned", "channels_last": True}]
    mem = []
    for r in runs:
        tag = f"mem-{r['who']}-{r['env']}"
        print(f"\n[peak memory: {r['who']} ({r['env']} process), {size}]", flush=True)
        res, err = run_worker("memory", {**r, **steps, "tag": tag, "size": size, "threads": threads},
                              child_env(threads, r["env"] == "tuned"), tmp)
        mem.append(res or {"error": f"{r['who']} ({r['env']}): {err}"})
    report_memory(mem, f"warm-up {steps['warmup']} + {steps['steps']} steps; "
                       "delta = above the baseline after imports and data")
    return mem


def gpu_section(backends, timings, threads, sizes, quick):
    print("\n== GPU ==")
    if "cuda" not in backends:
        print("  cuda backend not requested (--backends)")
        return {"note": "not requested"}
    d = timings.get("default") or {}
    if "cuda" not in d.get("backends", []):
        why = next((n for n in d.get("notes", []) if "'cuda'" in n), "the cuda backend is unavailable")
        print(f"  no GPU present: cuda backend not timed ({why})")
        return {"note": "no GPU present", "reason": why}
    print("  the cuda backend's training step and inference img/s are in the tables above (tinycnn-cuda)")
    bench = os.path.join(HERE, "bench_cuda.py")
    if not os.path.exists(bench):
        print("  benchmarks/bench_cuda.py not found: the SGEMM kernel is not compared with cuBLAS here")
        return {"note": "bench_cuda.py absent"}
    cmd = [sys.executable, bench, "--sizes", sizes] + (["--quick"] if quick else [])
    print(f"  running {' '.join(cmd[1:])} (SGEMM kernel vs CuPy/cuBLAS, per-kernel timings):", flush=True)
    proc = subprocess.run(cmd, env=child_env(threads, False), cwd=HERE, capture_output=True, text=True)
    print("\n".join("    " + line for line in (proc.stdout + proc.stderr).splitlines()))
    return {"bench_cuda_exit": proc.returncode, "bench_cuda_output": proc.stdout + proc.stderr}


if __name__ == "__main__":
    sys.exit(main())
