"""Lattice reduction and the exact periodic neighbour search (Python entry points).

The compiled kernels are in :mod:`._kernels`; its docstring gives the exactness argument.
The cell is LLL-reduced before every search: the bound used is valid for any basis, but a
skewed basis would need far more lattice translations.
"""

from __future__ import annotations

import numpy as np

from ._kernels import knn_core, lll_kernel

__all__ = ["lll_reduce", "reduce_crystal", "knn_distances", "min_pair_distance"]


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


def min_pair_distance(cell: np.ndarray, frac: np.ndarray) -> tuple[float, int, int]:
    """Smallest distance from a motif point to any other point of the periodic set, Angstrom.

    Returns ``(d, i, j)``: motif point ``i`` is ``d`` away from a translate of motif point
    ``j`` (``j == i`` when the lattice itself is shorter than every pair distance).
    """
    reduced, rfrac = reduce_crystal(cell, frac)
    dist, index = knn_distances(reduced, rfrac, 1, return_index=True)
    i = int(np.argmin(dist[:, 0]))
    return float(dist[i, 0]), i, int(index[i, 0])
