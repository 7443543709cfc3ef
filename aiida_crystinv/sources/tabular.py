"""CSV and JSON datasets: one record per row or object, a CIF column or a pymatgen structure
dict, an identifier and numeric targets decided over all records."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from typing import Any, Sequence

from ._records import ReadResult, Record, SourceError
from ._text import _ID_COLUMNS, _checked_options, _decode, _units_for
from .cif import parse_cif_block


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


def _listing(names: Sequence[Any], limit: int = 12, width: int = 40) -> str:
    """Names for a message: at most ``limit`` of them, each cut to ``width`` characters
    (a JSON file read as CSV has a "header" of hundreds of thousands of fields)."""
    shown = []
    for item in list(names)[:limit]:
        text = str(item)
        shown.append(repr(text if len(text) <= width else text[: width - 3] + "..."))
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


#: A CSV header with its unit: ``bulk_modulus [GPa]`` (what ``crystinv export -o x.csv`` writes).
_HEADER_UNIT = re.compile(r"^(?P<name>.*?\S)\s*\[(?P<unit>[^\[\]]*)\]\s*$")


def split_header_unit(header: str) -> tuple[str, str | None]:
    """``'bulk_modulus [GPa]'`` -> ``('bulk_modulus', 'GPa')``; ``'energy []'`` ->
    ``('energy', '')`` (declared unitless); ``'cif'`` -> ``('cif', None)``."""
    match = _HEADER_UNIT.match(header or "")
    if match is None:
        return header, None
    return match.group("name"), match.group("unit").strip()


def _bare_header(header: Sequence[str], name: str) -> tuple[list[str], dict[str, str]]:
    """Column names without their ``[unit]`` part, and the units so declared.

    Raises:
        SourceError: two columns with the same name once units are set apart, or a
            "header" that is the start of a JSON document.
    """
    if header and str(header[0]).lstrip().startswith(("{", "[")):
        raise SourceError(f"{name}: this looks like JSON, not CSV: read it as format 'json'")
    bare, units = [], {}
    for column in header:
        column_name, unit = split_header_unit(column)
        bare.append(column_name)
        if unit is not None:
            units[column_name] = unit
    counts = Counter(bare)
    repeated = sorted(c for c, n in counts.items() if n > 1)
    if repeated:
        raise SourceError(f"{name}: column(s) {_listing(repeated)} appear more than once in the header")
    return bare, units


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
    header, _ = _bare_header(header, name)
    if cif_column not in header:
        raise SourceError(
            f"{name}: no column {cif_column!r} with CIF text; the columns are {_listing(header)}"
            " (give cif_column=...)"
        )
    if id_column is None:
        id_column = next((c for c in _ID_COLUMNS if c in header), None)
    elif id_column not in header:
        raise SourceError(f"{name}: no id column {id_column!r}; the columns are {_listing(header)}")
    missing = [c for c in target_columns or () if c not in header]
    if missing:
        raise SourceError(
            f"{name}: no target column(s) {_listing(missing)}; the columns are {_listing(header)}"
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

    A header ``name [unit]`` (as ``crystinv export -o x.csv`` writes) is the column
    ``name`` with that unit (``name []``: no unit); ``units`` given here take precedence.

    Raises:
        SourceError: empty file, no header, missing CIF / id / target column.
    """
    checked = _checked_options({"id_column": id_column, "cif_column": cif_column, "target_columns": target_columns, "units": units})
    target_columns = checked.get("target_columns", target_columns)
    text = content if isinstance(content, str) else _decode(content, name)
    csv.field_size_limit(1 << 30)
    try:
        reader = csv.DictReader(io.StringIO(text))
        declared: dict[str, str] = {}
        if reader.fieldnames:
            bare, declared = _bare_header(reader.fieldnames, name)
            reader.fieldnames = bare
        header = reader.fieldnames
        rows = list(reader)
    except csv.Error as exc:
        raise SourceError(f"{name}: not a readable CSV file ({exc})") from None
    id_column = _check_csv_header(header, name, id_column, cif_column, target_columns, bool(rows))
    if target_columns is None:
        skip = {cif_column, id_column, "formula", "", "Unnamed: 0", "index"}
        # decided over ALL records: a column with a number anywhere is a target, and a
        # record with text or nothing there is a bad record (named, or skipped with its reason)
        target_columns = [c for c in header or () if c not in skip and any(_is_number(row.get(c)) for row in rows)]
    else:
        target_columns = list(target_columns)
    result = ReadResult(records=[], units=_units_for(target_columns, {**declared, **(units or {})}), source={})
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


def _json_targets(data: Sequence[dict], skip: set[Any]) -> list[str]:
    """Top-level keys holding a JSON number (not a bool, not a string) in ANY record, in
    the order the keys first appear: the default targets of a JSON dataset."""
    keys: dict[str, None] = {}
    numeric: set[str] = set()
    for item in data:
        for key, value in item.items():
            keys.setdefault(key, None)
            if key not in numeric and _is_number(value) and not isinstance(value, str):
                numeric.add(key)
    return [k for k in keys if k in numeric and k not in skip]


def _float_or_text(value: Any) -> Any:
    """A target value as read: a float, the text that is not a number, or ``None`` for an
    empty cell / a null / a missing key (``validate_records`` names each as a bad record)."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
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


def _json_records(text: str, name: str, structure_key: str) -> tuple[list[dict], dict[str, str]]:
    """The list of records of a JSON dataset and the units it declares:
    ``{"units": {target: unit}, "records": [...]}`` (what ``crystinv export`` writes) or a
    bare list of records.

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
    units: dict[str, str] = {}
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        declared = data.get("units") or {}
        if not isinstance(declared, dict) or not all(isinstance(v, str) for v in declared.values()):
            raise SourceError(f"{name}: 'units' must map target names to unit strings")
        units = {str(k): v for k, v in declared.items()}
        data = data["records"]
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise SourceError(f"{name}: expected a JSON list of objects (records or structure dicts)")
    if not data:
        raise SourceError(f"{name}: the list of records is empty")
    first = data[0]
    bare = structure_key not in first and "lattice" in first and "sites" in first
    if not bare and structure_key not in first:
        raise SourceError(
            f"{name}: records have no {structure_key!r} field; their fields are {_listing(list(first))}"
        )
    return data, units


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
    data, declared = _json_records(text, name, structure_key)
    bare = structure_key not in data[0] and "lattice" in data[0] and "sites" in data[0]
    first = data[0]
    if id_column is None and not bare:
        id_column = next((c for c in ("mp_id",) + _ID_COLUMNS if c in first), None)
    if target_columns is None:
        target_columns = [] if bare else _json_targets(data, {id_column, structure_key})
    else:
        target_columns = list(target_columns)
    result = ReadResult(records=[], units=_units_for(target_columns, {**declared, **(units or {})}), source={})
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
