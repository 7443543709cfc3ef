"""Exact k nearest neighbours under the L-inf (Chebyshev) distance of vectors (AMDs), pruned.

For any coordinate c, ``|a_c - b_c| <= max_c' |a_c' - b_c'|``: the gap in one coordinate is
a lower bound of the distance. With the items sorted by the coordinate of largest spread, a
query sweeps outward from its own place in that order, always to the side with the smaller
gap, and stops when the smaller gap exceeds its k-th best distance: every item not visited
is farther than that. Distances are computed as brute force computes them (the largest
absolute difference, exact in floating point), and the top-k lists keep ``(distance,
index)`` in lexicographic order, so ties are broken by the lower index as a stable sort of
the full row would: the answer equals brute force exactly.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._sweep import next_outward, push, row_linf

__all__ = ["linf_nearest_neighbours"]

#: Queries per call of the compiled search (a Ctrl-C is seen between two calls).
QUERIES_PER_CALL = 256


@njit(parallel=True, cache=True)
def _linf_knn_kernel(items, key_order, keys, queries, qkeys, k, self_index, q0, q1, out_d, out_i, evaluated):
    for t0 in prange(q1 - q0):
        q = q0 + t0
        bd = np.full(k, np.inf)
        bi = np.full(k, -1, dtype=np.int64)
        count = 0
        right = np.searchsorted(keys, qkeys[q])
        left = right - 1
        while True:
            t, left, right = next_outward(qkeys[q], keys, left, right, bd[k - 1])
            if t < 0:
                break
            j = key_order[t]
            if j == self_index[q]:
                continue
            count += 1
            push(bd, bi, row_linf(queries, q, items, j), j)
        evaluated[q] = count
        for c in range(k):
            out_d[q, c] = bd[c]
            out_i[q, c] = bi[c]


def linf_nearest_neighbours(
    items: np.ndarray, k: int, queries: np.ndarray | None = None, exclude_self: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(distances, indices, evaluated)``: the exact ``k`` nearest ``items`` (rows) of every
    query row under L-inf, sorted by distance then index, and how many distances each query
    computed. ``queries=None`` searches ``items`` among themselves (``exclude_self``: an item
    is not its own neighbour). Rows must be finite; ``k`` must not exceed the items available."""
    items = np.ascontiguousarray(items, dtype=np.float64)
    self_query = queries is None
    qs = items if self_query else np.ascontiguousarray(queries, dtype=np.float64)
    nq = len(qs)
    c = int(np.argmax(items.std(0))) if len(items) > 1 else 0
    key_order = np.argsort(items[:, c], kind="mergesort")
    keys = np.ascontiguousarray(items[key_order, c])
    qkeys = np.ascontiguousarray(qs[:, c])
    self_index = np.arange(nq, dtype=np.int64) if (self_query and exclude_self) else np.full(nq, -1, dtype=np.int64)
    out_d = np.empty((nq, k))
    out_i = np.empty((nq, k), dtype=np.int64)
    evaluated = np.zeros(nq, dtype=np.int64)
    for q0 in range(0, nq, QUERIES_PER_CALL):  # a Ctrl-C is seen between calls
        _linf_knn_kernel(items, key_order, keys, qs, qkeys, int(k), self_index, q0, min(nq, q0 + QUERIES_PER_CALL),
                         out_d, out_i, evaluated)
    return out_d, out_i, evaluated
