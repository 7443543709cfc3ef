"""``WorkerJobWorkChain``: one block of worker work, restarted until it is done.

In the style of aiida-core's :class:`~aiida.engine.BaseRestartWorkChain` (it is one): the
:class:`~aiida_crystinv.calculations.worker.WorkerCalculation` runs, and its failures go
to ``process_handler`` methods:

* out of walltime (120), out of memory (110 from the scheduler, 361 from the worker): the
  block is split in two halves along its rows (the records of an invariants task, the
  ``a`` rows of a distance block, the queries of a kNN task) and each half runs as its
  own job, one after the other; the halves are joined at the end (``merge_invariants`` /
  ``merge_blocks``) into the node one job would have made. A block of one row that still
  fails ends the WorkChain with 424.
* a worker error on one record (360): the WorkChain fails at once with the record named
  (rerunning would fail the same way).
* anything else (a killed job, 190; a corrupt output, 35x): BaseRestartWorkChain's rule --
  run once more, then fail (423).

Inputs: ``worker`` (the CalcJob's inputs) and BaseRestartWorkChain's ``max_iterations``
(default 10: every job counts, the halves of a split included). Outputs: ``invariants``
or ``distances``, as the CalcJob's.
"""

from __future__ import annotations

from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from ..calculations.blocks import block_label, merge_blocks
from ..calculations.functions import merge_invariants
from ..calculations.worker import WorkerCalculation
from ..data import DistancesData, InvariantsData
from ..exit_codes import EXIT, add_exit_codes, describe_failure

__all__ = ["WorkerJobWorkChain", "block_rows"]

#: BaseRestartWorkChain's exit codes, renumbered into the package's table (aiida-core
#: gives them 301/302/401/402, which mean other things here).
_RESTART_CODES = ("ERROR_SUB_PROCESS_EXCEPTED", "ERROR_SUB_PROCESS_KILLED", "ERROR_MAXIMUM_ITERATIONS_EXCEEDED",
                  "ERROR_UNHANDLED_FAILURE")

#: The CalcJob's failures that a smaller block cures.
_SPLIT_ON = [
    WorkerCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,  # type: ignore[attr-defined]
    WorkerCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_MEMORY,  # type: ignore[attr-defined]
    WorkerCalculation.exit_codes.ERROR_WORKER_OUT_OF_MEMORY,  # type: ignore[attr-defined]
]


def _axis(inputs: Any) -> str | None:
    """Which rows a split halves: ``rows`` (invariants), ``a`` or ``queries`` (task keys);
    ``None`` when the block cannot be split (a condensed matrix of one set)."""
    task = inputs["task"].get_dict()
    kind = task["task"]
    if kind == "invariants":
        return "rows"
    if kind == "knn":
        return "queries"
    if "b" in task or "other" in inputs:
        return "a"
    return None


def block_rows(inputs: Any) -> tuple[int, int]:
    """``(start, stop)`` of the rows a split halves (the whole node when not given)."""
    task = inputs["task"].get_dict()
    axis = _axis(inputs)
    if axis == "rows":
        if "rows" in inputs:
            c = inputs["rows"].get_dict()
            return int(c["start"]), int(c["stop"])
        return 0, len(inputs["dataset"])
    rows = (task.get(axis or "a") or {}).get("rows")
    if rows:
        return int(rows[0]), int(rows[1])
    return 0, len(inputs["invariants"])


def _with_rows(inputs: AttributeDict, axis: str, rows: tuple[int, int]) -> AttributeDict:
    new = AttributeDict(dict(inputs))
    if axis == "rows":
        new["rows"] = orm.Dict({"start": rows[0], "stop": rows[1]})
    else:
        task = inputs["task"].get_dict()
        task[axis] = {"rows": list(rows)}
        new["task"] = orm.Dict(task)
    return new


