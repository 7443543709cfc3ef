"""``crystinv study``: run a study described in one YAML file, and report on it."""

from __future__ import annotations

import contextlib
import logging
import pathlib
import time
import typing as t

import click
from aiida.cmdline.utils import echo

from .root import cmd_crystinv
from .utils import Timer, clean_errors, run_process, with_profile

__all__ = ("cmd_study", "run_study_file", "study_progress")


class _StepPrinter(logging.Handler):
    """Prints the step reports of a running StudyWorkChain (``[step k/N] ...``, see
    :data:`~aiida_crystinv.workflows.study.STUDY_STEPS`), one line each, with the time
    since the command started; every other process report stays off the terminal."""

    def __init__(self, start: float):
        super().__init__(level=logging.DEBUG)
        self.start = start
        self.lines: list[str] = []
        self._labels: dict[int, bool] = {}

    def _is_study(self, pk: int) -> bool:
        if pk not in self._labels:
            from aiida import orm

            try:
                self._labels[pk] = orm.load_node(pk).process_label == "StudyWorkChain"
            except Exception:  # noqa: BLE001 - a node of another session: not ours
                self._labels[pk] = False
        return self._labels[pk]

    def emit(self, record: logging.LogRecord) -> None:
        from aiida_crystinv.workflows.study import STEP_PREFIX

        pk = getattr(record, "dbnode_id", None)
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not a step line
            return
        where = text.find(STEP_PREFIX)  # after the "[pk|StudyWorkChain|method]: " of Process.report
        if pk is None or where < 0 or not self._is_study(int(pk)):
            return
        text = text[where:]
        line = f"[{record.created - self.start:7.1f} s] {text[1:].replace(']', '', 1)}"
        self.lines.append(line)
        click.echo(line)


@contextlib.contextmanager
def study_progress(enabled: bool = True) -> t.Iterator[list[str]]:
    """While a study runs in this process, print each of its steps as it starts and ends
    (one line each, with the elapsed time); yields the list of lines printed."""
    if not enabled:
        yield []
        return
    from aiida import orm

    handler = _StepPrinter(time.time())
    # the logger of WorkChain nodes, not 'aiida': AiiDA reconfigures the handlers of 'aiida'
    # (logging.config.dictConfig) when the storage loads, which would drop this one
    logger = logging.getLogger(getattr(orm.WorkChainNode, "_logger", logging.getLogger("aiida")).name)
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def run_study_file(path: pathlib.Path, daemon: bool = False) -> tuple[t.Any, dict[str, t.Any]]:
    """Validate ``path`` and run (or submit) its StudyWorkChain; return ``(node, study)``.

    Exits with a one-line message when the file is invalid.
    """
    from aiida_crystinv.workflows.study import StudyError, StudyWorkChain, build_study_inputs, load_study

    try:
        study = load_study(path)
        inputs = build_study_inputs(study)
    except StudyError as exception:
        echo.echo_critical(str(exception))
    if daemon:
        from .cmd_compute import submit_to_daemon

        return submit_to_daemon(StudyWorkChain, inputs), study
    from aiida.common import log

    with study_progress(enabled=log.CLI_LOG_LEVEL is None):  # with --verbosity the reports show anyway
        _, node = run_process(StudyWorkChain, inputs)
    return node, study


def _finish(node: t.Any, report_dir: pathlib.Path | None, seconds: float | None = None, plots: bool = True) -> None:
    from aiida_crystinv.workflows.study import metrics_table, write_report

    if "summary" not in node.outputs:
        from aiida_crystinv.exit_codes import EXIT_CODES

        from .utils import one_line

        reason = node.exit_message or ("an exception" if node.is_excepted else "no summary")
        for _, message in EXIT_CODES.values():  # the codes' fixed words: the status numbers say them
            prefix = message.split("{message}")[0]
            if prefix:
                reason = reason.replace(prefix, "")
        echo.echo_critical(
            f"the study <{node.pk}> failed (exit status {node.exit_status}): {one_line(reason, 190)}; "
            f"see `verdi process report {node.pk}`"
        )
    summary = node.outputs.summary.get_dict()
    echo.echo(f"\n{summary['name']}: {summary['target']} ({summary['unit']}), {summary['evaluation']}\n")
    echo.echo(metrics_table(summary))
    path = write_report(node, report_dir, plots=plots)
    echo.echo("")
    if not node.is_finished_ok:
        echo.echo_warning(f"the study finished with exit status {node.exit_status}: {node.exit_message}")
    if "screening" in node.outputs and "selected_ids" in node.outputs.screening:
        ids = node.outputs.screening["selected_ids"].get_list()
        echo.echo(f"screening: selected {len(ids)} candidates: {', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''}")
    echo.echo(f"report:   {path}")
    echo.echo(f"inspect:  verdi process show {node.pk}   |   verdi process report {node.pk}")
    done = f"study <{node.pk}> finished" + (f" in {seconds:.1f} s" if seconds is not None else "")
    echo.echo_success(done)


