"""Merging partial k-nearest-neighbour lists: the reduce step of a blocked exact kNN.

When the reference set is split into blocks, each block gives every query its ``k``
nearest items *of that block* (indices already global). :func:`merge_topk` joins those
partial lists into the ``k`` nearest items of the whole set, ordered by ``(distance,
index)`` -- ties broken by the smaller reference index, the order
:func:`aiida_crystinv.distances.nearest_neighbours` produces in one process (a stable
sort of each full row). Since every partial list holds the ``k`` lexicographically
smallest ``(distance, index)`` pairs of its block, the merge is exact: it equals the
single-process result bit for bit, indices and distances.

Pure: numpy only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["merge_topk", "ABSENT"]

#: Index of an empty slot of a partial list (its distance is ``inf``): a reference block
#: with fewer than ``k`` candidates for a query pads its list with it.
ABSENT = -1


def merge_topk(
    parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The global top-``k`` of partial top-k lists of the same queries.

    Args:
        parts: ``(distances, indices)`` pairs, each of shape (n_queries, k_p): the partial
            lists of disjoint reference blocks, with global reference indices; empty
            slots have index :data:`ABSENT` (-1) and distance ``inf``.
        k: neighbours to keep (default: the width of the first part).

    Returns:
        ``(distances, indices)`` of shape (n_queries, k), float64 and int64, sorted by
        distance then index. Rows with fewer than ``k`` candidates in all the parts
        together end with empty slots (``inf``, -1).

    Raises:
        ValueError: no parts, parts of different numbers of queries or mismatched shapes,
            a NaN distance, or the same reference index in two parts for one query
            (overlapping blocks).
    """
    parts = list(parts)
    if not parts:
        raise ValueError("merge_topk needs at least one partial list")
    dists, idxs = [], []
    for p, (d, i) in enumerate(parts):
        d = np.asarray(d, dtype=np.float64)
        i = np.asarray(i)
        if d.ndim != 2 or d.shape != i.shape:
            raise ValueError(f"part {p}: distances {d.shape} and indices {i.shape} must be 2-D of the same shape")
        if i.dtype.kind not in "iu":
            raise ValueError(f"part {p}: indices must be integers, got dtype {i.dtype}")
        if d.shape[0] != np.shape(parts[0][0])[0]:
            raise ValueError(f"part {p} has {d.shape[0]} queries, part 0 has {np.shape(parts[0][0])[0]}")
        if np.isnan(d).any():
            raise ValueError(f"part {p}: NaN distance")
        dists.append(d)
        idxs.append(i.astype(np.int64, copy=False))
    if k is None:
        k = dists[0].shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    D = np.concatenate(dists, axis=1)
    Ix = np.concatenate(idxs, axis=1)
    nq, width = D.shape
    absent = Ix < 0
    key_i = np.where(absent, np.iinfo(np.int64).max, Ix)
    key_d = np.where(absent, np.inf, D)
    # the same reference item in two parts means the blocks overlap: refuse, do not guess
    srt = np.sort(key_i, axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] != np.iinfo(np.int64).max)
    if dup.any():
        q, c = np.argwhere(dup)[0]
        raise ValueError(f"reference index {int(srt[q, c])} appears twice for query {int(q)}: the reference blocks overlap")
    order = np.lexsort((key_i, key_d), axis=-1)[:, : min(k, width)]
    out_d = np.full((nq, k), np.inf)
    out_i = np.full((nq, k), ABSENT, dtype=np.int64)
    out_d[:, : order.shape[1]] = np.take_along_axis(key_d, order, axis=1)
    out_i[:, : order.shape[1]] = np.take_along_axis(key_i, order, axis=1)
    empty = out_i == np.iinfo(np.int64).max
    out_i[empty] = ABSENT
    out_d[empty] = np.inf
    return out_d, out_i
