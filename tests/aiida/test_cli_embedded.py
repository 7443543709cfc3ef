"""The ``crystinv`` script on a fresh machine: embedded profile, reuse, existing profiles untouched.

Each test runs the real console script in a subprocess with ``AIIDA_PATH`` pointing at a
temporary folder, so the user's (and the test session's) configuration is never touched.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

BIN = pathlib.Path(sys.executable).parent
CRYSTINV = str(BIN / "crystinv")
VERDI = str(BIN / "verdi")

pytestmark = pytest.mark.slow


def script(*args: str, aiida_path: pathlib.Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIIDA_")}
    env["AIIDA_PATH"] = str(aiida_path)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    return subprocess.run(
        list(args), env=env, capture_output=True, text=True, timeout=timeout, cwd=aiida_path, check=False
    )


def config_of(aiida_path: pathlib.Path) -> dict:
    path = aiida_path / ".aiida" / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_help_creates_no_profile(tmp_path):
    result = script(CRYSTINV, "--help", aiida_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "crystinv demo" in result.stdout
    assert not config_of(tmp_path).get("profiles")


def test_embedded_profile_demo_and_reuse(tmp_path):
    first = script(CRYSTINV, "demo", "--n", "30", aiida_path=tmp_path)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert "Traceback" not in output
    creation = [line for line in output.splitlines() if "created profile 'crystinv'" in line]
    assert len(creation) == 1, output
    assert str(tmp_path) in creation[0] and "SQLite" in creation[0]
    for needle in ("[1/5] generated 30", "[5/5] PDD-EMD", "Provenance:", "node graph generate", "demo finished"):
        assert needle in output, output

    config = config_of(tmp_path)
    assert config["default_profile"] == "crystinv"
    profile = config["profiles"]["crystinv"]
    assert profile["storage"]["backend"] == "core.sqlite_dos"
    assert pathlib.Path(profile["storage"]["config"]["filepath"]).is_relative_to(tmp_path)
    assert profile["process_control"]["backend"] == "core.zeromq"
    assert profile["options"]["runner.poll.interval"] == 1

    second = script(CRYSTINV, "list", aiida_path=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "created profile" not in second.stdout + second.stderr
    assert "ewald-landscape-n30-seed0" in second.stdout
    assert list(config_of(tmp_path)["profiles"]) == ["crystinv"]

    # a WorkChain run by the script keeps its reports in the database (`verdi process report`)
    chunked = script(CRYSTINV, "invariants", "ewald-landscape-n30-seed0", "-d", "amd", "-c", "10", aiida_path=tmp_path)
    assert chunked.returncode == 0, chunked.stdout + chunked.stderr
    workchain = chunked.stdout.split("WorkChainNode ")[1].split(";")[0]
    report = script(VERDI, "process", "report", workchain, aiida_path=tmp_path)
    assert "submitted 3 chunks" in report.stdout, report.stdout + report.stderr

    # the same profile through verdi
    verdi = script(VERDI, "data", "crystinv", "list", aiida_path=tmp_path)
    assert verdi.returncode == 0, verdi.stdout + verdi.stderr
    assert "ewald-landscape-n30-seed0" in verdi.stdout


def test_existing_default_profile_is_used_untouched(tmp_path):
    setup = script(VERDI, "presto", "--profile-name", "mine", "--no-broker", aiida_path=tmp_path)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    before = (tmp_path / ".aiida" / "config.json").read_text()

    result = script(CRYSTINV, "list", aiida_path=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "created profile" not in output
    assert "no datasets found" in output
    assert (tmp_path / ".aiida" / "config.json").read_text() == before


EXAMPLE_STUDY = str(pathlib.Path(__file__).resolve().parents[2] / "examples" / "study_ewald.yaml")


@pytest.mark.parametrize(
    "args", [("list",), ("study", "run", EXAMPLE_STUDY), ("study", "report", "1")], ids=["list", "study run", "study report"]
)
def test_no_profile_through_verdi_is_a_clear_error(tmp_path, args):
    result = script(VERDI, "data", "crystinv", *args, aiida_path=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    assert "verdi presto" in output and "crystinv" in output


EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def test_the_examples_run(tmp_path):
    """Every script in examples/ runs as documented on a fresh machine (embedded profile)."""
    session = script("bash", str(EXAMPLES / "cli_session.sh"), str(tmp_path / "session"), aiida_path=tmp_path)
    output = session.stdout + session.stderr
    assert session.returncode == 0, output
    assert "Traceback" not in output and "crystinv-session" in output

    demo = script(sys.executable, str(EXAMPLES / "demo.py"), "30", "3", aiida_path=tmp_path)
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "near-duplicates found:" in output and "Provenance:" in output

    newest = script(CRYSTINV, "list", "--limit", "1", aiida_path=tmp_path)
    dataset_pk = newest.stdout.splitlines()[2].split()[0]
    handoff = script(sys.executable, str(EXAMPLES / "ewald_handoff.py"), dataset_pk, "2", aiida_path=tmp_path)
    output = handoff.stdout + handoff.stderr
    assert handoff.returncode == 0, output
    assert "Traceback" not in output and "extract_structures" in output


def test_daemon_works_out_of_the_box(tmp_path):
    """On the embedded profile, --daemon starts the daemon (and its ZeroMQ broker) and the
    submitted WorkChain finishes there."""
    import re
    import time

    assert script(CRYSTINV, "demo", "--n", "20", aiida_path=tmp_path).returncode == 0
    dataset = script(CRYSTINV, "list", "--limit", "1", aiida_path=tmp_path).stdout.splitlines()[2].split()[0]
    try:
        submitted = script(CRYSTINV, "invariants", dataset, "-d", "amd", "-p", "k=10", "--daemon", aiida_path=tmp_path)
        output = submitted.stdout + submitted.stderr
        assert submitted.returncode == 0, output
        assert "starting the daemon" in output and "verdi process status" in output
        pk = re.search(r"InvariantsWorkChain <(\d+)>", output).group(1)
        deadline = time.time() + 180
        while time.time() < deadline:
            state = script(VERDI, "process", "show", pk, aiida_path=tmp_path).stdout
            if "Finished [0]" in state:
                break
            time.sleep(2)
        assert "Finished [0]" in state, state
    finally:
        script(VERDI, "daemon", "stop", aiida_path=tmp_path)


def test_ctrl_c_cancels_the_slurm_jobs(tmp_path):
    """`crystinv neighbours --code ...@slurm` interrupted with Ctrl-C (SIGINT) while its
    jobs run: the command cancels them in SLURM, keeps nothing and says so."""
    import signal
    import time

    from .services import WORKER, slurm_state

    if slurm_state() not in {"idle", "mixed", "allocated", "completing"}:
        from .conftest import service_missing

        service_missing(f"no SLURM node answers sinfo (state {slurm_state()!r}); run `bash tests/services/setup.sh` as root")
    path = tmp_path / "landscape.json"
    from aiida_crystinv.sources.synthetic import ewald_landscape

    ids, structures, _, _ = ewald_landscape(n=8, seed=4)
    path.write_text(json.dumps([{"id": i, "structure": s.as_dict()} for i, s in zip(ids, structures)]))
    for args in (
        (CRYSTINV, "import", str(path), "--id-column", "id", "-L", "eight"),
        (CRYSTINV, "invariants", "eight", "-d", "amd", "-p", "k=10"),
        (VERDI, "computer", "setup", "-n", "--label", "slurm-ctrl-c", "--hostname", "localhost", "--transport",
         "core.local", "--scheduler", "core.slurm", "--work-dir", str(tmp_path / "work"), "--mpiprocs-per-machine", "1"),
        (VERDI, "computer", "configure", "core.local", "slurm-ctrl-c", "-n", "--safe-interval", "0"),
        (CRYSTINV, "setup-worker", "slurm-ctrl-c", "--executable", str(WORKER), "--prepend-text", "sleep 120"),
    ):
        done = script(*args, aiida_path=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    amd = [line for line in script(CRYSTINV, "list", "--what", "invariants", aiida_path=tmp_path).stdout.splitlines()
           if "amd" in line][0].split()[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIIDA_")}
    env.update(AIIDA_PATH=str(tmp_path), PATH=str(BIN) + os.pathsep + env.get("PATH", ""))
    command = subprocess.Popen(
        [CRYSTINV, "neighbours", amd, "-k", "2", "--code", "crystinv-worker@slurm-ctrl-c", "--block-size", "4",
         "--threads", "1"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )

    def our_jobs() -> list[str]:
        out = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True).stdout
        return [line.split()[0] for line in out.splitlines() if str(tmp_path / "work") in line]

    deadline = time.monotonic() + 90
    while len(our_jobs()) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    jobs = our_jobs()
    assert len(jobs) == 2, jobs
    command.send_signal(signal.SIGINT)
    output, _ = command.communicate(timeout=60)
    assert command.returncode != 0 and "Traceback" not in output, output
    assert "cancelled 2 scheduler jobs" in output and "nothing of this run is kept" in output, output
    time.sleep(2)
    assert not our_jobs()
    listing = script(CRYSTINV, "list", "--what", "distances", aiida_path=tmp_path).stdout
    assert "knn" not in listing.lower(), listing
