"""The one table of exit codes of every process of the package.

Each number has one meaning everywhere (``tests/aiida/test_exit_codes.py`` walks every
process spec and every calcfunction against this table). The ranges follow AiiDA's
convention:

========  ===========================================================================
range     meaning
========  ===========================================================================
100-199   the scheduler (reserved for CalcJobs)
200-299   the input is at fault: unreadable, invalid records, specs that do not fit
          together, a missing target. Most spec problems are refused at the ports
          before a process exists; these codes cover what only the data can reveal.
300-349   the computation failed on valid input (an invariant, a fit)
350-399   parsing the output of a job (reserved for CalcJob parsers)
400-449   a sub-process (calcfunction, WorkChain, hand-off) failed; the message names
          it with its pk, exit status and message
========  ===========================================================================

Every message has a ``{message}`` placeholder: ``EXIT.ERROR_X.format(message=...)``. The
text put there is capped at :data:`MAX_EXIT_MESSAGE` characters (an error that quotes a
whole file stays readable); the full text goes to the process's report
(``verdi process report PK``).
"""

from __future__ import annotations

from typing import Any

from aiida.engine import ExitCode

__all__ = ["EXIT", "EXIT_CODES", "MAX_EXIT_MESSAGE", "add_exit_codes", "capped", "exit_code_table", "describe_failure", "relay"]

#: Longest ``{message}`` (characters) in an exit message; the whole text is in the report.
MAX_EXIT_MESSAGE = 300


