"""``crystinv setup-worker`` and ``--code`` on the invariants, distances, neighbours and
duplicates commands, run for real on aiida-core's ``aiida_localhost`` (``core.local`` +
``core.direct``): the nodes equal those of the in-process commands."""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_crystinv.cli.cmd_worker import setup_worker
from aiida_crystinv.data import DistancesData, InvariantsData

from .test_calcjob import assert_same_node
from .test_cli import count, run

pytestmark = pytest.mark.slow


@pytest.fixture
def worker_code(aiida_localhost):
    try:
        return orm.load_code(f"crystinv-worker-cli@{aiida_localhost.label}")
    except Exception:  # noqa: BLE001 - not made yet in this session
        return setup_worker(aiida_localhost, label="crystinv-worker-cli")


@pytest.fixture(scope="module")
def landscape(tmp_path_factory):
    from .test_cli import landscape_file as make  # the module fixture's body, reused

    return make.__wrapped__(tmp_path_factory)


@pytest.fixture(scope="module")
def dataset(landscape):
    result = run("import", landscape, "--id-column", "id", "-L", "jobs")
    return orm.load_node(int(result.output.split("as dataset ")[1].split()[0]))


def _pk(text: str, marker: str) -> int:
    return int(text.split(marker)[1].split()[0])


def test_setup_worker_checks_the_program_and_refuses_duplicates(aiida_localhost, worker_code):
    assert worker_code.default_calc_job_plugin == "crystinv.worker"
    result = run("setup-worker", aiida_localhost.label, "--label", "crystinv-worker-cli", ok=False)
    assert "exists already" in result.output
    before = count(orm.InstalledCode)
    result = run("setup-worker", aiida_localhost.label, "--label", "broken", "--executable", "/bin/false", ok=False)
    assert "failed on" in result.output and count(orm.InstalledCode) == before
    result = run("setup-worker", aiida_localhost.label, "--label", "other-version", "--executable", "/bin/echo", ok=False)
    assert "install the same version there" in result.output and count(orm.InstalledCode) == before


def test_commands_with_a_code_give_the_nodes_of_the_in_process_commands(dataset, worker_code):
    code = worker_code.full_label
    here = orm.load_node(_pk(run("invariants", dataset.pk, "-d", "pdd", "-p", "k=12", "-c", "6").output, "structures: node "))
    result = run("invariants", dataset.pk, "-d", "pdd", "-p", "k=12", "--code", code, "--block-size", "6")
    assert "follow them with `verdi process list`" in result.output
    remote = orm.load_node(_pk(result.output, "structures: node "))
    assert isinstance(remote, InvariantsData)
    assert_same_node(remote, here)

    knn_here = orm.load_node(_pk(run("neighbours", here.pk, "-k", "3").output, "graph of 16 structures: node "))
    result = run("neighbours", here.pk, "-k", "3", "--code", code, "--block-size", "5", "--walltime", "0:10:00")
    knn = orm.load_node(_pk(result.output, "graph of 16 structures: node "))
    assert isinstance(knn, DistancesData)
    assert_same_node(knn, knn_here)
    calcs = [d for d in knn.creator.caller.called_descendants if isinstance(d, orm.CalcJobNode)]
    assert len(calcs) == 4 and all(c.get_option("max_wallclock_seconds") == 600 for c in calcs)
    # the reports printed are also in the database, for `verdi process report`
    logs = orm.Log.collection.get_logs_for(knn.creator.caller)
    assert any("submitted 4 job(s)" in log.message for log in logs)

    matrix_here = run("distances", here.pk).output
    result = run("distances", here.pk, "--code", code, "--block-size", "7")
    assert orm.load_node(_pk(result.output, ": node ")).layout == "condensed"
    assert_same_node(orm.load_node(_pk(result.output, ": node ")), orm.load_node(_pk(matrix_here, ": node ")))

    def table(text):
        return [line for line in text.splitlines() if not line.startswith(("Report:", "Success:"))]

    pairs_here = run("duplicates", here.pk).output
    pairs = run("duplicates", here.pk, "--code", code).output
    assert table(pairs) == table(pairs_here) and len(table(pairs)) == 4  # header, rule, two planted groups
    assert "2 group(s) of near-duplicates" in pairs and "2 pair(s) within" in pairs


def test_job_options_need_a_code_and_a_worker_code(dataset, aiida_localhost):
    amd = str(_pk(run("invariants", dataset.pk, "-d", "amd").output, "structures: node "))
    result = run("neighbours", amd, "--max-memory", "100", "--walltime", "10", ok=False)
    assert "--max-memory, --walltime: job options need --code" in result.output
    result = run("neighbours", amd, "--code", "no-such-code@nowhere", ok=False)
    assert "setup-worker" in result.output
    bash = orm.InstalledCode(computer=aiida_localhost, filepath_executable="/bin/bash", label="bash-cli",
                             default_calc_job_plugin="core.arithmetic.add").store()
    result = run("invariants", dataset.pk, "-d", "amd", "--code", bash.full_label, ok=False)
    assert "not the crystinv worker" in result.output
    result = run("neighbours", amd, "--walltime", "1:xx", ok=False)
    assert "is not a duration" in result.output
