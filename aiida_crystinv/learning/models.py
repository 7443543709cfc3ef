"""Regression models on invariants, with hyperparameters chosen by inner cross-validation.

Every model is a scikit-learn estimator: it subclasses :class:`sklearn.base.BaseEstimator`
and :class:`sklearn.base.RegressorMixin` (so ``get_params``/``set_params``, ``clone``,
``score`` (R^2), ``Pipeline``, ``cross_val_score`` and ``GridSearchCV`` work), its
``__init__`` only stores its arguments, every check runs in ``fit``, fitted state lives in
attributes ending in ``_``, and inner folds are seeded by ``random_state``:

* :class:`KNNRegressor` -- k nearest neighbours on a *precomputed* distance matrix
  (PDD-EMD, GRID-EMD, AMD L-inf, ...): ``fit(D_train_train, y)``, ``predict(D_test_train)``.
  Tagged pairwise (``__sklearn_tags__().input_tags.pairwise``), so scikit-learn's
  cross-validation tools cut the square matrix into rows *and* columns.
* :class:`KernelRidgeRegressor` -- kernel ridge regression (Laplacian or RBF kernel) on
  standardised feature vectors: ``fit(X, y)``, ``predict(X)``.
* :class:`FeatureKNNRegressor` -- k nearest neighbours on standardised feature vectors.
* :class:`EnsembleRegressor` -- the mean of several feature models.
* :class:`StackRegressor` -- a non-negative blend of feature models (optionally each on
  its own columns) whose weights minimise the MAE of the members' inner-CV predictions of
  the training records, so they never see test records.
* :class:`MedianRegressor` -- predicts the training median (the baseline): scikit-learn's
  ``DummyRegressor(strategy='median')`` with the export below.

Standardisation is :class:`sklearn.preprocessing.StandardScaler`, inner folds are
:func:`~aiida_crystinv.learning.splits.kfold_indices` (scikit-learn's seeded ``KFold``).
Each class docstring says where the project keeps its own numerics and what that was
measured to gain over the scikit-learn alternative.

Every fitted model exports itself without pickle: ``arrays, params = model.to_arrays()``
gives a dict of numpy arrays and a JSON-able dict, and
``model_from_arrays(arrays, params)`` (or ``Class.from_arrays``) rebuilds a model that
predicts exactly the same numbers. :func:`build_model` makes an unfitted model from a
JSON-able spec such as ``{"name": "krr", "kernel": "laplacian"}`` or
``{"name": "knn", "k": [1, 3, 5, 10], "weights": "distance"}`` or ``{"name": "stack",
"members": [{"name": "krr", "kernel": "rbf", "weight_power": 1, "columns": [[0, 50]]}, ...]}``
and checks the spec at once (so a bad spec is refused before anything runs).

Targets may be modelled through ``target_transform="log10"`` (usual for elastic moduli);
predictions are always returned in the original units, and inner cross-validation scores
(mean absolute error) are computed in the original units too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from ._estimator import TARGET_TRANSFORMS, check_target, inverse_transform_target, transform_target
from .ensembles import EnsembleRegressor, MedianRegressor, StackRegressor
from .kernel_ridge import KernelRidgeRegressor
from .knn import FeatureKNNRegressor, KNNRegressor

__all__ = [
    "KNNRegressor",
    "KernelRidgeRegressor",
    "MedianRegressor",
    "EnsembleRegressor",
    "FeatureKNNRegressor",
    "StackRegressor",
    "MODELS",
    "is_precomputed",
    "build_model",
    "model_from_arrays",
    "check_target",
    "transform_target",
    "inverse_transform_target",
    "TARGET_TRANSFORMS",
]


# ---------------------------------------------------------------------------------------
# factory


MODELS: dict[str, type] = {"knn": KNNRegressor, "krr": KernelRidgeRegressor, "median": MedianRegressor,
                           "ensemble": EnsembleRegressor, "knn_features": FeatureKNNRegressor,
                           "stack": StackRegressor}


def build_model(spec: dict) -> BaseEstimator:
    """An unfitted model from a JSON-able spec ``{"name": ..., **constructor arguments}``.

    Examples: ``{"name": "krr", "kernel": "laplacian", "alphas": [1e-3, 1e-2],
    "gammas": [0.01, 0.1]}``, ``{"name": "knn", "k": [1, 3, 5, 10], "weights":
    "distance"}``, ``{"name": "median"}``.
    """
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"a model spec is a dict with a 'name' key, got {spec!r}")
    name = spec["name"]
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    cls = MODELS[name]
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    allowed = set(cls._get_param_names())
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(f"model {name!r} has no parameter(s) {unknown}; allowed: {sorted(allowed)}")
    model = cls(**kwargs)
    if hasattr(model, "_validate"):
        model._validate()
    elif hasattr(model, "_grids"):
        model._grids(1)
    return model


def model_from_arrays(arrays: dict[str, np.ndarray], params: dict) -> BaseEstimator:
    """Rebuild any fitted model from its :meth:`to_arrays` output."""
    name = params.get("name") if isinstance(params, dict) else None
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} in params; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name].from_arrays(arrays, params)


def is_precomputed(model: Any) -> bool:
    """True when the model takes distance matrices rather than feature vectors (its
    scikit-learn tags say ``input_tags.pairwise``)."""
    from sklearn.utils import get_tags

    try:
        return bool(get_tags(model).input_tags.pairwise)
    except (AttributeError, TypeError):
        return False
