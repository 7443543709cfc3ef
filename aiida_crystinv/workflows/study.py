"""A study: one YAML file -> one ``StudyWorkChain`` -> a short report.

The YAML file says where the structures come from, which target to learn, which
descriptors and models to try, how to evaluate them and, optionally, what to screen::

    name: ewald-landscape
    source:                       # exactly one of: file, group, materials_project, synthetic, dataset
      synthetic: {generator: ewald_landscape, n: 200, seed: 0}
    target: ewald_energy_per_atom  # or {name: bulk_modulus_vrh, transform: log10}
    descriptors:
      - {name: pdd, k: 50}
      - {name: amd+composition, amd: {k: 50}}
    models:
      - {name: knn, k: [1, 3, 5, 10]}
      - {name: krr, kernel: laplacian, descriptors: [amd_composition]}   # only these
    split: {kind: kfold, n_splits: 5, seed: 0}   # or {kind: holdout, test_fraction: 0.2}
                                                 # or {kind: test, source: {file: my_csp.cif}}
    screening:
      candidates: {synthetic: {n: 60, seed: 1}}
      model: best                  # or {descriptor: pdd, model: knn}
      top: 5
      order: lowest
      group: ewald-candidates
      handoff: {workflow: crystinv.ewald_energy, inputs: {}}

:func:`load_study` reads and validates it (unknown keys, missing target, unknown
descriptors / models / entry points, missing files -- with the offending key in the
message) into a normalised JSON dict; :func:`build_study_inputs` turns that into the
inputs of :class:`StudyWorkChain` (file sources become ``SinglefileData`` inputs, so the
study's provenance starts at the file); :func:`write_report` writes ``report.md``, the
parity plots and the node identifiers of a finished study.

The StudyWorkChain imports the sources (calcfunctions), computes (or finds by query) each
descriptor once, runs one :class:`~aiida_crystinv.workflows.training.TrainingWorkChain`
per compatible (descriptor, model) pair with the same split for all, summarises the
metrics in one ``Dict`` and, if asked, runs a
:class:`~aiida_crystinv.workflows.screening.ScreeningWorkChain` with the best model.
"""

from __future__ import annotations

import difflib
import os
import pathlib
import re
from typing import Any, Mapping

from aiida import orm
from aiida.engine import ExitCode, ToContext, WorkChain, calcfunction, if_

from ..data import CrystalDatasetData, InvariantsData
from ..data._arrays import jsonable
from ..data.model import ModelSpecError, resolve_model_descriptor, resolve_model_spec
from .screening import ScreeningWorkChain, resolve_selection
from .training import TrainingWorkChain, find_features, find_invariants

__all__ = [
    "StudyError",
    "StudyWorkChain",
    "load_study",
    "validate_study",
    "build_study_inputs",
    "run_study",
    "summarize_study",
    "find_imported_dataset",
    "write_report",
    "metrics_table",
    "STUDY_KEYS",
    "SOURCE_KINDS",
]

#: Top-level keys of a study file.
STUDY_KEYS = ("name", "description", "source", "target", "descriptors", "models", "split", "screening")
#: Kinds of source, one key each.
SOURCE_KINDS = ("file", "group", "materials_project", "synthetic", "dataset")
#: Options of a file source (passed to ``import_dataset``).
FILE_OPTIONS = ("format", "id_column", "cif_column", "target_columns", "units", "on_error", "structure_key")
SCREENING_KEYS = ("candidates", "model", "top", "threshold", "order", "group", "handoff")
HANDOFF_KEYS = ("workflow", "inputs", "structure_input")


class StudyError(ValueError):
    """A study file that cannot be run; the message names the file, the key and the fix."""


# ------------------------------------------------------------------------------- validation


