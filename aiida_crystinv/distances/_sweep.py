"""Compiled pieces shared by the exact pruned k-NN searches (PDD-EMD in :mod:`._matrix`,
AMD L-inf in :mod:`._linf_knn`): the outward sweep over items sorted by one key, the top-k
list kept in ``(distance, index)`` order, as a stable sort of the full row would, and the
L-inf distance of two rows (the AMD L-inf distance itself; a lower bound of PDD-EMD)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def row_linf(x, i, y, j):
    """``max_c |x[i, c] - y[j, c]|``, as brute force computes it (exact in floating point)."""
    best = 0.0
    for c in range(x.shape[1]):
        d = abs(x[i, c] - y[j, c])
        if d > best:
            best = d
    return best


@njit(cache=True)
def next_outward(qkey, keys, left, right, bound):
    """``(t, left, right)``: the next position ``t`` of a sweep outward from ``qkey`` in the
    sorted ``keys`` (the side with the smaller gap) and the new ends; ``t = -1`` when the
    smaller gap exceeds ``bound``: no item not yet visited can be within ``bound``."""
    n = keys.shape[0]
    gl = qkey - keys[left] if left >= 0 else np.inf
    gr = keys[right] - qkey if right < n else np.inf
    if gl <= gr:
        if left < 0 or gl > bound:
            return -1, left, right
        return left, left - 1, right
    if gr > bound:
        return -1, left, right
    return right, left, right + 1


@njit(cache=True)
def push(bd, bi, d, j):
    """Insert item ``j`` at distance ``d`` into the sorted top-k lists ``bd`` / ``bi`` when it
    belongs there (ties: the lower index first)."""
    k = bd.shape[0]
    if d < bd[k - 1] or (d == bd[k - 1] and j < bi[k - 1]):
        p = k - 1
        while p > 0 and (bd[p - 1] > d or (bd[p - 1] == d and bi[p - 1] > j)):
            bd[p] = bd[p - 1]
            bi[p] = bi[p - 1]
            p -= 1
        bd[p] = d
        bi[p] = j
