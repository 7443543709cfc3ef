"""Loaders for the shared real datasets used by the benchmarks (no AiiDA import).

The datasets sit beside the project in ``../shared/datasets`` (override with the
``CRYSTINV_DATASETS`` environment variable). They are never copied into the repository.
Every loader returns ``(ids, structures, targets)``:

* ``ids`` -- list of str, one per record;
* ``structures`` -- list of pymatgen ``Structure``;
* ``targets`` -- dict of target name -> (n,) float array (units in each docstring).

A missing file raises :class:`DatasetMissing` (a ``FileNotFoundError``) so that callers
can skip with a clear reason.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["DATASETS", "DatasetMissing", "dataset_file", "load_carbon24", "load_perov5", "load_mp"]

DATASETS = Path(
    os.environ.get("CRYSTINV_DATASETS", Path(__file__).resolve().parents[1].parent / "shared" / "datasets")
)


class DatasetMissing(FileNotFoundError):
    """A shared dataset file is not on this machine (skip, do not fail)."""


def dataset_file(name: str) -> Path:
    """Path of a shared dataset file; raises :class:`DatasetMissing` when absent."""
    path = DATASETS / name
    if not path.exists():
        raise DatasetMissing(f"dataset {path} not found (the shared datasets sit beside the project; "
                             "set CRYSTINV_DATASETS to their folder)")
    return path


def _subsample(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of size ``n`` (all when n is None)."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    if n < 1:
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=n, replace=False))


def _parse_cif(text: str):
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser = CifParser(io.StringIO(text))
        return parser.parse_structures(primitive=False)[0]


def _read_csv(name: str, targets: list[str], n: int | None, seed: int):
    path = dataset_file(name)
    with gzip.open(path, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    idx = _subsample(len(rows), n, seed)
    rows = [rows[i] for i in idx]
    ids = [str(r["material_id"]) for r in rows]
    structures = [_parse_cif(r["cif"]) for r in rows]
    out = {t: np.array([float(r[t]) if r[t] != "" else np.nan for r in rows]) for t in targets}
    return ids, structures, out


def load_carbon24(n: int | None = None, seed: int = 0):
    """Carbon-24 polymorphs (AIRSS, 10 GPa). Target ``energy_per_atom`` in eV/atom.

    Args:
        n: a seeded random subset of this many records (all when None).
        seed: seed of the subset.
    """
    return _read_csv("carbon24.csv.gz", ["energy_per_atom"], n, seed)


def load_perov5(n: int | None = None, seed: int = 0):
    """Perov-5 ABX3 perovskites. Targets ``heat_ref``, ``heat_all`` (eV), ``dir_gap``,
    ``ind_gap`` (eV)."""
    return _read_csv("perov5.csv.gz", ["heat_ref", "heat_all", "dir_gap", "ind_gap"], n, seed)


def load_mp(n: int | None = None, seed: int = 0):
    """Materials Project binaries with elastic moduli. Targets ``bulk_modulus_vrh`` and
    ``shear_modulus_vrh`` in GPa."""
    from pymatgen.core import Structure

    path = dataset_file("mp_elasticity_binaries.json.gz")
    with gzip.open(path, "rt") as fh:
        records = json.load(fh)
    idx = _subsample(len(records), n, seed)
    records = [records[i] for i in idx]
    ids = [str(r["mp_id"]) for r in records]
    structures = [Structure.from_dict(r["structure"]) for r in records]
    targets = {
        t: np.array([np.nan if r.get(t) is None else float(r[t]) for r in records])
        for t in ("bulk_modulus_vrh", "shear_modulus_vrh")
    }
    return ids, structures, targets


# ---------------------------------------------------------------------------- every real structure
def load_t2():
    """The 9 experimental T2 crystals (one multi-block CIF, each block parsed on its own).
    No targets. Returns ``(ids, structures, targets)``; blocks that do not parse are left
    out (:func:`load_all_real` reports them)."""
    ids, structures, _failed = _t2_records()
    return ids, structures, {}


def _t2_records():
    from aiida_crystinv.sources import read_cif  # pure (no AiiDA import)

    path = dataset_file("T2_experimental.cif")
    result = read_cif(path.read_bytes(), path.name)
    failed = [(str(f["id"]), str(f["reason"])) for f in result.failed]
    return [str(r.id) for r in result.records], [r.structure for r in result.records], failed


def load_all_real():
    """Every structure of the four shared datasets, parsed record by record.

    Returns:
        ``{source: (ids, structures, failed)}`` for ``mp``, ``carbon24``, ``perov5`` and
        ``t2`` (a missing file: no entry); ``failed`` lists ``(id, reason)`` of the records
        that could not be parsed. Ids are the datasets' own (not unique across sources).
    """
    from pymatgen.core import Structure

    out = {}

    def csv_records(name):
        with gzip.open(dataset_file(name), "rt", newline="") as fh:
            rows = list(csv.DictReader(fh))
        ids, structures, failed = [], [], []
        for r in rows:
            try:
                structures.append(_parse_cif(r["cif"]))
                ids.append(str(r["material_id"]))
            except Exception as exc:  # noqa: BLE001 - a record that does not parse is skipped
                failed.append((str(r.get("material_id")), f"{type(exc).__name__}: {exc}"))
        return ids, structures, failed

    def mp_records():
        with gzip.open(dataset_file("mp_elasticity_binaries.json.gz"), "rt") as fh:
            records = json.load(fh)
        ids, structures, failed = [], [], []
        for r in records:
            try:
                structures.append(Structure.from_dict(r["structure"]))
                ids.append(str(r["mp_id"]))
            except Exception as exc:  # noqa: BLE001
                failed.append((str(r.get("mp_id")), f"{type(exc).__name__}: {exc}"))
        return ids, structures, failed

    loaders = {
        "mp": mp_records,
        "carbon24": lambda: csv_records("carbon24.csv.gz"),
        "perov5": lambda: csv_records("perov5.csv.gz"),
        "t2": _t2_records,
    }
    for source, load in loaders.items():
        try:
            out[source] = load()
        except DatasetMissing:
            continue
    return out


def peak_rss_mb() -> float:
    """This process's peak RSS, MiB: ``VmHWM`` of ``/proc/self/status`` where there is one.

    Not ``getrusage``: Linux keeps ``ru_maxrss`` across ``exec``, so a process started
    directly by a large one (a benchmark's main process) reports the parent's peak.
    """
    import resource
    import sys

    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
