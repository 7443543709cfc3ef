"""The DFT loop's parts without a DFT code: collecting energies, calibration (analytic
shifts), extending the training set, the hand-off plan's checks, and the whole loop with the
package's real Ewald WorkChain standing in for DFT. The real pw.x runs are in test_qe.py."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from pymatgen.core import Lattice, Structure

from aiida_crystinv.calculations.dft import calibrate_dft, collect_dft_results, dft_inputs, extend_training
from aiida_crystinv.calculations.sources import synthetic_dataset
from aiida_crystinv.data import CrystalDatasetData
from aiida_crystinv.exit_codes import EXIT
from aiida_crystinv.workflows.ewald import ewald_energy
from aiida_crystinv.workflows.handoff import HandoffPlan, validate_handoff
from aiida_crystinv.workflows.loop import DftLoopWorkChain, select_for_dft

TARGET = "ewald_energy_per_atom"


def _structure(species, a=4.0):
    coords = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0]][: len(species)]
    return Structure(Lattice.cubic(a), species, coords)


def test_collect_reads_qe_style_and_float_energies():
    s1 = orm.StructureData(pymatgen=_structure(["C", "C"])).store()
    s2 = orm.StructureData(pymatgen=_structure(["Si", "C", "C", "C"])).store()
    params = orm.Dict({"energy": -310.0, "energy_units": "eV", "number_of_atoms": 2, "pressure": 1.5,
                       "pressure_units": "GPa"}).store()
    per_atom = orm.Float(-7.25).store()
    results, node = collect_dft_results.run_get_node(**dft_inputs({"a": (s1, params), "b": (s2, per_atom)}))
    assert node.is_finished_ok, node.exit_message
    ds = results["dataset"]
    assert ds.ids == ["a", "b"]
    np.testing.assert_allclose(ds.get_target("dft_energy_per_atom"), [-155.0, -7.25])
    assert ds.units["dft_energy_per_atom"] == "eV/atom"
    assert "dft_pressure" not in ds.target_names  # only one of the two reported a pressure
    # the dataset's creator takes the DFT outputs themselves as inputs
    assert {n.uuid for n in node.base.links.get_incoming().all_nodes()} >= {params.uuid, per_atom.uuid, s1.uuid}


def test_collect_refuses_an_output_without_energy():
    s1 = orm.StructureData(pymatgen=_structure(["C", "C"])).store()
    _, node = collect_dft_results.run_get_node(**dft_inputs({"a": (s1, orm.Dict({"energy_units": "eV"}))}))
    assert node.exit_status == EXIT.ERROR_NO_ENERGY.status
    assert "no 'energy'" in node.exit_message
    _, node = collect_dft_results.run_get_node(**dft_inputs({"a": (s1, orm.Dict({"energy": -1.0, "energy_units": "Ry"}))}))
    assert node.exit_status == EXIT.ERROR_NO_ENERGY.status and "expected eV" in node.exit_message


def test_calibration_recovers_known_element_shifts():
    """target = E_dft + x_C mu_C + x_Si mu_Si with mu chosen here: the fit gives them back,
    and extend_training puts a new record on the target's scale with them."""
    mu = {"C": 2.5, "Si": -1.25}
    structures = [_structure(["C", "C"]), _structure(["Si", "Si"]), _structure(["Si", "C", "C", "C"])]
    e_dft = np.array([-150.0, -100.0, -140.0])
    frac = np.array([[1, 0], [0, 1], [0.75, 0.25]])
    target = e_dft + frac @ np.array([mu["C"], mu["Si"]])
    training = CrystalDatasetData.from_structures(structures, ids=["r1", "r2", "r3"], targets={"e": target.tolist()},
                                                  units={"e": "eV/atom"}).store()
    dft = CrystalDatasetData.from_structures(structures[:2], ids=["r1", "r2"], targets={"dft_energy_per_atom": e_dft[:2].tolist()}).store()
    results, node = calibrate_dft.run_get_node(dft=dft, training=training, target=orm.Str("e"))
    assert node.is_finished_ok, node.exit_message
    cal = results["calibration"]
    assert cal["shifts"]["C"] == pytest.approx(mu["C"]) and cal["shifts"]["Si"] == pytest.approx(mu["Si"])
    new = CrystalDatasetData.from_structures([_structure(["Si", "C"], a=4.2)], ids=["n1"],
                                             targets={"dft_energy_per_atom": [-120.0]}).store()
    ext, enode = extend_training.run_get_node(training=training, dft=new, target=orm.Str("e"), calibration=cal)
    assert enode.is_finished_ok, enode.exit_message
    out = ext["dataset"]
    assert out.ids == ["r1", "r2", "r3", "n1"] and out.units["e"] == "eV/atom"
    assert out.get_target("e")[-1] == pytest.approx(-120.0 + 0.5 * mu["C"] + 0.5 * mu["Si"])
    np.testing.assert_allclose(out.get_target("e")[:3], target)
    # one reference cannot fix two shifts; a record already in the training set is refused
    _, bad = calibrate_dft.run_get_node(dft=CrystalDatasetData.from_structures(
        structures[2:], ids=["r3"], targets={"dft_energy_per_atom": [-140.0]}), training=training, target=orm.Str("e"))
    assert bad.exit_status == EXIT.ERROR_CALIBRATION.status and "C, Si" in bad.exit_message
    _, clash = extend_training.run_get_node(training=training, dft=dft, target=orm.Str("e"))
    assert clash.exit_status == EXIT.ERROR_INVALID_RECORD.status and "r1" in clash.exit_message


