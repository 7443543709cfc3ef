"""``ScreeningWorkChain``: rank candidates with a trained model and hand the best on.

model + candidate dataset ->

1. ``predictions`` of the model for every candidate (one node; the candidates' stored
   invariants are reused when they exist, found by query);
2. the selection: the ``top`` N lowest (or highest) predictions and/or those past a
   ``threshold``, chosen by the :func:`select_candidates` calcfunction (``selected_ids``);
3. the selected records as ``StructureData`` nodes (``structures.<id>``), added to a group;
4. optionally, the *hand-off*: any WorkChain given by entry point (``handoff.workflow``,
   e.g. ``'crystinv.ewald_energy'`` or ``'quantumespresso.pw.base'``) launched on each
   selected structure, its inputs made from a JSON template (``handoff.inputs``), by the
   WorkChain's protocol builder (``handoff.protocol`` + ``handoff.code`` +
   ``handoff.parameters``) or by a callable (``handoff.builder``); see
   :mod:`aiida_crystinv.workflows.handoff`. The outputs of every child that finished ok are
   exposed as ``handoff.<id>.<output>``; a child that failed is named in the report and the
   exit message with its exit status, message or exception and its deepest failed step:
   411 when all failed, 425 when some did.

An unknown entry point, a template port the child does not have, or a selection that
makes no sense stop the WorkChain with an exit code in its first step, before any
prediction or structure is stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import WorkChain, calcfunction, if_

from ..calculations.learning import predict
from ..data import CrystalDatasetData, InvariantsData
from ..calculations.ports import check_selection, validate_inputs
from ..data.model import ModelData
from ..exit_codes import EXIT, add_exit_codes, describe_failure
from ..specs.learning import parse_selection
from .handoff import HandoffPlan, add_handoff_ports, build_handoff_inputs, inspect_handoffs, launch_handoffs, returned_outputs, validate_handoff

__all__ = ["ScreeningWorkChain", "select_candidates", "build_handoff_inputs", "launch_screening"]


@calcfunction
def select_candidates(predictions: orm.ArrayData, selection: orm.Dict):
    """The identifiers of the selected candidates, best first, as ``ids`` (List).

    ``selection``: ``{'top': N, 'threshold': value, 'order': 'lowest' | 'highest'}``;
    ``threshold`` keeps predictions at most (``lowest``) or at least (``highest``) the
    value, ``top`` keeps the first N of those (validated at the port). Exit codes: 312
    nothing selected.
    """
    sel = parse_selection(selection.get_dict()).normalised()
    ids = predictions.get_array("ids").tolist()
    y = predictions.get_array("y_pred")
    order = np.argsort(y, kind="stable") if sel["order"] == "lowest" else np.argsort(-y, kind="stable")
    if sel["threshold"] is not None:
        keep = y <= sel["threshold"] if sel["order"] == "lowest" else y >= sel["threshold"]
        order = order[keep[order]]
    if sel["top"] is not None:
        order = order[: sel["top"]]
    if len(order) == 0:
        return EXIT.ERROR_NOTHING_SELECTED.format(
            message=f"no candidate passes the selection {sel} (predictions range {y.min():.4g} .. {y.max():.4g})"
        )
    return {"ids": orm.List([ids[i] for i in order])}


validate_inputs(select_candidates, selection=check_selection)


def validate_screening_inputs(inputs: Any, _ctx: Any = None) -> str | None:
    """The hand-off: an installed workflow whose ports take the inputs template, or a
    protocol builder / builder callable with its code and parameters."""
    return validate_handoff(inputs.get("handoff"))


class ScreeningWorkChain(WorkChain):
    """Predict candidates, select the best, put them in a group and hand them on."""

    @classmethod
    def define(cls, spec):
        """Inputs, outline, outputs and exit codes."""
        super().define(spec)
        spec.input("model", valid_type=ModelData, help="The trained model.")
        spec.input("candidates", valid_type=CrystalDatasetData, help="The candidate structures.")
        spec.input(
            "candidate_values",
            valid_type=(InvariantsData, orm.ArrayData),
            required=False,
            help="Precomputed invariants / features of the candidates (else found by query or computed).",
        )
        spec.input("reference", valid_type=InvariantsData, required=False, help="kNN: the training invariants (else loaded by UUID).")
        spec.input(
            "selection",
            valid_type=orm.Dict,
            default=lambda: orm.Dict({"top": 10, "order": "lowest"}),
            validator=check_selection,
            help="{'top': N, 'threshold': value, 'order': 'lowest' | 'highest'}.",
        )
        spec.input("group_label", valid_type=orm.Str, required=False, help="Add the selected structures to this group (created if needed).")
        add_handoff_ports(spec)

        spec.outline(
            cls.setup,
            cls.predict,
            cls.select,
            if_(cls.has_handoff)(cls.launch_handoff, cls.inspect_handoff),
        )

        spec.output("predictions", valid_type=orm.ArrayData, help="Predictions for every candidate.")
        spec.output("selected_ids", valid_type=orm.List, help="Identifiers of the selected candidates, best first.")
        spec.output_namespace("structures", valid_type=orm.StructureData, dynamic=True, help="The selected structures.")
        spec.output_namespace("handoff", dynamic=True, help="Outputs of the launched WorkChains, by structure.")

        spec.inputs.validator = validate_screening_inputs
        add_exit_codes(
            spec, "ERROR_NOTHING_SELECTED", "ERROR_INCOMPATIBLE_INPUTS", "ERROR_UNKNOWN_WORKFLOW",
            "ERROR_INVALID_HANDOFF_INPUTS", "ERROR_PREDICTION_STEP_FAILED", "ERROR_EXTRACTION_FAILED",
            "ERROR_HANDOFF_FAILED", "ERROR_SOME_HANDOFFS_FAILED",
        )

    def has_handoff(self) -> bool:
        return "handoff" in self.inputs and "workflow" in self.inputs.handoff

    def setup(self):
        """Check the selection, the model against the candidates' values and the hand-off."""
        self.ctx.selection = parse_selection(self.inputs.selection.get_dict()).normalised()
        model = self.inputs.model
        if "candidate_values" in self.inputs:
            reason = model.incompatibility(self.inputs.candidate_values)
            if reason:
                return self.exit_codes.ERROR_INCOMPATIBLE_INPUTS.format(message=reason)
        if model.needs_reference:
            try:
                self.ctx.reference = self.inputs.reference if "reference" in self.inputs else model.load_reference()
            except Exception as exc:  # noqa: BLE001 - missing node, wrong node
                return self.exit_codes.ERROR_INCOMPATIBLE_INPUTS.format(message=f"training invariants of the kNN model: {exc}")
            reason = model.check_reference(self.ctx.reference)
            if reason:
                return self.exit_codes.ERROR_INCOMPATIBLE_INPUTS.format(message=reason)
        return None

    def _candidate_values(self) -> dict[str, Any]:
        from .training import find_features, find_invariants

        if "candidate_values" in self.inputs:
            node = self.inputs.candidate_values
        else:
            spec = self.inputs.model.descriptor
            finder = find_invariants if spec["kind"] == "invariants" else find_features
            node = finder(self.inputs.candidates, spec)
            if node is not None:
                self.report(f"reusing {spec['name']} {spec['kind']} <{node.pk}> of the candidates")
        if node is None:
            return {}
        return {"invariants": node} if isinstance(node, InvariantsData) else {"features": node}

    def predict(self):
        """Predict every candidate."""
        inputs: dict[str, Any] = {"model": self.inputs.model, "dataset": self.inputs.candidates}
        inputs.update(self._candidate_values())
        if self.inputs.model.needs_reference:
            inputs["reference"] = self.ctx.reference
        results, node = predict.run_get_node(**inputs, metadata={"call_link_label": "predict"})
        if not node.is_finished_ok:
            if node.exit_status == 320:
                return self.exit_codes.ERROR_INCOMPATIBLE_INPUTS.format(message=node.exit_message)
            return self.exit_codes.ERROR_PREDICTION_STEP_FAILED.format(message=describe_failure(node))
        self.ctx.predictions = results["predictions"]
        self.out("predictions", results["predictions"])
        return None

    def select(self):
        """Choose the candidates and extract them as StructureData (into the group)."""
        from ..calculations.functions import extract_structures

        results, node = select_candidates.run_get_node(
            predictions=self.ctx.predictions, selection=self.inputs.selection, metadata={"call_link_label": "select"}
        )
        if not node.is_finished_ok:
            code = self.exit_codes.ERROR_NOTHING_SELECTED
            return code.format(message=node.exit_message)
        ids = results["ids"]
        self.out("selected_ids", ids)
        extracted, enode = extract_structures.run_get_node(
            dataset=self.inputs.candidates, ids=ids, metadata={"call_link_label": "extract_structures"}
        )
        if not enode.is_finished_ok:
            return self.exit_codes.ERROR_EXTRACTION_FAILED.format(message=describe_failure(enode))
        structures = dict(extracted["structures"])
        values = dict(zip(self.ctx.predictions.get_array("ids").tolist(), self.ctx.predictions.get_array("y_pred").tolist()))
        unit = self.inputs.model.target.get("unit", "")
        for label, structure in structures.items():
            self.out(f"structures.{label}", structure)
        self.ctx.structures = structures
        if "group_label" in self.inputs:
            group, created = orm.Group.collection.get_or_create(self.inputs.group_label.value)
            group.add_nodes(list(structures.values()))
            self.report(f"{'created' if created else 'added to'} group '{group.label}' <{group.pk}>: {len(structures)} structures")
        best = ", ".join(f"{s.label} {values.get(s.label, float('nan')):.4g}" for s in list(structures.values())[:5])
        self.report(f"selected {len(structures)} of {len(values)} candidates ({self.ctx.selection['order']} first): {best} {unit}")
        return None

    def launch_handoff(self):
        """Launch the hand-off WorkChain on every selected structure."""
        plan = HandoffPlan(self.inputs.handoff)  # checked at the ports
        self.ctx.handoff_refused = launch_handoffs(self, plan, self.ctx.structures)

    def inspect_handoff(self):
        """Expose the outputs of every successful child; name every failed one (exit status,
        message or exception, the deepest failed step); exit 411 when all failed, 425 when
        some did (the others' outputs are attached)."""
        done, failed = inspect_handoffs(self)
        failed = {self.ctx.structures[k].label or k: v for k, v in {**self.ctx.handoff_refused, **failed}.items()}
        for label, child in done.items():
            for link_label, node in returned_outputs(child).items():
                self.out(f"handoff.{label}.{link_label}", node)
        if not failed:
            return None
        lines = [f"{label}: {reason}" for label, reason in failed.items()]
        for line in lines:
            self.report(f"hand-off failed: {line}")
        total = len(done) + len(failed)
        if not done:
            return self.exit_codes.ERROR_HANDOFF_FAILED.format(message=f"{len(failed)} of {total}: " + "; ".join(lines))
        return self.exit_codes.ERROR_SOME_HANDOFFS_FAILED.format(message=f"{len(failed)} of {total} failed: " + "; ".join(lines))


