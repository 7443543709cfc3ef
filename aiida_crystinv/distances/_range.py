"""Every pair within a distance: exact range search and near-duplicate groups.

:func:`pairs_within` returns every pair ``i < j`` with ``d(i, j) <= eps``, never cut by a
neighbour count, equal to brute force. For ``pdd_emd`` the candidates are pruned by the
lower bound ``|AMD_i - AMD_j|_inf <= EMD(PDD_i, PDD_j)`` (AMDs from the PDDs given): the
items are sorted by the AMD coordinate with the largest spread, a sweep keeps the pairs
whose coordinate differs by at most ``eps``, then the whole L-inf bound, and only the
survivors get an exact EMD. For the AMD metrics (L-inf, L1, L2 of the same vectors) the
L-inf distance is the lower bound (composition_l1 too). Other metrics are computed by brute force in blocks.

:func:`duplicate_groups` joins the pairs into groups (connected components: single linkage
at ``eps``), each with a representative; the groups do not depend on the order of the
input when identifiers are given.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numba import njit, prange

from ._emd import pack_pdds, pot_emd
from ._matrix import _check_metric, _emd_ij, _packed_amds, _Threads, cdist

__all__ = ["pairs_within", "duplicate_groups"]

_VECTOR_NORMS = {"amd_linf": np.inf, "amd_l1": 1, "amd_l2": 2, "composition_l1": 1}


@njit(cache=True)
def _sweep(keys, vectors, order, eps, counts, fill, out_i, out_j):
    """The sorted sweep: per sorted position p, the q > p within eps in the key and in L-inf.
    First pass (``fill`` False): their number in ``counts[p]``; second pass: written from
    ``counts[p]`` (now the start offsets) into ``out_i < out_j``."""
    n = keys.shape[0]
    for p in range(n):
        i = order[p]
        w = counts[p] if fill else 0
        for q in range(p + 1, n):
            if keys[q] - keys[p] > eps:
                break
            j = order[q]
            ok = True
            for d in range(vectors.shape[1]):
                if abs(vectors[i, d] - vectors[j, d]) > eps:
                    ok = False
                    break
            if ok:
                if fill:
                    out_i[w] = min(i, j)
                    out_j[w] = max(i, j)
                w += 1
        if not fill:
            counts[p] = w


@njit(parallel=True, cache=True)
def _emd_pairs(rows, weights, offsets, pi, pj, out):
    for t in prange(pi.shape[0]):
        out[t] = _emd_ij(rows, weights, offsets, pi[t], rows, weights, offsets, pj[t])


def _candidates(vectors: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs i < j with L-inf(vectors_i, vectors_j) <= eps (a sorted sweep)."""
    n = len(vectors)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    c = int(np.argmax(vectors.std(0)))
    order = np.argsort(vectors[:, c], kind="mergesort").astype(np.int64)
    keys = np.ascontiguousarray(vectors[order, c])
    vectors = np.ascontiguousarray(vectors)
    counts = np.zeros(n, np.int64)
    none = np.empty(0, np.int64)
    _sweep(keys, vectors, order, float(eps), counts, False, none, none)
    total = int(counts.sum())
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    pi, pj = np.empty(total, np.int64), np.empty(total, np.int64)
    _sweep(keys, vectors, order, float(eps), starts, True, pi, pj)
    return pi, pj


def pairs_within(items, eps: float, metric: str = "pdd_emd", n_jobs: int | None = None,
                 memory_limit_mb: float = 512.0, return_stats: bool = False, **params):
    """Every pair ``i < j`` of ``items`` with ``metric(i, j) <= eps``, exactly.

    Args:
        items: invariants (PDD arrays for ``pdd_emd``, vectors for the AMD metrics...).
        eps: the distance (Angstrom for the AMD/PDD metrics); 0 finds exact duplicates.
        metric: any of :func:`metric_names`.
        return_stats: also return the number of exact distances evaluated.

    Returns:
        ``(i, j, d)``: int arrays ``i < j`` and the distances, sorted by ``(i, j)``.

    Raises:
        ValueError: eps negative or not finite, an unknown metric.
    """
    _check_metric(metric)
    eps = float(eps)
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite distance >= 0, got {eps}")
    n = len(items)
    if metric == "pdd_emd":
        rows, weights, offsets = pack_pdds(items)
        amds = _packed_amds(rows, weights, offsets)
        pi, pj = _candidates(amds, eps)
        d = np.empty(len(pi))
        with _Threads(n_jobs):
            _emd_pairs(rows, weights, offsets, pi, pj, d)
        bad = np.flatnonzero(np.isnan(d))
        for t in bad:  # pragma: no cover - the simplex converges in practice
            d[t] = pot_emd(np.asarray(items[pi[t]], float), np.asarray(items[pj[t]], float))
        evaluated = len(pi)
    elif metric in _VECTOR_NORMS:
        vectors = np.asarray(np.stack([np.asarray(v, float) for v in items]) if n else np.empty((0, 1)))
        pi, pj = _candidates(vectors, eps)
        diff = vectors[pi] - vectors[pj]
        d = np.linalg.norm(diff, ord=_VECTOR_NORMS[metric], axis=1) if len(pi) else np.empty(0)
        evaluated = len(pi)
    else:  # brute force in row blocks
        from ._matrix import _block_rows

        block = _block_rows(n, 8, memory_limit_mb)
        found_i, found_j, found_d = [], [], []
        for start in range(0, n, block):
            stop = min(n, start + block)
            D = cdist(items[start:stop], items, metric, n_jobs=n_jobs, **params)
            r, c = np.nonzero(D <= eps)
            keep = c > r + start
            found_i.append(r[keep] + start)
            found_j.append(c[keep])
            found_d.append(D[r[keep], c[keep]])
        pi = np.concatenate(found_i) if found_i else np.empty(0, np.int64)
        pj = np.concatenate(found_j) if found_j else np.empty(0, np.int64)
        d = np.concatenate(found_d) if found_d else np.empty(0)
        evaluated = n * (n - 1) // 2
    keep = d <= eps
    pi, pj, d = pi[keep], pj[keep], d[keep]
    order = np.lexsort((pj, pi))
    out = (pi[order].astype(np.int64), pj[order].astype(np.int64), d[order])
    return (*out, evaluated) if return_stats else out


def duplicate_groups(n: int, i: np.ndarray, j: np.ndarray, ids: Sequence[str] | None = None) -> list[list[int]]:
    """Connected components of the pairs (single linkage), groups of two or more only.

    Each group lists its members' indices with the representative first: the member with
    the smallest identifier (``ids``), else the smallest index; groups are sorted by their
    representative. With ``ids`` the groups (as identifiers) do not depend on the order of
    the records.
    """
    parent = np.arange(n)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for x in range(n):
        members.setdefault(find(x), []).append(x)
    key = (lambda x: (ids[x], x)) if ids is not None else (lambda x: (x,))
    groups = [sorted(m, key=key) for m in members.values() if len(m) > 1]
    groups.sort(key=lambda g: key(g[0]))
    return groups
