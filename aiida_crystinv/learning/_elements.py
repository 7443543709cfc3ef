"""A small, deterministic table of element properties (from pymatgen's data files).

Missing values (pymatgen has no value for an element) are filled with the median of that
property over the elements H..Pu, so every element gets a full, finite row.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

__all__ = ["ELEMENT_PROPERTIES", "element_property_row", "element_property_matrix"]

#: Property names, in column order, with their units.
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
    "block",  # s=0, p=1, d=2, f=3
    "max_oxidation_state",
    "min_oxidation_state",
    "n_valence",  # valence electrons: s/p block from the group, d block = group, f block = 3
)

_BLOCK = {"s": 0.0, "p": 1.0, "d": 2.0, "f": 3.0}


def _raw(symbol: str) -> np.ndarray:
    from pymatgen.core.periodic_table import Element

    el = Element(symbol)
    out = np.full(len(ELEMENT_PROPERTIES), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j, name in enumerate(ELEMENT_PROPERTIES):
            try:
                value = getattr(el, name)
            except Exception:  # pymatgen raises for some missing data
                value = None
            if name == "block":
                value = _BLOCK.get(str(value), np.nan)
            if value is None:
                continue
            try:
                out[j] = float(value)
            except (TypeError, ValueError):
                continue
    g, b = out[ELEMENT_PROPERTIES.index("group")], out[ELEMENT_PROPERTIES.index("block")]
    if np.isfinite(g) and np.isfinite(b):
        out[-1] = (g if g <= 2 else g - 10) if b <= 1 else (g if b == 2 else 3.0)
    return out


@lru_cache(maxsize=None)
def _fill_values() -> tuple[float, ...]:
    table = np.array([_raw_by_z(z) for z in range(1, 95)])
    return tuple(np.nanmedian(table, axis=0).tolist())


@lru_cache(maxsize=None)
def _raw_by_z(z: int) -> np.ndarray:
    from pymatgen.core.periodic_table import Element

    return _raw(Element.from_Z(z).symbol)


@lru_cache(maxsize=None)
def _row(symbol: str) -> tuple[float, ...]:
    raw = _raw(symbol)
    fill = np.asarray(_fill_values())
    raw = np.where(np.isfinite(raw), raw, fill)
    return tuple(raw.tolist())


def element_property_row(symbol: str) -> np.ndarray:
    """(p,) finite property values of one element, columns as :data:`ELEMENT_PROPERTIES`."""
    return np.array(_row(str(symbol)))


def element_property_matrix(symbols) -> np.ndarray:
    """(n, p) property rows of a sequence of element symbols."""
    return np.array([_row(str(s)) for s in symbols]).reshape(-1, len(ELEMENT_PROPERTIES))
