"""CSV and JSON datasets: one record per row or object, a CIF column or a pymatgen structure
dict, an identifier and numeric targets decided over all records."""

from __future__ import annotations

import csv
import io
import json
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
            f"{name}: records have no {structure_key!r} field; their fields are {', '.join(map(repr, first))}"
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
        target_columns = (
            []
            if bare
            else [k for k, v in first.items() if k not in {id_column, structure_key} and _is_number(v) and not isinstance(v, str)]
        )
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
