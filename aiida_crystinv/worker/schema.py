"""The ``task.json`` schema of the worker: pydantic v2 models that refuse unknown keys.

One model per task kind, chosen by the ``task`` key; every model has the common keys
``schema_version`` (must be :data:`SCHEMA_VERSION`), ``task``, ``n_jobs`` and
``memory_limit_mb``. Descriptors and metrics are validated with
:func:`aiida_crystinv.specs.parse_invariant` / :func:`~aiida_crystinv.specs.metric_for`,
so a task file accepts exactly what the in-process calcfunctions accept. See
``docs/worker.md`` for the whole folder format.

Pure: pydantic and the package's specs, no AiiDA import.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Mapping

from pydantic import BeforeValidator, Field, field_validator, model_validator

from ..specs import InvariantSpec, MetricSpec, SpecError, metric_for, parse, parse_invariant, parse_metric
from ..specs._base import Int, PositiveFloat, PositiveInt, Spec
from ._files import OUTPUT_DIR, RESULT_FILE, SCHEMA_VERSION, TASK_FILE, BadTaskError

__all__ = [
    "SCHEMA_VERSION",
    "TASK_FILE",
    "RESULT_FILE",
    "OUTPUT_DIR",
    "InputSet",
    "InvariantsTask",
    "DistancesTask",
    "KnnTask",
    "TASKS",
    "parse_task",
    "load_task",
]



def _relative_dir(value: Any) -> str:
    """A folder inside the task folder: relative, POSIX separators, no ``..``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty relative folder name, got {value!r}")
    path = PurePosixPath(value.strip())
    if path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(f"must be a folder inside the task folder (relative, no '..'), got {value!r}")
    return str(path)


def _rows(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"must be [start, stop], got {value!r}")
    start, stop = value
    for v in (start, stop):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"must be [start, stop] with non-negative integers, got {value!r}")
    if start > stop:
        raise ValueError(f"start must not exceed stop, got {value!r}")
    return (int(start), int(stop))


RelativeDir = Annotated[str, BeforeValidator(_relative_dir)]
Rows = Annotated[tuple[int, int] | None, BeforeValidator(_rows)]


class InputSet(Spec):
    """Where a set of records or invariants is staged: a folder inside the task folder and,
    optionally, the rows ``[start, stop)`` of its arrays to use (default: all rows)."""

    dir: RelativeDir
    rows: Rows = None


class _Task(Spec):
    schema_version: int
    task: str
    #: threads for the numerical kernels (default: numba's, i.e. every core it sees)
    n_jobs: PositiveInt | None = None
    #: bound on the working memory of one block of a distance computation, MiB
    memory_limit_mb: PositiveFloat = 512.0

    @field_validator("schema_version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be the integer {SCHEMA_VERSION}, got {value!r}")
        if value > SCHEMA_VERSION:
            raise ValueError(
                f"version {value} is newer than this worker understands ({SCHEMA_VERSION}); "
                "install the same aiida-crystinv version on this computer as on the AiiDA side"
            )
        if value != SCHEMA_VERSION:
            raise ValueError(f"version {value} is not supported; this worker reads version {SCHEMA_VERSION}")
        return value

    @field_validator("descriptor", mode="before", check_fields=False)
    @classmethod
    def _descriptor(cls, value: Any) -> Any:
        try:
            return parse_invariant(value, where="")
        except SpecError as exc:
            raise ValueError(str(exc).removeprefix("spec: ")) from None

    @property
    def spec(self) -> InvariantSpec:
        """The validated invariant spec (name and every parameter)."""
        return self.descriptor  # type: ignore[attr-defined,no-any-return]


