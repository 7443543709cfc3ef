"""What a study starts from: the check of a ``StudyWorkChain``'s inputs at its ports, and
the reuse of a dataset imported earlier from the same source."""

from __future__ import annotations

from typing import Any, Mapping

from aiida import orm

from ..data import CrystalDatasetData
from ..data._arrays import jsonable

__all__ = ["find_imported_dataset", "validate_study_inputs"]


def find_imported_dataset(source: Mapping[str, Any], file: Any = None) -> CrystalDatasetData | None:
    """A dataset made earlier from the same source, found by query (or None).

    * ``synthetic``: made by ``synthetic_dataset`` with the same parameters (deterministic);
    * ``file``: made by ``import_dataset`` from a file with the same content (MD5 recorded
      in the dataset's ``source``) and the same options.

    Groups and Materials Project queries can change between runs: they are always
    imported again.
    """
    import hashlib

    kind = source["kind"]
    if kind == "synthetic":
        label, wanted, extra = "synthetic_dataset", {"parameters": source["parameters"]}, {}
    elif kind == "file" and isinstance(file, orm.SinglefileData):
        md5 = hashlib.md5(file.get_content(mode="rb")).hexdigest()  # noqa: S324 - a checksum
        label, wanted = "import_dataset", {"options": source["options"]}
        extra = {"attributes.source.source_md5": md5}
    else:
        return None
    (port, params), = wanted.items()
    qb = orm.QueryBuilder()
    qb.append(orm.CalcFunctionNode, filters={"attributes.process_label": label, "attributes.exit_status": 0}, tag="calc")
    qb.append(orm.Dict, with_outgoing="calc", edge_filters={"label": port}, project="attributes")
    qb.append(CrystalDatasetData, with_incoming="calc", filters=extra, project="*", tag="dataset")
    qb.order_by({"dataset": {"id": "desc"}})
    for attributes, dataset in qb.iterall():
        if jsonable(attributes) == jsonable(params):
            return dataset
    return None


def validate_study_inputs(inputs: Any, _ctx: Any = None) -> str | None:
    """The study plan is complete, and every file or dataset source has its node."""
    if "study" not in inputs:
        return None
    study = inputs["study"].get_dict()
    missing = [k for k in ("target", "sources", "descriptors", "models", "pairs", "split") if k not in study]
    if missing or "train" not in study.get("sources", {}):
        return f"the study lacks {', '.join(missing) or 'a train source'}: build it with load_study() / StudySpec.plan()"
    files, datasets = inputs.get("files", {}) or {}, inputs.get("datasets", {}) or {}
    for role, source in study["sources"].items():
        if role in datasets:
            continue
        if source["kind"] == "file" and role not in files:
            return f"the {role} source is a file but files.{role} is not given"
        if source["kind"] == "dataset":
            return f"the {role} source is a dataset but datasets.{role} is not given"
    audit = study.get("audit")
    if audit is not None and not (isinstance(audit, Mapping) and isinstance(audit.get("descriptors"), list)
                                  and isinstance(audit.get("parameters"), Mapping)):
        return "the study's audit needs descriptors (a list) and parameters (a mapping): build it with load_study()"
    if study.get("jobs") and "code" not in inputs:
        return f"the study's jobs.code {study['jobs']['code']!r} is not given as the code input"
    training = inputs.get("training", {}) or {}
    if "target" in training and training["target"].value != study["target"]["name"]:
        return f"training.target {training['target'].value!r} is not the study's target {study['target']['name']!r}"
    if "split" in training:
        if study["split"]["kind"] == "test":
            return "training.split was given but the study evaluates on an explicit test set"
        from ..specs.learning import parse_split

        if parse_split(training["split"].get_dict()).as_dict() != study["split"]:
            return f"training.split {training['split'].get_dict()} is not the study's split {study['split']}"
    return None
