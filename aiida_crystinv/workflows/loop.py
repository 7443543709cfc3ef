"""``DftLoopWorkChain``: train -> screen -> DFT -> add to the training data -> retrain.

Every round:

1. **train** the model on the current training set (``train_model``; kNN models on the
   stored invariants of the set, ``compute_invariants``);
2. **predict** the candidates not handed off yet (``predict``) and **select**
   (:func:`select_for_dft`): the ``best`` N predictions (``order`` lowest or highest) and
   the ``uncertain`` M candidates farthest from the training set;
3. **hand off** each selected structure to the DFT WorkChain (the ``handoff`` namespace of
   :mod:`aiida_crystinv.workflows.handoff`: a protocol builder such as
   ``quantumespresso.pw.base`` with ``protocol``, ``code`` and ``parameters``);
4. **collect** the DFT energies into a dataset (``collect_dft_results``), score the round's
   predictions against them (``score_round``: MAE, Spearman), and **extend** the training
   set with them (``extend_training``, on the target's scale through the calibration).

**Uncertainty** used by ``uncertain``: the distance (AMD with k=100, L-inf, Angstrom) from a
candidate to its nearest training structure: the candidates least like anything the model
has seen. It is cheap, model-independent and exact; it measures novelty, not the model's
error.

**Calibration**: with ``calibration`` (identifiers of training records), those records are
computed by the same DFT first, and per-element shifts put the DFT energies on the
target's scale (``calibrate_dft``); without it, the DFT values are used as they are (they
must then be on the training target's scale).

``max_sites`` keeps the larger cells out of the selection (DFT cost grows with the cube
of the number of atoms). It stops after ``rounds`` rounds, or when the best DFT value has not improved for
``patience`` rounds, or when no candidate is left. The last model is retrained on
everything (output ``model``). Failed DFT children are named in the report; a round whose
every child failed stops the loop (411); a round where some failed goes on with the others
and the loop ends with 425 (the outputs are kept).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import WorkChain, calcfunction, if_, while_

from ..calculations.dft import calibrate_dft, collect_dft_results, dft_inputs, extend_training, score_round
from ..calculations.functions import compute_invariants, extract_structures
from ..calculations.learning import predict, train_model
from ..calculations.ports import check_descriptor, check_model, spec_of
from ..data import CrystalDatasetData
from ..data._arrays import as_str_array, jsonable
from ..exit_codes import EXIT, add_exit_codes, describe_failure
from .handoff import HandoffPlan, add_handoff_ports, inspect_handoffs, launch_handoffs, returned_outputs, validate_handoff

__all__ = ["DftLoopWorkChain", "select_for_dft", "distance_to_training", "NOVELTY_K"]

NOVELTY_K = 100


@calcfunction
def distance_to_training(candidates: CrystalDatasetData, training: CrystalDatasetData):
    """``novelty`` (ArrayData ``ids``, ``distance``): for every candidate, the L-inf distance
    between its AMD (k=100) and the nearest training structure's, in Angstrom."""
    from ..distances import nearest_neighbours
    from ..invariants import amd

    cand = np.stack([amd(c, NOVELTY_K) for c in candidates.get_crystals()])
    train = np.stack([amd(c, NOVELTY_K) for c in training.get_crystals()])
    nearest = nearest_neighbours(train, 1, "amd_linf", queries=cand)[0][:, 0]
    node = orm.ArrayData()
    node.set_array("ids", as_str_array(candidates.ids))
    node.set_array("distance", nearest)
    return {"novelty": node}


@calcfunction
def select_for_dft(predictions: orm.ArrayData, selection: orm.Dict, exclude: orm.List, novelty: orm.ArrayData | None = None):
    """``ids`` (List): the ``best`` N predictions (``order``) among the candidates not in
    ``exclude``, then the ``uncertain`` M of the rest farthest from the training set
    (``novelty``). Exit code 312: nothing left to select."""
    sel = selection.get_dict()
    skip = set(exclude.get_list())
    ids = predictions.get_array("ids").tolist()
    y = predictions.get_array("y_pred")
    pool = [i for i in range(len(ids)) if ids[i] not in skip]
    if not pool:
        return EXIT.ERROR_NOTHING_SELECTED.format(message="every candidate has been handed off already")
    sign = 1.0 if sel.get("order", "lowest") == "lowest" else -1.0
    ranked = sorted(pool, key=lambda i: (sign * y[i], i))
    chosen = ranked[: int(sel.get("best", 0))]
    uncertain = int(sel.get("uncertain", 0))
    if uncertain and novelty is not None:
        far = dict(zip(novelty.get_array("ids").tolist(), novelty.get_array("distance").tolist()))
        rest = sorted((i for i in pool if i not in set(chosen)), key=lambda i: (-far.get(ids[i], 0.0), i))
        chosen += rest[:uncertain]
    if not chosen:
        return EXIT.ERROR_NOTHING_SELECTED.format(message=f"the selection {sel} selects nothing")
    return {"ids": orm.List([ids[i] for i in chosen])}


