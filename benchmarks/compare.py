"""tinycnn against PyTorch CPU: training step and inference in img/s, GFLOP/s, compile time.

Run::

    python benchmarks/compare.py --json compare.json     # everything RESULTS.md reports
    python benchmarks/compare.py --quick --sizes 28,64   # a smoke run
    python benchmarks/compare.py --one-process           # the old way: both engines in one process

How it measures
---------------
* Models: the seed model (Conv32-Pool-Conv64-Pool-Conv128-Pool-Flatten-Dense512-Dense1, see
  ``seedmodel.py``) at every size, and the pipeline's default diagnosis model
  (``tinycnn.pipeline.diagnosis_model``: conv/batch-norm blocks, global pooling) at 28 and 64;
  batch 32, float32, binary cross-entropy, Adam. PyTorch runs the same network layer by layer
  (``compare_workers.torch_twin``), its sigmoid fused into BCE-with-logits as tinycnn fuses it.
  A training step is forward, loss, backward and update (``model.train_on_batch``); inference
  is ``model.predict`` / ``sigmoid(model(x))`` under ``inference_mode``.
* **Each engine in its own process** (the default): four persistent worker processes, tinycnn
  and PyTorch, each under the "default" environment (malloc defaults; PyTorch NCHW, as a user
  installs it) and the "tuned" one (``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000``
  set before the process starts, PyTorch ``channels_last``). For each size every worker builds
  and warms up its contenders, then the parent asks for one sample at a time, alternating
  processes and contenders (ABCD ABCD ...) for ``--repeats`` rounds: medians and bests. A
  sample loops the call for >= 0.25 s after a 0.25 s pause and one untimed call. One thread
  count for every library (numba = OpenBLAS = ``torch.set_num_threads``).
* ``--one-process``: tinycnn and PyTorch share each process (torch imported first), as this
  script did before; labelled as such in the output. ``import torch`` loads its own OpenMP
  runtime, which makes tinycnn use Numba's slower ``workqueue`` thread pool: not what a
  tinycnn user sees.
* GEMM rate: ``numpy.matmul`` float32 1024^3 (OpenBLAS) timed in the tinycnn processes in the
  same rounds. Achieved GFLOP/s = the network's convolution and dense arithmetic per step
  (``seedmodel.model_flops``: 2 MACs per multiply-add, forward + both gradients, no input
  gradient for the first layer) / time, also shown as a fraction of that SGEMM rate.
* Compile time (own processes): import, first steps and first predict of the ``cpu`` backend
  with an empty ``NUMBA_CACHE_DIR``, then with that warm cache.
* Peak memory (one process per contender): ``ru_maxrss`` of training at 224x224x3.
* Same computation: one process with both engines copies tinycnn's weights into PyTorch and
  prints both losses, the largest output and relative gradient differences.

Benchmarks are not tests: this prints figures, ratios and PASS/MISS against issue 12's targets
(with the margin by which each is missed); it asserts nothing. ``--json`` writes every figure.
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
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import seedmodel as sm  # noqa: E402

TUNED_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: cold-cache time to the first training step at 28x28x1 before issue 12 (RESULTS.md of
#: 2026-11-24): the compile-time target is at most 1.5x this
COMPILE_BEFORE_S = 8.5
#: issue 12's targets: training >= 1.2x PyTorch tuned and >= 1.5x PyTorch as installed;
#: inference >= 1.0x PyTorch tuned; compile time <= 1.5x COMPILE_BEFORE_S
TRAIN_VS_TUNED, TRAIN_VS_DEFAULT, INFER_VS_TUNED, COMPILE_FACTOR = 1.2, 1.5, 1.0, 1.5


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=sm.DEFAULT_SIZES,
                   help="seed-model sizes: N (NxNx1; 224 means 224x224x3) or HxWxC, comma-separated")
    p.add_argument("--diag-sizes", default="28,64",
                   help="sizes for the diagnosis model (default 28,64; 'none' to skip)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per size (default 7, --quick 3)")
    p.add_argument("--backends", default="cpu", help="tinycnn backends to time (default cpu; e.g. numpy,cpu,cuda)")
    p.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    p.add_argument("--one-process", action="store_true",
                   help="tinycnn and PyTorch in one process per environment (labelled; not the default)")
    p.add_argument("--quick", action="store_true", help="small repeat counts: a smoke run")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time samples by the wall clock (default) or, with --threads 1 only, by each "
                        "process's CPU time, which other jobs on a shared machine do not inflate")
    p.add_argument("--json", metavar="PATH", help="write every measurement to PATH")
    p.add_argument("--markdown", metavar="PATH",
                   help="write the summary tables (as in RESULTS.md and README) in Markdown to PATH")
    p.add_argument("--render", metavar="JSON",
                   help="do not measure: print the summary of an earlier --json file (with --markdown: write it)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for numba, OpenBLAS and PyTorch (default: NUMBA_NUM_THREADS or the usable cores)")
    p.add_argument("--memory-size", default="224",
                   help="size for the peak-memory measurement (default 224 = 224x224x3)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--no-compile-time", action="store_true", help="skip the cpu backend's compile-time measurement")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is None:
        try:  # fail early on a bad size
            sm.parse_sizes(args.sizes)
            sm.parse_sizes(args.memory_size)
            if args.diag_sizes != "none":
                sm.parse_sizes(args.diag_sizes)
        except ValueError as e:
            p.error(str(e))
        if args.repeats is not None and args.repeats < 1:
            p.error("--repeats must be at least 1")
        if args.clock == "cpu" and args.threads != 1:
            p.error("--clock cpu needs --threads 1 (CPU time adds up over threads)")
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
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f)
    return 0


class Server:
    """A persistent ``--worker serve`` process (see ``compare_workers.serve``)."""

    def __init__(self, label, cfg, env):
        self.label, self.cfg = label, cfg
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "serve", "--config", json.dumps(cfg)]
        self.proc = subprocess.Popen(cmd, env=env, cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.keys = []

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        raise RuntimeError(f"worker {self.label!r} ended (exit status {self.proc.wait()}; its error is above)")

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()


# --------------------------------------------------------------------------- formatting
def ips(seconds):
    return sm.BATCH / seconds


def print_table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        cells = [str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        print("  " + "  ".join(cells))


def med(samples):
    import statistics

    return statistics.median(samples)


def figure(res, proc, size, key):
    """(median img/s, best img/s) of one contender, or None."""
    samples = res.get(proc, {}).get(size, {}).get(key)
    if not samples:
        return None
    return ips(med(samples)), ips(min(samples))


def fmt(fig):
    return f"{fig[0]:.1f} [{fig[1]:.1f}]" if fig else "-"


def ratio(a, b):
    return a[0] / b[0] if a and b else None


def fmt_ratio(r):
    return f"{r:.2f}x" if r is not None else "-"


# --------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.render:
        with open(args.render) as f:
            report = json.load(f)
        text = markdown(report)
        print(text)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(text)
        return 0
    repeats = args.repeats or (3 if args.quick else 7)
    threads = args.threads or default_threads()
    backends = [b.strip().lower() for b in args.backends.split(",") if b.strip()]
    sizes = [sm.label(s) for s in sm.parse_sizes(args.sizes)]
    diag = [] if args.diag_sizes == "none" else [sm.label(s) for s in sm.parse_sizes(args.diag_sizes)]
    torch_on = not args.no_torch
    if torch_on:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            print("note: PyTorch is not installed: timing tinycnn only")
            torch_on = False
    t_start = time.monotonic()
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "argv": sys.argv[1:],
              "machine": {"platform": platform.platform(), "cpu": _cpu_name(), "usable_cores": default_threads()},
              "threads": threads, "repeats": repeats, "quick": args.quick, "one_process": args.one_process,
              "clock": args.clock,
              "loadavg_start": os.getloadavg()}
    mode = ("ONE PROCESS per environment (tinycnn and PyTorch share it; tinycnn then runs Numba's "
            "workqueue pool)" if args.one_process else "each engine in its own process")
    print(f"tinycnn vs PyTorch CPU, batch {sm.BATCH}, float32 — {report['date']}")
    print(f"machine: {report['machine']['cpu']}, {report['machine']['usable_cores']} usable cores; threads "
          f"{threads} (numba, OpenBLAS, torch); {repeats} rounds{' (quick)' if args.quick else ''}; {mode}")
    print(f"load average at the start: {' / '.join(f'{v:.1f}' for v in report['loadavg_start'])} (1/5/15 min)"
          + ("; samples timed by each process's CPU time (--clock cpu)" if args.clock == "cpu" else ""))
    tmp = tempfile.mkdtemp(prefix="tinycnn-compare-")
    try:
        if "cpu" in backends and not args.no_compile_time:
            report["compile"] = measure_compile(threads, tmp, sizes)
        if torch_on:
            report["parity"] = measure_parity(threads, tmp, sizes, backends)
        base = {"backends": backends, "threads": threads, "warmup": 2 if args.quick else 3, "clock": args.clock,
                "min_sample_s": 0.05 if args.quick else 0.25, "gap_s": 0.25}
        res, info = time_all(args, base, sizes, diag, torch_on, threads)
        report["timing"], report["processes"] = res, info
        report_timing(res, info, sizes, diag, backends, torch_on)
        if not args.no_memory:
            report["memory"] = measure_memory(args, backends, torch_on, threads, tmp, args.quick)
        report["targets"] = targets(res, sizes, diag, report.get("compile"), torch_on)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["loadavg_end"] = os.getloadavg()
    report["wall_s"] = time.monotonic() - t_start
    print(f"\nload average at the end: {' / '.join(f'{v:.1f}' for v in report['loadavg_end'])}; "
          f"this run took {report['wall_s'] / 60:.1f} min")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(report))
        print(f"wrote {args.markdown}")
    return 0


def markdown(report):
    """The summary tables of a report (the dict --json writes), in Markdown."""
    res, one = report.get("timing", {}), report.get("one_process", False)
    td, pd, tt, pt = proc_names(one)
    sizes = [s for s in res.get(td, {}) if any(k.startswith("seed/") for k in res[td][s])]
    diag = [s for s in res.get(td, {}) if any(k.startswith("diagnosis/") for k in res[td][s])]
    la = report.get("loadavg_start", [0])[0], report.get("loadavg_end", [0])[0]
    out = [f"Measured {report.get('date', '?')} on {report.get('machine', {}).get('cpu', '?')}, "
           f"{report.get('threads')} threads, {report.get('repeats')} alternating rounds, medians; "
           f"{'ONE PROCESS per environment' if one else 'each engine in its own process'}; "
           f"{'timed by process CPU time; ' if report.get('clock') == 'cpu' else ''}"
           f"load average {la[0]:.1f} at the start, {la[1]:.1f} at the end.", ""]

    def f1(v):
        return "-" if v is None else f"{v:.0f}" if v >= 100 else f"{v:.1f}"

    for which, szs in (("seed", sizes), ("diagnosis", diag)):
        for kind, what in (("train", "training step"), ("infer", "inference (`predict`)")):
            if not szs:
                continue
            out += [f"**{which} model, {what}, img/s**", "",
                    "| size | tinycnn | PyTorch as installed | ratio | tinycnn (malloc settings) | "
                    "PyTorch tuned (malloc + channels_last) | ratio |", "|---|---|---|---|---|---|---|"]
            for size in szs:
                k, kt = f"{which}/tinycnn-cpu/{kind}", f"{which}/torch/{kind}"
                a, b = figure(res, td, size, k), figure(res, pd, size, kt)
                c, d = figure(res, tt, size, k), figure(res, pt, size, kt)
                out.append(f"| {size} | {f1(a and a[0])} | {f1(b and b[0])} | {fmt_ratio(ratio(a, b))} | "
                           f"{f1(c and c[0])} | {f1(d and d[0])} | {fmt_ratio(ratio(c, d))} |")
            out.append("")
    c = report.get("compile", {})
    if "cold" in c:
        out.append(f"Compile time (cpu backend, {c['cold']['size']}, start to first training step done): "
                   f"{c['cold']['to_first_step_done_s']:.1f} s cold ({c['cold'].get('cpu_s', float('nan')):.1f} s "
                   f"of CPU), {c['warm']['to_first_step_done_s']:.2f} s with a warm cache; before issue 12: "
                   f"{c.get('before_s', COMPILE_BEFORE_S)} s cold.")
        out.append("")
    if report.get("targets"):
        out += ["| target | measured | goal | |", "|---|---|---|---|"]
        for t in report["targets"]:
            v, g = t["measured"], t["goal"]
            if t.get("goal_max"):
                verdict = "PASS" if t["pass"] else f"**MISS** by {100 * (v / t['goal_max'] - 1):.0f}%"
                goal = f"<= {t['goal_max']:g}"
            else:
                verdict = "" if t["pass"] is None else (
                    "PASS" if t["pass"] else f"**MISS** by {100 * (1 - v / g):.0f}%")
                goal = "" if g is None else f">= {g:g}"
            out.append(f"| {t['target']} | {'n/a' if v is None else f'{v:.2f}'} | {goal} | {verdict} |")
        out.append("")
    return "\n".join(out)


def processes(one_process, torch_on):
    """(label, engines, tuned) of the timing processes."""
    if one_process:
        eng = ["tinycnn", "gemm"] + (["torch"] if torch_on else [])
        return [("default", eng, False), ("tuned", eng, True)]
    out = [("tinycnn default", ["tinycnn", "gemm"], False)]
    if torch_on:
        out.append(("torch default", ["torch"], False))
    out.append(("tinycnn tuned", ["tinycnn", "gemm"], True))
    if torch_on:
        out.append(("torch tuned", ["torch"], True))
    return out


def time_all(args, base, sizes, diag, torch_on, threads):
    """Every size: all processes set up, then ``repeats`` rounds of one sample per contender,
    alternating processes. Returns ({process: {size: {key: [seconds...]}}}, process info)."""
    servers = []
    res, info = {}, {}
    try:
        for label, engines, tuned in processes(args.one_process, torch_on):
            cfg = {**base, "engines": engines, "channels_last": tuned, "gemm": "gemm" in engines, "tag": label}
            servers.append(Server(label, cfg, child_env(threads, tuned)))
        for size in sizes + [d for d in diag if d not in sizes]:
            models = (["seed"] if size in sizes else []) + (["diagnosis"] if size in diag else [])
            print(f"\n[{size}: setting up {', '.join(models)} in {len(servers)} processes]", flush=True)
            for srv in servers:
                srv.keys = srv.ask(cmd="setup", size=size, models=models)["keys"]
            for r in range(args.repeats or (3 if args.quick else 7)):
                print(f"  round {r + 1}", end="", flush=True)
                width = max(len(s.keys) for s in servers)
                for k in range(width):  # interleave: key k of every process, then key k + 1
                    for srv in servers:
                        if k < len(srv.keys):
                            got = srv.ask(cmd="sample", key=srv.keys[k])
                            res.setdefault(srv.label, {}).setdefault(size, {}).setdefault(srv.keys[k], []).append(
                                got["s"])
                print(f" (load {os.getloadavg()[0]:.1f})", flush=True)
        for srv in servers:
            info[srv.label] = srv.ask(cmd="info")
    finally:
        for srv in servers:
            srv.close()
    return res, info


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# --------------------------------------------------------------------------- reports
def proc_names(one_process):
    """(tinycnn default, torch default, tinycnn tuned, torch tuned) process labels."""
    if one_process:
        return "default", "default", "tuned", "tuned"
    return "tinycnn default", "torch default", "tinycnn tuned", "torch tuned"


def report_timing(res, info, sizes, diag, backends, torch_on):
    one = "default" in res or "default" in info
    td, pd, tt, pt = proc_names(one)
    for label, i in info.items():
        la = i.get("loadavg_1min", [0, 0])
        thr = f"numba threads {i.get('numba_threads')}"
        if "torch_threads" in i:
            thr += f", torch {i['torch_version']} threads {i['torch_threads']}"
        if "numba_threading_layer" in i:
            thr += f", numba threading layer {i['numba_threading_layer']}"
        print(f"  process '{label}': {thr}; load {la[0]:.1f} -> {la[1]:.1f}"
              + (" (other jobs were running: noisy)" if max(la) > i.get("numba_threads", 2) + 1 else ""))
        for n in i.get("notes", []):
            print("    note: " + n)
    gemm = {size: figure(res, td, size, "gemm/1024^3") for size in sizes + diag}
    rates = [2 * 1024**3 * g[0] / sm.BATCH / 1e9 for g in gemm.values() if g]
    sgemm = med(rates) if rates else None
    for which, szs in (("seed", sizes), ("diagnosis", diag)):
        if not szs:
            continue
        for kind, what in (("train", "training step"), ("infer", "inference (predict)")):
            print(f"\n== {which} model, {what}, batch {sm.BATCH}: img/s median [best] ==")
            header = ["size"]
            for b in backends:
                header += [f"tinycnn-{b} default", f"tinycnn-{b} tuned"]
            if torch_on:
                header += ["torch default", "torch tuned"]
                for b in backends:
                    header += [f"{b}/torch default", f"{b}/torch tuned"]
            rows = []
            for size in szs:
                row, tiny = [size], {}
                for b in backends:
                    k = f"{which}/tinycnn-{b}/{kind}"
                    tiny[b] = (figure(res, td, size, k), figure(res, tt, size, k))
                    row += [fmt(tiny[b][0]), fmt(tiny[b][1])]
                if torch_on:
                    k = f"{which}/torch/{kind}"
                    tdf, ttf = figure(res, pd, size, k), figure(res, pt, size, k)
                    row += [fmt(tdf), fmt(ttf)]
                    for b in backends:
                        row += [fmt_ratio(ratio(tiny[b][0], tdf)), fmt_ratio(ratio(tiny[b][1], ttf))]
                rows.append(row)
            print_table(rows, header)
    print("\n== arithmetic rate: GFLOP/s (network multiply-adds x 2 per step / time) and as a fraction of "
          "the 1024^3 SGEMM rate ==")
    print(f"  numpy.matmul float32 1024^3 (OpenBLAS, {info.get(td, {}).get('numba_threads', '?')} threads), "
          f"median over sizes: {sgemm:.1f} GFLOP/s" if sgemm else "  SGEMM rate: not measured")
    rows = []
    for which, szs in (("seed", sizes), ("diagnosis", diag)):
        for size in szs:
            shape = sm.parse_sizes(size)[0]
            for kind in ("train", "infer"):
                fl = sm.model_flops(which, shape, phase=None if kind == "train" else "forward")
                for who, procs in [(f"tinycnn-{b}", (td, tt)) for b in backends] + ([("torch", (pd, pt))]
                                                                                   if torch_on else []):
                    for env, proc in zip(("default", "tuned"), procs, strict=True):
                        f = figure(res, proc, size, f"{which}/{who}/{kind}")
                        if f:
                            g = fl * f[0] / sm.BATCH / 1e9
                            rows.append([size, which, who, env, kind, f"{g:.1f}",
                                         f"{100 * g / sgemm:.0f}%" if sgemm else "-"])
    print_table(rows, ["size", "model", "who", "process", "kind", "GFLOP/s", "of SGEMM rate"])


def report_compile(c):
    print(f"\n== cpu backend: time to the first training step, fresh process ({c['cold']['size']}) ==")
    rows = []
    for k in ("cold", "warm"):
        r = c.get(k)
        if r:
            rows.append([{"cold": "empty NUMBA_CACHE_DIR", "warm": "warm cache"}[k], f"{r['import_s']:.2f}",
                         f"{r['steps_s'][0]:.2f}", f"{r['to_first_step_done_s']:.2f}", f"{r['steps_s'][-1]:.3f}",
                         f"{r['predict_s'][0]:.3f}", f"{r.get('cpu_s', float('nan')):.2f}"])
    print_table(rows, ["", "import+set_backend s", "1st step s", "start->1st step done s", "3rd step s",
                       "1st predict s", "process CPU s"])
    print(f"  numba cache files written: {c.get('cache_files', '?')}; before issue 12: {COMPILE_BEFORE_S} s "
          "cold (start -> first step done)")


def report_memory(mem, note):
    print(f"\n== Peak resident memory of training (ru_maxrss; one process each; {note}) ==")
    rows = [[m["who"] + (" channels_last" if m.get("channels_last") else ""), m["env"], m["size"],
             f"{m['baseline_mib']:.0f}", f"{m['peak_mib']:.0f}", f"{m['delta_mib']:.0f}",
             f"{min(m['step_s']):.2f}"] for m in mem if "who" in m]
    print_table(rows, ["who", "process", "size", "baseline MiB", "peak MiB", "delta MiB", "fastest step s"])
    for m in mem:
        if "error" in m:
            print("  note: " + m["error"])


def targets(res, sizes, diag, compile_res, torch_on):
    """Issue 12's targets for the cpu backend: measured ratio, goal, PASS/MISS and the margin."""
    one = "default" in res
    td, pd, tt, pt = proc_names(one)
    out = []

    def add(text, value, goal):
        out.append({"target": text, "measured": value, "goal": goal,
                    "pass": None if value is None or goal is None else value >= goal})

    if torch_on:
        for size in sizes:
            k = "seed/tinycnn-cpu/train"
            add(f"train {size}: cpu (tuned process) >= {TRAIN_VS_TUNED}x PyTorch tuned",
                ratio(figure(res, tt, size, k), figure(res, pt, size, "seed/torch/train")), TRAIN_VS_TUNED)
            add(f"train {size}: cpu (default process) >= {TRAIN_VS_DEFAULT}x PyTorch as installed",
                ratio(figure(res, td, size, k), figure(res, pd, size, "seed/torch/train")), TRAIN_VS_DEFAULT)
        for size in sizes:
            add(f"infer {size}: cpu (tuned process) >= {INFER_VS_TUNED}x PyTorch tuned",
                ratio(figure(res, tt, size, "seed/tinycnn-cpu/infer"), figure(res, pt, size, "seed/torch/infer")),
                INFER_VS_TUNED)
        for size in diag:
            for env, (a, b) in (("as installed", (td, pd)), ("tuned", (tt, pt))):
                add(f"diagnosis model train {size}: cpu / PyTorch {env} (reported, no goal)",
                    ratio(figure(res, a, size, "diagnosis/tinycnn-cpu/train"),
                          figure(res, b, size, "diagnosis/torch/train")), None)
    if compile_res and "cold" in compile_res:
        cold = compile_res["cold"]["to_first_step_done_s"]
        add(f"compile: cold start -> first step done <= {COMPILE_FACTOR} x {COMPILE_BEFORE_S} s (value: s / "
            f"{COMPILE_BEFORE_S} s)", cold / COMPILE_BEFORE_S, None)
        out[-1]["pass"] = cold / COMPILE_BEFORE_S <= COMPILE_FACTOR
        out[-1]["goal_max"] = COMPILE_FACTOR
    print("\n== Targets of issue 12 (figures, not assertions; ratios of medians) ==")
    rows = []
    for t in out:
        v, g = t["measured"], t["goal"]
        if t.get("goal_max"):
            verdict = "PASS" if t["pass"] else f"MISS by {100 * (v / t['goal_max'] - 1):.0f}%"
            goal = f"<= {t['goal_max']:g}"
        else:
            verdict = "" if t["pass"] is None else ("PASS" if t["pass"] else f"MISS by {100 * (1 - v / g):.0f}%")
            goal = "" if g is None else f">= {g:g}"
        rows.append([t["target"], "n/a" if v is None else f"{v:.2f}", goal, verdict])
    print_table(rows, ["target", "measured", "goal", ""])
    return out


