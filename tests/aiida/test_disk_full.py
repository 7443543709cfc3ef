"""A full disk under the embedded profile: one clear line, nothing orphaned, the profile works afterwards.

The profile's home (``AIIDA_PATH``) is a 3 MB tmpfs (mounted here: needs root; skipped
otherwise, failed in CI). An import that does not fit must fail with one ``Critical:``
line naming the cause, no traceback; afterwards (with a filler file removed to free
space) SQLite's ``PRAGMA integrity_check`` is ``ok``, no node is orphaned (a data node
linked to nothing, a process that never finished, an output of a failed process), no
repository object is unreferenced once ``crystinv clean`` ran, and a small import works.
"""

from __future__ import annotations

import inspect
import json
import os
import pathlib
import sqlite3
import subprocess
import sys

import pytest

from . import _bad_inputs as bi
from .conftest import dataset_path, service_missing
from .test_interrupt import audit_ranges

pytestmark = pytest.mark.slow

BIN = pathlib.Path(sys.executable).parent
CRYSTINV = str(BIN / "crystinv")

#: Every node of the profile audited (:func:`.test_interrupt.audit_ranges`), and the count
#: of repository files no node refers to.
AUDIT = (
    "import json\nfrom aiida import load_profile\nfrom aiida.manage import get_manager\nload_profile()\n"
    + inspect.getsource(audit_ranges)
    + "found = audit_ranges([(0, 2**62)])[0]\n"
    "problems = found['stale'] + found['misleading'] + found['orphans']\n"
    "unreferenced = len(get_manager().get_profile_storage().get_unreferenced_keyset())\n"
    "print(json.dumps({'problems': problems, 'unreferenced': unreferenced}))\n"
)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs at ``tmp_path / 'disk'`` (unmounted at the end)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        service_missing("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        service_missing(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)


def test_import_on_a_full_disk(small_disk, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIIDA_")}
    env.update(AIIDA_PATH=str(small_disk), PATH=str(BIN) + os.pathsep + env.get("PATH", ""), CRYSTINV_PROGRESS="never")

    def crystinv(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run([CRYSTINV, *map(str, args)], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=900, check=False)

    created = crystinv("list")
    assert created.returncode == 0, created.stdout + created.stderr
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 700_000)

    big = dataset_path("mp_elasticity_binaries.json.gz")  # ~1 MB compressed, more once stored: does not fit
    failed = crystinv("import", big, "--id-column", "mp_id", "-L", "too-big")
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Critical:"), output
    causes = ("disk full", "database or disk is full", "disk I/O error")
    assert any(cause in lines[0] for cause in causes), output
    assert len(lines[0]) < 400, lines[0]

    filler.unlink()  # free space
    database = next(small_disk.rglob("database.sqlite"))
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cleaned = crystinv("clean")
    assert cleaned.returncode == 0 and "Traceback" not in cleaned.stdout + cleaned.stderr, cleaned.stdout + cleaned.stderr
    audit = subprocess.run([sys.executable, "-c", AUDIT], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=600, check=False)
    assert audit.returncode == 0, audit.stderr[-2000:]
    found = json.loads(audit.stdout.strip().splitlines()[-1])
    assert found == {"problems": [], "unreferenced": 0}, found

    small = tmp_path / "small.cif"
    small.write_text(bi.cif_block("small"))
    after = crystinv("import", small, "-L", "after")
    assert after.returncode == 0, after.stdout + after.stderr
    listed = crystinv("list")
    assert "after" in listed.stdout and "too-big" not in listed.stdout, listed.stdout
