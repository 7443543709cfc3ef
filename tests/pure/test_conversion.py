"""The fast path of amd/pdd from a pymatgen Structure: lean conversion, checks fused into the
compiled kernel, the formula made only for an error message; and the kernel itself against
brute force (every translate in a box proven large enough), including the rows it has to
redo alone and the rows whose candidates overflow its buffer."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
from pymatgen.core import DummySpecies, Lattice, Species, Structure

from aiida_crystinv.invariants import InvalidStructureError, amd, as_crystal, neighbour_distances, pdd
from aiida_crystinv.invariants._crystal import MIN_SEPARATION, MIN_VOLUME_PER_SITE, pymatgen_arrays
from aiida_crystinv.invariants._neighbour_kernel import STATUS_OK, _collect, _prepare, neighbour_kernel
from aiida_crystinv.invariants._pdd import SYMMETRY_MIN_SITES
from tests.conftest import dataset_path, read_csv_structures


def brute_force(cell: np.ndarray, frac: np.ndarray, k: int) -> np.ndarray:
    """Sorted distances from each motif point to its k nearest neighbours, by brute force.

    All translates n @ cell with |n_a| <= N are generated; N grows until it provably covers
    a ball of radius (k-th distance + largest motif offset) around every motif point.
    """
    inv_norms = np.linalg.norm(np.linalg.inv(cell), axis=0)  # |n_a| <= |t| * inv_norms[a]
    cart = (frac - np.floor(frac)) @ cell
    reach = np.linalg.norm(cart[:, None, :] - cart[None, :, :], axis=2).max()
    n = 2
    while True:
        r = np.arange(-n, n + 1)
        grid = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3) @ cell
        cloud = (cart[None, :, :] + grid[:, None, :]).reshape(-1, 3)
        d = np.linalg.norm(cart[:, None, :] - cloud[None, :, :], axis=2)
        d.sort(axis=1)
        dist = d[:, 1 : k + 1]  # column 0 is the point itself
        if np.all(n >= np.ceil((dist[:, -1].max() + reach) * inv_norms)):
            return dist
        n += 1


def kernel(cell, frac, k, rows=None):
    rows = np.arange(len(frac)) if rows is None else np.asarray(rows, dtype=np.int64)
    status, bad, dist = neighbour_kernel(np.asarray(cell, float), np.asarray(frac, float), rows, k,
                                         MIN_VOLUME_PER_SITE, MIN_SEPARATION)
    assert status == STATUS_OK
    return dist


def counts(cell, frac, k):
    """Candidates the shared pass collected per row, and the buffer capacity."""
    _, reduced, f, co, e, tau = _prepare(np.asarray(cell, float), np.asarray(frac, float), k, MIN_VOLUME_PER_SITE)
    _, cnt, cap = _collect(reduced, f, co, e, np.arange(len(frac)), k, tau)
    return cnt, cap


# ----------------------------------------------------------------------------- the kernel


@pytest.mark.parametrize("k", [1, 7, 60, 250])
def test_kernel_equals_brute_force_on_random_crystals(k):
    rng = np.random.default_rng(k)
    for _ in range(6):
        lattice = Lattice.from_parameters(*rng.uniform(2.5, 6, 3), *rng.uniform(70, 110, 3))
        m = int(rng.integers(1, 7))
        frac = rng.random((m, 3))
        got = kernel(lattice.matrix, frac, k)
        assert np.abs(got - brute_force(lattice.matrix, frac, k)).max() < 1e-9


def test_rows_redone_alone_equal_brute_force():
    """A dense cluster and one far atom: the shared threshold (from the mean density) is too
    small for the far atom, whose row the kernel redoes alone."""
    rng = np.random.default_rng(3)
    cell = np.diag([10.0, 10.0, 10.0])
    frac = np.vstack([0.02 + 0.12 * rng.random((20, 3)), [[0.55, 0.55, 0.55]]])
    cnt, _ = counts(cell, frac, 5)
    assert cnt[-1] < 6 and (cnt[:-1] >= 6).all()  # only the far atom's row is redone alone
    assert np.abs(kernel(cell, frac, 5) - brute_force(cell, frac, 5)).max() < 1e-9


def test_rows_that_overflow_the_buffer_equal_brute_force():
    """A tight cluster in a big cell with a small k: the cluster's rows collect more
    candidates than the shared buffer holds and are redone alone."""
    rng = np.random.default_rng(4)
    cell = np.diag([30.0, 30.0, 30.0])
    frac = 0.01 + 0.12 * rng.random((100, 3))
    cnt, cap = counts(cell, frac, 2)
    assert (cnt > cap).any()
    assert np.abs(kernel(cell, frac, 2) - brute_force(cell, frac, 2)).max() < 1e-9


def test_kernel_rows_subset_and_left_handed_cell():
    rng = np.random.default_rng(5)
    cell = np.array([[4.1, 0.2, 0.0], [0.3, 3.7, 0.1], [0.5, -0.4, 5.2]])
    frac = rng.random((6, 3))
    ref = brute_force(cell, frac, 40)
    assert np.abs(kernel(cell, frac, 40, rows=[4, 1]) - ref[[4, 1]]).max() < 1e-9
    mirrored = cell * np.array([[1.0], [1.0], [-1.0]])  # det < 0, the same points
    assert np.linalg.det(mirrored) < 0
    assert np.abs(kernel(mirrored, frac * [1, 1, -1], 40) - ref).max() < 1e-9


def test_kernel_equals_brute_force_on_mp_structures():
    path = dataset_path("mp_elasticity_binaries.json.gz")
    with gzip.open(path, "rt") as fh:
        records = json.load(fh)[:60]
    for r in records:
        s = Structure.from_dict(r["structure"])
        if len(s) > 12:
            continue
        ref = brute_force(s.lattice.matrix, s.frac_coords, 50)
        w, d = neighbour_distances(s, 50)
        assert np.abs(d - ref).max() < 1e-9, r["mp_id"]
        assert np.abs(amd(s, 50) - ref.mean(axis=0)).max() < 1e-9


# ----------------------------------------------------------------------------- conversion


def test_fast_path_is_taken_and_equals_the_full_path():
    _, structures = read_csv_structures("carbon24.csv.gz", 40)
    for s in structures:
        assert pymatgen_arrays(s) is not None
        crystal = as_crystal(s)  # the full path: a validated Crystal
        np.testing.assert_array_equal(amd(s, 100), amd(crystal, 100))
        np.testing.assert_array_equal(pdd(s, 100), pdd(crystal, 100))


def test_oxidation_states_disorder_and_vacancies_take_the_fast_path():
    lattice = Lattice.cubic(4.0)
    ionic = Structure(lattice, [Species("Na", 1), Species("Cl", -1)], [[0, 0, 0], [0.5, 0.5, 0.5]])
    plain = Structure(lattice, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    mixed = Structure(lattice, [{"Na": 0.5, "K": 0.25}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    for s in (ionic, mixed):
        assert pymatgen_arrays(s) is not None
    np.testing.assert_array_equal(amd(ionic, 20), amd(plain, 20))
    cell, frac, occ = pymatgen_arrays(mixed)
    np.testing.assert_allclose(occ, [0.75, 1.0])
    tuple_input = (lattice.matrix, mixed.frac_coords, [{"Na": 0.5, "K": 0.25}, "Cl"])
    np.testing.assert_allclose(pdd(mixed, 20, collapse=False), pdd(tuple_input, 20, collapse=False), atol=1e-15)


def test_symmetry_path_for_large_structures_is_unchanged():
    diamond = Structure(Lattice.cubic(3.567), ["C"] * 8, [
        [0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5],
        [0.25, 0.25, 0.25], [0.75, 0.75, 0.25], [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]])
    big = diamond * (2, 2, 2)
    assert len(big) >= SYMMETRY_MIN_SITES and pymatgen_arrays(big, SYMMETRY_MIN_SITES - 1) is None
    np.testing.assert_allclose(amd(big, 60), amd(diamond, 60), atol=1e-10)
    ref = brute_force(diamond.lattice.matrix, diamond.frac_coords, 60)
    np.testing.assert_allclose(amd(big, 60), ref.mean(axis=0), atol=1e-10)


class CountingStructure(Structure):
    """A Structure that counts how often its composition (the formula's source) is read."""

    reads = 0

    @property
    def composition(self):
        type(self).reads += 1
        return super().composition


def test_formula_is_made_only_when_an_error_is_raised():
    good = CountingStructure(Lattice.cubic(3.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    CountingStructure.reads = 0
    amd(good, 50), pdd(good, 50), neighbour_distances(good, 50)
    assert CountingStructure.reads == 0
    overlapping = CountingStructure(Lattice.cubic(3.0), ["Na", "Cl"], [[0, 0, 0], [0.01, 0, 0]])
    with pytest.raises(InvalidStructureError, match=r"^NaCl: site 0 has a neighbour 0.03 A away \(overlapping"):
        amd(overlapping, 10)
    assert CountingStructure.reads > 0
    with pytest.raises(InvalidStructureError, match="^mine: site 0"):
        pdd(overlapping, 10, label="mine")


@pytest.mark.parametrize(
    "structure, message",
    [
        (Structure(Lattice.cubic(3.0), ["Na"], [[math.nan, 0, 0]]), "Na: site 0 has NaN or infinite coordinates"),
        (Structure(Lattice([[1, 0, 0], [2, 0, 0], [0, 0, 1]]), ["Na"], [[0, 0, 0]]), "Na: the cell is degenerate"),
        (Structure(Lattice.cubic(3.0), [DummySpecies("X")], [[0, 0, 0]]), "unknown element 'X'"),
        (Structure(Lattice.cubic(3.0), ["Na"] * 2, [[0, 0, 0], [0, 0, 0.02]]), "Na: site 0 has a neighbour 0.06 A away"),
        (Structure(Lattice([[3, 0, 0], [0, 3, 0], [0, 0, -0.05]]), ["Na"], [[0, 0, 0]]), "lattice vector shorter"),
    ],
)
def test_bad_structures_give_the_message_of_the_full_path(structure, message):
    """The fast path checks in the kernel; the message is the one as_crystal gives."""
    for fn in (amd, pdd):
        with pytest.raises(InvalidStructureError) as fast:
            fn(structure, 10)
        assert message in str(fast.value)
    try:
        as_crystal(structure, check_overlap=False)
    except InvalidStructureError as full:
        assert str(full) == str(fast.value)


def test_bad_k_on_a_bad_structure_names_the_structure_first():
    bad = Structure(Lattice.cubic(3.0), ["Na"], [[math.nan, 0, 0]])
    with pytest.raises(InvalidStructureError, match="NaN"):
        amd(bad, 0)
    good = Structure(Lattice.cubic(3.0), ["Na"], [[0, 0, 0]])
    with pytest.raises(InvalidStructureError, match=r"^Na: k must be a positive integer, got 0"):
        amd(good, 0)
    with pytest.raises(InvalidStructureError, match=r"^Na: k=10001 is too large"):
        pdd(good, 10_001)


def test_unusual_objects_take_the_full_path():
    assert pymatgen_arrays((np.eye(3), [[0, 0, 0]], ["C"])) is None
    assert pymatgen_arrays("not a structure") is None
    empty = Structure(Lattice.cubic(3.0), [], [])
    assert pymatgen_arrays(empty) is None
    with pytest.raises(InvalidStructureError, match="no sites"):
        amd(empty, 5)


# ----------------------------------------------------------------------------- docs and benchmark


def test_python_examples_of_docs_invariants_run():
    """Every ```python block of docs/invariants.md runs (its comparisons are asserted)."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "invariants.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "docs/invariants.md", "exec"), namespace)
        assert namespace["amd_distance"](namespace["a"], namespace["b"]) <= namespace["pdd_emd"](namespace["p"], namespace["q"])


def test_bench_user_call_runs_on_a_few_structures():
    """The documented benchmark's functions run (their timings are not asserted)."""
    import sys

    pytest.importorskip("amd")
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        import bench_user_call
    finally:
        sys.path.remove(str(root / "benchmarks"))
    _, structures = read_csv_structures("carbon24.csv.gz", 5)
    rows = bench_user_call.run(1, False, sets={"Carbon-24": structures})
    assert [(r["descriptor"], r["n"]) for r in rows] == [("AMD k=100", 5), ("PDD k=100", 5)]
    assert all(r["ours_ms"] > 0 and r["amd_ms"] > 0 and r["ratio"] > 0 for r in rows)
    stages = bench_user_call.stages(1, False, sets={"Carbon-24": structures}, clock="cpu")
    assert {r["side"] for r in stages} == {"ours", "amd"} and len(stages) == 15
