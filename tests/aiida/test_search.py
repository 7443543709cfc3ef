"""Similarity search: the k nearest reference records to new structures, exact, with the
reference invariants computed once and reused."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_crystinv.cli import cmd_crystinv
from aiida_crystinv.data import CrystalDatasetData, InvariantsData
from aiida_crystinv.distances import cdist
from aiida_crystinv.invariants import pdd
from aiida_crystinv.workflows.neighbours import similarity_search
from tests.conftest import read_csv_structures


@pytest.fixture(scope="module")
def sets():
    ids, structures = read_csv_structures("carbon24.csv.gz", 72)
    reference = CrystalDatasetData.from_structures(structures[:60], ids=ids[:60]).store()
    # queries: 11 other structures and an exact copy of reference record 7 under a new name
    queries = CrystalDatasetData.from_structures(structures[60:] + [structures[7]], ids=ids[60:] + ["copy-of-7"]).store()
    return reference, queries, structures


def _reference_invariants(reference):
    qb = orm.QueryBuilder().append(InvariantsData, filters={"attributes.dataset_uuid": reference.uuid})
    return [n for (n,) in qb.all()]


def test_search_equals_brute_force_and_reuses_the_reference(sets):
    reference, queries, structures = sets
    spec = {"name": "pdd", "k": 30}
    result, node = similarity_search(queries, reference, spec, k=4)
    assert node.is_finished_ok and not result.reused
    # brute force: every query against every reference record, by the package's cdist on
    # PDDs computed here from the structures
    qp = [pdd(s, 30) for s in structures[60:] + [structures[7]]]
    rp = [pdd(s, 30) for s in structures[:60]]
    D = cdist(qp, rp)
    d, idx = result.knn.get_knn()
    for q in range(len(qp)):
        order = np.lexsort((np.arange(60), D[q]))[:4]
        np.testing.assert_array_equal(idx[q], order)
        np.testing.assert_allclose(d[q], D[q, order], atol=1e-12)
    rows = result.rows()
    assert rows[-4][:4] == ("copy-of-7", 1, reference.ids[7], 0.0)
    assert len(_reference_invariants(reference)) == 1
    # a second search against the same reference reuses its invariants
    again, _ = similarity_search(queries, reference, spec, k=2)
    assert again.reused and again.reference_invariants.pk == result.reference_invariants.pk
    assert len(_reference_invariants(reference)) == 1


def test_search_refuses_before_storing(sets):
    reference, queries, _ = sets
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ValueError, match="reference set has 60"):
        similarity_search(queries, reference, {"name": "amd", "k": 10}, k=61)
    with pytest.raises(ValueError, match="unknown"):
        similarity_search(queries, reference, {"name": "nope"}, k=1)
    assert orm.QueryBuilder().append(orm.Node).count() == before


def test_search_command_from_a_cif_file(sets, tmp_path):
    from pymatgen.io.cif import CifWriter

    reference, _, structures = sets
    path = tmp_path / "mine.cif"
    path.write_text(str(CifWriter(structures[12])) + str(CifWriter(structures[65])))
    result = CliRunner().invoke(cmd_crystinv, ["search", str(path), "--reference", str(reference.pk), "-k", "2",
                                               "-d", "amd", "-p", "k=50"])
    assert result.exit_code == 0, result.output
    assert "the 2 nearest of 60 reference structures" in result.output
    first = next(line for line in result.output.splitlines() if line.strip().startswith(("C", "0", "1")) and "(" in line)
    assert f"{reference.ids[12]} (0.0000)" in first
    missing = CliRunner().invoke(cmd_crystinv, ["search", "no-such-thing", "--reference", str(reference.pk)])
    assert missing.exit_code != 0 and "no such file, dataset or group" in missing.output