class InvariantsTask(_Task):
    """``task: invariants``: the invariants of a block of dataset records.

    Records are staged in ``records.dir`` with the arrays of a ``CrystalDatasetData``
    repository; ``species.npy`` indexes ``elements``.
    """

    task: Literal["invariants"]
    descriptor: Any
    elements: tuple[str, ...]
    records: InputSet = InputSet(dir="records")
    #: ``fail``: the first failing record fails the task (exit 3, the record named);
    #: ``skip``: a failing record is left out of the outputs and reported in result.json
    on_error: Literal["fail", "skip"] = "fail"
    #: validate each record (overlapping atoms, degenerate cell, occupancies, elements)
    #: as ``aiida_crystinv.invariants.as_crystal`` does before computing it
    check_records: bool = True

    @field_validator("elements", mode="before")
    @classmethod
    def _elements(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"must be a non-empty list of element symbols, got {value!r}")
        for v in value:
            if not isinstance(v, str) or not v:
                raise ValueError(f"element symbols must be non-empty strings, got {v!r}")
        if len(set(value)) != len(value):
            raise ValueError("element symbols must be unique")
        if len(value) > 32767:
            raise ValueError("at most 32767 elements (species.npy is int16)")
        return tuple(value)


class _Compare(_Task):
    descriptor: Any
    metric: Any = None

    @field_validator("metric", mode="before")
    @classmethod
    def _metric(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            return parse_metric(value, where="")
        except SpecError as exc:
            raise ValueError(str(exc).removeprefix("spec: ")) from None

    @model_validator(mode="after")
    def _applies(self) -> "_Compare":
        try:
            metric_for(self.metric, self.descriptor)
        except SpecError as exc:
            raise ValueError(f"metric: {exc}") from None
        return self

    @property
    def metric_spec(self) -> MetricSpec:
        """The metric to use: the one given or the descriptor's natural one, with the
        invariants' bin width for ``grid_emd`` / ``rdf_emd``."""
        return metric_for(self.metric, self.descriptor)


class DistancesTask(_Compare):
    """``task: distances``: the block ``cdist(A, B)`` of a distance matrix."""

    task: Literal["distances"]
    a: InputSet = InputSet(dir="a")
    #: the column set; ``null``: the rows of ``a`` against themselves
    b: InputSet | None = None


class KnnTask(_Compare):
    """``task: knn``: the exact ``k`` nearest neighbours of a block of queries among a
    (block of a) reference set."""

    task: Literal["knn"]
    k: PositiveInt
    queries: InputSet = InputSet(dir="queries")
    reference: InputSet = InputSet(dir="reference")
    #: added to every reported neighbour index (the position of this reference block in
    #: the whole reference set), so that partial lists can be merged with ``merge_topk``
    reference_offset: Annotated[int, Field(ge=0)] = 0
    #: query ``q`` is the reference item ``q + exclude_self_offset`` (positions inside the
    #: staged blocks; may be negative or beyond the block): never its own neighbour.
    #: ``null``: the queries are not part of the reference set.
    exclude_self_offset: Int | None = None

    @field_validator("reference_offset", mode="before")
    @classmethod
    def _offset(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a non-negative integer, got {value!r}")
        return value


#: Task models by the value of ``task``.
TASKS: dict[str, type[_Task]] = {"invariants": InvariantsTask, "distances": DistancesTask, "knn": KnnTask}


def parse_task(data: Any, where: str = TASK_FILE) -> InvariantsTask | DistancesTask | KnnTask:
    """A validated task from the decoded ``task.json``.

    Raises:
        BadTaskError: one line naming the key (``task.json.descriptor: k: ...``) and, for an
            unknown key, the closest allowed one.
    """
    if not isinstance(data, Mapping):
        raise BadTaskError(f"{where}: must be a JSON object, got {type(data).__name__}")
    kind = data.get("task")
    if kind not in TASKS:
        got = "no 'task' key" if "task" not in data else f"unknown task {kind!r}"
        raise BadTaskError(f"{where}: {got}; use one of {', '.join(TASKS)}")
    try:
        return parse(TASKS[kind], dict(data), where)  # type: ignore[no-any-return]
    except SpecError as exc:
        raise BadTaskError(str(exc)) from None


def load_task(folder: Path) -> InvariantsTask | DistancesTask | KnnTask:
    """Read and validate ``folder/task.json``; raises :class:`BadTaskError`."""
    path = Path(folder) / TASK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadTaskError(f"{TASK_FILE}: missing (the worker reads its task from {path})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadTaskError(f"{TASK_FILE}: cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadTaskError(f"{TASK_FILE}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    return parse_task(data)
