"""Pointwise distance distributions (PDD) and average minimum distances (AMD).

Definitions follow Widdowson and Kurlin (NeurIPS 2022; Match 2022): for a periodic set
with motif ``M`` of ``m`` points, row ``i`` of PDD_k is the sorted list of distances from
point ``i`` to its ``k`` nearest neighbours in the whole (infinite) set, with weight
``1/m`` (or, for a disordered site, its occupancy over the total occupancy). Rows equal
within ``collapse_tol`` (Chebyshev) are merged with summed weights and the rows are sorted
lexicographically. AMD_k is the weighted mean of the PDD rows.
"""

from __future__ import annotations

import numpy as np

from ._crystal import MIN_SEPARATION, Crystal, InvalidStructureError, as_crystal
from ._kernels import collapse_kernel, knn_core, lexsort_rows
from ._lattice import reduce_crystal

__all__ = ["amd", "pdd", "pdd_to_amd", "neighbour_distances"]

#: Above this many sites, rows are computed for symmetry-distinct sites only (spglib).
SYMMETRY_MIN_SITES = 64


#: The largest neighbour count (as :data:`aiida_crystinv.specs._base.MAX_K`): a PDD row of
#: 10,000 neighbours is 80 kB; far larger k only exhausts memory.
MAX_K = 10_000


def _check_k(k: int, label: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidStructureError(f"{label}: k must be a positive integer, got {k!r}")
    if k > MAX_K:
        raise InvalidStructureError(f"{label}: k={k} is too large (at most {MAX_K})")
    return int(k)


def _distinct_sites(crystal: Crystal):
    """Representatives of symmetry-equivalent sites and their multiplicities, or None."""
    cell, frac = reduce_crystal(crystal.cell, crystal.frac)
    try:
        import spglib
    except ImportError:  # pragma: no cover - spglib is a dependency
        return None
    # species label per site: symbol+occupancy, so differently occupied sites never merge
    labels = {}
    numbers = np.array([labels.setdefault(s, len(labels)) for s in crystal.species])
    data = spglib.get_symmetry_dataset((cell, frac, numbers), symprec=1e-5)
    if data is None:
        return None
    equiv = np.asarray(data.equivalent_atoms)
    reps, counts = np.unique(equiv, return_counts=True)
    if len(reps) == crystal.n_sites:
        return None
    return reps, counts


def neighbour_distances(structure, k: int, label: str | None = None):
    """Sorted distances from each (symmetry-distinct) site to its k nearest neighbours.

    Args:
        structure: anything :func:`~aiida_crystinv.invariants.as_crystal` accepts.
        k: number of neighbours, >= 1.

    Returns:
        ``(weights, dists)``: weights (r,) summing to 1 and dists (r, k) in Angstrom, one
        row per site (or per symmetry-distinct site, with its multiplicity in the weight).

    Raises:
        InvalidStructureError: bad structure, bad ``k``, or overlapping atoms.
    """
    crystal = as_crystal(structure, label=label, check_overlap=False)
    k = _check_k(k, crystal.label)
    occ = crystal.occupancy
    sym = _distinct_sites(crystal) if crystal.n_sites >= SYMMETRY_MIN_SITES else None
    if sym is None:
        rows, weights = np.arange(crystal.n_sites), occ.copy()
    else:
        rows, counts = sym
        weights = occ[rows] * counts
    dists, _ = knn_core(crystal.cell, crystal.frac, rows, k)
    bad = np.flatnonzero(dists[:, 0] < MIN_SEPARATION)
    if bad.size:
        i = int(rows[bad[0]])
        raise InvalidStructureError(
            f"{crystal.label}: site {i} has a neighbour {dists[bad[0], 0]:.3g} A away "
            f"(overlapping atoms, or a lattice vector shorter than {MIN_SEPARATION} A)"
        )
    return weights / weights.sum(), dists


def pdd(structure, k: int, collapse: bool = True, collapse_tol: float = 1e-4, label: str | None = None) -> np.ndarray:
    """Pointwise distance distribution PDD_k.

    Args:
        structure: a pymatgen ``Structure``, ``(cell, frac_coords, species)`` or ``Crystal``.
        k: number of nearest neighbours per point (>= 1).
        collapse: merge rows equal within ``collapse_tol``.
        collapse_tol: Chebyshev tolerance for merging rows, Angstrom (default 1e-4, as in
            ``average-minimum-distance``).

    Returns:
        (r, k + 1) array: column 0 holds the row weights (summing to 1), columns 1..k the
        sorted neighbour distances in Angstrom; rows sorted lexicographically.
    """
    weights, dists = neighbour_distances(structure, k, label=label)
    if collapse:
        weights, dists = collapse_kernel(weights, dists, float(collapse_tol))
    else:
        order = lexsort_rows(dists)
        weights, dists = weights[order], dists[order]
    out = np.empty((len(dists), k + 1))
    out[:, 0] = weights
    out[:, 1:] = dists
    return out


def amd(structure, k: int, label: str | None = None) -> np.ndarray:
    """Average minimum distance AMD_k: (k,) array, Angstrom.

    Entry ``j`` is the (occupancy-)weighted mean over motif points of the distance to the
    ``j+1``-th nearest neighbour. Invariant under any change of cell, origin, rotation or
    atom order, and 2-Lipschitz in L-inf under perturbations of the atoms.
    """
    weights, dists = neighbour_distances(structure, k, label=label)
    return weights @ dists


def pdd_to_amd(pdd_array: np.ndarray) -> np.ndarray:
    """AMD from a PDD (weights in column 0): (k,) array."""
    p = np.asarray(pdd_array, dtype=float)
    return p[:, 0] @ p[:, 1:]
