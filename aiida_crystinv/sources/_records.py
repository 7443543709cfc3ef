"""Records read from a source, their validation and their content hash.

Every reader in :mod:`aiida_crystinv.sources` produces a :class:`ReadResult`: parsed
records (identifier, structure, targets) plus the records that could not be parsed, each
with a reason. :func:`validate_records` then checks every structure with
:func:`~aiida_crystinv.invariants.as_crystal` and every target for finiteness, and
applies the ``on_error`` policy:

* ``'fail'``: the first bad record raises :class:`RecordError` naming the record (its
  identifier and position in the source) and the reason; nothing is kept.
* ``'skip'``: bad records are dropped and listed, with reasons, in ``skipped``.

NaN or infinite targets make a record bad (a model cannot learn from them), and so do
targets that are text or missing (``None``: an empty cell, a null): they fail the import
or are skipped, they are never stored.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..invariants import Crystal, InvalidStructureError, as_crystal

__all__ = [
    "ON_ERROR",
    "Record",
    "ReadResult",
    "RecordError",
    "SourceError",
    "ValidRecords",
    "validate_records",
    "record_hash",
    "species_key",
    "reduced_formula",
]

#: Allowed values of ``on_error``.
ON_ERROR = ("fail", "skip")

#: Rounding used by :func:`record_hash`: cell to 1e-4 Angstrom, fractional coordinates to
#: 1e-5, occupancies to 1e-4.
HASH_DECIMALS = {"cell": 4, "frac": 5, "occupancy": 4}


class SourceError(ValueError):
    """A source that cannot be read at all: missing, empty, wrong format, no network..."""


class RecordError(ValueError):
    """One record of a source is bad. ``record``, ``position`` and ``reason`` say which and why."""

    def __init__(self, record: str, reason: str, position: str | None = None):
        self.record = str(record)
        self.reason = str(reason)
        self.position = position
        where = f" ({position})" if position else ""
        super().__init__(f"record {self.record!r}{where}: {self.reason}")


@dataclass
class Record:
    """One parsed record: identifier, structure (anything ``as_crystal`` accepts), targets."""

    id: str
    structure: Any
    targets: dict[str, Any] = field(default_factory=dict)
    position: str | None = None
    order: int | None = None


@dataclass
class ReadResult:
    """What a reader returns before validation.

    Attributes:
        records: parsed records, in source order.
        failed: records that could not even be parsed, as dicts ``{id, reason, position}``.
        units: unit of each target (``''`` when unknown).
        source: provenance of the source, in the keys of ``aiida.orm.Data.source``
            (``uri``, ``db_name``, ``version``, ``source_md5``, ``description``, ``extras``).
            Never contains credentials.
    """

    records: list[Record]
    failed: list[dict] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def target_names(self) -> list[str]:
        names: list[str] = []
        for rec in self.records:
            for name in rec.targets:
                if name not in names:
                    names.append(name)
        return names


@dataclass
class ValidRecords:
    """Records that passed validation, ready to be packed into a dataset."""

    crystals: list[Crystal]
    ids: list[str]
    targets: dict[str, np.ndarray]
    skipped: list[dict]


def _check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    return on_error


def validate_records(
    structures: Sequence[Any],
    ids: Sequence[str] | None = None,
    targets: Mapping[str, Sequence[Any]] | None = None,
    on_error: str = "fail",
    positions: Sequence[str | None] | None = None,
    failed: Iterable[dict] = (),
    orders: Sequence[int | None] | None = None,
) -> ValidRecords:
    """Validate structures, identifiers and targets record by record.

    Args:
        structures: anything :func:`~aiida_crystinv.invariants.as_crystal` accepts.
        ids: unique identifiers (default ``'0'``, ``'1'``, ...).
        targets: name -> sequence of numbers, one per structure.
        on_error: ``'fail'`` raises :class:`RecordError` on the first bad record;
            ``'skip'`` drops bad records and lists them in ``skipped``.
        positions: where each record sits in its source (``'line 12'``, ``'block 3'``),
            used in messages.
        failed: records that a reader already could not parse (``{id, reason, position,
            order}``).
        orders: position of each record in the source (an int), so that with
            ``on_error='fail'`` the error names the *first* bad record of the source,
            whether it failed parsing or validation.

    Raises:
        RecordError: with ``on_error='fail'``, for the first bad record.
        ValueError: lengths that do not match, or an unknown ``on_error``.
    """
    _check_on_error(on_error)
    n = len(structures)
    ids = [str(i) for i in range(n)] if ids is None else [str(i) for i in ids]
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} structures")
    targets = dict(targets or {})
    for name, values in targets.items():
        if len(values) != n:
            raise ValueError(f"target {name!r} has {len(values)} values for {n} structures")
    positions = list(positions) if positions is not None else [None] * n
    orders = list(orders) if orders is not None else list(range(n))

    # (order, entry) of every bad record; with on_error='fail' the first one raises
    bad_records: list[tuple[float, dict]] = []
    for item in failed:
        entry = {k: v for k, v in item.items() if v is not None and k != "order"}
        bad_records.append((item.get("order", -1) if item.get("order") is not None else -1, entry))

    def bad(i: int, reason: str) -> None:
        entry = {"id": ids[i], "reason": reason}
        if positions[i]:
            entry["position"] = positions[i]
        bad_records.append((orders[i] if orders[i] is not None else i, entry))

    crystals: list[Crystal] = []
    kept: list[int] = []
    seen: set[str] = set()
    names = list(targets)
    for i, obj in enumerate(structures):
        if ids[i] in seen:
            bad(i, "duplicate identifier")
            continue
        values = {}
        reason = None
        for name in names:
            value = targets[name][i]
            if value is None:
                reason = f"target {name!r} is nan: no value (an empty cell, a null or a missing key)"
                break
            if isinstance(value, (bool, np.bool_)):
                reason = f"target {name!r} is not a number ({value!r})"
                break
            try:
                value = float(value)
            except (TypeError, ValueError):
                reason = f"target {name!r} is not a number ({value!r})"
                break
            if not math.isfinite(value):
                reason = f"target {name!r} is {value} (NaN and infinite targets are not stored)"
                break
            values[name] = value
        if reason is not None:
            bad(i, reason)
            continue
        try:
            crystal = as_crystal(obj, label=ids[i])
        except InvalidStructureError as exc:
            text = str(exc)
            prefix = f"{ids[i]}: "
            bad(i, text[len(prefix):] if text.startswith(prefix) else text)
            continue
        except Exception as exc:  # noqa: BLE001 - any unreadable object is a bad record
            bad(i, f"not a structure ({type(exc).__name__}: {exc})")
            continue
        seen.add(ids[i])
        crystals.append(crystal)
        kept.append(i)
    bad_records.sort(key=lambda item: item[0])
    if on_error == "fail" and bad_records:
        entry = bad_records[0][1]
        raise RecordError(entry.get("id", "?"), entry.get("reason", "unreadable"), entry.get("position"))
    skipped = [entry for _, entry in bad_records]
    out_targets = {
        name: np.array([float(targets[name][i]) for i in kept], dtype=float) for name in names
    }
    return ValidRecords(crystals, [ids[i] for i in kept], out_targets, skipped)


@functools.lru_cache(maxsize=65536)
def species_key(site: tuple) -> str:
    """Canonical text of one site's species, e.g. ``'Fe'`` or ``'Fe:0.5000,Ni:0.5000'``."""
    if len(site) == 1 and abs(site[0][1] - 1.0) < 1e-12:
        return site[0][0]
    dec = HASH_DECIMALS["occupancy"]
    return ",".join(f"{el}:{occ:.{dec}f}" for el, occ in sorted(site))


