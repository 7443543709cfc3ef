"""Ctrl-C (SIGINT) and SIGTERM in a command: the signal raises wherever it lands (also where
AiiDA would install its own handler), the command's unfinished processes are marked killed
and what they created is deleted, and one line says what was stopped and what is kept
(exit status 130 or 143). Every root process a command starts records which
operating-system process runs it (:data:`RUNNER_EXTRA`), so ``crystinv clean`` can later tell
a process whose command is gone from one that still runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import typing as t

from .messages import MAX_MESSAGE, _debugging, count_of, one_line
from .tidy import (
    _pk_or_none,
    _drop_new_loose_objects,
    _fresh_session,
    _stored_inputs,
    cancel_scheduler_jobs,
    discard_failed_outputs,
    forget_orphans,
    inputs_made_by_run,
    maintain_quietly,
    unfinished_filter,
)

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


def interrupt_pending() -> bool:
    """Whether SIGINT / SIGTERM arrived during this command (also one that Python could not
    raise where it landed, such as in a garbage-collector callback): for event loops that
    drive processes themselves, to stop between two steps."""
    return bool(_SIGNALLED)


def forget_earlier_signals() -> None:
    """Before a run outside any command (the Python API): a signal recorded by an earlier
    run is not this run's. Inside a command nothing is forgotten: a signal that arrived
    anywhere in it stops it, also one that Python swallowed before this run began."""
    if _DEPTH[0] == 0:
        _SIGNALLED.clear()


def caused_by_signal(exception: BaseException) -> bool:
    """Whether ``exception`` is the interrupt in other clothes: SIGINT / SIGTERM arrived
    during this command, or a ``KeyboardInterrupt`` is among its causes (code that caught
    the interrupt and failed in its own clean-up, such as an assertion of a library whose
    state the signal cut in half). Such a command is stopped as interrupted, not reported
    as failed."""
    if _SIGNALLED:
        return True
    seen: set[int] = set()
    current: BaseException | None = exception
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


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
    original_create = Process._create_and_setup_db_record
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

    def create_and_setup_db_record(self: t.Any) -> t.Any:
        first = len(_RUN_INPUTS)
        made = original_create(self)  # calls `setup_db_record`, then stores the node and its inputs
        # stored now: kept as pks, which a reset of the storage session (a failed first
        # tidy-up) leaves readable (by position, not `==`: an Int node equals its value)
        for position in range(first, len(_RUN_INPUTS)):
            pk = _pk_or_none(_RUN_INPUTS[position])
            if pk is not None:
                _RUN_INPUTS[position] = pk
        return made

    Process._setup_db_record = setup_db_record  # type: ignore[method-assign]
    Process._create_and_setup_db_record = create_and_setup_db_record  # type: ignore[method-assign]

    def undo() -> None:
        Process._setup_db_record = original  # type: ignore[method-assign]
        Process._create_and_setup_db_record = original_create  # type: ignore[method-assign]

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
        killed, deleted, problem = tidy_after_interrupt(sys.exc_info()[1])
        if killed or problem:
            stopped = stopped_words(", ".join(_STOPPED[:3]) or "the run", killed, deleted, problem)
        elif _KEPT:
            stopped = "stopped after its processes finished"
        else:
            stopped = "stopped before any process started"
        _retire_current()
        interrupted_exit(stopped)


def stopped_words(what: str, killed: int, deleted: t.Sequence[int], problem: str = "") -> str:
    """``'InvariantsWorkChain <5> was stopped (12 processes marked killed) and its 3 result
    nodes deleted'``; with ``problem`` (the tidy-up failed), what to do about it."""
    words = f"{what} was stopped" + (f" ({killed} processes marked killed)" if killed > 1 else "")
    words += f" and its {count_of(len(deleted), 'result node')} deleted" if deleted else ""
    if problem:
        words += f", but its processes could not be marked killed ({problem}): `crystinv clean` does it"
    return words


