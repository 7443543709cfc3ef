"""A lightweight, real energy workflow: the Ewald energy of an ionic structure.

:class:`EwaldEnergyWorkChain` stands in for a DFT workflow wherever a screening pipeline
hands a selected ``StructureData`` on to "the expensive calculation": it has the same shape
(a ``structure`` in, an ``energy`` out, exit codes when the structure cannot be treated)
and runs in milliseconds. The energy is pymatgen's Ewald summation of point charges,
computed in a calcfunction so that it is part of the provenance graph.

Example::

    from aiida.engine import run
    from aiida_crystinv.workflows.ewald import EwaldEnergyWorkChain

    results = run(EwaldEnergyWorkChain, structure=structure_data)
    results["energy"].value  # eV/atom
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode, WorkChain, calcfunction

from ..exit_codes import EXIT, add_exit_codes, relay

__all__ = ("EwaldEnergyWorkChain", "ewald_energy")


def _validate_oxidation_states(value: orm.Dict | None, _ctx=None) -> str | None:
    """Every value must be a number (the charge of the element, in units of e)."""
    if value is None:
        return None
    bad = {k: v for k, v in value.get_dict().items() if isinstance(v, bool) or not isinstance(v, (int, float))}
    if bad:
        return f"oxidation states must be numbers by element symbol, e.g. {{'Na': 1, 'Cl': -1}}; got {bad}"
    return None


@calcfunction
def ewald_energy(structure: orm.StructureData, oxidation_states: orm.Dict | None = None) -> orm.Float | ExitCode:
    """Ewald energy per atom (eV/atom) of a 3D-periodic ionic structure.

    :param structure: the structure; must be periodic in three dimensions and ordered.
    :param oxidation_states: optional charges by element symbol; else taken from pymatgen's guess.
    :return: ``Float`` in eV/atom, or an ``ExitCode`` naming the reason it cannot be computed.
    """
    from aiida_crystinv.sources.synthetic import OxidationStateError, ewald_energy_per_atom

    if not all(structure.pbc):
        return EXIT.ERROR_INVALID_STRUCTURE.format(message=f"the structure is not periodic in 3D (pbc={structure.pbc})")
    charges = oxidation_states.get_dict() if oxidation_states is not None else None
    try:
        energy = ewald_energy_per_atom(structure.get_pymatgen_structure(), charges)
    except OxidationStateError as exception:
        return EXIT.ERROR_ENERGY_FAILED.format(message=f"the oxidation states could not be determined: {exception}")
    return orm.Float(energy)


class EwaldEnergyWorkChain(WorkChain):
    """Ewald (point-charge) lattice energy per atom of one structure, in eV/atom.

    A real, cheap stand-in for a DFT WorkChain in screening hand-offs: takes a
    ``structure``, returns an ``energy``; fails with an exit code when the oxidation
    states cannot be determined.
    """

    @classmethod
    def define(cls, spec):
        """Define inputs, outline, outputs and exit codes."""
        super().define(spec)
        spec.input("structure", valid_type=orm.StructureData, help="The crystal structure (3D periodic, ordered).")
        spec.input(
            "oxidation_states",
            valid_type=orm.Dict,
            required=False,
            validator=_validate_oxidation_states,
            help="Charge of each element, e.g. {'Na': 1, 'Cl': -1}; guessed with pymatgen when omitted.",
        )
        spec.outline(cls.compute, cls.finalize)
        spec.output("energy", valid_type=orm.Float, help="Ewald energy per atom, eV/atom.")
        add_exit_codes(spec, "ERROR_INVALID_STRUCTURE", "ERROR_ENERGY_FAILED")

    def compute(self):
        """Run the Ewald summation as a calcfunction (provenance)."""
        inputs = {"structure": self.inputs.structure}
        if "oxidation_states" in self.inputs:
            inputs["oxidation_states"] = self.inputs.oxidation_states
        _, node = ewald_energy.run_get_node(**inputs)
        if not node.is_finished_ok:
            return relay(self.exit_codes, node, "ERROR_ENERGY_FAILED", passed=("ERROR_INVALID_STRUCTURE", "ERROR_ENERGY_FAILED"))
        self.ctx.energy = node.outputs.result
        return None

    def finalize(self):
        """Attach the energy."""
        self.out("energy", self.ctx.energy)
        self.report(f"Ewald energy: {self.ctx.energy.value:.6f} eV/atom")
