"""Real computers for the tests: a SLURM cluster and an SSH server on this machine.

Both are set up by ``tests/services/setup.sh`` (run by ``tests/run_all.sh``; as root it
installs and starts them). Nothing here is mocked: the fixtures only check that the
service answers and store an AiiDA ``Computer`` that points at it. An absent service
skips the test with the reason (fails it with ``CI=true``, see :func:`service_missing`).

``slurm_computer``
    ``core.local`` transport + ``core.slurm`` scheduler (``sbatch``/``squeue`` of the
    one-node cluster, partition ``debug``).
``ssh_computer``
    ``core.ssh_async`` (``core.ssh`` when this aiida-core has no ``core.ssh_async``) +
    ``core.direct`` to the ``sshd`` of ``tests/services/ssh.sh`` on 127.0.0.1.
``worker_code_on``
    factory: ``worker_code_on(computer, prepend_text=...)`` -> a stored ``InstalledCode``
    of this venv's ``crystinv-worker`` on that computer.

The computers are module-scoped (each test module gets its own, with its own work
directory) and live in the session's test profile, whatever its storage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .conftest import port_open, service_missing

__all__ = [
    "SSH_ALIAS", "SSH_DIR", "SSH_PORT", "WORKER", "slurm_computer", "slurm_state", "ssh_computer", "worker_code_on",
]

#: The worker console script of this venv (``pip install -e .``).
WORKER = Path(sys.executable).parent / "crystinv-worker"
#: Where ``tests/services/ssh.sh`` keeps its key pair, known_hosts and sshd files.
SSH_DIR = Path(os.environ.get("CRYSTINV_SSH_DIR", "/var/tmp/crystinv-ssh"))
SSH_PORT = int(os.environ.get("CRYSTINV_SSH_PORT", "2222"))
#: The ``Host`` alias ssh.sh writes to ``~/.ssh/config`` (``core.ssh_async`` reads only that).
SSH_ALIAS = os.environ.get("CRYSTINV_SSH_ALIAS", "crystinv-test-ssh")
SETUP_HINT = "run `bash tests/services/setup.sh` as root"

_READY_STATES = {"idle", "mixed", "allocated", "completing"}


def slurm_state() -> str | None:
    """The state of the cluster's node as ``sinfo`` reports it (``None``: no answer)."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    states = out.stdout.split()
    return states[0].rstrip("*~#!%$@^-") if states else ""


def _work_dir(tmp_path_factory, name: str) -> str:
    path = tmp_path_factory.mktemp(name)
    path.chmod(0o755)
    return str(path)


def _computer(label: str, hostname: str, transport: str, scheduler: str, workdir: str, **configure):
    from aiida import orm

    computer = orm.Computer(
        label=label, hostname=hostname, workdir=workdir, transport_type=transport, scheduler_type=scheduler,
        description="aiida-crystinv test computer (tests/aiida/services.py)",
    ).store()
    computer.set_default_mpiprocs_per_machine(1)
    computer.set_minimum_job_poll_interval(1)
    computer.configure(**configure)
    return computer


@pytest.fixture(scope="module")
def slurm_computer(aiida_profile, tmp_path_factory):
    """A stored, configured ``core.slurm`` computer on the local one-node cluster."""
    if shutil.which("sbatch") is None:
        service_missing(f"SLURM is not installed (no sbatch on PATH): {SETUP_HINT}")
    state = slurm_state()
    if state not in _READY_STATES:
        why = "sinfo does not answer" if state is None else f"sinfo says the node is {state or 'absent'!r}"
        service_missing(f"the SLURM cluster is not ready ({why}): {SETUP_HINT}")
    return _computer(
        f"slurm-{uuid.uuid4().hex[:8]}", "localhost", "core.local", "core.slurm",
        _work_dir(tmp_path_factory, "slurm-work"), safe_interval=0.0,
    )


def _ssh_transport() -> str:
    from aiida.plugins.entry_point import get_entry_point_names

    return "core.ssh_async" if "core.ssh_async" in get_entry_point_names("aiida.transports") else "core.ssh"


@pytest.fixture(scope="module")
def ssh_computer(aiida_profile, tmp_path_factory):
    """A stored, configured computer reached through the test ``sshd`` (127.0.0.1:SSH_PORT,
    user root, the key of ``tests/services/ssh.sh``), ``core.direct`` scheduler."""
    key = SSH_DIR / "id_ed25519"
    if not port_open("127.0.0.1", SSH_PORT):
        service_missing(f"no SSH server on 127.0.0.1:{SSH_PORT}: {SETUP_HINT}")
    if not key.is_file():
        service_missing(f"the test key {key} does not exist: {SETUP_HINT}")
    transport = _ssh_transport()
    workdir = _work_dir(tmp_path_factory, "ssh-work")
    label = f"ssh-{uuid.uuid4().hex[:8]}"
    if transport == "core.ssh_async":
        config = Path.home() / ".ssh" / "config"
        if not config.is_file() or f"Host {SSH_ALIAS}" not in config.read_text():
            service_missing(f"no 'Host {SSH_ALIAS}' in {config} (core.ssh_async reads its settings there): {SETUP_HINT}")
        return _computer(label, "127.0.0.1", transport, "core.direct", workdir,
                         host=SSH_ALIAS, backend="asyncssh", safe_interval=0.0)
    return _computer(  # pragma: no cover - aiida-core < 2.7 has no core.ssh_async
        label, "127.0.0.1", transport, "core.direct", workdir,
        username="root", port=SSH_PORT, key_filename=str(key), look_for_keys=False, allow_agent=False,
        load_system_host_keys=True, key_policy="RejectPolicy", timeout=30, safe_interval=0.0,
    )


@pytest.fixture(scope="module")
def worker_code_on(aiida_profile):
    """Factory: a stored ``InstalledCode`` of ``crystinv-worker`` on a computer."""
    if not WORKER.exists():
        pytest.fail(f"{WORKER} is not installed (pip install -e .)")

    def make(computer, prepend_text: str = "", label: str | None = None, **kwargs):
        from aiida import orm

        code = orm.InstalledCode(
            computer=computer,
            filepath_executable=str(WORKER),
            label=label or f"crystinv-worker-{uuid.uuid4().hex[:6]}",
            default_calc_job_plugin="crystinv.worker",
            prepend_text=prepend_text,
            **kwargs,
        )
        return code.store()

    return make
