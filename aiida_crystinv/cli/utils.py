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
from .interrupt import (
    _KEPT,
    _SIGNALLED,
    _retire,
    _shielded,
    caused_by_signal,
    ctrl_c_raises,
    forget_earlier_signals,
    interrupted_exit,
    interruptible,
    stopped_words,
    tidy_after_interrupt,
    stop_after_interrupt,
    tidy_after_storage_error,
)
from .messages import (
    _RESOURCE_ERRORS,
    _debugging,
    count_of,
    one_line,
)
from .tidy import (
    _describe_outputs,
    _fresh_session,
    _stored_inputs,
    discard_failed_outputs,
    forget_orphans,
    storage_problem,
    storage_problem_text,
)

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
            if caused_by_signal(exception):  # the interrupt, caught on the way and turned into another error
                stop_after_interrupt()
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
    forget_earlier_signals()
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
        _stop_interrupted_run(interrupt, node, fresh, runner, what)
    except Exception as failure:
        if caused_by_signal(failure):  # the interrupt, caught on the way and turned into another error
            _stop_interrupted_run(failure, node, fresh, runner, what)
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


def _stop_interrupted_run(exception: BaseException, node: t.Any, fresh: list[t.Any], runner: t.Any, what: str) -> t.NoReturn:
    """The end of a run that SIGINT / SIGTERM stopped: its processes marked killed, what
    they stored deleted, one line, exit 130 or 143."""
    with _shielded():
        killed, discarded, problem = tidy_after_interrupt(exception, node, fresh)
        _retire(runner)
        interrupted_exit(stopped_words(what, killed, discarded, problem))


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

        runner.loop.run_until_complete(drive())
    return instance.outputs


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
