"""``WorkerCalculation``: one task of the worker program (``crystinv-worker``) as a CalcJob.

The job runs on any AiiDA computer through its transport and scheduler. It stages a task
folder from stored nodes -- only the rows the job needs -- runs ``crystinv-worker .`` in it
and retrieves ``result.json`` (kept in the ``retrieved`` folder, with the worker's and the
scheduler's stdout/stderr) and ``out/*.npy`` (retrieved temporarily: the parser turns the
arrays into the output node, so they are not stored twice). The parser
(:class:`aiida_crystinv.parsers.worker.WorkerParser`, entry point ``crystinv.worker``)
creates exactly the node the calcfunction path creates for the same input.

Inputs
------
``code``
    the worker's ``InstalledCode`` on the computer (the ``crystinv-worker`` console script,
    or ``python -m aiida_crystinv.worker``; the same aiida-crystinv version as here).
``task``
    ``Dict``: the worker's task (``docs/worker.md``) without what the job stages. Validated
    at the port with the worker's own schema (:func:`aiida_crystinv.worker.parse_task`) and,
    together with the data, by the inputs validator, so a bad task never creates a node.
    The job fills in the folders (``dir``), ``elements`` (from the dataset), the
    ``descriptor`` of a distances/knn task (from the invariants; when given it must be
    theirs), ``reference_offset`` and ``exclude_self_offset``; a set of rows is chosen with
    ``{"rows": [start, stop]}`` under ``a``, ``b``, ``queries`` or ``reference``.
    ``check_records`` defaults to ``false`` (a stored dataset's records were validated at
    import; the calcfunction does not check them again either).

=================  =================================================  =========================================
task               data                                               output
=================  =================================================  =========================================
``invariants``     ``dataset``, optional ``rows`` Dict                ``invariants``: as ``compute_invariants``
                   ``{start, stop}``                                  with ``chunk=rows``
``distances``      ``invariants``, optional ``other``; task ``a``,    ``distances``: without ``b`` and ``other``
                   ``b`` rows                                         condensed, as ``compute_distances(a rows)``;
                                                                      else dense, as ``compute_distances(a rows,
                                                                      other=b rows)``
``knn``            ``invariants``, optional ``other``; task ``k``,    ``distances`` (kNN): as ``compute_neighbours``
                   ``queries``, ``reference`` rows                    for the query rows; indices are positions in
                                                                      the whole reference set, a reference block
                                                                      gives partial lists (``merge_topk``)
=================  =================================================  =========================================

Exit codes: aiida-core's scheduler codes (100-160) as the scheduler plugin reports them;
190 the job was killed; 200 the worker could not read its input; 211 every record was
skipped; 350-356 missing or corrupt files; 360-362 failures the worker reported (the
record named, out of memory, internal). See :mod:`aiida_crystinv.exit_codes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJob, CalcJobProcessSpec

from ..data import CrystalDatasetData, DistancesData, InvariantsData
from ..exit_codes import add_exit_codes
from ..specs import InvariantSpec, MetricSpec, SpecError, parse_invariant
from .ports import check_chunk

__all__ = ["WorkerCalculation", "WorkerPlan", "worker_plan", "PlanError", "check_task", "validate_worker_inputs"]

#: Files of the task folder (see docs/worker.md).
TASK_FILE = "task.json"
RESULT_FILE = "result.json"
OUTPUT_DIR = "out"
#: Where the worker's own stdout / stderr go (one line each; retrieved).
STDOUT_FILE = "worker.out"
STDERR_FILE = "worker.err"

#: The record arrays of a dataset node the worker reads (its other files are not staged).
RECORD_FILES = ("cells", "site_offsets", "frac", "species_offsets", "species", "occupancies", "ids")
#: Input-set keys of each task kind (their folders are chosen by the job).
ROLES = {"invariants": ("records",), "distances": ("a", "b"), "knn": ("queries", "reference")}
#: Keys the job sets from the data and the staging.
FILLED_KEYS = ("elements", "reference_offset", "exclude_self_offset")


class PlanError(ValueError):
    """The task does not fit the data (or is invalid); the message says why."""


@dataclass
class Stage:
    """One folder of the task folder: the rows ``rows`` of ``node`` (``None``: all of them,
    copied from the node's repository as they are)."""

    dir: str
    node: Any
    rows: tuple[int, int] | None


@dataclass
class WorkerPlan:
    """What a worker job does: the complete ``task.json``, the folders to stage, and what
    the parser needs to build the output node.

    Attributes:
        task: the complete task (``schema_version`` included), as written to ``task.json``.
        kind: ``invariants``, ``distances`` or ``knn``.
        spec: the invariant spec (of the dataset's invariants to compute, or of the
            invariants compared).
        metric: the metric spec (distances / knn), else ``None``.
        roles: role -> ``(node, rows)`` with rows in the node's numbering (``None``: all).
        stages: the folders to stage.
        row_range: the ``rows`` input of an invariants task (``None`` without it).
    """

    task: dict[str, Any]
    kind: str
    spec: InvariantSpec
    metric: MetricSpec | None
    roles: dict[str, tuple[Any, tuple[int, int] | None]]
    stages: list[Stage] = field(default_factory=list)
    row_range: tuple[int, int] | None = None

    def ids(self, role: str) -> list[str]:
        """Identifiers of the rows of ``role`` (read without loading the whole file)."""
        node, rows = self.roles[role]
        if rows is None:
            return list(node.ids)
        return [str(i) for i in node._get_rows("ids", rows[0], rows[1])]

    def count(self, role: str) -> int:
        node, rows = self.roles[role]
        return len(node) if rows is None else rows[1] - rows[0]


def _rows_of(value: Any, where: str) -> tuple[int, int] | None:
    """``{"rows": [start, stop]}`` of an input-set key of the task (``dir`` is refused)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise PlanError(f"task.{where}: must be {{'rows': [start, stop]}} (the job stages the folder), got {value!r}")
    extra = sorted(set(value) - {"rows"})
    if extra:
        why = "the job chooses the folders" if "dir" in extra else "only 'rows' may be given"
        raise PlanError(f"task.{where}: unknown key(s) {', '.join(map(repr, extra))} ({why})")
    rows = value.get("rows")
    if rows is None:
        return None
    if (
        not isinstance(rows, (list, tuple))
        or len(rows) != 2
        or any(isinstance(r, bool) or not isinstance(r, int) for r in rows)
        or not 0 <= rows[0] < rows[1]
    ):
        raise PlanError(f"task.{where}.rows: must be [start, stop] with 0 <= start < stop, got {rows!r}")
    return int(rows[0]), int(rows[1])


def _check_inside(rows: tuple[int, int] | None, node: Any, what: str) -> None:
    if rows is not None and rows[1] > len(node):
        raise PlanError(f"{what}: rows {rows[0]}:{rows[1]} are not inside the {len(node)} records of {_name(node)}")


def _name(node: Any) -> str:
    return f"{type(node).__name__}<{node.pk}>" if node.is_stored else f"the unstored {type(node).__name__}"


def _chunk(rows: Any) -> tuple[int, int] | None:
    if rows is None:
        return None
    c = rows.get_dict()
    return int(c["start"]), int(c["stop"])


def _parse(task: Mapping[str, Any]) -> Any:
    from ..worker import BadTaskError, parse_task
    from ..worker.schema import SCHEMA_VERSION

    try:
        return parse_task({"schema_version": SCHEMA_VERSION, **dict(task)}, where="task")
    except BadTaskError as exc:
        raise PlanError(str(exc)) from None


def worker_plan(inputs: Mapping[str, Any]) -> WorkerPlan:
    """The plan of a worker job from its inputs (``task``, ``dataset``/``rows`` or
    ``invariants``/``other``); the nodes may be unstored.

    Raises:
        PlanError: the task is invalid or does not fit the data (one line naming the key).
    """
    from ..worker.schema import SCHEMA_VERSION

    task = dict(inputs["task"].get_dict())
    kind = task.get("task")
    if kind not in ROLES:
        _parse(task)  # the worker's own message for an unknown or missing task
        raise PlanError(f"task: unknown task {kind!r}")  # pragma: no cover - parse_task refuses it
    for key in FILLED_KEYS:
        if key in task:
            raise PlanError(f"task.{key}: set by the job from the data and the rows staged; leave it out")
    version = task.pop("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        _parse({**task, "schema_version": version})
    dataset, rows_input = inputs.get("dataset"), inputs.get("rows")
    invariants, other = inputs.get("invariants"), inputs.get("other")
    roles: dict[str, tuple[Any, tuple[int, int] | None]] = {}
    row_range = None

    if kind == "invariants":
        if dataset is None or invariants is not None or other is not None:
            raise PlanError("an invariants task takes a 'dataset' (and optional 'rows'), not 'invariants' or 'other'")
        if "records" in task:
            raise PlanError("task.records: the job stages the records; choose them with the 'rows' input")
        row_range = _chunk(rows_input)
        _check_inside(row_range, dataset, "rows")
        roles["records"] = (dataset, row_range)
        task["elements"] = list(dataset.elements)
        task.setdefault("check_records", False)
        spec = None
    else:
        if invariants is None or dataset is not None or rows_input is not None:
            raise PlanError(f"a {kind} task takes 'invariants' (and optional 'other'), not 'dataset' or 'rows'")
        node_spec = parse_invariant({"name": invariants.descriptor, **invariants.parameters})
        if "descriptor" in task:
            given = parse_invariant(task["descriptor"], where="task.descriptor")
            if given.normalised() != node_spec.normalised():
                raise PlanError(
                    f"task.descriptor: {given.normalised()} is not the descriptor of the invariants ({node_spec.normalised()}); leave it out"
                )
        task["descriptor"] = {"name": node_spec.name, **node_spec.params}  # type: ignore[attr-defined]
        if other is not None:
            reason = invariants.incompatibility(other)
            if reason:
                raise PlanError(f"other: {reason}")
        first, second = ROLES[kind]
        rows_first = _rows_of(task.pop(first, None), first)
        _check_inside(rows_first, invariants, f"task.{first}")
        roles[first] = (invariants, rows_first)
        second_given = second in task
        rows_second = _rows_of(task.pop(second, None), second)
        if kind == "knn" or other is not None or second_given:
            second_node = other if other is not None else invariants
            _check_inside(rows_second, second_node, f"task.{second}")
            roles[second] = (second_node, rows_second)
        if kind == "knn":
            n_ref = len(other) if other is not None else len(invariants) - 1
            k = task.get("k")
            if isinstance(k, int) and not isinstance(k, bool) and k > n_ref:
                raise PlanError(f"task.k: k={k} but only {n_ref} records can be neighbours")
            r0 = rows_second[0] if rows_second else 0
            q0 = rows_first[0] if rows_first else 0
            task["reference_offset"] = r0
            if other is None:
                task["exclude_self_offset"] = q0 - r0
        spec = node_spec

    # folders: a node staged whole serves every role on it (through rows); a slice is
    # written once per distinct (node, rows)
    stages: dict[tuple[str, tuple[int, int] | None], Stage] = {}
    whole = {}
    for role, (node, rows) in roles.items():
        if rows is None and node.uuid not in whole:
            whole[node.uuid] = stages[(node.uuid, None)] = Stage(role, node, None)
    for role, (node, rows) in roles.items():
        if node.uuid in whole:
            entry: dict[str, Any] = {"dir": whole[node.uuid].dir}
            if rows is not None:
                entry["rows"] = list(rows)
        else:
            stage = stages.setdefault((node.uuid, rows), Stage(role, node, rows))
            entry = {"dir": stage.dir}
        task[role] = entry

    parsed = _parse(task)
    full = {"schema_version": SCHEMA_VERSION, **task}
    return WorkerPlan(
        task=full,
        kind=kind,
        spec=spec if spec is not None else parsed.spec,
        metric=parsed.metric_spec if kind != "invariants" else None,
        roles=roles,
        stages=list(stages.values()),
        row_range=row_range,
    )


# ---------------------------------------------------------------------------- validators


def check_task(value: Any, _ctx: Any = None) -> str | None:
    """The task alone, by the worker's schema: the keys the job fills in get placeholders
    (a distances/knn task without ``descriptor`` is checked with the data, by
    :func:`validate_worker_inputs`)."""
    if value is None:
        return None
    task = dict(value.get_dict())
    kind = task.get("task")
    try:
        for key in FILLED_KEYS:
            if key in task:
                raise PlanError(f"task.{key}: set by the job from the data and the rows staged; leave it out")
        for role in ROLES.get(str(kind), ()):
            if role in task:
                rows = _rows_of(task[role], role)
                task[role] = {"dir": role, **({"rows": list(rows)} if rows else {})}
        if kind == "invariants":
            if "records" in task:
                raise PlanError("task.records: the job stages the records; choose them with the 'rows' input")
            task["elements"] = ["H"]
        elif kind in ("distances", "knn") and "descriptor" not in task:
            return None
        _parse(task)
    except (PlanError, SpecError) as exc:
        return str(exc)
    return None


def validate_worker_inputs(inputs: Any, ctx: Any = None) -> str | None:
    """The task together with the data: the right inputs for the task, rows inside the
    nodes, compatible invariants, ``k`` not above the records that can be neighbours, and
    the complete task accepted by the worker's schema."""
    if ctx is not None and any(name not in ctx for name in ("task", "dataset", "invariants")):
        return None  # exposed in a WorkChain without these ports: the CalcJob validates them when it runs
    if "task" not in inputs:
        return None
    try:
        worker_plan(inputs)
    except (PlanError, SpecError) as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------- staging


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)


