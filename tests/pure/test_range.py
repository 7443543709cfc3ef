"""Every pair within eps (pairs_within) against brute force, and the groups
(duplicate_groups) under reordering."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist as scipy_cdist
from scipy.spatial.distance import squareform

from aiida_crystinv.distances import pdist
from aiida_crystinv.distances._range import duplicate_groups, pairs_within
from aiida_crystinv.invariants import amd, pdd
from tests.conftest import read_csv_structures


@pytest.fixture(scope="module")
def carbon():
    """120 Carbon-24 PDDs (k=30) plus exact copies of 6 of them (distance 0: eps=0 pairs)."""
    ids, structures = read_csv_structures("carbon24.csv.gz", 120)
    pdds = [pdd(s, 30) for s in structures]
    amds = [amd(s, 30) for s in structures]
    for c in (3, 17, 17, 40, 77, 101):
        pdds.append(pdds[c].copy())
        amds.append(amds[c].copy())
        ids.append(f"{ids[c]}-copy{len(ids)}")
    return ids, pdds, np.array(amds)


def _brute(D: np.ndarray, eps: float) -> set[tuple[int, int]]:
    i, j = np.nonzero(np.triu(D <= eps, k=1))
    return set(zip(i.tolist(), j.tolist()))


@pytest.mark.parametrize("eps", [0.0, 0.005, 0.02, 0.1])
def test_pdd_pairs_equal_brute_force(carbon, eps):
    _, pdds, _ = carbon
    D = squareform(pdist(pdds))  # every pair by the same EMD kernel: ties compare exactly
    i, j, d = pairs_within(pdds, eps)
    assert set(zip(i.tolist(), j.tolist())) == _brute(D, eps)
    np.testing.assert_array_equal(d, D[i, j])
    assert np.all(i < j)


def test_pdd_pairs_values_against_pot_and_ties(carbon):
    """The distances agree with POT's EMD, and a pair at exactly eps is kept (<=)."""
    ot = pytest.importorskip("ot")
    _, pdds, _ = carbon
    i, j, d = pairs_within(pdds, 0.05)
    assert len(i) > 10
    for a, b, value in list(zip(i, j, d))[:40]:
        pa, pb = pdds[a], pdds[b]
        cost = np.abs(pa[:, None, 1:] - pb[None, :, 1:]).max(axis=2)
        wa, wb = np.ascontiguousarray(pa[:, 0]), np.ascontiguousarray(pb[:, 0])
        assert value == pytest.approx(ot.emd2(wa, wb, np.ascontiguousarray(cost)), abs=1e-9)
    tie = float(np.sort(d[d > 0])[len(d[d > 0]) // 2])  # a distance that occurs: eps equal to it
    ti, tj, td = pairs_within(pdds, tie)
    assert np.any(td == tie)
    assert set(zip(ti.tolist(), tj.tolist())) == _brute(squareform(pdist(pdds)), tie)


def test_exact_copies_at_eps_zero(carbon):
    ids, pdds, _ = carbon
    i, j, d = pairs_within(pdds, 0.0)
    pairs = set(zip(i.tolist(), j.tolist()))
    n = 120
    assert {(3, n), (17, n + 1), (17, n + 2), (n + 1, n + 2), (40, n + 3), (77, n + 4), (101, n + 5)} <= pairs
    assert np.all(d == 0.0)


@pytest.mark.parametrize("metric", ["amd_linf", "amd_l1", "amd_l2"])
def test_amd_pairs_equal_scipy(carbon, metric):
    _, _, amds = carbon
    scipy_name = {"amd_linf": "chebyshev", "amd_l1": "cityblock", "amd_l2": "euclidean"}[metric]
    D = scipy_cdist(amds, amds, scipy_name)
    for eps in (0.0, 0.01, 0.05):
        i, j, d = pairs_within(amds, eps, metric=metric)
        expected = _brute(D, eps)
        assert set(zip(i.tolist(), j.tolist())) == expected
        np.testing.assert_allclose(d, D[i, j], atol=1e-12)


def test_groups_are_connected_components_and_stable_under_reordering(carbon):
    ids, pdds, _ = carbon
    i, j, _ = pairs_within(pdds, 0.02)
    groups = duplicate_groups(len(pdds), i, j, ids)
    # components by an independent union: scipy's connected_components on the pair graph
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(pdds), len(pdds)))
    _, labels = connected_components(graph, directed=False)
    expected = {frozenset(ids[x] for x in np.flatnonzero(labels == lab)) for lab in set(labels.tolist())
                if np.sum(labels == lab) > 1}
    assert {frozenset(ids[x] for x in g) for g in groups} == expected
    assert all(ids[g[0]] == min(ids[x] for x in g) for g in groups)  # the representative
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(pdds))
    pi, pj, _ = pairs_within([pdds[p] for p in perm], 0.02)
    shuffled = duplicate_groups(len(pdds), pi, pj, [ids[p] for p in perm])
    as_ids = [[ids[perm[x]] for x in g] for g in shuffled]
    assert as_ids == [[ids[x] for x in g] for g in groups]  # same groups, same representatives, same order


def test_bad_eps_is_refused(carbon):
    _, pdds, _ = carbon
    for eps in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps must be"):
            pairs_within(pdds, eps)
