"""Summing the gradients of every rank: buckets, one Allreduce each, overlapped with backward.

Each rank's gradients already carry its share of the global batch (its samples' loss weights
are scaled by ``n_rank / n_batch``), so their plain sum is the big batch's gradient. The
gradients are grouped into buckets in the order backward produces them (the last layer's
first), as PyTorch's DistributedDataParallel does: a tensor of at least ``bucket_bytes`` is a
bucket on its own and is summed in place; smaller ones are copied into one flat buffer per
bucket. With ``overlap`` a bucket's non-blocking Allreduce starts as soon as the backward pass
has finished all its layers, and runs while the earlier layers' backward is computed; every
request is waited on before the optimizer step. Without ``overlap`` the same buckets are summed
one after the other once backward has finished.
"""

import numpy as np

from .. import backend

#: bucket size (PyTorch DDP's default, 25 MiB)
BUCKET_BYTES = 25 << 20


class _Bucket:
    def __init__(self, entries, dtype):
        self.entries = entries  # [(layer index, parameter name, shape, offset)]
        self.first_layer = min(e[0] for e in entries)  # ready once backward has passed it
        size = sum(int(np.prod(e[2])) for e in entries)
        self.flat = np.empty(size, dtype) if len(entries) > 1 else None
        self.request = None
        self.started = False


class GradientReducer:
    """Sums the layers' gradients over the ranks (see the module docstring).

    Parameters
    ----------
    world : tinycnn.distributed.comm.World
    layers : list of tinycnn layers
    overlap : bool
        Start each bucket's Allreduce during backward (non-blocking) instead of after it.
    bucket_bytes : int
    """

    def __init__(self, world, layers, overlap=True, bucket_bytes=BUCKET_BYTES):
        self.world, self.layers, self.overlap = world, layers, overlap
        self.zero = False  # this rank holds no sample of the batch: it contributes zeros
        self.buckets = []
        pending, pending_bytes = [], 0
        dtype = None
        for i in range(len(layers) - 1, -1, -1):
            for name, p in layers[i].params.items():
                dtype = np.dtype(p.dtype)
                nbytes = int(np.prod(p.shape)) * dtype.itemsize
                if nbytes >= bucket_bytes:
                    if pending:
                        self.buckets.append(_Bucket(pending, dtype))
                        pending, pending_bytes = [], 0
                    self.buckets.append(_Bucket([(i, name, tuple(p.shape), 0)], dtype))
                    continue
                pending.append((i, name, tuple(p.shape), sum(int(np.prod(e[2])) for e in pending)))
                pending_bytes += nbytes
                if pending_bytes >= bucket_bytes:
                    self.buckets.append(_Bucket(pending, dtype))
                    pending, pending_bytes = [], 0
        if pending:
            self.buckets.append(_Bucket(pending, dtype))

    def _start(self, bucket):
        """Copy the bucket's gradients into its buffer (or use the one tensor) and start its sum."""
        if bucket.flat is None:
            i, name, _, _ = bucket.entries[0]
            g = np.ascontiguousarray(self.layers[i].grads[name])
            self.layers[i].grads[name] = g
            buf = g.reshape(-1)
            if self.zero:
                buf[:] = 0
        elif self.zero:
            buf = bucket.flat
            buf[:] = 0
        else:
            buf = bucket.flat
            for i, name, shape, off in bucket.entries:
                n = int(np.prod(shape))
                buf[off:off + n] = np.asarray(self.layers[i].grads[name]).reshape(-1)
        bucket.started = True
        if self.overlap:
            bucket.request = self.world.iallreduce_(buf)
        else:
            self.world.allreduce_(buf)

    def layer_done(self, i):
        """Backward has just finished layer ``i``: start every bucket that is now complete, and
        give MPI a chance to progress the ones in flight."""
        if not self.overlap:
            return
        for bucket in self.buckets:
            if not bucket.started and bucket.first_layer >= i:
                self._start(bucket)
        requests = [b.request for b in self.buckets if b.request is not None]
        if requests:
            self.world.MPI.Request.Testall(requests)

    def reduce(self):
        """Finish the sums; afterwards every layer's ``grads`` hold the global batch's gradient."""
        for bucket in self.buckets:
            if not bucket.started:
                self._start(bucket)
        requests = [b.request for b in self.buckets if b.request is not None]
        if requests:
            self.world.MPI.Request.Waitall(requests)
        B = backend.get()
        for bucket in self.buckets:
            bucket.request, bucket.started = None, False
            if bucket.flat is None:
                continue
            for i, name, shape, off in bucket.entries:
                # a view of the summed buffer: the optimizer reads it before the next step refills it
                self.layers[i].grads[name] = B.asarray(bucket.flat[off:off + int(np.prod(shape))].reshape(shape))
