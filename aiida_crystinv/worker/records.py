"""Arrays of a worker folder <-> records and invariants, in the layouts the data nodes use.

* Records: the repository layout of ``CrystalDatasetData`` (see
  :mod:`aiida_crystinv.data.dataset`): ``cells``, ``site_offsets``, ``frac``,
  ``species_offsets``, ``species`` (int16 index into ``elements``), ``occupancies``,
  ``ids``. :func:`pack_records` and :func:`crystals_from_arrays` are the pure halves of
  ``CrystalDatasetData._pack`` / ``get_crystals``: the same arrays, the same ``Crystal``
  objects.
* Invariants: the layout of ``InvariantsData.from_arrays`` (see
  :mod:`aiida_crystinv.data.invariants`): ``matrix`` (AMD, composition), ``pdd_rows`` +
  ``pdd_offsets`` (PDD), ``stack`` (RDF, GRID; float32); GRID may also be staged as the
  node's lossless windowed arrays ``window_starts`` / ``window_lengths`` /
  ``window_values``.

The ``write_*`` helpers stage a folder from Python without AiiDA (tests, scripts, the
CalcJob); :func:`read_result` and :func:`read_outputs` read what the worker wrote.

Pure: numpy and :mod:`aiida_crystinv.invariants`, no AiiDA import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..invariants import Crystal, as_crystal, grid_bins
from ..invariants.packing import crystals_from_arrays, pack_crystals, pack_pdds, stack_records
from ..specs import INVARIANTS, InvariantSpec, parse_invariant
from ._files import BadTaskError, as_str_array, load_npy, npy_header, write_json_atomic, write_npy_atomic
from .schema import OUTPUT_DIR, RESULT_FILE, TASK_FILE, parse_task

__all__ = [
    "RECORD_FILES",
    "pack_records",
    "crystals_from_arrays",
    "read_records",
    "invariant_arrays",
    "read_invariants",
    "write_records",
    "write_invariants",
    "write_task",
    "read_result",
    "read_outputs",
]

#: Record arrays: name -> (dtype, ndim, trailing axes), as in a dataset node's repository.
RECORD_FILES: dict[str, tuple[str, int, tuple[int, ...]]] = {
    "cells": ("float64", 3, (3, 3)),
    "site_offsets": ("int64", 1, ()),
    "frac": ("float64", 2, (3,)),
    "species_offsets": ("int64", 1, ()),
    "species": ("int16", 1, ()),
    "occupancies": ("float64", 1, ()),
    "ids": ("unicode", 1, ()),
}


# ---------------------------------------------------------------------------- records


def pack_records(crystals: Sequence[Crystal], ids: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """The record arrays of ``crystals`` with their ``ids`` (default: the crystals' labels),
    and their ``elements`` list: :func:`aiida_crystinv.invariants.packing.pack_crystals`,
    the arrays ``CrystalDatasetData`` stores."""
    crystals = list(crystals)
    ids = [c.label for c in crystals] if ids is None else [str(i) for i in ids]
    if len(ids) != len(crystals):
        raise ValueError(f"{len(ids)} ids for {len(crystals)} records")
    arrays, elements = pack_crystals(crystals)
    arrays["ids"] = as_str_array(ids)
    return arrays, elements


def read_records(folder: Path, where: str, rows: tuple[int, int] | None, n_elements: int) -> dict[str, np.ndarray]:
    """Record arrays of rows ``rows`` (default: all) of the records staged in
    ``folder/where``, offsets rebased to 0; only the needed slices are read.

    Raises:
        BadTaskError: a missing file, a wrong dtype or shape, inconsistent offsets or
            lengths, a species index outside ``elements``.
    """
    folder = Path(folder)

    def load(name: str, sel: tuple[int, int] | None) -> np.ndarray:
        dtype, ndim, trailing = RECORD_FILES[name]
        return load_npy(folder, f"{where}/{name}.npy", dtype, ndim, sel, trailing)

    shape_cells, _, _ = npy_header(folder / where / "cells.npy", f"{where}/cells.npy")
    n_total = shape_cells[0] if shape_cells else 0
    start, stop = rows if rows is not None else (0, n_total)
    if not 0 <= start <= stop <= n_total:
        raise BadTaskError(f"{where}: rows {start}:{stop} are outside the {n_total} records staged")
    if stop == start:
        raise BadTaskError(f"{where}: no records selected (rows {start}:{stop})")
    cells = load("cells", (start, stop))
    ids = load("ids", (start, stop))
    so = load("site_offsets", (start, stop + 1))
    if len(so) != stop - start + 1:
        raise BadTaskError(f"{where}/site_offsets.npy: needs {n_total + 1} entries (one more than cells.npy)")
    frac_shape, _, _ = npy_header(folder / where / "frac.npy", f"{where}/frac.npy")
    a, b = int(so[0]), int(so[-1])
    if a < 0 or np.any(np.diff(so) < 0) or b > frac_shape[0]:
        raise BadTaskError(f"{where}/site_offsets.npy: offsets must never decrease and stay within the {frac_shape[0]} sites of frac.npy")
    frac = load("frac", (a, b))
    po = load("species_offsets", (a, b + 1))
    if len(po) != b - a + 1:
        raise BadTaskError(f"{where}/species_offsets.npy: needs one entry more than frac.npy has sites")
    sp_shape, _, _ = npy_header(folder / where / "species.npy", f"{where}/species.npy")
    p, q = int(po[0]), int(po[-1])
    if p < 0 or np.any(np.diff(po) < 1) or q > sp_shape[0]:
        raise BadTaskError(
            f"{where}/species_offsets.npy: every site needs at least one species entry, within the {sp_shape[0]} of species.npy"
        )
    species = load("species", (p, q))
    occupancies = load("occupancies", (p, q))
    if len(occupancies) != len(species):
        raise BadTaskError(f"{where}/occupancies.npy: {len(occupancies)} entries for {len(species)} species entries")
    if species.size and (int(species.min()) < 0 or int(species.max()) >= n_elements):
        raise BadTaskError(f"{where}/species.npy: index {int(species.max())} outside the {n_elements} elements of task.json")
    return {
        "cells": cells,
        "site_offsets": so - a,
        "frac": frac,
        "species_offsets": po - p,
        "species": species,
        "occupancies": occupancies,
        "ids": ids,
    }


def write_records(
    folder: str | Path, structures: Sequence[Any], ids: Sequence[str] | None = None, where: str = "records"
) -> list[str]:
    """Stage records in ``folder/where`` (created); returns the ``elements`` list for task.json.

    Args:
        structures: anything :func:`~aiida_crystinv.invariants.as_crystal` accepts, or
            ``Crystal`` objects (used as they are, not validated again).
        ids: identifiers (default: ``'0'``, ``'1'``, ...).
    """
    crystals = [as_crystal(s) for s in structures]  # a Crystal is taken as it is
    ids = [str(i) for i in range(len(crystals))] if ids is None else [str(i) for i in ids]
    arrays, elements = pack_records(crystals, ids)
    target = Path(folder) / where
    target.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_npy_atomic(target / f"{name}.npy", array)
    return elements


# ---------------------------------------------------------------------------- invariants


def _spec(descriptor: Any) -> InvariantSpec:
    return parse_invariant(descriptor)


def invariant_arrays(descriptor: Any, ids: Sequence[str], arrays: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """The files of a set of invariants in ``InvariantsData``'s layout, GRID as a dense stack.

    Args:
        descriptor: the invariant spec (or what :func:`~aiida_crystinv.specs.parse_invariant` takes).
        ids: record identifiers.
        arrays: one invariant per record (as the pure functions return them).

    Returns:
        ``{'ids': ..., 'matrix': ...}`` (AMD, composition; float64), ``{'ids', 'pdd_rows',
        'pdd_offsets'}`` (PDD; float64, int64) or ``{'ids', 'stack'}`` (RDF, GRID; float32),
        converted exactly as ``InvariantsData.from_arrays`` converts them.
    """
    spec = _spec(descriptor)
    desc = INVARIANTS[spec.name]  # type: ignore[attr-defined]
    ids = [str(i) for i in ids]
    if len(arrays) != len(ids):
        raise ValueError(f"{len(arrays)} arrays for {len(ids)} ids")
    out: dict[str, np.ndarray] = {"ids": as_str_array(ids)}
    if not ids:
        raise ValueError("invariants need at least one record")
    if desc.layout == "ragged":
        out["pdd_rows"], out["pdd_offsets"] = pack_pdds(arrays)
        return out
    out["matrix" if desc.layout == "matrix" else "stack"] = stack_records(arrays, ids, desc.dtype)
    return out


def _feature_shape(spec: InvariantSpec) -> tuple[int | None, ...]:
    """Shape of one record's invariant (``None``: not known from the spec)."""
    name = spec.name  # type: ignore[attr-defined]
    p = spec.params
    if name == "amd":
        return (p["k"],)
    if name == "pdd":
        return (None, p["k"] + 1)
    if name == "grid":
        return (p["n_shells"], len(grid_bins(p["bin_width"], p["cutoff"])))
    if name == "rdf":
        return (len(grid_bins(p["bin_width"], p["cutoff"])),)
    return (None,)


def _densify(starts: np.ndarray, lengths: np.ndarray, values: np.ndarray, bins: int) -> np.ndarray:
    """(n, shells, bins) float32 from GRID windows, as ``InvariantsData.get_stack`` does."""
    n, rows = starts.shape
    s = starts.ravel().astype(np.int64)
    ln = lengths.ravel().astype(np.int64)
    out = np.zeros(n * rows * bins, dtype=values.dtype)
    row_base = np.arange(n * rows, dtype=np.int64) * bins + s
    offsets = np.repeat(row_base - np.concatenate(([0], np.cumsum(ln)[:-1])), ln)
    out[offsets + np.arange(len(values))] = values
    return out.reshape(n, rows, bins)


def read_invariants(folder: Path, where: str, descriptor: InvariantSpec, rows: tuple[int, int] | None) -> tuple[np.ndarray, Any]:
    """``(ids, items)`` of invariants staged in ``folder/where`` (rows ``rows``, default all).

    ``items`` is a list of (r_i, k+1) arrays for PDD, else the (n, ...) stack; the dtypes
    are those of the stored node (float64; float32 for RDF and GRID).

    Raises:
        BadTaskError: missing files, wrong dtypes or shapes (checked against the
            descriptor's parameters), inconsistent offsets, no rows selected.
    """
    folder = Path(folder)
    desc = INVARIANTS[descriptor.name]  # type: ignore[attr-defined]
    shape = _feature_shape(descriptor)
    ids_file = f"{where}/ids.npy"
    ids_shape = npy_header(folder / ids_file, ids_file)[0]
    n_total = ids_shape[0] if ids_shape else 0
    start, stop = rows if rows is not None else (0, n_total)
    if not 0 <= start <= stop <= n_total:
        raise BadTaskError(f"{where}: rows {start}:{stop} are outside the {n_total} records staged")
    if stop == start:
        raise BadTaskError(f"{where}: no records selected (rows {start}:{stop})")
    ids = load_npy(folder, ids_file, "unicode", 1, (start, stop))

    def check_rows(name: str) -> None:
        n = npy_header(folder / name, name)[0]
        if not n or n[0] != n_total:
            raise BadTaskError(f"{name}: {n[0] if n else 0} rows, but ids.npy has {n_total}")

    if desc.layout == "ragged":
        off_file, rows_file = f"{where}/pdd_offsets.npy", f"{where}/pdd_rows.npy"
        offsets = load_npy(folder, off_file, "int64", 1, (start, stop + 1))
        if len(offsets) != stop - start + 1:
            raise BadTaskError(f"{off_file}: needs {n_total + 1} entries (one more than ids.npy)")
        n_rows = npy_header(folder / rows_file, rows_file)[0]
        a, b = int(offsets[0]), int(offsets[-1])
        if a < 0 or np.any(np.diff(offsets) < 1) or (n_rows and b > n_rows[0]):
            raise BadTaskError(f"{off_file}: offsets must increase (a PDD has at least one row) and stay within pdd_rows.npy")
        pdd_rows = load_npy(folder, rows_file, "float64", 2, (a, b), shape[1:])
        offsets = offsets - a
        return ids, [pdd_rows[offsets[i]: offsets[i + 1]] for i in range(len(offsets) - 1)]
    if desc.layout == "matrix":
        name = f"{where}/matrix.npy"
        check_rows(name)
        return ids, load_npy(folder, name, desc.dtype, 2, (start, stop), shape)
    # stack: RDF (n, bins) or GRID (n, shells, bins), float32
    name = f"{where}/stack.npy"
    if descriptor.name == "grid" and not (folder / name).exists() and (folder / where / "window_values.npy").exists():  # type: ignore[attr-defined]
        s_file, l_file, v_file = (f"{where}/window_{x}.npy" for x in ("starts", "lengths", "values"))
        for f in (s_file, l_file):
            check_rows(f)
        starts = load_npy(folder, s_file, "int32", 2, (start, stop), shape[:1])
        lengths = load_npy(folder, l_file, "int32", 2, (start, stop), shape[:1])
        before = load_npy(folder, l_file, "int32", 2, (0, start), shape[:1]).sum(dtype=np.int64)
        count = int(lengths.sum(dtype=np.int64))
        bins = shape[1]
        if np.any(starts < 0) or np.any(lengths < 0) or np.any(starts.astype(np.int64) + lengths > bins):  # type: ignore[operator]
            raise BadTaskError(f"{s_file}: windows must lie within the {bins} bins of a shell")
        values = load_npy(folder, v_file, "float32", 1, (int(before), int(before) + count))
        return ids, _densify(starts, lengths, values, int(bins))  # type: ignore[arg-type]
    check_rows(name)
    return ids, load_npy(folder, name, "float32", 1 + len(shape), (start, stop), shape)


def write_invariants(
    folder: str | Path, descriptor: Any, ids: Sequence[str], arrays: Sequence[np.ndarray], where: str
) -> None:
    """Stage invariants in ``folder/where`` (created) in :func:`invariant_arrays`' layout."""
    target = Path(folder) / where
    target.mkdir(parents=True, exist_ok=True)
    for name, array in invariant_arrays(descriptor, ids, arrays).items():
        write_npy_atomic(target / f"{name}.npy", array)


def write_task(folder: str | Path, task: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``task`` (``schema_version`` defaults to the current one) and write it as
    ``folder/task.json``; returns what was written. Raises ``BadTaskError``."""
    from .schema import SCHEMA_VERSION

    data = {"schema_version": SCHEMA_VERSION, **dict(task)}
    parse_task(data)
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(folder) / TASK_FILE, data)
    return data


def read_result(folder: str | Path) -> dict[str, Any]:
    """The decoded ``folder/result.json`` (raises ``FileNotFoundError`` when the worker did
    not finish: it writes that file last)."""
    return json.loads((Path(folder) / RESULT_FILE).read_text(encoding="utf-8"))


def read_outputs(folder: str | Path) -> dict[str, np.ndarray]:
    """The ``.npy`` outputs listed in ``result.json`` (``out/<name>.npy`` -> ``name``)."""
    result = read_result(folder)
    out = {}
    for name in result.get("outputs", {}):
        with open(Path(folder) / OUTPUT_DIR / name, "rb") as handle:
            out[name.removesuffix(".npy")] = np.load(handle, allow_pickle=False)
    return out
