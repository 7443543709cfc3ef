"""Calcfunctions and the chunked WorkChain: outputs, provenance links, exit codes."""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory, WorkflowFactory

from aiida_crystinv.calculations.functions import (
    collect_structures,
    compute_distances,
    compute_invariant_set,
    compute_invariants,
    extract_structures,
    import_dataset,
    import_materials_project,
    merge_invariants,
    compute_neighbours,
    structure_invariants,
)
from aiida_crystinv.data import CrystalDatasetData
from aiida_crystinv.exit_codes import EXIT
from aiida_crystinv.invariants import amd, pdd
from aiida_crystinv.workflows import InvariantsWorkChain

from .test_importers import BAD_BLOCK, GOOD_BLOCK, three_blocks


def jsonfile(records, name="mp.json.gz") -> orm.SinglefileData:
    return orm.SinglefileData(io.BytesIO(gzip.compress(json.dumps(records).encode())), filename=name)


@pytest.fixture
def mp_dataset(mp_records) -> CrystalDatasetData:
    results, node = import_dataset.run_get_node(file=jsonfile(mp_records[:24]))
    assert node.is_finished_ok, node.exit_message
    return results["dataset"]


def assert_refused(launch, match: str) -> None:
    """An input refused at the ports: a ValueError naming the problem, and no node at all."""
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ValueError, match=match):
        launch()
    assert orm.QueryBuilder().append(orm.Node).count() == before


def assert_failed_without_outputs(node, code) -> None:
    assert node.is_finished and not node.is_finished_ok
    assert node.exit_status == code.status, node.exit_message
    assert not node.base.links.get_outgoing(link_type=LinkType.CREATE).all(), "a failed process stored an output"


def test_entry_points():
    assert CalculationFactory("crystinv.import_dataset") is import_dataset
    assert CalculationFactory("crystinv.compute_invariants") is compute_invariants
    assert CalculationFactory("crystinv.import_materials_project") is import_materials_project
    assert WorkflowFactory("crystinv.invariants") is InvariantsWorkChain


@pytest.mark.postgres
def test_import_and_provenance(mp_records, mp_dataset):
    dataset = mp_dataset
    assert len(dataset) == 24 and dataset.is_stored
    creator = dataset.creator
    assert creator.process_type.endswith("import_dataset")
    assert creator.inputs.file.filename == "mp.json.gz"
    assert dataset.source["source_md5"] and dataset.ids[0] == mp_records[0]["mp_id"]


@pytest.mark.postgres
def test_import_on_error_fail_and_skip():
    text = three_blocks().encode()
    file = orm.SinglefileData(io.BytesIO(text), filename="three.cif")
    _, node = import_dataset.run_get_node(file=file)
    assert_failed_without_outputs(node, EXIT.ERROR_INVALID_RECORD)
    assert "'broken'" in node.exit_message and "block 2" in node.exit_message
    results, node = import_dataset.run_get_node(file=file, options=orm.Dict({"on_error": "skip"}))
    assert node.is_finished_ok
    assert results["dataset"].ids == ["first", "third"]
    assert results["dataset"].skipped[0]["id"] == "broken"


@pytest.mark.postgres
def test_import_bad_files():
    empty = orm.SinglefileData(io.BytesIO(b""), filename="empty.cif")
    _, node = import_dataset.run_get_node(file=empty)
    assert_failed_without_outputs(node, EXIT.ERROR_READING_INPUT)
    assert "empty" in node.exit_message
    wrong = orm.SinglefileData(io.BytesIO(b'{"a": 1}'), filename="data.cif")
    _, node = import_dataset.run_get_node(file=wrong)
    assert_failed_without_outputs(node, EXIT.ERROR_READING_INPUT)
    _, node = import_dataset.run_get_node(file=wrong, options=orm.Dict({"format": "json"}))
    assert_failed_without_outputs(node, EXIT.ERROR_READING_INPUT)
    assert_refused(lambda: import_dataset.run_get_node(file=wrong, options=orm.Dict({"colour": "red"})), "colour")
    assert_refused(lambda: import_dataset.run_get_node(file=wrong, options=orm.Dict({"on_error": "ignore"})), "on_error")
    only_bad = orm.SinglefileData(io.BytesIO(BAD_BLOCK.encode()), filename="bad.cif")
    _, node = import_dataset.run_get_node(file=only_bad, options=orm.Dict({"on_error": "skip"}))
    assert_failed_without_outputs(node, EXIT.ERROR_NO_VALID_RECORDS)


