"""Composition embedding: fraction-weighted statistics of element properties.

For a structure with element fractions ``f_e`` (occupancy-weighted over all sites and
normalised to sum 1; a vacancy contributes nothing) and a numeric element property
``x_e`` (from :class:`pymatgen.core.periodic_table.Element`), the statistics are

* ``mean``  = sum_e f_e x_e
* ``std``   = sqrt(sum_e f_e (x_e - mean)^2)      (population spread)
* ``min`` / ``max`` over the elements present
* ``range`` = max - min

The embedding depends only on the composition, so it is trivially invariant under any
change of cell, and it is continuous in the occupancies through ``mean`` and ``std``.

Missing property values
-----------------------
Property values come from :mod:`aiida_crystinv.invariants.elements`, the one element
table of the package (the learning features read the same one). pymatgen has no value
for some element/property combinations (for example no Pauling electronegativity ``X``
for He, Ne and Ar, no ``atomic_radius`` for some noble gases and heavy elements). A
missing value is replaced by the median of that property over the elements H..Pu
(Z = 1..94) that have one -- robust to the skewed distributions of melting points, bulk
moduli, molar volumes -- so every feature is finite and the rule is the same for every
structure. Use :func:`missing_properties` (``properties=DEFAULT_PROPERTIES`` for the
defaults here) to see which values were imputed.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._crystal import InvalidStructureError, as_crystal
from .elements import ElementPropertyError, element_property, missing_properties

__all__ = [
    "composition",
    "composition_feature_names",
    "element_property",
    "missing_properties",
    "DEFAULT_PROPERTIES",
    "DEFAULT_STATS",
    "STATS",
]

#: Element properties used by default (attribute names of pymatgen's ``Element``).
DEFAULT_PROPERTIES: tuple[str, ...] = (
    "Z",
    "X",
    "atomic_radius",
    "row",
    "group",
    "atomic_mass",
    "mendeleev_no",
    "electron_affinity",
    "ionization_energy",
    "melting_point",
    "molar_volume",
)
#: Every statistic :func:`composition` knows.
STATS: tuple[str, ...] = ("mean", "std", "min", "max", "range")
#: Statistics used by default.
DEFAULT_STATS: tuple[str, ...] = STATS


class CompositionParameterError(ValueError):
    """An unknown or non-numeric property, or an unknown statistic."""


def _check_names(properties: Sequence[str], stats: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if isinstance(properties, str) or isinstance(stats, str):
        raise CompositionParameterError("properties and stats must be sequences of names, not a string")
    properties = tuple(properties)
    stats = tuple(stats)
    if not properties:
        raise CompositionParameterError("properties must name at least one element property")
    if not stats:
        raise CompositionParameterError(f"stats must name at least one of {STATS}")
    bad = [s for s in stats if s not in STATS]
    if bad:
        raise CompositionParameterError(f"unknown statistic(s) {bad}; choose from {STATS}")
    for p in properties:
        if not isinstance(p, str):
            raise CompositionParameterError(f"property names must be strings, got {p!r}")
        try:
            element_property("H", p)  # raises for unknown / non-numeric properties
        except ElementPropertyError as exc:
            raise CompositionParameterError(str(exc)) from None
    return properties, stats


def composition_feature_names(
    properties: Sequence[str] = DEFAULT_PROPERTIES, stats: Sequence[str] = DEFAULT_STATS
) -> list[str]:
    """Names of the entries of :func:`composition`, e.g. ``"X_mean"``: property-major order."""
    properties, stats = _check_names(properties, stats)
    return [f"{p}_{s}" for p in properties for s in stats]


def _fractions(structure, label: str | None) -> dict[str, float]:
    try:
        from pymatgen.core import Composition
    except ImportError:  # pragma: no cover
        Composition = ()  # type: ignore[assignment]
    if isinstance(structure, (str, dict)) or (Composition and isinstance(structure, Composition)):
        try:
            comp = Composition(structure)
        except Exception as exc:  # noqa: BLE001 - pymatgen raises several types
            raise InvalidStructureError(f"{label or structure!r}: not a valid composition ({exc})") from None
        amounts = {}
        for sp, amt in comp.items():
            el = getattr(sp, "symbol", None) or getattr(getattr(sp, "element", None), "symbol", str(sp))
            amounts[el] = amounts.get(el, 0.0) + float(amt)
        if not amounts or any(a < 0 for a in amounts.values()):
            raise InvalidStructureError(f"{label or structure!r}: empty or negative composition")
        from pymatgen.core.periodic_table import Element

        for el in amounts:
            if not Element.is_valid_symbol(el):
                raise InvalidStructureError(f"{label or structure!r}: unknown element {el!r}")
    else:
        amounts = as_crystal(structure, label=label, check_overlap=False).element_fractions()
    total = sum(amounts.values())
    if not total > 0:
        raise InvalidStructureError(f"{label or 'structure'}: the composition has no atoms")
    return {el: a / total for el, a in amounts.items() if a > 0}


def composition(
    structure,
    properties: Sequence[str] = DEFAULT_PROPERTIES,
    stats: Sequence[str] = DEFAULT_STATS,
    label: str | None = None,
) -> np.ndarray:
    """Fraction-weighted statistics of element properties.

    Args:
        structure: a pymatgen ``Structure`` (ordered or disordered), ``(cell, frac_coords,
            species)`` tuple, :class:`~aiida_crystinv.invariants.Crystal`, or a composition
            (pymatgen ``Composition``, formula string or ``{element: amount}`` dict).
            Element fractions are occupancy-weighted and normalised to 1.
        properties: numeric attributes of pymatgen's ``Element`` or the derived ``block``
            and ``n_valence`` (:mod:`~aiida_crystinv.invariants.elements`; default
            :data:`DEFAULT_PROPERTIES`); missing values are imputed (module docs).
        stats: any of ``mean, std, min, max, range`` (default: all five).

    Returns:
        (len(properties) * len(stats),) float array in the order of
        :func:`composition_feature_names` (property-major). Units are those of pymatgen
        (Angstrom for radii, amu for masses, eV for energies, K for melting points).

    Raises:
        ValueError: unknown property or statistic, or an invalid structure.
    """
    properties, stats = _check_names(properties, stats)
    fr = _fractions(structure, label)
    elements = sorted(fr)
    f = np.array([fr[e] for e in elements])
    out = np.empty(len(properties) * len(stats))
    n = 0
    for p in properties:
        x = np.array([element_property(e, p) for e in elements])
        mean = float(f @ x)
        for s in stats:
            if s == "mean":
                v = mean
            elif s == "std":
                v = math.sqrt(max(float(f @ (x - mean) ** 2), 0.0))
            elif s == "min":
                v = float(x.min())
            elif s == "max":
                v = float(x.max())
            else:  # range
                v = float(x.max() - x.min())
            out[n] = v
            n += 1
    return out
