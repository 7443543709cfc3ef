"""Lattice reduction and exact periodic neighbour search.

The search is exact by construction, not by a heuristic cut-off:

* the cell is LLL-reduced first (for speed only: the bound below holds for any basis);
* for a vector ``v = x @ cell`` and reciprocal vectors ``b_a`` (columns of ``inv(cell)``),
  ``|x_a| <= |v| * |b_a|``; so every lattice point within radius ``r`` of a motif point is
  among the translations ``n`` with ``|n_a| <= ceil(r |b_a| + 1/2)`` once the pair offset is
  wrapped into ``[-1/2, 1/2)``;
* the radius is grown until the k-th neighbour distance of every motif point is inside the
  radius already covered, which proves the k neighbours found are the k nearest.
"""

from __future__ import annotations

import math

import numpy as np

from ._kernels import knn_core, lll_kernel

__all__ = ["lll_reduce", "reduce_crystal", "knn_distances", "neighbours_within", "min_pair_distance"]


def lll_reduce(cell: np.ndarray, delta: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """LLL-reduce a 3x3 basis (rows).

    Returns:
        ``(reduced, T)`` with ``reduced = T @ cell`` and ``T`` an integer unimodular matrix
        with determinant +1 (so the handedness of the cell is kept).
    """
    reduced, T = lll_kernel(np.ascontiguousarray(cell, dtype=float), delta)
    return reduced, np.rint(T).astype(np.int64)


def reduce_crystal(cell: np.ndarray, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return an LLL-reduced cell and the motif's fractional coordinates in it, in [0, 1)."""
    reduced, T = lll_kernel(np.ascontiguousarray(cell, dtype=float), 0.75)
    # cart = frac @ cell = frac' @ T @ cell  =>  frac' = frac @ inv(T)
    new = frac @ np.linalg.inv(T)
    new -= np.floor(new)
    new[new >= 1.0] = 0.0
    return reduced, new


def _translations(cell: np.ndarray, radius: float) -> np.ndarray:
    """(T, 3) integer translations covering every vector of length <= radius."""
    recip_norm = np.linalg.norm(np.linalg.inv(cell), axis=0)
    nmax = [int(math.ceil(radius * r + 0.5)) for r in recip_norm]
    axes = [np.arange(-m, m + 1) for m in nmax]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    # order by length so the zero translation is first and near cells come first
    lengths = np.linalg.norm(grid @ cell, axis=1)
    return grid[np.argsort(lengths, kind="stable")]


def _pair_offsets(frac_a: np.ndarray, frac_b: np.ndarray) -> np.ndarray:
    """(ma, mb, 3) fractional offsets b - a wrapped into [-1/2, 1/2)."""
    d = frac_b[None, :, :] - frac_a[:, None, :]
    return d - np.floor(d + 0.5)


def knn_distances(
    cell: np.ndarray,
    frac: np.ndarray,
    k: int,
    rows: np.ndarray | None = None,
    return_index: bool = False,
):
    """Exact distances from motif points to their k nearest neighbours in the periodic set.

    The point itself is excluded; its own translates are included.

    Args:
        cell: (3, 3) lattice vectors as rows, Angstrom. Should be reduced for speed.
        frac: (m, 3) fractional coordinates in [0, 1).
        k: number of neighbours, >= 1.
        rows: indices of the motif points whose neighbours are wanted (default: all).
        return_index: also return the motif index of each neighbour.

    Returns:
        ``dist`` of shape (len(rows), k), each row sorted ascending, Angstrom; and with
        ``return_index`` an int array of the same shape with the motif index of each
        neighbour.
    """
    frac = np.ascontiguousarray(frac, dtype=float)
    rows = np.arange(len(frac), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    dist, index = knn_core(np.ascontiguousarray(cell, dtype=float), frac, rows, int(k))
    return (dist, index) if return_index else dist


def neighbours_within(cell: np.ndarray, frac: np.ndarray, cutoff: float, max_block: int = 4_000_000):
    """All neighbours of every motif point within ``cutoff`` Angstrom (self excluded).

    Returns:
        ``(i, j, d)``: flat arrays; ``d[n]`` is the distance from motif point ``i[n]`` to a
        translate of motif point ``j[n]``, ``0 < d <= cutoff``.
    """
    m = len(frac)
    trans = _translations(cell, cutoff)
    tcart = trans @ cell
    nt = len(trans)
    block = max(1, max_block // max(1, m * nt))
    out_i, out_j, out_d = [], [], []
    for start in range(0, m, block):
        sel = np.arange(start, min(m, start + block))
        off = _pair_offsets(frac[sel], frac) @ cell
        pts = off[:, :, None, :] + tcart[None, None, :, :]
        d = np.sqrt(np.einsum("bmtc,bmtc->bmt", pts, pts))
        d[np.arange(len(sel)), sel, 0] = np.inf
        bi, bj, _ = np.nonzero(d <= cutoff)
        out_i.append(sel[bi])
        out_j.append(bj)
        out_d.append(d[d <= cutoff])
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


def min_pair_distance(cell: np.ndarray, frac: np.ndarray) -> tuple[float, int, int]:
    """Smallest distance from a motif point to any other point of the periodic set, Angstrom.

    Returns ``(d, i, j)``: motif point ``i`` is ``d`` away from a translate of motif point
    ``j`` (``j == i`` when the lattice itself is shorter than every pair distance).
    """
    reduced, rfrac = reduce_crystal(cell, frac)
    dist, index = knn_distances(reduced, rfrac, 1, return_index=True)
    i = int(np.argmin(dist[:, 0]))
    return float(dist[i, 0]), i, int(index[i, 0])
