"""Descriptors read off a unit cell: the classic examples of what an invariant must not be,
and the density.

* :func:`niggli_parameters` -- lengths (Angstrom) and angles (degrees) of the Niggli-reduced
  cell of the primitive cell found with a distance tolerance: independent of the given cell
  while the crystal keeps its symmetry, but it jumps as soon as a perturbation larger than
  the tolerance breaks a translational symmetry (the primitive cell grows).
* :func:`cell_parameters` -- lengths and angles of the cell as given (changes with the cell).
* :func:`density` -- mass density, g/cm^3 (invariant; does not move when atoms move).
"""

from __future__ import annotations

import functools

import numpy as np

from ._base import Descriptor, DescriptorError

__all__ = ["niggli_parameters", "niggli", "cell_parameters", "density", "mass_density"]


def _check(structure) -> None:
    if not hasattr(structure, "lattice"):
        raise DescriptorError(f"expected a pymatgen Structure, got {type(structure).__name__}")


def niggli_parameters(structure, tolerance: float = 0.01) -> np.ndarray:
    """(a, b, c, alpha, beta, gamma) of the Niggli-reduced primitive cell, shape (6,).

    Args:
        structure: pymatgen ``Structure``.
        tolerance: site-matching tolerance of pymatgen's ``get_primitive_structure``, Angstrom.
    """
    _check(structure)
    prim = structure.get_primitive_structure(tolerance=float(tolerance))
    lat = prim.lattice.get_niggli_reduced_lattice()
    return np.array([*lat.abc, *lat.angles], dtype=float)


def niggli(tolerance: float = 0.01) -> Descriptor:
    """:func:`niggli_parameters` as a descriptor (L-inf over Angstrom and degrees)."""
    if not float(tolerance) > 0:
        raise DescriptorError(f"tolerance must be a positive length in Angstrom, got {tolerance!r}")
    return Descriptor(name="niggli", compute=functools.partial(niggli_parameters, tolerance=float(tolerance)),
                      metric="chebyshev", params={"tolerance": float(tolerance)}, unit="Angstrom / degree")


def cell_parameters(structure) -> np.ndarray:
    """(a, b, c, alpha, beta, gamma) of the cell as given, shape (6,), Angstrom and degrees."""
    _check(structure)
    return np.array([*structure.lattice.abc, *structure.lattice.angles], dtype=float)


def mass_density(structure) -> np.ndarray:
    """Mass density, shape (1,), g/cm^3."""
    _check(structure)
    return np.array([float(structure.density)])


def density() -> Descriptor:
    """:func:`mass_density` as a descriptor."""
    return Descriptor(name="density", compute=mass_density, metric="chebyshev", unit="g/cm^3")