def test_import_folder_and_materials_project_errors(tmp_path, monkeypatch):
    folder = orm.FolderData()
    folder.base.repository.put_object_from_bytes(GOOD_BLOCK.format(name="x", occ=0.5).encode(), "a.cif")
    folder.base.repository.put_object_from_bytes(GOOD_BLOCK.format(name="y", occ=1).encode(), "b.cif")
    results, node = import_dataset.run_get_node(file=folder)
    assert node.is_finished_ok and results["dataset"].ids == ["a", "b"]
    monkeypatch.delenv("MP_API_KEY", raising=False)
    _, node = import_materials_project.run_get_node(query=orm.Dict({"material_ids": ["mp-149"]}))
    assert_failed_without_outputs(node, EXIT.ERROR_SOURCE_FAILED)
    assert "mp-api" in node.exit_message or "MP_API_KEY" in node.exit_message


def test_wrong_node_type_is_a_clear_error(mp_dataset):
    with pytest.raises(ValueError, match=r"dataset.*CrystalDatasetData"):
        compute_invariants(dataset=orm.Int(1), descriptor=orm.Dict({"name": "amd"}))
    with pytest.raises(ValueError, match="invariants"):
        compute_distances(invariants=mp_dataset)
    _, node = merge_invariants.run_get_node(a=orm.Int(1))
    assert_failed_without_outputs(node, EXIT.ERROR_WRONG_NODE_TYPE)
    _, node = collect_structures.run_get_node(a=orm.Int(1))
    assert_failed_without_outputs(node, EXIT.ERROR_WRONG_NODE_TYPE)


@pytest.mark.postgres
def test_compute_invariants_matches_pure_layer(mp_dataset):
    results, node = compute_invariants.run_get_node(dataset=mp_dataset, descriptor=orm.Dict({"name": "pdd", "k": 12}))
    assert node.is_finished_ok
    inv = results["invariants"]
    assert inv.ids == mp_dataset.ids and inv.dataset_uuid == mp_dataset.uuid
    assert inv.parameters == {"k": 12, "collapse": True, "collapse_tol": 1e-4}
    for i in (0, 7, 23):
        np.testing.assert_allclose(inv.get_pdds()[i], pdd(mp_dataset.get_structure(i), 12), atol=1e-12)
    assert inv.creator.inputs.dataset.uuid == mp_dataset.uuid
    results, node = compute_invariants.run_get_node(
        dataset=mp_dataset, descriptor=orm.Dict({"name": "amd", "k": 5}), chunk=orm.Dict({"start": 3, "stop": 9})
    )
    chunk = results["invariants"]
    assert chunk.ids == mp_dataset.ids[3:9] and chunk.row_range == (3, 9)
    np.testing.assert_allclose(chunk.get_stack()[0], amd(mp_dataset.get_structure(3), 5))


@pytest.mark.postgres
def test_compute_invariant_set(mp_dataset):
    results, node = compute_invariant_set.run_get_node(
        dataset=mp_dataset, descriptors=orm.List([{"name": "amd", "k": 5}, "pdd", {"name": "pdd", "k": 7}])
    )
    assert node.is_finished_ok, node.exit_message
    assert set(results) == {"amd", "pdd", "pdd_2"}
    assert results["pdd"].parameters["k"] == 100 and results["pdd_2"].parameters["k"] == 7
    single = compute_invariants(dataset=mp_dataset, descriptor=orm.Dict({"name": "amd", "k": 5}))["invariants"]
    np.testing.assert_array_equal(results["amd"].get_stack(), single.get_stack())
    assert all(r.creator.uuid == node.uuid for r in results.values())
    assert_refused(lambda: compute_invariant_set.run_get_node(dataset=mp_dataset, descriptors=orm.List(["amd", "nope"])),
                   "unknown invariant")
    assert_refused(lambda: compute_invariant_set.run_get_node(dataset=mp_dataset, descriptors=orm.List([])), "no descriptors")


