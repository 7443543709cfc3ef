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
    default every other column whose first value is a number, except an unnamed leading
    index column). The format of ``carbon24.csv.gz`` and ``perov5.csv.gz``.
``json``
    A list of objects, each with a pymatgen ``Structure.as_dict()`` under
    ``structure_key`` (default ``structure``), an identifier (``id_column``, default the
    first of ``mp_id``, ``material_id``, ``task_id``, ``id``) and numeric targets
    (default: every numeric top-level field). A list of bare structure dicts is accepted
    too. The format of ``mp_elasticity_binaries.json.gz``.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gc
import gzip
import hashlib
import io
import json
import math
import re
import warnings
import zlib
from pathlib import Path
from typing import Any, Iterable, Sequence

from ._records import ReadResult, Record, SourceError

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

#: Formats understood by :func:`read_bytes`.
FORMATS = ("cif", "csv", "json")

#: Units of well-known target columns (used when the caller gives none).
KNOWN_UNITS = {
    "energy_per_atom": "eV/atom",
    "formation_energy_per_atom": "eV/atom",
    "energy_above_hull": "eV/atom",
    "bulk_modulus_vrh": "GPa",
    "shear_modulus_vrh": "GPa",
    "bulk_modulus": "GPa",
    "shear_modulus": "GPa",
    "heat_ref": "eV",
    "heat_all": "eV",
    "dir_gap": "eV",
    "ind_gap": "eV",
    "band_gap": "eV",
}

_ID_COLUMNS = ("material_id", "mp_id", "task_id", "id")
_DATA_LINE = re.compile(r"^[ \t]*data_(\S*)", re.IGNORECASE | re.MULTILINE)


