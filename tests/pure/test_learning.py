"""Pure learning layer: models against references, pickle-free round trips, splits,
metrics, target transforms, descriptors' invariance, bad input, a real-data smoke test."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from scipy.spatial.distance import cdist
from scipy.spatial.transform import Rotation

from aiida_crystinv.learning import (
    FEATURES,
    FeatureKNNRegressor,
    KernelRidgeRegressor,
    KNNRegressor,
    StackRegressor,
    build_model,
    cross_val_predict,
    cross_validate,
    describe,
    describe_spec,
    feature_defaults,
    feature_names,
    fold_labels,
    holdout_split,
    inverse_transform_target,
    kfold_indices,
    mae,
    median_ae,
    model_from_arrays,
    parity_plot,
    r2,
    regression_metrics,
    rmse,
    transform_target,
)
from tests.conftest import read_csv_structures

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 5))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 + 0.1 * rng.normal(size=60) + 3.0
    return X, y


def _roundtrip(model):
    arrays, params = model.to_arrays()
    params = json.loads(json.dumps(params))  # must be JSON-able
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    return model_from_arrays({k: np.array(v) for k, v in arrays.items()}, params)


def rocksalt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def perovskite() -> Structure:
    s = Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"],
                  [[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
    s.perturb(0.05, min_distance=0.01) if hasattr(s, "perturb") else None
    return s


def low_symmetry() -> Structure:
    rng = np.random.default_rng(3)
    lat = Lattice.from_parameters(4.1, 5.3, 6.2, 81, 97, 104)
    return Structure(lat, ["Mg", "Si", "O", "O", "O", "Mg"], rng.random((6, 3)) * 0.9 + 0.05)


# ----------------------------------------------------------------------------- kNN


def _brute_knn(D, y, k, weighted):
    out = []
    for row in D:
        idx = np.argsort(row, kind="stable")[:k]
        if weighted:
            w = 1.0 / row[idx]
            out.append(np.sum(w * y[idx]) / np.sum(w))
        else:
            out.append(np.mean(y[idx]))
    return np.array(out)


@pytest.mark.parametrize("weights", ["distance", "uniform"])
def test_knn_matches_brute_force(data, weights):
    X, y = data
    D = cdist(X, X)
    tr, te = np.arange(45), np.arange(45, 60)
    model = KNNRegressor(k=4, weights=weights).fit(D[np.ix_(tr, tr)], y[tr])
    pred = model.predict(D[np.ix_(te, tr)])
    np.testing.assert_allclose(pred, _brute_knn(D[np.ix_(te, tr)], y[tr], 4, weights == "distance"), rtol=1e-12)
    # sklearn's precomputed kNN agrees too
    from sklearn.neighbors import KNeighborsRegressor

    sk = KNeighborsRegressor(4, weights=weights, metric="precomputed").fit(D[np.ix_(tr, tr)], y[tr])
    np.testing.assert_allclose(pred, sk.predict(D[np.ix_(te, tr)]), rtol=1e-10)


def test_knn_exact_match_takes_all_weight(data):
    X, y = data
    D = cdist(X, X)
    model = KNNRegressor(k=5).fit(D, y)
    np.testing.assert_allclose(model.predict(D[:3]), y[:3])


def test_knn_inner_cv_picks_k(data):
    X, y = data
    D = cdist(X, X)
    model = KNNRegressor(k=[1, 3, 5, 10], cv=5, random_state=0).fit(D, y)
    assert model.k_ in (1, 3, 5, 10)
    assert set(model.cv_mae_) == {"1", "3", "5", "10"}
    assert model.k_ == int(min(model.cv_mae_, key=model.cv_mae_.get))
    loo = KNNRegressor(k=[1, 3, 5, 10], cv="loo").fit(D, y)
    assert loo.k_ in (1, 3, 5, 10)


# ----------------------------------------------------------------------------- KRR


@pytest.mark.parametrize("kernel", ["laplacian", "rbf"])
def test_krr_matches_sklearn(data, kernel):
    from sklearn.kernel_ridge import KernelRidge

    X, y = data
    ours = KernelRidgeRegressor(kernel=kernel, alphas=0.05, gammas=0.2, standardize=False, center=False).fit(X[:45], y[:45])
    ref = KernelRidge(kernel=kernel, alpha=0.05, gamma=0.2).fit(X[:45], y[:45])
    np.testing.assert_allclose(ours.predict(X[45:]), ref.predict(X[45:]), rtol=1e-8, atol=1e-10)


def test_krr_standardised_centred_matches_sklearn_on_transformed(data):
    from sklearn.kernel_ridge import KernelRidge

    X, y = data
    ours = KernelRidgeRegressor(kernel="rbf", alphas=0.01, gammas=0.1).fit(X[:45], y[:45])
    mu, sd = X[:45].mean(0), X[:45].std(0)
    ref = KernelRidge(kernel="rbf", alpha=0.01, gamma=0.1).fit((X[:45] - mu) / sd, y[:45] - y[:45].mean())
    np.testing.assert_allclose(ours.predict(X[45:]), ref.predict((X[45:] - mu) / sd) + y[:45].mean(), rtol=1e-8)


def test_krr_loo_equals_explicit_leave_one_out(data):
    X, y = data
    model = KernelRidgeRegressor(kernel="rbf", alphas=[0.01, 0.1], gammas=[0.1], cv="loo", center=False).fit(X, y)
    Z = (X - X.mean(0)) / X.std(0)
    explicit = []
    for a in (0.01, 0.1):
        errs = []
        for i in range(len(y)):
            m = np.ones(len(y), bool)
            m[i] = False
            K = np.exp(-0.1 * cdist(Z[m], Z[m], "sqeuclidean"))
            c = np.linalg.solve(K + a * np.eye(m.sum()), y[m])
            errs.append(abs(np.exp(-0.1 * cdist(Z[i:i + 1], Z[m], "sqeuclidean")) @ c - y[i]))
        explicit.append(np.mean(errs))
    np.testing.assert_allclose(model.cv_mae_[0], explicit, rtol=1e-6)


def test_krr_inner_kfold_search_and_log10(data):
    X, y = data
    model = KernelRidgeRegressor(alphas=[1e-3, 1e-1], gamma_factors=[0.3, 1.0], cv=4, target_transform="log10").fit(X, y)
    assert model.alpha_ in (1e-3, 1e-1)
    assert np.array(model.cv_mae_).shape == (2, 2)
    assert np.all(model.predict(X) > 0)


def test_scale_column_learns_scaled_target(data):
    X, y = data
    Xp = np.column_stack([np.exp(X[:, 0]), X[:, 1:]])
    model = KernelRidgeRegressor(alphas=1e-3, gammas=0.1, scale_column=0).fit(Xp, y)
    ref = KernelRidgeRegressor(alphas=1e-3, gammas=0.1).fit(Xp, y * Xp[:, 0])
    np.testing.assert_allclose(model.predict(Xp), ref.predict(Xp) / Xp[:, 0], rtol=1e-10)


def test_weighted_krr_matches_explicit_solve_and_leave_one_out(data):
    X, y = data
    model = KernelRidgeRegressor(kernel="rbf", alphas=[0.01, 0.1], gammas=[0.1], weight_power=2.0).fit(X, y)
    Z = (X - X.mean(0)) / X.std(0)
    K = np.exp(-0.1 * cdist(Z, Z, "sqeuclidean"))
    w = (y / y.mean()) ** 2
    a = model.alpha_
    c = np.linalg.solve(K + a * np.diag(1.0 / w), y - y.mean())
    np.testing.assert_allclose(model.dual_coef_, c, rtol=1e-6, atol=1e-10)
    loo = []
    for i in range(len(y)):
        m = np.ones(len(y), bool)
        m[i] = False
        ci = np.linalg.solve(K[np.ix_(m, m)] + a * np.diag(1.0 / w[m]), y[m] - y.mean())
        loo.append(K[i, m] @ ci + y.mean())
    np.testing.assert_allclose(model.oof_pred_, loo, rtol=1e-7)
    assert model.cv_mae_[0][[0.01, 0.1].index(a)] == pytest.approx(np.mean(np.abs(np.array(loo) - y)))
    with pytest.raises(ValueError, match="weight_power"):
        build_model({"name": "krr", "weight_power": "big"})


def test_feature_knn_leave_one_out_and_prediction(data):
    X, y = data
    model = FeatureKNNRegressor(k=[1, 3, 5], weights="uniform").fit(X[:45], y[:45])
    Z = (X - X[:45].mean(0)) / X[:45].std(0)
    D = cdist(Z[:45], Z[:45], "cityblock")
    np.fill_diagonal(D, np.inf)
    idx = np.argsort(D, 1)[:, :model.k_]
    np.testing.assert_allclose(model.oof_pred_, y[:45][idx].mean(1))
    idx = np.argsort(cdist(Z[45:], Z[:45], "cityblock"), 1)[:, :model.k_]
    np.testing.assert_allclose(model.predict(X[45:]), y[:45][idx].mean(1))
    with pytest.raises(ValueError, match="X has 3 features, but FeatureKNNRegressor is expecting 5"):
        model.predict(X[45:, :3])


def _stack_spec():
    return {"name": "stack", "members": [
        {"name": "krr", "kernel": "laplacian", "alphas": [1e-3, 1e-1]},
        {"name": "krr", "kernel": "rbf", "columns": [[0, 2]]},
        {"name": "knn_features", "k": [1, 3, 5]},
        {"name": "median"}]}


def test_stack_weights_are_learned_on_the_training_records_only(data):
    from scipy.optimize import linprog

    X, y = data
    train, test = np.arange(45), np.arange(45, 60)
    model = build_model(_stack_spec()).fit(X[train], y[train])
    w = model.weights_
    assert w.shape == (4,) and np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    # the weights minimise the MAE of the members' inner-CV predictions of the training records
    P = np.stack([model.models_[0].oof_pred_, model.models_[1].oof_pred_, model.models_[2].oof_pred_,
                  cross_val_predict({"name": "median"}, X[train], y[train], n_splits=5, seed=0)], 1)
    n, m = P.shape
    ref = linprog(np.r_[np.zeros(m), np.ones(2 * n)],
                  A_eq=np.vstack([np.hstack([P, -np.eye(n), np.eye(n)]), np.r_[np.ones(m), np.zeros(2 * n)]]),
                  b_eq=np.r_[y[train], 1.0], bounds=(0, None), method="highs")
    assert model.cv_mae_["blend"] == pytest.approx(ref.fun / n)
    assert model.cv_mae_["blend"] <= min(model.cv_mae_["members"]) + 1e-12
    np.testing.assert_allclose(model.predict(X[test]), np.stack(
        [model.models_[0].predict(X[test]), model.models_[1].predict(X[test][:, :2]),
         model.models_[2].predict(X[test]), model.models_[3].predict(X[test])], 1) @ w)
    # under cross-validation the test records never matter: wild targets in one test fold
    # leave that fold's predictions (members, hyperparameters and weights) unchanged
    folds = kfold_indices(60, 3, seed=0)
    y_bad = y.copy()
    y_bad[folds[0][1]] = 1e6
    a = cross_val_predict(_stack_spec(), X, y, folds=folds)
    b = cross_val_predict(_stack_spec(), X, y_bad, folds=folds)
    np.testing.assert_array_equal(a[folds[0][1]], b[folds[0][1]])


def test_stack_bad_specs_and_inputs(data):
    X, y = data
    with pytest.raises(ValueError, match="at least one member"):
        build_model({"name": "stack", "members": []})
    with pytest.raises(ValueError, match="feature models"):
        build_model({"name": "stack", "members": [{"name": "knn"}]})
    with pytest.raises(ValueError, match="feature models"):
        build_model({"name": "stack", "members": [{"name": "stack"}]})
    with pytest.raises(ValueError, match="columns"):
        build_model({"name": "stack", "members": [{"name": "krr", "columns": [[3, 1]]}]})
    with pytest.raises(ValueError, match="no parameter"):
        build_model({"name": "stack", "members": [{"name": "krr", "kernal": "rbf"}]})
    with pytest.raises(ValueError, match="not fitted"):
        StackRegressor().predict(X)
    with pytest.raises(ValueError, match="width 5"):
        build_model({"name": "stack", "members": [{"name": "krr", "columns": [[0, 9]]}]}).fit(X, y)
    model = build_model(_stack_spec()).fit(X, y)
    with pytest.raises(ValueError, match="X has 4 features, but StackRegressor is expecting 5"):
        model.predict(X[:, :4])
    arrays, params = model.to_arrays()
    with pytest.raises(ValueError, match="missing"):
        model_from_arrays({k: v for k, v in arrays.items() if k != "weights"}, params)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("spec", [
    {"name": "krr", "kernel": "laplacian", "alphas": [1e-3, 1e-2], "gamma_factors": [0.5, 1.0]},
    {"name": "krr", "kernel": "rbf", "target_transform": "log10", "scale_column": 4},
    {"name": "median"},
    {"name": "ensemble", "members": [{"name": "krr", "kernel": "laplacian"}, {"name": "krr", "kernel": "rbf"}]},
    {"name": "krr", "kernel": "rbf", "target_transform": "log10", "weight_power": 1.0},
    {"name": "knn_features", "k": [1, 3, 5], "target_transform": "log10", "scale_column": 4},
    {"name": "stack", "members": [
        {"name": "krr", "kernel": "laplacian", "columns": [[0, 3]]},
        {"name": "krr", "kernel": "rbf", "weight_power": 1.0, "target_transform": "log10"},
        {"name": "knn_features", "k": [1, 3], "metric": "l2", "columns": [[0, 2], [3, 5]]},
        {"name": "ensemble", "members": [{"name": "krr", "cv": 3}]},
        {"name": "median"}]},
])
def test_feature_model_roundtrip_is_exact(data, spec):
    X, y = data
    X = X.copy()
    X[:, 4] = np.abs(X[:, 4]) + 1.0
    model = build_model(spec).fit(X[:45], y[:45])
    again = _roundtrip(model)
    np.testing.assert_array_equal(model.predict(X[45:]), again.predict(X[45:]))


def test_knn_roundtrip_is_exact(data):
    X, y = data
    D = cdist(X, X)
    model = build_model({"name": "knn", "k": [1, 3, 5], "weights": "distance", "target_transform": "log10"})
    model.fit(D[:45, :45], y[:45])
    again = _roundtrip(model)
    np.testing.assert_array_equal(model.predict(D[45:, :45]), again.predict(D[45:, :45]))
    assert again.k_ == model.k_


def test_from_arrays_rejects_wrong_params(data):
    X, y = data
    arrays, params = KernelRidgeRegressor(alphas=0.1, gammas=0.1).fit(X, y).to_arrays()
    with pytest.raises(ValueError, match="not 'knn'"):
        KNNRegressor.from_arrays(arrays, params)
    with pytest.raises(ValueError, match="missing"):
        model_from_arrays({}, params)
    with pytest.raises(ValueError, match="unknown model"):
        model_from_arrays(arrays, {"name": "forest"})


# ----------------------------------------------------------------------------- splits


def test_seeded_folds_reproducible_and_partition():
    a = kfold_indices(103, 5, seed=7)
    b = kfold_indices(103, 5, seed=7)
    for (tr1, te1), (tr2, te2) in zip(a, b):
        np.testing.assert_array_equal(te1, te2)
        np.testing.assert_array_equal(tr1, tr2)
        assert not set(tr1) & set(te1)
    allte = np.sort(np.concatenate([te for _, te in a]))
    np.testing.assert_array_equal(allte, np.arange(103))
    assert {len(te) for _, te in a} <= {20, 21}
    assert not np.array_equal(fold_labels(103, 5, 7), fold_labels(103, 5, 8))
    tr, te = holdout_split(50, 0.2, seed=3)
    assert len(te) == 10 and len(tr) == 40 and not set(tr) & set(te)
    np.testing.assert_array_equal(holdout_split(50, 0.2, seed=3)[1], te)


def test_cross_validate_same_folds_for_every_model(data):
    X, y = data
    res = cross_validate({"name": "krr", "alphas": 0.01, "gammas": 0.1}, X, y, n_splits=5, seed=0)
    again = cross_val_predict({"name": "krr", "alphas": 0.01, "gammas": 0.1}, X, y, folds=kfold_indices(60, 5, 0))
    np.testing.assert_array_equal(res["predictions"], again)
    assert len(res["fold_metrics"]) == 5
    knn = cross_val_predict({"name": "knn", "k": 3}, cdist(X, X), y, n_splits=5, seed=0)
    assert knn.shape == y.shape


# ----------------------------------------------------------------------------- metrics, transforms


def test_metrics_by_hand():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.0, 2.0, 6.0])
    assert mae(t, p) == pytest.approx((0.5 + 0 + 1 + 2) / 4)
    assert median_ae(t, p) == pytest.approx(0.75)
    assert rmse(t, p) == pytest.approx(np.sqrt((0.25 + 0 + 1 + 4) / 4))
    assert r2(t, p) == pytest.approx(1 - 5.25 / 5.0)
    m = regression_metrics(t, p)
    assert m["n"] == 4 and m["mae"] == pytest.approx(0.875)


def test_log10_roundtrip():
    y = np.array([0.5, 3.0, 120.0, 411.0])
    np.testing.assert_allclose(inverse_transform_target(transform_target(y, "log10"), "log10"), y, rtol=1e-14)
    np.testing.assert_array_equal(transform_target(y, None), y)
    with pytest.raises(ValueError, match="positive"):
        transform_target(np.array([1.0, -2.0]), "log10")
    with pytest.raises(ValueError, match="unknown target_transform"):
        transform_target(y, "sqrt")


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_give_clear_errors(data):
    X, y = data
    bad = y.copy()
    bad[7] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite.*record 7"):
        KernelRidgeRegressor().fit(X, bad)
    bad[7] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        KNNRegressor(k=3).fit(cdist(X, X), bad)
    with pytest.raises(ValueError, match="fewer than the cv=5"):
        KernelRidgeRegressor(cv=5).fit(X[:3], y[:3])
    with pytest.raises(ValueError, match="need at least 5 records"):
        kfold_indices(3, 5)
    with pytest.raises(ValueError, match="60 rows but the target has 59"):
        KernelRidgeRegressor().fit(X, y[:-1])
    with pytest.raises(ValueError, match="square"):
        KNNRegressor(k=3).fit(cdist(X, X)[:, :50], y)
    with pytest.raises(ValueError, match="unknown model 'forest'"):
        build_model({"name": "forest"})
    with pytest.raises(ValueError, match="no parameter"):
        build_model({"name": "krr", "gama": 1.0})
    with pytest.raises(ValueError, match="unknown kernel"):
        build_model({"name": "krr", "kernel": "poly"})
    model = KernelRidgeRegressor(alphas=0.1, gammas=0.1).fit(X, y)
    with pytest.raises(ValueError, match="X has 4 features, but KernelRidgeRegressor is expecting 5 features"
                                         ".*another descriptor"):
        model.predict(X[:, :4])
    knn = KNNRegressor(k=3).fit(cdist(X, X), y)
    with pytest.raises(ValueError, match="trained on 60 records"):
        knn.predict(cdist(X[:5], X[:50]))
    with pytest.raises(ValueError, match="not fitted"):
        KernelRidgeRegressor().predict(X)
    with pytest.raises(ValueError, match="unknown features part 'sine'"):
        describe("sine", [rocksalt()])
    with pytest.raises(ValueError, match="no parameter 'kk'"):
        describe("amd", [rocksalt()], kk=3)
    with pytest.raises(ValueError, match="positive integer"):
        describe("amd", [rocksalt()], k=0)


# ----------------------------------------------------------------------------- descriptors


def test_feature_registry_and_spec():
    names = feature_names()
    for n in ("amd", "pdd_stats", "element_stats", "density", "element_roles", "site_roles"):
        assert n in names and n in FEATURES
    assert feature_defaults("amd") == {"k": 100}
    spec = describe_spec("amd+element_stats", k=30)
    assert spec == {"name": "amd+element_stats", "params": {"amd": {"k": 30}, "element_stats": {}}}
    json.dumps(spec)
    X1 = describe("amd+element_stats", [rocksalt()], amd={"k": 30})
    X2 = describe("amd+element_stats", [rocksalt()], k=30)
    np.testing.assert_array_equal(X1, X2)
    assert X1.shape[1] == 30 + describe("element_stats", [rocksalt()]).shape[1]


def test_features_amd_is_the_amd_invariant():
    """A name means one thing: the features part ``amd`` gives the AMD invariant's numbers."""
    from aiida_crystinv.invariants import amd

    structures = [rocksalt(), perovskite(), low_symmetry()]
    X = describe("amd", structures, k=20)
    for row, s in zip(X, structures):
        np.testing.assert_allclose(row, amd(s, 20), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["amd+composition", "composition+density", "composition"])
