"""``ScreeningWorkChain``: rank candidates with a trained model and hand the best on.

model + candidate dataset ->

1. ``predictions`` of the model for every candidate (one node; the candidates' stored
   invariants are reused when they exist, found by query);
2. the selection: the ``top`` N lowest (or highest) predictions and/or those past a
   ``threshold``, chosen by the :func:`select_candidates` calcfunction (``selected_ids``);
3. the selected records as ``StructureData`` nodes (``structures.<id>``), added to a group;
4. optionally, the *hand-off*: any WorkChain given by entry point (``handoff.workflow``,
   e.g. ``'crystinv.ewald_energy'`` or ``'quantumespresso.pw.relax'``) launched on each
   selected structure with an inputs template (``handoff.inputs``); the outputs of every
   child are exposed as ``handoff.<id>.<output>``.

The inputs template is a JSON dict keyed by the child's input ports: plain values are
turned into nodes (``orm.to_aiida_type``: dict -> Dict, int -> Int, ...), nested
namespaces are dicts, a string ``'@<pk, uuid or label>'`` loads an existing node (e.g.
``'@pw@cluster'`` a code by ``LABEL@COMPUTER``), and ``metadata`` is passed through
unchanged. The structure goes into
the port named by ``handoff.structure_input`` (default ``structure``; ``'pw.structure'``
for a nested port).

An unknown entry point, a template port the child does not have, or a selection that
makes no sense stop the WorkChain with an exit code in its first step, before any
prediction or structure is stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import WorkChain, calcfunction, if_

from ..calculations.learning import predict
from ..data import CrystalDatasetData, InvariantsData
from ..calculations.ports import check_selection, validate_inputs
from ..data.model import ModelData
from ..exit_codes import EXIT, add_exit_codes, describe_failure
from ..specs.learning import parse_selection

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


def _port(namespace: Any, dotted: str) -> Any:
    port = namespace
    for part in dotted.split("."):
        port = port[part]
    return port


def build_handoff_inputs(process_class: type, template: dict[str, Any], structure_input: str) -> dict[str, Any]:
    """Turn a JSON inputs template into the inputs of ``process_class`` (without the structure).

    Raises:
        ValueError: a key that is not a port of the process (the message lists the ports),
            or a ``'@...'`` reference to a node that does not exist.
    """
    from aiida.common.exceptions import MultipleObjectsError, NotExistent
    from plumpy.ports import PortNamespace

    def convert(namespace: Any, values: dict[str, Any], path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in values.items():
            where = f"{path}{key}"
            if key == "metadata":
                out[key] = value
                continue
            if key not in namespace:
                if namespace.dynamic:
                    out[key] = _node(value, where)
                    continue
                raise ValueError(
                    f"{process_class.__name__} has no input {where!r}; its inputs{' in ' + path.rstrip('.') if path else ''} "
                    f"are {', '.join(k for k in namespace if k != 'metadata')}"
                )
            port = namespace[key]
            if isinstance(port, PortNamespace) and isinstance(value, dict):
                out[key] = convert(port, value, f"{where}.")
            else:
                out[key] = _node(value, where)
        return out

    def _node(value: Any, where: str) -> Any:
        if isinstance(value, orm.Node):
            return value
        if isinstance(value, str) and value.startswith("@"):
            identifier = value[1:]
            try:
                return orm.load_node(identifier)
            except (NotExistent, MultipleObjectsError, ValueError) as exc:
                if "@" in identifier:  # a code as LABEL@COMPUTER
                    try:
                        return orm.load_code(identifier)
                    except (NotExistent, MultipleObjectsError, ValueError):
                        pass
                raise ValueError(f"input {where!r}: cannot load node {identifier!r} ({exc})") from None
        return orm.to_aiida_type(value)

    inputs = process_class.spec().inputs
    try:
        _port(inputs, structure_input)
    except (KeyError, TypeError):
        raise ValueError(
            f"{process_class.__name__} has no input {structure_input!r} for the structure; set handoff.structure_input "
            f"to one of its inputs: {', '.join(k for k in inputs if k != 'metadata')}"
        ) from None
    return convert(inputs, dict(template or {}), "")


def _nest(inputs: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        inputs = inputs.setdefault(part, {})
    inputs[parts[-1]] = value


def validate_screening_inputs(inputs: Any, _ctx: Any = None) -> str | None:
    """The hand-off: an installed workflow whose ports take the inputs template."""
    from aiida.plugins import WorkflowFactory

    handoff = inputs.get("handoff", {}) or {}
    if any(k in handoff for k in ("inputs", "structure_input")) and "workflow" not in handoff:
        return "handoff inputs were given without handoff.workflow"
    if "workflow" not in handoff:
        return None
    name = handoff["workflow"].value
    try:
        process_class = WorkflowFactory(name)
    except Exception as exc:  # noqa: BLE001 - MissingEntryPointError, ImportError...
        from aiida.plugins.entry_point import get_entry_point_names

        known = ", ".join(sorted(get_entry_point_names("aiida.workflows")))
        return f"{name!r} is not an installed workflow entry point ({type(exc).__name__}); installed: {known}"
    port = handoff["structure_input"].value if "structure_input" in handoff else "structure"
    template = handoff["inputs"].get_dict() if "inputs" in handoff else {}
    try:
        build_handoff_inputs(process_class, template, port)
    except ValueError as exc:
        return f"invalid hand-off inputs: {exc}"
    return None


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
        spec.input_namespace("handoff", required=False, help="Launch a WorkChain on every selected structure.")
        spec.input("handoff.workflow", valid_type=orm.Str, required=False, help="Entry point, e.g. 'crystinv.ewald_energy'.")
        spec.input("handoff.inputs", valid_type=orm.Dict, required=False, help="Inputs template (JSON) of that WorkChain.")
        spec.input(
            "handoff.structure_input",
            valid_type=orm.Str,
            required=False,
            help="Input port of the structure (default 'structure'; dotted for a nested port).",
        )

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
            "ERROR_HANDOFF_FAILED",
        )

    def has_handoff(self) -> bool:
        return "handoff" in self.inputs and "workflow" in self.inputs.handoff

    def setup(self):
        """Check the selection, the model against the candidates' values and the hand-off."""
        from aiida.plugins import WorkflowFactory

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
        if self.has_handoff():  # checked at the ports (validate_screening_inputs)
            self.ctx.handoff_class = WorkflowFactory(self.inputs.handoff.workflow.value)
            handoff = self.inputs.handoff
            self.ctx.structure_input = handoff.structure_input.value if "structure_input" in handoff else "structure"
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
        template = self.inputs.handoff.inputs.get_dict() if "inputs" in self.inputs.handoff else {}
        self.ctx.handoff_labels = []
        for label, structure in self.ctx.structures.items():
            inputs = build_handoff_inputs(self.ctx.handoff_class, template, self.ctx.structure_input)
            _nest(inputs, self.ctx.structure_input, structure)
            metadata = dict(inputs.pop("metadata", {}) or {})
            metadata.update({"call_link_label": f"handoff_{label}", "label": f"{label} (screening hand-off)"})
            future = self.submit(self.ctx.handoff_class, **inputs, metadata=metadata)
            self.to_context(**{f"handoff_{label}": future})
            self.ctx.handoff_labels.append(label)
        self.report(f"launched {self.inputs.handoff.workflow.value} on {len(self.ctx.handoff_labels)} structures")

    def inspect_handoff(self):
        """Expose the outputs of every successful child; fail only if all failed."""
        failed = []
        for label in self.ctx.handoff_labels:
            child = self.ctx[f"handoff_{label}"]
            if not child.is_finished_ok:
                failed.append(f"{label}: {describe_failure(child)}")
                continue
            for link in child.base.links.get_outgoing(link_type=(LinkType.RETURN,)).all():
                self.out(f"handoff.{label}.{link.link_label}", link.node)
        if failed and len(failed) == len(self.ctx.handoff_labels):
            return self.exit_codes.ERROR_HANDOFF_FAILED.format(message="; ".join(failed))
        if failed:
            self.report(f"{len(failed)} hand-off WorkChain(s) failed: " + "; ".join(failed))
        return None


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
):
    """Run (or submit) a :class:`ScreeningWorkChain`; returns ``(outputs, node)``."""
    from aiida.engine import run_get_node
    from aiida.engine import submit as submit_process

    builder: dict[str, Any] = {
        "model": model,
        "candidates": candidates,
        "selection": orm.Dict({"top": top, "threshold": threshold, "order": order}),
    }
    if group_label:
        builder["group_label"] = orm.Str(group_label)
    if workflow:
        builder["handoff"] = {"workflow": orm.Str(workflow), "inputs": orm.Dict(inputs or {}), "structure_input": orm.Str(structure_input)}
    if submit:
        return {}, submit_process(ScreeningWorkChain, **builder)
    return run_get_node(ScreeningWorkChain, **builder)
