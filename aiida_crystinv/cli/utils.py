"""Helpers shared by the commands: clean errors, progress bars, tables, running processes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import sys
import time
import typing as t

import click
from aiida.cmdline.utils import echo

from .._runner import in_process_runner

__all__ = (
    "require_profile",
    "with_profile",
    "clean_errors",
    "progress",
    "table",
    "in_process_runner",
    "run_process",
    "check_process",
    "Timer",
    "count_of",
)

F = t.TypeVar("F", bound=t.Callable[..., t.Any])


def require_profile() -> None:
    """Load the default profile if none is loaded; exit with advice when there is none."""
    import warnings

    from aiida.common.exceptions import ConfigurationError
    from aiida.manage import get_manager
    from aiida.manage.configuration import get_config

    manager = get_manager()
    if manager.get_profile() is not None:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            name = get_config(create=True).default_profile_name
    except ConfigurationError as exception:
        echo.echo_critical(f"cannot read the AiiDA configuration: {exception}")
    if name is None:
        echo.echo_critical(
            "there is no AiiDA profile to store results in: run the `crystinv` command instead (it creates an "
            "embedded SQLite profile named 'crystinv' on first use), or create one with `verdi presto`"
        )
    try:
        manager.load_profile(name)
    except Exception as exception:  # noqa: BLE001
        echo.echo_critical(f"cannot load the default profile {name!r}: {exception}")


def with_profile(func: F) -> F:
    """Like ``aiida.cmdline.utils.decorators.with_dbenv`` with advice when there is no profile."""
    from aiida.cmdline.utils.decorators import with_dbenv

    inner = with_dbenv()(func)

    @functools.wraps(func)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        require_profile()
        return inner(*args, **kwargs)

    @functools.wraps(func)
    def with_process_log(*args: t.Any, **kwargs: t.Any) -> t.Any:
        # verdi's --verbosity option reconfigures logging when it is parsed, without the
        # database handler; when the storage was loaded before that (the crystinv script
        # loads it first), process reports would reach the terminal but not the database
        # (`verdi process report`): configure logging with the database handler again
        from aiida.common.log import configure_logging
        from aiida.manage import get_manager

        manager = get_manager()
        if manager.get_profile() is not None and manager.profile_storage_loaded:
            configure_logging(with_orm=True, daemon_log_file=manager.get_config().filepaths(manager.get_profile())["profile"]["log"])
        return wrapper(*args, **kwargs)

    return t.cast(F, with_process_log)


def _debugging() -> bool:
    from aiida.common import log

    return (log.CLI_LOG_LEVEL or "").upper() == "DEBUG"


#: Longest error message (characters) a command prints; the rest is in the debug output.
MAX_MESSAGE = 280

#: Exceptions that mean "the request is too big", with what to say instead of their text.
_RESOURCE_ERRORS: dict[type, str] = {
    MemoryError: "not enough memory for this computation; use smaller parameters (e.g. a smaller k, cutoff or n_shells)",
    RecursionError: "the input is nested too deeply to be processed",
    OverflowError: "a number is too large",
}


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (runs of whitespace and newlines become one space), at most
    ``limit`` characters (cut in the middle with ``...`` so that both the start, which says
    what failed, and the end, which often holds the hint, are kept)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head = (limit - 5) * 2 // 3
    tail = limit - 5 - head
    return f"{text[:head]} ... {text[-tail:]}"


def clean_errors(func: F) -> F:
    """Turn any unexpected exception of a command into one ``Critical:`` line and exit code 1.

    The line is at most :data:`MAX_MESSAGE` characters; memory and recursion errors are
    said in words. With ``--verbosity debug`` the traceback is printed as well.
    """

    @functools.wraps(func)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            with interruptible():
                return func(*args, **kwargs)
        except KeyboardInterrupt:
            stop_after_interrupt()
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except Exception as exception:  # noqa: BLE001 - the point of this decorator
            if _debugging():
                import traceback

                traceback.print_exc()
            storage = storage_problem(exception)
            if storage:
                tidy_after_storage_error()
                echo.echo_critical(one_line(storage))
            message = str(exception) or repr(exception)
            for cls, said in _RESOURCE_ERRORS.items():
                if isinstance(exception, cls):
                    message = f"{said} ({message})" if str(exception) else said
                    break
            kind = type(exception).__name__
            echo.echo_critical(one_line(f"{message} [{kind}; rerun with --verbosity debug for the traceback]"))

    return t.cast(F, wrapper)


class _TqdmBar:
    def __init__(self, total: int, label: str):
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=label, file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(self, n: int) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


class _ClickBar:
    def __init__(self, total: int, label: str):
        self._ctx = click.progressbar(length=total, label=label, file=sys.stderr)
        self._bar = self._ctx.__enter__()

    def update(self, n: int) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._ctx.__exit__(None, None, None)


def progress_wanted() -> bool:
    """Whether to draw progress bars: on a terminal, or as ``CRYSTINV_PROGRESS`` says."""
    import os

    setting = os.environ.get("CRYSTINV_PROGRESS", "auto").lower()
    if setting in ("always", "1", "yes", "true"):
        return True
    if setting in ("never", "0", "no", "false"):
        return False
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress(total: int, label: str, enabled: bool = True) -> t.Iterator[t.Callable[[int], None]]:
    """A progress bar on stderr (tqdm if installed, else click's); yields ``update(n)``.

    Silent when ``enabled`` is false or stderr is not a terminal (logs, CI, tests), unless
    the environment variable ``CRYSTINV_PROGRESS`` is ``always`` (``never`` turns bars off).
    """
    if not enabled or total <= 0 or not progress_wanted():
        yield lambda n: None
        return
    try:
        bar: t.Any = _TqdmBar(total, label)
    except ImportError:
        bar = _ClickBar(total, label)
    try:
        yield bar.update
    finally:
        bar.close()


def table(
    rows: t.Sequence[t.Sequence[t.Any]], headers: t.Sequence[str] = (), floatfmt: str = ".4g", plain: bool = False
) -> str:
    """A plain-text table (``tabulate``, a dependency of aiida-core); ``plain``: no header rule."""
    from tabulate import tabulate

    if plain:
        return tabulate(rows, tablefmt="plain", floatfmt=floatfmt)
    return tabulate(rows, headers=headers, floatfmt=floatfmt, disable_numparse=False)


#: Process labels of the WorkChain that computes one chunk of a dataset's invariants.
CHUNK_PROCESSES = ("InvariantsChunkWorkChain",)


def is_chunk(node: t.Any) -> bool:
    """Whether an invariants node is an intermediate chunk: merged into another node, or
    computed by a chunk sub-process (also when its parent was killed before the merge)."""
    from aiida import orm

    for link in node.base.links.get_outgoing(node_class=orm.CalcFunctionNode).all():
        if link.node.process_label == "merge_invariants":
            return True
    creator = node.creator
    caller = creator.caller if creator is not None else None
    return caller is not None and caller.process_label in CHUNK_PROCESSES


def is_result(node: t.Any) -> bool:
    """Whether a data node is a result: made directly (no process) or by a process that
    finished ok. Outputs of a killed, excepted or failed process, or of one that never
    finished, are not (``crystinv list`` hides them, ``crystinv clean`` deletes them)."""
    creator = node.creator
    return creator is None or bool(creator.is_finished_ok)


def count_of(n: int, noun: str) -> str:
    """``'1 structure'``, ``'3163 structures'``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def check_process(node: t.Any, what: str) -> None:
    """Exit with a clear message if a process did not finish successfully (a full disk or a
    read-only database is named as such)."""
    if node.is_finished_ok:
        return
    if node.is_excepted:
        storage = storage_problem_text(node.exception or "")
        if storage:
            tidy_after_storage_error()
            echo.echo_critical(one_line(f"{what} failed: {storage} [{node.process_label} {node.pk}]"))
        reason = node.exception.strip().splitlines()[-1] if node.exception else "an exception"
    elif node.is_killed:
        reason = "it was killed"
    else:
        reason = f"exit status {node.exit_status}: {node.exit_message or 'no message'}"
    echo.echo_critical(one_line(f"{what} failed ({reason}); see `verdi process report {node.pk}`"))


# ---------------------------------------------------------------------------- interruption
#: Exit status of a command stopped by a signal, as a shell reports it (128 + the number):
#: 130 for SIGINT (Ctrl-C), 143 for SIGTERM (``kill PID``).
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

#: Extra set on every root process a ``crystinv`` command starts: which operating-system
#: process runs it (``{'host', 'pid', 'started'}``), so that ``crystinv clean`` can tell a
#: process whose command is gone (it will never finish) from one still running.
RUNNER_EXTRA = "crystinv_runner"

#: Set by the SIGINT / SIGTERM handlers of :func:`ctrl_c_raises`, read by ``_execute``.
_SIGNALLED: set[int] = set()

#: What processes of the running command finished ok and stored (said when it is interrupted later).
_KEPT: list[str] = []

_DEPTH = [0]

#: The root processes :func:`abandon_mine` stopped (named in the line of :func:`stop_after_interrupt`).
_STOPPED: list[str] = []

#: Input nodes that processes of the running command stored (deleted after an interrupt
#: when they are left linked to nothing).
_RUN_INPUTS: list[t.Any] = []

#: ``signal.signal`` itself (:func:`ctrl_c_raises` replaces the module's attribute while it runs).
_ORIGINAL_SIGNAL = signal.signal


def this_runner() -> dict[str, t.Any]:
    """``{'host', 'pid', 'started'}`` of this operating-system process (``started``: its
    start time, seconds since the epoch, so that a reused pid is not mistaken for it)."""
    import os
    import socket

    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(), "started": round(psutil.Process().create_time(), 2)}


