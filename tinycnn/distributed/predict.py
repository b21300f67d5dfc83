"""Prediction split over the ranks: rows of an array, or files of a folder.

Each rank reads and predicts its contiguous share (:func:`.sharding.bounds`); the shares are
gathered in rank order, which is input order, so every file appears exactly once, where one
process would have put it, and an unreadable file is reported once, by the rank that read it.
"""

import numpy as np

from ..errors import DataError
from .errors import DistributedError
from .runtime import world
from .sharding import RowView, bounds, config_fingerprint, data_fingerprint


def predict(model, x, batch_size=32):
    """``model.predict(x)``, the rows split over the ranks when :func:`active` (collective:
    call it on every rank with the same x); every rank gets all the outputs."""
    w = world()
    if w is None or w.size == 1:
        return model.predict(x, batch_size=batch_size)
    return predict_rows(w, model, x, batch_size)


def predict_files(model, files, read, batch_size=64):
    """Read and predict ``files``, split over the ranks when :func:`active`.

    Parameters
    ----------
    model : Sequential
    files : list of str
    read : callable ``read(model, files) -> (x, kept, skipped)``
        E.g. :func:`tinycnn.pipeline.images_for_model`.

    Returns
    -------
    (kept, p, skipped)
        In input order on every rank: each file read by one rank only.
    """
    w = world()
    if w is None or w.size == 1:
        x, kept, skipped = read(model, files)
        return kept, model.predict(x, batch_size=batch_size), skipped
    return predict_file_shards(w, model, files, read, batch_size)



def same_everywhere(world, what, fingerprint):
    """Refuse (on every rank alike) unless every rank has the same ``(digest, description)``."""
    digests = world.allgather(fingerprint[0])
    others = [r for r, d in enumerate(digests) if d != digests[0]]
    if others:
        err = DistributedError(f"the ranks disagree about the {what}: rank(s) {others} differ from rank 0 "
                               f"(this rank {world.rank}: {fingerprint[1]}); every rank must see the same files")
        err.tinycnn_collective = True
        raise err


def predict_rows(world, model, x, batch_size):
    """``model.predict(x)``: rank r predicts rows bounds(len(x)) and every rank gets all."""
    same_everywhere(world, "images", data_fingerprint(x))
    lo, hi = bounds(x.shape[0], world.size, world.rank)
    out = model.predict(RowView(x, lo, hi), batch_size=batch_size) if hi > lo else None
    parts = [p for p in world.allgather(out) if p is not None]
    return np.concatenate(parts)


def predict_file_shards(world, model, files, read, batch_size):
    """Read and predict this rank's files; gather ``(kept, p, skipped)`` in input order."""
    same_everywhere(world, "file list", config_fingerprint([str(f) for f in files]))
    lo, hi = bounds(len(files), world.size, world.rank)
    kept, p, skipped, failure = [], None, [], None
    if hi > lo:
        try:
            x, kept, skipped = read(model, files[lo:hi])
            p = model.predict(x, batch_size=batch_size)
        except DataError as e:
            # none of this rank's files could be read: not an error unless no rank read any
            failure = str(e)
            skipped = [(f, _reason(read, model, f)) for f in files[lo:hi]]
    parts = world.allgather((kept, p, skipped, failure))
    kept_all, ps, skipped_all = [], [], []
    for k, pr, s, _ in parts:
        kept_all += k
        skipped_all += s
        if pr is not None:
            ps.append(pr)
    if not ps:
        first = next((f for *_, f in parts if f), "no files")
        err = DataError(f"none of the {len(files)} file(s) could be read; {first}")
        err.tinycnn_collective = True  # every rank sees the same gathered result
        raise err
    return kept_all, np.concatenate(ps), skipped_all


def _reason(read, model, f):
    """Why ``f`` cannot be read, worded as a one-process run reports it."""
    try:
        read(model, [f])
    except DataError as e:
        msg, marker = str(e), f"first: {f}: "
        return msg.split(marker, 1)[1] if marker in msg else msg
    return "unreadable"
