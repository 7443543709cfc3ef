"""The DemoWorkChain run for real, its port checks, and the near-duplicate pairs of a distances node."""

from __future__ import annotations

import math

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import WorkflowFactory

from aiida_crystinv.data import CrystalDatasetData, DistancesData, InvariantsData
from aiida_crystinv.workflows.demo import DemoWorkChain
from aiida_crystinv.workflows.demo_launch import demo_inputs, launch_demo
from aiida_crystinv.workflows.neighbours import find_near_duplicates

OUTPUTS = {
    "file": orm.SinglefileData,
    "landscape": orm.Dict,
    "dataset": CrystalDatasetData,
    "amd": InvariantsData,
    "pdd": InvariantsData,
    "knn": DistancesData,
    "duplicates": orm.List,
}


def count_nodes() -> int:
    return orm.QueryBuilder().append(orm.Node).count()


@pytest.fixture(scope="module")
def demo():
    """One real demo: 20 structures (2 planted near-duplicates), chunks of 5."""
    steps = []
    result, node = launch_demo(n=20, seed=2, k=3, threshold=0.05, chunk_size=5, on_step=steps.append)
    assert node.is_finished_ok, node.exit_message
    return result, node, steps


def test_entry_point():
    assert WorkflowFactory("crystinv.demo") is DemoWorkChain


def test_outputs_are_returned_by_the_workchain(demo):
    result, node, _ = demo
    assert node.process_label == "DemoWorkChain"
    returned = {link.link_label: link.node for link in node.base.links.get_outgoing(link_type=LinkType.RETURN).all()}
    assert set(returned) == set(OUTPUTS)
    for label, cls in OUTPUTS.items():
        assert isinstance(returned[label], cls), label
        assert result.nodes[label].uuid == returned[label].uuid
    inputs = {link.link_label: link.node for link in node.base.links.get_incoming(link_type=LinkType.INPUT_WORK).all()}
    assert {name: inputs[name].value for name in ("n", "seed", "k", "threshold", "chunk_size")} == {
        "n": 20,
        "seed": 2,
        "k": 3,
        "threshold": 0.05,
        "chunk_size": 5,
    }


def test_every_output_was_created_inside_the_demo(demo):
    _, node, _ = demo
    out = node.outputs

    def called_by_demo(process) -> bool:
        while process is not None:
            if process.uuid == node.uuid:
                return True
            process = process.caller
        return False

    for label in OUTPUTS:
        creator = out[label].creator
        assert creator is not None and called_by_demo(creator), label
    # the chain: (n, seed) -> file -> dataset -> invariants -> kNN graph -> duplicates
    generate = out.file.creator
    assert generate.process_label == "generate_landscape" and generate.caller.uuid == node.uuid
    assert generate.inputs.n.uuid == node.inputs.n.uuid and generate.inputs.seed.uuid == node.inputs.seed.uuid
    assert out.dataset.creator.process_label == "import_dataset"
    assert out.dataset.creator.inputs.file.uuid == out.file.uuid
    assert out.dataset.label == "ewald-landscape-n20-seed2" and len(out.dataset) == 20
    for name in ("amd", "pdd"):
        workflow = out[name].creator.caller
        assert workflow.process_label == "InvariantsWorkChain" and workflow.caller.uuid == node.uuid
        assert workflow.inputs.dataset.uuid == out.dataset.uuid
        assert workflow.inputs.chunk_size.uuid == node.inputs.chunk_size.uuid
        assert sum(c.process_label == "InvariantsChunkWorkChain" for c in workflow.called) == 4
        assert out[name].descriptor == name and out[name].parameters["k"] == 100 and out[name].ids == out.dataset.ids
    assert out.knn.is_knn and out.knn.metric == "pdd_emd" and out.knn.base.attributes.get("k") == 3
    assert out.knn.creator.inputs.invariants.uuid == out.pdd.uuid
    assert out.knn.creator.inputs.k.uuid == node.inputs.k.uuid
    pairs = out.duplicates.creator
    assert pairs.inputs.distances.uuid == out.knn.uuid and pairs.inputs.threshold.uuid == node.inputs.threshold.uuid


def test_the_planted_duplicates_are_found(demo):
    result, node, _ = demo
    planted = [tuple(p) for p in node.outputs.landscape["planted"]]
    assert len(planted) == 2 and all(dup == f"{orig}-dup" for orig, dup in planted)
    assert all(dup in node.outputs.dataset.ids for _, dup in planted)
    stored = {(a, b) if a < b else (b, a): d for a, b, d in node.outputs.duplicates.get_list()}
    for orig, dup in planted:
        assert stored[(orig, dup) if orig < dup else (dup, orig)] <= 0.05
    assert all(d <= 0.05 for d in stored.values())
    assert result.planted == planted and result.found_planted == 2
    assert result.duplicates == [(a, b, d) for a, b, d in node.outputs.duplicates.get_list()]


def test_steps_are_reported_in_order(demo):
    result, node, steps = demo
    assert [(s.number, s.total, s.key) for s in steps] == [
        (1, 5, "generate"),
        (2, 5, "import"),
        (3, 5, "amd"),
        (4, 5, "pdd"),
        (5, 5, "neighbours"),
    ]
    assert steps[0].line.startswith("generated 20 ionic structures") and "2 planted near-duplicates" in steps[0].line
    assert f"dataset {node.outputs.dataset.pk}" in steps[1].line
    assert "in 4 chunks" in steps[2].line and f"node {node.outputs.amd.pk}" in steps[2].line
    assert "2/2 planted ones found" in steps[4].line
    assert all(s.seconds >= 0 for s in steps) and set(result.timings) == {s.key for s in steps}
    assert result.nodes["workflow"].uuid == node.uuid