def runner_alive(record: t.Any) -> bool | None:
    """Whether the operating-system process of a :data:`RUNNER_EXTRA` record still runs
    (None: it ran on another host, so this cannot be told from here)."""
    import socket

    import psutil

    if not isinstance(record, dict) or "pid" not in record:
        return None
    if record.get("host") != socket.gethostname():
        return None
    try:
        started = psutil.Process(int(record["pid"])).create_time()
    except psutil.AccessDenied:  # it exists (another user's): assume it is that command
        return True
    except (psutil.NoSuchProcess, ValueError, TypeError):
        return False
    return abs(started - float(record.get("started") or 0)) < 1.0


def _tag_root_processes() -> t.Callable[[], None]:
    """Make every root process created in this Python process carry :data:`RUNNER_EXTRA`;
    returns the function that undoes it."""
    from aiida.engine.processes.process import Process

    original = Process._setup_db_record
    record = this_runner()

    def setup_db_record(self: t.Any) -> None:
        # set on the node before it is first stored: stored with it, in the same transaction
        if self._parent_pid is None:  # a root process: its callees are found from it
            self.node.base.extras.set(RUNNER_EXTRA, record)
        try:  # inputs stored with the node: orphans if an interrupt lands between the two
            _RUN_INPUTS.extend(_stored_inputs(self.inputs or {}))
        except Exception:  # noqa: BLE001 - a record for the tidy-up, never worth a failed run
            pass
        original(self)

    Process._setup_db_record = setup_db_record  # type: ignore[method-assign]

    def undo() -> None:
        Process._setup_db_record = original  # type: ignore[method-assign]

    return undo