def test_select_best_and_uncertain():
    pred = orm.ArrayData()
    pred.set_array("ids", np.array(["a", "b", "c", "d", "e"]))
    pred.set_array("y_pred", np.array([3.0, 1.0, 2.0, 0.5, 4.0]))
    novelty = orm.ArrayData()
    novelty.set_array("ids", np.array(["a", "b", "c", "d", "e"]))
    novelty.set_array("distance", np.array([0.1, 0.2, 0.9, 0.0, 0.5]))
    out = select_for_dft(predictions=pred, selection=orm.Dict({"best": 2, "uncertain": 1}), exclude=orm.List(["d"]),
                         novelty=novelty)
    assert out["ids"].get_list() == ["b", "c", "e"]  # best two of a,b,c,e: b, c; then the farthest left: e
    _, node = select_for_dft.run_get_node(predictions=pred, selection=orm.Dict({"best": 1}),
                                          exclude=orm.List(["a", "b", "c", "d", "e"]))
    assert node.exit_status == EXIT.ERROR_NOTHING_SELECTED.status


def test_plan_refuses_what_cannot_work(aiida_localhost):
    code = orm.InstalledCode(computer=aiida_localhost, filepath_executable="/bin/true", label="true").store()
    # a workflow without a protocol builder
    msg = validate_handoff({"workflow": orm.Str("crystinv.ewald_energy"), "protocol": orm.Str("fast"), "code": code})
    assert "has no protocol builder" in msg and "handoff.inputs" in msg
    # a protocol without a code; settings for a builder without one; both ways at once
    assert "needs handoff.code" in validate_handoff({"workflow": orm.Str("crystinv.ewald_energy"), "protocol": orm.Str("fast")})
    assert "is for a builder" in validate_handoff({"workflow": orm.Str("crystinv.ewald_energy"), "code": code})
    assert "not both" in validate_handoff({"workflow": orm.Str("crystinv.ewald_energy"), "protocol": orm.Str("x"),
                                           "builder": orm.Str("os:getcwd"), "code": code})
    assert "not an installed workflow" in validate_handoff({"workflow": orm.Str("no.such.workflow")})
    assert "cannot be loaded" in validate_handoff({"workflow": orm.Str("crystinv.ewald_energy"),
                                                   "builder": orm.Str("no_such_module:f"), "code": code})
    # a builder callable by dotted path, with its parameters
    plan = HandoffPlan({"workflow": orm.Str("crystinv.ewald_energy"), "builder": orm.Str(f"{__name__}:ewald_builder"),
                        "code": code, "parameters": orm.Dict({"charges": {"Na": 1, "Cl": -1}})})
    structure = orm.StructureData(pymatgen=Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    cls, built = plan.inputs_for(structure)
    assert built["oxidation_states"].get_dict() == {"Na": 1, "Cl": -1} and built["structure"] is structure


def ewald_builder(structure, code, protocol, charges):
    """A registered-by-path builder: the Ewald WorkChain's inputs (the code is not used)."""
    return {"structure": structure, "oxidation_states": orm.Dict(charges)}


@pytest.fixture(scope="module")
def landscape():
    train, _ = synthetic_dataset.run_get_node(parameters=orm.Dict({"n": 40, "seed": 21}))
    cand, _ = synthetic_dataset.run_get_node(parameters=orm.Dict({"n": 15, "seed": 22, "duplicate_fraction": 0.0}))
    raw = cand["dataset"]  # the generator names records by prototype: other identifiers for the candidates
    candidates = CrystalDatasetData.from_structures(raw.get_crystals(), ids=[f"cand-{i}" for i in range(len(raw))],
                                                    targets={TARGET: raw.get_target(TARGET).tolist()},
                                                    units=raw.units).store()
    return train["dataset"], candidates, raw


def test_loop_with_ewald_as_the_energy_code(landscape):
    """Two rounds with the real Ewald WorkChain in place of DFT: the energies that come back
    are the exact Ewald energies, every round trains on what the previous added, no
    candidate is computed twice, and the scores compare the round's model with them."""
    training, candidates, raw = landscape
    _, clash = run_get_node(DftLoopWorkChain, dataset=training, candidates=raw, target=orm.Str(TARGET),
                            handoff={"workflow": orm.Str("crystinv.ewald_energy")})
    assert clash.exit_status == EXIT.ERROR_INCOMPATIBLE_INPUTS.status and "also in the training set" in clash.exit_message
    results, node = run_get_node(
        DftLoopWorkChain, dataset=training, candidates=candidates, target=orm.Str(TARGET),
        descriptor=orm.Dict({"name": "amd", "k": 20}), model=orm.Dict({"name": "krr", "kernel": "laplacian"}),
        selection=orm.Dict({"best": 2, "uncertain": 1}), rounds=orm.Int(2), patience=orm.Int(5),
        handoff={"workflow": orm.Str("crystinv.ewald_energy")},
    )
    assert node.is_finished_ok, f"[{node.exit_status}] {node.exit_message}"
    summary = results["summary"].get_dict()
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    assert [r["n_train"] for r in summary["rounds"]] == [40, 43]
    assert len(results["dataset"]) == 46
    assert "calibration" not in results  # same scale: the Ewald energy is the landscape's target
    seen = []
    for name in ("round_1", "round_2"):
        dft = results["dft"][name]
        seen += dft.ids
        truth = candidates.get_target(TARGET)[[candidates.index_of(r) for r in dft.ids]]
        np.testing.assert_allclose(dft.get_target("dft_energy_per_atom"), truth, atol=1e-8)
        for r in dft.ids:  # independent: the calcfunction on the structure
            assert ewald_energy(orm.StructureData(pymatgen=candidates.get_structure(r))).value == pytest.approx(
                candidates.get_target(TARGET)[candidates.index_of(r)], abs=1e-8)
        score = results["scores"][name]
        (predict_call,) = [c for c in node.called if _label_of(node, c) == f"{name}_predict"]
        pred = dict(zip(predict_call.outputs.predictions.get_array("ids").tolist(),
                        predict_call.outputs.predictions.get_array("y_pred").tolist()))
        expected = np.mean(np.abs([pred[r] for r in dft.ids] - truth))
        assert score["mae"] == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert len(seen) == len(set(seen)) == 6
    assert results["dataset"].ids[40:] == seen


def _label_of(parent, child) -> str:
    links = parent.base.links.get_outgoing(node_class=type(child)).all()
    return next((link.link_label for link in links if link.node.pk == child.pk), "")


def test_import_rows_takes_part_of_a_file_in_file_order(csv_slice):
    """rows [start, stop] counts every record of the file (a broken one too) from 0."""
    import csv

    from aiida_crystinv.calculations.functions import import_dataset

    path = csv_slice("carbon24.csv.gz", n=10)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    body[4][header.index("cif")] = "not a cif"  # record 4 of the file is broken
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *body])
    ids = [r[header.index("material_id")] for r in body]
    file = orm.SinglefileData(path)
    opts = {"id_column": "material_id", "target_columns": ["energy_per_atom"], "on_error": "skip"}
    out, node = import_dataset.run_get_node(file=file, options=orm.Dict({**opts, "rows": [3, 7]}))
    assert node.is_finished_ok, node.exit_message
    ds = out["dataset"]
    assert ds.ids == [ids[3], ids[5], ids[6]]
    assert [s["id"] for s in ds.skipped] == [ids[4]]
    energies = [float(r[header.index("energy_per_atom")]) for r in body]
    np.testing.assert_allclose(ds.get_target("energy_per_atom"), [energies[3], energies[5], energies[6]])
    _, empty = import_dataset.run_get_node(file=file, options=orm.Dict({**opts, "rows": [50, 60]}))
    assert empty.exit_status == EXIT.ERROR_INVALID_OPTIONS.status and "no record there" in empty.exit_message
    with pytest.raises(ValueError, match="stop > start"):
        import_dataset.run_get_node(file=file, options=orm.Dict({**opts, "rows": [5, 5]}))
