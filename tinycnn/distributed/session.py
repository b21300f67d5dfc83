"""One distributed ``fit``: what the training loop asks of MPI, in the order it asks.

``Sequential.fit`` and :class:`tinycnn.training.Fit` call these methods at their marked hook
points (``# i14``); outside a distributed fit ``model.distributed_fit`` is None and none is called. The
gradients are summed by a hook in ``model.gradient_hooks`` (called once all gradients are
ready, before the optimizer step), batch normalisation uses the model-internals protocol of
synchronized batch norm (``BatchNormalization.allreduce``). Per training step every rank makes
the same collectives in the same order: one Allreduce for the loss, two per batch-norm layer in
forward and one in backward, one per gradient bucket. A rank with no sample in a batch (a last
batch smaller than the number of ranks) runs the step on a stand-in sample with loss weight 0
and contributes zeros to every sum, so it still takes part in each collective and its generator
draws (shuffling, dropout, augmentation) stay in step with the others'.
"""

import numpy as np

from .. import backend
from .. import random as tc_random
from ..errors import TrainingError
from ..layers import BatchNormalization
from ..layers.composite import walk
from .errors import DistributedError
from .reducer import BUCKET_BYTES, GradientReducer
from .sharding import RowView, bounds


class FitSession:
    """The MPI side of one ``fit`` call on one rank.

    Parameters
    ----------
    world : tinycnn.distributed.comm.World
    model : tinycnn.models.Sequential
    overlap : bool
        Overlap the gradient Allreduce with the backward pass (see :mod:`.reducer`).
    bucket_bytes : int
        Gradient bucket size (see :mod:`.reducer`).
    """

    def __init__(self, world, model, overlap=True, bucket_bytes=BUCKET_BYTES):
        self.world, self.model, self.overlap = world, model, overlap
        self.bucket_bytes = bucket_bytes
        self.rank, self.size = world.rank, world.size
        self.is_root = world.is_root
        self.reducer = None
        self._saved_bn = []
        self.n = 0  # samples in the current global batch
        self.real = slice(None)  # this rank's real rows among those it runs
        self.idle = False  # True while this rank runs a stand-in sample (no share of the batch)
        self.scale = 1.0  # n_rank / n_batch of the current batch
        self.collective_error = None  # an exception every rank raises at the same point

    # ------------------------------------------------------------------ start
    def start(self, history, initial_epoch):
        """Give every rank rank 0's weights, optimizer state, random state and history.

        Called once the model is built and, on rank 0, a checkpoint is loaded; returns the
        epoch to start at.
        """
        model = self.model
        if backend.get_backend() == "cuda":
            raise DistributedError("distributed training runs on the 'cpu' and 'numpy' backends; "
                                   "the 'cuda' backend is not wired to MPI yet")
        for layer in model.layers:
            for d in (layer.params, getattr(layer, "state", {})):
                for a in d.values():
                    self.world.bcast_(a)
        opt = model.optimizer
        layout = self.world.bcast({"iterations": opt.iterations,
                                   "slots": {k: {s: (a.shape, str(a.dtype)) for s, a in v.items()}
                                             for k, v in opt.slots.items()},
                                   "rng": tc_random.get_state(), "history": getattr(history, "history", None),
                                   "layer_rng": [layer.get_random_state() for layer in model.layers],
                                   "epoch": int(initial_epoch)})
        opt.iterations = layout["iterations"]
        if not self.is_root:
            opt.slots = {k: {s: np.zeros(shape, dtype) for s, (shape, dtype) in v.items()}
                         for k, v in layout["slots"].items()}
            tc_random.set_state(layout["rng"])
            for layer, state in zip(model.layers, layout["layer_rng"], strict=True):
                layer.set_random_state(state)  # e.g. a seeded Dropout's own generator, from a checkpoint
            if layout["history"] is not None:  # a resumed run's epochs so far
                history.history = layout["history"]
                history.epoch = list(range(layout["epoch"]))
        for key in sorted(opt.slots):
            for s in sorted(opt.slots[key]):
                self.world.bcast_(opt.slots[key][s])
        self.reducer = GradientReducer(self.world, model.layers, overlap=self.overlap,
                                       bucket_bytes=self.bucket_bytes)
        model.gradient_hooks.append(self._sum_gradients)
        # batch norm over the global batch, whatever the layer's own `synchronized` says: with
        # per-rank statistics a model would mean something else at every N
        self._saved_bn = [(layer, layer.allreduce) for layer in walk(model.layers)  # composites' too
                          if isinstance(layer, BatchNormalization)]
        for layer, _ in self._saved_bn:
            layer.allreduce = self._sum_arrays
        return layout["epoch"]

    def finish(self):
        """Undo what :meth:`start` set on the model (the fit is over)."""
        hooks = self.model.gradient_hooks
        if self._sum_gradients in hooks:
            hooks.remove(self._sum_gradients)
        for layer, allreduce in self._saved_bn:
            layer.allreduce = allreduce
        self._saved_bn = []

    def _sum_arrays(self, arrays):
        """The synchronized batch-norm protocol's ``allreduce``: float64 arrays summed over the
        ranks, in one Allreduce (a stand-in sample contributes zeros)."""
        flat = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])
        if self.idle:
            flat[:] = 0.0
        self.world.allreduce_(flat)
        out, off = [], 0
        for a in arrays:
            n = np.size(a)
            out.append(flat[off:off + n].reshape(np.shape(a)))
            off += n
        return out

    def _sum_gradients(self, model):
        self.reducer.reduce()

    # ------------------------------------------------------------------ one batch
    def shard(self, idx):
        """This rank's part of the global batch ``idx``.

        Returns
        -------
        idx : ndarray
            The samples to read (one stand-in when this rank has none).
        rows : (lo, hi, n)
            Their rows in the global batch of n (augmentation draws for all n).
        """
        n = len(idx)
        lo, hi = bounds(n, self.size, self.rank)
        self.idle = hi == lo
        self.scale = (hi - lo) / n
        self.n, self.real = n, slice(0, 0) if self.idle else slice(None)
        self.reducer.zero = self.idle
        if self.idle:
            return idx[:1], (0, 1, n)
        return idx[lo:hi], (lo, hi, n)

    def counts(self):
        """``(n, real)``: the global batch's size, and this rank's real rows of its outputs."""
        return self.n, self.real

    def sample_weights(self, swb, k):
        """Loss weights of this rank's ``k`` samples scaled by n_rank / n_batch (0 for a
        stand-in), so that the sum of the ranks' losses and gradients is the global batch's."""
        scale = 0.0 if self.idle else self.scale
        return np.full(k, scale) if swb is None else np.asarray(swb, np.float64) * scale

    def augment(self, augment, xb, rng, rows):
        """Augment this rank's rows as one process would augment them in the whole batch.

        :class:`tinycnn.data.Augmenter` draws for the whole batch and applies this rank's
        rows (``rows=``), so the result equals one process's. Any other callable gets a
        generator of its own per rank and batch (drawn from the shared one, which so stays in
        step on every rank): valid augmentation, not equal to one process's.
        """
        if getattr(augment, "supports_rows", False):
            return augment(xb, rng, rows=rows)
        seed = int(rng.integers(2**63 - 1))
        return augment(xb, np.random.default_rng([seed, self.rank]))

    def rank_seed(self, seed):
        """A dropout seed of this rank's own from the seed every rank drew: masks independent
        across ranks (the same seed would give every rank the same masks for its rows)."""
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1, np.uint64)[0] >> np.uint64(1))

    def global_loss(self, loss):
        """The global batch's loss: the sum of the ranks' weighted losses (every rank gets it)."""
        a = np.array([0.0 if self.idle else float(loss)])
        total = float(self.world.allreduce_(a)[0])
        if not np.isfinite(total):
            self.collective_error = TrainingError  # raised on every rank: no abort needed
        return total

    def step_done(self, step):
        """Backward has finished ``step``: a layer, or fused layers (``ConvPool``: its ``conv``
        comes first in the model), whose gradients and all later layers' are now final."""
        if self.reducer is not None:  # None before start(), e.g. inside fit's preparations
            first = getattr(step, "conv", step)
            self.reducer.layer_done(next(i for i, layer in enumerate(self.model.layers) if layer is first))

    # ------------------------------------------------------------------ epoch and validation
    def gather_epoch(self, ys, ps):
        """Every rank's labels and outputs of the epoch, in the order one process had them,
        and a check that the ranks' weights are still identical."""
        digest = _weights_digest(self.model)
        parts = self.world.allgather((ys, ps, digest))
        digests = [p[2] for p in parts]
        if len(set(digests)) > 1:
            self.collective_error = DistributedError
            raise DistributedError(
                "the ranks' weights have drifted apart (digests " + ", ".join(digests) + "): the MPI "
                "library returned different sums on different ranks")
        ys_all, ps_all = [], []
        for b in range(len(ys)):
            for r in range(self.size):
                ys_all.append(parts[r][0][b])
                ps_all.append(parts[r][1][b])
        return ys_all, ps_all

    def predict_outputs(self, x, batch_size, training_output=False):
        """``model.predict_outputs`` over all of x, each rank computing its rows."""
        lo, hi = bounds(x.shape[0], self.size, self.rank)
        out = None
        if hi > lo:
            out = self.model.predict_outputs(RowView(x, lo, hi), batch_size, training_output)
        parts = [p for p in self.world.allgather(out) if p is not None]
        return np.concatenate(parts)

    def is_collective(self, exc):
        """True for an exception every rank raised at the same point (no abort needed)."""
        return self.collective_error is not None and isinstance(exc, self.collective_error)


def _weights_digest(model):
    import zlib

    crc = 0
    B = backend.get()
    for layer in model.layers:
        for d in (layer.params, getattr(layer, "state", {})):
            for a in d.values():
                crc = zlib.crc32(memoryview(np.ascontiguousarray(B.to_numpy(a))).cast("B"), crc)
    return f"{crc:08x}"
