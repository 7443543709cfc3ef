"""``AuditWorkChain`` (``crystinv.audit``): the audit of descriptors as a WorkChain, for use
inside other WorkChains and with ``submit``.

It runs the calcfunction :func:`~aiida_crystinv.calculations.audit.audit_descriptors` on
the dataset and exposes its outputs as its own: ``table`` (Dict), ``continuity_plot``
(PNG), and with a target ``target_table`` (Dict) and ``target_plot`` (PNG). The inputs are
checked when the process is built, by the same validators as the calcfunction's, so a
refused input stores nothing. A failure of the audit is passed on with its own exit code
(too few records 232, a descriptor that failed 301).
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import WorkChain

from ..calculations.audit import _check_descriptors_port, _check_parameters_port, _check_target, audit_descriptors
from ..data import CrystalDatasetData
from ..exit_codes import add_exit_codes, relay

__all__ = ("AuditWorkChain",)

#: The calcfunction's failures this WorkChain reports as they are.
PASSED = ("ERROR_TOO_FEW_RECORDS", "ERROR_DESCRIPTOR_FAILED")


class AuditWorkChain(WorkChain):
    """Invariance and continuity of descriptors on a dataset (see :mod:`aiida_crystinv.audit`)."""

    @classmethod
    def define(cls, spec):
        """Define inputs, outline, outputs and exit codes."""
        super().define(spec)
        spec.input("dataset", valid_type=CrystalDatasetData, help="The structures audited (the first n_structures).")
        spec.input("descriptors", valid_type=orm.List, validator=_check_descriptors_port,
                   help="Descriptor names (aiida_crystinv.representations.get_descriptor).")
        spec.input("parameters", valid_type=orm.Dict, required=False, validator=_check_parameters_port,
                   help="n_structures, seed, n_trials, eps, target, n_target, close_fraction, fraction.")
        spec.inputs.validator = _check_target
        spec.outline(cls.run_audit, cls.results)
        spec.output("table", valid_type=orm.Dict, help="One row per descriptor (null: not comparable).")
        spec.output("continuity_plot", valid_type=orm.SinglefileData, help="Change against displacement (PNG).")
        spec.output("target_table", valid_type=orm.Dict, required=False, help="Target continuity per descriptor.")
        spec.output("target_plot", valid_type=orm.SinglefileData, required=False, help="Target continuity (PNG).")
        add_exit_codes(spec, "ERROR_SUB_PROCESS_FAILED", *PASSED)

    def run_audit(self):
        """Run the calcfunction (its node is this WorkChain's child)."""
        inputs = {"dataset": self.inputs.dataset, "descriptors": self.inputs.descriptors}
        if "parameters" in self.inputs:
            inputs["parameters"] = self.inputs.parameters
        _, node = audit_descriptors.run_get_node(**inputs)
        if not node.is_finished_ok:
            return relay(self.exit_codes, node, "ERROR_SUB_PROCESS_FAILED", passed=PASSED)
        self.ctx.audit = node
        return None

    def results(self):
        """Expose the calcfunction's outputs."""
        outputs = self.ctx.audit.outputs
        for name in ("table", "continuity_plot", "target_table", "target_plot"):
            if name in outputs:
                self.out(name, outputs[name])
        rows = self.ctx.audit.outputs.table.get_dict()["rows"]
        self.report(f"audited {len(rows)} descriptor(s) on {self.ctx.audit.outputs.table['n_structures']} structure(s)")
