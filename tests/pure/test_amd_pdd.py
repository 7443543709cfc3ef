"""AMD, PDD and PDD-EMD: analytic cases, agreement with the peer, invariance, continuity."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure

from aiida_crystinv.distances import amd_distance, nearest_neighbours, pdd_emd, pdist
from aiida_crystinv.invariants import InvalidStructureError, amd, as_crystal, lll_reduce, pdd, pdd_to_amd
from tests.conftest import dataset_path, read_csv_structures

SKEW = np.array([[1, 0, 0], [40, 1, 0], [0, 0, 1]])


def shells(pairs):
    """Expand [(count, distance), ...] into a sorted neighbour-distance vector."""
    return np.concatenate([np.full(c, d) for c, d in pairs])


# ----------------------------------------------------------------------------- analytic


def test_simple_cubic_shells():
    sc = Structure(Lattice.cubic(1.0), ["Po"], [[0, 0, 0]])
    expected = shells([(6, 1.0), (12, math.sqrt(2)), (8, math.sqrt(3)), (6, 2.0), (24, math.sqrt(5))])
    assert np.allclose(amd(sc, 56), expected, atol=1e-12)
    p = pdd(sc, 56)
    assert p.shape == (1, 57) and p[0, 0] == 1.0


def test_fcc_shells():
    a = 3.6
    fcc = Structure(Lattice.cubic(a), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    expected = a * shells([(12, 1 / math.sqrt(2)), (6, 1.0), (24, math.sqrt(1.5)), (12, math.sqrt(2))])
    assert np.allclose(amd(fcc, 54), expected, atol=1e-12)
    # the primitive cell describes the same crystal
    prim = fcc.get_primitive_structure()
    assert len(prim) == 1
    assert np.allclose(amd(prim, 54), expected, atol=1e-12)
    assert pdd(fcc, 54).shape[0] == 1  # four equal rows collapse into one


def test_bcc_shells():
    a = 2.87
    bcc = Structure(Lattice.cubic(a), ["Fe"] * 2, [[0, 0, 0], [0.5, 0.5, 0.5]])
    expected = a * shells([(8, math.sqrt(3) / 2), (6, 1.0), (12, math.sqrt(2)), (24, math.sqrt(11) / 2), (8, math.sqrt(3))])
    assert np.allclose(amd(bcc, 58), expected, atol=1e-12)


def test_lll_reduce_is_unimodular_and_short():
    cell = SKEW @ np.diag([2.0, 3.0, 4.0])
    reduced, T = lll_reduce(cell)
    assert round(abs(np.linalg.det(T))) == 1
    assert np.allclose(T @ cell, reduced)
    assert np.linalg.norm(reduced, axis=1).max() < 4.0 + 1e-9


# ----------------------------------------------------------------------------- the peer


def _peer_input(pset):
    """(cell, frac, species) of an ``amd.PeriodicSet``: the same point set for both codes."""
    from pymatgen.core.periodic_table import Element

    frac = pset.motif @ np.linalg.inv(pset.cell)
    species = [Element.from_Z(int(z)).symbol for z in pset.types]
    return pset.cell, frac, species


def _assert_pdd_close(p, q, tol):
    """PDD rows match up to the order of rows whose keys tie within rounding."""
    assert p.shape == q.shape
    key = lambda a: a[np.lexsort(np.round(a[:, ::-1], 6).T)]  # noqa: E731
    assert np.abs(key(p) - key(q)).max() <= tol


def test_agrees_with_peer_on_t2():
    peer = pytest.importorskip("amd")
    path = dataset_path("T2_experimental.cif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        psets = list(peer.CifReader(str(path)))
    assert len(psets) == 9
    for pset in psets:
        x = _peer_input(pset)
        assert np.abs(amd(x, 100) - peer.AMD(pset, 100)).max() < 1e-8, pset.name
        ours, theirs = pdd(x, 100), peer.PDD(pset, 100)
        _assert_pdd_close(ours, theirs, 1e-8)
        assert pdd_emd(ours, theirs) < 1e-6


def test_agrees_with_peer_on_carbon24():
    peer = pytest.importorskip("amd")
    _, structures = read_csv_structures("carbon24.csv.gz", 200)
    psets = [peer.periodicset_from_pymatgen_structure(s) for s in structures]
    ours = [pdd(s, 100) for s in structures]
    theirs = [peer.PDD(p, 100) for p in psets]
    for s, p, a, b in zip(structures, psets, ours, theirs):
        assert np.abs(amd(s, 100) - peer.AMD(p, 100)).max() < 1e-8
        _assert_pdd_close(a, b, 1e-8)
    # distances: ours on our PDDs against the peer's on its PDDs, all pairs of 40
    mine = pdist(ours[:40])
    ref = peer.PDD_pdist(theirs[:40])
    assert np.abs(mine - ref).max() < 1e-6


def test_skewed_cell_is_handled():
    """A basis with a 40x shear describes the same crystal; AMD must not change."""
    _, structures = read_csv_structures("carbon24.csv.gz", 5)
    for s in structures:
        skewed = Structure(Lattice(SKEW @ s.lattice.matrix), s.species, s.cart_coords, coords_are_cartesian=True)
        assert np.abs(amd(skewed, 100) - amd(s, 100)).max() < 1e-8
        assert pdd_emd(pdd(skewed, 100), pdd(s, 100)) < 1e-8


# ----------------------------------------------------------------------------- invariance


def _random_crystal(data):
    lengths = data.draw(st.lists(st.floats(2.5, 6.0), min_size=3, max_size=3))
    angles = data.draw(st.lists(st.floats(65.0, 115.0), min_size=3, max_size=3))
    try:
        lattice = Lattice.from_parameters(*lengths, *angles)
    except Exception:
        lattice = Lattice.cubic(4.0)
    if lattice.volume < 5.0:
        lattice = Lattice.cubic(4.0)
    n = data.draw(st.integers(1, 4))
    frac = np.array(data.draw(st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=n, max_size=n)))
    species = data.draw(st.lists(st.sampled_from(["C", "O", "Si", "Na"]), min_size=n, max_size=n))
    s = Structure(lattice, species, frac)
    try:
        as_crystal(s)
    except InvalidStructureError:
        s = Structure(lattice, species[:1], frac[:1])
    return s


def _rotation(data):
    q = np.array(data.draw(st.lists(st.floats(-1, 1), min_size=4, max_size=4))) + np.array([1e-3, 0, 0, 0])
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


TRANSFORMS = ["supercell", "nondiagonal_supercell", "skew", "rotation", "shift", "permutation"]


def transformed(s: Structure, kind: str, data) -> Structure:
    if kind == "supercell":
        return s * (2, 1, 2)
    if kind == "nondiagonal_supercell":
        t = s.copy()
        t.make_supercell([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
        return t
    if kind == "skew":
        return Structure(Lattice(SKEW @ s.lattice.matrix), s.species, s.cart_coords, coords_are_cartesian=True)
    if kind == "rotation":
        R = _rotation(data)
        return Structure(Lattice(s.lattice.matrix @ R.T), s.species, s.cart_coords @ R.T, coords_are_cartesian=True)
    if kind == "shift":
        shift = np.array(data.draw(st.lists(st.floats(-1, 1), min_size=3, max_size=3)))
        return Structure(s.lattice, s.species, s.frac_coords + shift)
    perm = data.draw(st.permutations(list(range(len(s)))))
    return Structure(s.lattice, [s.species[i] for i in perm], s.frac_coords[perm])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kind=st.sampled_from(TRANSFORMS))
def test_amd_pdd_invariant(data, kind):
    s = _random_crystal(data)
    t = transformed(s, kind, data)
    assert amd_distance(amd(s, 60), amd(t, 60)) < 1e-8
    assert pdd_emd(pdd(s, 60), pdd(t, 60)) < 1e-8


# ----------------------------------------------------------------------------- continuity


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), eps=st.floats(1e-4, 0.05))
def test_lipschitz_under_perturbation(data, eps):
    s = _random_crystal(data)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 31)))
    step = rng.normal(size=(len(s), 3))
    step *= (eps * rng.random(len(s)) / np.linalg.norm(step, axis=1))[:, None]
    moved = Structure(s.lattice, s.species, s.cart_coords + step, coords_are_cartesian=True)
    try:
        as_crystal(moved)
    except InvalidStructureError:
        return
    assert amd_distance(amd(s, 40), amd(moved, 40)) <= 2 * eps + 1e-12
    assert pdd_emd(pdd(s, 40), pdd(moved, 40)) <= 2 * eps + 1e-12


# ----------------------------------------------------------------------------- EMD and kNN


def test_emd_matches_pot_on_random_pdds():
    ot = pytest.importorskip("ot")
    from aiida_crystinv.distances._emd import chebyshev_cost

    rng = np.random.default_rng(1)
    for trial in range(300):
        n, m, k = rng.integers(1, 25), rng.integers(1, 25), rng.integers(1, 12)
        a, b = np.sort(rng.random((n, k)), 1), np.sort(rng.random((m, k)), 1)
        if trial % 3 == 0:
            b[: min(n, m)] = a[: min(n, m)]  # degenerate transport problems
        wa, wb = rng.integers(1, 5, n).astype(float), rng.integers(1, 5, m).astype(float)
        pa, pb = np.column_stack([wa / wa.sum(), a]), np.column_stack([wb / wb.sum(), b])
        ref = ot.emd2(wa / wa.sum(), wb / wb.sum(), chebyshev_cost(a, b))
        assert abs(pdd_emd(pa, pb) - ref) < 1e-12
        assert abs(pdd_emd(pa, pb) - pdd_emd(pb, pa)) < 1e-12
        assert amd_distance(pdd_to_amd(pa), pdd_to_amd(pb)) <= pdd_emd(pa, pb) + 1e-12


def test_exact_knn_equals_brute_force_on_carbon24():
    from scipy.spatial.distance import squareform

    _, structures = read_csv_structures("carbon24.csv.gz", 250)
    pdds = [pdd(s, 100) for s in structures]
    full = squareform(pdist(pdds))
    np.fill_diagonal(full, np.inf)
    k = 5
    dist, idx, frac = nearest_neighbours(pdds, k, return_stats=True)
    order = np.array([np.lexsort((np.arange(len(r)), r))[:k] for r in full])
    assert np.array_equal(idx, order)
    assert np.abs(dist - np.take_along_axis(full, order, 1)).max() < 1e-12
    assert frac < 0.5  # the AMD bound skipped most pairs
    # queries against a reference set
    d2, i2 = nearest_neighbours(pdds[50:], 3, queries=pdds[:50])
    cross = np.array([[pdd_emd(q, p) for p in pdds[50:]] for q in pdds[:10]])
    ref = np.array([np.lexsort((np.arange(len(r)), r))[:3] for r in cross])
    assert np.array_equal(i2[:10], ref)


# ----------------------------------------------------------------------------- bad input


def _sc(**kw):
    return Structure(Lattice.cubic(3.0), ["Na"], [[0, 0, 0]], **kw)


@pytest.mark.parametrize(
    "bad, message",
    [
        ((np.eye(3), np.zeros((0, 3)), []), "no sites"),
        ((np.zeros((3, 3)), [[0, 0, 0]], ["C"]), "volume"),
        ((np.eye(3) * 3, [[np.nan, 0, 0]], ["C"]), "NaN"),
        ((np.eye(3) * 3, [[0, 0, 0], [0.001, 0, 0]], ["C", "C"]), "overlap"),
        ((np.eye(3) * 3, [[0, 0, 0]], ["Xx"]), "unknown element"),
        ((np.eye(3) * 3, [[0, 0, 0]], ["C", "O"]), "species"),
        ("not a structure", "expected a pymatgen Structure"),
    ],
)
def test_bad_input_is_a_clear_error(bad, message):
    for fn in (amd, pdd):
        with pytest.raises(InvalidStructureError, match=message):
            fn(bad, 10)


def test_left_handed_cell_is_the_same_crystal():
    """A basis with a negative determinant describes a valid crystal: the same points with c
    replaced by -c (and z by -z) give the same invariants."""
    rng = np.random.default_rng(5)
    cell = np.array([[4.1, 0.2, 0.0], [0.3, 3.7, 0.1], [0.5, -0.4, 5.2]])
    frac = rng.random((6, 3))
    species = ["Na", "Cl", "Na", "Cl", "O", "O"]
    mirror_basis = cell * np.array([[1.0], [1.0], [-1.0]])
    assert np.linalg.det(mirror_basis) < 0
    right = (cell, frac, species)
    left = (mirror_basis, frac * np.array([1.0, 1.0, -1.0]), species)
    np.testing.assert_allclose(frac @ cell, left[1] @ left[0], atol=1e-12)  # the same points
    np.testing.assert_allclose(amd(left, 30), amd(right, 30), atol=1e-10)
    np.testing.assert_allclose(pdd(left, 30), pdd(right, 30), atol=1e-10)


@pytest.mark.parametrize("k", [0, -3, 2.5, True, "10"])
def test_bad_k(k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        amd(_sc(), k)


def test_disorder_is_weighted_by_occupancy():
    """Half-occupied sites count half (the documented disorder rule), and nothing crashes."""
    ordered = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    half = Structure(Lattice.cubic(4.0), [{"Na": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    p = pdd(half, 20, collapse=False)
    assert np.allclose(sorted(p[:, 0]), [1 / 3, 2 / 3])
    q = pdd(ordered, 20, collapse=False)
    # the geometry is the same, so the rows are the same; only the weights move
    assert np.allclose(np.sort(p[:, 1:], 0), np.sort(q[:, 1:], 0))
    assert pdd_emd(p, q) < 1e-12  # equal rows: moving weight between them costs nothing
