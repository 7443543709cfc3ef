"""The audit as a provenance-tracked calcfunction (``crystinv.audit``) and the
``crystinv audit`` command, on real Perov-5 structures (read from ../shared/datasets)."""

from __future__ import annotations

import warnings

import pytest
from aiida import orm
from aiida.plugins import CalculationFactory
from click.testing import CliRunner

from aiida_crystinv.calculations.audit import audit_descriptors
from aiida_crystinv.cli import cmd_crystinv
from aiida_crystinv.data import CrystalDatasetData
from tests.conftest import read_csv_structures, require_module

require_module("dscribe")

PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def perov() -> CrystalDatasetData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids, structures, y = read_csv_structures("perov5.csv.gz", 30, target="heat_ref")
    node = CrystalDatasetData.from_structures(structures, ids=ids, targets={"heat_ref": y}, units={"heat_ref": "eV"})
    return node.store()


def test_entry_point_and_outputs(perov, tmp_path):
    assert CalculationFactory("crystinv.audit") is audit_descriptors
    outputs, node = audit_descriptors.run_get_node(
        dataset=perov, descriptors=orm.List(["amd", "sine_matrix", "niggli"]),
        parameters=orm.Dict({"n_structures": 2, "target": "heat_ref", "eps": [1e-4, 1e-3, 1e-2, 0.1, 0.3]}))
    assert node.is_finished_ok
    rows = {r["descriptor"]: r for r in outputs["table"].get_dict()["rows"]}
    assert rows["amd"]["invariance"] == "invariant" and rows["amd"]["continuity"] == "continuous"
    assert rows["sine_matrix"]["supercell_diagonal"] is None  # not comparable, stored as JSON null
    assert rows["niggli"]["continuity"] == "jumps"
    target = outputs["target_table"].get_dict()
    assert target["target"] == "heat_ref" and [r["n"] for r in target["rows"]] == [30, 30, 30]
    for key in ("continuity_plot", "target_plot"):
        assert outputs[key].get_content(mode="rb").startswith(PNG)
    # the table holds only JSON (no pickle): the outputs are a Dict and PNG files
    assert isinstance(outputs["table"], orm.Dict)


@pytest.mark.parametrize("descriptors, parameters, words", [
    (["nope"], {}, "unknown descriptor 'nope'"),
    (["amd"], {"target": "band_gap"}, "no target 'band_gap'"),
    (["amd"], {"n_structurez": 2}, "unknown parameter(s) ['n_structurez']"),
    (["amd"], {"eps": [0.1]}, "eps must be a list of at least two"),
    ([], {}, "non-empty list of names"),
])
def test_bad_inputs_store_nothing(perov, descriptors, parameters, words):
    """Refused when the process is built: no process node, no input node is stored."""
    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ValueError) as info:
        audit_descriptors.run_get_node(dataset=perov, descriptors=orm.List(descriptors), parameters=orm.Dict(parameters))
    assert words in str(info.value)
    assert orm.QueryBuilder().append(orm.Node).count() == before


def test_cli_audit(perov, tmp_path):
    result = CliRunner().invoke(cmd_crystinv, ["audit", str(perov.pk), "-d", "pdd", "-d", "ewald_sum_matrix", "-n", "1",
                                               "-t", "heat_ref", "--n-target", "10", "--png-dir", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    assert any(line.startswith("pdd ") and "invariant" in line and "continuous" in line for line in lines)
    assert any(line.startswith("ewald_sum_matrix ") and "not comparable" in line for line in lines)
    assert (tmp_path / "audit_continuity.png").read_bytes().startswith(PNG)
    assert (tmp_path / "target_continuity.png").read_bytes().startswith(PNG)


def test_cli_audit_unknown_descriptor(perov):
    result = CliRunner().invoke(cmd_crystinv, ["audit", str(perov.pk), "-d", "word2vec"], catch_exceptions=False)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "unknown descriptor 'word2vec'" in result.output


def test_the_cli_example_of_the_docs(perov):
    """Every `crystinv audit DATASET ...` line of docs/representations.md runs on a real
    dataset node (DATASET replaced by its pk)."""
    import pathlib
    import shlex

    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "representations.md").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("crystinv audit DATASET")]
    assert lines
    for line in lines:
        args = [str(perov.pk) if a == "DATASET" else a for a in shlex.split(line)[1:]]
        result = CliRunner().invoke(cmd_crystinv, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output


def test_the_workchain_gives_the_calcfunctions_outputs(perov):
    """AuditWorkChain (crystinv.audit in aiida.workflows) calls the calcfunction and exposes
    the same table and plots; a bad input is refused before anything is stored; a
    failure inside is passed on with its own exit code."""
    from aiida.engine import run_get_node
    from aiida.plugins import WorkflowFactory

    AuditWorkChain = WorkflowFactory("crystinv.audit")
    parameters = {"n_structures": 2, "target": "heat_ref", "n_target": 10}
    outputs, node = run_get_node(AuditWorkChain, dataset=perov, descriptors=orm.List(["amd", "sine_matrix"]),
                                 parameters=orm.Dict(parameters))
    assert node.is_finished_ok, node.exit_message
    direct, _ = audit_descriptors.run_get_node(dataset=perov, descriptors=orm.List(["amd", "sine_matrix"]),
                                               parameters=orm.Dict(parameters))
    assert outputs["table"].get_dict()["rows"] == direct["table"].get_dict()["rows"]
    assert outputs["target_table"].get_dict() == direct["target_table"].get_dict()
    for key in ("continuity_plot", "target_plot"):
        assert outputs[key].get_content(mode="rb").startswith(PNG)
    child = node.base.links.get_outgoing(node_class=orm.CalcFunctionNode).one().node
    assert child.process_label == "audit_descriptors" and outputs["table"].creator.pk == child.pk

    before = orm.QueryBuilder().append(orm.Node).count()
    with pytest.raises(ValueError, match="no target 'band_gap'"):
        run_get_node(AuditWorkChain, dataset=perov, descriptors=orm.List(["amd"]), parameters=orm.Dict({"target": "band_gap"}))
    assert orm.QueryBuilder().append(orm.Node).count() == before

    _, failed = run_get_node(AuditWorkChain, dataset=perov,
                             descriptors=orm.List(["tests.aiida.test_study_audit:refuses_every_structure"]),
                             parameters=orm.Dict({"n_structures": 1}))
    assert failed.exit_status == 301, (failed.exit_status, failed.exit_message)
    assert "this descriptor refuses" in failed.exit_message
    assert "table" not in failed.outputs
