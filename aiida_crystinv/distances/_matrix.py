"""Distance matrices and the exact nearest-neighbour search.

Items are given per metric as:

* ``amd_linf`` / ``amd_l1`` / ``amd_l2`` / ``composition_l1``: a 2-D array (n, d) of vectors;
* ``pdd_emd``: a list of PDDs (each (r_i, k + 1), weights first);
* ``grid_emd``: a 3-D stack (n, shells, bins) of GRIDs;
* ``rdf_emd``: a 2-D stack (n, bins) of RDFs.

All matrix work runs in compiled loops over both cores (``n_jobs``) and in row blocks
whose working memory stays under ``memory_limit_mb``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numba import get_num_threads, njit, prange, set_num_threads

from ._emd import chebyshev_cost, pack_pdds, pot_emd, transport_simplex
from ._sweep import next_outward, push, row_linf

__all__ = ["amd_distance", "pdist", "cdist", "nearest_neighbours", "metric_names"]

_VECTOR_METRICS = {"amd_linf": "chebyshev", "amd_l1": "cityblock", "amd_l2": "euclidean", "composition_l1": "cityblock"}
_ALL = tuple(_VECTOR_METRICS) + ("pdd_emd", "grid_emd", "rdf_emd")


def metric_names() -> tuple[str, ...]:
    """Names accepted by :func:`pdist`, :func:`cdist` and :func:`nearest_neighbours`."""
    return _ALL


def _check_metric(metric: str) -> str:
    if metric not in _ALL:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(_ALL)}")
    return metric


def amd_distance(amd_a, amd_b, metric: str = "chebyshev") -> float:
    """Distance between two AMD vectors (k,), Angstrom.

    Args:
        metric: ``'chebyshev'`` / ``'linf'`` (default, L-inf), ``'l1'`` or ``'l2'``.
    """
    a = np.asarray(amd_a, dtype=float)
    b = np.asarray(amd_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"AMDs must be 1-D vectors of equal length, got shapes {a.shape} and {b.shape}")
    diff = np.abs(a - b)
    if metric in ("chebyshev", "linf", "amd_linf"):
        return float(diff.max())
    if metric in ("l1", "cityblock", "amd_l1"):
        return float(diff.sum())
    if metric in ("l2", "euclidean", "amd_l2"):
        return float(np.sqrt((diff ** 2).sum()))
    raise ValueError(f"unknown AMD metric {metric!r}; use 'chebyshev', 'l1' or 'l2'")


# --------------------------------------------------------------------------- kernels
#
# The compiled loops are called in blocks: Python sees a Ctrl-C only between two calls, so
# a block is kept to about a second of work (the interrupted command then stops promptly).

#: EMD evaluations per call of the PDD matrix kernels.
_EMDS_PER_CALL = 100_000
#: Queries per call of the pruned PDD-EMD k-NN kernel.
_QUERIES_PER_CALL = 64



@njit(cache=True)
def _emd_ij(ra, wa, oa, i, rb, wb, ob, j):
    sa, ea = oa[i], oa[i + 1]
    sb, eb = ob[j], ob[j + 1]
    n = ea - sa
    m = eb - sb
    C = chebyshev_cost(ra[sa:ea], rb[sb:eb])
    cost, ok = transport_simplex(wa[sa:ea], wb[sb:eb], C, 50 * (n + m) ** 2 + 1000)
    return cost if ok else np.nan


@njit(parallel=True, cache=True)
def _pdd_cdist_kernel(ra, wa, oa, rb, wb, ob, row0, out):
    nrow = out.shape[0]
    nb = ob.shape[0] - 1
    for r in prange(nrow):
        for j in range(nb):
            out[r, j] = _emd_ij(ra, wa, oa, row0 + r, rb, wb, ob, j)


@njit(cache=True)
def _pdd_pdist_row(rows, weights, offsets, i, out):
    n = offsets.shape[0] - 1
    base = i * n - i * (i + 1) // 2 - i - 1  # condensed index of (i, j) is base + j
    for j in range(i + 1, n):
        out[base + j] = _emd_ij(rows, weights, offsets, i, rows, weights, offsets, j)


@njit(parallel=True, cache=True)
def _pdd_pdist_kernel(rows, weights, offsets, r0, r1, out):
    n = offsets.shape[0] - 1
    # pair the long row r with the short row n - 1 - r so both threads get equal work;
    # this call does r in [r0, r1) of [0, (n + 1) // 2)
    for t in prange(r1 - r0):
        r = r0 + t
        _pdd_pdist_row(rows, weights, offsets, r, out)
        if n - 1 - r != r:
            _pdd_pdist_row(rows, weights, offsets, n - 1 - r, out)


@njit(cache=True)
def _try_candidate(qrows, qweights, qoffsets, q, rows, weights, offsets, j, bd, bi):
    """EMD of query q and item j, inserted into the sorted (distance, index) top-k lists.

    Returns False if the simplex failed (the caller falls back to POT for this query).
    """
    d = _emd_ij(qrows, qweights, qoffsets, q, rows, weights, offsets, j)
    if np.isnan(d):
        return False
    push(bd, bi, d, j)  # (distance, index) in lexicographic order, as a stable brute-force sort
    return True


@njit(parallel=True, cache=True)
def _pdd_knn_kernel(rows, weights, offsets, amds, key_order, keys, qrows, qweights, qoffsets, qamds, qkeys,
                    k, window, self_index, q0, q1, out_d, out_i, evaluated):
    """Exact k-NN under PDD-EMD, pruned by two lower bounds of the EMD.

    ``keys = amds[:, c]`` for one AMD coordinate c, sorted by ``key_order``; both
    ``|key_a - key_b|`` and ``|AMD_a - AMD_b|_inf`` are lower bounds of the EMD. A window of
    items nearest in key is scored first (full AMD bound, EMDs in bound order) to get a good
    k-th distance; then the sweep moves outward in key order while the key gap does not
    exceed the k-th distance, computing the AMD bound and, if that does not exceed it
    either, the EMD. Every item skipped has a bound above the final k-th distance, so the
    result is exact. This call does the queries ``q0 <= q < q1``.
    """
    n = offsets.shape[0] - 1
    for t0 in prange(q1 - q0):
        q = q0 + t0
        bd = np.full(k, np.inf)
        bi = np.full(k, -1, dtype=np.int64)
        count = 0
        ok = True
        pos = np.searchsorted(keys, qkeys[q])
        lo = max(0, pos - window // 2)
        hi = min(n, lo + window)
        lo = max(0, hi - window)
        w = hi - lo
        lb = np.empty(w)
        for t in range(w):
            lb[t] = row_linf(qamds, q, amds, key_order[lo + t])
        order = np.argsort(lb, kind="mergesort")
        for t in range(w):
            j = key_order[lo + order[t]]
            if j == self_index[q]:
                continue
            if lb[order[t]] > bd[k - 1]:
                break
            count += 1
            if not _try_candidate(qrows, qweights, qoffsets, q, rows, weights, offsets, j, bd, bi):
                ok = False
                break
        left = lo - 1
        right = hi
        while ok:
            t, left, right = next_outward(qkeys[q], keys, left, right, bd[k - 1])
            if t < 0:
                break
            j = key_order[t]
            if j == self_index[q] or row_linf(qamds, q, amds, j) > bd[k - 1]:
                continue
            count += 1
            if not _try_candidate(qrows, qweights, qoffsets, q, rows, weights, offsets, j, bd, bi):
                ok = False
        evaluated[q] = count if ok else -1
        for c in range(k):
            out_d[q, c] = bd[c]
            out_i[q, c] = bi[c]


# --------------------------------------------------------------------------- helpers


class _Threads:
    """Context manager setting numba's thread count (``None``: all cores)."""

    def __init__(self, n_jobs: int | None):
        self.n_jobs = n_jobs

    def __enter__(self):
        self.old = get_num_threads()
        if self.n_jobs is not None:
            import numba

            set_num_threads(max(1, min(int(self.n_jobs), numba.config.NUMBA_NUM_THREADS)))
        return self

    def __exit__(self, *exc):
        set_num_threads(self.old)


