"""Study files: read, validate and turn into the inputs of the ``StudyWorkChain``.

:func:`load_study` reads a YAML file, :func:`validate_study` checks it with the spec
(:mod:`aiida_crystinv.specs.study`) and what only the environment can tell (files exist,
the hand-off workflow loads, the worker code exists), :func:`build_study_inputs` makes the
nodes the WorkChain takes. Errors are :class:`StudyError`, naming the key.
"""

from __future__ import annotations

import pathlib
from typing import Any

from aiida import orm

from ..data import CrystalDatasetData
from ..specs import SpecError
from ..specs.study import load_yaml, parse_study

__all__ = ["StudyError", "validate_study", "load_study", "build_study_inputs"]


class StudyError(SpecError):
    """A study file that cannot be run; the message names the file, the key and the fix."""


def _load_worker_code(label: str, where: str) -> Any:
    """The worker code of ``jobs.code``; :class:`StudyError` when it is not there or not the worker."""
    try:
        code = orm.load_code(label)
    except Exception as exc:  # noqa: BLE001 - NotExistent, MultipleObjectsError, no profile ...
        raise StudyError(f"{where}.jobs.code: {label!r} cannot be loaded ({exc}); `verdi code list` shows the codes, "
                         "`crystinv setup-worker COMPUTER` sets the worker up") from None
    if code.default_calc_job_plugin not in (None, "crystinv.worker"):
        raise StudyError(f"{where}.jobs.code: {label!r} runs {code.default_calc_job_plugin}, not the crystinv worker")
    return code


def _check_environment(study: dict[str, Any], where: str) -> None:
    """What the pure spec cannot know: files exist, the hand-off entry point loads and
    takes the inputs template."""
    for role, source in study["sources"].items():
        if source["kind"] == "file" and not pathlib.Path(source["path"]).exists():
            raise StudyError(f"{where}: the {role} file {source['path']} does not exist (relative paths are relative "
                             "to the study file)")
    jobs = study.get("jobs")
    if jobs:
        _load_worker_code(jobs["code"], where)
    for section in ("screening", "loop"):
        handoff = (study.get(section) or {}).get("handoff")
        if not handoff:
            continue
        from .handoff import HandoffPlan, handoff_nodes

        try:
            HandoffPlan(handoff_nodes(handoff))
        except (LookupError, ValueError) as exc:
            raise StudyError(f"{where}.{section}.handoff: {exc}") from None


def validate_study(raw: Any, base: str | pathlib.Path = ".", where: str = "study", check_files: bool = True) -> dict[str, Any]:
    """The normalised plan of a study (the parsed YAML); see :class:`aiida_crystinv.specs.study.StudySpec`.

    Raises:
        StudyError: the first problems, each naming its key.
    """
    try:
        study = parse_study(raw, where, base=base).plan()
    except SpecError as exc:
        raise StudyError(str(exc)) from None
    if check_files:
        _check_environment(study, where)
    return study


def load_study(path: str | pathlib.Path) -> dict[str, Any]:
    """Read and validate a study YAML file; see :func:`validate_study`.

    Raises:
        StudyError: unreadable file, invalid YAML, or an invalid study.
    """
    import yaml

    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StudyError(f"cannot read the study file {path}: {exc.strerror or exc}") from None
    try:
        raw = load_yaml(text)  # refuses a key given twice
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StudyError(f"{path.name}: not valid YAML{where}: {problem}") from None
    study = validate_study(raw, base=path.resolve().parent, where=path.name)
    study["file"] = str(path.resolve())
    return study


def build_study_inputs(study: dict[str, Any]) -> dict[str, Any]:
    """Inputs of :class:`StudyWorkChain` for a validated study (file sources are read into
    ``SinglefileData`` / ``FolderData`` nodes, ``dataset`` sources loaded)."""
    files: dict[str, Any] = {}
    datasets: dict[str, Any] = {}
    for role, source in study["sources"].items():
        if source["kind"] == "file":
            path = pathlib.Path(source["path"])
            if path.is_dir():
                files[role] = orm.FolderData(tree=path)
            else:
                with path.open("rb") as handle:
                    files[role] = orm.SinglefileData(handle, filename=path.name)
        elif source["kind"] == "dataset":
            try:
                node = orm.load_node(source["identifier"])
            except Exception as exc:  # noqa: BLE001
                raise StudyError(f"source {role}: cannot load dataset {source['identifier']!r} ({exc})") from None
            if not isinstance(node, CrystalDatasetData):
                raise StudyError(f"source {role}: node {node.pk} is a {type(node).__name__}, not a crystal dataset")
            datasets[role] = node
    inputs: dict[str, Any] = {"study": orm.Dict(study), "metadata": {"label": study.get("name", "study")}}
    inputs["training"] = {"target": orm.Str(study["target"]["name"])}
    if study["split"]["kind"] != "test":
        inputs["training"]["split"] = orm.Dict(study["split"])
    if files:
        inputs["files"] = files
    if datasets:
        inputs["datasets"] = datasets
    if study.get("jobs"):
        inputs["code"] = _load_worker_code(study["jobs"]["code"], "study")
    return inputs
