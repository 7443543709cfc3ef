"""A study with representation features (embedding, sine matrix, SOAP+AMD): the YAML
example of docs/representations.md is loaded and run as a StudyWorkChain; its features
nodes are checked against the representations computed directly from the dataset."""

from __future__ import annotations


import numpy as np
import pytest
import yaml
from aiida.engine import run_get_node

from aiida_crystinv.exit_codes import EXIT
from aiida_crystinv.invariants import amd
from aiida_crystinv.learning.descriptors import describe
from aiida_crystinv.representations import get_descriptor
from aiida_crystinv.workflows.study import StudyError, StudyWorkChain, build_study_inputs, load_study
from aiida_crystinv.workflows.training import find_features

from ..conftest import require_module
from ._docs import write_study, yaml_block

require_module("dscribe")
require_module("elementembeddings")

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore:An ill-conditioned matrix")



def doc_yaml() -> str:
    """The YAML block of the section "In a study" of docs/representations.md."""
    return yaml_block("representations.md", "## In a study")


def expected_rows(spec: dict, structures: list) -> np.ndarray:
    """The features of a descriptor of the example, computed with the adapters directly."""
    params = spec["params"]
    if spec["name"] == "embedding":
        d = get_descriptor(f"embedding:{params['embedding']}:{params['pooling']}")
        return np.array([d(s) for s in structures])
    if spec["name"] == "sine_matrix":
        d = get_descriptor("sine_matrix", n_atoms_max=params["n_atoms_max"])
        return np.array([d(s) for s in structures])
    assert spec["name"] == "soap+amd"
    soap = get_descriptor("soap", **params["soap"])
    return np.array([np.concatenate([soap(s), amd(s, params["amd"]["k"])]) for s in structures])


def test_docs_example_loads_and_describes_structures(tmp_path):
    raw = yaml.safe_load(doc_yaml())
    study = load_study(write_study(tmp_path, doc_yaml()))
    specs = {d["label"]: d["spec"] for d in study["descriptors"]}
    assert set(specs) == {"embedding", "sine_matrix", "soap_amd"}
    assert specs["soap_amd"]["params"]["soap"]["species"] == sorted(raw["descriptors"][2]["soap"]["species"])
    assert len(study["pairs"]) == 6  # krr and knn_features on each
    from aiida_crystinv.sources.synthetic import ewald_landscape

    _, structures, _, _ = ewald_landscape(n=5, seed=11)
    for spec in specs.values():
        X = describe(spec["name"], structures, **spec["params"])
        np.testing.assert_allclose(X, expected_rows(spec, structures), rtol=1e-12, atol=1e-12)  # AMD: 1e-15 apart


@pytest.mark.parametrize("descriptor, words", [
    ({"name": "sine_matrix"}, "give n_atoms_max"),
    ({"name": "amd+soap", "soap": {"species": ["Na"], "r_cut": 0.5}}, "dscribe refuses these settings"),
    ({"name": "embedding", "embedding": "word2vec"}, "unknown element embedding 'word2vec'"),
])
def test_bad_representation_parameters_refuse_the_study_file(tmp_path, descriptor, words):
    raw = yaml.safe_load(doc_yaml())
    raw["descriptors"] = [descriptor]
    with pytest.raises(StudyError) as info:
        load_study(write_study(tmp_path, yaml.safe_dump(raw)))
    assert words in str(info.value) and "descriptors[0]" in str(info.value)


def test_docs_example_runs_as_a_study(tmp_path):
    study = load_study(write_study(tmp_path, doc_yaml()))
    results, node = run_get_node(StudyWorkChain, **build_study_inputs(study))
    assert node.is_finished_ok, node.exit_message
    dataset = results["datasets"]["train"]
    structures = dataset.get_structures()
    assert len(structures) == 40
    for d in study["descriptors"]:
        features = find_features(dataset, d["spec"])
        assert features is not None, d
        X = features.get_array("features")
        expected = expected_rows(d["spec"], structures)
        assert X.shape == expected.shape and X.shape[0] == 40
        np.testing.assert_allclose(X, expected, rtol=1e-9, atol=1e-9)
        assert features.get_array("ids").tolist() == dataset.ids
    assert X.shape[1] == 36 * 37 // 2 * 3 + 50  # soap (18 species, n_max=2, l_max=2) + AMD_50
    summary = results["summary"].get_dict()
    assert {r["label"] for r in summary["rows"]} == {
        f"{m}_on_{d}" for m in ("krr", "knn_features") for d in ("embedding", "sine_matrix", "soap_amd")}
    assert all(r["n"] == 40 and np.isfinite(r["mae"]) for r in summary["rows"])
    training = results["training"]["krr_on_soap_amd"]
    assert training["features"].uuid == find_features(dataset, study["descriptors"][2]["spec"]).uuid
    # the trained model describes new structures the same way (here: the dataset's own)
    model = training["model"]
    np.testing.assert_allclose(model.predict_from(structures), model.predict_from(dataset), rtol=1e-9, atol=1e-12)


def test_a_structure_too_large_for_n_atoms_max_stops_the_study(tmp_path):
    raw = yaml.safe_load(doc_yaml())
    raw["source"] = {"synthetic": {"n": 10, "seed": 0}}
    raw["descriptors"] = [{"name": "sine_matrix", "n_atoms_max": 4}]
    raw["models"] = [raw["models"][0]]
    _, node = run_get_node(StudyWorkChain, **build_study_inputs(load_study(write_study(tmp_path, yaml.safe_dump(raw)))))
    assert node.exit_status == EXIT.ERROR_INVARIANTS_FAILED.status
    assert "exceed n_atoms_max=4" in node.exit_message
    failed = [c for c in node.called if c.process_label == "compute_features"]
    assert len(failed) == 1 and failed[0].exit_status == EXIT.ERROR_DESCRIPTOR_FAILED.status
    assert not failed[0].base.links.get_outgoing().all()  # nothing half-stored
