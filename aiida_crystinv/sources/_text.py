"""What every reader shares: decoding bytes (gzip, BOMs, UTF-16), telling the format from
the file name, units of well-known targets, and pausing the garbage collector while parsing."""

from __future__ import annotations

import codecs
import contextlib
import gc
import gzip
import re
import zlib
from typing import Any, Iterable

from ._records import SourceError

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
