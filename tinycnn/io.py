"""Model files: one ``.npz`` container, read with ``allow_pickle=False``, never unpickled.

Layout of a file (format ``tinycnn-model``, version 1):

- ``__meta__``: UTF-8 JSON as a uint8 array: format and version, the architecture
  (``Sequential.get_config()``), the compile settings, the optimizer's config and step count,
  user metadata (e.g. preprocessing settings), the names of the arrays below, and for
  checkpoints the epoch, the history and the random-generator state.
- ``layer{i}/{name}``: weights (and batch-norm moving statistics) of layer i.
- ``opt/{i}/{param}/{slot}``: optimizer state.
- ``__checksum__``: SHA-256 over the JSON and every array (name, dtype, shape, bytes), so a
  truncated or tampered file is refused.

Files hold architecture, weights and training settings only: never images, labels or patient
identifiers. Writes are atomic: a temporary file in the same folder, flushed and fsynced,
then renamed over the target.
"""

import hashlib
import json
import os

import numpy as np

from . import backend
from ._archive import read_arrays
from ._files import atomic_write
from .errors import ModelFileError

FORMAT = "tinycnn-model"
VERSION = 1


def _digest(meta_bytes, arrays):
    h = hashlib.sha256()
    h.update(meta_bytes)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _collect(model, include_optimizer):
    arrays = {}
    B = backend.get()
    model.sync_backend()
    for i, layer in enumerate(model.layers):
        for k, p in layer.params.items():
            arrays[f"layer{i}/{k}"] = np.array(B.to_numpy(p))
        for k, s in getattr(layer, "state", {}).items():
            arrays[f"layer{i}/state/{k}"] = np.array(B.to_numpy(s))
    meta = {"format": FORMAT, "version": VERSION, "architecture": model.get_config(),
            "dtype": str(model.dtype), "metadata": model.metadata}
    if model.compiled:
        meta["compile"] = {"loss": model.loss.get_config(),
                           "metrics": [m.get_config() for m in model.metrics]}
        meta["optimizer"] = {"config": model.optimizer.get_config(),
                             "iterations": model.optimizer.iterations}
        if include_optimizer:
            for (i, pname), slots in model.optimizer.slots.items():
                for sname, a in slots.items():
                    arrays[f"opt/{i}/{pname}/{sname}"] = np.array(B.to_numpy(a))
    return meta, arrays


def _write(path, meta, arrays):
    path = os.fspath(path)
    meta["arrays"] = sorted(arrays)
    meta_bytes = json.dumps(meta, sort_keys=True).encode("utf-8")
    payload = dict(arrays)
    payload["__meta__"] = np.frombuffer(meta_bytes, dtype=np.uint8)
    payload["__checksum__"] = np.frombuffer(_digest(meta_bytes, arrays).encode(), dtype=np.uint8)
    with atomic_write(path, suffix=".tcnn") as f:
        np.savez(f, **payload)  # a file object: numpy adds no '.npz' suffix


def save_model(model, path, include_optimizer=True):
    """Write ``model`` to ``path`` atomically (see the module docstring for the layout)."""
    if not model.built:
        raise ModelFileError("the model is not built yet; nothing to save")
    meta, arrays = _collect(model, include_optimizer)
    _write(path, meta, arrays)


