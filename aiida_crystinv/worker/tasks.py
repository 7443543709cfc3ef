"""The worker's tasks: each is a read phase (staged files -> validated inputs) and a compute
phase (inputs -> output arrays) calling the pure layer exactly as the in-process
calcfunctions do, so that both give the same arrays bit for bit.

* ``invariants`` -- ``spec.compute(crystal)`` for each record, as
  ``compute_invariants`` / ``InvariantsData.compute`` do;
* ``distances`` -- :func:`aiida_crystinv.distances.cdist` of two staged sets;
* ``knn`` -- :func:`aiida_crystinv.distances.nearest_neighbours` with ``queries=`` (for
  ``pdd_emd`` pruned by the AMD lower bound), the query's own item excluded.

Pure: no AiiDA import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..invariants import as_crystal
from ._files import BadTaskError, ComputationError, as_str_array
from .records import crystals_from_arrays, invariant_arrays, read_invariants, read_records
from .schema import DistancesTask, InvariantsTask, KnnTask
from .topk import ABSENT

__all__ = ["TaskOutput", "read_inputs", "compute", "amd_from_pdds"]


@dataclass
class TaskOutput:
    """What a task computed: arrays for ``out/<name>.npy`` and the facts for result.json."""

    arrays: dict[str, np.ndarray]
    n_inputs: int
    n_outputs: int
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _one_line(text: str, limit: int = 2000) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------- read phase


def amd_from_pdds(pdds: list[np.ndarray]) -> np.ndarray:
    """(n, k) AMDs of PDDs (weights in column 0), computed as ``InvariantsData.get_amd``
    computes them from the stored PDD rows (the same float64 operations)."""
    rows = np.concatenate(pdds, axis=0)
    offsets = np.zeros(len(pdds) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pdds], out=offsets[1:])
    weighted = rows[:, :1] * rows[:, 1:]
    return np.add.reduceat(weighted, offsets[:-1], axis=0)


def _comparable(task: DistancesTask | KnnTask, folder: Path, where: str, rows: tuple[int, int] | None) -> tuple[np.ndarray, Any]:
    """``(ids, items)`` of a staged set, in the form the metric takes."""
    ids, items = read_invariants(folder, where, task.spec, rows)
    if task.metric_spec.name.startswith("amd_") and task.spec.name == "pdd":  # type: ignore[attr-defined]
        items = amd_from_pdds(items)
    return ids, items


def _row_start(rows: tuple[int, int] | None) -> int:
    return 0 if rows is None else rows[0]


def read_inputs(task: Any, folder: Path) -> dict[str, Any]:
    """Read and check the staged inputs of ``task``; raises :class:`BadTaskError`."""
    folder = Path(folder)
    if isinstance(task, InvariantsTask):
        block = read_records(folder, task.records.dir, task.records.rows, len(task.elements))
        return {"crystals": crystals_from_arrays(block, task.elements), "row_start": _row_start(task.records.rows)}
    if isinstance(task, DistancesTask):
        ids_a, a = _comparable(task, folder, task.a.dir, task.a.rows)
        if task.b is None:
            ids_b, b, where_b, start_b = ids_a, a, task.a.dir, _row_start(task.a.rows)
        else:
            ids_b, b = _comparable(task, folder, task.b.dir, task.b.rows)
            where_b, start_b = task.b.dir, _row_start(task.b.rows)
        _same_width(a, b, task.a.dir, where_b)
        return {"a": (task.a.dir, _row_start(task.a.rows), ids_a, a), "b": (where_b, start_b, ids_b, b)}
    if isinstance(task, KnnTask):
        ids_q, q = _comparable(task, folder, task.queries.dir, task.queries.rows)
        ids_r, r = _comparable(task, folder, task.reference.dir, task.reference.rows)
        _same_width(q, r, task.queries.dir, task.reference.dir)
        return {
            "queries": (task.queries.dir, _row_start(task.queries.rows), ids_q, q),
            "reference": (task.reference.dir, _row_start(task.reference.rows), ids_r, r),
        }
    raise TypeError(f"unknown task {type(task).__name__}")  # pragma: no cover - parse_task guards


def _same_width(a: Any, b: Any, where_a: str, where_b: str) -> None:
    sa = a[0].shape[1:] if isinstance(a, list) else a.shape[1:]
    sb = b[0].shape[1:] if isinstance(b, list) else b.shape[1:]
    if sa != sb:
        raise BadTaskError(f"{where_a} and {where_b}: invariants of different shapes per record ({sa} and {sb})")


def _check_finite(where: str, row_start: int, ids: np.ndarray, items: Any) -> None:
    """ComputationError naming every record whose invariant is not finite."""
    if isinstance(items, list):
        bad = [i for i, p in enumerate(items) if not np.all(np.isfinite(p))]
    else:
        flat = np.asarray(items).reshape(len(items), -1)
        bad = np.flatnonzero(~np.all(np.isfinite(flat), axis=1)).tolist()
    if bad:
        errors = [
            {"index": row_start + i, "id": str(ids[i]), "set": where, "type": "ValueError", "message": "NaN or infinite values"}
            for i in bad
        ]
        names = ", ".join(repr(e["id"]) for e in errors[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ComputationError(f"{where}: non-finite invariant values in record(s) {names}", errors)


# ---------------------------------------------------------------------------- compute phase


def compute(task: Any, inputs: dict[str, Any]) -> TaskOutput:
    """Run the task on inputs from :func:`read_inputs`.

    Raises:
        ComputationError: a record failed (``on_error: fail``) or the distance
            computation failed; the message names the record.
    """
    if isinstance(task, InvariantsTask):
        return _invariants(task, inputs)
    if isinstance(task, DistancesTask):
        return _distances(task, inputs)
    if isinstance(task, KnnTask):
        return _knn(task, inputs)
    raise TypeError(f"unknown task {type(task).__name__}")  # pragma: no cover


def _record_message(label: str, exc: BaseException) -> str:
    text = _one_line(str(exc)) or type(exc).__name__
    return text[len(label) + 2:] if text.startswith(f"{label}: ") else text


def _invariants(task: InvariantsTask, inputs: dict[str, Any]) -> TaskOutput:
    spec = task.spec
    crystals = inputs["crystals"]
    row_start = inputs["row_start"]
    arrays, ids, errors = [], [], []
    for i, crystal in enumerate(crystals):
        try:
            if task.check_records:
                as_crystal((crystal.cell, crystal.frac, crystal.species), label=crystal.label)
            arrays.append(np.asarray(spec.compute(crystal)))
        except MemoryError:
            raise
        except NotImplementedError as exc:
            raise ComputationError(f"descriptor {spec.name!r} is not available in this installation: {exc}") from exc  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - any failure of one record is that record's error
            error = {"index": row_start + i, "id": crystal.label, "type": type(exc).__name__,
                     "message": _record_message(crystal.label, exc)}
            if task.on_error == "fail":
                raise ComputationError(f"record {crystal.label!r} (row {row_start + i}): {error['message']}", [error]) from exc
            errors.append(error)
            continue
        ids.append(crystal.label)
    try:
        out = invariant_arrays(spec, ids, arrays) if ids else {"ids": as_str_array([])}
    except ValueError as exc:
        raise ComputationError(str(exc)) from exc
    name = spec.name  # type: ignore[attr-defined]
    message = f"{name} invariants of {len(ids)} of {len(crystals)} records"
    if errors:
        message += f"; {len(errors)} skipped: " + ", ".join(repr(e["id"]) for e in errors[:5]) + (" ..." if len(errors) > 5 else "")
    return TaskOutput(out, len(crystals), len(ids), message, errors, {"n_failed": len(errors)})


def _distances(task: DistancesTask, inputs: dict[str, Any]) -> TaskOutput:
    from ..distances import cdist

    for where, start, ids, items in (inputs["a"], inputs["b"]):
        _check_finite(where, start, ids, items)
    metric = task.metric_spec
    a, b = inputs["a"][3], inputs["b"][3]
    try:
        matrix = cdist(a, b, metric.name, memory_limit_mb=task.memory_limit_mb, **metric.params)
    except (TypeError, ValueError) as exc:
        raise ComputationError(f"{metric.name} distances failed: {_one_line(str(exc))}") from exc
    na, nb = matrix.shape
    return TaskOutput({"matrix": matrix}, na, na, f"{metric.name} distances, a {na} x {nb} block")


def _knn(task: KnnTask, inputs: dict[str, Any]) -> TaskOutput:
    from ..distances import nearest_neighbours

    for where, start, ids, items in (inputs["queries"], inputs["reference"]):
        _check_finite(where, start, ids, items)
    metric = task.metric_spec
    queries, reference = inputs["queries"][3], inputs["reference"][3]
    nq, n_ref, k = len(queries), len(reference), task.k
    # position, in this reference block, of each query's own item (-1: not in the block)
    own = np.full(nq, -1, dtype=np.int64)
    if task.exclude_self_offset is not None:
        cand = np.arange(nq, dtype=np.int64) + task.exclude_self_offset
        inside = (cand >= 0) & (cand < n_ref)
        own[inside] = cand[inside]
    # one more neighbour when a query may meet itself: dropping it from the (k+1) nearest
    # by (distance, index) leaves the k nearest of the others, in the same order
    k_call = min(k + int(bool((own >= 0).any())), n_ref)
    try:
        d, idx, evaluated = nearest_neighbours(
            reference, k_call, metric.name, queries=queries, memory_limit_mb=task.memory_limit_mb,
            return_stats=True, **metric.params,
        )
    except (TypeError, ValueError) as exc:
        raise ComputationError(f"{metric.name} nearest neighbours failed: {_one_line(str(exc))}") from exc
    keep = idx != own[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")  # kept entries first, in their order
    width = min(k, k_call)
    cols = order[:, :width]
    out_d = np.full((nq, k), np.inf)
    out_i = np.full((nq, k), ABSENT, dtype=np.int64)
    out_d[:, :width] = np.take_along_axis(d, cols, axis=1)
    out_i[:, :width] = np.take_along_axis(idx, cols, axis=1)
    valid = np.zeros((nq, k), dtype=bool)
    valid[:, :width] = np.take_along_axis(keep, cols, axis=1)
    out_d[~valid] = np.inf
    out_i[~valid] = ABSENT
    out_i[valid] += task.reference_offset
    n_absent = int((~valid).sum())
    message = f"{metric.name} {k} nearest neighbours of {nq} queries among {n_ref} reference items"
    if n_absent:
        message += f" ({n_absent} empty slots: fewer than k candidates in this block)"
    stats = {"evaluated_fraction": float(evaluated), "k_searched": int(k_call), "empty_slots": n_absent}
    return TaskOutput({"distances": out_d, "indices": out_i}, nq, nq, message, [], stats)
