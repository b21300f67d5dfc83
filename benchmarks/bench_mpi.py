"""MPI figures: Allreduce time against size, and N ranks x 1 thread against 1 rank x N threads.

Not a test: it prints figures (and writes JSON with ``--json``). Run from the repository root
with the project's virtualenv (``pip install -e ".[mpi]"`` brings mpi4py and mpiexec)::

    python benchmarks/bench_mpi.py compare --sizes 128,224 --rounds 3     # the driver (below)
    mpiexec -n 2 python benchmarks/bench_mpi.py allreduce                 # one table
    mpiexec -n 2 python benchmarks/bench_mpi.py step --size 128           # one side of `compare`
    python benchmarks/bench_mpi.py step --size 128 --threads 2            # the other side
    python benchmarks/bench_mpi.py layers --size 224 --threads 2          # forward/backward per layer

``compare`` alternates, in rounds, ``mpiexec -n 2 ... step`` (2 ranks x 1 thread, global batch
32: 16 per rank) and ``python ... step --threads 2`` (1 process x 2 threads, batch 32) for each
size, then prints medians, their ratio and the load average before and after each run. A step
is one ``fit`` batch; its time is the median interval between ``on_batch_end`` calls after two
warm-up batches, so the broadcast at the start and the epoch's end are not in it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import seedmodel as sm  # noqa: E402

#: float32 gradient sizes timed by `allreduce` (bytes); 177 MB is the seed model at 224x224x3
SIZES = (4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 177_586_436)


def _load():
    return os.getloadavg()[0]


def cmd_allreduce(args):
    from tinycnn import distributed

    w = distributed.init(threads=1)
    rows = []
    for nbytes in SIZES:
        a = np.ones(nbytes // 4, np.float32)
        w.allreduce_(a)  # warm-up: buffers, shared-memory segments
        t0 = time.perf_counter()
        w.allreduce_(a)
        # every rank must make the same number of calls: rank 0 decides it
        repeats = w.bcast(max(5, int(args.seconds / max(time.perf_counter() - t0, 1e-6))))
        times = []
        for _ in range(repeats):
            w.comm.Barrier()
            t0 = time.perf_counter()
            w.allreduce_(a)
            times.append(time.perf_counter() - t0)
        t = w.comm.allreduce(float(statistics.median(times)), op=w.MPI.MAX)  # the slower rank's median
        bus = 2 * (w.size - 1) / w.size * nbytes / t / 1e9
        rows.append({"bytes": nbytes, "seconds": t, "bus_GBps": bus, "repeats": len(times)})
    if w.is_root:
        print(f"Allreduce (sum, float32, in place), {w.size} ranks, {w.launcher}; load {_load():.1f}")
        print(f"{'size':>12} {'median ms':>10} {'bus GB/s':>9} {'repeats':>8}")
        for r in rows:
            print(f"{r['bytes'] / 1e6:>10.3f}MB {r['seconds'] * 1e3:>10.3f} {r['bus_GBps']:>9.2f} {r['repeats']:>8}")
        _dump(args, {"allreduce": rows, "ranks": w.size, "load": _load()})


def _seed_fit(shape, threads, steps):
    """Train the seed model on ``steps`` batches of 32; return per-step seconds (after warm-up)."""
    import tinycnn
    from tinycnn.callbacks import Callback

    x, _ = sm.make_batch(shape, batch=32 * steps, seed=1)
    y = (np.arange(len(x)) % 2).astype(np.int64)
    model = sm.build_tinycnn(shape)
    stamps = []

    class Stamp(Callback):
        def on_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    tinycnn.set_random_seed(0)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[Stamp()])
    return list(np.diff(stamps)[2:])


def cmd_step(args):
    from tinycnn import distributed
    from tinycnn.distributed import launch

    shape = sm.parse_sizes(str(args.size))[0]
    if launch.launched_in_parallel():
        w = distributed.init(threads=args.threads or 1)
        ranks, threads = w.size, w.threads
    else:
        from tinycnn.distributed import threads as threads_mod

        ranks, threads = 1, args.threads or len(threads_mod.cores())
        threads_mod.apply(threads)  # changes nothing when `threads` is the machine's default
    times = _seed_fit(shape, threads, args.steps)
    if distributed.is_root():
        t = statistics.median(times)
        out = {"size": sm.label(shape), "ranks": ranks, "threads": threads, "step_s": t,
               "img_s": 32 / t, "steps": len(times), "load": _load()}
        print(json.dumps(out))
        _dump(args, out)


def cmd_layers(args):
    """Forward and backward time of each layer of one training step (one process)."""
    from tinycnn import backend
    from tinycnn.distributed import threads as threads_mod

    B = backend.get()
    threads_mod.apply(args.threads)  # changes nothing when `threads` is the machine's default
    shape = sm.parse_sizes(str(args.size))[0]
    model = sm.build_tinycnn(shape)
    x, y = sm.make_batch(shape, batch=args.batch)
    fwd = np.zeros(len(model.layers))
    bwd = np.zeros(len(model.layers))
    opt = []
    for rep in range(args.steps + 1):
        f, b = np.zeros_like(fwd), np.zeros_like(bwd)
        h = B.asarray(x)
        for i in range(len(model.layers)):
            t0 = time.perf_counter()
            h = model.forward(h, training=True, logits=model.fused_loss, start=i, stop=i + 1)
            f[i] = time.perf_counter() - t0
        _, d = model.compute_loss(h, y[:, None])
        for i in range(len(model.layers) - 1, -1, -1):
            t0 = time.perf_counter()
            d = model.backward(d, start=i, stop=i + 1, need_dx=i > 0)
            b[i] = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.optimizer.apply(model.layers)
        if rep:  # the first step compiles and allocates
            fwd, bwd = fwd + f / args.steps, bwd + b / args.steps
            opt.append(time.perf_counter() - t0)
    grads = [sum(int(np.prod(p.shape)) * 4 for p in layer.params.values()) for layer in model.layers]
    out = {"size": sm.label(shape), "batch": args.batch, "threads": args.threads, "load": _load(),
           "layers": [{"name": n, "forward_s": float(a), "backward_s": float(c), "grad_bytes": g}
                      for n, a, c, g in zip(sm.LAYER_NAMES, fwd, bwd, grads, strict=True)],
           "optimizer_s": float(statistics.median(opt))}
    print(f"{sm.label(shape)}, batch {args.batch}, {args.threads} thread(s), load {out['load']:.1f} "
          f"(means of {args.steps} steps)")
    print(f"{'layer':<10}{'forward ms':>12}{'backward ms':>13}{'grad MB':>10}")
    for r in out["layers"]:
        print(f"{r['name']:<10}{r['forward_s'] * 1e3:>12.1f}{r['backward_s'] * 1e3:>13.1f}"
              f"{r['grad_bytes'] / 1e6:>10.2f}")
    print(f"optimizer (Adam) {out['optimizer_s'] * 1e3:.1f} ms")
    _dump(args, out)


def cmd_compare(args):
    me = [sys.executable, str(Path(__file__).resolve())]
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        env.pop(k, None)
    results = {}
    for size in args.sizes.split(","):
        for rnd in range(args.rounds):
            order = [("1x2", me + ["step", "--size", size, "--threads", "2", "--steps", str(args.steps)]),
                     ("2x1", [mpiexec, "-n", "2"] + me + ["step", "--size", size, "--threads", "1",
                                                          "--steps", str(args.steps)])]
            if rnd % 2:
                order.reverse()
            for tag, cmd in order:
                before = _load()
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
                if proc.returncode:
                    sys.exit(f"{tag} {size} failed:\n{proc.stderr[-3000:]}")
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                r["load_before"] = before
                results.setdefault((size, tag), []).append(r)
                print(f"  round {rnd + 1} {size:>4} {tag}: {r['img_s']:7.2f} img/s  "
                      f"(step {r['step_s'] * 1e3:.0f} ms; load {before:.1f} -> {r['load']:.1f})", flush=True)
                time.sleep(1.0)
    print(f"\nseed model, global batch 32, img/s (medians of {args.rounds} alternating rounds)")
    print(f"{'size':>10} {'1 rank x 2 threads':>20} {'2 ranks x 1 thread':>20} {'ratio':>7}")
    summary = []
    for size in args.sizes.split(","):
        one = statistics.median(r["img_s"] for r in results[(size, "1x2")])
        two = statistics.median(r["img_s"] for r in results[(size, "2x1")])
        label = results[(size, "1x2")][0]["size"]
        print(f"{label:>10} {one:>20.2f} {two:>20.2f} {two / one:>6.2f}x")
        summary.append({"size": label, "one_rank_img_s": one, "two_ranks_img_s": two, "ratio": two / one,
                        "runs": results[(size, "1x2")] + results[(size, "2x1")]})
    _dump(args, {"compare": summary})


def ring_allreduce_s(nbytes, nodes, gbit, latency_s):
    """Ring Allreduce time: 2 (N-1)/N * size / bandwidth + 2 (N-1) latency terms."""
    if nodes == 1:
        return 0.0
    return 2 * (nodes - 1) / nodes * nbytes / (gbit * 1e9 / 8) + 2 * (nodes - 1) * latency_s


def scaling_model(layers, nodes, gbit, latency_s, bucket_bytes=25 << 20):
    """Step time, throughput and efficiency of data parallelism from one node's measured step.

    ``layers``: the JSON of ``layers`` (per-layer forward/backward seconds, gradient bytes, the
    optimizer's seconds) for one node's batch. Without overlap every bucket is summed after
    backward. With overlap (bucketed, as PyTorch DDP and tinycnn do) a bucket's Allreduce starts
    when backward has passed its layers and runs alongside the rest of backward; buckets are
    summed one after another on the network.
    """
    L = layers["layers"]
    fwd = sum(r["forward_s"] for r in L)
    bwd = sum(r["backward_s"] for r in L)
    opt = layers["optimizer_s"]
    compute = fwd + bwd + opt
    # buckets in backward order: a tensor >= bucket_bytes alone, smaller ones together
    t, ready, pending, pending_bytes = 0.0, [], 0.0, 0
    for r in reversed(L):
        t += r["backward_s"]
        if r["grad_bytes"] >= bucket_bytes:
            ready.append((t, r["grad_bytes"]))
        elif r["grad_bytes"]:
            pending_bytes += r["grad_bytes"]
            pending = t
            if pending_bytes >= bucket_bytes:
                ready.append((pending, pending_bytes))
                pending_bytes = 0
    if pending_bytes:
        ready.append((pending, pending_bytes))
    total_bytes = sum(b for _, b in ready)
    comm = sum(ring_allreduce_s(b, nodes, gbit, latency_s) for _, b in ready)
    no_overlap = compute + comm
    free = 0.0  # when the network is free again, counted from the start of backward
    for start, b in ready:
        free = max(free, start) + ring_allreduce_s(b, nodes, gbit, latency_s)
    with_overlap = fwd + max(bwd, free) + opt
    batch = layers["batch"]
    return {"nodes": nodes, "gbit": gbit, "grad_MB": total_bytes / 1e6, "compute_s": compute, "comm_s": comm,
            "step_s": no_overlap, "step_overlap_s": with_overlap,
            "img_s": nodes * batch / no_overlap, "img_s_overlap": nodes * batch / with_overlap,
            "eff": compute / no_overlap, "eff_overlap": compute / with_overlap}


def cmd_model(args):
    layers = json.loads(Path(args.layers).read_text())
    L = layers["layers"]
    if args.step_seconds:  # keep the measured proportions, take the step time from elsewhere
        k = args.step_seconds / (sum(r["forward_s"] + r["backward_s"] for r in L) + layers["optimizer_s"])
        for r in L:
            r["forward_s"] *= k
            r["backward_s"] *= k
        layers["optimizer_s"] *= k
    print(f"measured on one node: {layers['size']}, batch {layers['batch']} per node, {layers['threads']} "
          f"thread(s): forward {sum(r['forward_s'] for r in L) * 1e3:.0f} ms, backward "
          f"{sum(r['backward_s'] for r in L) * 1e3:.0f} ms, Adam {layers['optimizer_s'] * 1e3:.0f} ms; "
          f"latency term {args.latency_us:.0f} us per ring step")
    print(f"{'nodes':>6}{'Gbit/s':>8}{'grad MB':>9}{'Allreduce ms':>14}{'img/s':>9}{'eff':>7}"
          f"{'img/s overlap':>15}{'eff overlap':>13}")
    rows = []
    for gbit in args.gbits:
        for nodes in args.nodes:
            r = scaling_model(layers, nodes, gbit, args.latency_us * 1e-6)
            rows.append(r)
            print(f"{nodes:>6}{gbit:>8g}{r['grad_MB']:>9.1f}{r['comm_s'] * 1e3:>14.1f}{r['img_s']:>9.1f}"
                  f"{r['eff']:>7.0%}{r['img_s_overlap']:>15.1f}{r['eff_overlap']:>13.0%}")
    _dump(args, {"model": rows, "layers": layers})


def _dump(args, obj):
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(obj, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("allreduce")
    p.add_argument("--seconds", type=float, default=0.5, help="time per size (at least 5 repeats)")
    p.add_argument("--json")
    p = sub.add_parser("step")
    p.add_argument("--size", default="128")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--steps", type=int, default=8, help="batches in the timed epoch (2 are warm-up)")
    p.add_argument("--json")
    p = sub.add_parser("layers")
    p.add_argument("--size", default="224")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--json")
    p = sub.add_parser("compare")
    p.add_argument("--sizes", default="128,224")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--json")
    p = sub.add_parser("model", help="scaling model from a `layers` JSON")
    p.add_argument("--layers", required=True, help="JSON written by `layers --json`")
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--gbits", type=float, nargs="+", default=[10, 100])
    p.add_argument("--latency-us", type=float, default=5.0)
    p.add_argument("--step-seconds", type=float, default=None,
                   help="scale the measured layer times to this step time (e.g. a quiet machine's)")
    p.add_argument("--json")
    args = ap.parse_args()
    commands = {"model": cmd_model, "allreduce": cmd_allreduce, "step": cmd_step, "layers": cmd_layers,
                "compare": cmd_compare}
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