def read_model_file(path):
    """Read and verify a model file; return ``(meta, arrays)``.

    Nothing in the file is trusted: the zip container is checked record by record
    (:mod:`tinycnn._archive`), the checksum is verified before the description is parsed,
    and object arrays are refused, never unpickled.

    Raises
    ------
    ModelFileError
        Missing, empty, not a model file (a text file, an image, a ``.npz`` of other arrays),
        damaged or truncated in any byte the reader uses, an unknown format version, a failed
        checksum.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"model file {path!r} does not exist")
    data = read_arrays(path)
    if "__meta__" not in data or "__checksum__" not in data:
        raise ModelFileError(f"{path!r} is a .npz/zip archive but not a tinycnn model file (it holds no model "
                             "description); model files are written by `tinycnn train --out FILE` or "
                             "`model.save(FILE)`")
    meta_bytes = data.pop("__meta__").tobytes()
    checksum = data.pop("__checksum__").tobytes().decode("ascii", "replace")
    if _digest(meta_bytes, data) != checksum:
        raise ModelFileError(f"{path!r} failed its checksum: the file was modified or damaged")
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelFileError(f"{path!r}: the model description is corrupt ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        what = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFileError(f"{path!r} is not a tinycnn model file (format {what!r})")
    if meta.get("version") != VERSION:
        raise ModelFileError(
            f"{path!r} has format version {meta.get('version')!r}; this tinycnn reads version {VERSION}"
        )
    if sorted(data) != meta.get("arrays"):
        raise ModelFileError(f"{path!r}: the arrays do not match the model description")
    return meta, data


def _restore(model, meta, data):

    B = backend.get()
    try:
        for i, layer in enumerate(model.layers):
            layer.set_weights([data[f"layer{i}/{k}"] for k in layer.params]
                              + [data[f"layer{i}/state/{k}"] for k in getattr(layer, "state", {})])
        if "optimizer" in meta and model.optimizer is not None:
            opt = model.optimizer
            opt.iterations = int(meta["optimizer"]["iterations"])
            opt.slots = {}
            for name in meta["arrays"]:
                if name.startswith("opt/"):
                    _, i, pname, sname = name.split("/")
                    opt.slots.setdefault((int(i), pname), {})[sname] = B.asarray(data[name])
    except (KeyError, ValueError) as e:
        raise ModelFileError(f"the model file does not match its architecture: {e}") from None


def load_model(path, compile=True):
    """Rebuild a model saved with :meth:`Sequential.save`; it predicts bit-identically."""
    from . import optimizers
    from .models import Sequential

    meta, data = read_model_file(path)
    try:
        model = Sequential.from_config(meta["architecture"])
        dtype = np.dtype(meta.get("dtype", "float32"))
        if dtype != model.dtype:
            model.set_dtype(dtype)
        if not model.built:
            model.build()
        model.metadata = meta.get("metadata", {})
        if compile and "compile" in meta:
            model.compile(optimizer=optimizers.get(meta["optimizer"]["config"]),
                          loss=meta["compile"]["loss"], metrics=meta["compile"]["metrics"])
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{os.fspath(path)!r}: cannot rebuild the model ({e})") from None
    _restore(model, meta, data)
    return model


def save_checkpoint(model, path, epoch, history):
    """Model, optimizer, the random generator's state and the history after ``epoch`` epochs."""
    from .random import get_state

    meta, arrays = _collect(model, include_optimizer=True)
    meta["checkpoint"] = {"epoch": int(epoch), "history": history, "rng_state": get_state(),
                          "layer_rng_states": [layer.get_random_state() for layer in model.layers]}
    _write(path, meta, arrays)


def load_checkpoint(model, path):
    """Restore weights, optimizer and random state from a checkpoint into ``model``;
    return ``(next_epoch, history)``."""
    from .random import set_state

    meta, data = read_model_file(path)
    if "checkpoint" not in meta:
        raise ModelFileError(f"{os.fspath(path)!r} is a model file, not a training checkpoint")
    if meta["architecture"]["layers"] != model.get_config()["layers"]:
        raise ModelFileError(f"{os.fspath(path)!r} was written by a model of another architecture")
    _restore(model, meta, data)
    set_state(meta["checkpoint"]["rng_state"])
    for layer, state in zip(model.layers, meta["checkpoint"].get("layer_rng_states", []), strict=False):
        layer.set_random_state(state)  # e.g. a seeded Dropout's own generator
    return meta["checkpoint"]["epoch"], meta["checkpoint"]["history"]
