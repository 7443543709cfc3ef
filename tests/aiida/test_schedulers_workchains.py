"""The distributed WorkChains on real computers: the one-node SLURM cluster (``core.slurm``)
and the SSH server on 127.0.0.1 (``core.ssh_async``) of ``tests/services``.

* ``DistancesWorkChain`` (kNN graph in query blocks) and ``InvariantsWorkChain`` with the
  worker code on each computer give the nodes of the in-process path;
* ``WorkerJobWorkChain`` on SLURM: a block past its walltime (a real SLURM kill, exit 120)
  is split in two and the halves finish. The job script makes the whole block slow and the
  halves quick (it sleeps when it was given all the records): the walltime, the kill
  and the restart are real, only the slowness is arranged, so that the test takes one
  walltime (60 s, SLURM's granularity) instead of a large dataset.
"""

from __future__ import annotations

import sys

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_crystinv.calculations.functions import compute_invariants, compute_neighbours
from aiida_crystinv.calculations.worker import WorkerCalculation
from aiida_crystinv.workflows import InvariantsWorkChain
from aiida_crystinv.workflows.distances import DistancesWorkChain
from aiida_crystinv.workflows.jobs import WorkerJobWorkChain

from .test_calcjob import assert_same_node

pytestmark = pytest.mark.slow

PDD = {"name": "pdd", "k": 12}


@pytest.fixture(scope="module")
def dataset(aiida_profile):
    from aiida_crystinv.data import CrystalDatasetData
    from aiida_crystinv.sources.synthetic import ewald_landscape

    ids, structures, _, _ = ewald_landscape(n=12, seed=11)
    return CrystalDatasetData.from_structures(structures, ids=ids).store()


def _ok(node):
    assert node.is_finished_ok, f"[{node.exit_status}] {node.exit_message}\n" + "\n".join(
        log.message for log in orm.Log.collection.get_logs_for(node)
    )


def _calcs(node):
    return sorted((d for d in node.called_descendants if d.process_label == "WorkerCalculation"), key=lambda n: n.ctime)


@pytest.mark.postgres
@pytest.mark.parametrize("which", ["slurm", "ssh"])
def test_workchains_with_a_code_on_the_computer(which, request, dataset, worker_code_on):
    computer = request.getfixturevalue(f"{which}_computer")
    code = worker_code_on(computer)
    options = orm.Dict({"block_size": 5, "walltime": 600, "max_memory_mb": 2000, "threads": 1})
    results, node = run_get_node(InvariantsWorkChain, dataset=dataset, descriptor=orm.Dict(PDD), chunk_size=orm.Int(5),
                                 code=code, options=options)
    _ok(node)
    here = run_get_node(InvariantsWorkChain, dataset=dataset, descriptor=orm.Dict(PDD), chunk_size=orm.Int(5))[0]
    assert_same_node(results["invariants"], here["invariants"])
    pdd = results["invariants"]

    results, node = run_get_node(DistancesWorkChain, invariants=pdd, k=orm.Int(3), code=code, options=options)
    _ok(node)
    assert_same_node(results["distances"], compute_neighbours(pdd, orm.Int(3))["distances"])
    calcs = _calcs(node)
    assert len(calcs) == 3
    for calc in calcs:
        assert calc.computer.uuid == computer.uuid and calc.get_job_id()
        assert calc.get_option("max_wallclock_seconds") == 600
        if which == "slurm":  # SLURM is given the bound; core.direct cannot enforce it and is not
            assert calc.get_option("max_memory_kb") == 2000 * 1024
            assert calc.get_job_id().isdigit()


#: The job script's first line: sleep past the walltime when the job has all 12 records
#: (``records/ids.npy`` holds the ids of the rows staged for the job).
SLOW_WHEN_WHOLE = (
    f"{sys.executable} -c 'import numpy, sys; sys.exit(len(numpy.load(\"records/ids.npy\")) >= 12)' || sleep 300"
)


def test_a_block_past_its_walltime_is_split_and_finishes(dataset, slurm_computer, worker_code_on):
    code = worker_code_on(slurm_computer, prepend_text=SLOW_WHEN_WHOLE, label="crystinv-worker-slow-whole")
    task = orm.Dict({"task": "invariants", "descriptor": PDD})
    results, node = run_get_node(
        WorkerJobWorkChain,
        worker={"code": code, "task": task, "dataset": dataset, "metadata": {"options": {"max_wallclock_seconds": 60}}},
    )
    _ok(node)
    calcs = _calcs(node)
    walltime = WorkerCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME.status  # aiida-core's 120
    assert [c.exit_status for c in calcs] == [walltime, 0, 0]
    assert "rows" not in calcs[0].inputs
    assert [c.inputs.rows.get_dict() for c in calcs[1:]] == [{"start": 0, "stop": 6}, {"start": 6, "stop": 12}]
    assert not any(link.link_label in ("invariants", "distances") for link in calcs[0].base.links.get_outgoing().all())
    ref = compute_invariants(dataset, orm.Dict(PDD), orm.Dict({"start": 0, "stop": 12}))["invariants"]
    assert_same_node(results["invariants"], ref)
    logs = "\n".join(log.message for log in orm.Log.collection.get_logs_for(node))
    assert "splitting rows 0:12 into 0:6 and 6:12" in logs


def test_setup_worker_checks_the_program_over_ssh(ssh_computer):
    """`crystinv setup-worker` runs `crystinv-worker --version` through the SSH transport."""
    from aiida_crystinv.cli.cmd_worker import setup_worker

    from .services import WORKER

    before = orm.QueryBuilder().append(orm.InstalledCode).count()
    with pytest.raises(ValueError, match="give --executable"):
        setup_worker(ssh_computer, label="worker-over-ssh")
    with pytest.raises(ValueError, match="failed on"):
        setup_worker(ssh_computer, executable="/nonexistent/crystinv-worker", label="worker-over-ssh")
    assert orm.QueryBuilder().append(orm.InstalledCode).count() == before
    code = setup_worker(ssh_computer, executable=str(WORKER), label="worker-over-ssh")
    assert code.computer.uuid == ssh_computer.uuid and code.default_calc_job_plugin == "crystinv.worker"
