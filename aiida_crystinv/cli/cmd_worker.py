"""``crystinv setup-worker``: the worker program as an AiiDA code on a configured computer."""

from __future__ import annotations

import shlex
import sys
import typing as t
from pathlib import Path

import click
from aiida.cmdline.params.types import ComputerParamType
from aiida.cmdline.utils import echo

from .root import cmd_crystinv
from .utils import clean_errors, one_line, with_profile

__all__ = ["cmd_setup_worker", "setup_worker", "check_worker"]

#: The label the commands and the docs use for the worker code.
DEFAULT_LABEL = "crystinv-worker"


def _local_worker() -> str:
    return str(Path(sys.executable).parent / "crystinv-worker")


def check_worker(computer: t.Any, executable: str, prepend_text: str = "") -> str:
    """Run ``EXECUTABLE --version`` on ``computer`` through its transport; return the
    version line.

    Raises:
        ValueError: the program does not run there, or is another aiida-crystinv version.
    """
    from aiida_crystinv import __version__

    command = f"{prepend_text}\n{shlex.quote(executable)} --version" if prepend_text else f"{shlex.quote(executable)} --version"
    with computer.get_transport() as transport:
        status, stdout, stderr = transport.exec_command_wait(command)
    text = (stdout or "").strip()
    if status != 0:
        raise ValueError(f"`{executable} --version` failed on '{computer.label}' (exit {status}): "
                         f"{one_line((stderr or stdout or '').strip()) or 'no output'}")
    if f"aiida-crystinv {__version__}" not in text:
        raise ValueError(f"'{computer.label}' runs {text or 'an unknown version'}, this side is aiida-crystinv "
                         f"{__version__}: install the same version there (pip install aiida-crystinv=={__version__})")
    return text


def setup_worker(
    computer: t.Any, executable: str | None = None, label: str = DEFAULT_LABEL, prepend_text: str = "", check: bool = True
) -> t.Any:
    """Store an ``InstalledCode`` for the worker on ``computer`` (default executable: this
    environment's ``crystinv-worker`` on a computer with the local transport), after
    checking that it runs there and is this version. Returns the code node.

    Raises:
        ValueError: no executable given for a remote computer, a code of that label exists,
            or the check failed (nothing is stored then).
    """
    from aiida import orm

    if executable is None:
        if computer.transport_type != "core.local":
            raise ValueError(f"'{computer.label}' is reached through {computer.transport_type}: give --executable, the "
                             "absolute path of crystinv-worker there (`which crystinv-worker` on that computer)")
        executable = _local_worker()
    existing = orm.QueryBuilder().append(orm.Computer, filters={"id": computer.pk}, tag="c").append(
        orm.InstalledCode, with_computer="c", filters={"label": label}).first(flat=True)
    if existing is not None:
        raise ValueError(f"a code '{label}@{computer.label}' exists already (pk {existing.pk}): use it, or choose "
                         "another --label")
    if check:
        check_worker(computer, executable, prepend_text)
    code = orm.InstalledCode(
        computer=computer, filepath_executable=executable, label=label, default_calc_job_plugin="crystinv.worker",
        description="aiida-crystinv worker: invariants, distance blocks and kNN blocks of staged task folders",
        prepend_text=prepend_text,
    )
    return code.store()


@cmd_crystinv.command("setup-worker")
@click.argument("computer", type=ComputerParamType())
@click.option("--executable", default=None, metavar="PATH",
              help="Absolute path of crystinv-worker on the computer. Default (local-transport computers only): "
                   "the one of this environment.")
@click.option("--label", default=DEFAULT_LABEL, show_default=True, help="Label of the code (use it as LABEL@COMPUTER).")
@click.option("--prepend-text", default="", help="Shell lines run before the worker in each job (e.g. module load, "
                                                  "activating an environment).")
@click.option("--no-check", is_flag=True, help="Do not run `crystinv-worker --version` on the computer first.")
@with_profile
@clean_errors
def cmd_setup_worker(computer, executable, label, prepend_text, no_check):
    """Set the worker up as an AiiDA code on COMPUTER.

    COMPUTER is configured with AiiDA's own `verdi computer setup` and
    `verdi computer configure`. This command checks, through the computer's
    transport, that the worker runs there and is this aiida-crystinv version,
    then stores the code LABEL@COMPUTER that `--code` takes.

    \b
    Examples:
        crystinv setup-worker localhost
        crystinv setup-worker cluster --executable /home/me/venv/bin/crystinv-worker
        crystinv neighbours 51 -k 10 --code crystinv-worker@cluster --max-memory 4000
    """
    try:
        code = setup_worker(computer, executable, label, prepend_text, check=not no_check)
    except ValueError as exception:
        echo.echo_critical(str(exception))
    except Exception as exception:  # noqa: BLE001 - transport errors of any kind: one line
        echo.echo_critical(f"could not reach '{computer.label}' through {computer.transport_type} "
                           f"({one_line(str(exception))}); check it with `verdi computer test {computer.label}`")
    echo.echo_success(f"worker code {code.full_label} (pk {code.pk}): {code.filepath_executable}")
    echo.echo(f"  use it:  crystinv neighbours INVARIANTS -k 10 --code {code.full_label}")