def _as_vectors(items, metric) -> np.ndarray:
    arr = np.asarray(items, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"metric {metric!r} takes a 2-D array (n, d) of vectors, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"metric {metric!r}: input contains NaN or infinite values")
    return arr


def _profiles():
    from . import _profiles

    return _profiles


def _block_rows(n_cols: int, bytes_per_entry: int, memory_limit_mb: float) -> int:
    return max(1, int(memory_limit_mb * 2 ** 20 // max(1, n_cols * bytes_per_entry)))


# --------------------------------------------------------------------------- public


def cdist(
    items_a,
    items_b,
    metric: str = "pdd_emd",
    n_jobs: int | None = None,
    memory_limit_mb: float = 512.0,
    out: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
    **params,
) -> np.ndarray:
    """Distances between every item of ``items_a`` and every item of ``items_b``.

    Args:
        items_a, items_b: invariants in the form the metric takes (see module docstring).
        metric: one of :func:`metric_names`.
        n_jobs: threads (default: all cores).
        memory_limit_mb: bound on the working memory of one block of rows (the output
            itself is ``out``: pass a ``numpy.memmap`` for matrices larger than memory).
        out: optional (na, nb) float64 array to write into.
        progress: optional callback ``progress(done_rows, total_rows)``.
        **params: metric parameters (``bin_width`` for ``grid_emd`` / ``rdf_emd``).

    Returns:
        (na, nb) float64 array, Angstrom.
    """
    _check_metric(metric)
    if metric == "pdd_emd":
        ra, wa, oa = pack_pdds(items_a)
        rb, wb, ob = pack_pdds(items_b)
        if ra.shape[1] != rb.shape[1]:
            raise ValueError(f"PDDs with different k ({ra.shape[1]} and {rb.shape[1]}) cannot be compared")
        na, nb = len(oa) - 1, len(ob) - 1
        per_row = nb * 8
    elif metric in _VECTOR_METRICS:
        A, B = _as_vectors(items_a, metric), _as_vectors(items_b, metric)
        if A.shape[1] != B.shape[1]:
            raise ValueError(f"vectors of different length ({A.shape[1]} and {B.shape[1]}) cannot be compared")
        na, nb = len(A), len(B)
        per_row = nb * A.shape[1] * 8
    else:
        A = np.asarray(items_a, dtype=float)
        # windowed cumulative profiles of B are prepared once, not once per block
        B = _profiles().prepare_profiles(items_b, "items_b", 2 if metric == "grid_emd" else 1)
        na, nb = len(A), B.n
        per_row = nb * 8 + A[0].size * 8
    if out is None:
        out = np.empty((na, nb))
    elif out.shape != (na, nb):
        raise ValueError(f"out has shape {out.shape}, expected {(na, nb)}")
    block = _block_rows(1, per_row, memory_limit_mb)
    if metric == "pdd_emd":
        block = min(block, max(4, _EMDS_PER_CALL // max(nb, 1)))
    from scipy.spatial.distance import cdist as _scipy_cdist

    with _Threads(n_jobs):
        for start in range(0, na, block):
            stop = min(na, start + block)
            if metric == "pdd_emd":
                buf = np.empty((stop - start, nb))
                _pdd_cdist_kernel(ra, wa, oa, rb, wb, ob, start, buf)
                bad = np.argwhere(np.isnan(buf))
                for r, j in bad:
                    buf[r, j] = pot_emd(np.asarray(items_a[start + r], float), np.asarray(items_b[j], float))
                out[start:stop] = buf
            elif metric in _VECTOR_METRICS:
                out[start:stop] = _scipy_cdist(A[start:stop], B, metric=_VECTOR_METRICS[metric])
            elif metric == "grid_emd":
                out[start:stop] = _profiles().grid_emd_cdist(A[start:stop], B, **params)
            else:
                out[start:stop] = _profiles().rdf_emd_cdist(A[start:stop], B, **params)
            if progress is not None:
                progress(stop, na)
    return out


def pdist(
    items,
    metric: str = "pdd_emd",
    n_jobs: int | None = None,
    memory_limit_mb: float = 512.0,
    progress: Callable[[int, int], None] | None = None,
    **params,
) -> np.ndarray:
    """Condensed pairwise distances, ordered as ``scipy.spatial.distance.pdist``.

    Returns:
        (n (n - 1) / 2,) float64 array, Angstrom; ``scipy.spatial.distance.squareform``
        turns it into a square matrix.
    """
    _check_metric(metric)
    if metric == "pdd_emd":
        rows, weights, offsets = pack_pdds(items)
        n = len(offsets) - 1
        out = np.empty(n * (n - 1) // 2)
        half = (n + 1) // 2
        step = max(1, _EMDS_PER_CALL // max(n, 1))  # one iteration: rows r and n - 1 - r, n - 1 EMDs
        with _Threads(n_jobs):
            for r0 in range(0, half, step):  # a Ctrl-C is seen between calls
                _pdd_pdist_kernel(rows, weights, offsets, r0, min(half, r0 + step), out)
                if progress is not None:
                    done = min(half, r0 + step)
                    progress(min(n, 2 * done), n)
        bad = np.flatnonzero(np.isnan(out))
        if bad.size:
            iu = np.triu_indices(n, 1)
            for p in bad:
                out[p] = pot_emd(np.asarray(items[iu[0][p]], float), np.asarray(items[iu[1][p]], float))
        return out
    full = cdist(items, items, metric, n_jobs=n_jobs, memory_limit_mb=memory_limit_mb, progress=progress, **params)
    return full[np.triu_indices(len(full), 1)]


def nearest_neighbours(
    items,
    k: int = 1,
    metric: str = "pdd_emd",
    queries=None,
    exclude_self: bool = True,
    n_jobs: int | None = None,
    memory_limit_mb: float = 512.0,
    return_stats: bool = False,
    **params,
):
    """Exact k nearest neighbours of each query among ``items``.

    For ``pdd_emd`` the search is pruned by the lower bound
    ``|AMD_a - AMD_b|_inf <= EMD(PDD_a, PDD_b)`` (AMDs computed from the PDDs given) and
    by its one-coordinate relaxation, which lets the search sweep outward from the query
    in a sorted order and stop once the bound exceeds the k-th best distance; the answer
    equals brute force exactly (ties are broken by the lower index, as a stable sort of
    the full row would). For ``amd_linf`` the same sweep in one coordinate's order is
    pruned by the gap in that coordinate (:mod:`._linf_knn`), also exact. Other metrics
    are computed by brute force in row blocks.

    Args:
        items: invariants of the reference set (see module docstring).
        k: neighbours per query.
        queries: invariants of the queries (default: ``items`` themselves).
        exclude_self: when ``queries`` is None, do not report an item as its own neighbour.
        return_stats: also return the fraction of pairs whose distance was evaluated.

    Returns:
        ``(distances, indices)`` of shape (n_queries, k), sorted by distance.
    """
    _check_metric(metric)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    self_query = queries is None
    n_items = len(items)
    if k > n_items - (1 if self_query and exclude_self else 0):
        raise ValueError(f"k = {k} neighbours requested but only {n_items} items (excluding the query itself)")
    if metric == "pdd_emd":
        rows, weights, offsets = pack_pdds(items)
        amds = _packed_amds(rows, weights, offsets)
        if self_query:
            qrows, qweights, qoffsets, qamds = rows, weights, offsets, amds
        else:
            qrows, qweights, qoffsets = pack_pdds(queries)
            if qrows.shape[1] != rows.shape[1]:
                raise ValueError("queries and items are PDDs of different k")
            qamds = _packed_amds(qrows, qweights, qoffsets)
        nq = len(qoffsets) - 1
        self_index = np.arange(nq) if (self_query and exclude_self) else np.full(nq, -1)
        out_d = np.empty((nq, k))
        out_i = np.empty((nq, k), dtype=np.int64)
        evaluated = np.zeros(nq, dtype=np.int64)
        # the AMD coordinate with the largest spread gives the sharpest 1-D bound
        c = int(np.argmax(amds.std(0))) if n_items > 1 else 0
        key_order = np.argsort(amds[:, c], kind="mergesort")
        keys = np.ascontiguousarray(amds[key_order, c])
        qkeys = np.ascontiguousarray(qamds[:, c])
        window = int(min(n_items, max(64, 8 * k)))
        self_index = self_index.astype(np.int64)
        with _Threads(n_jobs):
            for q0 in range(0, nq, _QUERIES_PER_CALL):  # a Ctrl-C is seen between calls
                _pdd_knn_kernel(rows, weights, offsets, amds, key_order, keys, qrows, qweights, qoffsets, qamds,
                                qkeys, k, window, self_index, q0, min(nq, q0 + _QUERIES_PER_CALL), out_d, out_i,
                                evaluated)
        failed = np.flatnonzero(evaluated < 0)
        if failed.size:  # pragma: no cover - the simplex converges in practice
            qs = items if self_query else queries
            for q in failed:
                row = np.array([pot_emd(np.asarray(qs[q], float), np.asarray(p, float)) for p in items])
                if self_query and exclude_self:
                    row[q] = np.inf
                order = np.lexsort((np.arange(len(row)), row))[:k]
                out_d[q], out_i[q] = row[order], order
                evaluated[q] = len(row)
        stats = float(evaluated.sum()) / max(1, nq * (n_items - (1 if self_query and exclude_self else 0)))
        return (out_d, out_i, stats) if return_stats else (out_d, out_i)
    if metric == "amd_linf":
        from ._linf_knn import linf_nearest_neighbours

        vectors = _as_vectors(items, metric)
        qvectors = None if self_query else _as_vectors(queries, metric)
        if qvectors is not None and qvectors.shape[1] != vectors.shape[1]:
            raise ValueError(f"vectors of different length ({qvectors.shape[1]} and {vectors.shape[1]}) cannot be compared")
        with _Threads(n_jobs):
            out_d, out_i, evaluated = linf_nearest_neighbours(vectors, k, qvectors, exclude_self)
        stats = float(evaluated.sum()) / max(1, len(out_d) * (n_items - (1 if self_query and exclude_self else 0)))
        return (out_d, out_i, stats) if return_stats else (out_d, out_i)
    # brute force in blocks
    qs = items if self_query else queries
    nq = len(qs)
    out_d = np.empty((nq, k))
    out_i = np.empty((nq, k), dtype=np.int64)
    block = _block_rows(n_items, 8, memory_limit_mb)
    for start in range(0, nq, block):
        stop = min(nq, start + block)
        D = cdist(qs[start:stop], items, metric, n_jobs=n_jobs, **params)
        if self_query and exclude_self:
            D[np.arange(stop - start), np.arange(start, stop)] = np.inf
        for r in range(stop - start):
            out_d[start + r], out_i[start + r] = _k_smallest(D[r], k)
    return (out_d, out_i, 1.0) if return_stats else (out_d, out_i)


def _k_smallest(row: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest entries of a finite 1-D ``row`` and their indices, sorted, ties broken
    by the lower index: the first k of a stable sort, in O(len(row)) (a partition, then a
    sort of the entries up to the k-th value, ties included)."""
    if k < len(row):
        kth = row[np.argpartition(row, k - 1)[k - 1]]
        candidates = np.flatnonzero(row <= kth)
    else:
        candidates = np.arange(len(row))
    order = candidates[np.lexsort((candidates, row[candidates]))][:k]
    return row[order], order


def _packed_amds(rows, weights, offsets) -> np.ndarray:
    n = len(offsets) - 1
    out = np.empty((n, rows.shape[1]))
    for i in range(n):
        s, e = offsets[i], offsets[i + 1]
        out[i] = weights[s:e] @ rows[s:e]
    return out

