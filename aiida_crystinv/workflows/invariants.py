"""``InvariantsWorkChain``: invariants of a large dataset in parallel chunks.

The dataset is split into row ranges of ``chunk_size`` records. Each range is computed by
an :class:`InvariantsChunkWorkChain` (a submittable wrapper around the
:func:`~aiida_crystinv.calculations.functions.compute_invariants` calcfunction, which
reads only its rows of the dataset), submitted as a sub-process so that the daemon
workers share them; :func:`~aiida_crystinv.calculations.functions.merge_invariants` then
joins the chunks, in dataset order, into one ``InvariantsData``.

Example::

    from aiida.engine import run, submit
    from aiida_crystinv.workflows import InvariantsWorkChain

    results = run(InvariantsWorkChain, dataset=dataset, descriptor=orm.Dict({'name': 'pdd', 'k': 100}),
                  chunk_size=orm.Int(500))
    results['invariants'].get_pdds()
"""

from __future__ import annotations

from typing import Any

from aiida import orm
from aiida.engine import WorkChain, append_, if_, while_

from ..calculations.functions import compute_invariants, merge_invariants
from ..data import CrystalDatasetData, InvariantsData
from ..calculations.ports import check_invariant, check_positive_int, spec_of
from ..exit_codes import add_exit_codes, describe_failure
from ..specs import INVARIANTS
from ..specs.jobs import parse_job_options
from .distances import add_job_ports, job_inputs, options_need_code
from .jobs import WorkerJobWorkChain

__all__ = ["InvariantsWorkChain", "InvariantsChunkWorkChain", "launch_invariants", "DEFAULT_CHUNK_SIZE"]

#: Records per chunk when ``chunk_size`` is not given.
DEFAULT_CHUNK_SIZE = 1000


def validate_invariants_inputs(inputs: Any, ctx: Any = None) -> str | None:
    """``options`` come with a ``code``."""
    if ctx is not None and any(name not in ctx for name in ("options", "code")):
        return None
    return options_need_code(inputs)


