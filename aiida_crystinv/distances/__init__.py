"""Distances between crystal invariants. Pure numerics: no AiiDA import.

Pairwise functions (one pair of invariants -> float, Angstrom unless said otherwise):

* :func:`amd_distance` -- L-inf (default), L1 or L2 between AMD vectors
* :func:`pdd_emd` -- Earth mover's distance between PDDs, Chebyshev ground metric (exact)
* :func:`grid_emd` -- exact 1-D Wasserstein distance per GRID shell, averaged over shells
* :func:`rdf_emd` -- exact 1-D Wasserstein distance between RDFs
* :func:`composition_distance` -- L1 distance between composition embeddings

Matrix functions: :func:`pdist` (condensed, like ``scipy.spatial.distance.pdist``),
:func:`cdist`, the exact nearest-neighbour search :func:`nearest_neighbours`, every pair
within a distance :func:`pairs_within` (exact, never cut by a neighbour count) and the
near-duplicate groups :func:`duplicate_groups`.
"""

from ._emd import pdd_emd
from ._matrix import amd_distance, cdist, metric_names, nearest_neighbours, pdist
from ._profiles import composition_distance, grid_emd, rdf_emd
from ._range import duplicate_groups, pairs_within

__all__ = [
    "amd_distance",
    "pdd_emd",
    "grid_emd",
    "rdf_emd",
    "composition_distance",
    "pdist",
    "cdist",
    "nearest_neighbours",
    "metric_names",
    "pairs_within",
    "duplicate_groups",
]
