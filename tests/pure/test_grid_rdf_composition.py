"""GRID, cell-invariant RDF, composition embedding and their distances.

Analytic cases, exactness of the 1-D Earth mover's distances, invariance (hypothesis),
continuity along strain paths, disorder, agreement with gridrdf, bad input.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation
from scipy.stats import wasserstein_distance

from aiida_crystinv.distances import composition_distance, grid_emd, rdf_emd
from aiida_crystinv.distances._profiles import grid_emd_cdist, prepare_profiles, rdf_emd_cdist
from aiida_crystinv.invariants import composition, composition_feature_names, grid, grid_bins, rdf
from aiida_crystinv.invariants._lattice import min_pair_distance
from aiida_crystinv.invariants.rdf import rdf_bins, rdf_pairs
from tests.conftest import read_csv_structures

SKEW = np.array([[1, 0, 0], [40, 1, 0], [0, 0, 1]])
# small parameters keep the property-based tests fast
GKW = dict(n_shells=30, cutoff=6.0)
RKW = dict(cutoff=5.0)


def simple_cubic(a: float = 1.0) -> Structure:
    return Structure(Lattice.cubic(a), ["Po"], [[0, 0, 0]])


def nacl(a: float = 5.6) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def shell_mean(g: np.ndarray, bin_width: float, cutoff: float) -> np.ndarray:
    return g @ grid_bins(bin_width, cutoff)


# ------------------------------------------------------------------------------ GRID


def test_grid_simple_cubic_shells():
    g = grid(simple_cubic(), n_shells=32, cutoff=3.0)
    assert g.shape == (32, 30)
    assert np.all(g >= 0) and np.allclose(g.sum(1), 1.0, atol=1e-12)
    expected = np.repeat([1.0, math.sqrt(2), math.sqrt(3), 2.0], [6, 12, 8, 6])
    # the smeared mass is centred on the neighbour distance
    assert np.allclose(shell_mean(g, 0.1, 3.0), expected, atol=1e-3)
    # unsmeared: each shell is one bin, the bin holding the distance
    h = grid(simple_cubic(), n_shells=32, cutoff=3.0, smearing=0.0)
    assert np.array_equal(h.max(1), np.ones(32))
    assert np.array_equal(h.argmax(1), np.floor(expected / 0.1 + 1e-9).astype(int))


def test_grid_bcc_and_mass_beyond_cutoff():
    a = 2.0
    bcc = Structure(Lattice.cubic(a), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    g = grid(bcc, n_shells=14, cutoff=3.0, smearing=0.05)
    expected = np.repeat([a * math.sqrt(3) / 2, a], [8, 6])
    assert np.allclose(shell_mean(g, 0.1, 3.0), expected, atol=1e-3)
    # distances beyond the cutoff: all mass clipped into the last bin, shells still sum to 1
    far = grid(simple_cubic(), n_shells=30, cutoff=1.2)
    assert np.allclose(far.sum(1), 1.0, atol=1e-12)
    assert np.array_equal(far[26:, -1], np.ones(4))  # 2.0 A > 1.2 A + 4 sigma


def test_grid_disorder_uses_site_occupancy():
    ordered = Structure(Lattice.cubic(3.0), ["Fe", "Ni"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    half = Structure(Lattice.cubic(3.0), [{"Fe": 0.5}, "Ni"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    # both sites have the same environment here, so the weights do not matter...
    assert grid_emd(grid(ordered, **GKW), grid(half, **GKW)) < 1e-12
    # ...but they do when the environments differ
    tet = Lattice.tetragonal(3.0, 4.0)
    frac = [[0, 0, 0], [0.5, 0.5, 0.3], [0.0, 0.5, 0.6]]
    a = grid(Structure(tet, ["Fe", "Ni", "Ni"], frac), **GKW)
    b = grid(Structure(tet, [{"Fe": 0.2}, "Ni", "Ni"], frac), **GKW)
    assert np.allclose(b.sum(1), 1.0) and grid_emd(a, b) > 1e-4


# ------------------------------------------------------------------------------- RDF


def test_rdf_simple_cubic_coordination():
    # smearing 0.02 A: every Gaussian (cut at 4 sigma) stays inside its window
    r = rdf(simple_cubic(), cutoff=2.0, smearing=0.02)
    c = rdf_bins(0.05, 2.0)
    for lo, hi, count, dist in [(0.85, 1.15, 6, 1.0), (1.3, 1.55, 12, math.sqrt(2)), (1.6, 1.85, 8, math.sqrt(3))]:
        m = (c > lo) & (c < hi)
        assert r[m].sum() == pytest.approx(count, abs=1e-6)
        assert (r[m] @ c[m]) / r[m].sum() == pytest.approx(dist, abs=2e-3)


def test_rdf_density_tends_to_one():
    g = rdf(simple_cubic(), cutoff=10.0, normalise="density")
    c = rdf_bins(0.05, 10.0)
    assert g[(c > 6) & (c < 10)].mean() == pytest.approx(1.0, abs=0.02)


def test_rdf_supercell_is_identical():
    s = nacl()
    big = s.copy()
    big.make_supercell([2, 2, 2])
    assert len(big) == 8 * len(s)
    assert np.allclose(rdf(big), rdf(s), rtol=0, atol=1e-10)
    for key, val in rdf(big, partial=True).items():
        assert np.allclose(val, rdf(s, partial=True)[key], atol=1e-10)


def test_rdf_partial_nacl():
    s = nacl()
    parts = rdf(s, partial=True)
    assert list(parts) == [("Na", "Na"), ("Na", "Cl"), ("Cl", "Cl")] == rdf_pairs(s)
    assert np.allclose(sum(parts.values()), rdf(s), atol=1e-12)
    c = rdf_bins()
    first = (c > 2.3) & (c < 3.3)  # nearest neighbours at 2.8 A are all Na-Cl
    assert parts[("Na", "Cl")][first].sum() == pytest.approx(6.0, abs=1e-6)
    assert parts[("Na", "Na")][first].sum() == pytest.approx(0.0, abs=1e-12)


def test_rdf_disorder_weights_pairs_by_occupancy():
    full = rdf(simple_cubic(2.0), **RKW)
    half = rdf(Structure(Lattice.cubic(2.0), [{"Po": 0.5}], [[0, 0, 0]]), **RKW)
    assert np.allclose(half, 0.5 * full, atol=1e-12)
    mixed = Structure(Lattice.cubic(2.0), [{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]])
    parts = rdf(mixed, partial=True, **RKW)
    assert list(parts) == [("Fe", "Fe"), ("Fe", "Ni"), ("Ni", "Ni")]
    assert np.allclose(parts[("Fe", "Ni")], 0.5 * full, atol=1e-12)
    assert np.allclose(parts[("Fe", "Fe")], 0.25 * full, atol=1e-12)


# ---------------------------------------------------------------------- composition


def test_composition_disordered_structure():
    s = Structure(Lattice.cubic(4.0), [{"Fe": 0.5, "Ni": 0.3}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    c = composition(s, properties=("Z", "X"), stats=("mean", "min", "max", "std", "range"))
    names = composition_feature_names(("Z", "X"), ("mean", "min", "max", "std", "range"))
    assert names[:2] == ["Z_mean", "Z_min"] and len(names) == len(c) == 10
    f = np.array([0.5, 0.3, 1.0]) / 1.8
    z = np.array([26, 28, 8])
    mean = f @ z
    assert c[0] == pytest.approx(mean)
    assert c[1:5] == pytest.approx([8, 28, math.sqrt(f @ (z - mean) ** 2), 20])
    # the same numbers from the formula, from a supercell, for any atom order
    assert np.allclose(composition("Fe0.5Ni0.3O", ("Z", "X")), composition(s, ("Z", "X")))
    big = s.copy()
    big.make_supercell([1, 2, 3])
    assert np.allclose(composition(big), composition(s))
    assert composition_distance(composition(big), composition(s)) < 1e-10


def test_composition_missing_values_are_imputed():
    c = composition("HeNe", properties=("X", "atomic_radius"))
    assert np.all(np.isfinite(c))
    default = composition(nacl())
    assert default.shape == (len(composition_feature_names()),) and np.all(np.isfinite(default))


def test_composition_imputes_the_median_over_h_to_pu():
    """The one rule of aiida_crystinv.invariants.elements: a value pymatgen lacks (X of He)
    is its median over H..Pu -- computed here independently from pymatgen -- and values
    pymatgen has (X of Na, Cl) are unchanged."""
    from pymatgen.core.periodic_table import Element

    def x(z: int) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(Element.from_Z(z).X)

    xs = np.array([x(z) for z in range(1, 95)])
    median = float(np.median(xs[np.isfinite(xs)]))
    old_mean = float(np.nanmean([x(z) for z in range(1, 104)]))  # the rule before
    assert not math.isfinite(x(2))  # pymatgen has no X for He
    he = composition("He", properties=("X",), stats=("mean",))
    assert he[0] == median and he[0] != pytest.approx(old_mean)
    nacl_x = composition(nacl(), properties=("X",), stats=("min", "max"))
    assert nacl_x.tolist() == [x(11), x(17)]  # Na 0.93, Cl 3.16: pymatgen's values


def test_composition_distance_is_weighted_l1():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.0, 3.0])
    assert composition_distance(a, b) == 3.0
    assert composition_distance(a, b, weights=[2.0, 0.5, 1.0]) == 3.0


# -------------------------------------------------------------- EMD exactness


def numpy_emd(p: np.ndarray, q: np.ndarray, bin_width: float) -> float:
    """Plain integral of |CDF_p - CDF_q| for masses at bin centres, per row, averaged."""
    p = np.atleast_2d(p)
    q = np.atleast_2d(q)
    cp = np.cumsum(p, -1) / p.sum(-1, keepdims=True)
    cq = np.cumsum(q, -1) / q.sum(-1, keepdims=True)
    return float((np.abs(cp - cq)[:, :-1].sum(-1) * bin_width).mean())


def random_profiles(rng, n, shells, bins):
    """Sparse random histograms, including single-bin deltas and first/last-bin masses."""
    out = np.zeros((n, shells, bins))
    for i in range(n):
        for s in range(shells):
            kind = rng.integers(5)
            if kind == 0:
                out[i, s, rng.integers(bins)] = 1.0
            elif kind == 1:
                out[i, s, [0, bins - 1][rng.integers(2)]] = 2.5
            else:
                lo = rng.integers(bins)
                hi = min(bins, lo + rng.integers(1, 12))
                out[i, s, lo:hi] = rng.random(hi - lo) + 1e-3
    return out


def test_grid_emd_is_exact(monkeypatch):
    rng = np.random.default_rng(0)
    A = random_profiles(rng, 7, 9, 40)
    B = random_profiles(rng, 5, 9, 40)
    D = grid_emd_cdist(A, B, bin_width=0.1)
    ref = np.array([[numpy_emd(a, b, 0.1) for b in B] for a in A])
    assert np.allclose(D, ref, rtol=0, atol=1e-12)
    centres = grid_bins(0.1, 4.0)
    scipy_val = np.mean([wasserstein_distance(centres, centres, A[0, s], B[0, s]) for s in range(9)])
    assert grid_emd(A[0], B[0], bin_width=0.1) == pytest.approx(scipy_val, abs=1e-12)
    # A against itself: symmetric, zero diagonal, equal to the general path
    S = grid_emd_cdist(A, bin_width=0.1)
    assert np.allclose(S, grid_emd_cdist(A, A, bin_width=0.1), atol=1e-14)
    assert np.array_equal(S, S.T) and np.all(np.diag(S) == 0)
    # a prepared bank and an output array give the same numbers
    out = np.empty((7, 5))
    grid_emd_cdist(prepare_profiles(A), prepare_profiles(B), 0.1, out=out)
    assert np.array_equal(out, D)
    # the threaded kernels (used for large matrices) give the same numbers
    from aiida_crystinv.distances import _profiles

    monkeypatch.setattr(_profiles, "PARALLEL_MIN_WORK", 0)
    assert np.allclose(grid_emd_cdist(A, B, bin_width=0.1), D, rtol=0, atol=1e-14)
    assert np.allclose(grid_emd_cdist(A, bin_width=0.1), S, rtol=0, atol=1e-14)


@pytest.mark.parametrize("bins", [1, 2, 3, 17])
def test_profile_emd_exact_on_edge_cases(bins):
    """Tiny bin counts, signed entries (mass that cancels), tails that are not 1."""
    rng = np.random.default_rng(bins)
    A = random_profiles(rng, 6, 5, bins)
    A[0, 0] = rng.normal(size=bins)
    A[0, 0, 0] = abs(A[0, 0].sum()) + 1.0  # positive total, non-monotone CDF
    if bins > 2:
        A[1, 1] = 0.0
        A[1, 1, [0, -1]] = [3.0, -1.0]  # CDF jumps above 1 and stays there until the end
    D = grid_emd_cdist(A, A, bin_width=0.2)
    ref = np.array([[numpy_emd(a, b, 0.2) for b in A] for a in A])
    assert np.allclose(D, ref, rtol=0, atol=1e-12)


def test_grid_emd_exact_on_real_grids_and_gridrdf_formula():
    structures = [simple_cubic(), nacl(), simple_cubic(1.1), nacl(5.9)]
    G = np.array([grid(s, **GKW) for s in structures])
    D = grid_emd_cdist(G)
    for i in range(4):
        for j in range(4):
            assert D[i, j] == pytest.approx(numpy_emd(G[i], G[j], 0.1), abs=1e-12)
    # gridrdf's formula: cumulative sums of density-normalised grids, divided by max
    Gd = G / 0.1
    C = np.cumsum(Gd, -1)
    ref = np.mean(np.abs(C[0] - C[3]).sum(-1) / C[0].max() * 0.1)
    assert D[0, 3] == pytest.approx(ref, abs=1e-12)


def test_rdf_emd_is_exact():
    rng = np.random.default_rng(1)
    A = random_profiles(rng, 1, 6, 50)[0]
    B = random_profiles(rng, 1, 4, 50)[0]
    D = rdf_emd_cdist(A, B, bin_width=0.05)
    centres = rdf_bins(0.05, 2.5)
    for i in range(6):
        for j in range(4):
            assert D[i, j] == pytest.approx(wasserstein_distance(centres, centres, A[i], B[j]), abs=1e-12)
            assert D[i, j] == pytest.approx(numpy_emd(A[i], B[j], 0.05), abs=1e-12)
    r1, r2 = rdf(simple_cubic()), rdf(simple_cubic(1.05))
    assert rdf_emd(r1, r2) == pytest.approx(numpy_emd(r1, r2, 0.05), abs=1e-12)


# ------------------------------------------------------------------ invariance


def random_structure(data) -> Structure:
    n = data.draw(st.integers(1, 3), label="atoms")
    lengths = data.draw(st.lists(st.floats(2.5, 4.5), min_size=3, max_size=3), label="lengths")
    angles = data.draw(st.lists(st.floats(70, 110), min_size=3, max_size=3), label="angles")
    try:
        lattice = Lattice.from_parameters(*lengths, *angles)
    except Exception:  # noqa: BLE001 - impossible angle triples
        lattice = Lattice.orthorhombic(*lengths)
    if lattice.volume < 5.0:
        lattice = Lattice.orthorhombic(*lengths)
    frac = data.draw(
        st.lists(st.lists(st.floats(0, 1, exclude_max=True), min_size=3, max_size=3), min_size=n, max_size=n),
        label="frac",
    )
    species = data.draw(st.lists(st.sampled_from(["C", "O", "Si"]), min_size=n, max_size=n), label="species")
    s = Structure(lattice, species, frac)
    if n > 1 and min_pair_distance(s.lattice.matrix, s.frac_coords)[0] < 0.8:
        s = Structure(lattice, species[:1], frac[:1])
    return s


def transformed(s: Structure, kind: str, data) -> Structure:
    t = s.copy()
    if kind == "supercell":
        choices = [
            [[2, 0, 0], [0, 1, 0], [0, 0, 1]],
            [[1, 1, 0], [0, 2, 1], [1, 0, 1]],  # non-diagonal, det 3
            [[2, 1, 0], [0, 1, 0], [1, 0, 1]],  # non-diagonal, det 2
            [[1, 0, 0], [1, 2, 0], [0, 0, 2]],
        ]
        t.make_supercell(data.draw(st.sampled_from(choices), label="supercell"))
    elif kind == "skew":
        cell = SKEW @ s.lattice.matrix
        t = Structure(Lattice(cell), s.species, s.cart_coords, coords_are_cartesian=True)
    elif kind == "rotation":
        seed = data.draw(st.integers(0, 2**31), label="rotation seed")
        R = Rotation.random(random_state=seed).as_matrix()
        t = Structure(Lattice(s.lattice.matrix @ R.T), s.species, s.frac_coords)
    elif kind == "shift":
        shift = data.draw(st.lists(st.floats(-1, 1), min_size=3, max_size=3), label="shift")
        t.translate_sites(list(range(len(t))), shift, frac_coords=True, to_unit_cell=True)
    elif kind == "permutation":
        order = data.draw(st.permutations(list(range(len(s)))), label="order")
        t = Structure(s.lattice, [s.species[i] for i in order], s.frac_coords[order])
    return t


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kind=st.sampled_from(["supercell", "skew", "rotation", "shift", "permutation"]))
def test_grid_and_rdf_are_invariant(data, kind):
    s = random_structure(data)
    t = transformed(s, kind, data)
    g1, g2 = grid(s, **GKW), grid(t, **GKW)
    assert grid_emd(g1, g2) < 1e-8
    assert np.allclose(g1, g2, atol=1e-8)
    r1, r2 = rdf(s, **RKW), rdf(t, **RKW)
    assert rdf_emd(r1, r2) < 1e-8
    assert np.allclose(r1, r2, atol=1e-8)


def test_supercell_through_the_symmetry_path():
    """64+ sites: the neighbour search uses symmetry-distinct sites with multiplicities."""
    diamond = Structure.from_spacegroup("Fd-3m", Lattice.cubic(3.567), ["C"], [[0, 0, 0]])
    assert len(diamond) == 8
    rng = np.random.default_rng(3)
    shaken = Structure(diamond.lattice, diamond.species, diamond.frac_coords + rng.normal(0, 0.01, (8, 3)))
    for s in (diamond, shaken):
        big = s.copy()
        big.make_supercell([[2, 0, 0], [0, 2, 0], [1, 0, 2]])
        assert len(big) == 64
        assert grid_emd(grid(s, **GKW), grid(big, **GKW)) < 1e-8
        assert np.allclose(grid(s, **GKW), grid(big, **GKW), atol=1e-8)
        assert rdf_emd(rdf(s, **RKW), rdf(big, **RKW)) < 1e-8


# ------------------------------------------------------------------ continuity


def strained(s: Structure, t: float) -> Structure:
    """Tetragonal-to-orthorhombic-and-sheared path; neighbour shells cross at t ~ 0.5."""
    F = np.array([[1.0 + 0.2 * t, 0.05 * t, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.9 + 0.2 * t]])
    return Structure(Lattice(s.lattice.matrix @ F.T), s.species, s.frac_coords)


def test_continuity_along_strain_path():
    base = Structure(Lattice.cubic(2.0), ["Si", "Si"], [[0, 0, 0], [0.5, 0.5, 0.37]])
    ts = np.linspace(0.0, 1.0, 11)
    gs = [grid(strained(base, t), n_shells=20, cutoff=4.0) for t in ts]
    rs = [rdf(strained(base, t), cutoff=4.0) for t in ts]
    g_steps = [grid_emd(a, b) for a, b in zip(gs, gs[1:])]
    r_steps = [rdf_emd(a, b) for a, b in zip(rs, rs[1:])]
    # no jumps: every step is small (distances move by at most ~0.12 A per step)
    assert max(g_steps) < 0.15 and max(r_steps) < 0.15
    # and the distances shrink with the step (Lipschitz-like), also across the crossing
    for t0 in (0.0, 0.5):
        for name, f, dist in (
            ("grid", lambda x: grid(x, n_shells=20, cutoff=4.0), grid_emd),
            ("rdf", lambda x: rdf(x, cutoff=4.0), rdf_emd),
        ):
            d = [dist(f(strained(base, t0)), f(strained(base, t0 + h))) for h in (1e-2, 1e-3, 1e-4)]
            assert d[1] < 0.2 * d[0] and d[2] < 0.2 * d[1], (name, t0, d)


def test_continuity_across_the_cutoff():
    # the 2nd-shell distance sqrt(2)*a crosses the last bin edge as a grows
    vals = [grid(simple_cubic(a), n_shells=20, cutoff=1.5) for a in (1.05, 1.0505, 1.051)]
    assert grid_emd(vals[0], vals[1]) < 2e-3 and grid_emd(vals[1], vals[2]) < 2e-3


# --------------------------------------------------------------------- real data


def test_carbon24_matches_gridrdf():
    pytest.importorskip("gridrdf")
    from gridrdf import extendRDF

    _, structures = read_csv_structures("carbon24.csv.gz", n=2)
    for s in structures:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = extendRDF.get_pairwise_distances(s, num_neighbours=100)
            plain = extendRDF.calculate_rdf(s, nb, rdf_type="grid", max_dist=10, bin_width=0.1, smearing=0, normed=True)
            smeared = extendRDF.calculate_rdf(s, nb, rdf_type="grid", max_dist=10, bin_width=0.1, smearing=0.1, normed=True)
        # unsmeared GRIDs are the same histograms; gridrdf smears approximately (fine grid)
        assert grid_emd(grid(s, smearing=0.0), plain) < 1e-9
        assert grid_emd(grid(s), smeared) < 0.01


# --------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"bin_width": 0}, "bin_width"),
        ({"bin_width": -0.1}, "bin_width"),
        ({"bin_width": float("nan")}, "bin_width"),
        ({"cutoff": 0}, "cutoff"),
        ({"cutoff": -5}, "cutoff"),
        ({"n_shells": 0}, "n_shells"),
        ({"n_shells": 2.5}, "n_shells"),
        ({"smearing": -0.1}, "smearing"),
        ({"cutoff": 1e6, "bin_width": 1e-3}, "bin_width"),
    ],
)
def test_grid_bad_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        grid(simple_cubic(), **kwargs)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"bin_width": 0}, "bin_width"), ({"cutoff": -1}, "cutoff"), ({"smearing": -1}, "smearing"), ({"normalise": "x"}, "normalise")],
)
def test_rdf_bad_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        rdf(simple_cubic(), **kwargs)


def test_bad_structures():
    with pytest.raises(ValueError, match="overlap|apart"):
        rdf(Structure(Lattice.cubic(3), ["C", "C"], [[0, 0, 0], [0.001, 0, 0]]))
    with pytest.raises(ValueError, match="overlap|apart"):
        grid(Structure(Lattice.cubic(3), ["C", "C"], [[0, 0, 0], [0.001, 0, 0]]))
    with pytest.raises(ValueError, match="unknown element"):
        composition("XxO")
    with pytest.raises(ValueError, match="no sites"):
        grid(Structure(Lattice.cubic(3), [], []))


def test_distance_bad_input():
    g = grid(simple_cubic(), **GKW)
    with pytest.raises(ValueError, match="shapes"):
        grid_emd(g, g[:10])
    with pytest.raises(ValueError, match="shapes"):
        grid_emd_cdist(g[None], grid(simple_cubic(), n_shells=20, cutoff=6.0)[None])
    with pytest.raises(ValueError, match="bin_width"):
        grid_emd(g, g, bin_width=0)
    with pytest.raises(ValueError, match="dimensional"):
        grid_emd(g[0], g[0])
    with pytest.raises(ValueError, match="total mass"):
        rdf_emd(np.zeros(10), np.ones(10))
    with pytest.raises(ValueError, match="NaN"):
        grid_emd_cdist(np.full((1, 2, 3), np.nan))
    with pytest.raises(ValueError, match="shapes"):
        composition_distance(np.ones(3), np.ones(4))


def test_composition_bad_names():
    with pytest.raises(ValueError, match="unknown element property"):
        composition(nacl(), properties=("not_a_property",))
    with pytest.raises(ValueError, match="not numeric"):
        composition(nacl(), properties=("electronic_structure",))
    # block is a derived numeric property of the element table (s, p, d, f = 0, 1, 2, 3)
    assert composition(nacl(), properties=("block",), stats=("min", "max")).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="unknown statistic"):
        composition(nacl(), stats=("median",))
    with pytest.raises(ValueError, match="sequences"):
        composition_feature_names(properties="X")
