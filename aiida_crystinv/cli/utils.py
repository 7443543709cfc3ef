"""Helpers shared by the commands: clean errors, progress bars, tables, running processes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
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
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exception:  # noqa: BLE001 - the point of this decorator
            if _debugging():
                import traceback

                traceback.print_exc()
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


def count_of(n: int, noun: str) -> str:
    """``'1 structure'``, ``'3163 structures'``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def check_process(node: t.Any, what: str) -> None:
    """Exit with a clear message if a process did not finish successfully."""
    if node.is_finished_ok:
        return
    if node.is_excepted:
        reason = node.exception.strip().splitlines()[-1] if node.exception else "an exception"
    elif node.is_killed:
        reason = "it was killed"
    else:
        reason = f"exit status {node.exit_status}: {node.exit_message or 'no message'}"
    echo.echo_critical(one_line(f"{what} failed ({reason}); see `verdi process report {node.pk}`"))


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
    of sub-processes that finished ok stay (they are valid provenance). Ctrl-C
    (:func:`ctrl_c_raises`) stops the run at once: the unfinished processes are marked
    killed, what they created is deleted, and the command exits with one line.
    """
    from aiida.engine import utils as engine_utils

    quiet_process_tracebacks()
    runner = in_process_runner()
    node = None
    try:
        with ctrl_c_raises(), engine_utils.loop_scope(runner.loop):
            if engine_utils.is_process_function(process):
                process_class = process.process_class
                instance = process_class(inputs=process_class.create_inputs(**inputs), runner=runner)
            else:
                instance = runner.instantiate_process(process, **inputs)
            node = instance.node
            outputs = _execute(instance, runner, label=label, total=total, count_done=count_done)
    except KeyboardInterrupt:
        if node is None:
            _retire(runner)
            raise
        try:  # read before the tidy-up, which may delete the node
            what = f"{node.process_label} <{node.pk}>"
        except Exception:  # noqa: BLE001 - the interrupted session may be unusable
            what = "the process"
        killed, discarded = abandon(node)
        _retire(runner)
        echo.echo_critical(
            f"interrupted: {what} was killed"
            + (f" ({killed} processes stopped)" if killed > 1 else "")
            + (f" and its {count_of(len(discarded), 'result node')} deleted" if discarded else "")
            + "; nothing of this run is kept"
        )
    except Exception:
        if node is not None:
            discard_failed_outputs(node)
        raise
    if not node.is_finished_ok:
        discarded = discard_failed_outputs(node)
        if discarded:
            echo.echo_warning(
                f"discarded {count_of(len(discarded), 'output node')} of {node.process_label} <{node.pk}>, "
                "which did not finish (a killed or excepted process keeps no results)"
            )
            outputs = {}
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
        return instance.execute()
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


#: Set by the SIGINT / SIGTERM handlers of :func:`ctrl_c_raises`, read by ``_execute``.
_SIGNALLED: set[int] = set()


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
    install = signal.signal
    ours = {signal.SIGINT: _interrupt, signal.SIGTERM: _terminate}
    previous = {signum: signal.getsignal(signum) for signum in ours}

    def keep_raising(signalnum: int, handler: t.Any) -> t.Any:
        return install(signalnum, ours.get(signalnum, handler))

    for signum, handler in ours.items():
        install(signum, handler)
    signal.signal = keep_raising  # type: ignore[assignment]
    try:
        yield
    finally:
        signal.signal = install  # type: ignore[assignment]
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


def abandon(node: t.Any) -> tuple[int, list[int]]:
    """After an interrupted run: mark the unfinished processes of ``node``'s call tree killed
    (sealed, so nothing waits on them) and delete what processes that did not finish ok
    created. Returns ``(number of processes marked killed, deleted pks)``."""
    from aiida import orm
    from aiida.engine import ProcessState
    from aiida.manage import get_manager

    try:  # the interrupted transaction may hold the database's write lock: end it
        get_manager().get_profile_storage().get_session().rollback()
    except Exception:  # noqa: BLE001 - a broken session: start a new one
        get_manager().reset_profile_storage()
    node = orm.load_node(node.pk)
    tree = [node] + (list(node.called_descendants) if isinstance(node, orm.WorkflowNode) else [])
    cancel_scheduler_jobs([proc for proc in tree if isinstance(proc, orm.CalcJobNode) and not proc.is_terminated])
    killed = 0
    for proc in tree:
        if proc.is_terminated:
            continue
        proc.set_process_state(ProcessState.KILLED)
        proc.set_process_status("interrupted with Ctrl-C while running in this Python process")
        if not proc.is_sealed:
            proc.seal()
        killed += 1
    return killed, discard_failed_outputs(node)


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


def discard_failed_outputs(node: t.Any) -> list[int]:
    """Delete the data nodes *created* by the processes of ``node``'s call tree that did not
    finish ok (killed, excepted, failed, or never terminated); return their pks.

    A process function interrupted with Ctrl-C is marked killed, but its body runs to the
    end and its outputs are attached anyway: a result of a killed run must not be mistaken
    for a valid one. A CalcJob that finished with an exit status keeps its outputs (the
    retrieved files, the parsed output of a failed DFT run): they are the record of the
    external code's failure, not a result, and its exit status says so.
    """
    from aiida import orm
    from aiida.common.links import LinkType

    processes = [node]
    if isinstance(node, orm.WorkflowNode):
        processes.extend(node.called_descendants)
    pks = sorted(
        {
            link.node.pk
            for proc in processes
            if not proc.is_finished_ok and not (isinstance(proc, orm.CalcJobNode) and proc.is_finished)
            for link in proc.base.links.get_outgoing(link_type=LinkType.CREATE).all()
        }
    )
    if pks:
        from aiida.tools import delete_nodes

        delete_logger = logging.getLogger("aiida.delete")
        level = delete_logger.level
        delete_logger.setLevel(logging.WARNING)
        try:
            delete_nodes(pks, dry_run=False)
        finally:
            delete_logger.setLevel(level)
    return pks


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
