"""Shared test fixtures: where the real datasets live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("CRYSTINV_DATASETS", ROOT.parent / "shared" / "datasets"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def dataset_path(name: str) -> Path:
    """Path of a shared dataset; skips the test (fails in CI) when it is absent."""
    path = DATASETS / name
    if not path.exists():
        if IN_CI:
            pytest.fail(f"dataset {path} is missing in CI")
        pytest.skip(f"dataset {path} not found (the shared datasets sit beside the project)")
    return path


def require_module(name: str, extra: str = "repr"):
    """Import an optional dependency; skip the module's tests without it (fail in CI, where
    the test command installs the extra)."""
    try:
        return __import__(name)
    except ImportError:
        if IN_CI:
            pytest.fail(f"{name} is missing in CI (install the '{extra}' extra)", pytrace=False)
        pytest.skip(f"{name} is not installed (the '{extra}' extra)", allow_module_level=True)


def read_csv_structures(name: str, n: int | None = None, target: str | None = None):
    """The first ``n`` records of a shared CSV dataset (``cif`` column) as pymatgen Structures.

    Returns ``(ids, structures)`` or, with ``target``, ``(ids, structures, targets)``.
    """
    import csv
    import gzip
    import warnings

    from pymatgen.core import Structure

    csv.field_size_limit(1 << 30)
    path = dataset_path(name)
    ids, structures, targets = [], [], []
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if n is not None and len(ids) >= n:
                break
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structures.append(Structure.from_str(row["cif"], fmt="cif"))
            ids.append(row["material_id"])
            if target:
                targets.append(float(row[target]))
    return (ids, structures, targets) if target else (ids, structures)
