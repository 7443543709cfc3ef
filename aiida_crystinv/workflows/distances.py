"""``DistancesWorkChain``: a distance matrix or the exact k-nearest-neighbour graph of a set
of invariants, in this process or as jobs on any AiiDA computer.

Without ``code`` it runs today's calcfunction (``compute_distances`` /
``compute_neighbours``) here. With ``code`` (the worker's ``InstalledCode`` on a computer,
see ``crystinv setup-worker``) the work is cut into blocks, each block one
:class:`~aiida_crystinv.workflows.jobs.WorkerJobWorkChain` (a ``WorkerCalculation``
restarted and split on walltime or memory failures) submitted through that computer's
scheduler, and one :func:`~aiida_crystinv.calculations.blocks.merge_blocks` step joins them
into the node the calcfunction makes: same layout, identifiers, attributes and arrays.

* kNN (``k`` given): blocks of queries; each job searches the whole reference set when it
  fits the memory bound, else a block of it (partial top-k lists, merged exactly, ties
  included).
* matrix: strips of rows, each against the rows from its own first row to the end (one set:
  the condensed matrix is read from the strips) or against all of ``other`` (dense).

Block sizes follow ``options`` (:class:`~aiida_crystinv.specs.jobs.JobOptions`): at most
``block_size`` records per job, fewer when ``max_memory_mb`` asks for it.

Example::

    from aiida.engine import submit
    builder = DistancesWorkChain.get_builder()
    builder.invariants = pdd_invariants
    builder.k = orm.Int(10)
    builder.code = orm.load_code('crystinv-worker@slurm')
    builder.options = orm.Dict({'max_memory_mb': 2000, 'walltime': 3600})
    submit(builder)
"""

from __future__ import annotations

from typing import Any

from aiida import orm
from aiida.engine import WorkChain, append_, if_, while_

from ..calculations.blocks import block_label, merge_blocks, parse_block_label
from ..calculations.functions import compute_distances, compute_neighbours
from ..calculations.ports import check_metric, check_positive_int, spec_of
from ..data import InvariantsData
from ..exit_codes import add_exit_codes, describe_failure
from ..specs import SpecError, metric_for, parse_invariant
from ..specs.jobs import JobOptions, knn_blocks, parse_job_options, plan_rows
from .jobs import WorkerJobWorkChain

__all__ = ["DistancesWorkChain", "check_job_options", "mb_per_record", "job_inputs"]


def check_job_options(value: Any, _ctx: Any = None) -> str | None:
    """The ``options`` port: a :class:`JobOptions` mapping."""
    if value is None:
        return None
    try:
        parse_job_options(value.get_dict())
    except SpecError as exc:
        return str(exc)
    return None


def mb_per_record(node: Any) -> float:
    """Stored array bytes per record of an ``InvariantsData`` / ``CrystalDatasetData``, MiB."""
    import numpy as np

    total = 0
    for name in node.get_array_names():
        total += int(np.prod(node._array_shape(name), dtype=np.int64)) * 8
    return total / max(1, len(node)) / 2**20


def job_inputs(code: orm.AbstractCode, options: JobOptions, task: dict[str, Any], label: str, **data: Any) -> dict[str, Any]:
    """Inputs of a :class:`WorkerJobWorkChain` running ``task`` on ``code``'s computer."""
    scheduler = code.computer.scheduler_type if code.computer is not None else None
    return {
        "worker": {
            "code": code,
            "task": orm.Dict({**options.task_options(), **task}),
            **data,
            "metadata": {"options": options.metadata_options(scheduler), "label": label},
        },
        "max_iterations": orm.Int(options.max_iterations),
        "metadata": {"label": label},
    }


def validate_distances_inputs(inputs: Any, ctx: Any = None) -> str | None:
    """The metric must apply, ``k`` must be below the records that can be neighbours, the
    invariants comparable, and ``options`` come with a ``code``."""
    if ctx is not None and any(name not in ctx for name in ("invariants", "k", "code")):
        return None
    invariants, other = inputs.get("invariants"), inputs.get("other")
    if invariants is None:
        return None
    try:
        metric_for(spec_of(inputs.get("metric")), parse_invariant({"name": invariants.descriptor, **invariants.parameters}))
    except SpecError as exc:
        return str(exc)
    if other is not None:
        reason = invariants.incompatibility(other)
        if reason:
            return f"other: {reason}"
    k = inputs.get("k")
    if k is not None:
        n_ref = len(other) if other is not None else len(invariants) - 1
        if k.value > n_ref:
            return f"k={k.value} but only {n_ref} records can be neighbours"
    return options_need_code(inputs)


