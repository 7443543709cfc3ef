"""WorkerCalculation + WorkerParser run for real: ``crystinv-worker`` through aiida-core's
``core.local`` transport and ``core.direct`` scheduler (``aiida_localhost``), no mocks.

Each output must be the node the calcfunction path makes for the same input: same
attributes, same repository files (byte for byte), same hash.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_crystinv.calculations.functions import compute_distances, compute_invariants, compute_neighbours
from aiida_crystinv.calculations.worker import WorkerCalculation
from aiida_crystinv.data import CrystalDatasetData
from aiida_crystinv.exit_codes import EXIT

pytestmark = pytest.mark.slow

WORKER = Path(sys.executable).parent / "crystinv-worker"


@pytest.fixture(scope="module")
def dataset(aiida_profile):
    """12 real-looking ionic crystals (the synthetic Ewald landscape), stored."""
    from aiida_crystinv.sources.synthetic import ewald_landscape

    ids, structures, targets, units = ewald_landscape(n=12, seed=3)
    return CrystalDatasetData.from_structures(structures, ids=ids, targets=targets, units=units).store()


@pytest.fixture(scope="module")
def pdd(dataset):
    """PDD invariants of the whole dataset from the calcfunction."""
    return compute_invariants(dataset, orm.Dict({"name": "pdd", "k": 12}))["invariants"]


@pytest.fixture
def worker(aiida_code_installed):
    assert WORKER.exists(), f"{WORKER} is not installed (pip install -e .)"
    return aiida_code_installed(label="crystinv-worker", filepath_executable=str(WORKER))


def _run(code, **inputs):
    inputs = {k: orm.Dict(v) if isinstance(v, dict) else v for k, v in inputs.items()}
    return run_get_node(WorkerCalculation, code=code, **inputs)


def _files(node):
    repo = node.base.repository
    return {name: repo.get_object_content(name, mode="rb") for name in repo.list_object_names()}


def assert_same_node(a, b):
    """Same class, attributes, repository bytes and hash."""
    assert type(a) is type(b)
    assert a.base.attributes.all == b.base.attributes.all
    assert _files(a) == _files(b)
    if a.is_stored and b.is_stored:  # aiida hashes stored nodes only
        assert a.base.caching.get_hash() == b.base.caching.get_hash()


def _ok(node):
    assert node.is_finished_ok, f"[{node.exit_status}] {node.exit_message}\n" + "\n".join(
        log.message for log in orm.Log.collection.get_logs_for(node)
    )


def test_invariants_of_a_block_equal_compute_invariants(dataset, worker, aiida_localhost):
    """A block of rows (staged as slices) and a whole dataset (copied from the node)."""
    results, node = _run(worker, task={"task": "invariants", "descriptor": {"name": "pdd", "k": 12}},
                         dataset=dataset, rows={"start": 3, "stop": 9})
    _ok(node)
    ref = compute_invariants(dataset, orm.Dict({"name": "pdd", "k": 12}), orm.Dict({"start": 3, "stop": 9}))["invariants"]
    assert results["invariants"].row_range == (3, 9)
    assert_same_node(results["invariants"], ref)

    # the provenance: the computer, the scheduler's job id, the retrieved folder
    assert node.computer.uuid == aiida_localhost.uuid
    assert node.get_job_id()
    retrieved = node.outputs.retrieved.base.repository.list_object_names()
    assert {"result.json", "worker.out", "worker.err", "_scheduler-stdout.txt", "_scheduler-stderr.txt"} <= set(retrieved)
    assert "out" not in retrieved  # the arrays are in the output node, not stored twice
    assert node.outputs.remote_folder.computer.uuid == aiida_localhost.uuid
    # only the rows of the block were staged
    remote = Path(node.outputs.remote_folder.get_remote_path())
    assert np.load(remote / "records" / "ids.npy").tolist() == dataset.ids[3:9]

    results, node = _run(worker, task={"task": "invariants", "descriptor": "amd"}, dataset=dataset)
    _ok(node)
    assert_same_node(results["invariants"], compute_invariants(dataset, orm.Str("amd"))["invariants"])


def test_distance_blocks_equal_compute_distances(dataset, pdd, worker):
    # an off-diagonal block: rows 0:5 against rows 5:12 -> dense, as compute_distances of the chunks
    results, node = _run(worker, task={"task": "distances", "a": {"rows": [0, 5]}, "b": {"rows": [5, 12]}}, invariants=pdd)
    _ok(node)
    chunk = {"descriptor": orm.Dict({"name": "pdd", "k": 12})}
    a = compute_invariants(dataset, chunk=orm.Dict({"start": 0, "stop": 5}), **chunk)["invariants"]
    b = compute_invariants(dataset, chunk=orm.Dict({"start": 5, "stop": 12}), **chunk)["invariants"]
    assert_same_node(results["distances"], compute_distances(a, other=b)["distances"])

    # the whole set against itself -> condensed, as compute_distances(invariants), with an AMD metric on PDDs
    results, node = _run(worker, task={"task": "distances", "metric": "amd_l2"}, invariants=pdd)
    _ok(node)
    assert results["distances"].layout == "condensed"
    assert_same_node(results["distances"], compute_distances(pdd, metric=orm.Str("amd_l2"))["distances"])


def test_knn_equals_compute_neighbours(pdd, worker):
    results, node = _run(worker, task={"task": "knn", "k": 4}, invariants=pdd)
    _ok(node)
    ref = compute_neighbours(pdd, orm.Int(4))["distances"]
    assert_same_node(results["distances"], ref)

    # a block of queries against the whole set: the rows of the single-process graph
    results, node = _run(worker, task={"task": "knn", "k": 4, "queries": {"rows": [4, 9]}}, invariants=pdd)
    _ok(node)
    d, i = results["distances"].get_knn()
    d_ref, i_ref = ref.get_knn()
    np.testing.assert_array_equal(d, d_ref[4:9])
    np.testing.assert_array_equal(i, i_ref[4:9])
    assert results["distances"].row_ids == pdd.ids[4:9] and results["distances"].col_ids == pdd.ids


def test_a_worker_failure_on_one_record_names_it(aiida_profile, worker):
    """A record with overlapping atoms (a Crystal stored without the overlap check): the
    invariant cannot be computed; the job fails with the record named, nothing is attached."""
    from aiida_crystinv.invariants import Crystal

    species = ((("Na", 1.0),), (("Cl", 1.0),))
    good = Crystal(np.eye(3) * 4.0, np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]), species, "good")
    bad = Crystal(np.eye(3) * 4.0, np.array([[0.0, 0.0, 0.0], [0.005, 0.0, 0.0]]), species, "overlap-1")
    dataset = CrystalDatasetData.from_structures([good, good, bad, good], ids=["a", "b", "overlap-1", "c"]).store()
    results, node = _run(worker, task={"task": "invariants", "descriptor": "amd"}, dataset=dataset)
    assert node.exit_status == EXIT.ERROR_WORKER_RECORD_FAILED.status
    assert "'overlap-1' (row 2)" in node.exit_message and "0.02 A" in node.exit_message
    assert "invariants" not in results
    assert len(node.exit_message) <= 400 + len(EXIT.ERROR_WORKER_RECORD_FAILED.message)
    # the calcfunction fails on the same record
    ref = compute_invariants.run_get_node(dataset=dataset, descriptor=orm.Str("amd"))[1]
    assert ref.exit_status == EXIT.ERROR_INVARIANT_FAILED.status and "overlap-1" in ref.exit_message


def test_a_task_the_worker_cannot_read(dataset, aiida_code_installed):
    """A worker older than this side (simulated by the code's prepend_text raising the task's
    schema version): the worker's exit code 2 -> 200, with its message."""
    older = aiida_code_installed(
        label="crystinv-worker-older", filepath_executable=str(WORKER),
        prepend_text="sed -i 's/\"schema_version\": 1/\"schema_version\": 2/' task.json",
    )
    results, node = _run(older, task={"task": "invariants", "descriptor": "amd"}, dataset=dataset)
    assert node.exit_status == EXIT.ERROR_READING_INPUT.status, node.exit_message
    assert "version 2 is newer than this worker understands" in node.exit_message


