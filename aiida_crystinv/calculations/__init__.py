"""Calcfunctions of aiida-crystinv (see :mod:`aiida_crystinv.calculations.functions`)."""

from .functions import (
    collect_structures,
    compute_distances,
    compute_invariant_set,
    compute_invariants,
    extract_structures,
    import_dataset,
    import_materials_project,
    merge_invariants,
    compute_neighbours,
    structure_invariants,
)

__all__ = [
    "import_dataset",
    "import_materials_project",
    "compute_invariants",
    "compute_invariant_set",
    "merge_invariants",
    "compute_distances",
    "compute_neighbours",
    "structure_invariants",
    "extract_structures",
    "collect_structures",
]