def test_features_refuse_composition_and_point_to_element_stats(name):
    """``composition`` is the invariant; the features' element statistics are ``element_stats``."""
    with pytest.raises(ValueError, match="'composition' is not a features part") as info:
        describe(name, [rocksalt()])
    assert "element_stats" in str(info.value) and "composition invariant" in str(info.value)
    with pytest.raises(ValueError, match="element_stats"):
        describe_spec(name)
    assert "composition" not in FEATURES


ALL = ["amd", "pdd_stats", "element_stats", "density", "element_roles", "site_roles"]


@pytest.mark.parametrize("make", [rocksalt, perovskite, low_symmetry])
def test_descriptors_invariant_under_supercell_rotation_and_order(make):
    s = make()
    name = "+".join(ALL)
    params = {"amd": {"k": 40}, "element_roles": {"k": 16, "k_pair": 3}}
    ref = describe(name, [s], **params)
    assert np.isfinite(ref).all()
    sup = s.copy()
    sup.make_supercell([[2, 1, 0], [0, 1, 0], [0, 0, 2]])
    rot = Rotation.from_euler("zyx", [0.3, 1.1, -0.7]).as_matrix()
    lat = Lattice(s.lattice.matrix @ rot.T)
    perm = np.random.default_rng(0).permutation(len(s))
    turned = Structure(lat, [s.species[i] for i in perm], s.frac_coords[perm] + 0.123)
    for other in (sup, turned):
        np.testing.assert_allclose(describe(name, [other], **params), ref, atol=1e-8, rtol=0)