@contextlib.contextmanager
def interruptible() -> t.Iterator[None]:
    """The whole of a command: Ctrl-C (SIGINT) and SIGTERM raise ``KeyboardInterrupt``
    wherever they land (:func:`ctrl_c_raises`, also where AiiDA would install its own
    handler), and the root processes started carry :data:`RUNNER_EXTRA`. The command's
    decorator (:func:`clean_errors`) then tidies up and exits with one line
    (:func:`stop_after_interrupt`)."""
    _DEPTH[0] += 1
    outermost = _DEPTH[0] == 1
    if outermost:
        _SIGNALLED.clear()
        _KEPT.clear()
        _RUN_INPUTS.clear()
    undo = _tag_root_processes() if outermost else (lambda: None)
    hook = sys.unraisablehook
    if outermost:
        sys.unraisablehook = _quiet_unraisable
    try:
        with ctrl_c_raises():
            yield
    finally:
        undo()
        if outermost and sys.unraisablehook is _quiet_unraisable:  # not once an interrupted exit silenced it
            sys.unraisablehook = hook
        _DEPTH[0] -= 1


def _quiet_unraisable(unraisable: t.Any) -> None:
    """A Ctrl-C that lands where Python cannot raise it (a garbage-collector callback, a
    ``__del__``) is not printed as "Exception ignored in ..." with a traceback: the run
    notices the signal a moment later (``_execute``) and says it in one line."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and not _debugging():
        return  # the signal is in `_SIGNALLED`: `_execute` raises it where it can unwind the run
    if _SIGNALLED and not _debugging():
        return  # an object the signal caught half-built, failing in its __del__: the run is stopping
    sys.__unraisablehook__(unraisable)


@contextlib.contextmanager
def _shielded() -> t.Iterator[None]:
    """While the tidy-up after an interrupt runs: further SIGINT / SIGTERM are remembered,
    not raised (a second Ctrl-C must neither be needed nor break the tidy-up)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def remember(signum: int, _frame: t.Any) -> None:
        _SIGNALLED.add(signum)

    install = _ORIGINAL_SIGNAL
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        install(signum, remember)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            install(signum, handler if handler is not None else signal.SIG_DFL)


def _interrupt_words() -> tuple[str, int]:
    import signal

    if signal.SIGTERM in _SIGNALLED:
        return "terminated (SIGTERM)", EXIT_SIGTERM
    return "interrupted (Ctrl-C)", EXIT_SIGINT


def interrupted_exit(stopped: str) -> t.NoReturn:
    """Print the one line of an interrupted command (what was stopped, what is kept) and
    exit with :data:`EXIT_SIGINT` or :data:`EXIT_SIGTERM`."""
    from aiida.cmdline.utils.echo import CMDLINE_LOGGER

    words, status = _interrupt_words()
    kept = f"kept: {'; '.join(_KEPT)}" if _KEPT else "nothing of this run is kept"
    CMDLINE_LOGGER.critical(one_line(f"{words}: {stopped}; {kept}", 2 * MAX_MESSAGE), extra={"nl": True, "err": True, "prefix": True})
    if not _debugging():
        # objects the signal caught half-built (a disk-objectstore Container, say) fail in
        # their ``__del__`` while the interpreter shuts down: "Exception ignored in ..." and a
        # traceback after the one line. The command has said what happened; stay silent.
        sys.unraisablehook = _silent_unraisable
    sys.exit(status)


def _silent_unraisable(_unraisable: t.Any) -> None:
    """Drop an unraisable exception (installed only once an interrupted command exits)."""