def _check_selection(value: orm.Dict | None, _ctx: Any = None) -> str | None:
    if value is None:
        return None
    sel = value.get_dict()
    unknown = set(sel) - {"best", "uncertain", "order"}
    if unknown:
        return f"selection takes best, uncertain and order, not {', '.join(sorted(unknown))}"
    for key in ("best", "uncertain"):
        v = sel.get(key, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            return f"selection.{key} must be a whole number >= 0, got {v!r}"
    if sel.get("best", 0) + sel.get("uncertain", 0) == 0:
        return "the selection selects nothing: set best and/or uncertain"
    if sel.get("order", "lowest") not in ("lowest", "highest"):
        return f"selection.order is 'lowest' or 'highest', got {sel.get('order')!r}"
    return None


def _positive(name: str):
    def check(value: orm.Int | None, _ctx: Any = None) -> str | None:
        if value is not None and value.value < 1:
            return f"{name} must be at least 1, got {value.value}"
        return None
    return check


def _validate(inputs: Any, _ctx: Any = None) -> str | None:
    if "handoff" not in inputs or "workflow" not in inputs["handoff"]:
        return "the loop needs handoff.workflow (the DFT WorkChain) and its inputs"
    return validate_handoff(inputs["handoff"])


class DftLoopWorkChain(WorkChain):
    """Active learning with DFT in the loop (see the module's docstring)."""

    @classmethod
    def define(cls, spec):
        """Inputs, outline, outputs and exit codes."""
        super().define(spec)
        spec.input("dataset", valid_type=CrystalDatasetData, help="The training set, with the target.")
        spec.input("candidates", valid_type=CrystalDatasetData, help="The structures to screen.")
        spec.input("target", valid_type=orm.Str, help="The target column of the training set (e.g. energy_per_atom).")
        spec.input("descriptor", valid_type=(orm.Dict, orm.Str), default=lambda: orm.Dict({"name": "amd", "k": 100}),
                   validator=check_descriptor, help="The descriptor of the model.")
        spec.input("model", valid_type=orm.Dict, default=lambda: orm.Dict({"name": "krr", "kernel": "laplacian"}),
                   validator=check_model, help="The model spec.")
        spec.input("selection", valid_type=orm.Dict, default=lambda: orm.Dict({"best": 2, "uncertain": 0, "order": "lowest"}),
                   validator=_check_selection, help="{'best': N, 'uncertain': M, 'order': 'lowest' | 'highest'} per round.")
        spec.input("rounds", valid_type=orm.Int, default=lambda: orm.Int(2), validator=_positive("rounds"),
                   help="The largest number of rounds.")
        spec.input("patience", valid_type=orm.Int, default=lambda: orm.Int(1), validator=_positive("patience"),
                   help="Stop when the best DFT value has not improved for this many rounds.")
        spec.input("max_sites", valid_type=orm.Int, required=False, validator=_positive("max_sites"),
                   help="Hand off only candidates with at most this many sites per cell (the cost of DFT).")
        spec.input("calibration", valid_type=orm.List, required=False,
                   help="Training records to compute by DFT first, to put the DFT energies on the target's scale.")
        add_handoff_ports(spec)
        spec.inputs.validator = _validate

        spec.outline(
            cls.setup,
            if_(cls.has_calibration)(cls.launch_calibration, cls.collect_calibration),
            while_(cls.next_round)(cls.train, cls.select, cls.launch_dft, cls.collect_round),
            cls.finalize,
        )
        spec.output("model", valid_type=orm.Data, help="The model trained on the final training set.")
        spec.output("dataset", valid_type=CrystalDatasetData, help="The final training set (with the DFT records).")
        spec.output("calibration", valid_type=orm.Dict, required=False, help="The per-element shifts.")
        spec.output_namespace("dft", valid_type=CrystalDatasetData, dynamic=True, help="The DFT results, per round.")
        spec.output_namespace("scores", valid_type=orm.Dict, dynamic=True, help="Predicted vs DFT, per round.")
        spec.output("summary", valid_type=orm.Dict, help="Per round: training size, MAE, Spearman, best so far.")
        add_exit_codes(
            spec, "ERROR_NOTHING_SELECTED", "ERROR_TRAINING_FAILED", "ERROR_PREDICTION_STEP_FAILED",
            "ERROR_EXTRACTION_FAILED", "ERROR_HANDOFF_FAILED", "ERROR_SOME_HANDOFFS_FAILED", "ERROR_DFT_RESULTS_FAILED",
            "ERROR_SUB_PROCESS_FAILED", "ERROR_MISSING_TARGET", "ERROR_INCOMPATIBLE_INPUTS",
        )

    # ------------------------------------------------------------------ helpers
    def _run(self, function: Any, label: str, code: str, **inputs: Any) -> Any:
        results, node = function.run_get_node(**inputs, metadata={"call_link_label": label})
        if not node.is_finished_ok:
            self._failure = getattr(self.exit_codes, code).format(message=describe_failure(node))
            return None
        return results

    def _handoff(self, ids: list[str], prefix: str) -> dict[str, str] | None:
        extracted = self._run(extract_structures, f"{prefix}_structures", "ERROR_EXTRACTION_FAILED",
                              dataset=self.ctx.pool_of[prefix], ids=orm.List(ids))
        if extracted is None:
            return None
        structures = dict(extracted["structures"])
        self.ctx.structures[prefix] = {label: s.label for label, s in structures.items()}
        self.ctx.structure_nodes[prefix] = structures
        plan = HandoffPlan(self.inputs.handoff)  # checked at the ports; not kept in the context (not serialisable)
        return launch_handoffs(self, plan, structures, prefix=prefix)

    def _collect(self, prefix: str) -> Any:
        """The DFT dataset of the children of ``prefix`` that finished ok; failures reported."""
        done, failed = inspect_handoffs(self, prefix)
        failed = {**self.ctx.refused.get(prefix, {}), **failed}
        for label, reason in failed.items():
            self.report(f"DFT failed for {self.ctx.structures[prefix].get(label, label)}: {reason}")
        self.ctx.failed_count += len(failed)
        if not done:
            self._failure = self.exit_codes.ERROR_HANDOFF_FAILED.format(
                message=f"{len(failed)} of {len(failed)} in {prefix}: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
            return None
        results = {}
        for label, child in done.items():
            outputs = returned_outputs(child)
            handed = self.ctx.structure_nodes[prefix][label]
            structure = outputs.get("output_structure", handed)
            energy = outputs.get("output_parameters", outputs.get("energy"))
            results[self.ctx.structures[prefix][label]] = (structure, energy)
        collected = self._run(collect_dft_results, f"{prefix}_collect", "ERROR_DFT_RESULTS_FAILED", **dft_inputs(results))
        return None if collected is None else collected["dataset"]

    # ------------------------------------------------------------------ steps
    def setup(self):
        self.ctx.training = self.inputs.dataset
        self.ctx.round = 0
        self.ctx.stale = 0
        self.ctx.best = None
        self.ctx.exclude = []
        self.ctx.rows = []
        self.ctx.structures = {}
        self.ctx.structure_nodes = {}
        self.ctx.refused = {}
        self.ctx.failed_count = 0
        self.ctx.calibration = None
        self._failure = None  # an ExitCode returned by the step that set it (never kept in the context)
        self.ctx.pool_of = {"calibration": self.inputs.dataset}
        self.ctx.stop_reason = None
        clash = sorted(set(self.inputs.candidates.ids) & set(self.inputs.dataset.ids))
        if clash:
            return self.exit_codes.ERROR_INCOMPATIBLE_INPUTS.format(
                message=f"{len(clash)} candidate identifier(s) are also in the training set ({', '.join(clash[:5])}"
                f"{', ...' if len(clash) > 5 else ''}): the DFT records would clash; give the candidates other identifiers")
        if "max_sites" in self.inputs:
            limit = self.inputs.max_sites.value
            candidates = self.inputs.candidates
            sites = candidates.sites_per_record()
            large = [r for r, n in zip(candidates.ids, sites.tolist()) if n > limit]
            self.ctx.exclude.extend(large)
            self.report(f"{len(candidates) - len(large)} of {len(candidates)} candidates have at most {limit} sites")
        target = self.inputs.target.value
        if target not in self.inputs.dataset.target_names:
            return self.exit_codes.ERROR_MISSING_TARGET.format(
                message=f"{target!r} is not a target of the training set (it has {', '.join(self.inputs.dataset.target_names) or 'none'})")
        return None

    def has_calibration(self) -> bool:
        return "calibration" in self.inputs

    def launch_calibration(self):
        """DFT on the reference records of the training set."""
        ids = self.inputs.calibration.get_list()
        refused = self._handoff(ids, "calibration")
        if refused is None:
            return self._failure
        self.ctx.refused["calibration"] = refused
        return None

    def collect_calibration(self):
        dft = self._collect("calibration")
        if dft is None:
            return self._failure
        results = self._run(calibrate_dft, "calibrate", "ERROR_DFT_RESULTS_FAILED", dft=dft, training=self.inputs.dataset,
                            target=self.inputs.target)
        if results is None:
            return self._failure
        self.ctx.calibration = results["calibration"]
        self.out("calibration", self.ctx.calibration)
        shifts = ", ".join(f"{k} {v:+.4f}" for k, v in self.ctx.calibration["shifts"].items())
        self.report(f"calibration on {', '.join(self.ctx.calibration['references'])}: shifts {shifts} eV/atom")
        return None

    def next_round(self) -> bool:
        if self.ctx.round >= self.inputs.rounds.value:
            self.ctx.stop_reason = f"{self.ctx.round} round(s) done"
            return False
        if self.ctx.stale >= self.inputs.patience.value:
            self.ctx.stop_reason = f"the best DFT value did not improve for {self.ctx.stale} round(s)"
            return False
        return True

    def _train(self, label: str) -> Any:
        inputs: dict[str, Any] = {"dataset": self.ctx.training, "target": self.inputs.target, "model": self.inputs.model}
        if spec_of(self.inputs.model).get("name") == "knn":
            inv = self._run(compute_invariants, f"{label}_invariants", "ERROR_TRAINING_FAILED", dataset=self.ctx.training,
                            descriptor=self.inputs.descriptor)
            if inv is None:
                return None
            inputs["invariants"] = self.ctx.reference = inv["invariants"]
        else:
            inputs["descriptor"] = self.inputs.descriptor
        return self._run(train_model, label, "ERROR_TRAINING_FAILED", **inputs)

    def train(self):
        self.ctx.round += 1
        trained = self._train(f"round_{self.ctx.round}_train")
        if trained is None:
            return self._failure
        self.ctx.model = trained["model"]
        self.report(f"round {self.ctx.round}: trained on {len(self.ctx.training)} records")
        return None

    def select(self):
        prefix = f"round_{self.ctx.round}"
        inputs: dict[str, Any] = {"model": self.ctx.model, "dataset": self.inputs.candidates}
        if spec_of(self.inputs.model).get("name") == "knn":
            inputs["reference"] = self.ctx.reference
        predicted = self._run(predict, f"{prefix}_predict", "ERROR_PREDICTION_STEP_FAILED", **inputs)
        if predicted is None:
            return self._failure
        self.ctx.predictions = predicted["predictions"]
        extra: dict[str, Any] = {}
        if self.inputs.selection.get("uncertain", 0):
            novelty = self._run(distance_to_training, f"{prefix}_novelty", "ERROR_PREDICTION_STEP_FAILED",
                                candidates=self.inputs.candidates, training=self.ctx.training)
            if novelty is None:
                return self._failure
            extra["novelty"] = novelty["novelty"]
        results, node = select_for_dft.run_get_node(
            predictions=self.ctx.predictions, selection=self.inputs.selection, exclude=orm.List(list(self.ctx.exclude)),
            **extra, metadata={"call_link_label": f"{prefix}_select"})
        if not node.is_finished_ok:
            if self.ctx.round > 1:  # nothing left: the loop ends with what it has
                self.ctx.stop_reason = node.exit_message
                self.ctx.selected = []
                return None
            return self.exit_codes.ERROR_NOTHING_SELECTED.format(message=node.exit_message)
        self.ctx.selected = results["ids"].get_list()
        self.ctx.exclude.extend(self.ctx.selected)
        self.report(f"round {self.ctx.round}: selected {', '.join(self.ctx.selected)}")
        return None

    def launch_dft(self):
        if not self.ctx.selected:
            return None
        prefix = f"round_{self.ctx.round}"
        self.ctx.pool_of[prefix] = self.inputs.candidates
        refused = self._handoff(self.ctx.selected, prefix)
        if refused is None:
            return self._failure
        self.ctx.refused[prefix] = refused
        return None

    def collect_round(self):
        if not self.ctx.selected:
            self.ctx.stale = self.inputs.patience.value  # ends the loop
            return None
        prefix = f"round_{self.ctx.round}"
        dft = self._collect(prefix)
        if dft is None:
            return self._failure
        self.out(f"dft.{prefix}", dft)
        calibration = {"calibration": self.ctx.calibration} if self.ctx.calibration is not None else {}
        scored = self._run(score_round, f"{prefix}_score", "ERROR_DFT_RESULTS_FAILED", predictions=self.ctx.predictions,
                           dft=dft, **calibration)
        if scored is None:
            return self._failure
        score = scored["score"]
        self.out(f"scores.{prefix}", score)
        extended = self._run(extend_training, f"{prefix}_extend", "ERROR_DFT_RESULTS_FAILED", training=self.ctx.training,
                             dft=dft, target=self.inputs.target, **calibration)
        if extended is None:
            return self._failure
        n_train = len(self.ctx.training)
        self.ctx.training = extended["dataset"]
        lowest = self.inputs.selection.get("order", "lowest") == "lowest"
        value = score["best"] if lowest else max(p[2] for p in score["pairs"])
        improved = self.ctx.best is None or (value < self.ctx.best if lowest else value > self.ctx.best)
        if improved:
            self.ctx.best, self.ctx.best_id = value, score["best_id"] if lowest else max(score["pairs"], key=lambda p: p[2])[0]
            self.ctx.stale = 0
        else:
            self.ctx.stale += 1
        row = {"round": self.ctx.round, "n_train": n_train, "n_dft": score["n"], "mae": score["mae"],
               "spearman": score["spearman"], "best_this_round": value, "best_so_far": self.ctx.best,
               "best_id": self.ctx.best_id, "pairs": score["pairs"]}
        self.ctx.rows.append(row)
        rho = "-" if score["spearman"] is None else f"{score['spearman']:.2f}"
        self.report(f"round {self.ctx.round}: trained on {n_train}, DFT on {score['n']}: MAE {score['mae']:.4f}, "
                    f"Spearman {rho}, best so far {self.ctx.best:.4f} ({self.ctx.best_id})")
        return None

    def finalize(self):
        trained = self._train("final_train")
        if trained is None:
            return self._failure
        self.out("model", trained["model"])
        self.out("dataset", self.ctx.training)
        pairs = [p for row in self.ctx.rows for p in row["pairs"]]
        pooled: dict[str, Any] = {"n": len(pairs)}
        if pairs:
            from scipy.stats import spearmanr

            pred, dft = np.array([p[1] for p in pairs]), np.array([p[2] for p in pairs])
            pooled["mae"] = float(np.mean(np.abs(pred - dft)))
            pooled["spearman"] = float(spearmanr(pred, dft).statistic) if len(pairs) >= 3 else None
        summary = {"rounds": self.ctx.rows, "all_rounds": pooled, "stopped": self.ctx.stop_reason, "target": self.inputs.target.value,
                   "unit": self.inputs.dataset.units.get(self.inputs.target.value, ""), "failed_handoffs": self.ctx.failed_count,
                   "uncertainty": f"L-inf distance between AMD (k={NOVELTY_K}) and the nearest training structure (Angstrom)"}
        self.out("summary", loop_summary(orm.Dict(jsonable(summary))))
        self.report(f"stopped: {self.ctx.stop_reason}; final training set {len(self.ctx.training)} records")
        if self.ctx.failed_count:
            return self.exit_codes.ERROR_SOME_HANDOFFS_FAILED.format(
                message=f"{self.ctx.failed_count} DFT hand-off(s) failed (named in the report); the loop used the others")
        return None


@calcfunction
def loop_summary(summary: orm.Dict):
    """The loop's summary as a node created by a process (it is an output of the loop)."""
    return orm.Dict(summary.get_dict())