def test_unknown_descriptor_and_parameters(mp_dataset):
    def launch(descriptor):
        return lambda: compute_invariants.run_get_node(dataset=mp_dataset, descriptor=orm.Dict(descriptor))

    assert_refused(launch({"name": "sine_matrix"}), "unknown invariant .sine_matrix.; use one of amd")
    assert_refused(launch({"name": "amd", "kk": 3}), "'kk' .did you mean 'k'")
    assert_refused(launch({"name": "amd", "k": -3}), r"descriptor.k: Input should be greater than or equal to 1")
    assert_refused(launch({"name": "rdf", "normalise": "bogus"}), "normalise")
    _, node = compute_invariants.run_get_node(
        dataset=mp_dataset, descriptor=orm.Str("amd"), chunk=orm.Dict({"start": 5, "stop": 500})
    )
    assert_failed_without_outputs(node, EXIT.ERROR_INVALID_SPEC)


@pytest.mark.postgres
def test_distances_and_neighbours(mp_dataset):
    pdds = compute_invariants(dataset=mp_dataset, descriptor=orm.Dict({"name": "pdd", "k": 10}))["invariants"]
    amds = compute_invariants(dataset=mp_dataset, descriptor=orm.Dict({"name": "amd", "k": 10}))["invariants"]
    results, node = compute_distances.run_get_node(invariants=pdds)
    assert node.is_finished_ok
    full = results["distances"]
    assert full.metric == "pdd_emd" and full.layout == "condensed"
    matrix = full.get_matrix()
    assert matrix.shape == (24, 24) and np.allclose(matrix, matrix.T)
    assert full.invariants_parameters["parameters"]["k"] == 10
    # AMD L-inf is a lower bound of PDD EMD
    amd_matrix = compute_distances(invariants=amds, metric=orm.Dict({"name": "amd_linf"}))["distances"].get_matrix()
    assert np.all(amd_matrix <= matrix + 1e-9)
    # kNN equals brute force on the full matrix
    results, node = compute_neighbours.run_get_node(invariants=pdds, k=orm.Int(2))
    knn = results["distances"]
    d, idx = knn.get_knn()
    brute = matrix + np.diag(np.full(24, np.inf))
    np.testing.assert_allclose(d[:, 0], brute.min(axis=1), atol=1e-9)
    assert knn.creator.inputs.invariants.uuid == pdds.uuid
    # cross distances and cross kNN against a subset
    sub = compute_invariants(
        dataset=mp_dataset, descriptor=orm.Dict({"name": "pdd", "k": 10}), chunk=orm.Dict({"start": 0, "stop": 5})
    )["invariants"]
    cross = compute_distances(invariants=sub, other=pdds)["distances"]
    assert cross.layout == "dense" and cross.shape == (5, 24) and cross.col_ids == mp_dataset.ids
    np.testing.assert_allclose(cross.get_matrix(), matrix[:5], atol=1e-9)
    nn = compute_neighbours(invariants=sub, k=orm.Int(1), other=pdds)["distances"]
    assert nn.get_knn()[1][:, 0].tolist() == [0, 1, 2, 3, 4]


