"""Matrix functions dispatch every metric to the right pair distance, in any block size."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from scipy.spatial.distance import squareform

from aiida_crystinv.distances import (
    amd_distance,
    cdist,
    composition_distance,
    grid_emd,
    metric_names,
    nearest_neighbours,
    pdd_emd,
    pdist,
    rdf_emd,
)
from aiida_crystinv.invariants import amd, composition, grid, pdd, rdf


@pytest.fixture(scope="module")
def structures():
    rng = np.random.default_rng(3)
    out = []
    for i in range(9):
        lattice = Lattice.from_parameters(*(3.5 + rng.random(3)), *(85 + 10 * rng.random(3)))
        frac = rng.random((2, 3))
        frac[1] = (frac[0] + 0.5) % 1.0
        out.append(Structure(lattice, ["Na", "Cl"] if i % 2 else ["Si", "C"], frac))
    return out


def _pairwise(items, fn):
    n = len(items)
    return np.array([[fn(items[i], items[j]) for j in range(n)] for i in range(n)])


@pytest.mark.parametrize("block_mb", [0.0001, 512.0])
def test_every_metric_matches_its_pair_function(structures, block_mb):
    cases = {
        "amd_linf": (np.array([amd(s, 20) for s in structures]), amd_distance),
        "amd_l1": (np.array([amd(s, 20) for s in structures]), lambda a, b: amd_distance(a, b, "l1")),
        "amd_l2": (np.array([amd(s, 20) for s in structures]), lambda a, b: amd_distance(a, b, "l2")),
        "pdd_emd": ([pdd(s, 20) for s in structures], pdd_emd),
        "grid_emd": (np.array([grid(s, n_shells=20, cutoff=6.0) for s in structures]), grid_emd),
        "rdf_emd": (np.array([rdf(s, cutoff=6.0) for s in structures]), rdf_emd),
        "composition_l1": (np.array([composition(s) for s in structures]), composition_distance),
    }
    assert set(cases) == set(metric_names())
    for metric, (items, fn) in cases.items():
        ref = _pairwise(items, fn)
        full = cdist(items, items, metric, memory_limit_mb=block_mb)
        assert np.allclose(full, ref, atol=1e-10), metric
        assert np.allclose(squareform(pdist(items, metric)), ref, atol=1e-10), metric
        d, i = nearest_neighbours(items, 2, metric)
        np.fill_diagonal(ref, np.inf)
        expected = np.array([np.lexsort((np.arange(len(r)), r))[:2] for r in ref])
        assert np.allclose(d, np.take_along_axis(ref, expected, 1), atol=1e-10), metric


def test_bad_arguments(structures):
    amds = np.array([amd(s, 10) for s in structures])
    with pytest.raises(ValueError, match="unknown metric"):
        cdist(amds, amds, "euclid")
    with pytest.raises(ValueError, match="different length"):
        cdist(amds, amds[:, :5], "amd_linf")
    with pytest.raises(ValueError, match="k = 20 neighbours"):
        nearest_neighbours(amds, 20, "amd_linf")
    with pytest.raises(ValueError, match="compare PDDs of equal k"):
        pdd_emd(pdd(structures[0], 5), pdd(structures[1], 6))
    bad = amds.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cdist(bad, amds, "amd_linf")


def test_k_smallest_equals_a_stable_sort_with_ties_and_inf():
    """The partition-based selection of nearest_neighbours gives the first k of a stable
    sort: ties (many here, integer values) go to the lower index, inf last."""
    from aiida_crystinv.distances._matrix import _k_smallest

    rng = np.random.default_rng(0)
    for trial in range(2000):
        n = int(rng.integers(1, 60))
        row = rng.integers(0, 5, n).astype(float) if trial % 2 else rng.random(n)
        if trial % 7 == 0:
            row[rng.integers(0, n)] = np.inf
        k = int(rng.integers(1, n + 1))
        values, order = _k_smallest(row, k)
        expected = np.argsort(row, kind="stable")[:k]
        assert np.array_equal(order, expected), (row, k)
        assert np.array_equal(values, row[expected])


def test_pack_pdds_rows_weights_and_errors():
    """Packed rows are the PDD rows without weights, weights normalised per PDD, offsets
    the cumulative row counts; a bad PDD is named by its index."""
    from aiida_crystinv.distances._emd import pack_pdds

    rng = np.random.default_rng(1)
    pdds = [np.column_stack([rng.integers(1, 5, m).astype(float), np.sort(rng.random((m, 6)), axis=1)])
            for m in (1, 3, 7, 2)]
    rows, weights, offsets = pack_pdds(pdds)
    assert offsets.tolist() == [0, 1, 4, 11, 13]
    for i, p in enumerate(pdds):
        s, e = offsets[i], offsets[i + 1]
        assert np.array_equal(rows[s:e], p[:, 1:])
        np.testing.assert_allclose(weights[s:e], p[:, 0] / p[:, 0].sum(), rtol=0, atol=1e-15)
    bad = [p.copy() for p in pdds]
    bad[2][1, 3] = np.nan
    with pytest.raises(ValueError, match="PDD 2 contains NaN"):
        pack_pdds(bad)
    bad = [p.copy() for p in pdds]
    bad[3][0, 0] = 0.0
    with pytest.raises(ValueError, match="PDD 3 has non-positive row weights"):
        pack_pdds(bad)


def test_pdd_emd_blocks_of_compiled_calls_give_the_same_answer(monkeypatch):
    """The PDD-EMD kernels are called in blocks (a Ctrl-C is seen between two calls): with
    tiny blocks (many calls, a partial last one), pdist, cdist and the pruned k-NN equal
    the pair function (POT-checked `pdd_emd`) by brute force, and progress reaches the end."""
    import aiida_crystinv.distances._matrix as matrix

    rng = np.random.default_rng(11)
    items = []
    for i in range(23):
        lattice = Lattice.from_parameters(*(3.2 + rng.random(3)), *(80 + 20 * rng.random(3)))
        items.append(pdd(Structure(lattice, ["Na", "Cl", "K"][: 1 + i % 3], rng.random((1 + i % 3, 3))), 12))
    ref = _pairwise(items, pdd_emd)
    monkeypatch.setattr(matrix, "_EMDS_PER_CALL", 50)  # 2 row pairs per pdist call, 4 rows per cdist call
    monkeypatch.setattr(matrix, "_QUERIES_PER_CALL", 5)  # 23 queries: 4 full calls and one of 3
    seen = []
    assert np.allclose(squareform(pdist(items, "pdd_emd", progress=lambda d, n: seen.append((d, n)))), ref, atol=1e-10)
    assert len(seen) == 6 and seen[-1] == (23, 23), seen
    assert np.allclose(cdist(items, items[:7], "pdd_emd"), ref[:, :7], atol=1e-10)
    d, i = nearest_neighbours(items, 3, "pdd_emd")
    np.fill_diagonal(ref, np.inf)
    expected = np.array([np.lexsort((np.arange(len(r)), r))[:3] for r in ref])
    assert np.array_equal(i, expected)
    assert np.allclose(d, np.take_along_axis(ref, expected, 1), atol=1e-10)


def test_amd_linf_neighbours_are_brute_force_with_ties_and_duplicates(monkeypatch):
    """The pruned AMD L-inf search (sweep in one coordinate's order, stop when its gap
    exceeds the k-th distance) equals SciPy's Chebyshev cdist sorted stably, on rounded
    vectors full of ties and exact duplicates, for self-search (with and without the item
    itself) and for separate queries, across several compiled calls."""
    import aiida_crystinv.distances._linf_knn as linf
    from scipy.spatial.distance import cdist as scipy_cdist

    monkeypatch.setattr(linf, "QUERIES_PER_CALL", 7)
    rng = np.random.default_rng(5)
    for trial in range(12):
        n, dim = int(rng.integers(3, 120)), int(rng.integers(1, 9))
        items = np.round(rng.random((n, dim)) * 4, int(rng.integers(0, 2)))
        if trial % 3 == 0:
            items[: n // 2] = items[0]
        queries = np.round(rng.random((int(rng.integers(1, 30)), dim)) * 4, 1)
        for qs, exclude in ((None, True), (None, False), (queries, True)):
            k = int(rng.integers(1, n - 1))
            d, i, stats = nearest_neighbours(items, k, "amd_linf", queries=qs, exclude_self=exclude, return_stats=True)
            full = scipy_cdist(items if qs is None else qs, items, "chebyshev")
            if qs is None and exclude:
                np.fill_diagonal(full, np.inf)
            expected = np.array([np.lexsort((np.arange(n), row))[:k] for row in full])
            assert np.array_equal(i, expected), (trial, exclude)
            assert np.array_equal(d, np.take_along_axis(full, expected, 1))
            assert 0 < stats <= 1
