"""Readers for structure files: multi-block CIF, folders of CIFs, CSV and JSON datasets.

All readers take the raw bytes of a file (gzip-compressed or not) and return a
:class:`~aiida_crystinv.sources.ReadResult`; a file that cannot be read at all (empty,
wrong format, missing columns) raises :class:`~aiida_crystinv.sources.SourceError` with
an actionable message. Bad *records* are not raised here: they are listed in
``ReadResult.failed`` and the ``on_error`` policy is applied by
:func:`~aiida_crystinv.sources.validate_records`.

Formats
-------
``cif``
    One or more ``data_`` blocks; each block is parsed on its own, so a malformed block
    in the middle of a file only affects that record. Identifiers are the block names
    (made unique with ``#2``, ``#3`` ... when repeated).
``csv``
    A header row, one record per row, a column of CIF text (``cif_column``, default
    ``cif``), an identifier column (``id_column``, default ``material_id`` or ``id`` when
    present, else the row number) and numeric target columns (``target_columns``; by
    default every other column holding a number in *any* row, except ``formula`` and an
    unnamed leading index column). A row whose value in a target column is text or empty
    is a bad record (``on_error``). The format of ``carbon24.csv.gz`` and ``perov5.csv.gz``.
``json``
    A list of objects, each with a pymatgen ``Structure.as_dict()`` under
    ``structure_key`` (default ``structure``), an identifier (``id_column``, default the
    first of ``mp_id``, ``material_id``, ``task_id``, ``id``) and numeric targets
    (default: every top-level field holding a JSON number in *any* record; a record whose
    value there is text, null or missing is a bad record). A list of bare structure dicts
    is accepted too. The format of ``mp_elasticity_binaries.json.gz``.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

from ._records import ReadResult, SourceError

__all__ = [
    "FORMATS",
    "KNOWN_UNITS",
    "check_bytes",
    "detect_format",
    "read_bytes",
    "read_path",
    "read_cif",
    "read_cif_folder",
    "read_csv",
    "read_json",
    "parse_cif_block",
]

from ._text import _DATA_LINE, FORMATS, KNOWN_UNITS, _checked_options, _decode, detect_format, gc_paused
from .cif import parse_cif_block, read_cif, read_cif_folder
from .tabular import _check_csv_header, _json_records, read_csv, read_json


def _prepare(content: Any, name: str, format: Any, options: dict[str, Any]) -> tuple[bytes, str, dict[str, Any]]:
    """``(content as bytes, format, checked options)``; see :func:`read_bytes`.

    Raises:
        SourceError: content that is not bytes, an unknown format or option, an empty file.
    """
    if format is not None and not isinstance(format, str):
        raise SourceError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if isinstance(content, str):
        content = content.encode("utf-8")
    if not isinstance(content, (bytes, bytearray, memoryview)):
        raise SourceError(f"{name}: expected the file content as bytes, got {type(content).__name__}")
    content = bytes(content)
    fmt = (format or detect_format(name)).lower()
    if fmt not in FORMATS:
        raise SourceError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    options = _checked_options({k: v for k, v in options.items() if v is not None})
    allowed = {
        "cif": set(),
        "csv": {"id_column", "cif_column", "target_columns", "units"},
        "json": {"id_column", "structure_key", "target_columns", "units"},
    }[fmt]
    unknown = set(options) - allowed
    if fmt == "cif":
        unknown -= {"units"}  # harmless: CIF has no targets
        options.pop("units", None)
    if unknown:
        raise SourceError(f"options {', '.join(sorted(unknown))} do not apply to format {fmt!r}")
    if not content or not content.strip():
        raise SourceError(f"{name}: the file is empty")
    return content, fmt, options


def check_bytes(content: bytes, name: str, format: str | None = None, **options: Any) -> str:
    """Check that a file is a dataset of its format, without reading its records; return
    the format.

    Everything :func:`read_bytes` would refuse about the *file* is found here: an unknown
    format or option, an empty, binary, wrongly encoded or corrupt (gzip) file, a CIF
    file without ``data_`` block, a CSV file without its header columns or records, JSON
    that is not a non-empty list of records. Bad *records* are not looked for (that is the
    reading itself). Costs one decompression and decoding, and for JSON one parse.
    Meant for callers that must refuse a file before anything is stored (the ``crystinv
    import`` command; a port validator).

    Raises:
        SourceError: the first problem, with the same message as :func:`read_bytes`.
    """
    content, fmt, options = _prepare(content, name, format, options)
    text = _decode(content, name)
    if fmt == "cif":
        if not _DATA_LINE.search(text):
            raise SourceError(f"{name}: no 'data_' block found; is this a CIF file?")
    elif fmt == "csv":
        csv.field_size_limit(1 << 30)
        try:
            reader = csv.reader(io.StringIO(text))
            header = next(reader, None)
            has_rows = next(reader, None) is not None
        except csv.Error as exc:
            raise SourceError(f"{name}: not a readable CSV file ({exc})") from None
        _check_csv_header(
            header, name, options.get("id_column"), options.get("cif_column", "cif"), options.get("target_columns"), has_rows
        )
    else:
        _json_records(text, name, options.get("structure_key", "structure"))
    return fmt


def read_bytes(content: bytes, name: str, format: str | None = None, **options: Any) -> ReadResult:
    """Read a file's bytes in the given (or guessed) format and record where it came from.

    Args:
        content: the file content (gzip-compressed or not).
        name: the file name, used in messages and to guess the format.
        format: ``'cif'``, ``'csv'`` or ``'json'``; guessed from ``name`` when ``None``.
        options: passed to the reader (``id_column``, ``cif_column``, ``target_columns``,
            ``units``, ``structure_key``).

    Raises:
        SourceError: unknown format, unknown option, or a file that cannot be read.
    """
    content, fmt, options = _prepare(content, name, format, options)
    readers = {"cif": read_cif, "csv": read_csv, "json": read_json}
    with gc_paused():
        result = readers[fmt](content, name, **options)
    result.source = {
        "uri": name,
        "source_md5": hashlib.md5(content).hexdigest(),  # noqa: S324 - a checksum, not security
        "description": f"{fmt.upper()} file {name}",
        "extras": {"format": fmt, "options": options},
    }
    return result


def read_path(path: str | Path, format: str | None = None, **options: Any) -> ReadResult:
    """Read a file or, for a folder, every CIF file in it. See :func:`read_bytes`."""
    if not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        raise SourceError(f"expected a file or folder path, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        result = read_cif_folder(path)
        result.source = {
            "uri": str(path),
            "description": f"folder of CIF files {path.name}",
            "extras": {"format": "cif-folder", "options": {}},
        }
        return result
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return read_bytes(content, path.name, format, **options)