def capped(text: Any, limit: int = MAX_EXIT_MESSAGE) -> str:
    """``text`` on one line, at most ``limit`` characters (cut in the middle, so that the
    start, which says what failed, and the end, which often holds the cause, are kept).
    When it is cut and a process is running, the whole text goes to its report."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    try:
        from aiida.engine import Process

        current = Process.current()
        if current is not None:
            current.report(f"the full message (cut to {limit} characters in the exit message): {text}")  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the report is a convenience; the cut message is still right
        pass
    head = (limit - 5) * 2 // 3
    return f"{text[:head]} ... {text[-(limit - 5 - head):]}"


class _CappedExitCode(ExitCode):
    """An ``ExitCode`` whose :meth:`format` caps the ``message`` it is given (:func:`capped`)."""

    def format(self, **kwargs: str) -> ExitCode:
        if "message" in kwargs:
            kwargs["message"] = capped(kwargs["message"])
        return super().format(**kwargs)

#: status -> (label, message)
EXIT_CODES: dict[int, tuple[str, str]] = {
    # 100-199: the scheduler (aiida-core's own CalcJob codes 100-160 are not redefined here)
    190: ("ERROR_SCHEDULER_JOB_KILLED", "the job was stopped by a signal before the worker finished (scancel, kill, the out-of-memory killer): {message}"),
    # 200-209: a file or source that cannot be read
    200: ("ERROR_READING_INPUT", "the input cannot be read: {message}"),
    201: ("ERROR_INVALID_OPTIONS", "invalid options: {message}"),
    202: ("ERROR_SOURCE_FAILED", "the source could not be read: {message}"),
    # 210-219: records and nodes
    210: ("ERROR_INVALID_RECORD", "invalid record (nothing was stored; use on_error='skip' to drop it): {message}"),
    211: ("ERROR_NO_VALID_RECORDS", "no valid record to store: {message}"),
    212: ("ERROR_UNKNOWN_RECORD", "unknown record: {message}"),
    213: ("ERROR_WRONG_NODE_TYPE", "wrong node type: {message}"),
    214: ("ERROR_INVALID_STRUCTURE", "invalid structure: {message}"),
    215: ("ERROR_NO_ENERGY", "no energy in a hand-off's outputs: {message}"),
    # 220-229: specs and inputs that do not fit together
    220: ("ERROR_INVALID_SPEC", "invalid specification: {message}"),
    221: ("ERROR_METRIC_NOT_APPLICABLE", "metric not applicable: {message}"),
    222: ("ERROR_INCOMPATIBLE_INPUTS", "incompatible inputs: {message}"),
    223: ("ERROR_UNKNOWN_WORKFLOW", "unknown hand-off workflow: {message}"),
    224: ("ERROR_INVALID_HANDOFF_INPUTS", "invalid hand-off inputs: {message}"),
    225: ("ERROR_MISSING_INPUT", "missing input: {message}"),
    226: ("ERROR_CALIBRATION", "the DFT energies cannot be put on the target's scale: {message}"),
    # 230-239: the target
    230: ("ERROR_MISSING_TARGET", "missing target: {message}"),
    231: ("ERROR_INVALID_TARGET", "invalid target values: {message}"),
    232: ("ERROR_TOO_FEW_RECORDS", "too few records: {message}"),
    # 300-349: the computation
    300: ("ERROR_INVARIANT_FAILED", "the invariant of a structure could not be computed: {message}"),
    301: ("ERROR_DESCRIPTOR_FAILED", "the descriptor could not be computed: {message}"),
    302: ("ERROR_DISTANCES_FAILED", "the distances could not be computed: {message}"),
    310: ("ERROR_FIT_FAILED", "fitting the model failed: {message}"),
    311: ("ERROR_PREDICTION_FAILED", "the prediction failed: {message}"),
    312: ("ERROR_NOTHING_SELECTED", "no candidate selected: {message}"),
    320: ("ERROR_ENERGY_FAILED", "the energy could not be computed: {message}"),
    # 350-359: the files a worker job left (CalcJob parser)
    350: ("ERROR_RESULT_MISSING", "the worker wrote no result.json: it did not run or did not finish: {message}"),
    351: ("ERROR_RESULT_INVALID", "the worker's result.json cannot be used: {message}"),
    352: ("ERROR_WORKER_VERSION_MISMATCH", "the worker on the computer is another aiida-crystinv version than this one: {message}"),
    355: ("ERROR_OUTPUT_FILE_MISSING", "an output file of the worker is missing: {message}"),
    356: ("ERROR_OUTPUT_FILE_CORRUPT", "an output file of the worker is corrupt or does not fit the task: {message}"),
    # 360-369: failures the worker reported in result.json (CalcJob parser)
    360: ("ERROR_WORKER_RECORD_FAILED", "the worker's computation failed on valid input (the record is named): {message}"),
    361: ("ERROR_WORKER_OUT_OF_MEMORY", "the worker ran out of memory (give the job more memory or a smaller block): {message}"),
    362: ("ERROR_WORKER_INTERNAL", "the worker failed with an internal error (its traceback is in the report): {message}"),
    # 400-449: sub-processes
    400: ("ERROR_SUB_PROCESS_FAILED", "a sub-process failed: {message}"),
    401: ("ERROR_CHUNK_FAILED", "a chunk failed: {message}"),
    402: ("ERROR_MERGE_FAILED", "merging the chunks failed: {message}"),
    403: ("ERROR_IMPORT_FAILED", "a source could not be imported: {message}"),
    404: ("ERROR_INVARIANTS_FAILED", "computing the descriptor failed: {message}"),
    405: ("ERROR_DISTANCES_STEP_FAILED", "computing the distances failed: {message}"),
    406: ("ERROR_EVALUATION_FAILED", "the evaluation failed: {message}"),
    407: ("ERROR_TRAINING_FAILED", "training failed: {message}"),
    408: ("ERROR_PLOT_FAILED", "the parity plot failed: {message}"),
    409: ("ERROR_PREDICTION_STEP_FAILED", "the prediction step failed: {message}"),
    410: ("ERROR_EXTRACTION_FAILED", "extracting the structures failed: {message}"),
    411: ("ERROR_HANDOFF_FAILED", "every hand-off WorkChain failed: {message}"),
    412: ("ERROR_SCREENING_FAILED", "the screening failed: {message}"),
    413: ("ERROR_SUMMARY_FAILED", "summarising the metrics failed: {message}"),
    # the restart WorkChain (aiida-core's BaseRestartWorkChain codes, renumbered into this table)
    420: ("ERROR_SUB_PROCESS_EXCEPTED", "the job excepted: {message}"),
    421: ("ERROR_SUB_PROCESS_KILLED", "the job was killed: {message}"),
    422: ("ERROR_MAXIMUM_ITERATIONS_EXCEEDED", "too many jobs for one block (max_iterations): {message}"),
    423: ("ERROR_UNHANDLED_FAILURE", "the job failed twice in a row with an error a restart does not cure: {message}"),
    424: ("ERROR_BLOCK_CANNOT_SPLIT", "the block ran out of walltime or memory and cannot be split further: {message}"),
    425: ("ERROR_SOME_HANDOFFS_FAILED", "some hand-off WorkChains failed (the outputs of the others are attached): {message}"),
    426: ("ERROR_DFT_RESULTS_FAILED", "collecting the DFT results failed: {message}"),
    427: ("ERROR_LOOP_FAILED", "the DFT loop failed: {message}"),
}


class _Table:
    """``EXIT.ERROR_READING_INPUT`` is the ``ExitCode`` of that label."""

    def __init__(self, table: dict[int, tuple[str, str]]):
        self._by_label = {label: _CappedExitCode(status, message) for status, (label, message) in table.items()}
        if len(self._by_label) != len(table):
            raise RuntimeError("an exit-code label is used twice")

    def __getattr__(self, label: str) -> ExitCode:
        try:
            return self._by_label[label]
        except KeyError:
            raise AttributeError(f"no exit code {label!r} in aiida_crystinv.exit_codes") from None

    def labels(self) -> list[str]:
        return list(self._by_label)


#: The exit codes by label.
EXIT: Any = _Table(EXIT_CODES)


def add_exit_codes(spec: Any, *labels: str) -> None:
    """Declare exit codes of the table on a process spec (WorkChain / CalcJob ``define``)."""
    for label in labels:
        code = getattr(EXIT, label)
        spec.exit_code(code.status, label, message=code.message)


def exit_code_table() -> str:
    """The table as Markdown (the docs' table is checked against it by a test)."""
    lines = ["| status | label | message |", "|---|---|---|"]
    for status, (label, message) in sorted(EXIT_CODES.items()):
        lines.append(f"| {status} | `{label}` | {message.replace('{message}', '...').replace('|', '/')} |")
    return "\n".join(lines)


def describe_failure(node: Any, limit: int = MAX_EXIT_MESSAGE) -> str:
    """``'compute_invariants <12> [300] the invariant of ...'`` for a failed process, or
    ``'... excepted: <exception>'`` / ``'... was killed'`` / ``'... did not finish (waiting)'``;
    for a WorkChain whose failure came from below, the deepest failed descendant too
    (``'PwBaseWorkChain <7> [300] ... <- PwCalculation <9> [305] ...'``); capped at ``limit``
    characters (the whole text is in the child's report)."""
    text = _one_failure(node)
    cause = _root_cause(node)
    if cause is not None:
        text = f"{text} <- {_one_failure(cause)}"
    said = _code_error(cause if cause is not None else node)
    if said:
        text = f"{text}; the code's output says: {said}"
    return capped(text, limit)


def _code_error(node: Any) -> str | None:
    """The error a failed CalcJob's code wrote in its main output file (Quantum ESPRESSO's
    ``Error in routine ...`` block, else the last line that mentions an error), or None."""
    from aiida import orm

    if not isinstance(node, orm.CalcJobNode) or "retrieved" not in node.outputs:
        return None
    try:
        name = node.get_option("output_filename")
        if not name or name not in node.outputs.retrieved.base.repository.list_object_names():
            return None
        text = node.outputs.retrieved.base.repository.get_object_content(name)
    except Exception:  # noqa: BLE001 - an unreadable file: no extra detail
        return None
    lines = [line.strip() for line in text.splitlines()[-200:]]
    for i, line in enumerate(lines):
        if line.startswith("Error in routine"):
            detail = " ".join(x for x in lines[i + 1:i + 3] if x and not x.startswith("%"))
            return f"{line} {detail}".strip()[:200]
    errors = [line for line in lines if "error" in line.lower()]
    return errors[-1][:200] if errors else None


def _one_failure(node: Any) -> str:
    head = f"{node.process_label} <{node.pk}>"
    if node.is_excepted:
        lines = [line for line in (node.exception or "").strip().splitlines() if line.strip()]
        return f"{head} excepted: {lines[-1].strip() if lines else '(no exception recorded)'}"
    if node.is_finished and node.exit_status is None:  # a state written without its status (a failed write)
        return f"{head} finished without an exit status" + (f": {node.exit_message}" if node.exit_message else "")
    if node.is_killed:
        return f"{head} was killed" + (f": {node.process_status}" if node.process_status else "")
    if not node.is_terminated:
        state = node.process_state.value if node.process_state else "created"
        return f"{head} did not finish ({state})"
    return f"{head} [{node.exit_status}] {node.exit_message or ''}".rstrip()


def _root_cause(node: Any) -> Any:
    """The deepest failed process called (directly or not) by a failed WorkChain, or None."""
    from aiida import orm

    cause = None
    current = node
    for _ in range(20):
        if not isinstance(current, orm.WorkflowNode):
            break
        failed = [c for c in current.called if c.is_terminated and not c.is_finished_ok]
        if not failed:
            break
        current = max(failed, key=lambda c: c.ctime)
        cause = current
    return cause


def relay(exit_codes: Any, node: Any, fallback: str, passed: tuple[str, ...] = ()) -> ExitCode:
    """The exit code of a process whose child ``node`` failed: the child's own code when it
    is one of ``passed`` (same status, same meaning: an input problem the caller should
    see as it is), else ``fallback`` naming the child."""
    for label in passed:
        code = getattr(exit_codes, label)
        if code.status == node.exit_status:
            message = node.exit_message or ""
            prefix = code.message.split("{message}")[0]
            if prefix and message.startswith(prefix):
                message = message[len(prefix):]
            return code.format(message=message)
    return getattr(exit_codes, fallback).format(message=describe_failure(node))