def record_hash(crystal: Crystal) -> str:
    """SHA-256 of the rounded canonical content of a structure.

    The content is the cell (rounded to 1e-4 Angstrom) and the multiset of sites
    (species with occupancies, fractional coordinates wrapped into [0, 1) and rounded to
    1e-5), sorted, so the hash ignores atom order and coordinate wrapping. It is *not* an
    isometry invariant: the same crystal in another cell hashes differently (find those
    with invariants and distances).
    """
    cell = np.round(np.asarray(crystal.cell, dtype=float), HASH_DECIMALS["cell"]) + 0.0
    scale = 10 ** HASH_DECIMALS["frac"]
    frac = np.rint(np.asarray(crystal.frac, dtype=float) * scale).astype(np.int64) % scale
    keys = [species_key(s) for s in crystal.species]
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(cell, dtype="<f8").tobytes())
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    for key in sorted(groups):
        rows = frac[groups[key]]
        rows = rows[np.lexsort(rows.T[::-1])]
        digest.update(f"|{key}:".encode())
        digest.update(np.ascontiguousarray(rows, dtype="<i8").tobytes())
    return digest.hexdigest()


def reduced_formula(crystal: Crystal) -> str:
    """Reduced chemical formula, as pymatgen's ``Composition.reduced_formula`` writes it
    (occupancy-weighted amounts for disordered sites)."""
    amounts = crystal.element_fractions()
    values = list(amounts.values())
    if all(abs(v - round(v)) < 1e-8 for v in values):
        ints = [int(round(v)) for v in values]
        g = math.gcd(*ints) or 1
        key = tuple(sorted((el, n // g) for el, n in zip(amounts, ints)))
    else:
        key = tuple(sorted((el, round(v, 8)) for el, v in amounts.items()))
    return _formula(key)


@functools.lru_cache(maxsize=16384)
def _formula(amounts: tuple) -> str:
    from pymatgen.core.composition import Composition

    try:
        return Composition(dict(amounts)).reduced_formula
    except Exception:  # noqa: BLE001 - a formula is a label, never fatal
        return "".join(el for el, _ in amounts)
