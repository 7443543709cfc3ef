"""Where and how big the jobs of a distributed computation are: :class:`JobOptions`.

The same spec is the ``options`` input of the WorkChains that run the worker as CalcJobs
(``InvariantsWorkChain``, ``DistancesWorkChain``), the ``--max-memory`` / ``--walltime`` /
``--num-machines`` / ``--block-size`` options of the command line, and the ``jobs:`` key of
a study file. Pure (no AiiDA import).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from ._base import Name, PositiveFloat, PositiveInt, Spec, parse

__all__ = ["JobOptions", "parse_job_options", "plan_rows", "knn_blocks", "WORKER_BASE_MB"]

#: Resident memory of a worker process before it reads its arrays (Python, numpy, numba
#: and the compiled kernels), MiB; measured with ``peak_rss_mb`` of a one-record task.
WORKER_BASE_MB = 260.0
#: Copies of its input a job holds at its peak (memory map, packed arrays, working rows).
_COPIES = 3.0


class JobOptions(Spec):
    """Resources and size of each job.

    Attributes:
        max_memory_mb: the memory bound of one job, MiB. Blocks are sized so that the
            job's estimated peak stays below it; schedulers that enforce memory (SLURM)
            are given it (``--mem``). Default: no bound (blocks of ``block_size``).
        block_size: records per job (the queries of a kNN job, the rows of a distance
            strip, the records of an invariants job). Default 5000, lowered to fit
            ``max_memory_mb``.
        walltime: wall-clock limit of one job, seconds (``max_wallclock_seconds``).
        num_machines: machines per job (default 1; the worker runs on one).
        threads: threads of the worker's kernels (``n_jobs``) and cores asked per job
            (default 1: a job uses the cores it asks for, no more).
        queue_name, account, qos: passed to the scheduler as they are.
        max_iterations: jobs the restart WorkChain may run for one block, splits included.
        max_concurrent: jobs submitted at a time (the next wave starts when a wave is
            done). Default: all at once, which suits a scheduler with a queue (SLURM);
            ``core.direct`` starts every job it is given, so give it about the number of
            cores divided by ``threads``. Default 100: each job takes two daemon process
            slots (its WorkerJobWorkChain and its CalcJob) and a daemon worker has 200.
    """

    max_memory_mb: PositiveFloat | None = None
    block_size: PositiveInt = 5000
    walltime: PositiveInt | None = None
    num_machines: PositiveInt = 1
    threads: PositiveInt = 1
    queue_name: Name | None = None
    account: Name | None = None
    qos: Name | None = None
    max_iterations: PositiveInt = Field(default=10, le=1000)
    max_concurrent: PositiveInt = 100

    def metadata_options(self, scheduler: str | None = None) -> dict[str, Any]:
        """The CalcJob's ``metadata.options`` for a computer with this scheduler plugin."""
        resources: dict[str, Any] = {"num_machines": self.num_machines, "num_mpiprocs_per_machine": 1,
                                     "num_cores_per_mpiproc": self.threads}
        options: dict[str, Any] = {"resources": resources, "withmpi": False}
        if self.walltime:
            options["max_wallclock_seconds"] = self.walltime
        if self.max_memory_mb and scheduler != "core.direct":  # core.direct cannot limit memory
            options["max_memory_kb"] = int(math.ceil(self.max_memory_mb * 1024))
        if self.queue_name:
            options["queue_name"] = self.queue_name
        if self.account:
            options["account"] = self.account
        if self.qos:
            options["qos"] = self.qos
        return options

    def task_options(self) -> dict[str, Any]:
        """Keys of the worker's task set from these options."""
        out: dict[str, Any] = {"n_jobs": self.threads}
        if self.max_memory_mb:
            # the working rows of a brute-force distance block take at most a quarter
            out["memory_limit_mb"] = max(16.0, self.max_memory_mb / 4)
        return out


def parse_job_options(data: Any, where: str = "options") -> JobOptions:
    """:class:`JobOptions` from a mapping (``None``: the defaults)."""
    return parse(JobOptions, data or {}, where)


def _fit(n: int, size: int, mb_per_record: float, bound: float | None, fixed_mb: float = 0.0) -> int:
    """Records per block: ``size``, lowered so that base + fixed + copies * records fits
    the bound (at least 1)."""
    if bound is None:
        return max(1, min(n, size))
    room = bound - WORKER_BASE_MB - fixed_mb
    if room <= 0:
        return 0
    return max(0, min(n, size, int(room / (_COPIES * max(mb_per_record, 1e-9)))))


def plan_rows(n: int, size: int) -> list[tuple[int, int]]:
    """``0:n`` cut into consecutive ranges of at most ``size``, as equal as possible."""
    if n <= 0:
        return []
    count = max(1, math.ceil(n / max(1, size)))
    edges = [round(i * n / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1]) for i in range(count) if edges[i] < edges[i + 1]]


def knn_blocks(
    n_queries: int, n_reference: int, mb_per_record: float, options: JobOptions
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Query blocks and reference blocks of an exact kNN search under the memory bound.

    The whole reference set goes into every job when it fits in half the room; else the
    reference set is cut too (the partial lists are merged exactly afterwards).

    Raises:
        ValueError: not even one query and one reference record fit the bound.
    """
    bound = options.max_memory_mb
    whole_ref = _COPIES * mb_per_record * n_reference
    if bound is None or WORKER_BASE_MB + 2 * whole_ref <= bound:
        q = _fit(n_queries, options.block_size, mb_per_record, bound, whole_ref)
        if q >= 1:
            return plan_rows(n_queries, q), [(0, n_reference)]
    half = None if bound is None else WORKER_BASE_MB + (bound - WORKER_BASE_MB) / 2
    r = _fit(n_reference, n_reference, mb_per_record, half)
    q = _fit(n_queries, options.block_size, mb_per_record, half)
    if q < 1 or r < 1:
        raise ValueError(
            f"max_memory_mb={bound:g} leaves no room for a block: a worker needs about {WORKER_BASE_MB:g} MiB "
            f"plus {_COPIES * mb_per_record:.3g} MiB per record"
        )
    return plan_rows(n_queries, q), plan_rows(n_reference, r)