@contextlib.contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector while a reader builds its records.

    Parsing a file creates hundreds of thousands of dicts and lists that all stay alive
    until the parse ends, so each collection the allocations trigger is wasted work; once
    aiida, pymatgen and SQLAlchemy are imported (~200k tracked objects), every full
    collection walks all of them. Reading the 3163 MP structures took 0.32-0.36 s with
    the collector running and 0.125 s paused. The collector is restored on exit (also on
    an exception) and left alone when it was already off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: Byte-order marks of the Unicode encodings other than UTF-8 (UTF-32 first: its LE mark
#: starts with the UTF-16 LE one).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: Control bytes that never occur in a text file (tab, newlines, form feed excepted).
_BINARY_BYTES = bytes(range(0, 9)) + bytes(range(14, 32))


def _utf16_without_bom(sample: bytes) -> str | None:
    """``'utf-16-le'`` / ``'utf-16-be'`` when ``sample`` looks like BOM-less UTF-16 text
    (every other byte NUL, as for ASCII characters), else ``None``."""
    even, odd = sample[0::2], sample[1::2]
    if len(odd) < 8:
        return None
    if odd.count(0) > 0.8 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.8 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def _decode(content: bytes, name: str) -> str:
    """Text of a file: gunzipped; UTF-8 (with or without BOM), UTF-16/32 (BOM or BOM-less
    UTF-16), else Latin-1.

    Raises:
        SourceError: corrupt gzip data, an empty file, or a binary (not text) file.
    """
    if content[:2] == b"\x1f\x8b":
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{name}: corrupt gzip file, truncated or damaged ({exc})") from None
    if not content.strip():
        raise SourceError(f"{name}: the file is empty")
    encoding = next((enc for bom, enc in _BOMS if content.startswith(bom)), None) or _utf16_without_bom(content[:4096])
    if encoding is not None:
        try:
            text = content.decode(encoding)
        except UnicodeDecodeError:
            raise SourceError(f"{name}: looks like {encoding.upper()} text but is not valid {encoding.upper()}") from None
        if not text.strip("\ufeff \t\r\n"):
            raise SourceError(f"{name}: the file is empty")
        return text.lstrip("\ufeff")
    sample = content[: 1 << 16]
    if content[:2] == b"\x1f\x8b" or sum(sample.count(b) for b in _BINARY_BYTES) > 0.01 * len(sample):
        raise SourceError(f"{name}: a binary file, not text (CIF, CSV and JSON files are text, optionally gzipped)")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("latin-1")


def detect_format(name: str) -> str:
    """Format from a file name: ``x.cif`` -> ``'cif'``, ``x.csv.gz`` -> ``'csv'``, ...

    Raises:
        SourceError: the suffix is not one of :data:`FORMATS`.
    """
    lowered = name.lower()
    for suffix in (".gz", ".gzip"):
        if lowered.endswith(suffix):
            lowered = lowered[: -len(suffix)]
    for fmt in FORMATS:
        if lowered.endswith("." + fmt):
            return fmt
    raise SourceError(
        f"{name}: cannot tell the format from the file name; give format= one of {', '.join(FORMATS)}"
    )


def _units_for(names: Iterable[str], units: dict[str, str] | None) -> dict[str, str]:
    units = dict(units or {})
    return {n: str(units.get(n, KNOWN_UNITS.get(n, ""))) for n in names}


#: Longest reason (characters) taken from a pymatgen message.
_MAX_REASON = 160

#: pymatgen messages -> what they mean for the user.
_PYMATGEN_REASONS = (
    (re.compile(r"singular matrix", re.IGNORECASE), "the cell is degenerate (zero volume)"),
    (re.compile(r"thickness=.*below threshold", re.IGNORECASE | re.DOTALL), "the cell is degenerate (too thin)"),
    (re.compile(r"no structures", re.IGNORECASE), "no structure in it"),
)


def _pymatgen_reason(exc: BaseException) -> str:
    """One short line saying why pymatgen could not parse a CIF block."""
    text = str(exc).strip() or type(exc).__name__
    text = re.sub(r"No structure parsed for section \d+ in CIF\.?", "", text).strip()
    for pattern, reason in _PYMATGEN_REASONS:
        if pattern.search(text):
            return reason
    missing = re.fullmatch(r"'(_[^']+)'", text)
    if missing:
        return f"the CIF item {missing.group(1)} is missing"
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def _cif_number(value: Any) -> float | None:
    """A CIF numeric value (``'4.05(2)'`` -> 4.05); ``None`` for unknown (``?`` / ``.``).

    Raises:
        ValueError: not a number.
    """
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else value
    text = str(value).strip()
    if text in ("?", "."):
        return None
    try:
        return float(re.sub(r"\(.*\)?$", "", text))
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _check_cif_data(data: dict[str, Any]) -> None:
    """Checks of one parsed CIF block that pymatgen does not make (or makes silently).

    Cell lengths must be positive, angles strictly between 0 and 180 degrees and together
    give a non-zero volume; fractional coordinates must be finite numbers; occupancies must
    be numbers in [0, 1.05] (pymatgen drops sites of occupancy 0 -- an empty site -- but
    also, silently, negative or NaN ones, and reads text as 1).

    Raises:
        ValueError: the first problem.
    """
    cell: dict[str, float] = {}
    for axis in "abc":
        key = f"_cell_length_{axis}"
        if key in data:
            try:
                value = _cif_number(data[key])
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{key} is {value:g}; cell lengths must be positive numbers (Angstrom)")
    for axis in ("alpha", "beta", "gamma"):
        key = f"_cell_angle_{axis}"
        if key in data:
            try:
                value = _cif_number(data[key])
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
            if value is not None:
                if not (math.isfinite(value) and 0 < value < 180):
                    raise ValueError(f"{key} is {value:g}; cell angles must be between 0 and 180 degrees")
                cell[axis] = math.radians(value)
    if len(cell) == 3:
        ca, cb, cg = (math.cos(cell[a]) for a in ("alpha", "beta", "gamma"))
        if 1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg < 1e-8:
            raise ValueError("the cell angles give a zero-volume (degenerate) cell")
    labels = data.get("_atom_site_label") or []
    labels = labels if isinstance(labels, list) else [labels]
    for axis in "xyz":
        coords = data.get(f"_atom_site_fract_{axis}")
        for i, raw in enumerate(coords if isinstance(coords, list) else [] if coords is None else [coords]):
            site = f"site {labels[i]!r}" if i < len(labels) else f"site {i + 1}"
            try:
                value = _cif_number(raw)
            except ValueError as exc:
                raise ValueError(f"{site}: coordinate {axis} {exc}") from None
            if value is None or not math.isfinite(value):
                raise ValueError(f"{site}: coordinate {axis} is {raw!r}; coordinates must be finite numbers")
    occupancies = data.get("_atom_site_occupancy")
    if occupancies is not None:
        values = occupancies if isinstance(occupancies, list) else [occupancies]
        parsed = []
        for i, raw in enumerate(values):
            site = f"site {labels[i]!r}" if i < len(labels) else f"site {i + 1}"
            try:
                occ = _cif_number(raw)
            except ValueError as exc:
                raise ValueError(f"{site}: occupancy {exc}") from None
            if occ is not None and not 0 <= occ <= 1.05:
                raise ValueError(f"{site} has occupancy {occ:g}; occupancies must be in [0, 1]")
            parsed.append(occ)
        if parsed and all(occ == 0 for occ in parsed):
            raise ValueError("every site has occupancy 0: there are no atoms")


def parse_cif_block(text: str, label: str = "block"):
    """Parse one CIF data block into a pymatgen ``Structure``.

    Partial occupancies are kept (a disordered structure); symmetry is expanded; the
    conventional (not primitive) cell is returned. Sites of occupancy 0 are empty and
    dropped; negative, NaN or non-numeric occupancies, non-positive cell lengths and cell
    angles outside (0, 180) degrees are errors.

    Raises:
        ValueError: the block has no readable structure; the message (one line) says why.
    """
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parser = CifParser.from_str(text, occupancy_tolerance=1.05)
        except Exception as exc:  # noqa: BLE001 - pymatgen raises many types
            raise ValueError(f"malformed CIF block: {_pymatgen_reason(exc)}") from None
        for block in getattr(getattr(parser, "_cif", None), "data", {}).values():
            try:
                _check_cif_data(getattr(block, "data", {}))
            except ValueError as exc:
                raise ValueError(f"malformed CIF block: {exc}") from None
        try:
            structures = parser.parse_structures(primitive=False, on_error="raise")
        except Exception as exc:  # noqa: BLE001 - pymatgen raises many types
            raise ValueError(f"malformed CIF block: {_pymatgen_reason(exc)}") from None
    if not structures:
        raise ValueError("malformed CIF block: no structure in it")
    return structures[0]


def _split_cif_blocks(text: str) -> list[tuple[str, str, int]]:
    """(name, text, line number) of each ``data_`` block."""
    matches = list(_DATA_LINE.finditer(text))
    blocks = []
    for j, m in enumerate(matches):
        end = matches[j + 1].start() if j + 1 < len(matches) else len(text)
        line = text.count("\n", 0, m.start()) + 1
        blocks.append((m.group(1) or f"block{j + 1}", text[m.start() : end], line))
    return blocks


def read_cif(content: bytes | str, name: str = "input.cif") -> ReadResult:
    """Read every ``data_`` block of a (multi-block) CIF file.

    Raises:
        SourceError: empty file or no ``data_`` block (not a CIF file).
    """
    text = content if isinstance(content, str) else _decode(content, name)
    if not text.strip():
        raise SourceError(f"{name}: the file is empty")
    blocks = _split_cif_blocks(text)
    if not blocks:
        raise SourceError(f"{name}: no 'data_' block found; is this a CIF file?")
    result = ReadResult(records=[], units={}, source={})
    seen: dict[str, int] = {}
    for number, (block_name, block, line) in enumerate(blocks, start=1):
        count = seen.get(block_name, 0) + 1
        seen[block_name] = count
        rid = block_name if count == 1 else f"{block_name}#{count}"
        position = f"{name}, block {number} at line {line}"
        try:
            structure = parse_cif_block(block, rid)
        except ValueError as exc:
            result.failed.append({"id": rid, "reason": str(exc), "position": position, "order": number})
            continue
        result.records.append(Record(rid, structure, {}, position, number))
    return result


def read_cif_folder(path: str | Path) -> ReadResult:
    """Read every ``*.cif`` (and ``*.cif.gz``) file of a folder, sorted by name.

    Identifiers are the file stems (``stem/block`` for files with several blocks).

    Raises:
        SourceError: not a folder, or no CIF file in it.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise SourceError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.name.lower().endswith((".cif", ".cif.gz")))
    if not files:
        raise SourceError(f"{folder}: no .cif files in this folder")
    try:
        contents = [(f.name, f.read_bytes()) for f in files]
    except OSError as exc:
        raise SourceError(f"{folder}: cannot read {exc.filename} ({exc.strerror or exc})") from None
    return _read_cif_files(contents)


@gc_paused()
def _read_cif_files(files: Iterable[tuple[str, bytes]]) -> ReadResult:
    result = ReadResult(records=[], units={}, source={})
    base = 0
    for filename, content in files:
        stem = re.sub(r"\.cif(\.gz)?$", "", filename, flags=re.IGNORECASE)
        try:
            part = read_cif(content, filename)
        except SourceError as exc:
            base += 1
            result.failed.append({"id": stem, "reason": str(exc), "position": filename, "order": base})
            continue
        single = len(part.records) + len(part.failed) == 1
        for rec in part.records:
            rec.id = stem if single else f"{stem}/{rec.id}"
            rec.order = base + (rec.order or 0)
            result.records.append(rec)
        for item in part.failed:
            item["id"] = stem if single else f"{stem}/{item['id']}"
            item["order"] = base + (item.get("order") or 0)
            result.failed.append(item)
        base += len(part.records) + len(part.failed)
    return result


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return value.strip() != ""
    return False


def _check_csv_header(
    header: Sequence[str] | None,
    name: str,
    id_column: str | None,
    cif_column: str,
    target_columns: Sequence[str] | None,
    has_rows: bool,
) -> str | None:
    """Check the header row of a CSV dataset; return the id column (guessed when ``None``).

    Raises:
        SourceError: no header, a missing CIF / id / target column, or no record.
    """
    if not header:
        raise SourceError(f"{name}: no header row")
    if cif_column not in header:
        raise SourceError(
            f"{name}: no column {cif_column!r} with CIF text; the columns are {', '.join(repr(h) for h in header)}"
            " (give cif_column=...)"
        )
    if id_column is None:
        id_column = next((c for c in _ID_COLUMNS if c in header), None)
    elif id_column not in header:
        raise SourceError(f"{name}: no id column {id_column!r}; the columns are {', '.join(map(repr, header))}")
    missing = [c for c in target_columns or () if c not in header]
    if missing:
        raise SourceError(
            f"{name}: no target column(s) {', '.join(map(repr, missing))}; the columns are {', '.join(map(repr, header))}"
        )
    if not has_rows:
        raise SourceError(f"{name}: the file has a header but no records")
    return id_column


def read_csv(
    content: bytes | str,
    name: str = "input.csv",
    id_column: str | None = None,
    cif_column: str = "cif",
    target_columns: Sequence[str] | None = None,
    units: dict[str, str] | None = None,
) -> ReadResult:
    """Read a CSV file with one CIF per row and target columns.

    Raises:
        SourceError: empty file, no header, missing CIF / id / target column.
    """
    checked = _checked_options({"id_column": id_column, "cif_column": cif_column, "target_columns": target_columns, "units": units})
    target_columns = checked.get("target_columns", target_columns)
    text = content if isinstance(content, str) else _decode(content, name)
    csv.field_size_limit(1 << 30)
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames
        rows = list(reader)
    except csv.Error as exc:
        raise SourceError(f"{name}: not a readable CSV file ({exc})") from None
    id_column = _check_csv_header(header, name, id_column, cif_column, target_columns, bool(rows))
    if target_columns is None:
        skip = {cif_column, id_column, "formula", "", "Unnamed: 0", "index"}
        first = rows[0] if rows else {}
        target_columns = [c for c in header if c not in skip and _is_number(first.get(c))]
    else:
        target_columns = list(target_columns)
    result = ReadResult(records=[], units=_units_for(target_columns, units), source={})
    for number, row in enumerate(rows, start=1):
        rid = str(row.get(id_column) or number) if id_column else str(number)
        position = f"{name}, row {number}"
        cif_text = row.get(cif_column) or ""
        try:
            if None in row:
                raise ValueError(
                    f"the row has {len(header) + len(row[None])} fields, the header {len(header)} "
                    "(an unquoted comma? CIF text must be quoted)"
                )
            if any(value is None for value in row.values()):
                fields = sum(value is not None for value in row.values())
                raise ValueError(f"the row has {fields} field(s), the header {len(header)}")
            if not cif_text.strip():
                raise ValueError("the CIF cell is empty")
            structure = parse_cif_block(cif_text, rid)
        except ValueError as exc:
            result.failed.append({"id": rid, "reason": str(exc), "position": position, "order": number})
            continue
        targets = {c: _float_or_text(row.get(c)) for c in target_columns}
        result.records.append(Record(rid, structure, targets, position, number))
    return result


def _float_or_text(value: Any) -> Any:
    if value is None:
        return float("nan")
    if isinstance(value, str):
        if not value.strip():
            return float("nan")
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _structure_from_dict(d: dict) -> Any:
    """A ``(cell, frac, species)`` tuple from a pymatgen ``Structure.as_dict()``.

    Reads the dictionary directly (much faster than ``Structure.from_dict``); falls back
    to pymatgen for anything unusual.
    """
    try:
        cell = d["lattice"]["matrix"]
        frac, species = [], []
        for site in d["sites"]:
            frac.append(site["abc"])
            spec = site["species"]
            if len(spec) == 1 and float(spec[0].get("occu", 1.0)) == 1.0:
                species.append(spec[0]["element"])
            else:
                species.append({s["element"]: float(s.get("occu", 1.0)) for s in spec})
        return (cell, frac, species)
    except (KeyError, TypeError, IndexError, AttributeError):
        from pymatgen.core import Structure

        return Structure.from_dict(d)


def _json_records(text: str, name: str, structure_key: str) -> list[dict]:
    """The list of records of a JSON dataset (``{"records": [...]}`` is accepted too).

    Raises:
        SourceError: invalid JSON, not a non-empty list of objects, or records without
            ``structure_key`` (that are not bare structure dicts either).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{name}: not valid JSON ({exc})") from None
    except RecursionError:
        raise SourceError(f"{name}: not readable JSON (nested too deeply)") from None
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        data = data["records"]
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise SourceError(f"{name}: expected a JSON list of objects (records or structure dicts)")
    if not data:
        raise SourceError(f"{name}: the list of records is empty")
    first = data[0]
    bare = structure_key not in first and "lattice" in first and "sites" in first
    if not bare and structure_key not in first:
        raise SourceError(
            f"{name}: records have no {structure_key!r} field; their fields are {', '.join(map(repr, first))}"
        )
    return data


def read_json(
    content: bytes | str,
    name: str = "input.json",
    id_column: str | None = None,
    structure_key: str = "structure",
    target_columns: Sequence[str] | None = None,
    units: dict[str, str] | None = None,
) -> ReadResult:
    """Read a JSON list of records holding pymatgen structure dicts and targets.

    Raises:
        SourceError: empty file, invalid JSON, not a list of objects.
    """
    checked = _checked_options(
        {"id_column": id_column, "structure_key": structure_key, "target_columns": target_columns, "units": units}
    )
    target_columns = checked.get("target_columns", target_columns)
    text = content if isinstance(content, str) else _decode(content, name)
    data = _json_records(text, name, structure_key)
    bare = structure_key not in data[0] and "lattice" in data[0] and "sites" in data[0]
    first = data[0]
    if id_column is None and not bare:
        id_column = next((c for c in ("mp_id",) + _ID_COLUMNS if c in first), None)
    if target_columns is None:
        target_columns = (
            []
            if bare
            else [k for k, v in first.items() if k not in {id_column, structure_key} and _is_number(v) and not isinstance(v, str)]
        )
    else:
        target_columns = list(target_columns)
    result = ReadResult(records=[], units=_units_for(target_columns, units), source={})
    for number, item in enumerate(data, start=1):
        value = item.get(id_column) if id_column else None
        rid = str(number) if value is None or value == "" else str(value)
        position = f"{name}, record {number}"
        sdict = item if bare else item.get(structure_key)
        if not isinstance(sdict, dict):
            result.failed.append(
                {"id": rid, "reason": f"no structure dict under {structure_key!r}", "position": position, "order": number}
            )
            continue
        try:
            structure = _structure_from_dict(sdict)
        except Exception as exc:  # noqa: BLE001 - pymatgen raises many types
            result.failed.append(
                {"id": rid, "reason": f"unreadable structure dict ({exc})", "position": position, "order": number}
            )
            continue
        targets = {c: _float_or_text(item.get(c)) for c in target_columns}
        result.records.append(Record(rid, structure, targets, position, number))
    return result


def _checked_options(options: dict[str, Any]) -> dict[str, Any]:
    """The reader options with their types checked (a single target name becomes a list).

    Raises:
        SourceError: an option of the wrong type.
    """
    options = {k: v for k, v in options.items() if v is not None}
    for key in ("id_column", "cif_column", "structure_key"):
        if key in options and not isinstance(options[key], str):
            raise SourceError(f"option {key} must be a column name (text), got {options[key]!r}")
    if "target_columns" in options:
        columns = options["target_columns"]
        if isinstance(columns, str):
            columns = [columns]
        if not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
            raise SourceError(f"option target_columns must be a list of column names, got {columns!r}")
        options["target_columns"] = list(columns)
    if "units" in options:
        units = options["units"]
        if not isinstance(units, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in units.items()):
            raise SourceError(f"option units must map column names to unit names, e.g. {{'energy': 'eV'}}, got {units!r}")
    return options


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
