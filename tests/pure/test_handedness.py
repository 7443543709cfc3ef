"""A left-handed cell (negative determinant) is a valid description of a crystal (issue 11).

Real crystals (the first records of Perov-5 and Carbon-24) are described three ways:

* as given (right-handed: every cell of these files has a positive determinant);
* the *same* point set in a left-handed cell: the third lattice vector negated and the
  third fractional coordinate negated with it (identical Cartesian positions);
* the mirror image: the lattice mirrored (``cell @ diag(1, 1, -1)``), the fractional
  coordinates kept. A mirror is an isometry, so every isometry invariant is unchanged.

AMD, PDD, GRID and RDF must be equal for all three (up to floating-point rounding). The
reference for "equal" is the right-handed description computed by the same function: the
property under test is invariance, and the right-handed values themselves are checked
against the ``amd`` package elsewhere (``tests/pure/test_amd_pdd.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

from aiida_crystinv.invariants import amd, as_crystal, grid, pdd, rdf

from ..conftest import read_csv_structures

N = 12
K = 30


def descriptions(structure):
    """(right-handed, same crystal in a left-handed cell, mirror image) as (cell, frac, species)."""
    cell = np.array(structure.lattice.matrix, dtype=float)
    frac = np.array(structure.frac_coords, dtype=float)
    species = [site.specie.symbol for site in structure]
    assert np.linalg.det(cell) > 0, "the test expects right-handed cells in the file"
    flip = np.diag([1.0, 1.0, -1.0])
    same = (flip @ cell, frac @ flip, species)  # c -> -c and z -> -z: the same positions
    mirror = (cell @ flip, frac, species)  # every position mirrored through z = 0
    for left in (same, mirror):
        assert np.linalg.det(left[0]) < 0
    assert np.allclose(same[1] @ same[0], frac @ cell), "the left-handed description moved the atoms"
    return (cell, frac, species), same, mirror


@pytest.fixture(scope="module", params=["perov5.csv.gz", "carbon24.csv.gz"])
def crystals(request):
    _, structures = read_csv_structures(request.param, n=N)
    return [descriptions(s) for s in structures]


def test_left_handed_cells_are_accepted_as_given(crystals):
    for right, same, mirror in crystals:
        for left in (same, mirror):
            crystal = as_crystal(left)
            assert np.linalg.det(crystal.cell) < 0, "the cell was changed (made right-handed) on the way in"
            assert np.isclose(crystal.volume, abs(np.linalg.det(right[0])))


@pytest.mark.parametrize(
    "name, invariant",
    [
        ("amd", lambda s: amd(s, K)),
        ("pdd", lambda s: pdd(s, K)),
        ("grid", lambda s: grid(s, cutoff=6.0)),
        ("rdf", lambda s: rdf(s, cutoff=6.0)),
    ],
)
def test_invariants_equal_for_both_handednesses(crystals, name, invariant):
    for n, (right, same, mirror) in enumerate(crystals):
        expected = np.asarray(invariant(right))
        for what, left in (("left-handed cell", same), ("mirror image", mirror)):
            got = np.asarray(invariant(left))
            assert got.shape == expected.shape, f"record {n}, {what}: {name} shape {got.shape} != {expected.shape}"
            assert np.allclose(got, expected, rtol=1e-9, atol=1e-9), (
                f"record {n}, {what}: {name} differs by {np.max(np.abs(got - expected)):.3g}"
            )
