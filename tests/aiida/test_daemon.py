"""The chunked WorkChain submitted to a real daemon (ZeroMQ broker or RabbitMQ).

The broker is chosen by ``CRYSTINV_TEST_BROKER`` (see ``conftest.py``); the daemon is
started with two workers so that the chunk sub-processes are shared between them.
"""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ProcessState

from aiida_crystinv.calculations.functions import import_dataset
from aiida_crystinv.invariants import amd
from aiida_crystinv.workflows import InvariantsWorkChain

pytestmark = [pytest.mark.daemon, pytest.mark.postgres]


@pytest.fixture
def two_worker_daemon(daemon_ready, daemon_client):
    """A running daemon with two workers for the test profile (kept for the session)."""
    if not daemon_client.is_daemon_running:
        daemon_client.start_daemon(number_workers=2)
    assert daemon_client.is_daemon_running
    yield daemon_client


def test_workchain_on_daemon(two_worker_daemon, submit_and_await, mp_records):
    file = orm.SinglefileData(io.BytesIO(gzip.compress(json.dumps(mp_records).encode())), filename="mp.json.gz")
    # the import runs in the daemon too (a calcfunction cannot be submitted: run it here)
    dataset = import_dataset(file=file)["dataset"]
    builder = InvariantsWorkChain.get_builder()
    builder.dataset = dataset
    builder.descriptor = orm.Dict({"name": "amd", "k": 8})
    builder.chunk_size = orm.Int(8)
    node = submit_and_await(builder, timeout=180)
    assert node.process_state is ProcessState.FINISHED
    assert node.is_finished_ok, f"[{node.exit_status}] {node.exit_message}"
    inv = node.outputs.invariants
    assert inv.ids == dataset.ids
    expected = np.stack([amd(dataset.get_structure(i), 8) for i in range(len(dataset))])
    np.testing.assert_allclose(inv.get_stack(), expected, atol=1e-12)
    chunks = [c for c in node.called if c.process_label == "InvariantsChunkWorkChain"]
    assert len(chunks) == 4 and all(c.is_finished_ok for c in chunks)
    # every chunk's invariants feed the merge: full provenance from dataset to result
    merge = inv.creator
    merged_from = merge.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all_nodes()
    assert {n.uuid for n in merged_from} == {c.outputs.invariants.uuid for c in chunks}
    assert all(c.inputs.dataset.uuid == dataset.uuid for c in chunks)


def test_invalid_spec_is_refused_before_the_daemon_sees_it(two_worker_daemon, submit_and_await, mp_records):
    file = orm.SinglefileData(io.BytesIO(json.dumps(mp_records[:6]).encode()), filename="mp.json")
    dataset = import_dataset(file=file)["dataset"]
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        submit_and_await(InvariantsWorkChain, dataset=dataset, descriptor=orm.Dict({"name": "amd", "k": 0}), timeout=120)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


def test_distributed_knn_through_the_daemon(two_worker_daemon, submit_and_await, mp_records, aiida_localhost,
                                            aiida_code_installed):
    """DistancesWorkChain with the worker on core.direct, submitted to the daemon: its jobs
    are run by the daemon workers; the graph equals the one-process calcfunction's."""
    import sys
    from pathlib import Path

    from aiida_crystinv.calculations.functions import compute_invariants, compute_neighbours
    from aiida_crystinv.workflows.distances import DistancesWorkChain

    from .test_calcjob import assert_same_node

    file = orm.SinglefileData(io.BytesIO(json.dumps(mp_records[:20]).encode()), filename="mp20.json")
    dataset = import_dataset(file=file)["dataset"]
    pdd = compute_invariants(dataset, orm.Dict({"name": "pdd", "k": 20}))["invariants"]
    code = aiida_code_installed(label="crystinv-worker-daemon", computer=aiida_localhost,
                                filepath_executable=str(Path(sys.executable).parent / "crystinv-worker"))
    builder = DistancesWorkChain.get_builder()
    builder.invariants = pdd
    builder.k = orm.Int(3)
    builder.code = code
    builder.options = orm.Dict({"block_size": 7, "max_concurrent": 2, "threads": 1})
    node = submit_and_await(builder, timeout=300)
    assert node.is_finished_ok, f"[{node.exit_status}] {node.exit_message}"
    calcs = [d for d in node.called_descendants if d.process_label == "WorkerCalculation"]
    assert len(calcs) == 3 and all(c.computer.uuid == aiida_localhost.uuid and c.get_job_id() for c in calcs)
    assert_same_node(node.outputs.distances, compute_neighbours(pdd, orm.Int(3))["distances"])
