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
