"""The synthetic Ewald polymorph landscape: deterministic, physical, labelled correctly."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.core import Lattice, Structure

from aiida_crystinv.sources.synthetic import (
    COMPOSITIONS,
    IONIC_RADII,
    TARGET_NAME,
    OxidationStateError,
    ewald_energy_per_atom,
    ewald_landscape,
    guess_oxidation_states,
    prototype_structure,
)


@pytest.fixture(scope="module")
def landscape():
    return ewald_landscape(n=120, seed=3)


def test_deterministic_for_a_seed(landscape):
    ids, structures, targets, units = landscape
    ids2, structures2, targets2, units2 = ewald_landscape(n=120, seed=3)
    assert ids == ids2
    assert units == units2 == {TARGET_NAME: "eV/atom"}
    np.testing.assert_array_equal(targets[TARGET_NAME], targets2[TARGET_NAME])
    for a, b in zip(structures, structures2):
        np.testing.assert_array_equal(a.lattice.matrix, b.lattice.matrix)
        np.testing.assert_array_equal(a.frac_coords, b.frac_coords)
        assert [s.symbol for s in a.species] == [s.symbol for s in b.species]


def test_other_seed_differs(landscape):
    _, _, targets, _ = landscape
    _, _, other, _ = ewald_landscape(n=120, seed=4)
    assert not np.allclose(targets[TARGET_NAME], other[TARGET_NAME])


def test_shapes_and_ids(landscape):
    ids, structures, targets, _ = landscape
    assert len(ids) == len(structures) == targets[TARGET_NAME].shape[0] == 120
    assert len(set(ids)) == len(ids)
    assert np.isfinite(targets[TARGET_NAME]).all()
    assert (targets[TARGET_NAME] < 0).all()  # ionic crystals are bound
    formulas = {s.composition.reduced_formula for s in structures}
    assert len(formulas) >= 10


def test_energies_agree_with_direct_ewald_summation(landscape):
    ids, structures, targets, _ = landscape
    charges = {c.formula: dict(c.elements.values()) for c in COMPOSITIONS}
    for i in range(0, len(ids), 7):
        formula = ids[i].split("-")[0]
        decorated = structures[i].copy()
        decorated.add_oxidation_state_by_element(charges[formula])
        direct = EwaldSummation(decorated).total_energy / len(decorated)
        assert targets[TARGET_NAME][i] == pytest.approx(direct, rel=1e-10)


def test_no_overlapping_atoms(landscape):
    _, structures, _, _ = landscape
    for s in structures:
        dist = s.distance_matrix + np.eye(len(s)) * 1e3
        assert dist.min() > 1.0, s.composition
        assert min(s.lattice.abc) > 1.0
        assert s.is_ordered
        assert s.volume > 0


def test_ideal_rocksalt_madelung():
    """NaCl in the ideal rocksalt cell: E = -M e^2 / (4 pi eps0 d) per ion pair."""
    structure, charges = prototype_structure("rocksalt", "NaCl")
    d = IONIC_RADII[("Na", 1)] + IONIC_RADII[("Cl", -1)]
    madelung = 1.747565
    expected = -madelung * 14.399645 / d / 2.0  # eV per atom
    assert ewald_energy_per_atom(structure, charges) == pytest.approx(expected, rel=1e-4)


def test_near_duplicates_are_near(landscape):
    ids, structures, targets, _ = landscape
    index = {name: i for i, name in enumerate(ids)}
    dups = [name for name in ids if name.endswith("-dup")]
    assert len(dups) == round(0.08 * 120)
    for name in dups:
        original = index[name[: -len("-dup")]]
        dup = index[name]
        assert structures[dup].composition == structures[original].composition
        assert structures[dup].volume == pytest.approx(structures[original].volume, rel=1e-12)
        e0, e1 = targets[TARGET_NAME][original], targets[TARGET_NAME][dup]
        assert abs(e1 - e0) < 0.02 * abs(e0)


def test_fast_enough():
    start = time.perf_counter()
    ewald_landscape(n=200, seed=0)
    assert time.perf_counter() - start < 10.0


def test_guess_and_errors():
    structure, _ = prototype_structure("fluorite", "CaF2")
    assert guess_oxidation_states(structure) == {"Ca": 2.0, "F": -1.0}
    assert ewald_energy_per_atom(structure) == pytest.approx(ewald_energy_per_atom(structure, {"Ca": 2, "F": -1}))
    with pytest.raises(OxidationStateError, match="not charge neutral"):
        ewald_energy_per_atom(structure, {"Ca": 2, "F": -2})
    with pytest.raises(OxidationStateError, match="no oxidation state"):
        ewald_energy_per_atom(structure, {"Ca": 2})
    metal = Structure(Lattice.cubic(3.0), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(OxidationStateError, match="cannot determine"):
        ewald_energy_per_atom(metal)
    with pytest.raises(ValueError):
        ewald_landscape(n=0)
