"""ScreeningWorkChain: predictions -> selection -> group -> real EwaldEnergyWorkChain hand-off."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import WorkflowFactory

from aiida_crystinv.calculations.functions import compute_invariants
from aiida_crystinv.calculations.learning import train_model
from aiida_crystinv.calculations.sources import synthetic_dataset
from aiida_crystinv.workflows.ewald import EwaldEnergyWorkChain
from aiida_crystinv.workflows.screening import ScreeningWorkChain, build_handoff_inputs

TARGET = "ewald_energy_per_atom"


@pytest.fixture(scope="module")
def trained():
    """A kNN model on the AMD of a 30-record landscape and 12 candidates of another seed."""
    train, _ = synthetic_dataset.run_get_node(parameters=orm.Dict({"n": 30, "seed": 11}))
    cand, _ = synthetic_dataset.run_get_node(parameters=orm.Dict({"n": 12, "seed": 12, "duplicate_fraction": 0.0}))
    dataset, candidates = train["dataset"], cand["dataset"]
    inv, _ = compute_invariants.run_get_node(dataset=dataset, descriptor=orm.Dict({"name": "amd", "k": 10}))
    results, node = train_model.run_get_node(
        dataset=dataset, target=orm.Str(TARGET), model=orm.Dict({"name": "knn", "k": 3}), invariants=inv["invariants"]
    )
    assert node.is_finished_ok, node.exit_message
    return results["model"], candidates


def test_entry_point():
    assert WorkflowFactory("crystinv.screening") is ScreeningWorkChain


def test_screen_and_hand_off_to_ewald(trained):
    model, candidates = trained
    label = "crystinv-test-screening"
    results, node = run_get_node(
        ScreeningWorkChain,
        model=model,
        candidates=candidates,
        selection=orm.Dict({"top": 3, "order": "lowest"}),
        group_label=orm.Str(label),
        handoff={"workflow": orm.Str("crystinv.ewald_energy")},
    )
    assert node.is_finished_ok, node.exit_message
    preds = results["predictions"]
    y = preds.get_array("y_pred")
    ids = preds.get_array("ids").tolist()
    expected = [ids[i] for i in np.argsort(y, kind="stable")[:3]]
    assert results["selected_ids"].get_list() == expected
    structures = results["structures"]
    assert sorted(s.label for s in structures.values()) == sorted(expected)
    group = orm.load_group(label)
    assert {n.uuid for n in group.nodes} == {s.uuid for s in structures.values()}
    # the real EwaldEnergyWorkChain ran on each selected structure; its energy is exposed and
    # equals the candidate's stored Ewald energy
    handoff = results["handoff"]
    assert set(handoff) == set(structures)
    truth = dict(zip(candidates.ids, candidates.get_target(TARGET)))
    children = [c for c in node.called if c.process_class is EwaldEnergyWorkChain]
    assert len(children) == 3 and all(c.is_finished_ok for c in children)
    for key, structure in structures.items():
        energy = handoff[key]["energy"]
        assert energy.value == pytest.approx(truth[structure.label], rel=1e-6)
        child = energy.creator.caller
        assert child.inputs.structure.uuid == structure.uuid
        assert child.caller.uuid == node.uuid


def test_threshold_highest_with_inputs_template(trained):
    model, candidates = trained
    results, node = run_get_node(
        ScreeningWorkChain,
        model=model,
        candidates=candidates,
        selection=orm.Dict({"threshold": -1e9, "order": "highest", "top": 1}),
    )
    assert node.is_finished_ok, node.exit_message
    y = results["predictions"].get_array("y_pred")
    assert len(results["selected_ids"].get_list()) == 1
    assert results["selected_ids"][0] == results["predictions"].get_array("ids")[int(np.argmax(y))]


def test_unknown_entry_point_stores_nothing(trained):
    model, candidates = trained
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ValueError) as info:
        run_get_node(
            ScreeningWorkChain, model=model, candidates=candidates, handoff={"workflow": orm.Str("quantumespresso.no_such")}
        )
    assert "quantumespresso.no_such" in str(info.value) and "crystinv.ewald_energy" in str(info.value)
    assert orm.QueryBuilder().append(orm.Node).count() == before


def test_bad_template_and_selection(trained):
    model, candidates = trained
    with pytest.raises(ValueError) as info:
        run_get_node(
            ScreeningWorkChain, model=model, candidates=candidates,
            handoff={"workflow": orm.Str("crystinv.ewald_energy"), "inputs": orm.Dict({"kpoints_distance": 0.2})},
        )
    assert "kpoints_distance" in str(info.value) and "oxidation_states" in str(info.value)
    other, _ = compute_invariants.run_get_node(dataset=candidates, descriptor=orm.Dict({"name": "amd", "k": 12}))
    _, node = run_get_node(ScreeningWorkChain, model=model, candidates=candidates, candidate_values=other["invariants"])
    assert node.exit_status == 222 and "k=12 (trained with 10)" in node.exit_message
    assert not node.called
    with pytest.raises(ValueError, match="order"):
        run_get_node(ScreeningWorkChain, model=model, candidates=candidates, selection=orm.Dict({"order": "best"}))
    _, node = run_get_node(
        ScreeningWorkChain, model=model, candidates=candidates, selection=orm.Dict({"threshold": -1e9, "order": "lowest"})
    )
    assert node.exit_status == 312 and "no candidate" in node.exit_message


def test_handoff_template_conversion():
    inputs = build_handoff_inputs(EwaldEnergyWorkChain, {"oxidation_states": {"Na": 1, "Cl": -1}}, "structure")
    assert isinstance(inputs["oxidation_states"], orm.Dict)
    stored = orm.Dict({"Na": 1, "Cl": -1}).store()
    assert build_handoff_inputs(EwaldEnergyWorkChain, {"oxidation_states": f"@{stored.uuid}"}, "structure")[
        "oxidation_states"
    ].uuid == stored.uuid
    with pytest.raises(ValueError, match="cannot load node"):
        build_handoff_inputs(EwaldEnergyWorkChain, {"oxidation_states": "@no-such-node"}, "structure")
    with pytest.raises(ValueError, match="no input 'pw.structure'"):
        build_handoff_inputs(EwaldEnergyWorkChain, {}, "pw.structure")
