"""``crystinv clean``: processes that will never finish, and outputs that are not results.

A process run inside a ``crystinv`` command lives as long as that command. When the
command is killed (``kill -9``, a crash, a closed terminal), its process nodes stay
``created`` / ``running`` / ``waiting`` for ever, and on a profile without a running
daemon ``verdi process kill`` cannot reach them (there is no broker to ask). Every root
process a command starts records which operating-system process runs it (the extra
:data:`~aiida_crystinv.cli.interrupt.RUNNER_EXTRA`: host, pid, start time), so this command
can tell a process whose command is gone from one that still runs, without a broker.
"""

from __future__ import annotations

import typing as t

import click
from aiida.cmdline.utils import echo

from .root import cmd_crystinv
from .interrupt import RUNNER_EXTRA, abandon, runner_alive
from .tidy import _quiet_delete, failed_outputs, forget_orphans, inputs_made_by_run, maintain_quietly, unfinished_filter
from .utils import clean_errors, count_of, table, with_profile

__all__ = ("find_leftovers", "Leftovers")

class Leftovers(t.NamedTuple):
    """What ``crystinv clean`` found."""

    #: ``(root process node, why it will never finish)`` for the roots to mark killed.
    dead: list[tuple[t.Any, str]]
    #: ``(root process node, why it is left alone)`` for unfinished roots that may still run.
    alive: list[tuple[t.Any, str]]
    #: pks of data nodes that look like results but are not: outputs of killed or excepted
    #: runs (also the partial results of their finished sub-processes) and of failed processes.
    outputs: list[int]
    #: The root processes of those outputs (their inputs made during the run go with them).
    runs: list[t.Any]


def _root(node: t.Any) -> t.Any:
    seen = 0
    while node.caller is not None and seen < 100:
        node = node.caller
        seen += 1
    return node


def _daemon_running() -> bool:
    """Whether the profile's daemon runs (read from its pid file: no broker needed)."""
    from aiida.manage import get_manager

    profile = get_manager().get_profile()
    if profile is None or profile.process_control_backend is None:
        return False
    try:
        from aiida.engine.daemon.client import get_daemon_client

        return bool(get_daemon_client(profile.name).is_daemon_running)
    except Exception:  # noqa: BLE001 - no daemon configuration: not running
        return False


def find_leftovers(untracked: bool = False) -> Leftovers:
    """The unfinished root processes (dead or alive) and the outputs that are not results.

    A root process started by a ``crystinv`` command is dead when that command no longer
    runs (its pid is gone, or is another program's). Any other unfinished process (submitted
    to the daemon, or run by a Python script) is dead only with ``untracked`` and when the
    profile's daemon is not running: the daemon resumes such processes when it starts.
    """
    from aiida import orm

    builder = orm.QueryBuilder().append(
        orm.ProcessNode, filters=unfinished_filter(), project="*"
    )
    roots: dict[int, t.Any] = {}
    for node in builder.all(flat=True):
        root = _root(node)
        roots.setdefault(root.pk, root)
    daemon = None
    dead: list[tuple[t.Any, str]] = []
    alive: list[tuple[t.Any, str]] = []
    for pk in sorted(roots):
        root = roots[pk]
        if root.is_terminated:
            dead.append((root, f"its caller ended ({root.process_state.value}) but sub-processes did not"))
            continue
        record = root.base.extras.get(RUNNER_EXTRA, None)
        if record is not None:
            state = runner_alive(record)
            if state is False:
                dead.append((root, f"its crystinv command (pid {record.get('pid')}) is no longer running"))
            elif state is True:
                alive.append((root, f"its crystinv command (pid {record.get('pid')}) is running"))
            else:
                alive.append((root, f"run by a crystinv command on host {record.get('host')!r}: check it there"))
            continue
        if daemon is None:
            daemon = _daemon_running()
        if daemon:
            alive.append((root, "not from a crystinv command; the daemon is running and may be running it"))
        elif untracked:
            dead.append((root, "not from a crystinv command; the daemon is not running (--untracked)"))
        else:
            alive.append((root, "not from a crystinv command (the daemon resumes it when started; --untracked cleans it)"))

    failed = orm.QueryBuilder().append(
        orm.ProcessNode,
        filters={
            "or": [
                {"attributes.process_state": {"in": ["killed", "excepted"]}},
                {"attributes.process_state": "finished", "attributes.exit_status": {">": 0}},
            ]
        },
        project="*",
    )
    outputs: set[int] = set()
    runs: list[t.Any] = []
    failed_roots: dict[int, t.Any] = {}
    for node in failed.all(flat=True):
        root = _root(node)
        failed_roots.setdefault(root.pk, root)
    for root in failed_roots.values():
        if root.pk in roots:
            continue  # an unfinished tree: its outputs go with it when it is cleaned
        pks = failed_outputs(root, everything=bool(root.is_killed or root.is_excepted))
        if pks:
            outputs.update(pks)
            runs.append(root)
    return Leftovers(dead, alive, sorted(outputs), runs)


