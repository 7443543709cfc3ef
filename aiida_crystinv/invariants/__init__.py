"""Isometry invariants of periodic crystals. Pure numerics: no AiiDA import.

Every function takes a pymatgen ``Structure``, a ``(cell, frac_coords, species)`` tuple
or a :class:`Crystal`; lengths are in Angstrom. Bad input raises
:class:`InvalidStructureError` (a ``ValueError``) that names the structure and the fault.

* :func:`amd` -- average minimum distance AMD_k, shape (k,)
* :func:`pdd` -- pointwise distance distribution PDD_k, shape (r, k + 1), weights first
* :func:`grid` -- grouped representation of interatomic distances, (n_shells, n_bins)
* :func:`rdf` -- cell-invariant smeared radial distribution function, (n_bins,)
* :func:`composition` -- fraction-weighted element-property statistics
* :func:`element_property` -- the package's one element-property table (:mod:`.elements`)
"""

from ._crystal import Crystal, InvalidStructureError, as_crystal
from ._lattice import lll_reduce
from ._pdd import amd, neighbour_distances, pdd, pdd_to_amd
from .composition import composition, composition_feature_names
from .elements import ELEMENT_PROPERTIES, element_property, element_property_matrix, element_property_row
from .grid import grid, grid_bins
from .rdf import rdf

__all__ = [
    "Crystal",
    "InvalidStructureError",
    "as_crystal",
    "lll_reduce",
    "amd",
    "pdd",
    "pdd_to_amd",
    "neighbour_distances",
    "grid",
    "grid_bins",
    "rdf",
    "composition",
    "composition_feature_names",
    "ELEMENT_PROPERTIES",
    "element_property",
    "element_property_row",
    "element_property_matrix",
]
