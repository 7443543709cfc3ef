"""Element properties: the one table the package reads them from. Pure: numpy + pymatgen.

Values come from pymatgen's :class:`~pymatgen.core.periodic_table.Element` data, as
floats in pymatgen's units (Angstrom for radii, amu for masses, eV for energies, K for
melting points, GPa for bulk moduli, cm^3/mol for molar volumes). Any numeric attribute
of ``Element`` can be asked for by name, plus two derived ones:

* ``block`` -- the block as a number: s = 0, p = 1, d = 2, f = 3 (pymatgen's is a letter);
* ``n_valence`` -- valence electrons: s and p block from the group (1, 2, 13..18 ->
  1, 2, 3..8), d block the group, f block 3.

:data:`ELEMENT_PROPERTIES` are the 18 columns the learning features
(:mod:`aiida_crystinv.learning.descriptors`) use; the composition invariant
(:mod:`aiida_crystinv.invariants.composition`) uses any properties you name. Both read
them here, so a property of an element has one value in the whole package.

Missing values
--------------
pymatgen has no value for some element/property pairs: no Pauling electronegativity
``X`` for He, Ne and Ar, no ``atomic_radius`` for He, Ne, Kr, Xe, At, Rn and Fr, no
``bulk_modulus`` for 25 of the elements H..Pu, none of several properties for the
heaviest elements. A value that is missing (``None``, NaN, or pymatgen raising for it)
is replaced by the **median of that property over the elements H..Pu (Z = 1..94) that
have one**, so every element gets a full, finite row and the rule is the same for every
structure and every property. Why this rule:

* the median, not the mean, because the distributions are skewed with long tails
  (over H..Pu melting points run from 0.95 K to 3800 K, bulk moduli from 1.1 GPa to
  380 GPa with a mean of 91 GPa but a median of 45 GPa, molar volumes of the heavy alkali
  metals are ten times those of the late transition metals): a few extreme elements
  drag the mean away from any typical element, the median is a typical element's value;
* over H..Pu, because those are the elements of real materials and of the structure
  databases; the data of the elements past Pu are sparse and largely estimates, so they
  get rows (filled by the same rule) but do not set the fill values.

:func:`missing_properties` says which values of given elements are imputed and
:func:`fill_value` what they are imputed with.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Sequence

import numpy as np

__all__ = [
    "ELEMENT_PROPERTIES",
    "DERIVED_PROPERTIES",
    "FILL_Z",
    "ElementPropertyError",
    "element_property",
    "element_property_row",
    "element_property_matrix",
    "fill_value",
    "missing_properties",
]

#: The 18 properties (columns) of the learning features, in column order, with units.
ELEMENT_PROPERTIES: tuple[str, ...] = (
    "Z",  # atomic number
    "row",  # period
    "group",  # 1..18
    "X",  # Pauling electronegativity
    "atomic_radius",  # Angstrom (empirical)
    "atomic_radius_calculated",  # Angstrom
    "average_ionic_radius",  # Angstrom
    "atomic_mass",  # amu
    "mendeleev_no",
    "ionization_energy",  # eV (first)
    "electron_affinity",  # eV
    "molar_volume",  # cm^3/mol (elemental solid)
    "melting_point",  # K
    "bulk_modulus",  # GPa (elemental solid)
    "block",  # s=0, p=1, d=2, f=3 (derived)
    "max_oxidation_state",
    "min_oxidation_state",
    "n_valence",  # valence electrons (derived): s/p block from the group, d block = group, f block = 3
)

#: Properties computed here rather than read from pymatgen as they are.
DERIVED_PROPERTIES: tuple[str, ...] = ("block", "n_valence")

#: Atomic numbers whose values make the fill value of a missing one (H..Pu).
FILL_Z = range(1, 95)

_BLOCK = {"s": 0.0, "p": 1.0, "d": 2.0, "f": 3.0}


class ElementPropertyError(ValueError):
    """An unknown element, or an unknown or non-numeric element property."""


class _Unknown(Exception):
    """pymatgen raised AttributeError: maybe an unknown property, maybe missing data."""


@lru_cache(maxsize=None)
def _element(symbol: str):
    from pymatgen.core.periodic_table import Element

    try:
        return Element(symbol)
    except (ValueError, KeyError):
        raise ElementPropertyError(f"unknown element {symbol!r}") from None


def _raw(symbol: str, prop: str) -> float | None:
    """pymatgen's value as a finite float, or None when it has none. Raises _Unknown."""
    el = _element(symbol)
    if prop == "block":
        return _BLOCK.get(str(el.block))
    if prop == "n_valence":
        g, b = _raw(symbol, "group"), _raw(symbol, "block")
        if g is None or b is None:
            return None
        return (g if g <= 2 else g - 10) if b <= 1 else (g if b == 2 else 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for missing X, radii, ...
        try:
            v = getattr(el, prop)
        except AttributeError:
            raise _Unknown from None
        except Exception:  # noqa: BLE001 - pymatgen raises various errors for missing data
            return None
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ElementPropertyError(
            f"element property {prop!r} is not numeric (got {type(v).__name__} {v!r} for "
            f"{symbol}); choose a numeric property"
        )
    v = float(v)
    return v if math.isfinite(v) else None


def _unknown(prop: str) -> ElementPropertyError:
    return ElementPropertyError(
        f"unknown element property {prop!r}; use a numeric attribute of "
        "pymatgen.core.periodic_table.Element or a derived one, such as " + ", ".join(ELEMENT_PROPERTIES)
    )


def _value(symbol: str, prop: str) -> float | None:
    if not isinstance(prop, str):
        raise ElementPropertyError(f"element property names must be strings, got {prop!r}")
    try:
        return _raw(symbol, prop)
    except _Unknown:
        fill_value(prop)  # raises if no element has it: an unknown property
        return None  # pymatgen raised AttributeError for this element's missing data


@lru_cache(maxsize=None)
def fill_value(prop: str) -> float:
    """The value a missing ``prop`` is replaced with: its median over H..Pu (module docs).

    Raises:
        ElementPropertyError: unknown or non-numeric property, or one with no values.
    """
    from pymatgen.core.periodic_table import Element

    known, n_unknown = [], 0
    for z in FILL_Z:
        try:
            v = _raw(Element.from_Z(z).symbol, prop)
        except _Unknown:
            n_unknown += 1
            continue
        if v is not None:
            known.append(v)
    if n_unknown == len(FILL_Z):
        raise _unknown(prop)
    if not known:
        raise ElementPropertyError(f"element property {prop!r} has no values in pymatgen for H..Pu")
    return float(np.median(np.array(known)))


@lru_cache(maxsize=None)
def element_property(symbol: str, prop: str) -> float:
    """Value of one property of one element; a missing value is imputed (module docs).

    Args:
        symbol: element symbol, e.g. ``"Fe"``.
        prop: a numeric attribute of pymatgen's ``Element`` (``"X"``, ``"atomic_radius"``,
            ...) or a derived one (``"block"``, ``"n_valence"``).

    Returns:
        A finite float in pymatgen's units.

    Raises:
        ElementPropertyError (a ValueError): unknown element, unknown or non-numeric property.
    """
    v = _value(str(symbol), prop)
    return fill_value(prop) if v is None else v


@lru_cache(maxsize=None)
def _row(symbol: str, properties: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(element_property(symbol, p) for p in properties)


def element_property_row(symbol: str, properties: Sequence[str] = ELEMENT_PROPERTIES) -> np.ndarray:
    """(p,) finite property values of one element, columns as ``properties``
    (default :data:`ELEMENT_PROPERTIES`)."""
    return np.array(_row(str(symbol), tuple(properties)))


def element_property_matrix(symbols: Sequence[str], properties: Sequence[str] = ELEMENT_PROPERTIES) -> np.ndarray:
    """(n, p) property rows of a sequence of n element symbols, columns as ``properties``
    (default :data:`ELEMENT_PROPERTIES`)."""
    properties = tuple(properties)
    return np.array([_row(str(s), properties) for s in symbols], dtype=float).reshape(-1, len(properties))


def missing_properties(symbols: Sequence[str], properties: Sequence[str] = ELEMENT_PROPERTIES) -> list[tuple[str, str]]:
    """The ``(element, property)`` pairs among ``symbols`` x ``properties`` that pymatgen
    has no value for, i.e. that :func:`element_property` imputes."""
    return [(str(s), p) for s in symbols for p in properties if _value(str(s), p) is None]
