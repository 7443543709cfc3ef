"""A periodic crystal as plain arrays, validated once, shared by every invariant.

Everything in :mod:`aiida_crystinv.invariants` accepts any of

* a :class:`pymatgen.core.Structure` (ordered or disordered),
* a tuple ``(cell, frac_coords, species)`` of array-likes,
* a :class:`Crystal`.

and turns it into a :class:`Crystal` with :func:`as_crystal`, which checks the input and
raises :class:`InvalidStructureError` (a ``ValueError``) naming the structure and what is
wrong with it.

Disorder rule
-------------
A site of a disordered structure (partial occupancy, mixed species or vacancies) is one
point of the periodic set. Its *weight* is its total occupancy (at most 1), so a
half-occupied site contributes half as much to PDD rows, AMD, GRID and RDF as a fully
occupied one. Its species for composition and partial RDFs are the occupancy-weighted
mixture. Geometry (distances) ignores occupancy: a point is either there or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Sequence

import numpy as np

__all__ = ["Crystal", "InvalidStructureError", "as_crystal", "default_label", "pymatgen_arrays", "check_geometry",
           "MIN_SEPARATION", "MIN_VOLUME_PER_SITE"]

#: Two sites closer than this (Angstrom) are "overlapping atoms" and rejected.
MIN_SEPARATION = 0.1
#: Cells with a smaller volume per site than this (Angstrom^3) are rejected as degenerate.
MIN_VOLUME_PER_SITE = 1e-3


class InvalidStructureError(ValueError):
    """A structure that no invariant can be computed for; the message says why."""


@dataclass(frozen=True)
class Crystal:
    """A periodic set of points with species.

    Attributes:
        cell: (3, 3) float array, lattice vectors as rows, Angstrom.
        frac: (m, 3) float array, fractional coordinates of the motif, wrapped to [0, 1).
        species: length-m tuple; entry ``i`` is a tuple of ``(element_symbol, occupancy)``
            pairs (one pair for an ordered site).
        label: a name used in error messages.
    """

    cell: np.ndarray
    frac: np.ndarray
    species: tuple = field(repr=False)
    label: str = "structure"

    @property
    def n_sites(self) -> int:
        return int(self.frac.shape[0])

    @cached_property
    def occupancy(self) -> np.ndarray:
        """(m,) total occupancy of each site, in (0, 1]."""
        return np.array([sum(o for _, o in s) for s in self.species], dtype=float)

    @property
    def volume(self) -> float:
        """Cell volume in Angstrom^3."""
        return float(abs(np.linalg.det(self.cell)))

    @property
    def cart(self) -> np.ndarray:
        """(m, 3) Cartesian coordinates, Angstrom."""
        return self.frac @ self.cell

    @property
    def is_ordered(self) -> bool:
        return all(len(s) == 1 and abs(s[0][1] - 1.0) < 1e-12 for s in self.species)

    def element_fractions(self) -> dict[str, float]:
        """Occupancy-weighted amount of each element per cell (not normalised)."""
        out: dict[str, float] = {}
        for site in self.species:
            for el, occ in site:
                out[el] = out.get(el, 0.0) + occ
        return out


def _species_of_pymatgen_site(site) -> tuple:
    pairs = []
    for sp, occ in site.species.items():
        el = getattr(sp, "symbol", None) or getattr(getattr(sp, "element", None), "symbol", None)
        if el is None:  # DummySpecies and the like
            el = str(sp)
        pairs.append((el, float(occ)))
    return tuple(pairs)


def _species_from_spec(spec: Any) -> tuple:
    """Accept 'Fe', 26, ('Fe', 0.5) pairs or {'Fe': 0.5, 'Ni': 0.5}."""
    from pymatgen.core.periodic_table import Element

    def symbol(x):
        if isinstance(x, (int, np.integer)):
            return Element.from_Z(int(x)).symbol
        return str(x)

    if isinstance(spec, dict):
        return tuple((symbol(k), float(v)) for k, v in spec.items())
    if isinstance(spec, (list, tuple)) and spec and isinstance(spec[0], (list, tuple)):
        return tuple((symbol(k), float(v)) for k, v in spec)
    return ((symbol(spec), 1.0),)


def _check_elements(species: tuple, label: str) -> None:
    from pymatgen.core.periodic_table import Element

    for site in species:
        for el, _ in site:
            if not Element.is_valid_symbol(el):
                raise InvalidStructureError(f"{label}: unknown element {el!r}")


def default_label(obj: Any) -> str:
    """The name :func:`as_crystal` gives ``obj`` in error messages when no label is given.

    A pymatgen ``Structure`` is named by its reduced formula, anything else ``structure``.
    Computing the formula costs about as much as the neighbour search of a small crystal,
    so the fast paths call this only when an error is raised.
    """
    if hasattr(obj, "lattice") and hasattr(obj, "frac_coords"):
        try:
            return str(obj.composition.reduced_formula)
        except Exception:  # noqa: BLE001 - a label is cosmetic
            return "structure"
    if isinstance(obj, Crystal):
        return obj.label
    return "structure"


_SPECIES_TYPES: tuple = ()


def _species_types() -> tuple:
    """The types of a pymatgen site's species that are always a valid element (``Element``,
    ``Species``; not ``DummySpecies``), imported on first use."""
    global _SPECIES_TYPES
    from pymatgen.core.periodic_table import Element, Species

    _SPECIES_TYPES = (Element, Species)
    return _SPECIES_TYPES


def pymatgen_arrays(obj: Any, max_sites: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(cell, frac, occupancy)`` of a common pymatgen ``Structure``, read with the least work.

    The fast path of :func:`~aiida_crystinv.invariants.amd` and
    :func:`~aiida_crystinv.invariants.pdd`. It reads the lattice matrix, the sites'
    fractional coordinates and their species' amounts, and accepts a structure only if
    every species is an ``Element`` or ``Species`` (always a valid element) and every site's
    occupancies pass the rule of :func:`as_crystal` (each in (0, 1], their sum at most 1).
    No formula and no strings are made. The numeric checks (finite numbers, a cell that is
    not degenerate, overlapping atoms) are left to the compiled kernel, which does them
    in the same pass as the neighbour search.

    Returns:
        ``cell`` (3, 3) (the structure's own array, not a copy: do not modify it),
        ``frac`` (m, 3) as stored (not wrapped) and ``occupancy`` (m,); or ``None`` when
        ``obj`` is not a plain pymatgen ``Structure``, is empty, has more than
        ``max_sites`` sites, or anything needs the full path (:func:`as_crystal`), which
        then raises the right error or handles the case.
    """
    cls = type(obj)  # not hasattr(obj, ...): that would compute the frac_coords property
    if not (hasattr(cls, "lattice") and hasattr(cls, "frac_coords") and hasattr(cls, "sites")):
        return None
    valid = _SPECIES_TYPES or _species_types()
    try:
        sites = obj.sites
        n = len(sites)
        if n == 0 or (max_sites is not None and n > max_sites):
            return None
        cell = obj.lattice.matrix
        if not isinstance(cell, np.ndarray) or cell.shape != (3, 3) or cell.dtype != np.float64:
            return None
        # private attributes: several times faster than the properties and Mapping views;
        # a pymatgen without them lands in the AttributeError branch (the full path)
        frac = np.array([site._frac_coords for site in sites], dtype=float)
        occupancy = np.empty(n)
        for i, site in enumerate(sites):
            amounts = site._species._data
            if len(amounts) == 1:
                for sp, occ in amounts.items():
                    if type(sp) not in valid or not 0.0 < occ <= 1.0 + 1e-6:
                        return None
            else:
                occ = 0.0
                for sp, o in amounts.items():
                    if type(sp) not in valid or not 0.0 < o <= 1.0 + 1e-6:
                        return None
                    occ += o
                if not 0.0 < occ <= 1.0 + 1e-6:
                    return None
            occupancy[i] = occ
    except (AttributeError, TypeError, ValueError):
        return None
    if frac.shape != (n, 3):
        return None
    return cell, frac, occupancy