def stop_after_interrupt() -> t.NoReturn:
    """After a ``KeyboardInterrupt`` (SIGINT / SIGTERM) escaped a command: mark the
    unfinished processes of this command killed, delete what they created, exit with one
    line (:func:`interrupted_exit`)."""
    with _shielded():
        stopped = "stopped before any process started"
        killed, deleted = 0, []
        release_interrupted_cursors(sys.exc_info()[1])
        for attempt in range(2):  # the interrupted transaction may still hold the storage: retry on a new session
            _STOPPED.clear()
            try:
                killed, deleted = abandon_mine()
                break
            except Exception:  # noqa: BLE001 - the storage may be unusable: nothing more to do here
                logging.getLogger(__name__).debug("tidying up after the interrupt failed", exc_info=True)
                killed, deleted = 0, []
                if attempt == 0:
                    try:
                        from aiida.manage import get_manager

                        get_manager().reset_profile_storage()
                    except Exception:  # noqa: BLE001
                        break
        if killed:
            stopped = f"{', '.join(_STOPPED[:3]) or 'the run'} was stopped" + (
                f" ({killed} processes marked killed)" if killed > 1 else ""
            ) + (f" and its {count_of(len(deleted), 'result node')} deleted" if deleted else "")
        elif _KEPT:
            stopped = "stopped after its processes finished"
        _retire_current()
        interrupted_exit(stopped)


def _retire_current() -> None:
    from .. import _runner

    current = _runner._IN_PROCESS_RUNNER
    if current is not None:
        try:
            _retire(current[1])
        except Exception:  # noqa: BLE001 - best effort
            pass


#: Terminal process states; any other (created, running, waiting, or none recorded: a
#: command stopped right after the node was stored) is unfinished.
TERMINAL_STATES = ("finished", "excepted", "killed")


def unfinished_filter() -> dict[str, t.Any]:
    """QueryBuilder filters of the process nodes that are not terminated, those with no
    recorded state included (spelled out: a JSON null is not matched by ``!in`` on every
    database)."""
    return {
        "or": [
            {"attributes.process_state": {"!in": list(TERMINAL_STATES)}},
            {"attributes": {"!has_key": "process_state"}},
        ]
    }


def abandon_mine() -> tuple[int, list[int]]:
    """:func:`abandon` every unfinished root process this operating-system process started
    (:data:`RUNNER_EXTRA`). Returns ``(processes marked killed, deleted pks)``."""
    from aiida import orm

    _fresh_session()
    me = this_runner()
    builder = orm.QueryBuilder().append(
        orm.ProcessNode,
        filters={
            "and": [
                {f"extras.{RUNNER_EXTRA}.pid": me["pid"], f"extras.{RUNNER_EXTRA}.host": me["host"]},
                unfinished_filter(),
            ]
        },
        project="*",
    )
    killed, deleted = 0, []
    for node in builder.all(flat=True):
        record = node.base.extras.get(RUNNER_EXTRA, {})
        if abs(float(record.get("started") or 0) - me["started"]) >= 1.0:
            continue  # an earlier process with the same pid
        _STOPPED.append(f"{node.process_label} <{node.pk}>")
        n, pks = abandon(node)
        killed += n
        deleted += pks
    forget_orphans(_RUN_INPUTS)
    return killed, deleted


def release_interrupted_cursors(exception: BaseException | None) -> int:
    """Close the database cursors that ``exception`` (a Ctrl-C) caught in mid-statement;
    returns how many.

    A ``KeyboardInterrupt`` inside ``cursor.execute`` makes SQLAlchemy invalidate (close)
    that connection, but SQLite defers closing a connection whose statement is unfinished,
    and the statement lives on in the frames of the exception's traceback (kept by the
    exception, and by the asyncio task that raised it). Until then its read lock stays: the
    tidy-up's writes, on a new connection, fail with "database is locked", and the run's
    processes would be left unfinished. Closing the cursor finalises the statement."""
    import sqlite3

    closed, seen, pending = 0, set(), [exception]
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        pending += [exc.__context__, exc.__cause__]
        tb = exc.__traceback__
        while tb is not None:
            for value in list(tb.tb_frame.f_locals.values()):
                if isinstance(value, sqlite3.Cursor):
                    try:
                        value.close()
                        closed += 1
                    except Exception:  # noqa: BLE001 - a cursor already closed, or of a closed connection
                        pass
            tb = tb.tb_next
    return closed


def _fresh_session() -> None:
    """End the transaction an interrupt or a storage error left open (it may hold the
    database's write lock); a broken session is replaced."""
    from aiida.manage import get_manager

    try:
        get_manager().get_profile_storage().get_session().rollback()
    except Exception:  # noqa: BLE001 - a broken session: start a new one
        get_manager().reset_profile_storage()


def _describe_outputs(node: t.Any) -> str:
    """``'import_dataset <3>: dataset <4>'``: a finished process and what it created."""
    from aiida.common.links import LinkType

    try:
        links = node.base.links.get_outgoing(link_type=(LinkType.CREATE, LinkType.RETURN)).all()
        made = [f"{link.link_label} <{link.node.pk}>" for link in links][:3]
        return f"{node.process_label} <{node.pk}>" + (f" ({', '.join(made)})" if made else "")
    except Exception:  # noqa: BLE001 - said in words only
        return "a finished process"


