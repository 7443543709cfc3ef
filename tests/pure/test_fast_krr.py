"""Kernel ridge leave-one-out by Cholesky, the subset hyperparameter search
(``search_size``) and the documented bulk-modulus recipes (``learning.presets``).

References are independent of the code under test: scikit-learn's ``KernelRidge`` refitted
n times without one record (brute-force leave-one-out), and the eigendecomposition path of
the same class."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.kernel_ridge import KernelRidge
from sklearn.preprocessing import StandardScaler

from aiida_crystinv.learning import KernelRidgeRegressor, build_model, kernel_ridge
from aiida_crystinv.learning.presets import (
    MP_BULK_DESCRIPTOR,
    bulk_modulus_model,
    bulk_modulus_stack_2026_12,
    mp_bulk_views,
)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 4))
    y = np.exp(0.5 * X[:, 0]) + 0.3 * X[:, 1] ** 2 + 1.0 + 0.05 * rng.normal(size=40)
    return X, y


def _brute_loo(X, y, kernel, alpha, gamma, weights=None):
    """Leave-one-out predictions by n refits of scikit-learn's KernelRidge (standardised
    features and centred target fixed from all records, as the closed form assumes)."""
    Z = StandardScaler().fit_transform(X)
    ym = y.mean()
    out = np.zeros(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        sw = None if weights is None else weights[keep]
        model = KernelRidge(kernel=kernel, alpha=alpha, gamma=gamma).fit(Z[keep], y[keep] - ym, sample_weight=sw)
        out[i] = model.predict(Z[i:i + 1])[0] + ym
    return out


@pytest.mark.parametrize("kernel", ["laplacian", "rbf"])
@pytest.mark.parametrize("weight_power", [0.0, 1.0])
def test_cholesky_loo_equals_brute_force_refits(data, kernel, weight_power):
    X, y = data
    model = KernelRidgeRegressor(kernel=kernel, alphas=[0.05], gammas=[0.3], weight_power=weight_power).fit(X, y)
    weights = None if weight_power == 0 else (y / y.mean()) ** weight_power
    np.testing.assert_allclose(model.oof_pred_, _brute_loo(X, y, kernel, 0.05, 0.3, weights), rtol=1e-8, atol=1e-10)


def test_cholesky_and_eigendecomposition_paths_agree(data, monkeypatch):
    X, y = data
    kwargs = {"kernel": "rbf", "alphas": [1e-3, 1e-2, 1e-1], "gammas": [0.1, 0.3], "weight_power": 1.0,
              "target_transform": "log10", "scale_column": 3}
    X = X.copy()
    X[:, 3] = np.abs(X[:, 3]) + 0.5
    chol = KernelRidgeRegressor(**kwargs).fit(X, y)
    monkeypatch.setattr(kernel_ridge, "_CHOLESKY_MAX_ALPHAS", 0)
    eig = KernelRidgeRegressor(**kwargs).fit(X, y)
    np.testing.assert_allclose(chol.cv_mae_, eig.cv_mae_, rtol=1e-9)
    assert (chol.alpha_, chol.gamma_) == (eig.alpha_, eig.gamma_)
    np.testing.assert_allclose(chol.oof_pred_, eig.oof_pred_, rtol=1e-9)
    np.testing.assert_allclose(chol.predict(X), eig.predict(X), rtol=1e-10)


def test_search_size_searches_a_seeded_subset_then_fits_all_records(data):
    X, y = data
    grid = {"kernel": "laplacian", "alphas": [1e-3, 1e-2, 1e-1, 1.0], "gammas": [0.05, 0.2, 0.8],
            "standardize": False, "center": False}
    model = KernelRidgeRegressor(search_size=25, random_state=7, **grid).fit(X, y)
    sub = np.sort(np.random.default_rng(7).choice(len(y), size=25, replace=False))
    on_subset = KernelRidgeRegressor(**grid).fit(X[sub], y[sub])
    # the grid, and so the choice, is that of the subset alone
    np.testing.assert_allclose(model.cv_mae_, on_subset.cv_mae_, rtol=1e-10)
    assert (model.alpha_, model.gamma_) == (on_subset.alpha_, on_subset.gamma_)
    # the fit and the leave-one-out predictions are those of all records at that point
    ref = KernelRidge(kernel="laplacian", alpha=model.alpha_, gamma=model.gamma_).fit(X, y)
    np.testing.assert_allclose(model.predict(X[:5] + 0.1), ref.predict(X[:5] + 0.1), rtol=1e-8)
    loo = np.zeros(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        loo[i] = KernelRidge(kernel="laplacian", alpha=model.alpha_, gamma=model.gamma_).fit(
            X[keep], y[keep]).predict(X[i:i + 1])[0]
    np.testing.assert_allclose(model.oof_pred_, loo, rtol=1e-8)
    # not larger than the training set: the ordinary search
    whole = KernelRidgeRegressor(search_size=40, **grid).fit(X, y)
    np.testing.assert_allclose(whole.cv_mae_, KernelRidgeRegressor(**grid).fit(X, y).cv_mae_)


def test_search_size_with_kfold_inner_cv(data):
    X, y = data
    model = KernelRidgeRegressor(search_size=30, cv=3, alphas=[1e-2, 1e-1], gammas=[0.1, 0.3]).fit(X, y)
    assert np.all(np.isfinite(model.oof_pred_)) and model.oof_pred_.shape == (40,)


@pytest.mark.parametrize("bad", [2, 0, 2.5, True, "all"])
def test_search_size_is_checked(bad):
    with pytest.raises(ValueError, match="search_size must be None or an integer >= 3"):
        build_model({"name": "krr", "search_size": bad})


def test_search_size_in_the_spec_and_clone():
    from aiida_crystinv.specs import SpecError
    from aiida_crystinv.specs.learning import parse_model

    spec = parse_model({"name": "krr", "search_size": 800}).estimator_params()
    model = build_model(spec)
    assert model.search_size == 800 and clone(model).get_params() == model.get_params()
    with pytest.raises(SpecError, match="search_size"):
        parse_model({"name": "krr", "search_size": 1})


def test_presets_are_valid_specs_and_fit():
    from aiida_crystinv.specs.learning import parse_model

    a, b = mp_bulk_views()
    width = max(stop for view in (a, b) for _, stop in view)
    assert MP_BULK_DESCRIPTOR[0] == "density+element_roles+element_stats+pdd_stats" and width == 287
    for spec in (bulk_modulus_model(), bulk_modulus_stack_2026_12()):
        assert parse_model(spec).estimator_params()["members"] == spec["members"]
        assert clone(build_model(spec)).get_params() == build_model(spec).get_params()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, width))
    X[:, 0] = rng.uniform(5, 30, 60)  # volume per atom, the scale column
    y = 50.0 * np.exp(0.3 * X[:, 1]) + 600.0 / X[:, 0]
    model = build_model(bulk_modulus_model(search_size=30)).fit(X, y)
    assert np.isclose(model.weights_.sum(), 1.0) and np.all(model.weights_ >= 0)
    assert np.all(np.isfinite(model.predict(X[:5])))


def test_the_bulk_modulus_example_of_the_docs():
    """The ```python block of docs/learning.md that trains bulk_modulus_model() runs, on a
    seeded subsample of the real MP records, and the fitted stack predicts them sensibly."""
    import gzip
    import json
    import re
    from pathlib import Path

    from pymatgen.core import Structure

    root = Path(__file__).resolve().parents[2]
    path = root.parent / "shared" / "datasets" / "mp_elasticity_binaries.json.gz"
    if not path.exists():
        pytest.skip(f"{path} not found (the shared datasets sit beside the project)")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", (root / "docs" / "learning.md").read_text(), flags=re.S)
              if "bulk_modulus_model" in b]
    assert len(blocks) == 1
    with gzip.open(path, "rt") as fh:
        records = json.load(fh)
    pick = np.random.default_rng(0).choice(len(records), size=120, replace=False)
    records = [records[i] for i in pick if records[i]["bulk_modulus_vrh"] is not None]
    namespace = {"structures": [Structure.from_dict(r["structure"]) for r in records],
                 "bulk_modulus_gpa": np.array([r["bulk_modulus_vrh"] for r in records], dtype=float)}
    exec(blocks[0], namespace)
    model, y = namespace["model"], namespace["bulk_modulus_gpa"]
    assert namespace["X"].shape == (len(y), 287)
    assert np.isclose(model.weights_.sum(), 1.0)
    # leave-one-out MAE of the blend, in GPa: far below the spread of the targets
    assert model.cv_mae_["blend"] < 0.5 * np.mean(np.abs(y - np.median(y)))
