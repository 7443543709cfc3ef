"""The ``audit:`` section of a study: the YAML example of docs/learning.md ("The audit
section") runs as a StudyWorkChain; its audit outputs are checked against an independent,
direct call of ``audit_descriptors`` on the same dataset and against known properties
(AMD is invariant and continuous; the sine matrix changes shape with the cell); the report
has the section and a non-blank PNG; a bad section is refused when the file is read, with
nothing stored; a descriptor that fails stops the study with exit code 400; the same on
the first 20 real records of Perov-5 (read from the shared datasets)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import yaml
from aiida import orm
from aiida.engine import run_get_node

from aiida_crystinv.audit import TRANSFORMS
from aiida_crystinv.calculations.audit import audit_descriptors
from aiida_crystinv.exit_codes import EXIT
from aiida_crystinv.workflows.study import StudyError, StudyWorkChain, build_study_inputs, load_study, write_report
from tests.conftest import require_module

from ._docs import write_study, yaml_block

require_module("dscribe")  # sine_matrix

PNG = b"\x89PNG"


def doc_yaml() -> str:
    """The YAML block of the section "The audit section" of docs/learning.md."""
    return yaml_block("learning.md", "### The audit section")


def refuses_every_structure(structure):
    """A descriptor (``module:function``) that fails on any structure."""
    raise ValueError(f"this descriptor refuses {structure.composition.reduced_formula}")


def count_nodes() -> int:
    return orm.QueryBuilder().append(orm.Node).count()


def not_blank(path: pathlib.Path) -> bool:
    """A PNG with drawn content: more than 1 % of its pixels differ from the background."""
    import matplotlib.image

    image = matplotlib.image.imread(str(path))[..., :3]
    background = image[0, 0]
    return float(np.mean(np.any(np.abs(image - background) > 0.05, axis=-1))) > 0.01


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """The docs example run as a study: (plan, outputs, node, folder)."""
    folder = tmp_path_factory.mktemp("audit_study")
    study = load_study(write_study(folder, doc_yaml()))
    results, node = run_get_node(StudyWorkChain, **build_study_inputs(study))
    return study, results, node, folder


def test_docs_example_is_planned(audited):
    study, *_ = audited
    raw = yaml.safe_load(doc_yaml())
    assert raw["audit"] == {"descriptors": ["amd", "sine_matrix"], "n_structures": 2, "target": True, "n_target": 20}
    assert study["audit"] == {"descriptors": ["amd", "sine_matrix"],
                              "parameters": {"n_structures": 2, "target": "ewald_energy_per_atom", "n_target": 20}}


def test_study_audit_matches_a_direct_call(audited):
    study, results, node, _ = audited
    assert node.is_finished_ok, node.exit_message
    assert set(results["audit"]) == {"table", "continuity_plot", "target_table", "target_plot"}
    dataset = results["datasets"]["train"]
    assert len(dataset) == 20
    # an independent call of the calcfunction on the same dataset, with the parameters
    # written out here (not taken from the plan)
    direct, call = audit_descriptors.run_get_node(
        dataset=dataset, descriptors=orm.List(["amd", "sine_matrix"]),
        parameters=orm.Dict({"n_structures": 2, "target": "ewald_energy_per_atom", "n_target": 20}))
    assert call.is_finished_ok
    ours = results["audit"]["table"].get_dict()
    theirs = direct["table"].get_dict()
    assert ours["ids"] == theirs["ids"] == dataset.ids[:2]
    assert [r["descriptor"] for r in ours["rows"]] == ["amd", "sine_matrix"]
    for mine, ref in zip(ours["rows"], theirs["rows"]):
        for key in ("descriptor", "invariance", "continuity", *TRANSFORMS):
            assert mine[key] == ref[key], (mine["descriptor"], key)
        np.testing.assert_allclose(mine["change"], ref["change"], rtol=1e-12, atol=0)
    assert ours["rows"] == theirs["rows"]
    assert results["audit"]["target_table"].get_dict() == direct["target_table"].get_dict()
    # what is known of these descriptors independently of this code: AMD does not change
    # with the cell and moves at most eps when no atom moves more than eps (Lipschitz 2);
    # the sine matrix of a supercell has another shape
    amd_row, sine_row = ours["rows"]
    assert amd_row["invariance"] == "invariant" and amd_row["continuity"] == "continuous"
    assert all(amd_row[t] is not None and amd_row[t] < 1e-6 for t in TRANSFORMS)
    assert all(c <= 2 * e + 1e-9 for c, e in zip(amd_row["change"], amd_row["eps"]))
    assert sine_row["supercell_diagonal"] is None and sine_row["invariance"] == "not invariant"
    # the audit is a child of the study, linked to the training dataset
    calls = [c for c in node.called if c.process_label == "audit_descriptors"]
    assert len(calls) == 1 and calls[0].inputs.dataset.uuid == dataset.uuid
    from aiida.common.links import LinkType

    creator = results["audit"]["table"].base.links.get_incoming(link_type=LinkType.CREATE).one().node
    assert creator.uuid == calls[0].uuid


def test_audit_is_a_reported_step(audited):
    _, _, node, _ = audited
    messages = [log.message for log in orm.Log.collection.get_logs_for(node)]
    steps = [m[m.index("[step "):] for m in messages if "]: [step " in m]  # after "[pk|StudyWorkChain|method]: "
    assert steps[:4] == [
        "[step 1/5] import: started (import the sources)", steps[1],
        "[step 2/5] audit: started (audit the descriptors for invariance and continuity)", steps[3],
    ]
    assert steps[3].startswith("[step 2/5] audit: done in ") and "amd invariant, continuous" in steps[3]
    assert steps[4].startswith("[step 3/5] descriptors: started")


def test_report_has_the_audit_section(audited):
    _, results, node, folder = audited
    report = write_report(node, folder / "report", plots=False)
    text = report.read_text()
    section = text.split("## Audit of the descriptors\n", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| descriptor | supercell_diagonal |")
    amd_line = next(line for line in table if line.startswith("| amd |"))
    sine_line = next(line for line in table if line.startswith("| sine_matrix |"))
    assert "| invariant |" in amd_line and amd_line.rstrip().endswith("| continuous |")
    assert "| not comparable |" in sine_line and "| not invariant |" in sine_line
    assert "![change / eps against eps](audit_continuity.png)" in section
    assert "### Continuity of ewald_energy_per_atom" in section
    for name, output in (("audit_continuity.png", "continuity_plot"), ("target_continuity.png", "target_plot")):
        path = report.parent / name
        assert path.read_bytes() == results["audit"][output].get_content(mode="rb")
        assert path.read_bytes().startswith(PNG) and not_blank(path)


@pytest.mark.parametrize("audit, words", [
    ({"descriptors": ["amd", "nope"]}, "study.yaml.audit.descriptors[1]: unknown descriptor 'nope'"),
    ({"descriptors": ["amd"], "n_structurs": 2}, "study.yaml.audit: unknown key(s) 'n_structurs' (did you mean 'n_structures'?)"),
    ({"descriptors": []}, "study.yaml.audit.descriptors"),
    ({"descriptors": ["amd", "amd"]}, "'amd' given more than once"),
    ({"descriptors": ["amd"], "n_structures": 0}, "study.yaml.audit.n_structures"),
    ({"descriptors": ["amd"], "target": "yes"}, "study.yaml.audit.target"),
    ({"descriptors": ["amd"], "n_target": 10}, "study.yaml.audit: n_target is only used with target: true"),
])
def test_bad_audit_section_is_refused_at_load(tmp_path, audit, words):
    raw = yaml.safe_load(doc_yaml())
    raw["audit"] = audit
    before = count_nodes()
    with pytest.raises(StudyError) as info:
        load_study(write_study(tmp_path, yaml.safe_dump(raw)))
    assert words in str(info.value)
    assert "\n" not in str(info.value)
    assert count_nodes() == before


def test_a_failing_audit_stops_the_study(tmp_path):
    raw = yaml.safe_load(doc_yaml())
    raw["source"] = {"synthetic": {"n": 6, "seed": 4}}
    raw["audit"] = {"descriptors": ["amd", f"{__name__}:refuses_every_structure"], "n_structures": 1}
    _, node = run_get_node(StudyWorkChain, **build_study_inputs(load_study(write_study(tmp_path, yaml.safe_dump(raw)))))
    assert node.exit_status == EXIT.ERROR_SUB_PROCESS_FAILED.status
    assert "audit:" in node.exit_message and "this descriptor refuses" in node.exit_message
    failed = [c for c in node.called if c.process_label == "audit_descriptors"]
    assert len(failed) == 1 and failed[0].exit_status == EXIT.ERROR_DESCRIPTOR_FAILED.status
    assert not failed[0].base.links.get_outgoing().all()  # nothing half-stored
    assert not [c for c in node.called if c.process_label == "TrainingWorkChain"]
    assert "audit" not in node.outputs


def test_study_audit_on_perov5_records(tmp_path):
    """Real structures: the first 20 records of Perov-5 (read from the shared datasets)."""
    from tests.conftest import dataset_path

    raw = yaml.safe_load(doc_yaml())
    raw["source"] = {"file": str(dataset_path("perov5.csv.gz")), "id_column": "material_id", "cif_column": "cif",
                     "rows": [0, 20]}
    raw["target"] = "heat_ref"
    raw["audit"] = {"descriptors": ["amd", "sine_matrix"], "n_structures": 2}
    results, node = run_get_node(StudyWorkChain, **build_study_inputs(load_study(write_study(tmp_path, yaml.safe_dump(raw)))))
    assert node.is_finished_ok, node.exit_message
    assert set(results["audit"]) == {"table", "continuity_plot"}
    dataset = results["datasets"]["train"]
    assert len(dataset) == 20
    direct, call = audit_descriptors.run_get_node(dataset=dataset, descriptors=orm.List(["amd", "sine_matrix"]),
                                                  parameters=orm.Dict({"n_structures": 2}))
    assert call.is_finished_ok
    assert results["audit"]["table"].get_dict()["rows"] == direct["table"].get_dict()["rows"]
    verdicts = {r["descriptor"]: (r["invariance"], r["continuity"]) for r in direct["table"].get_dict()["rows"]}
    assert verdicts["amd"] == ("invariant", "continuous")
    assert verdicts["sine_matrix"][0] == "not invariant"
    text = write_report(node, tmp_path / "report", plots=False).read_text()
    assert "## Audit of the descriptors" in text and "### Continuity of" not in text
    assert not_blank(tmp_path / "report" / "audit_continuity.png")
    assert not (tmp_path / "report" / "target_continuity.png").exists()


def test_a_hand_made_plan_with_a_broken_audit_is_refused_at_the_ports(tmp_path):
    study = load_study(write_study(tmp_path, doc_yaml()))
    study["audit"] = {"descriptors": "amd"}
    inputs = build_study_inputs(study)
    before = count_nodes()
    with pytest.raises(ValueError) as info:
        run_get_node(StudyWorkChain, **inputs)
    assert "the study's audit needs descriptors (a list) and parameters (a mapping)" in str(info.value)
    assert count_nodes() == before
