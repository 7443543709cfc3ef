"""Models made of models: the median baseline, the mean of several feature models
(:class:`EnsembleRegressor`) and the MAE-optimal non-negative blend (:class:`StackRegressor`)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.dummy import DummyRegressor

from . import models as _models  # the registry (a cycle: resolved when called)
from ._estimator import (
    _check_cv,
    _check_X,
    _check_Xy,
    _ExportMixin,
    _jsonable,
    _mae,
    _members_need_positive_targets,
    _positive_targets,
    check_target,
)
from .knn import KNNRegressor
from .splits import kfold_indices

# ---------------------------------------------------------------------------------------
# median baseline


class MedianRegressor(_ExportMixin, DummyRegressor):
    """Predicts the median of the training targets (the baseline every model must beat).

    scikit-learn's ``DummyRegressor(strategy='median')`` with no constructor arguments (the
    strategy is fixed), the project's target check and the pickle-free export. ``X`` is
    only counted (features, distances, or a placeholder column for ragged PDDs).

    Fitted attributes: ``median_`` (0-d array), and ``DummyRegressor``'s ``constant_``
    (1, 1), ``n_outputs_``, ``n_features_in_``.
    """

    name = "median"
    _array_names = ("median",)
    #: fixed ``DummyRegressor`` parameters (class attributes, not constructor arguments)
    strategy = "median"
    constant = None
    quantile = None
    _parameter_constraints: dict = {}

    def __init__(self) -> None:
        pass

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = False
        tags.target_tags.single_output = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "MedianRegressor":
        """X: (n, d) features or (n, n) distances (only its row count is used); y: (n,)
        targets; sample_weight: optional (n,) weights (weighted median)."""
        y = check_target(y)
        n = X.shape[0] if hasattr(X, "shape") else len(X) if hasattr(X, "__len__") else np.asarray(X).shape[0]
        if n != y.shape[0]:
            raise ValueError(f"X has {n} rows but the target has {y.shape[0]} values")
        super().fit(X, y, sample_weight=sample_weight)
        self.median_ = np.array(float(self.constant_[0, 0]))
        return self

    def _restore(self) -> None:
        self.constant_ = np.full((1, 1), float(self.median_))
        self.n_outputs_ = 1

    def predict(self, X: Any, return_std: bool = False) -> Any:
        """(m,) the training median for every row of X."""
        self._check_fitted()
        return super().predict(X, return_std=return_std)



# ---------------------------------------------------------------------------------------
# ensemble


class EnsembleRegressor(_ExportMixin, RegressorMixin, BaseEstimator):
    """Mean of the predictions of several feature-vector models (e.g. Laplacian and RBF
    kernel ridge), each tuning its own hyperparameters by inner CV.

    Args:
        members: model specs (dicts for :func:`build_model`), at least one; kNN members
            are not allowed (they take distance matrices, not features).
    """

    name = "ensemble"
    _array_names = ()

    def __init__(self, members: Sequence[dict] = ({"name": "krr", "kernel": "laplacian"},
                                                  {"name": "krr", "kernel": "rbf"})) -> None:
        self.members = members

    def __sklearn_tags__(self):
        return _positive_targets(super().__sklearn_tags__(), _members_need_positive_targets(self.members))

    def _validate(self) -> list:
        specs = list(self.members)
        if not specs:
            raise ValueError("an ensemble needs at least one member model")
        models = [_models.build_model(dict(m)) for m in specs]
        for m in models:
            if m.name in ("knn", "ensemble", "stack"):
                raise ValueError(f"ensemble members must be feature models (krr, median), not {m.name!r}")
        return models

    def fit(self, X: Any, y: Any) -> "EnsembleRegressor":
        """Fit every member on (n, d) features and (n,) targets."""
        members = self._validate()
        X, y = _check_Xy(self, X, y, "feature matrix")
        self.models_ = [m.fit(X, y) for m in members]
        return self

    def _restore(self) -> None:
        widths = [m.n_features_in_ for m in self.models_ if hasattr(m, "n_features_in_")]
        if widths:
            self.n_features_in_ = int(widths[0])

    def predict(self, X: Any) -> np.ndarray:
        """(m,) mean of the members' predictions."""
        self._check_fitted()
        X = _check_X(self, X, "feature matrix", reset=False)
        return np.mean([m.predict(X) for m in self.models_], axis=0)

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays of member ``i`` are stored under ``'i/<name>'``."""
        self._check_fitted()
        arrays, fitted = {}, []
        for i, m in enumerate(self.models_):
            a, p = m.to_arrays()
            arrays.update({f"{i}/{k}": v for k, v in a.items()})
            fitted.append(p)
        return arrays, {"name": self.name, "init": _jsonable(self.get_params(deep=False)), "fitted": {"members": fitted}}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict) -> "EnsembleRegressor":
        if params.get("name") != cls.name:
            raise ValueError(f"params describe a {params.get('name')!r} model, not {cls.name!r}")
        model = cls(**params.get("init", {}))
        members = params.get("fitted", {}).get("members")
        if not members:
            raise ValueError("ensemble params are missing the fitted members")
        model.models_ = []
        for i, p in enumerate(members):
            sub = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"{i}/")}
            model.models_.append(_models.model_from_arrays(sub, p))
        model._restore()
        return model



# ---------------------------------------------------------------------------------------
# stacking


def _lad_simplex(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to 1 that minimise ``sum |P w - y|`` (a linear program)."""
    from scipy.optimize import linprog

    n, m = P.shape
    if m == 1:
        return np.ones(1)
    cost = np.concatenate([np.zeros(m), np.ones(2 * n)])
    A = np.vstack([np.hstack([P, -np.eye(n), np.eye(n)]), np.concatenate([np.ones(m), np.zeros(2 * n)])])
    res = linprog(cost, A_eq=A, b_eq=np.concatenate([y, [1.0]]), bounds=(0, None), method="highs")
    if not res.success:  # pragma: no cover - the LP is always feasible
        return np.full(m, 1.0 / m)
    w = np.maximum(res.x[:m], 0.0)
    return w / w.sum()


