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

from ._crystal import (
    MIN_SEPARATION,
    MIN_VOLUME_PER_SITE,
    Crystal,
    InvalidStructureError,
    as_crystal,
    check_geometry,
    default_label,
    pymatgen_arrays,
)
from ._kernels import collapse_kernel, lexsort_rows
from ._neighbour_kernel import STATUS_OK, neighbour_kernel
from ._lattice import reduce_crystal

__all__ = ["amd", "pdd", "pdd_to_amd", "neighbour_distances"]

#: Above this many sites, rows are computed for symmetry-distinct sites only (spglib).
SYMMETRY_MIN_SITES = 64


#: The largest neighbour count (as :data:`aiida_crystinv.specs._base.MAX_K`): a PDD row of
#: 10,000 neighbours is 80 kB; far larger k only exhausts memory.
MAX_K = 10_000


def _k_is_valid(k) -> bool:
    return not isinstance(k, bool) and isinstance(k, (int, np.integer)) and 1 <= k <= MAX_K


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

    A pymatgen ``Structure`` of fewer than :data:`SYMMETRY_MIN_SITES` sites whose species
    are plain elements takes the fast path: its arrays are read as they are
    (:func:`~aiida_crystinv.invariants._crystal.pymatgen_arrays`) and the compiled kernel
    checks them in the same pass as the neighbour search; the structure's name (its
    formula) is computed only if an error is raised. Anything else goes through
    :func:`~aiida_crystinv.invariants.as_crystal` first. Both paths raise the same
    errors for the same input.

    Args:
        structure: anything :func:`~aiida_crystinv.invariants.as_crystal` accepts.
        k: number of neighbours, >= 1.

    Returns:
        ``(weights, dists)``: weights (r,) summing to 1 and dists (r, k) in Angstrom, one
        row per site (or per symmetry-distinct site, with its multiplicity in the weight).

    Raises:
        InvalidStructureError: bad structure, bad ``k``, or overlapping atoms.
    """
    fast = pymatgen_arrays(structure, max_sites=SYMMETRY_MIN_SITES - 1)
    if fast is not None:
        cell, frac, weights = fast
        if not _k_is_valid(k):
            as_crystal(structure, label=label, check_overlap=False)  # a bad structure is named first
            _check_k(k, label or default_label(structure))
        rows = np.arange(len(frac))
        crystal = None
    else:
        crystal = as_crystal(structure, label=label, check_overlap=False)
        k = _check_k(k, crystal.label)
        occ = crystal.occupancy
        sym = _distinct_sites(crystal) if crystal.n_sites >= SYMMETRY_MIN_SITES else None
        if sym is None:
            rows, weights = np.arange(crystal.n_sites), occ.copy()
        else:
            rows, counts = sym
            weights = occ[rows] * counts
        cell, frac = crystal.cell, crystal.frac
    status, bad, dists = neighbour_kernel(
        np.ascontiguousarray(cell, dtype=float), np.ascontiguousarray(frac, dtype=float),
        np.ascontiguousarray(rows, dtype=np.int64), int(k), MIN_VOLUME_PER_SITE, MIN_SEPARATION,
    )
    if status != STATUS_OK or bad >= 0:
        name = crystal.label if crystal is not None else (label or default_label(structure))
        if status != STATUS_OK:
            check_geometry(np.asarray(cell, dtype=float), np.asarray(frac, dtype=float), name)
            raise InvalidStructureError(f"{name}: the cell or the coordinates are not usable")  # pragma: no cover
        raise InvalidStructureError(
            f"{name}: site {int(rows[bad])} has a neighbour {dists[bad, 0]:.3g} A away "
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
    if collapse and not (isinstance(collapse_tol, (int, float, np.integer, np.floating)) and not isinstance(collapse_tol, bool)
                         and np.isfinite(collapse_tol) and collapse_tol >= 0):
        raise ValueError(f"collapse_tol must be a finite number >= 0 (Angstrom), got {collapse_tol!r}")
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
