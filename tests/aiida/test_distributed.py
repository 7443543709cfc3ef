"""The distributed paths, run for real through aiida-core's ``core.local`` transport and
``core.direct`` scheduler (``aiida_localhost``): ``DistancesWorkChain`` and
``InvariantsWorkChain`` with a ``code`` give the nodes the in-process path gives (same
attributes, arrays, identifiers and hash), ties included; ``WorkerJobWorkChain`` splits a
block that runs out of memory and fails with the record named when the worker does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_crystinv.calculations.blocks import merge_blocks
from aiida_crystinv.calculations.functions import compute_distances, compute_invariants, compute_neighbours
from aiida_crystinv.data import CrystalDatasetData
from aiida_crystinv.exit_codes import EXIT
from aiida_crystinv.specs.jobs import WORKER_BASE_MB
from aiida_crystinv.workflows import InvariantsWorkChain
from aiida_crystinv.workflows.distances import DistancesWorkChain, mb_per_record
from aiida_crystinv.workflows.jobs import WorkerJobWorkChain

from .test_calcjob import assert_same_node

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WORKER = Path(sys.executable).parent / "crystinv-worker"


@pytest.fixture(scope="module")
def dataset(aiida_profile):
    """14 ionic crystals with exact duplicates (rows 3 = 9, 5 = 12 = 13): kNN ties."""
    from aiida_crystinv.sources.synthetic import ewald_landscape

    ids, structures, _, _ = ewald_landscape(n=11, seed=5)
    structures = structures + [structures[3], structures[5], structures[5]]
    ids = ids + ["copy-3", "copy-5a", "copy-5b"]
    structures.insert(9, structures.pop(11))
    ids.insert(9, ids.pop(11))
    return CrystalDatasetData.from_structures(structures, ids=ids).store()


@pytest.fixture(scope="module")
def pdd(dataset):
    return compute_invariants(dataset, orm.Dict({"name": "pdd", "k": 10}))["invariants"]


@pytest.fixture
def worker(aiida_localhost, aiida_code_installed):
    assert WORKER.exists(), f"{WORKER} is not installed (pip install -e .)"
    return aiida_code_installed(label="crystinv-worker", filepath_executable=str(WORKER), computer=aiida_localhost)


def _ok(node):
    assert node.is_finished_ok, f"[{node.exit_status}] {node.exit_message}\n" + "\n".join(
        log.message for log in orm.Log.collection.get_logs_for(node)
    )


def _jobs(node):
    return [d for d in node.called_descendants if d.process_type and d.process_type.endswith("crystinv.worker")]


def test_knn_graph_in_query_blocks_equals_one_process(pdd, worker):
    d, _ = pdd_ties(pdd)
    assert d  # the data has ties (exact duplicates): the tie-break is exercised
    results, node = run_get_node(DistancesWorkChain, invariants=pdd, k=orm.Int(4), code=worker,
                                 options=orm.Dict({"block_size": 5, "max_concurrent": 2, "threads": 1}))
    _ok(node)
    jobs = sorted(_jobs(node), key=lambda j: j.ctime)
    assert len(jobs) == 3  # 14 queries in blocks of at most 5, in two waves: the third after the first two
    assert jobs[2].ctime > max(j.mtime for j in jobs[:2]) and jobs[2].ctime > max(j.ctime for j in jobs[:2])
    assert all(j.inputs.task["n_jobs"] == 1 for j in jobs)
    assert any("1 to go" in log.message for log in orm.Log.collection.get_logs_for(node))
    assert_same_node(results["distances"], compute_neighbours(pdd, orm.Int(4))["distances"])
    # without a code: the calcfunction here, the same node
    here, node_here = run_get_node(DistancesWorkChain, invariants=pdd, k=orm.Int(4))
    _ok(node_here)
    assert not _jobs(node_here)
    assert_same_node(here["distances"], results["distances"])


def pdd_ties(pdd):
    """Pairs of records at distance 0 (exact duplicates)."""
    ref = compute_neighbours(pdd, orm.Int(1))["distances"]
    d, i = ref.get_knn()
    return [(q, int(i[q, 0])) for q in range(len(d)) if d[q, 0] == 0.0], ref


def test_knn_graph_with_reference_blocks_under_a_memory_bound(pdd, worker):
    """A bound that the whole reference set does not fit: the reference set is cut, the
    partial lists merged exactly."""
    mb = mb_per_record(pdd)
    bound = WORKER_BASE_MB + 2 * 3 * mb * len(pdd) * 0.9
    results, node = run_get_node(DistancesWorkChain, invariants=pdd, k=orm.Int(3), metric=orm.Str("pdd_emd"),
                                 code=worker, options=orm.Dict({"max_memory_mb": bound, "block_size": 7}))
    _ok(node)
    labels = [link.link_label for link in node.base.links.get_outgoing().all() if link.link_label.startswith("block_")]
    references = {tuple(label.split("_")[3:5]) for label in labels}
    assert len(references) >= 2, labels  # the reference set was cut
    merges = [c.base.links.get_incoming().all() for c in node.called if c.process_label == "merge_blocks"]
    assert len(merges) == 3  # per query block (2), then the query blocks together    assert_same_node(results["distances"], compute_neighbours(pdd, orm.Int(3))["distances"])


def test_condensed_and_dense_matrices_in_strips(pdd, worker):
    results, node = run_get_node(DistancesWorkChain, invariants=pdd, code=worker, options=orm.Dict({"block_size": 4}))
    _ok(node)
    assert len(_jobs(node)) == 4
    assert results["distances"].layout == "condensed"
    assert_same_node(results["distances"], compute_distances(pdd)["distances"])

    amd_metric = orm.Str("amd_linf")
    results, node = run_get_node(DistancesWorkChain, invariants=pdd, other=pdd, metric=amd_metric, code=worker,
                                 options=orm.Dict({"block_size": 6}))
    _ok(node)
    assert_same_node(results["distances"], compute_distances(pdd, other=pdd, metric=amd_metric)["distances"])


def test_invariants_workchain_with_a_code(dataset, worker):
    descriptor = orm.Dict({"name": "pdd", "k": 10})
    results, node = run_get_node(InvariantsWorkChain, dataset=dataset, descriptor=descriptor, chunk_size=orm.Int(5),
                                 code=worker)
    _ok(node)
    assert len(_jobs(node)) == 3
    here = run_get_node(InvariantsWorkChain, dataset=dataset, descriptor=descriptor, chunk_size=orm.Int(5))[0]
    assert_same_node(results["invariants"], here["invariants"])


def test_merge_blocks_refuses_blocks_that_do_not_tile(pdd):
    knn = compute_neighbours(pdd, orm.Int(2))["distances"]
    _, node = merge_blocks.run_get_node(block_0_14_0_14=knn, block_0_14_2_14=knn)
    assert node.exit_status == EXIT.ERROR_INCOMPATIBLE_INPUTS.status
    assert "do not tile" in node.exit_message
    _, node = merge_blocks.run_get_node(block_0_10_0_14=knn)
    assert node.exit_status == EXIT.ERROR_INCOMPATIBLE_INPUTS.status and "14 rows" in node.exit_message
    _, node = merge_blocks.run_get_node(something=knn)
    assert node.exit_status == EXIT.ERROR_INCOMPATIBLE_INPUTS.status and "block_<a0>_<a1>_<b0>_<b1>" in node.exit_message


def test_options_without_a_code_and_bad_options_are_refused(pdd):
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match="need a code"):
        run_get_node(DistancesWorkChain, invariants=pdd, k=orm.Int(2), options=orm.Dict({"block_size": 3}))
    with pytest.raises(ValueError, match="did you mean 'walltime'"):
        run_get_node(DistancesWorkChain, invariants=pdd, k=orm.Int(2), options=orm.Dict({"wall_time": 3}))
    with pytest.raises(ValueError, match="only 13 records"):
        run_get_node(DistancesWorkChain, invariants=pdd, k=orm.Int(14))
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


def test_a_block_out_of_memory_is_split_in_two(aiida_localhost, aiida_code_installed):
    """A real memory limit (``ulimit -v`` in the job script) that the whole block exceeds
    and its halves do not: the worker's MemoryError (361) splits the block; the joined
    halves equal the one-process node.

    The block: PDDs with k=10000 of 400 records (0.35 MB each, held until written). The
    limit was measured with one thread: the worker's address space peaks near 800 MB for
    400 records and 700 MB for 200 (fails at 650 MB), so 750 MB lets the halves through.
    """
    from aiida_crystinv.sources.synthetic import ewald_landscape

    ids, structures, _, _ = ewald_landscape(n=400, seed=5)
    dataset = CrystalDatasetData.from_structures(structures, ids=ids).store()
    code = aiida_code_installed(label="crystinv-worker-limited", filepath_executable=str(WORKER),
                                computer=aiida_localhost, prepend_text=f"ulimit -v {LIMIT_KB}")
    task = orm.Dict({"task": "invariants", "descriptor": {"name": "pdd", "k": BIG_K}, "n_jobs": 1})
    results, node = run_get_node(WorkerJobWorkChain, worker={"code": code, "task": task, "dataset": dataset})
    _ok(node)
    jobs = _jobs(node)
    assert jobs[0].exit_status == EXIT.ERROR_WORKER_OUT_OF_MEMORY.status
    assert len(jobs) == 3
    assert [j.inputs.rows.get_dict() for j in jobs[1:]] == [{"start": 0, "stop": 200}, {"start": 200, "stop": 400}]
    ref = compute_invariants(dataset, orm.Dict({"name": "pdd", "k": BIG_K}), orm.Dict({"start": 0, "stop": len(dataset)}))
    assert_same_node(results["invariants"], ref["invariants"])


def test_a_record_the_worker_cannot_compute_fails_the_block_at_once(aiida_profile, worker):
    from aiida_crystinv.invariants import Crystal

    species = ((("Na", 1.0),), (("Cl", 1.0),))
    good = Crystal(np.eye(3) * 4.0, np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]), species, "good")
    bad = Crystal(np.eye(3) * 4.0, np.array([[0.0, 0.0, 0.0], [0.005, 0.0, 0.0]]), species, "overlap-1")
    dataset = CrystalDatasetData.from_structures([good, bad, good], ids=["a", "overlap-1", "c"]).store()
    task = orm.Dict({"task": "invariants", "descriptor": "amd"})
    results, node = run_get_node(WorkerJobWorkChain, worker={"code": worker, "task": task, "dataset": dataset})
    assert node.exit_status == EXIT.ERROR_WORKER_RECORD_FAILED.status
    assert "'overlap-1'" in node.exit_message
    assert len(_jobs(node)) == 1 and not results


LIMIT_KB = 750_000
BIG_K = 10_000