def _record_slices(node: CrystalDatasetData, start: int, stop: int) -> dict[str, np.ndarray]:
    """The record arrays of rows ``start:stop``, offsets rebased to 0 (the dataset's own
    partial read)."""
    return node._read_block(start, stop)


def _invariant_slices(node: InvariantsData, start: int, stop: int) -> dict[str, np.ndarray]:
    """The files of rows ``start:stop`` of an ``InvariantsData`` in its own layout."""
    out = {"ids": node._get_rows("ids", start, stop)}
    if node.layout == "ragged":
        offsets = node._get_rows("pdd_offsets", start, stop + 1)
        out["pdd_rows"] = node._get_rows("pdd_rows", int(offsets[0]), int(offsets[-1]))
        out["pdd_offsets"] = offsets - offsets[0]
    elif node._has_array("window_values"):  # GRID, windowed as stored (lossless)
        lengths = node._get_rows("window_lengths", 0, stop)
        before = int(lengths[:start].sum(dtype=np.int64))
        count = int(lengths[start:].sum(dtype=np.int64))
        out["window_starts"] = node._get_rows("window_starts", start, stop)
        out["window_lengths"] = lengths[start:]
        out["window_values"] = node._get_rows("window_values", before, before + count)
    else:
        name = "matrix" if node.layout == "matrix" else "stack"
        out[name] = node._get_rows(name, start, stop)
    return out


