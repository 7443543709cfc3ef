"""EwaldEnergyWorkChain: the lightweight energy workflow used as a stand-in for DFT.

(Named ``test_cli_*`` because it belongs to the demo / command-line helper's area.)
"""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import WorkflowFactory
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.core import Lattice, Structure

from aiida_crystinv.sources.synthetic import prototype_structure
from aiida_crystinv.workflows.ewald import EwaldEnergyWorkChain


def test_entry_point():
    assert WorkflowFactory("crystinv.ewald_energy") is EwaldEnergyWorkChain


def test_energy_with_provenance():
    structure, charges = prototype_structure("rocksalt", "NaCl")
    node_in = orm.StructureData(pymatgen=structure)
    results, node = run_get_node(EwaldEnergyWorkChain, structure=node_in)
    assert node.is_finished_ok, node.exit_message
    decorated = structure.copy()
    decorated.add_oxidation_state_by_element(charges)
    expected = EwaldSummation(decorated).total_energy / len(structure)
    assert results["energy"].value == pytest.approx(expected, rel=1e-8)
    # the energy was created by a calcfunction whose input is the structure
    creator = results["energy"].creator
    assert isinstance(creator, orm.CalcFunctionNode)
    assert creator.inputs.structure.uuid == node_in.uuid
    assert creator.caller.uuid == node.uuid


def test_explicit_oxidation_states():
    structure, _ = prototype_structure("fluorite", "Li2O")
    node_in = orm.StructureData(pymatgen=structure)
    results, node = run_get_node(
        EwaldEnergyWorkChain, structure=node_in, oxidation_states=orm.Dict({"Li": 1, "O": -2})
    )
    assert node.is_finished_ok
    assert results["energy"].value < 0


def test_exit_code_without_oxidation_states():
    metal = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    _, node = run_get_node(EwaldEnergyWorkChain, structure=orm.StructureData(pymatgen=metal))
    assert node.exit_status == EwaldEnergyWorkChain.exit_codes.ERROR_ENERGY_FAILED.status
    assert "Fe" in node.exit_message
    assert "energy" not in node.outputs


def test_exit_code_not_neutral():
    structure, _ = prototype_structure("rocksalt", "MgO")
    _, node = run_get_node(
        EwaldEnergyWorkChain,
        structure=orm.StructureData(pymatgen=structure),
        oxidation_states=orm.Dict({"Mg": 2, "O": -1}),
    )
    assert node.exit_status == EwaldEnergyWorkChain.exit_codes.ERROR_ENERGY_FAILED.status
    assert "not charge neutral" in node.exit_message


def test_bad_oxidation_states_rejected():
    structure, _ = prototype_structure("rocksalt", "MgO")
    with pytest.raises(ValueError, match="must be numbers"):
        run_get_node(
            EwaldEnergyWorkChain,
            structure=orm.StructureData(pymatgen=structure),
            oxidation_states=orm.Dict({"Mg": "two", "O": -2}),
        )
