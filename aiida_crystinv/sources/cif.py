"""CIF files: multi-block files (each block parsed on its own, so a malformed block only
affects its record), folders of CIFs, and the checks of CIF values pymatgen lets through
(negative, NaN or text occupancies; impossible cells)."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any, Iterable

from ._records import ReadResult, Record, SourceError
from ._text import _DATA_LINE, _decode, gc_paused

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