def tidy_after_interrupt(
    exception: BaseException | None, node: t.Any = None, fresh: t.Sequence[t.Any] = ()
) -> tuple[int, list[int], str]:
    """Mark killed the unfinished processes of this command (``node``'s tree, and every
    root process it started) and delete what they created (``fresh``: input nodes stored
    for ``node``, deleted when linked to nothing). Returns ``(processes marked killed,
    deleted pks, '')``, or ``(0, [], why)`` when the storage refused twice (the second
    time on a new storage session)."""
    problem = ""
    pk = _pk_or_none(node) if node is not None else None  # read before a reset of the storage
    for attempt in range(2):
        _STOPPED.clear()
        try:
            release_interrupted_cursors(exception)
            _fresh_session()
            killed, deleted = abandon(pk, fresh=fresh) if pk is not None else (0, [])
            more, also = abandon_mine()
            if pk is None:
                forget_orphans(fresh)
            return killed + more, deleted + also, ""
        except Exception as failure:  # noqa: BLE001 - the storage may be unusable: said in the line
            if _debugging():
                import traceback

                traceback.print_exc()
            cause = getattr(failure, "orig", None) or failure  # SQLAlchemy's: the database's own words
            said = one_line(f"{type(cause).__name__}: {cause}", 120)
            problem = f"{problem}; again: {said}" if problem else said
            if attempt == 0:
                try:
                    from aiida.manage import get_manager

                    get_manager().reset_profile_storage()
                except Exception:  # noqa: BLE001
                    break
    return 0, [], problem


def _retire_current() -> None:
    from .. import _runner

    current = _runner._IN_PROCESS_RUNNER
    if current is not None:
        try:
            _retire(current[1])
        except Exception:  # noqa: BLE001 - best effort
            pass


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
    """Free the SQLite statements a signal cut short, and roll back every open SQLite
    transaction; returns how many cursors were left unreleasable (0 is the goal).

    A ``KeyboardInterrupt`` inside ``cursor.execute`` makes SQLAlchemy invalidate (close)
    that connection, but SQLite defers closing a connection while one of its statements is
    unfinished, and keeps its locks (a write transaction's too) meanwhile: the tidy-up's
    writes, on another connection, then fail with "database is locked", and the run's
    processes would be left unfinished. The statement lives as long as its cursor, which
    the frames of the exception's traceback hold (kept by the exception and by the asyncio
    task that raised it), and a cursor of a closed connection cannot be closed. So the
    finished frames of the traceback are cleared, which frees the cursor and finalises its
    statement; cursors of open connections are closed."""
    import gc
    import sqlite3

    # the frames hold the run's dead tasks: freeing them makes asyncio log "Task exception
    # was never retrieved" with the interrupt's traceback (Python's last-resort handler
    # prints it); the command says what happened in one line instead
    logging.disable(logging.CRITICAL)
    try:
        _clear_traceback_frames(exception)
        gc.collect()
    finally:
        logging.disable(logging.NOTSET)
    stuck = 0
    connections = []
    for value in gc.get_objects():
        if isinstance(value, sqlite3.Cursor):
            try:
                value.close()
            except sqlite3.ProgrammingError:  # of a closed connection: only its release frees it
                stuck += 1
            except Exception:  # noqa: BLE001 - best effort
                pass
        elif isinstance(value, sqlite3.Connection):
            connections.append(value)
    # a write transaction the signal cut short on a connection SQLAlchemy still holds (its
    # session may refuse to roll back: "prepared" state): end it, or its lock stays too
    for connection in connections:
        try:
            if connection.in_transaction:
                connection.rollback()
        except Exception:  # noqa: BLE001 - a closed connection
            pass
    return stuck


def _clear_traceback_frames(exception: BaseException | None) -> None:
    """Clear the finished frames of the tracebacks of ``exception`` and of its context and
    cause (a frame still running, such as this handler's callers, refuses and is kept)."""
    seen: set[int] = set()
    pending = [exception]
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        pending += [exc.__context__, exc.__cause__]
        tb = exc.__traceback__
        while tb is not None:
            try:
                tb.tb_frame.clear()
            except RuntimeError:
                pass
            tb = tb.tb_next


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
    waits on them; ``node`` may be given as its pk) and delete what processes that did not finish ok created: after an
    interrupted run, or for ``crystinv clean``: nothing of the run is left but its inputs
    made before it (``fresh``: nodes stored for it, deleted too when linked to nothing).
    Returns ``(number of processes marked killed, deleted pks)``."""
    from aiida import orm
    from aiida.engine import ProcessState

    _fresh_session()
    node = orm.load_node(node if isinstance(node, int) else node.pk)
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