def test_distance_exit_codes(mp_dataset):
    pdds = compute_invariants(dataset=mp_dataset, descriptor=orm.Dict({"name": "pdd", "k": 5}))["invariants"]
    amds = compute_invariants(dataset=mp_dataset, descriptor=orm.Dict({"name": "amd", "k": 5}))["invariants"]
    other_k = compute_invariants(dataset=mp_dataset, descriptor=orm.Dict({"name": "pdd", "k": 6}))["invariants"]
    assert_refused(lambda: compute_distances.run_get_node(invariants=pdds, metric=orm.Str("cosine")), "cosine")
    _, node = compute_distances.run_get_node(invariants=amds, metric=orm.Str("pdd_emd"))
    assert_failed_without_outputs(node, EXIT.ERROR_METRIC_NOT_APPLICABLE)
    _, node = compute_distances.run_get_node(invariants=pdds, other=amds)
    assert_failed_without_outputs(node, EXIT.ERROR_INCOMPATIBLE_INPUTS)
    _, node = compute_neighbours.run_get_node(invariants=pdds, k=orm.Int(1), other=other_k)
    assert_failed_without_outputs(node, EXIT.ERROR_INCOMPATIBLE_INPUTS)
    assert "k=5 vs 6" in node.exit_message
    _, node = compute_neighbours.run_get_node(invariants=pdds, k=orm.Int(100))
    assert_failed_without_outputs(node, EXIT.ERROR_INVALID_SPEC)
    assert_refused(lambda: compute_neighbours.run_get_node(invariants=pdds, k=orm.Int(0)), "positive integer")


@pytest.mark.postgres
def test_merge_invariants(mp_dataset):
    parts = {
        f"part_{i}": compute_invariants(
            dataset=mp_dataset, descriptor=orm.Dict({"name": "pdd", "k": 4}), chunk=orm.Dict({"start": a, "stop": b})
        )["invariants"]
        for i, (a, b) in enumerate([(10, 24), (0, 10)])
    }
    merged = merge_invariants(**parts)["invariants"]
    assert merged.ids == mp_dataset.ids and merged.row_range == (0, 24)
    gap = compute_invariants(
        dataset=mp_dataset, descriptor=orm.Dict({"name": "pdd", "k": 4}), chunk=orm.Dict({"start": 12, "stop": 24})
    )["invariants"]
    _, node = merge_invariants.run_get_node(a=parts["part_1"], b=gap)
    assert_failed_without_outputs(node, EXIT.ERROR_INCOMPATIBLE_INPUTS)
    assert "do not tile" in node.exit_message


@pytest.mark.postgres
def test_extract_collect_round_trip(mp_dataset):
    wanted = [mp_dataset.ids[2], mp_dataset.ids[5]]
    results, node = extract_structures.run_get_node(dataset=mp_dataset, ids=orm.List(wanted))
    assert node.is_finished_ok
    structures = results["structures"]
    assert sorted(n.label for n in structures.values()) == sorted(wanted)
    for label, s in structures.items():
        assert s.creator.uuid == node.uuid and "-" not in label
    # hand-off: a "relaxed" structure (unlabelled) and an extracted one come back together
    relaxed = orm.StructureData(pymatgen=mp_dataset.get_structure(2).copy().scale_lattice(
        mp_dataset.get_structure(2).volume * 1.02)).store()
    first = next(iter(structures.values()))
    back, node = collect_structures.run_get_node(relaxed_one=relaxed, original=first)
    assert node.is_finished_ok
    dataset = back["dataset"]
    assert sorted(dataset.ids) == sorted(["relaxed_one", first.label])
    assert set(dataset.get_node_uuids()) == {relaxed.uuid, first.uuid}
    incoming = dataset.creator.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all_nodes()
    assert {n.uuid for n in incoming} == {relaxed.uuid, first.uuid}
    inv = structure_invariants(structure=first, descriptor=orm.Dict({"name": "amd", "k": 8}))["invariants"]
    np.testing.assert_allclose(inv.get_stack()[0], amd(mp_dataset.get_structure(first.label), 8), atol=1e-12)
    assert inv.ids == [first.label]
    _, node = extract_structures.run_get_node(dataset=mp_dataset, ids=orm.List(["mp-does-not-exist"]))
    assert_failed_without_outputs(node, EXIT.ERROR_UNKNOWN_RECORD)
    assert "mp-does-not-exist" in node.exit_message


