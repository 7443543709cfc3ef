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