class InvariantsChunkWorkChain(WorkChain):
    """Invariants of rows ``chunk['start']:chunk['stop']`` of a dataset (one sub-process)."""

    @classmethod
    def define(cls, spec):
        """Inputs, outline, outputs and exit codes."""
        super().define(spec)
        spec.input("dataset", valid_type=CrystalDatasetData, help="The dataset.")
        spec.input("descriptor", valid_type=(orm.Dict, orm.Str), validator=check_invariant,
                   help="{'name': ..., **parameters}.")
        spec.input("chunk", valid_type=orm.Dict, help="{'start': int, 'stop': int}: the rows of this chunk.")
        spec.outline(cls.compute)
        spec.output("invariants", valid_type=InvariantsData, help="Invariants of the chunk's rows.")
        add_exit_codes(spec, "ERROR_CHUNK_FAILED")

    def compute(self):
        """Run ``compute_invariants`` on the chunk."""
        results, node = compute_invariants.run_get_node(
            dataset=self.inputs.dataset,
            descriptor=self.inputs.descriptor,
            chunk=self.inputs.chunk,
            metadata={"call_link_label": "compute_invariants"},
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_CHUNK_FAILED.format(message=describe_failure(node))
        self.out("invariants", results["invariants"])
        return None


class InvariantsWorkChain(WorkChain):
    """Invariants of every record of a dataset, computed in parallel chunks and merged.

    Inputs: ``dataset`` (CrystalDatasetData), ``descriptor`` (Dict ``{'name', **params}``
    or Str name), ``chunk_size`` (Int, default 1000), optional ``code`` (the worker on a
    computer) and ``options`` (``JobOptions``). Output: ``invariants``.

    Without a code, a dataset of at most ``chunk_size`` records runs one
    ``compute_invariants`` directly; larger ones submit one :class:`InvariantsChunkWorkChain`
    per chunk (so they spread over the daemon workers) and merge them with
    ``merge_invariants``. With a code, every chunk is a
    :class:`~aiida_crystinv.workflows.jobs.WorkerJobWorkChain` (a ``WorkerCalculation`` on
    the code's computer, restarted and split on walltime or memory failures); the result is
    the node the path without a code makes.
    """

    @classmethod
    def define(cls, spec):
        """Inputs, outline, outputs and exit codes."""
        super().define(spec)
        spec.input("dataset", valid_type=CrystalDatasetData, help="The structures.")
        spec.input(
            "descriptor",
            valid_type=(orm.Dict, orm.Str),
            validator=check_invariant,
            help=f"{{'name': one of {', '.join(INVARIANTS)}, **parameters}}; defaults fill the rest.",
        )
        spec.input(
            "chunk_size",
            valid_type=orm.Int,
            validator=check_positive_int,
            default=lambda: orm.Int(DEFAULT_CHUNK_SIZE),
            help="Records per parallel sub-process.",
        )
        add_job_ports(spec, "chunk")
        spec.inputs.validator = validate_invariants_inputs
        spec.outline(
            cls.setup,
            if_(cls.is_single_chunk)(cls.run_single).else_(
                while_(cls.has_chunks_to_submit)(cls.submit_chunks, cls.inspect_chunks), cls.merge
            ),
        )
        spec.output("invariants", valid_type=InvariantsData, help="Invariants of every record, in dataset order.")
        add_exit_codes(spec, "ERROR_CHUNK_FAILED", "ERROR_MERGE_FAILED")

    def setup(self):
        """Plan the chunks (the descriptor and chunk size were validated at the ports)."""
        size = self.inputs.chunk_size.value
        n = len(self.inputs.dataset)
        self.ctx.chunks = [(start, min(n, start + size)) for start in range(0, n, size)]
        self.ctx.submitted = 0
        self.ctx.chunk_processes = []
        return None

    def has_chunks_to_submit(self) -> bool:
        return self.ctx.submitted < len(self.ctx.chunks)

    def is_single_chunk(self) -> bool:
        """One chunk and no code: one calcfunction here."""
        return len(self.ctx.chunks) == 1 and "code" not in self.inputs

    def run_single(self):
        """Small dataset: one calcfunction, no sub-process."""
        results, node = compute_invariants.run_get_node(
            dataset=self.inputs.dataset,
            descriptor=self.inputs.descriptor,
            metadata={"call_link_label": "compute_invariants"},
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_CHUNK_FAILED.format(message=describe_failure(node))
        self.out("invariants", results["invariants"])
        return None

    def submit_chunks(self):
        """Submit one sub-process per chunk: a job on the code's computer (``max_concurrent``
        at a time), or a chunk here (all at once)."""
        if "code" in self.inputs:
            options = parse_job_options(self.inputs.options.get_dict() if "options" in self.inputs else None)
            task = {"task": "invariants", "descriptor": spec_of(self.inputs.descriptor)}
            first = self.ctx.submitted
            last = min(len(self.ctx.chunks), first + (options.max_concurrent or len(self.ctx.chunks)))
            self.ctx.submitted = last
            for number in range(first, last):
                start, stop = self.ctx.chunks[number]
                rows = {} if len(self.ctx.chunks) == 1 else {"rows": orm.Dict({"start": start, "stop": stop})}
                inputs = job_inputs(self.inputs.code, options, task, f"rows {start}:{stop}", dataset=self.inputs.dataset, **rows)
                inputs["metadata"]["call_link_label"] = f"chunk_{number:04d}"
                self.to_context(chunk_processes=append_(self.submit(WorkerJobWorkChain, **inputs)))
            left = len(self.ctx.chunks) - last
            self.report(f"submitted {last - first} job(s) of up to {self.inputs.chunk_size.value} records "
                        f"to {self.inputs.code.full_label}" + (f", {left} to go" if left else ""))
            return
        self.ctx.submitted = len(self.ctx.chunks)
        for number, (start, stop) in enumerate(self.ctx.chunks):
            future = self.submit(
                InvariantsChunkWorkChain,
                dataset=self.inputs.dataset,
                descriptor=self.inputs.descriptor,
                chunk=orm.Dict({"start": start, "stop": stop}),
                metadata={"call_link_label": f"chunk_{number:04d}", "label": f"rows {start}:{stop}"},
            )
            self.to_context(chunk_processes=append_(future))
        self.report(f"submitted {len(self.ctx.chunks)} chunks of up to {self.inputs.chunk_size.value} records")

    def inspect_chunks(self):
        """Every chunk must have finished successfully."""
        for proc in self.ctx.chunk_processes:
            if not proc.is_finished_ok:
                return self.exit_codes.ERROR_CHUNK_FAILED.format(
                    message=f"{proc.label}: {describe_failure(proc)}"
                )
        return None

    def merge(self):
        """Join the chunks in dataset order."""
        if len(self.ctx.chunk_processes) == 1:
            self.out("invariants", self.ctx.chunk_processes[0].outputs.invariants)
            return None
        chunks = {f"chunk_{i:04d}": proc.outputs.invariants for i, proc in enumerate(self.ctx.chunk_processes)}
        results, node = merge_invariants.run_get_node(**chunks, metadata={"call_link_label": "merge_invariants"})
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_MERGE_FAILED.format(message=describe_failure(node))
        self.out("invariants", results["invariants"])
        return None


def launch_invariants(
    dataset: CrystalDatasetData,
    descriptor: dict[str, Any] | str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    submit: bool = False,
):
    """Run (or submit to the daemon) an :class:`InvariantsWorkChain`.

    Returns:
        ``(invariants, process_node)`` when run; ``(None, process_node)`` when submitted.
    """
    from aiida.engine import submit as submit_process

    from .._runner import run_get_node_promptly

    spec = {"name": descriptor} if isinstance(descriptor, str) else dict(descriptor)
    inputs = {"dataset": dataset, "descriptor": orm.Dict(spec), "chunk_size": orm.Int(chunk_size)}
    if submit:
        return None, submit_process(InvariantsWorkChain, **inputs)
    results, node = run_get_node_promptly(InvariantsWorkChain, **inputs)
    return results.get("invariants"), node
