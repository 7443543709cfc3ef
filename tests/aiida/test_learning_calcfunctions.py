"""train_model / cross_validate / predict / parity_plot and ModelData: provenance, no pickle, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.plugins import CalculationFactory, DataFactory

from aiida_crystinv.calculations.functions import compute_invariants
from aiida_crystinv.calculations.learning import (
    compute_features,
    cross_validate,
    parity_plot,
    predict,
    train_model,
)
from aiida_crystinv.calculations.sources import synthetic_dataset
from aiida_crystinv.data import CrystalDatasetData
from aiida_crystinv.exit_codes import EXIT
from aiida_crystinv.data.model import ModelData

TARGET = "ewald_energy_per_atom"


@pytest.fixture(scope="module")
def landscape():
    """A stored 40-record Ewald landscape, made by the synthetic_dataset calcfunction."""
    results, node = synthetic_dataset.run_get_node(parameters=orm.Dict({"n": 40, "seed": 3}))
    assert node.is_finished_ok, node.exit_message
    return results["dataset"]


@pytest.fixture(scope="module")
def pdd(landscape):
    results, node = compute_invariants.run_get_node(dataset=landscape, descriptor=orm.Dict({"name": "pdd", "k": 12}))
    assert node.is_finished_ok, node.exit_message
    return results["invariants"]


def test_entry_points():
    assert DataFactory("crystinv.model") is ModelData
    assert CalculationFactory("crystinv.train_model") is train_model
    assert CalculationFactory("crystinv.predict") is predict


def test_knn_train_predict_round_trip(landscape, pdd):
    model_spec = orm.Dict({"name": "knn", "k": [1, 3, 5], "metric": "pdd_emd"})
    results, node = train_model.run_get_node(
        dataset=landscape, target=orm.Str(TARGET), model=model_spec, invariants=pdd
    )
    assert node.is_finished_ok, node.exit_message
    model = results["model"]
    assert isinstance(model, ModelData) and model.is_stored
    assert model.creator.uuid == node.uuid
    assert model.descriptor == {"kind": "invariants", "name": "pdd", "params": pdd.parameters}
    assert model.metric["name"] == "pdd_emd"
    assert model.target == {"name": TARGET, "unit": "eV/atom", "transform": None}
    assert model.training["invariants_uuid"] == pdd.uuid
    assert model.training["dataset_uuid"] == landscape.uuid
    # only .npy files in the repository, all loadable without pickle
    for name in model.base.repository.list_object_names():
        assert name.endswith(".npy")
        with model.base.repository.open(name, mode="rb") as handle:
            np.load(handle, allow_pickle=False)
    # a kNN model with distance weights reproduces the training targets
    assert results["metrics"]["train_mae"] == pytest.approx(0.0, abs=1e-9)

    loaded = orm.load_node(model.pk)
    direct = loaded.predict_from(pdd)
    assert np.allclose(direct, landscape.get_target(TARGET))
    # plain pymatgen structures: the descriptor is computed with the model's parameters
    assert np.allclose(loaded.predict_from(landscape.get_structures(range(3))), direct[:3])

    out, pnode = predict.run_get_node(model=loaded, invariants=pdd, dataset=landscape, reference=pdd)
    assert pnode.is_finished_ok, pnode.exit_message
    assert out["predictions"].get_array("ids").tolist() == landscape.ids
    assert out["metrics"]["mae"] == pytest.approx(0.0, abs=1e-9)
    # from the dataset alone: the descriptor is recomputed with the model's parameters
    out2, pnode2 = predict.run_get_node(model=loaded, dataset=landscape)
    assert pnode2.is_finished_ok, pnode2.exit_message
    assert np.allclose(out2["predictions"].get_array("y_pred"), direct)


def test_krr_features_cross_validation_and_plot(landscape):
    feats, fnode = compute_features.run_get_node(dataset=landscape, descriptor=orm.Dict({"name": "amd+element_stats", "k": 8}))
    assert fnode.is_finished_ok, fnode.exit_message
    features = feats["features"]
    spec = orm.Dict({"name": "krr", "alphas": [1e-3, 1e-1], "gamma_factors": [0.1, 1.0], "cv": 3})
    results, node = cross_validate.run_get_node(
        dataset=landscape, target=orm.Str(TARGET), model=spec, features=features,
        split=orm.Dict({"kind": "kfold", "n_splits": 4, "seed": 1}),
    )
    assert node.is_finished_ok, node.exit_message
    metrics = results["metrics"].get_dict()
    assert metrics["n"] == len(landscape)
    assert metrics["mae"] < metrics["baseline_mae"]
    preds = results["predictions"]
    assert sorted(preds.get_array("fold").tolist()) == sorted([i % 4 for i in range(40)])
    # same seed, same numbers
    again, _ = cross_validate.run_get_node(
        dataset=landscape, target=orm.Str(TARGET), model=spec, features=features,
        split=orm.Dict({"kind": "kfold", "n_splits": 4, "seed": 1}),
    )
    assert again["metrics"]["mae"] == metrics["mae"]
    plot, plot_node = parity_plot.run_get_node(predictions=preds)
    assert plot_node.is_finished_ok
    assert plot["plot"].get_content(mode="rb")[:8] == b"\x89PNG\r\n\x1a\n"


def test_holdout_split(landscape, pdd):
    results, node = cross_validate.run_get_node(
        dataset=landscape, target=orm.Str(TARGET), model=orm.Dict({"name": "knn", "k": 3}), invariants=pdd,
        split=orm.Dict({"kind": "holdout", "test_fraction": 0.25, "seed": 0}),
    )
    assert node.is_finished_ok, node.exit_message
    assert results["metrics"]["n"] == 10


@pytest.mark.parametrize(
    "kwargs, status, words",
    [
        ({"target": "band_gap"}, 230, "no target 'band_gap'"),
        ({"model": {"name": "random_forest"}}, "refused", "unknown model"),
        ({"model": {"name": "knn", "k": 3}, "descriptor": {"name": "amd+element_stats"}}, 222, "features descriptor"),
        ({"descriptor": {"name": "pdd", "q": 1}}, "refused", "unknown key(s) 'q'"),
        ({"split": {"kind": "kfold", "n_splits": 50}}, 232, "at least 50 records"),
        ({"split": {"kind": "bootstrap"}}, "refused", "split kind must be"),
        ({"model": {"name": "krr", "target_transform": "log10"}}, 231, "positive targets"),
    ],
)
def test_bad_input_exit_codes(landscape, kwargs, status, words):
    inputs = {
        "dataset": landscape,
        "target": orm.Str(kwargs.get("target", TARGET)),
        "model": orm.Dict(kwargs.get("model", {"name": "krr", "alphas": 0.01, "gammas": 0.01})),
        "descriptor": orm.Dict(kwargs.get("descriptor", {"name": "amd", "k": 8})),
        "split": orm.Dict(kwargs.get("split", {"kind": "kfold", "n_splits": 3})),
    }
    if status == "refused":  # an invalid spec: refused at the ports, nothing stored
        before = orm.QueryBuilder().append(orm.Node).count()
        with pytest.raises(ValueError) as info:
            cross_validate.run_get_node(**inputs)
        assert words in str(info.value)
        assert orm.QueryBuilder().append(orm.Node).count() == before
        return
    _, node = cross_validate.run_get_node(**inputs)
    assert node.exit_status == status, node.exit_message
    assert words in node.exit_message
    assert not node.base.links.get_outgoing().all(), "nothing may be stored on failure"


def test_nan_target_refused(landscape):
    """A dataset whose target column holds NaN (bypassing the importer's check) is refused."""
    structures = landscape.get_structures(range(6))
    bad = CrystalDatasetData.from_structures(structures, ids=[f"s{i}" for i in range(6)], targets={"e": [1.0] * 6})
    targets = bad._get_array("targets").copy()
    targets[2, 0] = np.nan
    bad._set_array("targets", targets)
    bad.store()
    _, node = train_model.run_get_node(
        dataset=bad, target=orm.Str("e"), model=orm.Dict({"name": "median"}), descriptor=orm.Dict({"name": "amd", "k": 4})
    )
    assert node.exit_status == EXIT.ERROR_INVALID_TARGET.status
    assert "NaN" in node.exit_message
    assert not node.base.links.get_outgoing().all()


def test_model_refuses_other_invariants(landscape, pdd):
    results, _ = train_model.run_get_node(
        dataset=landscape, target=orm.Str(TARGET), model=orm.Dict({"name": "knn", "k": 3}), invariants=pdd
    )
    model = results["model"]
    other_params, _ = compute_invariants.run_get_node(dataset=landscape, descriptor=orm.Dict({"name": "pdd", "k": 10}))
    _, node = predict.run_get_node(model=model, invariants=other_params["invariants"])
    assert node.exit_status == 222
    assert "other parameters" in node.exit_message and "k=10" in node.exit_message
    assert not node.base.links.get_outgoing().all()
    other_desc, _ = compute_invariants.run_get_node(dataset=landscape, descriptor=orm.Dict({"name": "amd", "k": 12}))
    _, node = predict.run_get_node(model=model, invariants=other_desc["invariants"])
    assert node.exit_status == 222
    assert "'amd'" in node.exit_message
    # the invariants of another dataset for training
    _, node = train_model.run_get_node(
        dataset=CrystalDatasetData.from_structures(landscape.get_structures(range(5)), targets={TARGET: [0.0] * 5}).store(),
        target=orm.Str(TARGET), model=orm.Dict({"name": "knn", "k": 1}), invariants=pdd,
    )
    assert node.exit_status == 222 and "not the records of" in node.exit_message


def test_import_group(landscape):
    """A group of StructureData becomes one dataset (labels are the ids; the group is recorded)."""
    from aiida_crystinv.calculations.sources import import_group

    group = orm.Group(label="crystinv-test-import-group").store()
    nodes = [n.store() for n in landscape.to_structuredata(range(3))]
    group.add_nodes(nodes)
    results, node = import_group.run_get_node(group=orm.Str(group.label))
    assert node.is_finished_ok, node.exit_message
    dataset = results["dataset"]
    assert sorted(dataset.ids) == sorted(landscape.ids[:3])
    assert set(dataset.get_node_uuids()) == {n.uuid for n in nodes}
    _, node = import_group.run_get_node(group=orm.Str("no-such-group-label"))
    assert node.exit_status == 202 and "no-such-group-label" in node.exit_message


def test_cross_validate_calcfunction_is_the_pure_function(landscape, pdd):
    """The calcfunction only moves data: its predictions, folds and metrics are those of
    aiida_crystinv.learning.cross_validate (what the benchmarks time) on the same matrix."""
    from scipy.spatial.distance import squareform

    from aiida_crystinv.distances import pdist
    from aiida_crystinv.learning import build_model, kfold_indices
    from aiida_crystinv.learning import cross_validate as cross_validate_pure

    results, node = cross_validate.run_get_node(
        dataset=landscape, target=orm.Str(TARGET), model=orm.Dict({"name": "knn", "k": [1, 3]}), invariants=pdd,
        split=orm.Dict({"kind": "kfold", "n_splits": 4, "seed": 7}),
    )
    assert node.is_finished_ok, node.exit_message
    y = landscape.get_target(TARGET)
    D = squareform(pdist(pdd.get_items(), "pdd_emd"))
    pure = cross_validate_pure(build_model({"name": "knn", "k": [1, 3]}), D, y, folds=kfold_indices(len(y), 4, 7))
    preds = results["predictions"]
    order = [landscape.index_of(i) for i in preds.get_array("ids")]
    np.testing.assert_array_equal(preds.get_array("y_pred"), pure["predictions"][order])
    np.testing.assert_array_equal(preds.get_array("fold"), pure["fold"][order])
    # the Dict keeps 15 significant digits (SQLite's JSON)
    assert results["metrics"]["mae"] == pytest.approx(pure["metrics"]["mae"], rel=1e-13)
    assert results["metrics"]["baseline_mae"] == pytest.approx(pure["baseline"]["mae"], rel=1e-13)
