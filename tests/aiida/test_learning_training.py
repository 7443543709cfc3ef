"""TrainingWorkChain: k-fold / hold-out / explicit test set, reuse by query, bad input."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import WorkflowFactory

from aiida_crystinv.calculations.functions import compute_invariants
from aiida_crystinv.calculations.sources import synthetic_dataset
from aiida_crystinv.data.model import ModelData
from aiida_crystinv.workflows.training import TrainingWorkChain, find_invariants

TARGET = "ewald_energy_per_atom"


@pytest.fixture(scope="module")
def landscapes():
    """Two stored landscapes: training (n=24) and an explicit test set (n=8, other seed)."""
    train, _ = synthetic_dataset.run_get_node(parameters=orm.Dict({"n": 24, "seed": 5}))
    test, _ = synthetic_dataset.run_get_node(parameters=orm.Dict({"n": 8, "seed": 6}))
    return train["dataset"], test["dataset"]


def test_entry_point():
    assert WorkflowFactory("crystinv.training") is TrainingWorkChain


def test_kfold_knn_then_reuse(landscapes):
    dataset, _ = landscapes
    inputs = {
        "dataset": dataset,
        "target": orm.Str(TARGET),
        "descriptor": orm.Dict({"name": "pdd", "k": 12}),
        "model": orm.Dict({"name": "knn", "k": [1, 3, 5], "cv": 3}),
        "split": orm.Dict({"kind": "kfold", "n_splits": 4, "seed": 0}),
    }
    results, node = run_get_node(TrainingWorkChain, **inputs)
    assert node.is_finished_ok, node.exit_message
    metrics = results["metrics"].get_dict()
    assert metrics["n"] == 24 and metrics["unit"] == "eV/atom"
    assert metrics["mae"] < metrics["baseline_mae"]
    assert isinstance(results["model"], ModelData)
    assert results["parity_plot"].get_content(mode="rb")[:4] == b"\x89PNG"
    inv = results["invariants"]
    assert find_invariants(dataset, results["model"].descriptor).uuid == inv.uuid
    # every output hangs off the graph: the model was created by train_model, called by the workchain
    assert results["model"].creator.caller.uuid == node.uuid
    assert results["predictions"].creator.process_label == "cross_validate"

    # a second run finds the invariants and distances by query: no InvariantsWorkChain, no compute_distances
    again, node2 = run_get_node(TrainingWorkChain, **inputs)
    assert node2.is_finished_ok
    assert again["invariants"].uuid == inv.uuid
    assert again["distances"].uuid == results["distances"].uuid
    called = {c.process_label for c in node2.called}
    assert "InvariantsWorkChain" not in called and "compute_distances" not in called
    assert again["metrics"]["mae"] == metrics["mae"]
    # few nodes per training, none per structure
    created = [n for n in node2.called for n in n.base.links.get_outgoing().all_nodes()]
    assert len(created) <= 8


def test_holdout_krr_features(landscapes):
    dataset, _ = landscapes
    results, node = run_get_node(
        TrainingWorkChain,
        dataset=dataset,
        target=orm.Str(TARGET),
        descriptor=orm.Dict({"name": "amd+element_stats", "k": 8}),
        model=orm.Dict({"name": "krr", "alphas": [1e-3, 1e-2], "gamma_factors": [0.1, 1.0], "cv": 3}),
        split=orm.Dict({"kind": "holdout", "test_fraction": 0.25, "seed": 1}),
    )
    assert node.is_finished_ok, node.exit_message
    assert results["metrics"]["n"] == 6
    assert "features" in results and "invariants" not in results


def test_explicit_test_set(landscapes):
    dataset, test = landscapes
    results, node = run_get_node(
        TrainingWorkChain,
        dataset=dataset,
        test_dataset=test,
        target=orm.Str(TARGET),
        descriptor=orm.Dict({"name": "amd", "k": 12}),
        model=orm.Dict({"name": "knn", "k": 3, "metric": "amd_l1"}),
    )
    assert node.is_finished_ok, node.exit_message
    preds = results["predictions"]
    assert preds.get_array("ids").tolist() == test.ids
    assert results["metrics"]["n"] == len(test)
    assert "baseline_mae" in results["metrics"].get_dict()
    # the test-set invariants were computed too (and can be found again)
    assert find_invariants(test, results["model"].descriptor) is not None


@pytest.mark.parametrize(
    "change, status, words",
    [
        ({"target": "bulk_modulus"}, 230, "no target 'bulk_modulus'"),
        ({"model": {"name": "svm"}}, "refused", "unknown model"),
        ({"model": {"name": "knn", "metric": "pdd_emd"}, "descriptor": {"name": "amd"}}, "refused", "applies to pdd"),
        ({"descriptor": {"name": "soap"}}, "refused", "soap"),
        ({"split": {"kind": "kfold", "n_splits": 25}}, 232, "25 folds"),
        ({"split": {"kind": "holdout", "test_fraction": 1.5}}, "refused", "test_fraction"),
    ],
)
def test_bad_input(landscapes, change, status, words):
    dataset, _ = landscapes
    inputs = {
        "dataset": dataset,
        "target": orm.Str(TARGET),
        "descriptor": orm.Dict({"name": "amd", "k": 12}),
        "model": orm.Dict({"name": "median"}),
        "split": orm.Dict({"kind": "kfold", "n_splits": 3}),
    }
    inputs.update({k: orm.Str(v) if isinstance(v, str) else orm.Dict(v) for k, v in change.items()})
    if status == "refused":  # an invalid spec: refused at the ports, nothing stored
        before = orm.QueryBuilder().append(orm.Node).count()
        with pytest.raises(ValueError) as info:
            run_get_node(TrainingWorkChain, **inputs)
        assert words in str(info.value)
        assert orm.QueryBuilder().append(orm.Node).count() == before
        return
    _, node = run_get_node(TrainingWorkChain, **inputs)
    assert node.exit_status == status, node.exit_message
    assert words in node.exit_message
    assert not node.called and not node.base.links.get_outgoing().all(), "nothing may be computed or stored"


def test_given_invariants_of_another_descriptor(landscapes):
    dataset, _ = landscapes
    results, _ = compute_invariants.run_get_node(dataset=dataset, descriptor=orm.Dict({"name": "amd", "k": 12}))
    amd = results["invariants"]
    assert find_invariants(dataset, {"kind": "invariants", "name": "amd", "params": {"k": 12}}) == amd
    _, node = run_get_node(
        TrainingWorkChain, dataset=dataset, target=orm.Str(TARGET), invariants=amd,
        descriptor=orm.Dict({"name": "amd", "k": 20}), model=orm.Dict({"name": "knn", "k": 1}),
        split=orm.Dict({"kind": "kfold", "n_splits": 3}),
    )
    assert node.exit_status == 222, node.exit_message
    assert "k=12" in node.exit_message
    assert not node.base.links.get_outgoing().all()