def _stored_inputs(inputs: t.Mapping[str, t.Any]) -> list[t.Any]:
    """The unstored nodes among ``inputs`` (nested namespaces too): stored by the process's
    creation, they are orphans if that fails."""
    from aiida import orm

    found = []
    for value in inputs.values():
        if isinstance(value, orm.Node) and not value.is_stored:
            found.append(value)
        elif isinstance(value, t.Mapping):
            found.extend(_stored_inputs(value))
    return found


def forget_orphans(nodes: t.Sequence[t.Any]) -> None:
    """Delete the nodes of ``nodes`` that are stored but linked to nothing (the process they
    were stored for was never created, or was deleted with its interrupted run)."""
    from aiida import orm

    candidates = sorted({node.pk for node in nodes if getattr(node, "pk", None) is not None})
    pks = []
    for pk in candidates:
        try:
            if not orm.QueryBuilder().append(orm.Node, filters={"id": pk}).count():
                continue
            loaded = orm.load_node(pk)
            if not loaded.base.links.get_outgoing().all() and not loaded.base.links.get_incoming().all():
                pks.append(pk)
        except Exception:  # noqa: BLE001 - best effort
            continue
    if pks:
        try:
            _quiet_delete(pks)
        except Exception:  # noqa: BLE001 - best effort; `crystinv clean` reports what is left
            pass


def run_process(
    process: t.Any,
    inputs: dict[str, t.Any],
    *,
    label: str = "",
    total: int = 0,
    count_done: t.Callable[[t.Any], int] | None = None,
) -> tuple[dict[str, t.Any], t.Any]:
    """Run a process (class or process function) here and return ``(outputs, node)``.

    For a WorkChain with ``total`` > 0 and ``count_done(node) -> int``, a progress bar is
    drawn while it runs: the runner's event loop is driven by a coroutine that, between
    steps of the workflow, asks ``count_done`` how far it got.

    A process that did not finish keeps no output (:func:`discard_failed_outputs`); outputs
    of sub-processes that finished ok stay (they are valid provenance). Ctrl-C or SIGTERM
    (:func:`ctrl_c_raises`) stops the run at once: the unfinished processes are marked
    killed, what they created is deleted, and the command exits with one line and status
    130 (SIGINT) or 143 (SIGTERM). Input nodes stored for a process whose creation failed
    (a full disk) are deleted again.
    """
    from aiida.engine import utils as engine_utils

    quiet_process_tracebacks()
    runner = in_process_runner()
    node = None
    what = f"{getattr(process, '__name__', 'the process')} (starting)"
    fresh = _stored_inputs(inputs)
    try:
        with ctrl_c_raises(), engine_utils.loop_scope(runner.loop):
            if engine_utils.is_process_function(process):
                process_class = process.process_class
                instance = process_class(inputs=process_class.create_inputs(**inputs), runner=runner)
            else:
                instance = runner.instantiate_process(process, **inputs)
            node = instance.node
            what = f"{node.process_label} <{node.pk}>"
            outputs = _execute(instance, runner, label=label, total=total, count_done=count_done)
    except KeyboardInterrupt as interrupt:
        with _shielded():
            try:
                release_interrupted_cursors(interrupt)
                _fresh_session()
                killed, discarded = abandon(node, fresh=fresh) if node is not None else (0, [])
                more, also = abandon_mine()
                killed, discarded = killed + more, discarded + also
                if node is None:
                    forget_orphans(fresh)
            except Exception:  # noqa: BLE001 - the storage may be unusable: say what is known
                killed, discarded = 0, []
            _retire(runner)
            interrupted_exit(
                f"{what} was stopped"
                + (f" ({killed} processes marked killed)" if killed > 1 else "")
                + (f" and its {count_of(len(discarded), 'result node')} deleted" if discarded else "")
            )
    except Exception:
        _fresh_session()
        if node is not None:
            try:
                discard_failed_outputs(node)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        else:
            forget_orphans(fresh)
        raise
    if not node.is_finished_ok:
        discarded = discard_failed_outputs(node)
        if discarded:
            echo.echo_warning(
                f"discarded {count_of(len(discarded), 'output node')} of {node.process_label} <{node.pk}>, "
                "which did not finish (a killed or excepted process keeps no results)"
            )
            outputs = {}
    else:
        _KEPT.append(_describe_outputs(node))
    return outputs, node


def _execute(
    instance: t.Any,
    runner: t.Any,
    *,
    label: str = "",
    total: int = 0,
    count_done: t.Callable[[t.Any], int] | None = None,
) -> dict[str, t.Any]:
    """Run an instantiated process to its end; return its outputs."""
    from aiida.engine.processes.functions import FunctionProcess

    if isinstance(instance, FunctionProcess):
        _SIGNALLED.clear()
        outputs = instance.execute()
        if _SIGNALLED:  # a signal swallowed on the way (see `_quiet_unraisable`): the run was interrupted
            raise KeyboardInterrupt
        return outputs
    bar = total > 0 and count_done is not None and progress_wanted()

    with (progress(total, label) if bar else contextlib.nullcontext()) as update:

        async def drive() -> None:
            # a Ctrl-C that lands where Python swallows exceptions (a garbage-collector
            # callback, say) is still seen here, at most 0.1 s later
            task = asyncio.ensure_future(instance.step_until_terminated())
            done = 0
            while not task.done():
                await asyncio.sleep(0.1)
                if _SIGNALLED:
                    task.cancel()
                    raise KeyboardInterrupt
                if bar:
                    now = min(total, count_done(instance.node))  # type: ignore[misc]
                    if now > done:
                        update(now - done)
                        done = now
            await task
            if bar and done < total:
                update(total - done)

        _SIGNALLED.clear()
        runner.loop.run_until_complete(drive())
    return instance.outputs




