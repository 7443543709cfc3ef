"""A study: one YAML file -> one ``StudyWorkChain`` -> a short report.

The YAML file says where the structures come from, which target to learn, which
descriptors and models to try, how to evaluate them and, optionally, what to screen::

    name: ewald-landscape
    source:                       # exactly one of: file, group, materials_project, synthetic, dataset
      synthetic: {generator: ewald_landscape, n: 200, seed: 0}
    target: ewald_energy_per_atom  # or {name: bulk_modulus_vrh, transform: log10}
    descriptors:
      - {name: pdd, k: 50}
      - {name: amd+element_stats, amd: {k: 50}}
    models:
      - {name: knn, k: [1, 3, 5, 10]}
      - {name: krr, kernel: laplacian, descriptors: [amd_element_stats]}   # only these
    split: {kind: kfold, n_splits: 5, seed: 0}   # or {kind: holdout, test_fraction: 0.2}
                                                 # or {kind: test, source: {file: my_csp.cif}}
    screening:
      candidates: {synthetic: {n: 60, seed: 1}}
      model: best                  # or {descriptor: pdd, model: knn}
      top: 5
      order: lowest
      group: ewald-candidates
      handoff: {workflow: crystinv.ewald_energy, inputs: {}}
    audit: {descriptors: [amd, sine_matrix, niggli], n_structures: 4}   # optional

:func:`load_study` reads and validates it (unknown keys, missing target, unknown
descriptors / models / entry points, missing files -- with the offending key in the
message) into a normalised JSON dict; :func:`build_study_inputs` turns that into the
inputs of :class:`StudyWorkChain` (file sources become ``SinglefileData`` inputs, so the
study's provenance starts at the file); :func:`write_report` writes ``report.md``, the
parity plots and the node identifiers of a finished study.

The StudyWorkChain imports the sources (calcfunctions), with ``audit:`` audits the named
descriptors on the training dataset (``audit_descriptors``, outputs ``audit.*``), computes
(or finds by query) each descriptor once, runs one :class:`~aiida_crystinv.workflows.training.TrainingWorkChain`
per compatible (descriptor, model) pair with the same split for all, summarises the
metrics in one ``Dict`` and, if asked, runs a
:class:`~aiida_crystinv.workflows.screening.ScreeningWorkChain` with the best model.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any, Mapping

from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction, if_

from ..data import CrystalDatasetData, InvariantsData
from ..data._arrays import jsonable
from ..exit_codes import EXIT, add_exit_codes, describe_failure
from ..specs.study import SOURCE_KINDS as _SOURCE_KINDS
from ..specs.study import StudySpec
from .handoff import handoff_nodes
from .loop import DftLoopWorkChain
from .screening import ScreeningWorkChain
from .study_file import StudyError, build_study_inputs, load_study, validate_study
from .study_report import metrics_table, write_report
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
    "STUDY_STEPS",
    "STEP_PREFIX",
    "study_steps",
]

from .study_inputs import find_imported_dataset, validate_study_inputs  # noqa: E402,F401 - re-exported
from .study_steps import STEP_PREFIX, STUDY_STEPS, _step, study_steps  # noqa: E402,F401 - re-exported

#: Top-level keys of a study file.
STUDY_KEYS = tuple(StudySpec.model_fields)
SOURCE_KINDS = _SOURCE_KINDS


def run_study(path: str | pathlib.Path, submit: bool = False):
    """Load, validate and run (or submit) a study file; returns ``(outputs, node)``."""
    from aiida.engine import submit as submit_process

    from .._runner import run_get_node_promptly

    builder = StudyWorkChain.get_builder_from_study(path)
    if submit:
        return {}, submit_process(builder)
    return run_get_node_promptly(builder)


# ------------------------------------------------------------------------------- steps

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
        return EXIT.ERROR_MISSING_INPUT.format(message="no metrics to summarise")
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


# ------------------------------------------------------------------------------- workchain


class StudyWorkChain(WorkChain):
    """A whole study: import, descriptors, one TrainingWorkChain per pair, summary, screening."""

    _ROLES = ("train", "test", "candidates", "pool")

    @classmethod
    def get_builder_from_study(cls, study: str | pathlib.Path | Mapping[str, Any], base: str | pathlib.Path = "."):
        """A builder filled from a study file (or an already parsed study mapping), in the
        spirit of ``get_builder_from_protocol``: the study is validated (:class:`StudyError`
        naming the key), file sources become ``SinglefileData``/``FolderData`` inputs and
        dataset sources are loaded. Change the builder before launching it if you like.
        """
        if isinstance(study, (str, pathlib.Path)):
            plan = load_study(study)
        else:
            plan = validate_study(study, base=base)
        builder = cls.get_builder()
        for key, value in build_study_inputs(plan).items():
            builder[key] = value
        return builder

    @classmethod
    def define(cls, spec):
        """Inputs, outline, outputs and exit codes."""
        super().define(spec)
        spec.input("study", valid_type=orm.Dict, help="The study plan (load_study / StudySpec.plan()); validated at the port.")
        spec.input_namespace("files", valid_type=(orm.SinglefileData, orm.FolderData), dynamic=True, required=False,
                             help="File sources by role (train, test, candidates).")
        spec.input_namespace("datasets", valid_type=CrystalDatasetData, dynamic=True, required=False,
                             help="Datasets by role (train, test, candidates), instead of importing a source.")
        spec.expose_inputs(
            TrainingWorkChain, namespace="training", include=("target", "split", "chunk_size"),
            namespace_options={"required": False, "populate_defaults": False,
                               "help": "Inputs given to every TrainingWorkChain (get_builder_from_study fills target "
                                       "and split from the study; chunk_size is yours to set)."},
        )
        spec.outline(
            cls.setup,
            cls.import_sources,
            if_(cls.should_audit)(cls.run_audit),
            cls.prepare_descriptors,
            cls.inspect_descriptors,
            cls.train,
            cls.inspect_training,
            cls.summarize,
            if_(cls.should_screen)(cls.screen, cls.inspect_screening),
            if_(cls.should_loop)(cls.run_loop, cls.inspect_loop),
        )
        spec.input("code", valid_type=orm.AbstractCode, required=False,
                   help="The worker on a computer: the invariants are computed as jobs there (the study's jobs.code).")
        spec.output("summary", valid_type=orm.Dict, help="Metrics table of every pair, best first.")
        spec.output_namespace("datasets", valid_type=CrystalDatasetData, dynamic=True, help="The datasets by role.")
        spec.output_namespace("training", dynamic=True, help="Outputs of each TrainingWorkChain, by pair label.")
        spec.output_namespace("audit", required=False,
                              help="The outputs of audit_descriptors (crystinv.audit) when the study has an audit: section.")
        spec.output("audit.table", valid_type=orm.Dict, required=False,
                    help="One row per descriptor: the largest change under each transform, the verdicts.")
        spec.output("audit.continuity_plot", valid_type=orm.SinglefileData, required=False, help="PNG: change / eps against eps.")
        spec.output("audit.target_table", valid_type=orm.Dict, required=False, help="Target continuity (audit: target: true).")
        spec.output("audit.target_plot", valid_type=orm.SinglefileData, required=False, help="PNG of the target continuity.")
        spec.expose_outputs(ScreeningWorkChain, namespace="screening", namespace_options={"required": False})
        spec.expose_outputs(DftLoopWorkChain, namespace="loop", namespace_options={"required": False})

        spec.inputs.validator = validate_study_inputs
        add_exit_codes(spec, "ERROR_MISSING_TARGET", "ERROR_IMPORT_FAILED", "ERROR_INVARIANTS_FAILED",
                       "ERROR_TRAINING_FAILED", "ERROR_SCREENING_FAILED", "ERROR_SUMMARY_FAILED", "ERROR_LOOP_FAILED",
                       "ERROR_SOME_HANDOFFS_FAILED", "ERROR_SUB_PROCESS_FAILED")

    # ------------------------------------------------------------------ steps
    def setup(self):
        """The study was validated at the ports (:func:`validate_study_inputs`)."""
        self.ctx.study = self.inputs.study.get_dict()
        self.ctx.steps = study_steps(self.ctx.study)
        self.ctx.step_started = {}

    def _step_report(self, name: str, event: str) -> None:
        """One line: ``[step k/N] name: started (what)`` / ``done in 1.2 s (detail)`` / ``failed after ...``."""
        steps = self.ctx.steps
        head = f"{STEP_PREFIX}{steps.index(name) + 1}/{len(steps)}] {name}:"
        if event == "started":
            self.ctx.step_started[name] = time.time()
            self.report(f"{head} started ({STUDY_STEPS[name]})")
            return
        seconds = time.time() - self.ctx.step_started.get(name, time.time())
        detail = self.ctx.get("step_detail") or ""
        self.ctx.step_detail = ""
        when = f"done in {seconds:.1f} s" if event == "done" else f"failed after {seconds:.1f} s"
        self.report(f"{head} {when}" + (f" ({detail})" if detail else ""))

    @_step("import", start=True, end=True)
    def import_sources(self):
        """Import every source into one dataset node (calcfunctions) and check the target."""
        from ..calculations.functions import import_dataset, import_materials_project
        from ..calculations.sources import import_group, synthetic_dataset

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
                return self.exit_codes.ERROR_IMPORT_FAILED.format(message=f"{role} ({kind}): {describe_failure(node)}")
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
        self.ctx.step_detail = ", ".join(f"{role} <{node.pk}> {len(node)} records" for role, node in datasets.items())
        return None

    def should_audit(self) -> bool:
        return bool(self.ctx.study.get("audit"))

    @_step("audit", start=True, end=True)
    def run_audit(self):
        """The audit of the study's ``audit:`` descriptors on the training dataset
        (``audit_descriptors``); a failed audit stops the study (400)."""
        from ..calculations.audit import audit_descriptors

        plan = self.ctx.study["audit"]
        train = self.ctx.datasets["train"]
        try:
            results, node = audit_descriptors.run_get_node(
                dataset=train, descriptors=orm.List(plan["descriptors"]), parameters=orm.Dict(plan["parameters"]),
                metadata={"call_link_label": "audit"},
            )
        except ValueError as exc:  # refused at the calcfunction's ports (nothing stored)
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED.format(message=f"audit: {exc}")
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED.format(message=f"audit: {describe_failure(node)}")
        for key, value in results.items():
            self.out(f"audit.{key}", value)
        rows = results["table"]["rows"]
        self.ctx.step_detail = "; ".join(f"{r['descriptor']} {r['invariance']}, {r['continuity']}" for r in rows)
        return None

    @_step("descriptors", start=True)
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
                        return self.exit_codes.ERROR_INVARIANTS_FAILED.format(message=f"{key}: {describe_failure(node)}")
                    self.ctx.descriptor_values[key] = results["features"]
                else:
                    jobs: dict[str, Any] = {}
                    if "code" in self.inputs:
                        jobs["code"] = self.inputs.code
                        options = (self.ctx.study.get("jobs") or {}).get("options")
                        if options:
                            jobs["options"] = orm.Dict(options)
                            if "block_size" in options:
                                jobs["chunk_size"] = orm.Int(options["block_size"])
                    future = self.submit(
                        InvariantsWorkChain,
                        dataset=dataset,
                        descriptor=orm.Dict({"name": spec["name"], **spec["params"]}),
                        metadata={"call_link_label": f"invariants_{key}"},
                        **jobs,
                    )
                    self.to_context(**{f"invariants_{key}": future})
                    self.ctx.descriptor_values[key] = None
        return None

    @_step("descriptors", end=True)
    def inspect_descriptors(self):
        """Collect the invariants computed by sub-workflows."""
        computed = [key for key, value in self.ctx.descriptor_values.items() if value is None]
        ready = len(self.ctx.descriptor_values) - len(computed)
        self.ctx.step_detail = f"{len(computed)} computed by InvariantsWorkChain, {ready} found stored or made as features"
        for key, value in self.ctx.descriptor_values.items():
            if value is not None:
                continue
            proc = self.ctx[f"invariants_{key}"]
            if not proc.is_finished_ok:
                return self.exit_codes.ERROR_INVARIANTS_FAILED.format(
                    message=f"{key}: {describe_failure(proc)}"
                )
            self.ctx.descriptor_values[key] = proc.outputs.invariants
        return None

    @_step("training", start=True)
    def train(self):
        """One TrainingWorkChain per (descriptor, model) pair, all with the same split."""
        study = self.ctx.study
        descriptors = {d["label"]: d for d in study["descriptors"]}
        models = {m["label"]: m for m in study["models"]}
        shared = self.exposed_inputs(TrainingWorkChain, namespace="training")
        target = shared.pop("target", None) or orm.Str(study["target"]["name"])
        split = shared.pop("split", None)
        if split is None and study["split"]["kind"] != "test":
            split = orm.Dict(study["split"])
        for s in study.get("skipped", []):
            self.report(f"skipping {s['model']} on {s['descriptor']}: {s['reason']}")
        futures = {}
        for pair in study["pairs"]:
            d = descriptors[pair["descriptor"]]
            inputs: dict[str, Any] = {
                **shared,
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

    @_step("training", end=True)
    def inspect_training(self):
        """Expose the outputs of every successful training; fail only if all failed."""
        failed, self.ctx.trained = [], {}
        for pair in self.ctx.study["pairs"]:
            label = pair["label"]
            child = self.ctx[f"training_{label}"]
            if not child.is_finished_ok:
                failed.append(f"{label}: {describe_failure(child)}")
                continue
            self.ctx.trained[label] = child
            for link in child.base.links.get_outgoing(link_type=_return_link()).all():
                self.out(f"training.{label}.{link.link_label}", link.node)
        self.ctx.step_detail = f"{len(self.ctx.trained)} of {len(self.ctx.study['pairs'])} pair(s) trained"
        if not self.ctx.trained:
            return self.exit_codes.ERROR_TRAINING_FAILED.format(message="; ".join(failed))
        if failed:
            self.report(f"{len(failed)} training(s) failed: " + "; ".join(failed))
        return None

    @_step("summary", start=True, end=True)
    def summarize(self):
        """One metrics table (a calcfunction, so it is linked to every metrics node)."""
        metrics = {label: child.outputs.metrics for label, child in self.ctx.trained.items()}
        results, node = summarize_study.run_get_node(study=self.inputs.study, **metrics, metadata={"call_link_label": "summarize"})
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SUMMARY_FAILED.format(message=describe_failure(node))
        summary = results["summary"]
        self.out("summary", summary)
        best = summary["rows"][0]
        self.report(
            f"best: {best['label']} MAE {best['mae']:.4g} {best['unit']} (median predictor {best['baseline_mae']:.4g}) "
            f"by {summary['evaluation']}"
        )
        self.ctx.best = summary["best"]
        self.ctx.step_detail = f"best {best['label']}, MAE {best['mae']:.4g} {best['unit']}".rstrip()
        return None

    def _chosen(self, model: str) -> str:
        """The pair label a screening or loop uses: the best one or the one named."""
        return self.ctx.best if model == "best" else model

    def should_screen(self) -> bool:
        return bool(self.ctx.study.get("screening"))

    @_step("screening", start=True)
    def screen(self):
        """Screen the candidates with the chosen (default: the best) model."""
        sc = self.ctx.study["screening"]
        label = self._chosen(sc["model"])
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
            inputs["handoff"] = handoff_nodes(sc["handoff"])
        self.report(f"screening {len(self.ctx.datasets['candidates'])} candidates with {label}")
        return ToContext(screening=self.submit(ScreeningWorkChain, **inputs))

    @_step("screening", end=True)
    def inspect_screening(self):
        """Expose the screening outputs; a screening where only some hand-offs failed (425)
        keeps its outputs and the study goes on."""
        child = self.ctx.screening
        self.out_many(self.exposed_outputs(child, ScreeningWorkChain, namespace="screening"))
        if "selected_ids" in child.outputs:
            self.ctx.step_detail = f"selected {len(child.outputs.selected_ids.get_list())} candidate(s)"
        if child.exit_status == EXIT.ERROR_SOME_HANDOFFS_FAILED.status:
            self.ctx.partial = child.exit_message
            self.report(f"screening: {child.exit_message}")
            if not self.should_loop():
                return self.exit_codes.ERROR_SOME_HANDOFFS_FAILED.format(message=f"screening: {child.exit_message}")
            return None
        if not child.is_finished_ok:
            return self.exit_codes.ERROR_SCREENING_FAILED.format(message=describe_failure(child))
        return None

    def should_loop(self) -> bool:
        return bool(self.ctx.study.get("loop"))

    @_step("loop", start=True)
    def run_loop(self):
        """The screen -> DFT -> retrain loop with the chosen (default: the best) pair."""
        lp = self.ctx.study["loop"]
        label = self._chosen(lp["model"])
        if label not in self.ctx.trained:
            return self.exit_codes.ERROR_LOOP_FAILED.format(message=f"the model {label!r} was not trained (its training failed)")
        pair = next(p for p in self.ctx.study["pairs"] if p["label"] == label)
        d = next(d for d in self.ctx.study["descriptors"] if d["label"] == pair["descriptor"])["spec"]
        m = next(m for m in self.ctx.study["models"] if m["label"] == pair["model"])["spec"]
        inputs: dict[str, Any] = {
            "dataset": self.ctx.datasets["train"],
            "candidates": self.ctx.datasets["pool"],
            "target": orm.Str(self.ctx.study["target"]["name"]),
            "descriptor": orm.Dict({"kind": d["kind"], "name": d["name"], "params": d["params"]}),
            "model": orm.Dict(m),
            "selection": orm.Dict(lp["selection"]),
            "rounds": orm.Int(lp["rounds"]),
            "patience": orm.Int(lp["patience"]),
            "handoff": handoff_nodes(lp["handoff"]),
            "metadata": {"call_link_label": "loop", "label": f"DFT loop with {label}"},
        }
        if lp.get("max_sites"):
            inputs["max_sites"] = orm.Int(lp["max_sites"])
        if lp.get("calibration"):
            inputs["calibration"] = orm.List(lp["calibration"])
        self.report(f"DFT loop with {label}: {len(self.ctx.datasets['pool'])} candidates, up to {lp['rounds']} round(s)")
        return ToContext(loop=self.submit(DftLoopWorkChain, **inputs))

    @_step("loop", end=True)
    def inspect_loop(self):
        """Expose the loop's outputs (also when some DFT hand-offs failed: 425)."""
        child = self.ctx.loop
        self.out_many(self.exposed_outputs(child, DftLoopWorkChain, namespace="loop"))
        if child.exit_status == EXIT.ERROR_SOME_HANDOFFS_FAILED.status:
            return self.exit_codes.ERROR_SOME_HANDOFFS_FAILED.format(message=f"loop: {child.exit_message}")
        if not child.is_finished_ok:
            return self.exit_codes.ERROR_LOOP_FAILED.format(message=describe_failure(child))
        if self.ctx.get("partial"):
            return self.exit_codes.ERROR_SOME_HANDOFFS_FAILED.format(message=f"screening: {self.ctx.partial}")
        return None


def _return_link():
    from aiida.common.links import LinkType

    return (LinkType.RETURN,)


