"""Stratified train / validation / test splits (per sample, or by groups such as patients) and
mini-batch index streams."""

import numpy as np

from ..errors import ConfigError, InvalidValueError, ShapeError
from ._common import as_rng


def _strata(y):
    """Class index per sample: (N,) labels as they are, (N, L) multi-label rows by combination."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 1:
        _, strata = np.unique(y, return_inverse=True)
    elif y.ndim == 2:
        _, strata = np.unique(y, axis=0, return_inverse=True)
    else:
        raise ShapeError(f"y must be (N,) labels or (N, L) multi-labels, got shape {y.shape}")
    return strata.reshape(-1)


def _fractions(fractions):
    try:
        fr = np.asarray(fractions, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"fractions must be numbers, got {fractions!r}") from None
    if fr.size == 0 or np.any(~np.isfinite(fr)) or np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
        raise ConfigError(f"fractions must be non-negative and sum to 1, got {fractions!r}")
    return fr


def stratified_split(y, fractions=(0.7, 0.15, 0.15), seed=0):
    """Split sample indices so that each class is spread over the parts in proportion.

    Samples are shuffled within each class and dealt out class after class, each to the part
    furthest below its share so far; so each part's total comes out within one sample of its
    share, and each class within one or two. Then, for a class with at least as many samples as
    there are non-empty parts, every part with a positive fraction that got none of it takes
    one from the part holding most. Multi-label rows (N, L) are stratified by their
    combination of labels.

    Parameters
    ----------
    y : array_like, shape (N,), (N, 1) or (N, L)
        Labels.
    fractions : sequence of float
        Share of each part, non-negative, summing to 1.
    seed : int or numpy.random.Generator

    Returns
    -------
    tuple of numpy.ndarray
        One sorted int64 index array per fraction; together a partition of ``range(N)``.
        Sorted order keeps reads from memory-mapped and lazily loaded arrays sequential.
    """
    fr = _fractions(fractions)
    strata = _strata(y)
    if strata.size == 0:
        raise InvalidValueError("stratified_split needs at least one sample")
    rng = as_rng(seed)
    k = fr.size
    given = np.zeros(k)
    parts = [[] for _ in range(k)]
    active = np.flatnonzero(fr > 0)
    dealt = 0
    for c in range(strata.max() + 1):
        members = rng.permutation(np.flatnonzero(strata == c))
        owner = np.empty(len(members), np.int64)
        for j in range(len(members)):
            dealt += 1
            # The part furthest below its share of everything dealt so far (ties: lowest part).
            p = int(np.argmax(fr * dealt - given))
            owner[j] = p
            given[p] += 1
        if len(members) >= len(active):
            counts = np.bincount(owner, minlength=k)
            for p in active[counts[active] == 0]:
                donor = int(np.argmax(counts))
                owner[np.flatnonzero(owner == donor)[-1]] = p
                counts[donor] -= 1
                counts[p] += 1
        for p in range(k):
            parts[p].append(members[owner == p])
    return tuple(np.sort(np.concatenate(ps)).astype(np.int64) for ps in parts)


def stratified_group_split(y, groups, fractions=(0.7, 0.15, 0.15), seed=0):
    """Split sample indices into parts so that no group straddles two parts, stratified by class
    as far as the groups allow.

    Groups (a patient's images, a file's frames) are dealt out whole, largest first (ties in a
    random order from ``seed``), each to the part whose class counts are furthest below their
    targets in the classes the group holds: the part p minimising ``(have[p] - target[p]) . g``,
    ``g`` being the group's cases per class and ``target[p] = fraction[p] * cases per class``.
    That is the greedy step that most reduces the squared distance of every part's class counts
    to their targets. Then each part with a positive fraction that got no group takes the
    smallest group of the part holding most groups. With one sample per group this is
    :func:`stratified_split`, exactly.

    Parameters
    ----------
    y : array_like, shape (N,), (N, 1) or (N, L)
        Labels (multi-label rows are stratified by their combination).
    groups : array_like, shape (N,)
        Any hashable labels; samples with equal labels stay together.
    fractions : sequence of float
        Share of each part, non-negative, summing to 1.
    seed : int or numpy.random.Generator

    Returns
    -------
    tuple of numpy.ndarray
        One sorted int64 index array per fraction; together a partition of ``range(N)``.
    """
    strata = _strata(y)
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != len(strata):
        raise ShapeError(f"groups must hold one label per sample ({len(strata)}), got shape {groups.shape}")
    if strata.size == 0:
        raise InvalidValueError("stratified_group_split needs at least one sample")
    g = np.unique(groups, return_inverse=True)[1].reshape(-1)
    G = int(g.max()) + 1
    if G == len(g):
        return stratified_split(y, fractions, seed)
    fr = _fractions(fractions)
    counts = np.zeros((G, int(strata.max()) + 1))
    np.add.at(counts, (g, strata), 1)
    rng = as_rng(seed)
    order = rng.permutation(G)
    order = order[np.argsort(-counts.sum(axis=1)[order], kind="stable")]
    target = fr[:, None] * counts.sum(axis=0)[None, :]
    have = np.zeros_like(target)
    active = np.flatnonzero(fr > 0)
    owner = np.empty(G, np.int64)
    for gi in order:
        p = int(active[np.argmin((have[active] - target[active]) @ counts[gi])])
        owner[gi] = p
        have[p] += counts[gi]
    sizes = counts.sum(axis=1)
    for p in active:
        held = np.bincount(owner, minlength=fr.size)
        if held[p] == 0 and held.max() > 1:
            donor = np.flatnonzero(owner == int(np.argmax(held)))
            owner[donor[np.argmin(sizes[donor])]] = p
    member = owner[g]
    return tuple(np.flatnonzero(member == p).astype(np.int64) for p in range(fr.size))


def batches(n, batch_size, shuffle=True, rng=None, drop_last=False):
    """Yield index arrays that cover ``range(n)`` in mini-batches.

    Parameters
    ----------
    n : int
        Number of samples.
    batch_size : int
    shuffle : bool
        Random order (a fresh permutation per call); otherwise 0, 1, 2, ...
    rng : numpy.random.Generator or int, optional
        Default tinycnn's generator (:mod:`tinycnn.random`).
    drop_last : bool
        Leave out a final batch smaller than ``batch_size``.

    Yields
    ------
    numpy.ndarray, shape (batch_size,) (the last may be shorter), int64
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"n must be a non-negative int, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    order = as_rng(rng).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]
