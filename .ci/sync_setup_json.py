"""Write setup.json (AiiDA plugin-registry metadata) from pyproject.toml.

Run after changing pyproject.toml: ``.venv/bin/python .ci/sync_setup_json.py``.
tests/pure/test_metadata.py fails while the two disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def setup_json_from_pyproject() -> dict:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    entry_points = {group: [f"{name} = {target}" for name, target in eps.items()]
                    for group, eps in project.get("entry-points", {}).items()}
    entry_points["console_scripts"] = [f"{n} = {t}" for n, t in project.get("scripts", {}).items()]
    return {
        "name": project["name"],
        "version": project["version"],
        "description": project["description"],
        "author": ", ".join(a["name"] for a in project.get("authors", [])),
        "license": project["license"] if isinstance(project["license"], str) else project["license"]["text"],
        "classifiers": project["classifiers"],
        "python_requires": project["requires-python"],
        "install_requires": project["dependencies"],
        "extras_require": project["optional-dependencies"],
        "entry_points": entry_points,
        "reentry_register": True,
    }


if __name__ == "__main__":
    (ROOT / "setup.json").write_text(json.dumps(setup_json_from_pyproject(), indent=4) + "\n")
    sys.stdout.write("setup.json written\n")
