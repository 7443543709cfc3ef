"""Reading and writing the files of a worker folder: checked ``.npy`` inputs, atomic outputs.

Inputs are read with ``allow_pickle=False`` after their header was checked (dtype, number
of dimensions, no object dtype), so a pickled object array or a file of the wrong type is
refused with a message naming the file before any data is loaded. A selection of rows
(``rows: [start, stop]`` in ``task.json``) is read through a memory map: only those rows
are paged in.

Outputs are written to a temporary name in the same folder and moved into place with
``os.replace`` (atomic on POSIX), so a file either has its complete content or does not
exist; ``result.json`` is written last.

Pure: numpy only, no AiiDA import.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "SCHEMA_VERSION",
    "TASK_FILE",
    "RESULT_FILE",
    "OUTPUT_DIR",
    "BadTaskError",
    "ComputationError",
    "npy_header",
    "load_npy",
    "write_npy_atomic",
    "write_json_atomic",
    "as_str_array",
]

#: The version of the task and result formats this worker reads and writes.
SCHEMA_VERSION = 1
#: File names inside the task folder.
TASK_FILE = "task.json"
RESULT_FILE = "result.json"
#: Folder (inside the task folder) that receives the ``.npy`` outputs.
OUTPUT_DIR = "out"


class BadTaskError(Exception):
    """The task folder cannot be used: ``task.json`` or an input file is missing, invalid
    or inconsistent. The message is one line naming the file (exit code 2)."""


class ComputationError(Exception):
    """The computation failed on valid input (exit code 3).

    Attributes:
        errors: per-record errors, ``{'index', 'id', 'type', 'message'}`` dicts.
    """

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]] = ()):
        super().__init__(message)
        self.errors = [dict(e) for e in errors]


def as_str_array(values: Sequence[Any]) -> np.ndarray:
    """A fixed-width unicode array (never an object array) from strings; the same
    encoding as the dataset nodes' ``ids.npy``."""
    values = [str(v) for v in values]
    width = max([len(v) for v in values], default=1) or 1
    return np.array(values, dtype=f"<U{width}")


def _rel(folder: Path, path: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def npy_header(path: Path, name: str | None = None) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of a ``.npy`` file, read from its header only.

    Raises:
        BadTaskError: missing or unreadable file, not a ``.npy`` file, an object dtype.
    """
    name = name or str(path)
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise BadTaskError(f"{name}: unsupported .npy format version {version[0]}.{version[1]}")
    except FileNotFoundError:
        raise BadTaskError(f"{name}: missing input file") from None
    except IsADirectoryError:
        raise BadTaskError(f"{name}: is a directory, expected a .npy file") from None
    except BadTaskError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadTaskError(f"{name}: not a readable .npy file ({_one_line(exc)})") from None
    if dtype.hasobject:
        raise BadTaskError(f"{name}: object array (dtype {dtype.str}) refused: reading it would need pickle")
    return tuple(int(s) for s in shape), bool(fortran), dtype


def _dtype_ok(dtype: np.dtype, expected: str) -> bool:
    if expected == "unicode":
        return dtype.kind == "U"
    return dtype == np.dtype(expected)


def load_npy(
    folder: Path,
    relpath: str,
    dtype: str,
    ndim: int,
    rows: tuple[int, int] | None = None,
    trailing: Sequence[int | None] | None = None,
) -> np.ndarray:
    """An input array of the worker folder, checked before it is loaded.

    Args:
        folder: the task folder.
        relpath: path of the file inside ``folder`` (named in every message).
        dtype: the required dtype (``'float64'``, ``'int64'``, ``'int16'``, ``'float32'``,
            ``'int32'``) or ``'unicode'`` (any fixed-width ``<U`` string dtype).
        ndim: the required number of dimensions.
        rows: ``(start, stop)``: only these rows (axis 0), read through a memory map.
        trailing: required sizes of axes 1.. (``None`` entries: any size).

    Returns:
        A C-contiguous array you own (a copy, never a view of the file).

    Raises:
        BadTaskError: missing file, wrong dtype or shape, object dtype, rows out of range,
            truncated file.
    """
    path = folder / relpath
    shape, fortran, actual = npy_header(path, relpath)
    if not _dtype_ok(actual, dtype):
        want = "a fixed-width unicode string dtype (<U)" if dtype == "unicode" else np.dtype(dtype).str
        raise BadTaskError(f"{relpath}: dtype {actual.str} ({actual.name}), expected {want}")
    if len(shape) != ndim:
        raise BadTaskError(f"{relpath}: {len(shape)}-D array of shape {shape}, expected {ndim}-D")
    if trailing is not None:
        for axis, size in enumerate(trailing, start=1):
            if size is not None and shape[axis] != size:
                raise BadTaskError(f"{relpath}: shape {shape}, expected axis {axis} of size {size}")
    if rows is not None:
        start, stop = int(rows[0]), int(rows[1])
        if not 0 <= start <= stop <= shape[0]:
            raise BadTaskError(f"{relpath}: rows {start}:{stop} are outside the {shape[0]} rows of the file")
    try:
        if rows is None:
            with open(path, "rb") as handle:
                array = np.load(handle, allow_pickle=False)
        else:
            mapped = np.load(path, mmap_mode="r", allow_pickle=False)
            array = np.array(mapped[start:stop])
            del mapped
    except (OSError, ValueError, EOFError) as exc:
        raise BadTaskError(f"{relpath}: cannot be read ({_one_line(exc)})") from None
    return np.ascontiguousarray(array)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as ``path`` (``.npy``, no pickle): temp file, fsync, ``os.replace``."""
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise TypeError(f"{path.name}: object arrays cannot be written (they would need pickle)")
    tmp = _temp_name(path)
    try:
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` (a JSON object) to ``path``: serialised first, then temp file, fsync,
    ``os.replace``."""
    # one line per top-level key: short enough to read, trivial to diff
    lines = [f" {json.dumps(str(k))}: {json.dumps(v, allow_nan=False)}" for k, v in data.items()]
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    tmp = _temp_name(path)
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