def as_crystal(obj: Any, label: str | None = None, check_overlap: bool = True) -> Crystal:
    """Convert and validate a structure.

    Args:
        obj: a pymatgen ``Structure``, a ``(cell, frac_coords, species)`` tuple or a
            :class:`Crystal`.
        label: name used in error messages (defaults to the formula).
        check_overlap: reject sites closer than :data:`MIN_SEPARATION` Angstrom.

    Raises:
        InvalidStructureError: empty structure, non-finite numbers, a degenerate (zero
            volume) cell, occupancies outside (0, 1] (or NaN), unknown elements, overlapping
            atoms. A left-handed cell (negative determinant) is valid and kept as given.
    """
    if isinstance(obj, Crystal):
        return obj if label is None else Crystal(obj.cell, obj.frac, obj.species, label)
    if hasattr(obj, "lattice") and hasattr(obj, "frac_coords"):
        if label is None:
            label = default_label(obj)
        if len(obj) == 0:
            raise InvalidStructureError(f"{label}: the structure has no sites")
        cell = np.array(obj.lattice.matrix, dtype=float)
        frac = np.array(obj.frac_coords, dtype=float)
        species = tuple(_species_of_pymatgen_site(s) for s in obj)
    elif isinstance(obj, (tuple, list)) and len(obj) == 3:
        label = label or "structure"
        try:
            cell = np.array(obj[0], dtype=float)
            frac = np.array(obj[1], dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidStructureError(f"{label}: cell and coordinates must be numeric ({exc})") from None
        if frac.size == 0:
            raise InvalidStructureError(f"{label}: the structure has no sites")
        species_in: Sequence = obj[2]
        if len(species_in) != len(frac):
            raise InvalidStructureError(
                f"{label}: {len(frac)} coordinates but {len(species_in)} species"
            )
        try:
            species = tuple(_species_from_spec(s) for s in species_in)
        except ValueError as exc:
            raise InvalidStructureError(f"{label}: bad species ({exc})") from None
    else:
        raise InvalidStructureError(
            f"expected a pymatgen Structure, a (cell, frac_coords, species) tuple or a Crystal, "
            f"got {type(obj).__name__}"
        )

    check_geometry(cell, frac, label)
    _check_elements(species, label)
    for i, site in enumerate(species):
        occ = sum(o for _, o in site)
        if not site or not all(0.0 < o <= 1.0 + 1e-6 for _, o in site) or not occ <= 1.0 + 1e-6:
            raise InvalidStructureError(
                f"{label}: site {i} has occupancy {occ:g}; occupancies must be in (0, 1]"
            )
    frac = frac - np.floor(frac)
    frac[frac >= 1.0] = 0.0
    crystal = Crystal(cell=cell, frac=frac, species=species, label=label)
    if check_overlap and len(frac) > 1:
        _check_overlap(crystal)
    return crystal


def check_geometry(cell: np.ndarray, frac: np.ndarray, label: str) -> None:
    """The numeric checks of :func:`as_crystal`, in its order; raise on the first that fails.

    Shapes, finite numbers, and a cell volume above :data:`MIN_VOLUME_PER_SITE` per site.
    """
    if cell.shape != (3, 3):
        raise InvalidStructureError(f"{label}: the cell must be 3x3, got shape {cell.shape}")
    if frac.ndim != 2 or frac.shape[1] != 3:
        raise InvalidStructureError(f"{label}: coordinates must have shape (n, 3), got {frac.shape}")
    if len(frac) == 0:
        raise InvalidStructureError(f"{label}: the structure has no sites")
    if not np.all(np.isfinite(cell)):
        raise InvalidStructureError(f"{label}: the cell contains NaN or infinite values")
    if not np.all(np.isfinite(frac)):
        bad = int(np.argwhere(~np.isfinite(frac))[0, 0])
        raise InvalidStructureError(f"{label}: site {bad} has NaN or infinite coordinates")
    # A left-handed cell (negative determinant) describes a crystal as well as a right-handed
    # one: only the size of the volume matters here. Every invariant works with distances
    # (and |det|), so it gives the same values as for the right-handed description.
    volume = abs(float(np.linalg.det(cell)))
    if not volume > MIN_VOLUME_PER_SITE * len(frac):
        raise InvalidStructureError(
            f"{label}: the cell is degenerate (volume {volume:.3g} A^3 for {len(frac)} site(s)); "
            "the three lattice vectors must be linearly independent"
        )


def _check_overlap(crystal: Crystal) -> None:
    from ._lattice import min_pair_distance

    d, i, j = min_pair_distance(crystal.cell, crystal.frac)
    if d < MIN_SEPARATION:
        raise InvalidStructureError(
            f"{crystal.label}: sites {i} and {j} overlap (they are {d:.3g} A apart, "
            f"closer than {MIN_SEPARATION} A)"
        )