def add_job_ports(spec: Any, unit: str) -> None:
    """The optional ``code`` and ``options`` ports of a WorkChain that can run its ``unit``s
    (blocks, chunks) as worker jobs."""
    spec.input("code", valid_type=orm.AbstractCode, required=False,
               help=f"The worker (crystinv-worker) on a computer: every {unit} a job there. Default: here.")
    spec.input("options", valid_type=orm.Dict, required=False, validator=check_job_options,
               help="Job options (JobOptions: max_memory_mb, block_size, walltime, threads, ...); only with a code.")


def options_need_code(inputs: Any) -> str | None:
    """``options`` without ``code`` is refused (the work would run here and ignore them)."""
    if "options" in inputs and "code" not in inputs:
        return "options: the job options need a code (the worker on a computer); without one the work runs here"
    return None


class DistancesWorkChain(WorkChain):
    """A distance matrix or exact kNN graph, here or as jobs on a computer (see the module
    docstring)."""

    @classmethod
    def define(cls, spec):
        """Inputs, outline, outputs and exit codes."""
        super().define(spec)
        spec.input("invariants", valid_type=InvariantsData, help="The rows (the queries of a kNN graph).")
        spec.input("other", valid_type=InvariantsData, required=False,
                   help="The columns (the reference set of a kNN graph); default: the rows themselves.")
        spec.input("metric", valid_type=(orm.Dict, orm.Str), required=False, validator=check_metric,
                   help="{'name': ..., **parameters}; default: the descriptor's.")
        spec.input("k", valid_type=orm.Int, required=False, validator=check_positive_int,
                   help="Neighbours per record: the kNN graph; without k, the whole matrix.")
        add_job_ports(spec, "block")
        spec.inputs.validator = validate_distances_inputs
        spec.outline(
            cls.setup,
            if_(cls.has_code)(
                cls.plan_blocks, while_(cls.has_blocks_to_submit)(cls.submit_blocks, cls.inspect_blocks), cls.merge
            ).else_(cls.run_here),
        )
        spec.output("distances", help="The matrix (condensed or dense) or the kNN graph.")
        add_exit_codes(spec, "ERROR_DISTANCES_STEP_FAILED", "ERROR_CHUNK_FAILED", "ERROR_MERGE_FAILED",
                       "ERROR_INVALID_OPTIONS")

    def setup(self):
        self.ctx.options = parse_job_options(self.inputs.options.get_dict() if "options" in self.inputs else None)

    def has_code(self) -> bool:
        return "code" in self.inputs

    def _metric(self) -> dict[str, Any]:
        return {"metric": self.inputs.metric} if "metric" in self.inputs else {}

    def run_here(self):
        """No code: the calcfunction, in this process."""
        data = {"invariants": self.inputs.invariants, **self._metric()}
        if "other" in self.inputs:
            data["other"] = self.inputs.other
        if "k" in self.inputs:
            res, node = compute_neighbours.run_get_node(k=self.inputs.k, **data, metadata={"call_link_label": "compute_neighbours"})
        else:
            res, node = compute_distances.run_get_node(**data, metadata={"call_link_label": "compute_distances"})
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_DISTANCES_STEP_FAILED.format(message=describe_failure(node))
        self.out("distances", res["distances"])
        return None

    def _plan(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        rows = self.inputs.invariants
        other = self.inputs.other if "other" in self.inputs else None
        cols = other if other is not None else rows
        options: JobOptions = self.ctx.options
        mb = max(mb_per_record(rows), mb_per_record(cols))
        if "k" in self.inputs:
            queries, refs = knn_blocks(len(rows), len(cols), mb, options)
            return [(q, r) for q in queries for r in refs]
        # a strip of rows holds its rows and the columns it meets: fit it in the bound
        size = options.block_size
        if options.max_memory_mb is not None:
            from ..specs.jobs import WORKER_BASE_MB

            room = options.max_memory_mb - WORKER_BASE_MB - 3 * mb * len(cols)
            size = max(1, min(size, int(room / (3 * mb)) if room > 0 else 1))
        strips = plan_rows(len(rows), size)
        if other is not None:
            return [(a, (0, len(cols))) for a in strips]
        return [(a, (a[0], len(rows))) for a in strips]

    def plan_blocks(self):
        """The blocks, from the sizes and the memory bound."""
        try:
            self.ctx.todo = [[list(a), list(b)] for a, b in self._plan()]
        except ValueError as exc:
            return self.exit_codes.ERROR_INVALID_OPTIONS.format(message=str(exc))
        self.ctx.labels = []
        self.ctx.waves = 0
        return None

    def has_blocks_to_submit(self) -> bool:
        return bool(self.ctx.todo)

    def submit_blocks(self):
        """One restartable job per block, ``max_concurrent`` at a time."""
        options: JobOptions = self.ctx.options
        count = options.max_concurrent or len(self.ctx.todo)
        blocks = [(tuple(a), tuple(b)) for a, b in self.ctx.todo[:count]]
        self.ctx.todo = self.ctx.todo[count:]
        rows = self.inputs.invariants
        other = self.inputs.other if "other" in self.inputs else None
        n_cols = len(other) if other is not None else len(rows)
        metric = spec_of(self.inputs.metric) if "metric" in self.inputs else None
        for a, b in blocks:
            if "k" in self.inputs:
                task: dict[str, Any] = {"task": "knn", "k": self.inputs.k.value, "queries": {"rows": list(a)}}
                if b != (0, n_cols):
                    task["reference"] = {"rows": list(b)}
            else:
                task = {"task": "distances", "a": {"rows": list(a)}, "b": {"rows": list(b)}}
            if metric is not None:
                task["metric"] = metric
            data = {"invariants": rows, **({"other": other} if other is not None else {})}
            label = block_label(a, b)
            inputs = job_inputs(self.inputs.code, self.ctx.options, task, f"rows {a[0]}:{a[1]} x {b[0]}:{b[1]}", **data)
            inputs["metadata"]["call_link_label"] = label
            self.to_context(blocks=append_(self.submit(WorkerJobWorkChain, **inputs)))
            self.ctx.labels.append(label)
        self.ctx.waves += 1
        left = f", {len(self.ctx.todo)} to go" if self.ctx.todo else ""
        self.report(f"submitted {len(blocks)} job(s) to {self.inputs.code.full_label}{left}")
        return None

    def inspect_blocks(self):
        for label, proc in zip(self.ctx.labels, self.ctx.blocks):
            if not proc.is_finished_ok:
                return self.exit_codes.ERROR_CHUNK_FAILED.format(message=f"{label}: {describe_failure(proc)}")
        return None

    def merge(self):
        """One node from the blocks, in the calcfunction's layout. kNN blocks of several
        reference blocks are merged per query block first, so that no merge step takes more
        inputs than there are blocks of one kind (a calcfunction's link checks grow with the
        square of its inputs)."""
        parts = {label: proc.outputs.distances for label, proc in zip(self.ctx.labels, self.ctx.blocks)}
        condensed = "k" not in self.inputs and "other" not in self.inputs
        groups: dict[tuple[int, int], dict[str, Any]] = {}
        for label, node in parts.items():
            groups.setdefault(parse_block_label(label)[0], {})[label] = node
        if "k" in self.inputs and any(len(group) > 1 for group in groups.values()):
            n_ref = len(self.inputs.other) if "other" in self.inputs else len(self.inputs.invariants)
            merged = {}
            for a, group in sorted(groups.items()):
                res, node = merge_blocks.run_get_node(**group, metadata={"call_link_label": f"merge_rows_{a[0]}_{a[1]}"})
                if not node.is_finished_ok:
                    return self.exit_codes.ERROR_MERGE_FAILED.format(message=describe_failure(node))
                merged[block_label(a, (0, n_ref))] = res["distances"]
            parts = merged
        res, node = merge_blocks.run_get_node(
            condensed=orm.Bool(condensed), **parts, metadata={"call_link_label": "merge_blocks"}
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_MERGE_FAILED.format(message=describe_failure(node))
        self.out("distances", res["distances"])
        return None
