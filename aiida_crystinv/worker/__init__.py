"""The worker program: one task of the pure layer, read from a folder, run anywhere.

``crystinv-worker FOLDER [FOLDER ...]`` (or ``python -m aiida_crystinv.worker FOLDER``) reads
``FOLDER/task.json`` and the ``.npy`` inputs staged beside it, computes with
:mod:`aiida_crystinv.invariants` / :mod:`aiida_crystinv.distances`, and writes
``FOLDER/out/*.npy`` and, last, ``FOLDER/result.json`` (status, timings per phase, peak
RSS, package version, per-record errors). It is what a CalcJob runs on a remote computer
through its scheduler, so it imports nothing from AiiDA: the remote side needs only the
package's numeric dependencies. Several folders given at once run one after the other in
one process (the ~1 s import of the numerical layer is paid once).

Tasks (``task`` in ``task.json``):

* ``invariants`` -- the invariants of a block of records staged in a dataset node's
  array layout; ``on_error: skip`` leaves failing records out and names them;
* ``distances`` -- a block ``cdist(A, B)`` of a distance matrix, any metric;
* ``knn`` -- the exact k nearest neighbours of a block of queries among a (block of a)
  reference set; :func:`merge_topk` joins the partial lists of reference blocks.

Exit codes: 0 success, 1 internal error, 2 bad task folder, 3 computation error (the
record is named), 4 out of memory. The folder format is documented in ``docs/worker.md``.

Python helpers (pure): :func:`run` (the task in-process), :func:`write_records`,
:func:`write_invariants`, :func:`write_task`, :func:`read_result`, :func:`read_outputs`,
:func:`pack_records`, :func:`crystals_from_arrays`, :func:`parse_task`.
"""

from __future__ import annotations

from typing import Any

from ._main import (
    EXIT_BAD_TASK,
    EXIT_CODES,
    EXIT_COMPUTATION,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_OUT_OF_MEMORY,
    main,
    run,
)
from ._files import BadTaskError, ComputationError
from .topk import ABSENT, merge_topk

__all__ = [
    "main",
    "run",
    "merge_topk",
    "ABSENT",
    "EXIT_OK",
    "EXIT_INTERNAL",
    "EXIT_BAD_TASK",
    "EXIT_COMPUTATION",
    "EXIT_OUT_OF_MEMORY",
    "EXIT_CODES",
    "BadTaskError",
    "ComputationError",
    "parse_task",
    "write_records",
    "write_invariants",
    "write_task",
    "read_result",
    "read_outputs",
    "pack_records",
    "crystals_from_arrays",
]

_LAZY = {
    "parse_task": "schema",
    "write_records": "records",
    "write_invariants": "records",
    "write_task": "records",
    "read_result": "records",
    "read_outputs": "records",
    "pack_records": "records",
    "crystals_from_arrays": "records",
}


def __getattr__(name: str) -> Any:
    """The helpers that need pydantic and the numerical layer, imported on first use (the
    command line deletes a stale result.json before those imports)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