def _columns(spec: Any, what: str) -> list[tuple[int, int]] | None:
    if spec is None:
        return None
    try:
        ranges = [(int(a), int(b)) for a, b in spec]
    except (TypeError, ValueError):
        raise ValueError(f"{what}: columns must be a list of [start, stop] pairs, got {spec!r}") from None
    if not ranges or any(a < 0 or b <= a for a, b in ranges):
        raise ValueError(f"{what}: columns must be non-empty [start, stop) ranges with 0 <= start < stop, "
                         f"got {spec!r}")
    return ranges


class StackRegressor(_ExportMixin, RegressorMixin, BaseEstimator):
    """A weighted blend of feature-vector models, the weights learned on the training
    records only (stacking).

    Each member is fitted on the training records (tuning its own hyperparameters by inner
    CV) and also gives inner-CV predictions of those same records (closed-form leave-one-out
    for kernel ridge and feature kNN, else ``cv``-fold refits). The blend weights are the
    non-negative weights summing to one that minimise the mean absolute error of the
    blended inner-CV predictions (a linear program). Test records are never seen: under an
    outer cross-validation the weights are learned inside each outer training fold.

    Args:
        members: model specs (dicts for :func:`build_model`: ``krr``, ``knn_features``,
            ``ensemble``, ``median``), each optionally with ``"columns": [[start, stop], ...]``,
            the feature columns (half-open ranges, in order) that member sees -- e.g. one
            descriptor's part of a joined descriptor.
        cv: inner folds for members without closed-form inner-CV predictions.
        random_state: seed of those folds.

    Fitted attributes: ``models_`` (fitted members), ``weights_`` (m,), ``n_features_``,
    ``cv_mae_`` dict with the inner-CV MAE of every member and of the blend.

    Why not ``sklearn.ensemble.StackingRegressor``: it refits every member on ``cv`` folds
    to get the out-of-fold predictions its final estimator learns from, where this class
    reuses the members' closed-form leave-one-out predictions, and it blends by least
    squares, where this class minimises the MAE the benchmarks report. Measured on the MP
    bulk-modulus stack of ``benchmarks/bench_learning.py`` (10 members on two column views,
    a seeded subsample of 1000 records, 5 outer folds): this class 24.1 s, MAE 12.509 GPa;
    ``StackingRegressor`` of the same members (``ColumnTransformer`` views, 5-fold,
    ``LinearRegression(positive=True, fit_intercept=False)``) 109.0 s, MAE 12.553 GPa.
    Reproduce: ``OMP_NUM_THREADS=1 python benchmarks/bench_learning.py --sklearn-alternatives``
    (2026-12-02, 2 shared cores, one BLAS thread each side).
    """

    name = "stack"
    _array_names = ()

    def __init__(self, members: Sequence[dict] = ({"name": "krr", "kernel": "laplacian"},
                                                  {"name": "krr", "kernel": "rbf"}),
                 cv: int = 5, random_state: int = 0) -> None:
        self.members = members
        self.cv = cv
        self.random_state = random_state

    def __sklearn_tags__(self):
        return _positive_targets(super().__sklearn_tags__(), _members_need_positive_targets(self.members))

    def _validate(self) -> list[tuple[Any, list[tuple[int, int]] | None]]:
        specs = list(self.members)
        if not specs:
            raise ValueError("a stack needs at least one member model")
        _check_cv(self.cv, self.cv, "StackRegressor")
        out = []
        for i, spec in enumerate(specs):
            if not isinstance(spec, dict):
                raise ValueError(f"stack member {i} must be a model spec dict, got {spec!r}")
            spec = dict(spec)
            cols = _columns(spec.pop("columns", None), f"stack member {i}")
            model = _models.build_model(spec)
            if isinstance(model, (KNNRegressor, StackRegressor)):
                raise ValueError(f"stack members must be feature models (krr, knn_features, ensemble, "
                                 f"median), not {model.name!r}")
            out.append((model, cols))
        return out

    @staticmethod
    def _select(X: np.ndarray, cols: list[tuple[int, int]] | None, i: int) -> np.ndarray:
        if cols is None:
            return X
        if max(b for _, b in cols) > X.shape[1]:
            raise ValueError(f"stack member {i} reads columns up to {max(b for _, b in cols)} but the "
                             f"features have width {X.shape[1]}")
        return np.hstack([X[:, a:b] for a, b in cols])

    def _inner_predictions(self, spec: dict, model: Any, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        oof = getattr(model, "oof_pred_", None)
        if isinstance(model, EnsembleRegressor):
            parts = [getattr(m, "oof_pred_", None) for m in model.models_]
            oof = None if any(p is None for p in parts) else np.mean(parts, axis=0)
        if oof is not None and np.all(np.isfinite(oof)):
            return np.asarray(oof, float)
        _check_cv(self.cv, len(y), "StackRegressor")
        pred = np.zeros(len(y))
        for tr, te in kfold_indices(len(y), self.cv, self.random_state):
            pred[te] = _models.build_model(spec).fit(X[tr], y[tr]).predict(X[te])
        return pred

    def fit(self, X: Any, y: Any) -> "StackRegressor":
        """Fit every member on (n, d) features and (n,) targets, then the blend weights on
        the members' inner-CV predictions of these records."""
        members = self._validate()
        X, y = _check_Xy(self, X, y, "feature matrix")
        specs = [{k: v for k, v in dict(s).items() if k != "columns"} for s in self.members]
        models, inner = [], []
        for i, ((model, cols), spec) in enumerate(zip(members, specs)):
            Xi = self._select(X, cols, i)
            model.fit(Xi, y)
            models.append(model)
            inner.append(self._inner_predictions(spec, model, Xi, y))
        P = np.stack(inner, 1)
        w = _lad_simplex(P, y)
        self.models_ = models
        self.weights_ = w
        self.n_features_ = int(X.shape[1])
        self.cv_mae_ = {"members": [_mae(p, y) for p in P.T], "blend": _mae(P @ w, y)}
        return self

    def predict(self, X: Any) -> np.ndarray:
        """(m,) the weighted sum of the members' predictions."""
        self._check_fitted()
        X = _check_X(self, X, "feature matrix", reset=False)
        cols = [_columns(dict(s).get("columns"), f"stack member {i}") for i, s in enumerate(self.members)]
        out = np.zeros(X.shape[0])
        for i, (m, c, w) in enumerate(zip(self.models_, cols, self.weights_)):
            if w > 0:
                out += float(w) * m.predict(self._select(X, c, i))
        return out

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays of member ``i`` are stored under ``'i/<name>'``; weights under ``'weights'``."""
        self._check_fitted()
        arrays, fitted = {"weights": np.array(self.weights_, dtype=float)}, []
        for i, m in enumerate(self.models_):
            a, p = m.to_arrays()
            arrays.update({f"{i}/{k}": v for k, v in a.items()})
            fitted.append(p)
        return arrays, {"name": self.name, "init": _jsonable(self.get_params(deep=False)),
                        "fitted": {"members": fitted, "n_features": self.n_features_,
                                   "cv_mae": _jsonable(self.cv_mae_)}}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict) -> "StackRegressor":
        if params.get("name") != cls.name:
            raise ValueError(f"params describe a {params.get('name')!r} model, not {cls.name!r}")
        model = cls(**params.get("init", {}))
        fitted = params.get("fitted", {})
        members = fitted.get("members")
        if not members or "weights" not in arrays or "n_features" not in fitted:
            raise ValueError("stack params or arrays are missing the fitted members, weights or n_features")
        if len(members) != len(list(model.members)) or len(arrays["weights"]) != len(members):
            raise ValueError("stack arrays and params disagree on the number of members")
        model.models_ = []
        for i, p in enumerate(members):
            sub = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"{i}/")}
            model.models_.append(_models.model_from_arrays(sub, p))
        model.weights_ = np.array(arrays["weights"], dtype=float)
        model.n_features_ = int(fitted["n_features"])
        model.cv_mae_ = fitted.get("cv_mae", {})
        model.n_features_in_ = model.n_features_
        return model