class WorkerJobWorkChain(BaseRestartWorkChain):
    """A :class:`WorkerCalculation` restarted on failure, its block split in two when it
    runs out of walltime or memory (see the module docstring)."""

    _process_class = WorkerCalculation

    @classmethod
    def define(cls, spec):
        """Inputs, outline, outputs and exit codes."""
        super().define(spec)
        spec.expose_inputs(WorkerCalculation, namespace="worker")
        spec.inputs["max_iterations"].default = lambda: orm.Int(10)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )
        spec.output("invariants", valid_type=InvariantsData, required=False, help="As the CalcJob's.")
        spec.output("distances", valid_type=DistancesData, required=False, help="As the CalcJob's.")
        for label in _RESTART_CODES:
            del spec.exit_codes[label]
        add_exit_codes(spec, *_RESTART_CODES, "ERROR_BLOCK_CANNOT_SPLIT", "ERROR_WORKER_RECORD_FAILED",
                       "ERROR_MERGE_FAILED")

    def setup(self):
        """The first job is the whole block."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(WorkerCalculation, "worker"))
        self.ctx.axis = _axis(self.ctx.inputs)
        self.ctx.block = block_rows(self.ctx.inputs)
        self.ctx.pending = []  # row ranges still to run after the current one
        self.ctx.parts = []  # (start, stop, output node) of the blocks done

    def inspect_process(self):
        """BaseRestartWorkChain's inspection; a finished block queues the next pending one."""
        exit_code = super().inspect_process()
        if exit_code is not None and exit_code.message and "{message}" in exit_code.message:
            exit_code = exit_code.format(message=describe_failure(self.ctx.children[-1]))
        if exit_code is not None or not self.ctx.is_finished:
            return exit_code
        node = self.ctx.children[-1]
        output = node.outputs.invariants if "invariants" in node.outputs else node.outputs.distances
        start, stop = self.ctx.block
        self.ctx.parts.append((start, stop, output))
        if self.ctx.pending:
            self.ctx.block = tuple(self.ctx.pending.pop(0))
            self.ctx.inputs = _with_rows(self.ctx.inputs, self.ctx.axis, self.ctx.block)
            self.ctx.is_finished = False
        return None

    @process_handler(priority=600, exit_codes=[WorkerCalculation.exit_codes.ERROR_WORKER_RECORD_FAILED])  # type: ignore[attr-defined]
    def handle_record_failed(self, node):
        """The worker failed on a record: the same record fails again; stop, naming it."""
        self.report(f"{describe_failure(node)}: not restarting (the same record would fail again)")
        return ProcessHandlerReport(True, EXIT.ERROR_WORKER_RECORD_FAILED.format(message=node.exit_message or ""))

    @process_handler(priority=500, exit_codes=_SPLIT_ON)
    def handle_too_big(self, node):
        """Out of walltime or memory: run the two halves of the block instead."""
        start, stop = self.ctx.block
        if self.ctx.axis is None or stop - start < 2:
            why = "a condensed block of one set is not split" if self.ctx.axis is None else f"row {start} alone"
            return ProcessHandlerReport(
                True, EXIT.ERROR_BLOCK_CANNOT_SPLIT.format(message=f"{describe_failure(node)}; {why}")
            )
        middle = (start + stop) // 2
        self.report(
            f"{describe_failure(node)}: splitting rows {start}:{stop} into {start}:{middle} and {middle}:{stop}"
        )
        self.ctx.pending.insert(0, (middle, stop))
        self.ctx.block = (start, middle)
        self.ctx.inputs = _with_rows(self.ctx.inputs, self.ctx.axis, self.ctx.block)
        return ProcessHandlerReport(False)

    def results(self):
        """The output of the one job, or the halves joined into the node one job makes."""
        parts = sorted(self.ctx.parts, key=lambda part: part[0])
        if len(parts) == 1:
            output = parts[0][2]
        elif isinstance(parts[0][2], InvariantsData):
            chunks = {f"chunk_{i:04d}": p[2] for i, p in enumerate(parts)}
            res, node = merge_invariants.run_get_node(**chunks, metadata={"call_link_label": "merge_halves"})
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_MERGE_FAILED.format(message=describe_failure(node))
            output = res["invariants"]
        else:
            task = self.ctx.inputs["task"].get_dict()
            other = self.ctx.inputs.get("other")
            b_node = other if other is not None else self.ctx.inputs["invariants"]
            b_rows = (task.get("reference" if self.ctx.axis == "queries" else "b") or {}).get("rows") or (0, len(b_node))
            blocks = {block_label((s, e), (int(b_rows[0]), int(b_rows[1]))): out for s, e, out in parts}
            res, node = merge_blocks.run_get_node(**blocks, metadata={"call_link_label": "merge_halves"})
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_MERGE_FAILED.format(message=describe_failure(node))
            output = res["distances"]
        name = "invariants" if isinstance(output, InvariantsData) else "distances"
        self.out(name, output)
        self.report(f"block done in {len(self.ctx.children)} job(s)")
        return None