def test_missing_or_corrupt_outputs(pdd, worker, tmp_path):
    """The parser on a real job's files, then on damaged copies of them."""
    import shutil

    from aiida_crystinv.parsers.worker import WorkerParser

    _, node = _run(worker, task={"task": "knn", "k": 3}, invariants=pdd)
    _ok(node)
    remote_out = Path(node.outputs.remote_folder.get_remote_path()) / "out"

    def parse(damage):
        folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        shutil.copytree(remote_out, folder / "out")
        damage(folder / "out")
        results, calc = WorkerParser.parse_from_node(node, store_provenance=False, retrieved_temporary_folder=str(folder))
        return results, calc

    results, calc = parse(lambda out: None)
    assert calc.exit_status == 0
    assert_same_node(results["distances"], node.outputs.distances)

    results, calc = parse(lambda out: (out / "indices.npy").unlink())
    assert calc.exit_status == EXIT.ERROR_OUTPUT_FILE_MISSING.status and "out/indices.npy" in calc.exit_message
    assert not results

    def truncate(out):
        data = (out / "distances.npy").read_bytes()
        (out / "distances.npy").write_bytes(data[: len(data) // 2])

    results, calc = parse(truncate)
    assert calc.exit_status == EXIT.ERROR_OUTPUT_FILE_CORRUPT.status and "out/distances.npy" in calc.exit_message

    def out_of_range(out):
        indices = np.load(out / "indices.npy")
        indices[0, 0] = 99
        np.save(out / "indices.npy", indices)

    results, calc = parse(out_of_range)
    assert calc.exit_status == EXIT.ERROR_OUTPUT_FILE_CORRUPT.status and "outside the 12 records" in calc.exit_message


def test_no_result_json(dataset, aiida_code_installed, tmp_path):
    """A code that exits without running the worker: no result.json -> 350; a job stopped
    by a signal (bash reports 'Killed' on the scheduler's stderr) -> 190."""
    true = aiida_code_installed(label="true", filepath_executable="/bin/true")
    results, node = _run(true, task={"task": "invariants", "descriptor": "amd"}, dataset=dataset)
    assert node.exit_status == EXIT.ERROR_RESULT_MISSING.status, node.exit_message
    assert not results.get("invariants")
    assert "result.json" not in node.outputs.retrieved.base.repository.list_object_names()

    script = tmp_path / "killed.sh"
    script.write_text("#!/bin/sh\nkill -KILL $$\n")
    script.chmod(0o755)
    killed = aiida_code_installed(label="killed", filepath_executable=str(script))
    results, node = _run(killed, task={"task": "invariants", "descriptor": "amd"}, dataset=dataset)
    assert node.exit_status == EXIT.ERROR_SCHEDULER_JOB_KILLED.status, node.exit_message
    assert "Killed" in node.exit_message


def _count():
    return orm.QueryBuilder().append(orm.Node).count()


@pytest.mark.parametrize(
    "task, data, match",
    [
        ({"task": "invariants", "descriptor": "amd", "on_eror": "skip"}, "dataset", "did you mean 'on_error'"),
        ({"task": "invariants", "descriptor": {"name": "pdd", "k": 0}}, "dataset", "descriptor"),
        ({"task": "invariants", "descriptor": "amd", "elements": ["Na"]}, "dataset", "task.elements"),
        ({"task": "knn", "k": 3}, "dataset", "takes 'invariants'"),
        ({"task": "knn", "k": 12}, "pdd", "only 11 records can be neighbours"),
        ({"task": "distances", "a": {"rows": [0, 40]}}, "pdd", "not inside the 12 records"),
        ({"task": "distances", "a": {"dir": "x"}}, "pdd", "the job chooses the folders"),
        ({"task": "distances", "metric": "grid_emd"}, "pdd", "metric"),
        ({"task": "distances", "descriptor": "amd"}, "pdd", "not the descriptor of the invariants"),
    ],
)
def test_a_bad_task_never_creates_a_node(dataset, pdd, worker, task, data, match):
    inputs = {"dataset": dataset} if data == "dataset" else {"invariants": pdd}
    before = _count()
    with pytest.raises(ValueError, match=match):
        _run(worker, task=task, **inputs)
    assert _count() == before
