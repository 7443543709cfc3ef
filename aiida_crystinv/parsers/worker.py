"""``WorkerParser``: the files of a ``crystinv-worker`` job -> an ``InvariantsData`` or
``DistancesData`` node, or the exit code saying what went wrong.

* No ``result.json`` (the worker writes it last, so its absence means the worker did not
  finish): the scheduler's verdict when its plugin gave one (aiida-core's codes, e.g. 120
  out of walltime, set on the node before the parser runs), else 190 when the scheduler's
  stderr shows the job was stopped by a signal (``Killed``, ``Terminated``, SLURM's
  ``CANCELLED``), else 350 with the last line the worker or the shell wrote to stderr.
* ``result.json`` with ``status: error``: the worker's exit code mapped to the package's
  table (2 -> 200 its input could not be read, 3 -> 360 the computation failed on a record,
  named; 4 -> 361 out of memory; 1 -> 362 internal error) with the worker's message (at most
  400 characters; the whole message, the per-record errors and the traceback go to the
  report).
* ``status: ok``: exactly the files listed in ``outputs`` are read (``allow_pickle=False``)
  and checked against the listing and the task (shapes, dtypes, row counts, offsets, index
  range): 355 a file is missing, 356 corrupt or inconsistent. The output node is built as
  the calcfunction path builds it (``InvariantsData.from_arrays`` with the dataset's UUID
  and the ``rows`` as ``row_range``; ``DistancesData.from_condensed`` / ``from_matrix`` /
  ``from_knn`` with the same metric parameters and invariants description), so both paths
  give identical nodes. Nothing is attached unless every check passed. When the scheduler
  reported a failure although the worker finished (``result.json`` is written last, so its
  outputs are complete), the node is attached and the scheduler's code stays, as aiida-core
  decides when a parser returns no code; the report says so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from aiida.common.links import LinkType
from aiida.engine import ExitCode
from aiida.parsers.parser import Parser

from ..calculations.worker import OUTPUT_DIR, RESULT_FILE, STDERR_FILE, PlanError, WorkerPlan, worker_plan
from ..data import DistancesData, InvariantsData
from ..specs import INVARIANTS

__all__ = ["WorkerParser", "MESSAGE_LIMIT", "WORKER_EXIT_CODES"]

#: Longest message passed on in an exit code (the whole text is in the report).
MESSAGE_LIMIT = 400
#: The worker's exit code -> the label of the package's exit code.
WORKER_EXIT_CODES = {
    1: "ERROR_WORKER_INTERNAL",
    2: "ERROR_READING_INPUT",
    3: "ERROR_WORKER_RECORD_FAILED",
    4: "ERROR_WORKER_OUT_OF_MEMORY",
}
#: Lines of a scheduler's stderr that say the job was stopped by a signal: bash's report of
#: a child killed by a signal, SLURM's ``*** JOB 12 ON host CANCELLED AT ... ***``.
_KILLED = re.compile(r"\b(Killed|Terminated|Aborted|Segmentation fault|Bus error|Hangup)\b|\bCANCELLED AT\b|\boom[-_ ]kill", re.I)


class _Failure(Exception):
    """An exit code of the table with its (uncapped) message."""

    def __init__(self, label: str, message: str, details: str = ""):
        super().__init__(message)
        self.label = label
        self.message = message
        self.details = details


def _cap(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


class WorkerParser(Parser):
    """Parser of :class:`~aiida_crystinv.calculations.worker.WorkerCalculation`."""

    def parse(self, **kwargs: Any) -> ExitCode | None:
        """Check the retrieved files and attach the output node; see the module docstring."""
        try:
            result = self._result()
            if result is None:
                return self._no_result()
            plan = self._plan()
            if result["status"] == "error":
                raise self._worker_failure(result)
            if result.get("task") != plan.kind:
                raise _Failure("ERROR_RESULT_INVALID", f"result.json is for task {result.get('task')!r}, the job ran {plan.kind!r}")
            arrays = self._read_outputs(result, kwargs.get("retrieved_temporary_folder"), plan)
            label, node = self._output_node(plan, arrays, result)
        except _Failure as failure:
            self.logger.error("\n".join(filter(None, [failure.message, failure.details])))
            return getattr(self.exit_codes, failure.label).format(message=_cap(failure.message))
        self._report_ok(result)
        self.out(label, node)
        return None  # success, unless the scheduler reported a failure (aiida-core keeps its code)

    # ------------------------------------------------------------------ result.json
    def _result(self) -> dict[str, Any] | None:
        try:
            text = self.retrieved.base.repository.get_object_content(RESULT_FILE, mode="r")
        except FileNotFoundError:
            return None
        try:
            result = json.loads(text)
        except ValueError as exc:
            raise _Failure("ERROR_RESULT_INVALID", f"{RESULT_FILE} is not JSON ({exc})") from None
        from ..worker.schema import SCHEMA_VERSION

        if not isinstance(result, dict):
            raise _Failure("ERROR_RESULT_INVALID", f"{RESULT_FILE} is not a JSON object")
        if result.get("schema_version") != SCHEMA_VERSION:
            raise _Failure(
                "ERROR_RESULT_INVALID",
                f"{RESULT_FILE} has schema_version {result.get('schema_version')!r}, this parser reads {SCHEMA_VERSION}",
            )
        status, code = result.get("status"), result.get("exit_code")
        if (status, code == 0) not in (("ok", True), ("error", False)):
            raise _Failure("ERROR_RESULT_INVALID", f"{RESULT_FILE}: status {status!r} with exit_code {code!r}")
        from .. import __version__

        if result.get("version") != __version__:
            raise _Failure(
                "ERROR_WORKER_VERSION_MISMATCH",
                f"the worker on {self._where()} is aiida-crystinv {result.get('version')!r}, this is {__version__!r}: "
                "install the same version on the computer",
            )
        return result

    def _where(self) -> str:
        computer = self.node.computer
        return f"computer {computer.label!r}" if computer is not None else "the computer"

    def _no_result(self) -> ExitCode:
        """No result.json: the scheduler's verdict, a kill, or the worker never ran."""
        status = self.node.exit_status
        stderr = self.node.get_scheduler_stderr() or ""
        if status:
            for code in self.exit_codes.values():
                if code.status == status:
                    self.logger.error(f"no {RESULT_FILE}: the scheduler reported [{status}] {code.message}")
                    return code
        killed = [line.strip() for line in stderr.splitlines() if _KILLED.search(line)]
        if killed:
            message = f"{'; '.join(killed[-3:])} (scheduler stderr)"
            self.logger.error(f"no {RESULT_FILE}: {message}")
            return self.exit_codes.ERROR_SCHEDULER_JOB_KILLED.format(message=_cap(message))
        try:
            worker_err = self.retrieved.base.repository.get_object_content(STDERR_FILE, mode="r")
        except FileNotFoundError:
            worker_err = ""
        last = _last_line(worker_err) or _last_line(stderr)
        message = f"last line on stderr: {last}" if last else "nothing on stderr (is the code the crystinv-worker executable?)"
        streams = [f"{name}:\n{text.rstrip()}" for name, text in (("worker stderr", worker_err), ("scheduler stderr", stderr)) if text.strip()]
        self.logger.error("\n".join([f"no {RESULT_FILE}: {message}", *streams]))
        return self.exit_codes.ERROR_RESULT_MISSING.format(message=_cap(message))

    def _worker_failure(self, result: dict[str, Any]) -> _Failure:
        code = result.get("exit_code")
        label = WORKER_EXIT_CODES.get(code)  # type: ignore[arg-type]
        message = str(result.get("message") or "(no message)")
        details = []
        for error in result.get("errors") or []:
            details.append(f"record {error.get('id')!r} (row {error.get('index')}): {error.get('type')}: {error.get('message')}")
        traceback = (result.get("error") or {}).get("traceback")
        if traceback:
            details.append(traceback)
        if label is None:
            return _Failure("ERROR_RESULT_INVALID", f"{RESULT_FILE}: unknown worker exit code {code!r}: {message}", "\n".join(details))
        return _Failure(label, message, "\n".join(details))

    def _plan(self) -> WorkerPlan:
        inputs = self.node.base.links.get_incoming(link_type=LinkType.INPUT_CALC).nested()
        try:
            return worker_plan(inputs)
        except PlanError as exc:  # pragma: no cover - validated before the job existed
            raise _Failure("ERROR_RESULT_INVALID", f"the job's inputs no longer make a task: {exc}") from None

    # ------------------------------------------------------------------ out/*.npy
    def _read_outputs(self, result: dict[str, Any], temporary: str | None, plan: WorkerPlan) -> dict[str, np.ndarray]:
        listed = result.get("outputs")
        if not isinstance(listed, dict):
            raise _Failure("ERROR_RESULT_INVALID", f"{RESULT_FILE}: 'outputs' is not an object")
        needed = self._needed(plan, listed)
        missing = [name for name in needed if f"{name}.npy" not in listed]
        if missing:
            raise _Failure("ERROR_OUTPUT_FILE_MISSING", f"{RESULT_FILE} lists no {', '.join(f'{OUTPUT_DIR}/{m}.npy' for m in missing)}")
        folder = Path(temporary) / OUTPUT_DIR if temporary else None
        arrays = {}
        for name in needed:
            relpath = f"{OUTPUT_DIR}/{name}.npy"
            path = folder / f"{name}.npy" if folder is not None else None
            if path is None or not path.is_file():
                raise _Failure("ERROR_OUTPUT_FILE_MISSING", f"{relpath} is listed in {RESULT_FILE} but was not retrieved")
            try:
                with open(path, "rb") as handle:
                    array = np.load(handle, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise _Failure("ERROR_OUTPUT_FILE_CORRUPT", f"{relpath}: cannot be read ({' '.join(str(exc).split())})") from None
            entry = listed[f"{name}.npy"] or {}
            if list(array.shape) != list(entry.get("shape", [])) or array.dtype.str != entry.get("dtype"):
                raise _Failure(
                    "ERROR_OUTPUT_FILE_CORRUPT",
                    f"{relpath}: shape {list(array.shape)} dtype {array.dtype.str}, but {RESULT_FILE} lists "
                    f"shape {entry.get('shape')} dtype {entry.get('dtype')}",
                )
            arrays[name] = array
        self._check(plan, arrays)
        return arrays

    @staticmethod
    def _needed(plan: WorkerPlan, listed: dict[str, Any]) -> list[str]:
        if plan.kind == "distances":
            return ["matrix"]
        if plan.kind == "knn":
            return ["distances", "indices"]
        shape = (listed.get("ids.npy") or {}).get("shape") or [None]
        if shape[0] == 0:
            return ["ids"]  # every record skipped: nothing else is written
        layout = INVARIANTS[plan.spec.name].layout  # type: ignore[attr-defined]
        return ["ids", *{"ragged": ["pdd_rows", "pdd_offsets"], "matrix": ["matrix"], "stack": ["stack"]}[layout]]

    @staticmethod
    def _check(plan: WorkerPlan, arrays: dict[str, np.ndarray]) -> None:
        """The arrays fit the task: dtypes, row counts, offsets, neighbour indices."""

        def bad(name: str, why: str) -> _Failure:
            return _Failure("ERROR_OUTPUT_FILE_CORRUPT", f"{OUTPUT_DIR}/{name}.npy: {why}")

        def dtype(name: str, kind: str) -> None:
            a = arrays[name]
            ok = a.dtype.kind == "U" if kind == "unicode" else a.dtype == np.dtype(kind)
            if not ok:
                raise bad(name, f"dtype {a.dtype.str}, expected {kind}")

        if plan.kind == "invariants":
            dtype("ids", "unicode")
            ids = arrays["ids"]
            staged = plan.ids("records")
            if ids.ndim != 1 or not set(ids.tolist()) <= set(staged) or len(ids) > len(staged):
                raise bad("ids", "identifiers that are not the records of the block")
            m = len(ids)
            if m == 0:
                return
            desc = INVARIANTS[plan.spec.name]  # type: ignore[attr-defined]
            if desc.layout == "ragged":
                dtype("pdd_rows", "float64")
                dtype("pdd_offsets", "int64")
                rows, offsets = arrays["pdd_rows"], arrays["pdd_offsets"]
                if (
                    rows.ndim != 2
                    or offsets.shape != (m + 1,)
                    or offsets[0] != 0
                    or offsets[-1] != len(rows)
                    or np.any(np.diff(offsets) < 1)
                ):
                    raise bad("pdd_offsets", f"not the offsets of {m} PDDs in the {len(rows)} rows of pdd_rows.npy")
            else:
                name = "matrix" if desc.layout == "matrix" else "stack"
                dtype(name, desc.dtype)
                if arrays[name].ndim < 2 or arrays[name].shape[0] != m:
                    raise bad(name, f"shape {arrays[name].shape}, expected {m} rows")
            return
        if plan.kind == "distances":
            dtype("matrix", "float64")
            n_a = plan.count("a")
            n_b = plan.count("b") if "b" in plan.roles else n_a
            if arrays["matrix"].shape != (n_a, n_b):
                raise bad("matrix", f"shape {arrays['matrix'].shape}, expected ({n_a}, {n_b})")
            return
        dtype("distances", "float64")
        dtype("indices", "int64")
        k = int(plan.task["k"])
        n_q = plan.count("queries")
        for name in ("distances", "indices"):
            if arrays[name].shape != (n_q, k):
                raise bad(name, f"shape {arrays[name].shape}, expected ({n_q}, {k})")
        n_ref = len(plan.roles["reference"][0])
        idx = arrays["indices"]
        if idx.size and (idx.min() < -1 or idx.max() >= n_ref):
            raise bad("indices", f"indices outside the {n_ref} records of the reference set")

    # ------------------------------------------------------------------ the output node
    def _output_node(self, plan: WorkerPlan, arrays: dict[str, np.ndarray], result: dict[str, Any]) -> tuple[str, Any]:
        spec = plan.spec
        try:
            if plan.kind == "invariants":
                ids = [str(i) for i in arrays["ids"].tolist()]
                if not ids:
                    skipped = ", ".join(repr(s) for s in (result.get("skipped_ids") or [])[:10])
                    raise _Failure("ERROR_NO_VALID_RECORDS", f"the worker skipped every record of the block: {skipped}")
                layout = INVARIANTS[spec.name].layout  # type: ignore[attr-defined]
                if layout == "ragged":
                    offsets = arrays["pdd_offsets"]
                    items = [arrays["pdd_rows"][offsets[i]: offsets[i + 1]] for i in range(len(ids))]
                else:
                    items = list(arrays["matrix" if layout == "matrix" else "stack"])
                dataset = plan.roles["records"][0]
                invariants = InvariantsData.from_arrays(
                    spec.name, spec.params, ids, items, dataset_uuid=dataset.uuid, row_range=plan.row_range  # type: ignore[attr-defined]
                )
                return "invariants", invariants
            metric = plan.metric
            assert metric is not None
            first = plan.roles["a" if plan.kind == "distances" else "queries"][0]
            meta = {
                "metric_parameters": metric.params,
                "invariants": {"descriptor": first.descriptor, "parameters": first.parameters},
            }
            if plan.kind == "distances":
                matrix = arrays["matrix"]
                a_ids = plan.ids("a")
                if "b" not in plan.roles:  # the rows against themselves: pdist's condensed form
                    condensed = matrix[np.triu_indices(len(a_ids), k=1)]
                    return "distances", DistancesData.from_condensed(condensed, a_ids, metric.name, **meta)
                return "distances", DistancesData.from_matrix(matrix, a_ids, plan.ids("b"), metric.name, **meta)
            reference = plan.roles["reference"][0]
            exclude_self = "exclude_self_offset" in plan.task
            knn = DistancesData.from_knn(
                arrays["distances"], arrays["indices"], plan.ids("queries"), list(reference.ids), metric.name,
                exclude_self=exclude_self, **meta,
            )
            return "distances", knn
        except (ValueError, TypeError) as exc:
            raise _Failure("ERROR_OUTPUT_FILE_CORRUPT", f"the outputs do not make a node: {exc}") from None

    def _report_ok(self, result: dict[str, Any]) -> None:
        if self.node.exit_status:
            self.logger.warning(
                f"the scheduler reported [{self.node.exit_status}] {self.node.exit_message}, but the worker finished: "
                "its outputs are complete and attached"
            )
        skipped = result.get("skipped_ids") or []
        if skipped:
            errors = {e.get("id"): e for e in result.get("errors") or []}
            lines = [f"{s!r}: {errors.get(s, {}).get('type')}: {errors.get(s, {}).get('message')}" for s in skipped]
            self.logger.warning(f"{len(skipped)} record(s) skipped (on_error: skip):\n" + "\n".join(lines))
        for warning in result.get("warnings") or []:
            self.logger.warning(f"worker: {warning}")
        timings = result.get("timings") or {}
        self.logger.report(
            f"worker on {result.get('host')}: {result.get('message')} "
            f"({timings.get('total')} s, peak RSS {result.get('peak_rss_mb')} MiB)"
        )
