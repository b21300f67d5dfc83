"""The measuring half of ``compare.py``: each function runs in a child process.

``compare.py`` re-invokes itself with ``--worker KIND`` under a chosen environment (glibc's
malloc settings must be in the environment before the process starts) and reads back the JSON
a worker writes. Nothing here prints results: workers measure, ``compare.py`` reports.

Workers
-------
serve    a persistent timing process for one engine (tinycnn, PyTorch and/or numpy.matmul's
         SGEMM): builds a size's contenders on request, then times one sample per request, so
         that compare.py alternates samples between processes (see :func:`serve`).
parity   one process with both engines: same weights, same outputs, loss and gradients?
compile  time to the first training step of the ``cpu`` backend (the caller chooses an empty
         or a warm ``NUMBA_CACHE_DIR``).
memory   peak resident memory of training steps at one size, for one contender.
"""

import math
import os
import statistics
import sys
import time

import numpy as np
import seedmodel as sm


def log(cfg, msg):
    print(f"  [{cfg.get('tag', 'worker')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- PyTorch twin
def build_torch(shape, channels_last, seed=0):
    """The seed model in PyTorch: the same layers, loss, optimizer and dtype as tinycnn's.

    BCE-with-logits is tinycnn's fused sigmoid + binary cross-entropy (mean over the batch);
    Adam has Keras' hyper-parameters (lr 1e-3, betas 0.9/0.999, epsilon 1e-7). Keras adds
    epsilon outside the bias correction, PyTorch inside: a difference in the 6th digit of an
    update that costs nothing. Returns (model, optimizer, loss_fn, to_tensor).
    """
    import torch
    from torch import nn

    H, W, C = shape
    _, D = sm.geometry(shape)
    torch.manual_seed(seed)
    f1, f2, f3 = sm.FILTERS
    model = nn.Sequential(
        nn.Conv2d(C, f1, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(f1, f2, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(f2, f3, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(D, sm.UNITS), nn.ReLU(), nn.Linear(sm.UNITS, 1),
    )  # fmt: skip
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(dtype=torch.float32, memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss()

    def to_tensor(x_nhwc):
        return torch.from_numpy(np.ascontiguousarray(x_nhwc)).permute(0, 3, 1, 2).contiguous(memory_format=fmt)

    return model, opt, loss_fn, to_tensor


def parity_check(shape, backend_name):
    """Same weights in both engines: do they compute the same outputs, loss and update?"""
    import torch

    import tinycnn

    tinycnn.set_backend(backend_name)
    model = sm.build_tinycnn(shape)
    x, y = sm.make_batch(shape, seed=1)
    tm, opt, loss_fn, to_tensor = build_torch(shape, channels_last=False)
    ws = model.get_weights()
    convs, D = sm.geometry(shape)
    last = convs[-1]
    Hf, Wf, Cf = last[3] // 2, last[4] // 2, last[5]
    tparams = [m for m in tm if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for i, m in enumerate(tparams):
            k, b = ws[2 * i], ws[2 * i + 1]
            if isinstance(m, torch.nn.Conv2d):
                k = k.transpose(3, 2, 0, 1)  # (KH, KW, C, F) -> (F, C, KH, KW)
            elif i == 3:  # Flatten order: tinycnn (h, w, c), PyTorch (c, h, w)
                k = k.reshape(Hf, Wf, Cf, -1).transpose(2, 0, 1, 3).reshape(D, -1).T
            else:
                k = k.T
            m.weight.copy_(torch.from_numpy(np.ascontiguousarray(k)))
            m.bias.copy_(torch.from_numpy(b))
    xt, yt = to_tensor(x), torch.from_numpy(y.reshape(-1, 1).copy())

    def torch_probs():
        with torch.no_grad():
            return torch.sigmoid(tm(xt)).numpy().ravel()

    out = {"size": sm.label(shape), "backend": backend_name,
           "params_tinycnn": int(model.count_params()),
           "params_torch": int(sum(p.numel() for p in tm.parameters()))}
    p0 = model.predict(x).ravel()
    out["max_abs_prob_diff"] = float(np.abs(p0 - torch_probs()).max())
    loss_tiny = float(model.train_on_batch(x, y))  # loss before the update, like PyTorch's
    opt.zero_grad()
    loss = loss_fn(tm(xt), yt)
    loss.backward()
    # gradients, in tinycnn's layouts: worst relative difference over the parameter tensors
    B = tinycnn.backend.get()
    grads = [B.to_numpy(layer.grads[k]) for layer in model.layers for k in layer.params]
    worst = 0.0
    for i, m in enumerate(tparams):
        gk = m.weight.grad.numpy()
        gk = (gk.transpose(2, 3, 1, 0) if gk.ndim == 4 else
              gk.T.reshape(Cf, Hf, Wf, -1).transpose(1, 2, 0, 3).reshape(D, -1) if i == 3 else gk.T)
        for ours, theirs in ((grads[2 * i], gk), (grads[2 * i + 1], m.bias.grad.numpy())):
            worst = max(worst, float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30)))
    out["max_rel_grad_diff"] = worst
    opt.step()
    out["loss_tinycnn"], out["loss_torch"] = loss_tiny, float(loss.item())
    p1 = model.predict(x).ravel()
    out["max_abs_prob_change_by_step"] = float(np.abs(p1 - p0).max())
    out["max_abs_prob_diff_after_step"] = float(np.abs(p1 - torch_probs()).max())
    return out


# --------------------------------------------------------------------------- timing worker
class Contender:
    """One thing timed in the rounds: ``fn()`` is one call; ``prep()`` runs untimed before a sample."""

    def __init__(self, who, kind, fn, prep=None, ops=None):
        self.who, self.kind, self.fn, self.prep = who, kind, fn, prep or (lambda: None)
        self.ops = ops  # for GEMM sets: fn() returns the seconds of each product
        self.samples, self.op_samples, self.inner, self.first_call_s, self.warm_s = [], [], 1, None, 0.0

    #: the clock of a sample: wall time, or (``--clock cpu``, one thread only) this process's CPU
    #: time, which other jobs on a shared machine do not inflate
    clock = staticmethod(time.perf_counter)

    def call(self):
        t0 = self.clock()
        r = self.fn()
        dt = self.clock() - t0
        return (sum(r), r) if self.ops is not None else (dt, None)

    def warm_up(self, n, min_sample_s):
        self.prep()
        for i in range(max(1, n)):
            dt, _ = self.call()
            if i == 0:
                self.first_call_s = dt
        self.warm_s = dt
        self.inner = int(min(100, max(1, math.ceil(min_sample_s / max(dt, 1e-9)))))

    def sample(self, gap_s):
        """One timed sample: ``inner`` calls back to back, after a pause and a re-warm call.

        The pause lets the previous contender's worker threads stop spinning (OpenBLAS threads
        busy-wait ~0.1 s after a call, OpenMP threads a little while): on 2 cores they would
        steal the CPUs from this contender. A short call is then run once untimed, so that the
        sample sees the steady state of consecutive steps, as a training loop does.
        """
        self.prep()
        time.sleep(gap_s)
        if self.warm_s < 0.5:
            self.fn()
        total, per_op = 0.0, None
        for _ in range(self.inner):
            dt, ops = self.call()
            total += dt
            if ops is not None:
                per_op = ops if per_op is None else [a + b for a, b in zip(per_op, ops, strict=True)]
        self.samples.append(total / self.inner)
        if per_op is not None:
            self.op_samples.append([t / self.inner for t in per_op])

    def result(self):
        r = {"who": self.who, "kind": self.kind, "median_s": statistics.median(self.samples),
             "best_s": min(self.samples), "samples_s": self.samples, "inner": self.inner,
             "first_call_s": self.first_call_s}
        if self.ops is not None:
            per = list(zip(*self.op_samples, strict=True))
            r["ops"] = [{**spec, "median_s": statistics.median(t), "best_s": min(t)}
                        for spec, t in zip(self.ops, per, strict=True)]
        return r


def probe_backends(names):
    """The tinycnn backends that run here, and a note for each one that does not."""
    from tinycnn import backend

    ok, notes = [], []
    for name in names:
        try:
            backend._load(name)
        except Exception as e:  # BackendError, or a module being written that fails to import
            notes.append(f"tinycnn backend {name!r} skipped: {type(e).__name__}: {e}")
            continue
        if name == "cuda":
            from numba.core import config

            if config.ENABLE_CUDASIM:
                notes.append("tinycnn backend 'cuda' skipped: NUMBA_ENABLE_CUDASIM=1 (simulator timings mean nothing)")
                continue
        ok.append(name)
    return ok, notes


def build_model(which, shape):
    """A compiled tinycnn model: the seed model, or the pipeline's default diagnosis model."""
    if which == "seed":
        return sm.build_tinycnn(shape)
    import tinycnn
    from tinycnn.pipeline import diagnosis_model

    tinycnn.set_random_seed(0)
    model = diagnosis_model(tuple(shape))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def torch_twin(model, channels_last):
    """The same network as a built tinycnn Sequential, layer by layer, in PyTorch (NCHW).

    Conv2D -> Conv2d (+ ReLU), 'same' as symmetric padding (odd kernels); MaxPooling2D ->
    MaxPool2d; BatchNormalization -> BatchNorm2d (Keras momentum m is PyTorch's 1 - m);
    GlobalAveragePooling2D -> AdaptiveAvgPool2d + Flatten; Dense -> Linear (+ ReLU); the final
    sigmoid is fused into BCEWithLogitsLoss, as tinycnn fuses it into its loss. Adam with
    Keras' hyper-parameters. Returns (train, infer) factories taking (x_nhwc, y).
    """
    import torch
    from torch import nn

    from tinycnn import layers as L

    mods, last = [], len(model.layers) - 1
    for i, layer in enumerate(model.layers):
        act = getattr(layer, "activation", None)
        if isinstance(layer, L.Conv2D):
            KH, KW = layer.kernel_size
            pad = (KH // 2, KW // 2) if layer.padding == "same" else 0
            mods.append(nn.Conv2d(layer.input_shape[-1], layer.filters, (KH, KW), stride=layer.strides,
                                  padding=pad, bias=layer.use_bias))
        elif isinstance(layer, L.MaxPooling2D):
            mods.append(nn.MaxPool2d(layer.pool_size, layer.strides))
        elif isinstance(layer, L.BatchNormalization):
            mods.append(nn.BatchNorm2d(layer.input_shape[-1], eps=layer.epsilon, momentum=1 - layer.momentum))
        elif isinstance(layer, L.GlobalAveragePooling2D):
            mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif isinstance(layer, L.Flatten):
            mods.append(nn.Flatten())
        elif isinstance(layer, L.Dropout):
            mods.append(nn.Dropout(layer.rate))
        elif isinstance(layer, L.Dense):
            mods.append(nn.Linear(layer.input_shape[0], layer.units, bias=layer.use_bias))
        elif not isinstance(layer, L.Activation):
            raise TypeError(f"no PyTorch twin for {type(layer).__name__}")
        if act == "relu" and i != last:
            mods.append(nn.ReLU())
        elif act not in (None, "linear", "relu") and i != last:
            raise TypeError(f"no PyTorch twin for activation {act!r}")
    torch.manual_seed(0)
    net = nn.Sequential(*mods)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(dtype=torch.float32, memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss()
    return net, opt, loss_fn, fmt


def torch_model_fns(model, x, y, channels_last):
    """``(train_step, inference)`` closures for the PyTorch twin of ``model`` on (x, y)."""
    import torch

    net, opt, loss_fn, fmt = torch_twin(model, channels_last)
    xt = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    yt = torch.from_numpy(y.reshape(-1, 1).copy())

    def train():
        net.train()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()

    def infer():
        net.eval()
        with torch.inference_mode():
            return torch.sigmoid(net(xt)).numpy()

    return train, infer


# --------------------------------------------------------------------------- timing server
def serve(cfg):
    """A persistent timing process: builds the contenders of one engine (or several, in the
    one-process mode) for a size on request, then times one sample per request, so that the
    parent can alternate samples between processes round by round.

    Protocol: one JSON command per line on stdin; one reply per command on stdout, on a line
    starting with ``@@`` (anything else a library prints is ignored). Commands: ``setup``
    (``size``, ``models``), ``sample`` (``key``), ``info``, ``quit``.
    """
    import json

    engines = cfg["engines"]
    notes = []
    if cfg.get("clock") == "cpu":
        Contender.clock = staticmethod(time.process_time)
    torch_on = "torch" in engines
    if torch_on:  # first, as a user who imports both would (it decides Numba's thread pool)
        try:
            import torch
        except ImportError as e:
            torch_on = False
            notes.append(f"PyTorch not timed: {e}")
        else:
            torch.set_num_threads(cfg["threads"])
    backends = []
    if "tinycnn" in engines:
        import tinycnn  # noqa: F401

        backends, bnotes = probe_backends(cfg["backends"])
        notes += bnotes
    load_start = os.getloadavg()[0]
    contenders = {}

    def reply(obj):
        sys.stdout.write("@@" + json.dumps(obj) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        if cmd["cmd"] == "info":
            import numba

            info = {"notes": notes, "numba_threads": numba.get_num_threads(), "backends": backends,
                    "loadavg_1min": [load_start, os.getloadavg()[0]], "pid": os.getpid()}
            if torch_on:
                import torch

                info.update(torch_threads=torch.get_num_threads(), torch_version=torch.__version__)
            if backends:
                try:
                    info["numba_threading_layer"] = numba.threading_layer()
                except ValueError:
                    pass
            reply(info)
        elif cmd["cmd"] == "setup":
            contenders = setup_contenders(cfg, sm.parse_sizes(cmd["size"])[0], cmd["models"], backends, torch_on)
            reply({"keys": list(contenders), "warm": {k: c.warm_s for k, c in contenders.items()}})
        elif cmd["cmd"] == "sample":
            con = contenders[cmd["key"]]
            con.sample(cfg["gap_s"])
            reply({"s": con.samples[-1], "first_call_s": con.first_call_s, "inner": con.inner})
    return {}


def setup_contenders(cfg, shape, which_models, backends, torch_on):
    """Build and warm up every contender of this process for one size (key -> Contender)."""
    from tinycnn import backend

    x, y = sm.make_batch(shape)
    cs = {}
    for which in which_models:
        for b in backends:
            backend.set_backend(b)
            model = build_model(which, shape)
            prep = lambda b=b: backend.set_backend(b)  # noqa: E731  (a model follows the active backend)
            cs[f"{which}/tinycnn-{b}/train"] = Contender(f"tinycnn-{b}", "train",
                                                         lambda m=model: m.train_on_batch(x, y), prep)
            cs[f"{which}/tinycnn-{b}/infer"] = Contender(f"tinycnn-{b}", "infer",
                                                         lambda m=model: m.predict(x, batch_size=sm.BATCH), prep)
        if torch_on:
            train, infer = torch_model_fns(build_model(which, shape), x, y, cfg["channels_last"])
            cs[f"{which}/torch/train"] = Contender("torch", "train", train)
            cs[f"{which}/torch/infer"] = Contender("torch", "infer", infer)
    if cfg.get("gemm"):
        rng = np.random.default_rng(0)
        a, b2, c = (rng.uniform(-1, 1, (1024, 1024)).astype(np.float32) for _ in range(3))

        def square():
            t0 = Contender.clock()
            np.matmul(a, b2, out=c)
            return [Contender.clock() - t0]

        cs["gemm/1024^3"] = Contender("gemm", "1024^3", square, ops=[{"name": "1024^3", "m": 1024, "k": 1024,
                                                                      "n": 1024, "flops": 2 * 1024**3}])
    for con in cs.values():
        con.warm_up(cfg["warmup"], cfg["min_sample_s"])
    return cs


# --------------------------------------------------------------------------- compile worker
def compile_time(cfg):
    """Seconds to import, build and run the first training steps of the 'cpu' backend."""
    t0 = time.perf_counter()
    import tinycnn

    tinycnn.set_backend(cfg.get("backend", "cpu"))
    t_import = time.perf_counter() - t0
    shape = sm.parse_sizes(cfg["size"])[0]
    x, y = sm.make_batch(shape)
    model = sm.build_tinycnn(shape)
    steps, first_done = [], None
    for _ in range(3):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        steps.append(time.perf_counter() - t)
        first_done = first_done or time.perf_counter() - t0
    preds = []
    for _ in range(2):
        t = time.perf_counter()
        model.predict(x, batch_size=sm.BATCH)
        preds.append(time.perf_counter() - t)
    return {"size": sm.label(shape), "import_s": t_import, "steps_s": steps, "predict_s": preds,
            "to_first_step_done_s": first_done, "cpu_s": time.process_time()}


# --------------------------------------------------------------------------- memory worker
def _maxrss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def memory(cfg):
    """Peak RSS of ``warmup + steps`` training steps, absolute and above the baseline taken
    after the imports and the data (model, optimizer state, activations and workspaces)."""
    shape = sm.parse_sizes(cfg["size"])[0]
    who = cfg["who"]
    if who == "torch":
        import torch

        torch.set_num_threads(cfg["threads"])
        x, y = sm.make_batch(shape)
        base = _maxrss_mib()
        step, _ = torch_model_fns(build_model("seed", shape), x, y, cfg["channels_last"])
    else:
        import tinycnn

        tinycnn.set_backend(who.split("-", 1)[1])
        x, y = sm.make_batch(shape)
        base = _maxrss_mib()
        model = sm.build_tinycnn(shape)
        step = lambda: model.train_on_batch(x, y)  # noqa: E731
    times = []
    for _ in range(cfg["warmup"] + cfg["steps"]):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    peak = _maxrss_mib()
    return {"who": who, "env": cfg["env"], "channels_last": cfg.get("channels_last", False),
            "size": sm.label(shape), "baseline_mib": base, "peak_mib": peak, "delta_mib": peak - base,
            "steps": len(times), "step_s": times}


def parity(cfg):
    import torch

    torch.set_num_threads(cfg["threads"])
    return parity_check(sm.parse_sizes(cfg["size"])[0], cfg["backend"])


WORKERS = {"serve": serve, "parity": parity, "compile": compile_time, "memory": memory}