def measure_compile(threads, tmp, sizes):
    size = min(sizes, key=lambda s: sm.flops(sm.parse_sizes(s)[0]))
    cache = os.path.join(tmp, "numba-cache")
    os.makedirs(cache)
    out = {}
    for k in ("cold", "warm"):
        print(f"[compile time: {k} numba cache, {size}]", flush=True)
        res, err = run_worker("compile", {"tag": f"compile-{k}", "size": size, "backend": "cpu"},
                              child_env(threads, False, {"NUMBA_CACHE_DIR": cache}), tmp)
        if err:
            print("note: " + err + " (is the cpu backend importable?)")
            return {"error": err}
        out[k] = res
    out["cache_files"] = sum(len(f) for _, _, f in os.walk(cache))
    out["before_s"] = COMPILE_BEFORE_S
    report_compile(out)
    return out


def measure_parity(threads, tmp, sizes, backends):
    size = min(sizes, key=lambda s: sm.flops(sm.parse_sizes(s)[0]))
    b = "cpu" if "cpu" in backends else backends[0]
    res, err = run_worker("parity", {"tag": "parity", "size": size, "backend": b, "threads": threads},
                          child_env(threads, False), tmp)
    if err:
        print("note: " + err)
        return {"error": err}
    p = res
    print(f"\nsame-computation check ({p['size']}, tinycnn-{p['backend']} vs torch, copied weights, one process): "
          f"params {p['params_tinycnn']:,} vs {p['params_torch']:,}; loss {p['loss_tinycnn']:.6f} vs "
          f"{p['loss_torch']:.6f}; max |prob diff| {p['max_abs_prob_diff']:.1e}; worst relative gradient diff "
          f"{p['max_rel_grad_diff']:.1e}; after one Adam step max |prob diff| {p['max_abs_prob_diff_after_step']:.1e} "
          f"(the step itself moved them by up to {p['max_abs_prob_change_by_step']:.1e})")
    return res


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
        print(f"[peak memory: {r['who']} ({r['env']} process), {size}]", flush=True)
        res, err = run_worker("memory", {**r, **steps, "tag": tag, "size": size, "threads": threads},
                              child_env(threads, r["env"] == "tuned"), tmp)
        mem.append(res or {"error": f"{r['who']} ({r['env']}): {err}"})
    report_memory(mem, f"warm-up {steps['warmup']} + {steps['steps']} steps; "
                       "delta = above the baseline after imports and data")
    return mem


if __name__ == "__main__":
    sys.exit(main())