@pytest.mark.postgres
def test_workchain_chunks_and_provenance(mp_dataset):
    results, node = run_get_node(
        InvariantsWorkChain, dataset=mp_dataset, descriptor=orm.Dict({"name": "amd", "k": 6}), chunk_size=orm.Int(10)
    )
    assert node.is_finished_ok, node.exit_message
    inv = results["invariants"]
    assert inv.ids == mp_dataset.ids and inv.row_range == (0, 24)
    expected = np.stack([amd(mp_dataset.get_structure(i), 6) for i in range(24)])
    np.testing.assert_allclose(inv.get_stack(), expected, atol=1e-12)
    chunks = [c for c in node.called if c.process_label == "InvariantsChunkWorkChain"]
    assert len(chunks) == 3 and all(c.is_finished_ok for c in chunks)
    assert inv.creator.process_type.endswith("merge_invariants")
    # single chunk: no sub-processes
    results, node = run_get_node(InvariantsWorkChain, dataset=mp_dataset, descriptor=orm.Str("amd"))
    assert node.is_finished_ok and len(node.called) == 1
    # exit codes
    assert_refused(lambda: run_get_node(InvariantsWorkChain, dataset=mp_dataset, descriptor=orm.Str("nope")), "unknown invariant")
    assert_refused(
        lambda: run_get_node(InvariantsWorkChain, dataset=mp_dataset, descriptor=orm.Str("amd"), chunk_size=orm.Int(0)),
        "positive integer",
    )


def test_launch_invariants_does_not_wait_on_the_profile_poll_interval(mp_dataset, monkeypatch):
    """``launch_invariants`` runs on the package's runner (polling every 0.05 s), not on
    aiida's ``run_get_node``, whose runner polls sub-processes every
    ``runner.poll.interval`` (60 s by default): 3 chunks would wait minutes."""
    import aiida.engine

    from aiida_crystinv import _runner
    from aiida_crystinv.workflows.invariants import launch_invariants

    def refuse(*args, **kwargs):
        raise AssertionError("aiida.engine.run_get_node polls at the profile's interval")

    monkeypatch.setattr(aiida.engine, "run_get_node", refuse)
    inv, node = launch_invariants(mp_dataset, {"name": "amd", "k": 6}, chunk_size=10)
    assert node.is_finished_ok, node.exit_message
    assert inv.ids == mp_dataset.ids and len(node.called) == 4  # 3 chunks and the merge
    assert _runner.in_process_runner()._poll_interval == 0.05


@pytest.mark.postgres
def test_unfinished_processes_are_found_with_or_without_a_recorded_state():
    """`crystinv clean` and the tidy-up after Ctrl-C find a process node stored before its
    first state was written (no `process_state` attribute) as well as running ones, on
    SQLite and PostgreSQL alike; terminated ones are left alone."""
    import socket

    from aiida.engine import ProcessState

    from aiida_crystinv.cli.cmd_clean import find_leftovers
    from aiida_crystinv.cli.interrupt import RUNNER_EXTRA, abandon
    from aiida_crystinv.cli.tidy import unfinished_filter

    gone = {"host": socket.gethostname(), "pid": 2**22 + 12345, "started": 1.0}  # above pid_max: no such process
    nodes = {}
    for name, state in [("none", None), ("running", ProcessState.RUNNING), ("finished", ProcessState.FINISHED),
                        ("killed", ProcessState.KILLED)]:
        node = orm.WorkflowNode()
        if state is not None:
            node.set_process_state(state)
        node.base.extras.set(RUNNER_EXTRA, gone)
        nodes[name] = node.store()
    assert nodes["none"].base.attributes.get("process_state", None) is None
    ids = [node.pk for node in nodes.values()]
    found = orm.QueryBuilder().append(orm.ProcessNode, filters={"and": [{"id": {"in": ids}}, unfinished_filter()]},
                                      project="id").all(flat=True)
    assert sorted(found) == sorted([nodes["none"].pk, nodes["running"].pk])
    dead = {node.pk: why for node, why in find_leftovers().dead}
    assert nodes["none"].pk in dead and nodes["running"].pk in dead, dead
    assert "no longer running" in dead[nodes["none"].pk]
    assert nodes["finished"].pk not in dead and nodes["killed"].pk not in dead
    for name in ("none", "running"):
        killed, deleted = abandon(nodes[name])
        assert (killed, deleted) == (1, [])
        assert orm.load_node(nodes[name].pk).process_state == ProcessState.KILLED
