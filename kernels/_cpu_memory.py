"""Memory for the ``cpu`` backend: a caching pool for returned arrays, and scratch workspaces.

Why: a training step at 128x128 produces ~270 MB of activations and gradients. A fresh
``np.empty`` of that size costs the kernel's page faults (zeroing ~0.1 ms/MB here), i.e. about
10 % of the step. Two mechanisms avoid it:

* :func:`take` hands out arrays that the caller keeps (``y``, ``dx``, ``dw``, pooling
  indices). A pooled buffer is reused only when **nothing but the pool refers to it**
  (``sys.getrefcount``; any view the caller keeps holds a reference to its base buffer), so an
  array a caller still holds is never overwritten. Buffers are keyed by (dtype, size), so a
  pooling layer's ``dx`` of step t becomes the matching convolution's ``y`` of step t+1. Free
  buffers beyond :data:`POOL_FREE_LIMIT` bytes are dropped, least recently used first.
* :func:`workspace` hands out scratch arrays (im2col columns, ``dz``) that never leave a
  launcher; one growing buffer per name, per thread, so concurrent threads do not share one.

:func:`release_memory` drops everything (e.g. after training).
"""

import sys
import threading

import numpy as np

#: largest scratch workspace (bytes) of one op: im2col chunks the batch to stay below it
WORKSPACE_LIMIT = 256 << 20
#: preferred workspace size: chunks this small keep im2col's columns in cache between the
#: kernels that write them and the GEMM that reads them (measured fastest here at ~16 MiB)
CHUNK_TARGET = 16 << 20
#: free (unreferenced) pooled bytes kept for reuse; beyond it the least recently used go back
#: to the system, checked at every take. At 128x128 a whole training step's buffers fit (no
#: page faults in steady state); at 224x224 the surplus is released, so the peak memory stays
#: close to what is live at once rather than the sum of every buffer shape ever used
#: (measured at 224x224x3, batch 32: peak RSS 1.57 GiB instead of 1.90 GiB, ~8 % slower).
POOL_FREE_LIMIT = 256 << 20
#: arrays smaller than this are allocated directly (malloc reuses small blocks by itself)
POOL_MIN_BYTES = 1 << 16

_lock = threading.Lock()
_pool = {}  # (dtype.str, size) -> list of [buffer, last_use]
_tick = [0]
_held = [0]  # bytes of every pooled buffer, free or not: below the limit, no scan is needed
_local = threading.local()


def _calibrate():
    # references held while a pooled buffer is inspected: the pool's list entry, the loop
    # variable and getrefcount's own argument (measured, not assumed, across Python versions)
    entry = [np.empty(1)]
    for buf in entry:
        return sys.getrefcount(buf)


_FREE_REFS = _calibrate()


def take(shape, dtype):
    """An uninitialised C-contiguous array of ``shape``/``dtype`` that the caller may keep."""
    dtype = np.dtype(dtype)
    size = 1
    for s in shape:
        size *= int(s)
    if size * dtype.itemsize < POOL_MIN_BYTES:
        return np.empty(shape, dtype)
    key = (dtype.str, size)
    with _lock:
        _tick[0] += 1
        entries = _pool.setdefault(key, [])
        for entry in entries:
            buf = entry[0]
            if sys.getrefcount(buf) <= _FREE_REFS:
                entry[1] = _tick[0]
                out = buf.reshape(shape)
                del buf
                if _held[0] > POOL_FREE_LIMIT:
                    _trim(0)
                return out
            del buf
        if _held[0] + size * dtype.itemsize > POOL_FREE_LIMIT:
            _trim(size * dtype.itemsize)
        buf = np.empty(size, dtype)
        _pool.setdefault(key, []).append([buf, _tick[0]])
        _held[0] += buf.nbytes
        return buf.reshape(shape)


def _trim(incoming):
    """Drop least recently used free buffers while free bytes + ``incoming`` exceed the limit."""
    free = []
    for key, entries in _pool.items():
        for entry in entries:
            buf = entry[0]
            if sys.getrefcount(buf) <= _FREE_REFS:
                free.append((entry[1], key, entry))
            del buf
    total = sum(e[0].nbytes for _, _, e in free)
    free.sort(key=lambda t: t[0])
    for _, key, entry in free:
        if total + incoming <= POOL_FREE_LIMIT:
            break
        total -= entry[0].nbytes
        _held[0] -= entry[0].nbytes
        _pool[key] = [e for e in _pool[key] if e is not entry]
        if not _pool[key]:
            del _pool[key]


def workspace(name, shape, dtype):
    """A scratch array private to the calling thread, overwritten by the next call."""
    dtype = np.dtype(dtype)
    size = 1
    for s in shape:
        size *= int(s)
    spaces = getattr(_local, "spaces", None)
    if spaces is None:
        spaces = _local.spaces = {}
    key = (name, dtype.str)
    buf = spaces.get(key)
    if buf is None or buf.size < size:
        buf = spaces[key] = None  # free the old one before allocating the larger one
        buf = spaces[key] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


def pooled_bytes():
    """(bytes held by the pool, bytes of it currently free), for tests and diagnostics."""
    held = free = 0
    with _lock:
        for entries in _pool.values():
            for entry in entries:
                buf = entry[0]
                held += buf.nbytes
                if sys.getrefcount(buf) <= _FREE_REFS:
                    free += buf.nbytes
                del buf
    return held, free


def release_memory():
    """Forget every pooled buffer and this thread's workspaces (arrays still in use stay valid)."""
    with _lock:
        _pool.clear()
        _held[0] = 0
    _local.spaces = {}