def _unknown(keys: Any, allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise StudyError(f"{where}: unknown key(s) {', '.join(hints)}; allowed: {', '.join(allowed)}")


def _label(text: str) -> str:
    label = re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_").lower() or "x"
    return f"x{label}" if label[0].isdigit() else label


def _unique(label: str, taken: set[str]) -> str:
    out, n = label, 2
    while out in taken:
        out = f"{label}_{n}"
        n += 1
    taken.add(out)
    return out


def _tabular(path: pathlib.Path, options: Mapping[str, Any]) -> bool:
    """True for a CSV or JSON file (which have target columns), False for CIF files and folders."""
    from ..sources import SourceError, detect_format

    if path.is_dir():
        return False
    fmt = options.get("format")
    if fmt is None:
        try:
            fmt = detect_format(path.name)
        except SourceError:
            return False
    return str(fmt).lower() in ("csv", "json")


def _source(raw: Any, where: str, base: pathlib.Path, target: str | None, check_files: bool) -> dict[str, Any]:
    """A normalised source ``{'kind': ..., ...}``."""
    if isinstance(raw, str):
        raw = {"file": raw}
    if not isinstance(raw, Mapping):
        raise StudyError(f"{where} must be a mapping with one of {', '.join(SOURCE_KINDS)}, got {raw!r}")
    raw = dict(raw)
    kinds = [k for k in SOURCE_KINDS if k in raw]
    if len(kinds) != 1:
        raise StudyError(
            f"{where} needs exactly one of {', '.join(SOURCE_KINDS)}"
            + (f"; it has {', '.join(kinds)}" if kinds else f"; it has {', '.join(map(str, raw)) or 'nothing'}")
        )
    kind = kinds[0]
    value = raw.pop(kind)
    if kind == "file":
        _unknown(raw, FILE_OPTIONS, where)
        path = pathlib.Path(os.path.expanduser(os.path.expandvars(str(value))))
        if not path.is_absolute():
            path = (base / path).resolve()
        if check_files and not path.exists():
            raise StudyError(f"{where}.file: {path} does not exist (relative paths are relative to the study file)")
        options = dict(raw)
        if _tabular(path, options) and "target_columns" not in options:
            options["target_columns"] = [target] if target is not None else []
        if "on_error" in options and options["on_error"] not in ("fail", "skip"):
            raise StudyError(f"{where}.on_error must be 'fail' or 'skip', got {options['on_error']!r}")
        return {"kind": "file", "path": str(path), "options": jsonable(options)}
    if kind == "group":
        _unknown(raw, ("on_error",), where)
        return {"kind": "group", "label": str(value), "options": jsonable(raw)}
    if kind == "materials_project":
        if not isinstance(value, Mapping) or not isinstance(value.get("query"), Mapping) or not value["query"]:
            raise StudyError(f"{where}.materials_project needs a non-empty 'query' mapping (mp-api summary search arguments)")
        value = dict(value)
        _unknown(value, ("query", "properties", "units", "on_error"), f"{where}.materials_project")
        if any(str(k).lower() in {"api_key", "key", "token"} for k in value["query"]):
            raise StudyError(f"{where}: never put an API key in a study file; set MP_API_KEY in the environment")
        options = {k: value[k] for k in ("properties", "units", "on_error") if k in value}
        if target is not None and "properties" not in options:
            options["properties"] = [target]
        return {"kind": "materials_project", "query": jsonable(dict(value["query"])), "options": jsonable(options)}
    if kind == "synthetic":
        value = {} if value is None else dict(value)
        _unknown(value, ("generator", "n", "seed", "duplicate_fraction", "max_atoms"), f"{where}.synthetic")
        value.setdefault("generator", "ewald_landscape")
        if value["generator"] != "ewald_landscape":
            raise StudyError(f"{where}.synthetic.generator: unknown generator {value['generator']!r}; use ewald_landscape")
        return {"kind": "synthetic", "parameters": jsonable(value)}
    _unknown(raw, (), where)
    return {"kind": "dataset", "identifier": str(value)}


def validate_study(raw: Any, base: str | pathlib.Path = ".", where: str = "study", check_files: bool = True) -> dict[str, Any]:
    """Validate and normalise a study (the parsed YAML); see the module docstring.

    Args:
        raw: the parsed YAML mapping.
        base: folder that relative file paths are relative to.
        where: name used in messages (the file name).
        check_files: check that files exist and entry points load.

    Raises:
        StudyError: the first problem, naming the key.
    """
    base = pathlib.Path(base)
    if not isinstance(raw, Mapping):
        raise StudyError(f"{where}: a study is a YAML mapping with keys {', '.join(STUDY_KEYS)}")
    raw = dict(raw)
    _unknown(raw, STUDY_KEYS, where)
    for key in ("source", "target", "descriptors", "models"):
        if raw.get(key) in (None, "", [], {}):
            raise StudyError(f"{where}: '{key}' is missing" + (" (the name of the property to learn, e.g. energy_per_atom)" if key == "target" else ""))
    target = raw["target"]
    if isinstance(target, str):
        target = {"name": target}
    if not isinstance(target, Mapping) or not isinstance(target.get("name"), str) or not target["name"]:
        raise StudyError(f"{where}.target: give the target's name, e.g. 'target: energy_per_atom' or {{name: ..., transform: log10}}")
    target = dict(target)
    _unknown(target, ("name", "transform"), f"{where}.target")
    if target.get("transform") not in (None, "log10"):
        raise StudyError(f"{where}.target.transform: use log10 (or leave it out), got {target['transform']!r}")

    def items(key: str) -> list[dict[str, Any]]:
        value = raw[key]
        if isinstance(value, (str, Mapping)):
            value = [value]
        if not isinstance(value, list):
            raise StudyError(f"{where}.{key} must be a list")
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                item = {"name": item}
            if not isinstance(item, Mapping) or "name" not in item:
                raise StudyError(f"{where}.{key}[{i}] must be a name or a mapping with a 'name', got {item!r}")
            out.append(dict(item))
        return out

    descriptors, taken = [], set()
    for i, item in enumerate(items("descriptors")):
        label = item.pop("label", None)
        try:
            spec = resolve_model_descriptor(item)
        except ModelSpecError as exc:
            raise StudyError(f"{where}.descriptors[{i}]: {exc}") from None
        descriptors.append({"label": _unique(_label(label or spec["name"]), taken), "spec": spec})
    models, taken = [], set()
    for i, item in enumerate(items("models")):
        label = item.pop("label", None)
        only = item.pop("descriptors", None)
        if only is not None:
            only = [only] if isinstance(only, str) else list(only)
            known = [d["label"] for d in descriptors]
            wrong = [o for o in only if _label(o) not in known]
            if wrong:
                raise StudyError(f"{where}.models[{i}].descriptors: no descriptor labelled {wrong}; the labels are {known}")
            only = [_label(o) for o in only]
        if target.get("transform") and item.get("name") in ("knn", "krr"):
            item.setdefault("target_transform", target["transform"])
        try:
            resolve_model_spec(item)
        except ModelSpecError as exc:
            raise StudyError(f"{where}.models[{i}]: {exc}") from None
        models.append({"label": _unique(_label(label or item["name"]), taken), "spec": jsonable(item), "descriptors": only})
    pairs, skipped = [], []
    for d in descriptors:
        for m in models:
            if m["descriptors"] is not None and d["label"] not in m["descriptors"]:
                continue
            try:
                resolve_model_spec(m["spec"], d["spec"])
            except ModelSpecError as exc:
                skipped.append({"descriptor": d["label"], "model": m["label"], "reason": str(exc)})
                continue
            pairs.append({"label": f"{m['label']}_on_{d['label']}", "descriptor": d["label"], "model": m["label"]})
    if not pairs:
        reasons = "; ".join(f"{s['model']} on {s['descriptor']}: {s['reason']}" for s in skipped)
        raise StudyError(f"{where}: no model can be trained on any descriptor ({reasons})")

    sources = {"train": _source(raw["source"], f"{where}.source", base, target["name"], check_files)}
    split = raw.get("split") or {"kind": "kfold"}
    if not isinstance(split, Mapping):
        raise StudyError(f"{where}.split must be a mapping such as {{kind: kfold, n_splits: 5, seed: 0}}")
    split = dict(split)
    if split.get("kind") == "test":
        _unknown(split, ("kind", "source"), f"{where}.split")
        if "source" not in split:
            raise StudyError(f"{where}.split: a test split needs a 'source' (the test set), e.g. {{file: my_structures.cif}}")
        sources["test"] = _source(split["source"], f"{where}.split.source", base, target["name"], check_files)
        split = {"kind": "test"}
    else:
        from ..calculations.learning import resolve_split

        try:
            split = resolve_split(split)
        except ValueError as exc:
            raise StudyError(f"{where}.split: {exc} (or kind: test with a source)") from None

    screening = None
    if raw.get("screening"):
        sc = raw["screening"]
        if not isinstance(sc, Mapping):
            raise StudyError(f"{where}.screening must be a mapping")
        sc = dict(sc)
        _unknown(sc, SCREENING_KEYS, f"{where}.screening")
        if "candidates" not in sc:
            raise StudyError(f"{where}.screening: 'candidates' (a source of candidate structures) is missing")
        sources["candidates"] = _source(sc["candidates"], f"{where}.screening.candidates", base, None, check_files)
        try:
            selection = resolve_selection({k: sc[k] for k in ("top", "threshold", "order") if k in sc} or {"top": 10})
        except ValueError as exc:
            raise StudyError(f"{where}.screening: {exc}") from None
        choice = sc.get("model", "best")
        if choice != "best":
            if not isinstance(choice, Mapping) or set(choice) != {"descriptor", "model"}:
                raise StudyError(f"{where}.screening.model: 'best' or {{descriptor: LABEL, model: LABEL}}, got {choice!r}")
            label = f"{_label(choice['model'])}_on_{_label(choice['descriptor'])}"
            if label not in [p["label"] for p in pairs]:
                raise StudyError(
                    f"{where}.screening.model: no trained pair {label!r}; the pairs are {', '.join(p['label'] for p in pairs)}"
                )
            choice = label
        handoff = None
        if sc.get("handoff"):
            handoff = dict(sc["handoff"]) if isinstance(sc["handoff"], Mapping) else {"workflow": sc["handoff"]}
            _unknown(handoff, HANDOFF_KEYS, f"{where}.screening.handoff")
            if not handoff.get("workflow"):
                raise StudyError(f"{where}.screening.handoff: 'workflow' (an entry point such as crystinv.ewald_energy) is missing")
            if check_files:
                from aiida.plugins import WorkflowFactory

                try:
                    process_class = WorkflowFactory(handoff["workflow"])
                except Exception as exc:  # noqa: BLE001
                    raise StudyError(
                        f"{where}.screening.handoff.workflow: {handoff['workflow']!r} is not an installed workflow entry point ({exc})"
                    ) from None
                from .screening import build_handoff_inputs

                try:
                    build_handoff_inputs(process_class, dict(handoff.get("inputs") or {}), handoff.get("structure_input", "structure"))
                except ValueError as exc:
                    raise StudyError(f"{where}.screening.handoff: {exc}") from None
            handoff = jsonable(handoff)
        screening = {"selection": selection, "model": choice, "group": sc.get("group"), "handoff": handoff}

    return jsonable(
        {
            "name": str(raw.get("name") or "study"),
            "description": str(raw.get("description") or ""),
            "target": {"name": target["name"], "transform": target.get("transform")},
            "sources": sources,
            "descriptors": descriptors,
            "models": models,
            "pairs": pairs,
            "skipped": skipped,
            "split": split,
            "screening": screening,
        }
    )


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
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StudyError(f"{path.name}: not valid YAML ({exc})") from None
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
    if files:
        inputs["files"] = files
    if datasets:
        inputs["datasets"] = datasets
    return inputs


def run_study(path: str | pathlib.Path, submit: bool = False):
    """Load, validate and run (or submit) a study file; returns ``(outputs, node)``."""
    from aiida.engine import submit as submit_process

    from .._runner import run_get_node_promptly

    inputs = build_study_inputs(load_study(path))
    if submit:
        return {}, submit_process(StudyWorkChain, **inputs)
    return run_get_node_promptly(StudyWorkChain, **inputs)


# ------------------------------------------------------------------------------- summary


@calcfunction
def summarize_study(study: orm.Dict, **metrics: orm.Dict):
    """One table of the evaluation metrics of every trained pair (``rows``, sorted by MAE)
    and the ``best`` pair's label."""
    info = study.get_dict()
    pairs = {p["label"]: p for p in info["pairs"]}
    rows = []
    for label, node in metrics.items():
        m = node.get_dict()
        pair = pairs.get(label, {"descriptor": "?", "model": "?"})
        rows.append(
            {
                "label": label,
                "descriptor": pair["descriptor"],
                "model": pair["model"],
                **{k: m.get(k) for k in ("mae", "median_ae", "rmse", "r2", "n", "baseline_mae", "baseline_median_ae", "unit")},
            }
        )
    rows.sort(key=lambda r: (r["mae"] is None, r["mae"]))
    if not rows:
        return ExitCode(300, "no metrics to summarise")
    split = info["split"]
    evaluation = {
        "kfold": f"{split.get('n_splits')}-fold cross-validation (seed {split.get('seed')})",
        "holdout": f"random hold-out of {split.get('test_fraction')} (seed {split.get('seed')})",
        "test": "explicit test set",
    }[split["kind"]]
    return {
        "summary": orm.Dict(
            jsonable(
                {
                    "name": info["name"],
                    "target": info["target"]["name"],
                    "unit": rows[0]["unit"],
                    "evaluation": evaluation,
                    "rows": rows,
                    "best": rows[0]["label"],
                    "skipped": info.get("skipped", []),
                }
            )
        )
    }


# ------------------------------------------------------------------------------- reuse


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


# ------------------------------------------------------------------------------- workchain


class StudyWorkChain(WorkChain):
    """A whole study: import, descriptors, one TrainingWorkChain per pair, summary, screening."""

    _ROLES = ("train", "test", "candidates")

    @classmethod
    def define(cls, spec):
        """Inputs, outline, outputs and exit codes."""
        super().define(spec)
        spec.input("study", valid_type=orm.Dict, help="The validated study (load_study / validate_study).")
        spec.input_namespace("files", valid_type=(orm.SinglefileData, orm.FolderData), dynamic=True, required=False,
                             help="File sources by role (train, test, candidates).")
        spec.input_namespace("datasets", valid_type=CrystalDatasetData, dynamic=True, required=False,
                             help="Datasets by role (train, test, candidates), instead of importing a source.")
        spec.outline(
            cls.setup,
            cls.import_sources,
            cls.prepare_descriptors,
            cls.inspect_descriptors,
            cls.train,
            cls.inspect_training,
            cls.summarize,
            if_(cls.should_screen)(cls.screen, cls.inspect_screening),
        )
        spec.output("summary", valid_type=orm.Dict, help="Metrics table of every pair, best first.")
        spec.output_namespace("datasets", valid_type=CrystalDatasetData, dynamic=True, help="The datasets by role.")
        spec.output_namespace("training", dynamic=True, help="Outputs of each TrainingWorkChain, by pair label.")
        spec.expose_outputs(ScreeningWorkChain, namespace="screening", namespace_options={"required": False})

        spec.exit_code(300, "ERROR_MISSING_TARGET", message="{message}")
        spec.exit_code(301, "ERROR_SOURCE_FAILED", message="a source could not be imported: {message}")
        spec.exit_code(310, "ERROR_INVALID_STUDY", message="invalid study: {message}")
        spec.exit_code(401, "ERROR_DESCRIPTOR_FAILED", message="a descriptor could not be computed: {message}")
        spec.exit_code(402, "ERROR_TRAINING_FAILED", message="every training failed: {message}")
        spec.exit_code(403, "ERROR_SCREENING_FAILED", message="the screening failed: {message}")

    # ------------------------------------------------------------------ steps
    def setup(self):
        """Re-validate the study and check that every source has its node."""
        study = self.inputs.study.get_dict()
        missing = [k for k in ("target", "sources", "descriptors", "models", "pairs", "split") if k not in study]
        if missing or "train" not in study.get("sources", {}):
            return self.exit_codes.ERROR_INVALID_STUDY.format(
                message=f"the study dict lacks {', '.join(missing) or 'a train source'}: build it with load_study() / validate_study()"
            )
        descriptors = {d["label"]: d["spec"] for d in study["descriptors"]}
        models = {m["label"]: m["spec"] for m in study["models"]}
        for pair in study["pairs"]:
            try:
                resolve_model_spec(models[pair["model"]], resolve_model_descriptor(descriptors[pair["descriptor"]]))
            except (KeyError, ModelSpecError) as exc:
                return self.exit_codes.ERROR_INVALID_STUDY.format(message=f"pair {pair.get('label')}: {exc}")
        self.ctx.study = study
        files = self.inputs.get("files", {})
        datasets = self.inputs.get("datasets", {})
        for role, source in study["sources"].items():
            if role in datasets:
                continue
            if source["kind"] == "file" and role not in files:
                return self.exit_codes.ERROR_INVALID_STUDY.format(message=f"the {role} source is a file but files.{role} is not given")
            if source["kind"] == "dataset":
                return self.exit_codes.ERROR_INVALID_STUDY.format(message=f"the {role} source is a dataset but datasets.{role} is not given")
        return None

    def import_sources(self):
        """Import every source into one dataset node (calcfunctions) and check the target."""
        from ..calculations.functions import import_dataset, import_materials_project
        from ..calculations.learning import import_group, synthetic_dataset

        study = self.ctx.study
        datasets = dict(self.inputs.get("datasets", {}))
        for role, source in study["sources"].items():
            if role in datasets:
                continue
            meta = {"call_link_label": f"import_{role}"}
            kind = source["kind"]
            found = find_imported_dataset(source, self.inputs.files.get(role) if "files" in self.inputs else None)
            if found is not None:
                datasets[role] = found
                self.report(f"{role} source ({kind}): reusing dataset <{found.pk}> imported earlier from the same source")
                continue
            if kind == "file":
                results, node = import_dataset.run_get_node(file=self.inputs.files[role], options=orm.Dict(source["options"]), metadata=meta)
            elif kind == "group":
                results, node = import_group.run_get_node(group=orm.Str(source["label"]), options=orm.Dict(source["options"]), metadata=meta)
            elif kind == "materials_project":
                results, node = import_materials_project.run_get_node(
                    query=orm.Dict(source["query"]), options=orm.Dict(source["options"]), metadata=meta
                )
            else:
                results, node = synthetic_dataset.run_get_node(parameters=orm.Dict(source["parameters"]), metadata=meta)
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_SOURCE_FAILED.format(message=f"{role} ({kind}): [{node.exit_status}] {node.exit_message}")
            datasets[role] = results["dataset"]
            self.report(f"{role} source ({kind}): dataset <{datasets[role].pk}> with {len(datasets[role])} records")
        target = study["target"]["name"]
        for role in ("train", "test"):
            if role in datasets and target not in datasets[role].target_names:
                return self.exit_codes.ERROR_MISSING_TARGET.format(
                    message=f"the {role} dataset <{datasets[role].pk}> has no target {target!r}; its targets are "
                    f"{datasets[role].target_names or 'none'}"
                )
        self.ctx.datasets = datasets
        for role, node in datasets.items():
            self.out(f"datasets.{role}", node)
        return None

    def prepare_descriptors(self):
        """Each descriptor once per dataset: found by query, computed as features, or
        computed by an InvariantsWorkChain."""
        from ..calculations.learning import compute_features
        from .invariants import InvariantsWorkChain

        needed = {p["descriptor"] for p in self.ctx.study["pairs"]}
        self.ctx.descriptor_values = {}
        roles = [r for r in ("train", "test") if r in self.ctx.datasets]
        for d in self.ctx.study["descriptors"]:
            if d["label"] not in needed:
                continue
            spec = d["spec"]
            for role in roles:
                dataset = self.ctx.datasets[role]
                key = f"{role}_{d['label']}"
                found = (find_invariants if spec["kind"] == "invariants" else find_features)(dataset, spec)
                if found is not None:
                    self.report(f"reusing {spec['name']} {spec['kind']} <{found.pk}> of the {role} dataset")
                    self.ctx.descriptor_values[key] = found
                elif spec["kind"] == "features":
                    results, node = compute_features.run_get_node(
                        dataset=dataset, descriptor=orm.Dict({"kind": "features", "name": spec["name"], "params": spec["params"]}),
                        metadata={"call_link_label": f"features_{key}"},
                    )
                    if not node.is_finished_ok:
                        return self.exit_codes.ERROR_DESCRIPTOR_FAILED.format(message=f"{key}: [{node.exit_status}] {node.exit_message}")
                    self.ctx.descriptor_values[key] = results["features"]
                else:
                    future = self.submit(
                        InvariantsWorkChain,
                        dataset=dataset,
                        descriptor=orm.Dict({"name": spec["name"], **spec["params"]}),
                        metadata={"call_link_label": f"invariants_{key}"},
                    )
                    self.to_context(**{f"invariants_{key}": future})
                    self.ctx.descriptor_values[key] = None
        return None

    def inspect_descriptors(self):
        """Collect the invariants computed by sub-workflows."""
        for key, value in self.ctx.descriptor_values.items():
            if value is not None:
                continue
            proc = self.ctx[f"invariants_{key}"]
            if not proc.is_finished_ok:
                return self.exit_codes.ERROR_DESCRIPTOR_FAILED.format(
                    message=f"{key}: InvariantsWorkChain <{proc.pk}> [{proc.exit_status}] {proc.exit_message}"
                )
            self.ctx.descriptor_values[key] = proc.outputs.invariants
        return None

    def train(self):
        """One TrainingWorkChain per (descriptor, model) pair, all with the same split."""
        study = self.ctx.study
        descriptors = {d["label"]: d for d in study["descriptors"]}
        models = {m["label"]: m for m in study["models"]}
        target = orm.Str(study["target"]["name"])
        split = orm.Dict(study["split"]) if study["split"]["kind"] != "test" else None
        for s in study.get("skipped", []):
            self.report(f"skipping {s['model']} on {s['descriptor']}: {s['reason']}")
        futures = {}
        for pair in study["pairs"]:
            d = descriptors[pair["descriptor"]]
            inputs: dict[str, Any] = {
                "dataset": self.ctx.datasets["train"],
                "target": target,
                "descriptor": orm.Dict({"kind": d["spec"]["kind"], "name": d["spec"]["name"], "params": d["spec"]["params"]}),
                "model": orm.Dict(models[pair["model"]]["spec"]),
                "metadata": {"call_link_label": f"training_{pair['label']}", "label": pair["label"]},
            }
            values = self.ctx.descriptor_values[f"train_{d['label']}"]
            inputs["invariants" if isinstance(values, InvariantsData) else "features"] = values
            if split is not None:
                inputs["split"] = split
            else:
                inputs["test_dataset"] = self.ctx.datasets["test"]
                test_values = self.ctx.descriptor_values[f"test_{d['label']}"]
                inputs["test_invariants" if isinstance(test_values, InvariantsData) else "test_features"] = test_values
            futures[f"training_{pair['label']}"] = self.submit(TrainingWorkChain, **inputs)
        self.report(f"launched {len(futures)} TrainingWorkChains")
        return ToContext(**futures)

    def inspect_training(self):
        """Expose the outputs of every successful training; fail only if all failed."""
        failed, self.ctx.trained = [], {}
        for pair in self.ctx.study["pairs"]:
            label = pair["label"]
            child = self.ctx[f"training_{label}"]
            if not child.is_finished_ok:
                failed.append(f"{label}: <{child.pk}> [{child.exit_status}] {child.exit_message}")
                continue
            self.ctx.trained[label] = child
            for link in child.base.links.get_outgoing(link_type=_return_link()).all():
                self.out(f"training.{label}.{link.link_label}", link.node)
        if not self.ctx.trained:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(message="; ".join(failed))
        if failed:
            self.report(f"{len(failed)} training(s) failed: " + "; ".join(failed))
        return None

    def summarize(self):
        """One metrics table (a calcfunction, so it is linked to every metrics node)."""
        metrics = {label: child.outputs.metrics for label, child in self.ctx.trained.items()}
        results, node = summarize_study.run_get_node(study=self.inputs.study, **metrics, metadata={"call_link_label": "summarize"})
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(message=node.exit_message)
        summary = results["summary"]
        self.out("summary", summary)
        best = summary["rows"][0]
        self.report(
            f"best: {best['label']} MAE {best['mae']:.4g} {best['unit']} (median predictor {best['baseline_mae']:.4g}) "
            f"by {summary['evaluation']}"
        )
        self.ctx.best = summary["best"]
        return None

    def should_screen(self) -> bool:
        return bool(self.ctx.study.get("screening"))

    def screen(self):
        """Screen the candidates with the chosen (default: the best) model."""
        sc = self.ctx.study["screening"]
        label = self.ctx.best if sc["model"] == "best" else sc["model"]
        if label not in self.ctx.trained:
            return self.exit_codes.ERROR_SCREENING_FAILED.format(message=f"the model {label!r} was not trained (its training failed)")
        child = self.ctx.trained[label]
        inputs: dict[str, Any] = {
            "model": child.outputs.model,
            "candidates": self.ctx.datasets["candidates"],
            "selection": orm.Dict({k: v for k, v in sc["selection"].items() if v is not None}),
            "metadata": {"call_link_label": "screening", "label": f"screening with {label}"},
        }
        if child.outputs.model.needs_reference:
            inputs["reference"] = child.outputs.invariants
        if sc.get("group"):
            inputs["group_label"] = orm.Str(sc["group"])
        if sc.get("handoff"):
            h = sc["handoff"]
            inputs["handoff"] = {"workflow": orm.Str(h["workflow"]), "inputs": orm.Dict(h.get("inputs") or {})}
            if h.get("structure_input"):
                inputs["handoff"]["structure_input"] = orm.Str(h["structure_input"])
        self.report(f"screening {len(self.ctx.datasets['candidates'])} candidates with {label}")
        return ToContext(screening=self.submit(ScreeningWorkChain, **inputs))

    def inspect_screening(self):
        """Expose the screening outputs."""
        child = self.ctx.screening
        self.out_many(self.exposed_outputs(child, ScreeningWorkChain, namespace="screening"))
        if not child.is_finished_ok:
            return self.exit_codes.ERROR_SCREENING_FAILED.format(message=f"<{child.pk}> [{child.exit_status}] {child.exit_message}")
        return None


def _return_link():
    from aiida.common.links import LinkType

    return (LinkType.RETURN,)


# ------------------------------------------------------------------------------- report


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def metrics_table(summary: Mapping[str, Any], markdown: bool = False) -> str:
    """The metrics table of a study summary (plain text, or a Markdown table)."""
    unit = summary.get("unit") or ""
    headers = ["model", "descriptor", f"MAE ({unit})", f"median AE ({unit})", f"RMSE ({unit})", "R2", "n",
               f"median-predictor MAE ({unit})"]
    rows = [
        [r["model"], r["descriptor"], _fmt(r["mae"]), _fmt(r["median_ae"]), _fmt(r["rmse"]), _fmt(r["r2"], 3), _fmt(r["n"]),
         _fmt(r["baseline_mae"])]
        for r in summary["rows"]
    ]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    from tabulate import tabulate

    return tabulate(rows, headers=headers, disable_numparse=True)


def write_report(node: orm.WorkflowNode, directory: str | pathlib.Path | None = None) -> pathlib.Path:
    """Write ``report.md``, the parity plots (``parity_<pair>.png``) and the node table of
    a finished StudyWorkChain into ``directory`` (default ``./crystinv-study-<pk>``).

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: the node is not a finished StudyWorkChain with a summary.
    """
    outputs = node.outputs
    if "summary" not in outputs:
        state = "finished" if node.is_finished else "not finished"
        raise ValueError(
            f"process <{node.pk}> has no study summary ({state}, exit status {node.exit_status}: {node.exit_message}); "
            f"see `verdi process report {node.pk}`"
        )
    directory = pathlib.Path(directory or f"crystinv-study-{node.pk}")
    directory.mkdir(parents=True, exist_ok=True)
    summary = outputs.summary.get_dict()
    study = node.inputs.study.get_dict()
    lines = [f"# Study: {summary['name']}", ""]
    if study.get("description"):
        lines += [study["description"], ""]
    lines += [
        f"- study file: `{study.get('file', '-')}`",
        f"- StudyWorkChain: pk {node.pk}, uuid `{node.uuid}` (`verdi process show {node.pk}`, "
        f"`verdi node graph generate --process-out --process-in {node.pk}`)",
        f"- target: `{summary['target']}` ({summary['unit'] or 'no unit'})"
        + (f", models fitted on log10 of it" if study["target"].get("transform") == "log10" else ""),
        f"- evaluation: {summary['evaluation']}; the same split for every model",
    ]
    datasets = outputs.datasets if "datasets" in outputs else {}
    for role in ("train", "test", "candidates"):
        if role in datasets:
            ds = datasets[role]
            lines.append(f"- {role} dataset: {len(ds)} records, pk {ds.pk}, uuid `{ds.uuid}`")
    lines += ["", "## Metrics", "", "Best first. Each row is one model trained on one descriptor; the last column is the "
              "median of the training targets used as the prediction (the baseline).", "",
              metrics_table(summary, markdown=True), ""]
    for s in summary.get("skipped", []):
        lines.append(f"- not run: {s['model']} on {s['descriptor']} ({s['reason']})")
    if summary.get("skipped"):
        lines.append("")
    lines += ["## Parity plots", ""]
    training = outputs.training if "training" in outputs else {}
    node_rows = []
    for row in summary["rows"]:
        label = row["label"]
        if label not in training:
            continue
        out = training[label]
        if "parity_plot" in out:
            name = f"parity_{label}.png"
            (directory / name).write_bytes(out["parity_plot"].get_content(mode="rb"))
            lines += [f"### {row['model']} on {row['descriptor']}", "", f"![{label}]({name})", ""]
        for key in ("model", "metrics", "predictions", "parity_plot", "invariants", "features", "distances"):
            if key in out:
                n = out[key]
                node_rows.append(f"| {label} | {key} | {type(n).__name__} | {n.pk} | `{n.uuid}` |")
    lines += ["## Nodes", "", "| pair | role | type | pk | uuid |", "|---|---|---|---|---|", *node_rows, ""]
    if "screening" in outputs:
        sc = outputs.screening
        lines += ["## Screening", ""]
        if "selected_ids" in sc:
            preds = sc["predictions"]
            values = dict(zip(preds.get_array("ids").tolist(), preds.get_array("y_pred").tolist()))
            structures = {s.label: s for s in sc["structures"].values()} if "structures" in sc else {}
            handoff = sc["handoff"] if "handoff" in sc else {}
            by_label = {}
            for key, s in (sc["structures"].items() if "structures" in sc else []):
                by_label[s.label] = key
            lines += [f"Selected {len(sc['selected_ids'])} of {len(values)} candidates (predictions: pk {preds.pk}).", ""]
            lines += ["| candidate | predicted | StructureData pk | hand-off outputs |", "|---|---|---|---|"]
            for rid in sc["selected_ids"].get_list():
                key = by_label.get(rid)
                ho = handoff.get(key, {}) if key else {}
                ho_text = ", ".join(
                    f"{k} = {_fmt(v.value)}" if hasattr(v, "value") and not isinstance(v, orm.Dict) else f"{k} (pk {v.pk})"
                    for k, v in ho.items()
                ) or "-"
                s = structures.get(rid)
                lines.append(f"| {rid} | {_fmt(values.get(rid))} | {s.pk if s else '-'} | {ho_text} |")
            lines.append("")
    path = directory / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
