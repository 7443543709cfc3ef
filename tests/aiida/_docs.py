"""Examples of the docs read by the tests that run them (one place for the parsing)."""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def yaml_block(doc: str, heading: str) -> str:
    """The first ```yaml block under ``heading`` (e.g. ``'## In a study'``) of ``docs/<doc>``,
    up to the next heading of the same level."""
    text = (ROOT / "docs" / doc).read_text()
    marks = heading.split(" ", 1)[0]
    section = text.split(f"\n{heading}\n", 1)[1].split(f"\n{marks} ", 1)[0]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def write_study(folder: pathlib.Path, text: str) -> pathlib.Path:
    """``text`` written as ``folder/study.yaml``; returns the path."""
    path = folder / "study.yaml"
    path.write_text(text)
    return path