def test_site_roles_find_perovskite_sites():
    s = Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"],
                  [[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
    x = describe("site_roles", [s])[0]
    from aiida_crystinv.invariants.elements import ELEMENT_PROPERTIES

    p = len(ELEMENT_PROPERTIES)
    block = p + 12 + 3 + 2  # one cation role
    assert x[0] == 22  # first cation role: octahedral B site, Ti (Z = 22)
    assert x[block] == 38  # second: A site, Sr
    assert x[p] == pytest.approx(1.95)  # Ti-O bond, Angstrom
    assert x[2 * block] == 8  # X sites: O


def test_disordered_structure_is_accepted():
    s = Structure(Lattice.cubic(4.0), [{"Fe": 0.5, "Ni": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    X = describe("amd+element_stats+density+element_roles", [s])
    assert np.isfinite(X).all()


def test_parity_plot(tmp_path):
    png = parity_plot([1, 2, 3], [1.1, 1.9, 3.2], path=tmp_path / "p.png", title="t", unit="eV")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "p.png").read_bytes() == png


# ----------------------------------------------------------------------------- real data


def test_carbon24_smoke():
    _, structures, y = read_csv_structures("carbon24.csv.gz", n=150, target="energy_per_atom")
    y = np.array(y)
    X = describe("pdd_stats+amd", structures, pdd_stats={"k": 16}, amd={"k": 50})
    assert X.shape == (150, 64 + 50)
    res = cross_validate({"name": "krr", "kernel": "laplacian"}, X, y, n_splits=5, seed=0)
    base = cross_validate({"name": "median"}, X, y, n_splits=5, seed=0)
    assert res["metrics"]["mae"] < 0.6 * base["metrics"]["mae"]
    D = cdist(X[:, 64:], X[:, 64:], "chebyshev")
    knn = cross_validate({"name": "knn", "k": [1, 3, 5]}, D, y, n_splits=5, seed=0)
    assert knn["metrics"]["mae"] < base["metrics"]["mae"]