def _row(root: t.Any, why: str) -> list[t.Any]:
    state = root.process_state.value if root.process_state else "created"
    return [root.pk, root.process_label or type(root).__name__, state, root.ctime.strftime("%Y-%m-%d %H:%M"), why]


@cmd_crystinv.command("clean")
@click.option("-n", "--dry-run", is_flag=True, help="Only list what would be cleaned; change nothing.")
@click.option(
    "--untracked",
    is_flag=True,
    help="Also unfinished processes not started by a crystinv command (submitted to the daemon, or run by a Python "
    "script), when the daemon is not running. Make sure no script still runs them.",
)
@with_profile
@clean_errors
def cmd_clean(dry_run, untracked):
    """Mark processes that will never finish killed, and delete outputs that are not results.

    A process whose crystinv command was killed (kill -9, a crash, a closed
    terminal) stays 'running' for ever; on a profile whose daemon is not running,
    `verdi process kill` cannot reach it. This command finds them without a broker:
    every crystinv command records its host and pid on the processes it starts, and
    a process whose command is gone is marked killed, with its outputs (and the
    partial results of its finished sub-processes) deleted. Outputs of killed,
    excepted or failed processes are deleted too (not the files of a CalcJob that
    finished with an exit status: they record its failure). Repository files no
    node refers to are removed afterwards. Processes that may still run are listed and left alone.

    \b
    Examples:
        crystinv clean --dry-run
        crystinv clean
    """
    found = find_leftovers(untracked=untracked)
    if found.dead:
        echo.echo(f"Processes that will never finish ({len(found.dead)}):")
        echo.echo(table([_row(root, why) for root, why in found.dead], ["PK", "Process", "State", "Created", "Why"]))
    if found.alive:
        echo.echo(f"Unfinished processes left alone ({len(found.alive)}):")
        echo.echo(table([_row(root, why) for root, why in found.alive], ["PK", "Process", "State", "Created", "Why"]))
    if found.outputs:
        shown = ", ".join(map(str, found.outputs[:20])) + (", ..." if len(found.outputs) > 20 else "")
        echo.echo(f"Outputs of killed, excepted or failed runs ({len(found.outputs)}): {shown}")
    if not found.dead and not found.outputs:
        echo.echo_success("nothing to clean" + (f" ({len(found.alive)} unfinished process(es) may still run)" if found.alive else ""))
        return
    if dry_run:
        echo.echo_report(f"dry run: nothing changed; without --dry-run {len(found.dead)} process{'es' if len(found.dead) != 1 else ''} "
                         f"would be marked killed and {count_of(len(found.outputs), 'output node')} deleted")
        return
    killed, deleted = 0, list(found.outputs)
    for root, why in found.dead:
        n, pks = abandon(root, status=f"cleaned by `crystinv clean`: {why}")
        killed += n
        deleted += pks
    if found.outputs:

        made = [node for root in found.runs for node in inputs_made_by_run(root)]
        _quiet_delete(found.outputs)
        forget_orphans(made)
    maintain_quietly()
    echo.echo_success(
        f"marked {killed} process{'es' if killed != 1 else ''} killed and deleted {count_of(len(set(deleted)), 'node')} "
        "that were not results; unreferenced repository files removed"
    )