def _interrupt(signum: int, frame: t.Any) -> None:
    """Ctrl-C: remembered (for ``_execute``), then Python's own ``KeyboardInterrupt``."""
    import signal

    _SIGNALLED.add(signum)
    signal.default_int_handler(signum, frame)


@contextlib.contextmanager
def ctrl_c_raises() -> t.Iterator[None]:
    """While a process runs here, Ctrl-C (SIGINT) raises ``KeyboardInterrupt``, as Python does
    by default, also where AiiDA would install its own handler; so does SIGTERM.

    AiiDA's handler kills the process from inside the signal handler: it writes to the
    database wherever the signal lands, also in the middle of a commit, after which the
    session is unusable and the event loop polls it forever ("This session is in
    'prepared' state"); and a process function's body runs on regardless, so its outputs
    are attached to the killed process. Here the interrupt unwinds the run instead, and
    :func:`run_process` tidies up with a fresh session (:func:`abandon`).
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    install = _ORIGINAL_SIGNAL
    ours = {signal.SIGINT: _interrupt, signal.SIGTERM: _terminate}
    previous = {signum: signal.getsignal(signum) for signum in ours}
    patched = signal.signal

    def keep_raising(signalnum: int, handler: t.Any) -> t.Any:
        return install(signalnum, ours.get(signalnum, handler))

    for signum, handler in ours.items():
        install(signum, handler)
    signal.signal = keep_raising  # type: ignore[assignment]
    try:
        yield
    finally:
        signal.signal = patched  # type: ignore[assignment]
        for signum, handler in previous.items():
            install(signum, handler if handler is not None else signal.SIG_DFL)


def _terminate(signum: int, _frame: t.Any) -> None:
    """SIGTERM (``kill PID``) during a run: unwind like Ctrl-C, so the run is tidied up."""
    _SIGNALLED.add(signum)
    raise KeyboardInterrupt("terminated")


def _retire(runner: t.Any) -> None:
    """Silence and close the event loop of a run that Ctrl-C unwound: its other tasks end
    with the same ``KeyboardInterrupt``, which asyncio would print as "Task exception was
    never retrieved" tracebacks when they are collected. A new runner is made on next use.

    Called after :func:`abandon`: ending the coroutines runs the processes' own exception
    handlers, whose writes to the (sealed) nodes and log lines are of no use any more, so
    logging is off meanwhile and their errors are ignored."""
    loop = runner.loop
    loop.set_exception_handler(lambda _loop, _context: None)
    logging.disable(logging.CRITICAL)
    try:
        for task in asyncio.all_tasks(loop):
            if task.done():
                if not task.cancelled():
                    task.exception()
                continue
            try:  # end the coroutine here, where its clean-up errors can be ignored, not at collection
                task.get_coro().close()
            except BaseException:  # noqa: BLE001 - e.g. greenback's shim on an unwound portal
                pass
        try:
            runner.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
    finally:
        logging.disable(logging.NOTSET)


def abandon(node: t.Any, status: str = "", fresh: t.Sequence[t.Any] = ()) -> tuple[int, list[int]]:
    """Mark the unfinished processes of ``node``'s call tree killed (sealed, so nothing
    waits on them) and delete what processes that did not finish ok created: after an
    interrupted run, or for ``crystinv clean``: nothing of the run is left but its inputs
    made before it (``fresh``: nodes stored for it, deleted too when linked to nothing).
    Returns ``(number of processes marked killed, deleted pks)``."""
    from aiida import orm
    from aiida.engine import ProcessState

    _fresh_session()
    node = orm.load_node(node.pk)
    tree = [node] + (list(node.called_descendants) if isinstance(node, orm.WorkflowNode) else [])
    cancel_scheduler_jobs([proc for proc in tree if isinstance(proc, orm.CalcJobNode) and not proc.is_terminated])
    words, _ = _interrupt_words()
    killed = 0
    for proc in tree:
        if proc.is_terminated:
            continue
        proc.set_process_state(ProcessState.KILLED)
        proc.set_process_status(status or f"{words} while running in a crystinv command")
        if not proc.is_sealed:
            proc.seal()
        killed += 1
    made = inputs_made_by_run(node)
    deleted = discard_failed_outputs(node, everything=True)
    forget_orphans(made + list(fresh))
    return killed, deleted


def inputs_made_by_run(node: t.Any) -> list[t.Any]:
    """Input nodes of the processes of ``node``'s call tree that were stored during the run
    (the chunks' row ranges, ...): they are linked to nothing once the run is deleted."""
    from aiida import orm
    from aiida.common.links import LinkType

    tree = [node] + (list(node.called_descendants) if isinstance(node, orm.WorkflowNode) else [])
    return [
        link.node
        for proc in tree
        for link in proc.base.links.get_incoming(link_type=(LinkType.INPUT_CALC, LinkType.INPUT_WORK)).all()
        if link.node.pk > node.pk
    ]


def cancel_scheduler_jobs(calcs: list[t.Any]) -> list[str]:
    """Cancel the scheduler jobs of unfinished CalcJobs (through each computer's transport
    and scheduler); says which were cancelled and which could not be. Returns the job ids
    cancelled."""
    cancelled: list[str] = []
    for calc in calcs:
        job_id = calc.get_job_id()
        if not job_id:
            continue
        try:
            with calc.computer.get_transport() as transport:
                scheduler = calc.computer.get_scheduler()
                scheduler.set_transport(transport)
                scheduler.kill_job(job_id)
            cancelled.append(job_id)
        except Exception as exception:  # noqa: BLE001 - report and go on with the others
            echo.echo_warning(f"job {job_id} of {calc.process_label} <{calc.pk}> on '{calc.computer.label}' could not be "
                              f"cancelled ({one_line(str(exception))}): cancel it with the scheduler's own command")
    if cancelled:
        echo.echo_report(f"cancelled {count_of(len(cancelled), 'scheduler job')}: {', '.join(cancelled)}")
    return cancelled


def _quiet_delete(pks: list[int]) -> None:
    from aiida.tools import delete_nodes

    delete_logger = logging.getLogger("aiida.delete")
    level = delete_logger.level
    delete_logger.setLevel(logging.WARNING)
    try:
        delete_nodes(pks, dry_run=False)
    finally:
        delete_logger.setLevel(level)


def failed_outputs(node: t.Any, everything: bool = False) -> list[int]:
    """The data nodes *created* by the processes of ``node``'s call tree that did not finish
    ok (see :func:`discard_failed_outputs`), sorted pks; with ``everything``, also those of
    sub-processes that finished ok (the partial results of a run that was stopped), except
    those that a process outside the tree already uses."""
    from aiida import orm
    from aiida.common.links import LinkType

    processes = [node]
    if isinstance(node, orm.WorkflowNode):
        processes.extend(node.called_descendants)
    tree = {proc.pk for proc in processes}
    pks = set()
    for proc in processes:
        failed = not proc.is_finished_ok and not (isinstance(proc, orm.CalcJobNode) and proc.is_finished)
        if not (failed or everything):
            continue
        for link in proc.base.links.get_outgoing(link_type=LinkType.CREATE).all():
            if not failed and _used_outside(link.node, tree):
                continue  # a valid result another run already builds on: deleting it would delete that run too
            pks.add(link.node.pk)
    return sorted(pks)


def _used_outside(node: t.Any, tree: set[int]) -> bool:
    """Whether a data node is an input of a process outside ``tree`` (pks)."""
    from aiida.common.links import LinkType

    links = node.base.links.get_outgoing(link_type=(LinkType.INPUT_CALC, LinkType.INPUT_WORK)).all()
    return any(link.node.pk not in tree for link in links)


def discard_failed_outputs(node: t.Any, everything: bool = False) -> list[int]:
    """Delete the data nodes *created* by the processes of ``node``'s call tree that did not
    finish ok (killed, excepted, failed, or never terminated); return their pks.

    A process function interrupted with Ctrl-C is marked killed, but its body runs to the
    end and its outputs are attached anyway: a result of a killed run must not be mistaken
    for a valid one. A CalcJob that finished with an exit status keeps its outputs (the
    retrieved files, the parsed output of a failed DFT run): they are the record of the
    external code's failure, not a result, and its exit status says so.

    With ``everything`` (a run that was interrupted or abandoned), the outputs of its
    sub-processes that finished ok go too (AiiDA's deletion rules then delete those
    processes and their callers: nothing of the run is left)."""
    pks = failed_outputs(node, everything)
    if pks:
        _quiet_delete(pks)
    return pks


# ---------------------------------------------------------------------------- storage errors
#: Words of an error that mean the profile's storage cannot be written, and what to say.
_STORAGE_CAUSES: tuple[tuple[str, str], ...] = (
    ("database or disk is full", "database or disk is full"),
    ("no space left on device", "disk full (no space left on device)"),
    ("disk quota exceeded", "disk quota exceeded"),
    ("attempt to write a readonly database", "read-only database (attempt to write a readonly database)"),
    ("read-only file system", "read-only file system"),
    ("readonly database", "read-only database"),
    ("disk i/o error", "disk I/O error (is the disk full?)"),
)


def storage_problem_text(text: str) -> str:
    """One sentence naming the cause when ``text`` (an error message or a traceback) says
    the storage cannot be written (disk full, read-only), else ``''``."""
    low = text.lower()
    for needle, cause in _STORAGE_CAUSES:
        if needle in low:
            return f"{cause}: the profile's storage{_storage_place()} cannot be written; free space (or make it writable) and run again"
    return ""


def storage_problem(exception: BaseException) -> str:
    """:func:`storage_problem_text` for an exception and its causes (``errno`` ENOSPC,
    EDQUOT, EROFS; SQLite's "database or disk is full", "readonly database")."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = exception
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "errno", None)
        if code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            cause = {errno.ENOSPC: "disk full (no space left on device)", errno.EDQUOT: "disk quota exceeded",
                     errno.EROFS: "read-only file system"}[code]
            return f"{cause}: the profile's storage{_storage_place()} cannot be written; free space (or make it writable) and run again"
        said = storage_problem_text(str(current))
        if said:
            return said
        current = current.__cause__ or current.__context__
    return ""


def _storage_place() -> str:
    try:
        from aiida.manage import get_manager

        path = get_manager().get_profile().storage_config.get("filepath")
        return f" ({path})" if path else ""
    except Exception:  # noqa: BLE001 - said without the place
        return ""


def tidy_after_storage_error() -> None:
    """After the storage refused a write: end the failed transaction, mark the unfinished
    processes of this command killed and delete what they created, and remove repository
    files no node refers to (best effort: the disk may still be full)."""
    with _shielded():
        try:
            abandon_mine()
        except Exception:  # noqa: BLE001 - best effort
            pass
        try:
            _fresh_session()
            maintain_quietly()
        except Exception:  # noqa: BLE001 - the repository's own index cannot be opened on a full disk
            try:
                _drop_new_loose_objects()
            except Exception:  # noqa: BLE001 - best effort: `crystinv clean` removes them once there is space
                pass


class Timer:
    """``with Timer() as timer: ...``; then ``timer.seconds``."""

    def __enter__(self) -> "Timer":
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.seconds = time.perf_counter() - self._start


class _NoProcessReports(logging.Filter):
    """Drop log records of processes (they carry ``dbnode_id``) below WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not hasattr(record, "dbnode_id")


class _NoTracebacks(logging.Filter):
    """Drop log records of processes that carry a traceback (AiiDA's ``on_except`` report),
    and records of any library about a ``KeyboardInterrupt`` (e.g. SQLAlchemy's "Exception
    during reset" when Ctrl-C lands in its connection pool): the command says it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _debugging():
            return True
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            return False
        if not hasattr(record, "dbnode_id"):
            return True
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: let the handler deal with it
            return True
        return "Traceback (most recent call last)" not in text


def quiet_process_tracebacks() -> None:
    """Keep the tracebacks that AiiDA reports for an excepted process off the terminal (the
    command says what failed in one line); they stay in the database (``verdi process
    report``), and ``--verbosity debug`` shows them."""
    from aiida.orm.utils.log import DBLogHandler

    for name in ("aiida", "sqlalchemy", "plumpy", "disk_objectstore", ""):
        for handler in logging.getLogger(name).handlers:
            if not isinstance(handler, DBLogHandler) and not any(isinstance(f, _NoTracebacks) for f in handler.filters):
                handler.addFilter(_NoTracebacks())


def quiet_process_reports() -> None:
    """Keep process report lines off the terminal, but in the database (``verdi process report``).

    A filter on the terminal handlers of the ``aiida`` logger; the database log handler
    still receives every record (lowering the logger's level would drop them there too).
    """
    from aiida.orm.utils.log import DBLogHandler

    for handler in logging.getLogger("aiida").handlers:
        if not isinstance(handler, DBLogHandler) and not any(isinstance(f, _NoProcessReports) for f in handler.filters):
            handler.addFilter(_NoProcessReports())


def maintain_quietly() -> None:
    """``verdi storage maintain`` (not the full one, which needs no other process using the
    profile): removes repository files no node refers to, without its report lines."""
    from aiida.manage import get_manager

    logging.disable(logging.CRITICAL)
    try:
        get_manager().get_profile_storage().maintain(full=False, dry_run=False)
    finally:
        logging.disable(logging.NOTSET)


def _drop_new_loose_objects() -> None:
    """Delete the loose repository files written since this command started that no node
    refers to (what a write that failed on a full disk left; the repository's own index
    may not open then, so the files are found on disk and checked against the nodes)."""
    import pathlib

    import psutil
    from aiida import orm
    from aiida.manage import get_manager

    filepath = get_manager().get_profile().storage_config.get("filepath")
    if not filepath:
        return
    loose = pathlib.Path(filepath) / "container" / "loose"
    started = psutil.Process().create_time()
    new = {p.parent.name + p.name: p for p in loose.glob("*/*") if p.is_file() and p.stat().st_mtime >= started}
    if not new:
        return
    referenced: set[str] = set()

    def walk(meta: t.Any) -> None:
        if isinstance(meta, dict):
            if "k" in meta:
                referenced.add(meta["k"])
            for value in (meta.get("o") or {}).values():
                walk(value)

    for (meta,) in orm.QueryBuilder().append(orm.Node, project="repository_metadata").iterall():
        walk(meta)
    for key, path in new.items():
        if key not in referenced:
            path.unlink(missing_ok=True)
