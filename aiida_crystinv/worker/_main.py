"""The worker's entry point: ``crystinv-worker FOLDER [FOLDER ...]`` /
``python -m aiida_crystinv.worker FOLDER``.

:func:`run` does one task and always ends with a complete ``result.json`` (or, when the
process is killed, with none: a stale one is deleted first and the new one is written
last, atomically). :func:`main` is the command line around it: one line on stdout per
folder that succeeded, one line on stderr per folder that did not, never a traceback (the
traceback is in ``result.json``). The heavy imports (numba kernels, pymatgen) happen after
the stale result is gone, inside the timed ``parse`` phase; several folders given to one
process pay them once.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import socket
import sys
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from ._files import OUTPUT_DIR, RESULT_FILE, SCHEMA_VERSION

__all__ = ["main", "run", "EXIT_OK", "EXIT_INTERNAL", "EXIT_BAD_TASK", "EXIT_COMPUTATION", "EXIT_OUT_OF_MEMORY", "EXIT_CODES"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_TASK = 2
EXIT_COMPUTATION = 3
EXIT_OUT_OF_MEMORY = 4

#: exit code -> (result.json ``error.kind``, meaning)
EXIT_CODES: dict[int, tuple[str, str]] = {
    EXIT_OK: ("", "success: every output and result.json written"),
    EXIT_INTERNAL: ("internal", "unexpected error in the worker (a bug): the traceback is in result.json"),
    EXIT_BAD_TASK: ("bad_task", "bad task folder: task.json or an input .npy file is missing, invalid or inconsistent"),
    EXIT_COMPUTATION: ("computation", "the computation failed on valid input; result.json names the record"),
    EXIT_OUT_OF_MEMORY: ("out_of_memory", "the worker ran out of memory (MemoryError): give the job more memory or a smaller block"),
}



def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB.

    On Linux ``VmHWM`` of ``/proc/self/status``: ``getrusage``'s ``ru_maxrss`` survives
    ``exec``, so a worker started directly by a large process would report that process's
    peak. Elsewhere ``getrusage``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 2**10, 1)
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10), 1)


def _version() -> str:
    from .. import __version__

    return __version__


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.mark = self.start
        self.timings: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[phase] = round(self.timings.get(phase, 0.0) + now - self.mark, 6)
        self.mark = now

    def total(self) -> dict[str, float]:
        return {**self.timings, "total": round(time.perf_counter() - self.start, 6)}


def run(folder: str | Path) -> tuple[int, dict[str, Any]]:
    """Do the task of ``folder`` and write ``folder/result.json``; returns ``(exit_code, result)``.

    Never raises for a bad task or a failed computation (those are exit codes 2 and 3,
    with the message and traceback in the result); ``KeyboardInterrupt`` and
    ``SystemExit`` propagate and leave no ``result.json``.
    """
    folder = Path(folder)
    clock = _Clock()
    started = _now()
    result_path = folder / RESULT_FILE
    try:
        result_path.unlink()
    except FileNotFoundError:
        pass
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "status": "error",
        "exit_code": EXIT_INTERNAL,
        "task": None,
        "message": "",
        "error": None,
        "descriptor": None,
        "metric": None,
        "n_inputs": 0,
        "n_outputs": 0,
        "outputs": {},
        "errors": [],
        "skipped_ids": [],
        "stats": {},
    }
    code = EXIT_INTERNAL
    phase = "parse"
    threads = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            from ._files import BadTaskError, ComputationError, write_npy_atomic
            from .schema import load_task

            try:
                task = load_task(folder)
                result["task"] = task.task
                result["descriptor"] = task.spec.normalised()
                if hasattr(task, "metric_spec"):
                    result["metric"] = task.metric_spec.normalised()  # type: ignore[union-attr]
                if task.n_jobs is not None:
                    import numba

                    threads = numba.get_num_threads()
                    numba.set_num_threads(max(1, min(task.n_jobs, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
                from .tasks import compute, read_inputs

                clock.lap("parse")
                phase = "read"
                inputs = read_inputs(task, folder)
                clock.lap("read")
                phase = "compute"
                output = compute(task, inputs)
                del inputs
                clock.lap("compute")
                phase = "write"
                out_dir = folder / OUTPUT_DIR
                out_dir.mkdir(exist_ok=True)
                outputs = {}
                for name, array in output.arrays.items():
                    write_npy_atomic(out_dir / f"{name}.npy", array)
                    outputs[f"{name}.npy"] = {"shape": [int(s) for s in array.shape], "dtype": array.dtype.str}
                clock.lap("write")
                result.update(
                    status="ok",
                    message=output.message,
                    n_inputs=output.n_inputs,
                    n_outputs=output.n_outputs,
                    outputs=outputs,
                    errors=output.errors,
                    skipped_ids=[e["id"] for e in output.errors],
                    stats=output.stats,
                )
                code = EXIT_OK
            except Exception as exc:  # noqa: BLE001 - classified, written to result.json, never re-raised
                code, result["message"] = _classify(exc, phase, BadTaskError, ComputationError)
                if isinstance(exc, ComputationError):
                    result["errors"] = exc.errors
                tb = None if isinstance(exc, BadTaskError) else traceback.format_exc()
                result["error"] = {"kind": EXIT_CODES[code][0], "phase": phase, "traceback": tb}
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. the package cannot be imported on this computer
            code = EXIT_INTERNAL
            result["message"] = _one_line(f"{type(exc).__name__}: {exc}")
            result["error"] = {"kind": "internal", "phase": phase, "traceback": traceback.format_exc()}
    if threads is not None:  # the next folder of this process starts from the default
        import numba

        numba.set_num_threads(threads)
    if code != EXIT_OK:
        clock.lap(phase)
    seen = []
    for w in caught:
        text = _one_line(f"{w.category.__name__}: {w.message}")
        if text not in seen:
            seen.append(text)
    result["status"] = "ok" if code == EXIT_OK else "error"
    result["exit_code"] = code
    result["warnings"] = seen[:20]
    result["timings"] = clock.total()
    result["peak_rss_mb"] = peak_rss_mb()
    try:
        result["version"] = _version()
    except Exception:  # noqa: BLE001 - pragma: no cover
        result["version"] = None
    result["python"] = platform.python_version()
    result["numpy"] = _numpy_version()
    result["host"] = socket.gethostname()
    result["pid"] = os.getpid()
    result["started"] = started
    result["finished"] = _now()
    from ._files import write_json_atomic

    write_json_atomic(result_path, result)
    return code, result


def _classify(exc: Exception, phase: str, bad_task: type, computation: type) -> tuple[int, str]:
    """``(exit code, one-line message)`` of an exception raised in ``phase``."""
    if isinstance(exc, bad_task):
        return EXIT_BAD_TASK, _one_line(str(exc))
    if isinstance(exc, computation):
        return EXIT_COMPUTATION, _one_line(str(exc))
    if isinstance(exc, MemoryError):
        return EXIT_OUT_OF_MEMORY, f"out of memory in the {phase} phase (peak RSS {peak_rss_mb()} MiB)"
    message = _one_line(f"{type(exc).__name__} in the {phase} phase: {exc}")
    if phase in ("parse", "read") and isinstance(exc, (OSError, ValueError)):
        return EXIT_BAD_TASK, message  # an unreadable input is a bad task folder
    if phase == "compute":
        return EXIT_COMPUTATION, message
    return EXIT_INTERNAL, message


def _numpy_version() -> str | None:
    module = sys.modules.get("numpy")
    return getattr(module, "__version__", None)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_TASK, f"crystinv-worker: error {EXIT_BAD_TASK} (bad command line): {_one_line(message)}\n")


def _report(folder: Path, prefix: str, quiet: bool) -> int:
    """Run one folder and print its line; returns its exit code."""
    if not folder.is_dir():
        sys.stderr.write(f"crystinv-worker: {prefix}error {EXIT_BAD_TASK} (bad task): {folder} is not a folder\n")
        return EXIT_BAD_TASK
    try:
        code, result = run(folder)
    except OSError as exc:  # result.json could not be written (read-only or full disk)
        sys.stderr.write(f"crystinv-worker: {prefix}error {EXIT_INTERNAL} (internal): cannot write {RESULT_FILE}: {_one_line(str(exc))}\n")
        return EXIT_INTERNAL
    if code == EXIT_OK:
        if not quiet:
            sys.stdout.write(
                f"crystinv-worker: {prefix}ok ({result['timings']['total']:.2f} s, peak RSS "
                f"{result['peak_rss_mb']:.0f} MiB): {result['message']}\n"
            )
    else:
        kind = EXIT_CODES[code][0].replace("_", " ")
        sys.stderr.write(f"crystinv-worker: {prefix}error {code} ({kind}): {result['message']}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``crystinv-worker [FOLDER ...] [--quiet]``; returns the exit code.

    Several folders run one after the other in one process (the ~1 s import of the
    numerical layer is paid once); the exit code is then that of the first folder that
    failed (0 when all succeeded), and each line starts with its folder.
    """
    parser = _Parser(
        prog="crystinv-worker",
        description="Run the aiida-crystinv task staged in each FOLDER (task.json + .npy inputs); "
        "writes FOLDER/out/*.npy and, last, FOLDER/result.json. Exit codes: 0 ok, 1 internal error, "
        "2 bad task folder, 3 computation error, 4 out of memory.",
    )
    parser.add_argument("folders", nargs="*", metavar="FOLDER", help="task folder(s) (default: the current directory)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    parser.add_argument("--version", action="version", version=f"crystinv-worker (aiida-crystinv {_version()})")
    args = parser.parse_args(argv)
    folders = [Path(f) for f in (args.folders or ["."])]
    first = EXIT_OK
    for folder in folders:
        code = _report(folder, f"{folder}: " if len(folders) > 1 else "", args.quiet)
        if first == EXIT_OK:
            first = code
    return first