def launch_screening(
    model: ModelData,
    candidates: CrystalDatasetData,
    top: int | None = 10,
    threshold: float | None = None,
    order: str = "lowest",
    group_label: str | None = None,
    workflow: str | None = None,
    inputs: dict[str, Any] | None = None,
    structure_input: str = "structure",
    submit: bool = False,
    protocol: str | None = None,
    builder: str | None = None,
    code: Any = None,
    parameters: dict[str, Any] | None = None,
):
    """Run (or submit) a :class:`ScreeningWorkChain`; returns ``(outputs, node)``."""
    from aiida.engine import run_get_node
    from aiida.engine import submit as submit_process

    inputs_: dict[str, Any] = {
        "model": model,
        "candidates": candidates,
        "selection": orm.Dict({"top": top, "threshold": threshold, "order": order}),
    }
    if group_label:
        inputs_["group_label"] = orm.Str(group_label)
    if workflow:
        handoff: dict[str, Any] = {"workflow": orm.Str(workflow), "structure_input": orm.Str(structure_input)}
        if inputs:
            handoff["inputs"] = orm.Dict(inputs)
        if protocol is not None:
            handoff["protocol"] = orm.Str(protocol)
        if builder is not None:
            handoff["builder"] = orm.Str(builder)
        if code is not None:
            handoff["code"] = orm.load_code(code) if isinstance(code, str) else code
        if parameters:
            handoff["parameters"] = orm.Dict(parameters)
        inputs_["handoff"] = handoff
    if submit:
        return {}, submit_process(ScreeningWorkChain, **inputs_)
    return run_get_node(ScreeningWorkChain, **inputs_)