class _NoProcessReports(logging.Filter):
    """Drop the log records of processes (they carry ``dbnode_id``) below WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not hasattr(record, "dbnode_id")


def _quiet_terminal() -> None:
    """Keep process reports off the terminal but in the database (`verdi process report`).

    A filter on the terminal handlers of the ``aiida`` logger drops records of process
    nodes below WARNING; the database log handler still records every report line, and
    the command's own output is untouched.
    """
    from aiida.orm.utils.log import DBLogHandler

    for handler in logging.getLogger("aiida").handlers:
        if not isinstance(handler, DBLogHandler) and not any(isinstance(f, _NoProcessReports) for f in handler.filters):
            handler.addFilter(_NoProcessReports())


@cmd_crystinv.group("study")
def cmd_study() -> None:
    """Train and evaluate models described in a YAML study file.

    \b
    A study file names a source of structures (a file, an AiiDA group,
    a Materials Project query, or a generated landscape), a target, the
    descriptors and models to try, the split (k-fold, hold-out or an
    explicit test set) and, optionally, a screening with a hand-off to
    any WorkChain. See docs/learning.md.
    """


#: The report folder option shared by `study run` and `study report`.
REPORT_OPTION = click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=None,
    help="Folder for report.md and the pictures [default: ./crystinv-study-<pk>].",
)
#: Leave the pictures of the training set out of the report (`study run` and `study report`).
NO_PLOTS_OPTION = click.option(
    "--no-plots",
    "no_plots",
    is_flag=True,
    help="Leave out the landscape, heatmap and map pictures of the training set (the parity plots stay).",
)


@cmd_study.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option("--daemon", is_flag=True, help="Submit to the daemon instead of running here; report later with `study report PK`.")
@REPORT_OPTION
@NO_PLOTS_OPTION
@with_profile
@clean_errors
def cmd_study_run(file: pathlib.Path, daemon: bool, report_dir: pathlib.Path | None, no_plots: bool) -> None:
    """Run the study in FILE as one StudyWorkChain, print the metrics table and write a report.

    Run here (without --daemon), each step of the study prints one line when it
    starts and one when it ends, with the time since the command started.

    \b
    Examples:
        crystinv study run examples/study_ewald.yaml
        crystinv study run my_study.yaml --report results/
        verdi data crystinv study run my_study.yaml --daemon
    """
    from aiida.common import log

    if log.CLI_LOG_LEVEL is None:
        _quiet_terminal()
    with Timer() as timer:
        node, study = run_study_file(file, daemon=daemon)
        if daemon:
            echo.echo(f"  report when finished:  crystinv study report {node.pk}" + (f" --report {report_dir}" if report_dir else ""))
            return
    _finish(node, report_dir, timer.seconds, plots=not no_plots)


@cmd_study.command("report")
@click.argument("pk", type=int)
@REPORT_OPTION
@NO_PLOTS_OPTION
@with_profile
@clean_errors
def cmd_study_report(pk: int, report_dir: pathlib.Path | None, no_plots: bool) -> None:
    """Print the metrics of a finished study (a StudyWorkChain PK) and write its report."""
    from aiida import orm

    from aiida_crystinv.workflows.study import StudyWorkChain

    node = orm.load_node(pk)
    if not isinstance(node, orm.WorkflowNode) or node.process_class is not StudyWorkChain:
        echo.echo_critical(f"node {pk} is a {type(node).__name__}, not a StudyWorkChain")
    if not node.is_terminated:
        echo.echo_critical(f"the study <{pk}> is still {node.process_state.value}: wait for it (`verdi process status {pk}`)")
    _finish(node, report_dir, plots=not no_plots)
