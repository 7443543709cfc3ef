"""setup.json (plugin-registry metadata) must say what pyproject.toml says."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_setup_json_matches_pyproject():
    spec = importlib.util.spec_from_file_location("sync", ROOT / ".ci" / "sync_setup_json.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    expected = sync.setup_json_from_pyproject()
    actual = json.loads((ROOT / "setup.json").read_text())
    assert actual == expected, "setup.json is stale: run .venv/bin/python .ci/sync_setup_json.py"


def test_entry_points_resolve():
    """Every declared entry point names a module attribute that exists."""
    import importlib

    actual = json.loads((ROOT / "setup.json").read_text())
    for group, eps in actual["entry_points"].items():
        for line in eps:
            name, target = (x.strip() for x in line.split("="))
            module, attr = target.split(":")
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            assert obj is not None, f"{group} {name}"