@pytest.mark.parametrize(
    ("inputs", "port"),
    [
        ({"n": 1}, "n"),
        ({"seed": -1}, "seed"),
        ({"k": 0}, "k"),
        ({"threshold": math.nan}, "threshold"),
        ({"threshold": -0.01}, "threshold"),
        ({"threshold": math.inf}, "threshold"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_inputs_are_refused_before_any_node(inputs, port):
    before = count_nodes()
    with pytest.raises(ValueError, match=port):
        launch_demo(**inputs)
    with pytest.raises(ValueError, match=port):
        from aiida.engine import run_get_node

        run_get_node(DemoWorkChain, **demo_inputs(**inputs))
    assert count_nodes() == before


def test_submit_refuses_output_files(tmp_path):
    with pytest.raises(ValueError, match="submit"):
        launch_demo(n=10, output=tmp_path, submit=True)


# ----------------------------------------------------------------------------- pairs_within
def reference_pairs(knn: DistancesData, threshold: float):
    """The loop ``crystinv duplicates`` used before ``pairs_within`` existed."""
    distances, indices = knn.get_knn()
    rows, cols = knn.row_ids, knn.col_ids
    seen = {}
    for i in range(distances.shape[0]):
        for d, j in zip(distances[i], indices[i]):
            if d > threshold:
                break
            a, b = rows[i], cols[int(j)]
            if a == b:
                continue
            key = (a, b) if a < b else (b, a)
            seen[key] = min(float(d), seen.get(key, math.inf))
    return sorted(((a, b, d) for (a, b), d in seen.items()), key=lambda x: (x[2], x[0], x[1]))


def test_pairs_within_a_knn_graph_matches_the_old_loop():
    rng = np.random.default_rng(0)
    points = rng.random((40, 2))
    ids = [f"s{i:02d}" for i in range(40)]
    matrix = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(matrix, np.inf)
    indices = np.argsort(matrix, axis=1)[:, :4]
    distances = np.take_along_axis(matrix, indices, axis=1)
    knn = DistancesData.from_knn(distances, indices, ids, ids, "amd_linf")
    for threshold in (0.0, 0.05, 0.1, 0.2, 1.0):
        assert knn.pairs_within(threshold) == reference_pairs(knn, threshold)
    assert knn.pairs_within(0.1)  # not a vacuous comparison


def test_pairs_within_matrices_and_bad_thresholds():
    ids = ["a", "b", "c", "d"]
    matrix = np.array([[0, 0.1, 0.5, 0.02], [0.1, 0, 0.3, 0.6], [0.5, 0.3, 0, 0.7], [0.02, 0.6, 0.7, 0]])
    condensed = matrix[np.triu_indices(4, k=1)]
    pairwise = DistancesData.from_condensed(condensed, ids, "amd_linf")
    assert pairwise.pairs_within(0.2) == [("a", "d", 0.02), ("a", "b", 0.1)]
    assert pairwise.pairs_within(10) == sorted(
        [(ids[i], ids[j], matrix[i, j]) for i, j in zip(*np.triu_indices(4, k=1))], key=lambda p: (p[2], p[0], p[1])
    )
    cross = DistancesData.from_matrix(matrix[:2], ["a", "b"], ids, "amd_linf")
    assert cross.pairs_within(0.2) == [("a", "d", 0.02), ("a", "b", 0.1)]  # a-a and b-b are not pairs
    for bad in (math.nan, -0.1, "near", None, True):
        with pytest.raises(ValueError, match="threshold"):
            pairwise.pairs_within(bad)


def test_find_near_duplicates_checks_before_storing(demo):
    _, node, _ = demo
    pdd = node.outputs.pdd
    before = count_nodes()
    for threshold in (math.nan, -1.0):
        with pytest.raises(ValueError, match="threshold"):
            find_near_duplicates(pdd, threshold)
    with pytest.raises(ValueError, match="does not apply"):
        find_near_duplicates(pdd, 0.05, metric="grid_emd")
    assert count_nodes() == before
    pairs, knn, process = find_near_duplicates(pdd, 0.05, k=3)
    assert process.is_finished_ok and knn.creator.uuid == process.uuid
    stored = node.outputs.duplicates.get_list()  # floats in the database: 15 significant digits
    assert [(a, b) for a, b, _ in pairs] == [(a, b) for a, b, _ in stored]
    assert [d for *_, d in pairs] == pytest.approx([d for *_, d in stored], rel=1e-12)


# ----------------------------------------------------------------------------- on the daemon
@pytest.mark.daemon
def test_demo_on_the_daemon(daemon_ready, daemon_client, submit_and_await):
    """Submitted, the DemoWorkChain and its chunked sub-WorkChains run on daemon workers."""
    if not daemon_client.is_daemon_running:
        daemon_client.start_daemon(number_workers=2)
    result, node = launch_demo(n=12, seed=4, k=2, chunk_size=4, submit=True)
    assert result is None
    node = submit_and_await(node, timeout=300)
    assert node.is_finished_ok, f"[{node.exit_status}] {node.exit_message}"
    assert len(node.outputs.dataset) == 12
    planted = {tuple(p) for p in node.outputs.landscape["planted"]}
    found = {(a, b) for a, b, _ in node.outputs.duplicates.get_list()}
    assert planted and planted <= found
    assert all(
        sum(c.process_label == "InvariantsChunkWorkChain" for c in node.outputs[name].creator.caller.called) == 3
        for name in ("amd", "pdd")
    )
