"""The one element-property table (aiida_crystinv.invariants.elements): its values against
pymatgen, its one imputation rule (median over H..Pu) against an independent computation,
the learning features' values against the old table's code path (bit for bit), and that
the features and the composition invariant read the same numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.core.periodic_table import Element

from aiida_crystinv.invariants import composition
from aiida_crystinv.invariants.elements import (
    ELEMENT_PROPERTIES,
    ElementPropertyError,
    element_property,
    element_property_matrix,
    element_property_row,
    fill_value,
    missing_properties,
)
from aiida_crystinv.learning import describe

ALL_SYMBOLS = [Element.from_Z(z).symbol for z in range(1, 119)]


def _pymatgen(symbol: str, prop: str) -> float:
    """pymatgen's value as a float, NaN when it has none (independent of the module)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            v = getattr(Element(symbol), prop)
        except Exception:  # noqa: BLE001 - pymatgen raises for some missing data
            return float("nan")
    return float("nan") if v is None else float(v)


def _median_h_to_pu(prop: str) -> float:
    values = np.array([_pymatgen(Element.from_Z(z).symbol, prop) for z in range(1, 95)])
    return float(np.median(values[np.isfinite(values)]))


def _old_learning_table(symbols: list[str]) -> np.ndarray:
    """The code path of the removed ``aiida_crystinv.learning._elements`` (its algorithm,
    copied): raw values with block letters mapped and n_valence derived, NaNs filled with
    ``np.nanmedian`` of the raw (94, 18) table of H..Pu."""
    block_map = {"s": 0.0, "p": 1.0, "d": 2.0, "f": 3.0}

    def raw(symbol: str) -> np.ndarray:
        el = Element(symbol)
        out = np.full(len(ELEMENT_PROPERTIES), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for j, name in enumerate(ELEMENT_PROPERTIES):
                try:
                    value = getattr(el, name)
                except Exception:  # noqa: BLE001
                    value = None
                if name == "block":
                    value = block_map.get(str(value), np.nan)
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

    fill = np.nanmedian(np.array([raw(Element.from_Z(z).symbol) for z in range(1, 95)]), axis=0)
    rows = np.array([raw(s) for s in symbols])
    return np.where(np.isfinite(rows), rows, fill)


def test_learning_table_is_bit_identical_to_the_old_one():
    """Every element H..Og, all 18 columns: the same float64 bits as before the merge."""
    new = element_property_matrix(ALL_SYMBOLS)
    old = _old_learning_table(ALL_SYMBOLS)
    assert new.shape == (118, 18) and np.isfinite(new).all()
    assert np.array_equal(new.view(np.int64), old.view(np.int64))


@pytest.mark.parametrize("symbol", ["Na", "Al", "Si", "Cl", "Ti", "Fe", "Cu", "Pb"])
def test_complete_elements_are_pymatgen_values(symbol):
    assert missing_properties([symbol]) == []
    row = element_property_row(symbol)
    for j, prop in enumerate(ELEMENT_PROPERTIES):
        if prop not in ("block", "n_valence"):
            assert row[j] == _pymatgen(symbol, prop), prop
    block = {"s": 0.0, "p": 1.0, "d": 2.0, "f": 3.0}[Element(symbol).block]
    assert row[ELEMENT_PROPERTIES.index("block")] == block
    expected_valence = {"Na": 1, "Al": 3, "Si": 4, "Cl": 7, "Ti": 4, "Fe": 8, "Cu": 11, "Pb": 4}[symbol]
    assert row[ELEMENT_PROPERTIES.index("n_valence")] == expected_valence


@pytest.mark.parametrize("symbol, prop", [("He", "X"), ("Kr", "atomic_radius"), ("O", "bulk_modulus"),
                                          ("Fr", "molar_volume"), ("Ce", "atomic_radius_calculated")])
def test_a_missing_value_is_the_median_over_h_to_pu(symbol, prop):
    assert not np.isfinite(_pymatgen(symbol, prop))  # pymatgen really lacks it
    assert (symbol, prop) in missing_properties([symbol], [prop])
    expected = _median_h_to_pu(prop)
    assert element_property(symbol, prop) == expected == fill_value(prop)
    assert element_property_row(symbol)[ELEMENT_PROPERTIES.index(prop)] == expected


def test_any_numeric_pymatgen_attribute_and_errors():
    # not one of the 18 columns, still numeric in pymatgen
    assert element_property("Fe", "density_of_solid") == _pymatgen("Fe", "density_of_solid")
    assert element_property_matrix(["Fe", "O"], ("X", "Z")).tolist() == [[1.83, 26.0], [3.44, 8.0]]
    with pytest.raises(ElementPropertyError, match="unknown element property 'nope'"):
        element_property("Fe", "nope")
    with pytest.raises(ElementPropertyError, match="not numeric"):
        element_property("Fe", "electronic_structure")
    with pytest.raises(ElementPropertyError, match="unknown element 'Xx'"):
        element_property("Xx", "Z")
    assert issubclass(ElementPropertyError, ValueError)


def test_features_and_composition_invariant_read_the_same_table():
    """He has no electronegativity in pymatgen: both get the same imputed value."""
    s = Structure(Lattice.cubic(4.0), ["He", "Ar"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    p = len(ELEMENT_PROPERTIES)
    stats = describe("element_stats", [s])[0]
    for prop in ("X", "atomic_radius", "melting_point"):
        j = ELEMENT_PROPERTIES.index(prop)
        mean, lo, hi = composition(s, properties=(prop,), stats=("mean", "min", "max"))
        assert stats[j] == pytest.approx(mean, rel=1e-14)
        assert (stats[2 * p + j], stats[3 * p + j]) == (lo, hi)