def _files_of(node: Any) -> list[str]:
    if isinstance(node, CrystalDatasetData):
        return [f"{name}.npy" for name in RECORD_FILES]
    return sorted(node.base.repository.list_object_names())


class WorkerCalculation(CalcJob):
    """One task of ``crystinv-worker`` (invariants of a block of records, a block of a
    distance matrix, or the exact k nearest neighbours of a block of queries) on a
    computer, through its scheduler. See the module docstring for inputs and outputs."""

    @classmethod
    def define(cls, spec: CalcJobProcessSpec) -> None:  # type: ignore[override]
        super().define(spec)
        spec.input("task", valid_type=orm.Dict, validator=check_task,
                   help="The worker task without the staged folders (docs/worker.md).")
        spec.input("dataset", valid_type=CrystalDatasetData, required=False,
                   help="The records of an invariants task.")
        spec.input("rows", valid_type=orm.Dict, required=False, validator=check_chunk,
                   help="{start, stop}: the records of an invariants task (default: all).")
        spec.input("invariants", valid_type=InvariantsData, required=False,
                   help="The invariants of a distances or knn task (rows, or queries).")
        spec.input("other", valid_type=InvariantsData, required=False,
                   help="The column set of a distances task, or the reference set of a knn task.")
        spec.inputs["code"].required = True
        spec.inputs.validator = validate_worker_inputs
        options = spec.inputs["metadata"]["options"]  # type: ignore[index]
        options["resources"].default = {"num_machines": 1}  # type: ignore[index]
        options["parser_name"].default = "crystinv.worker"  # type: ignore[index]
        spec.output("invariants", valid_type=InvariantsData, required=False, help="The invariants of the records.")
        spec.output("distances", valid_type=DistancesData, required=False,
                    help="A condensed or dense distance matrix, or a kNN graph.")
        add_exit_codes(
            spec,
            "ERROR_SCHEDULER_JOB_KILLED",
            "ERROR_READING_INPUT",
            "ERROR_NO_VALID_RECORDS",
            "ERROR_RESULT_MISSING",
            "ERROR_RESULT_INVALID",
            "ERROR_WORKER_VERSION_MISMATCH",
            "ERROR_OUTPUT_FILE_MISSING",
            "ERROR_OUTPUT_FILE_CORRUPT",
            "ERROR_WORKER_RECORD_FAILED",
            "ERROR_WORKER_OUT_OF_MEMORY",
            "ERROR_WORKER_INTERNAL",
        )

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Stage the task folder: ``task.json`` and, per input set, either the node's files
        copied as they are (``local_copy_list``, when all its rows are used) or the arrays
        of the rows used, written here."""
        from ..worker import write_task

        plan = worker_plan(self.inputs)
        root = Path(folder.abspath)
        local_copy_list = []
        for stage in plan.stages:
            if stage.rows is None:
                for name in _files_of(stage.node):
                    local_copy_list.append((stage.node.uuid, name, f"{stage.dir}/{name}"))
                continue
            start, stop = stage.rows
            if isinstance(stage.node, CrystalDatasetData):
                arrays = _record_slices(stage.node, start, stop)
            else:
                arrays = _invariant_slices(stage.node, start, stop)
            for name, array in arrays.items():
                _save(root / stage.dir / f"{name}.npy", array)
        write_task(root, plan.task)

        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ["."]
        codeinfo.stdout_name = STDOUT_FILE
        codeinfo.stderr_name = STDERR_FILE

        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = local_copy_list
        calcinfo.retrieve_list = [RESULT_FILE, STDOUT_FILE, STDERR_FILE]
        calcinfo.retrieve_temporary_list = [OUTPUT_DIR]
        return calcinfo

