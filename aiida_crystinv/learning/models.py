"""Regression models on invariants, with hyperparameters chosen by inner cross-validation.

Three estimators following scikit-learn conventions (``fit``/``predict``, constructor
arguments stored unchanged, fitted state in attributes ending in ``_``, a seed in
``random_state``, no global state):

* :class:`KNNRegressor` -- k nearest neighbours on a *precomputed* distance matrix
  (PDD-EMD, GRID-EMD, AMD L-inf, ...): ``fit(D_train_train, y)``, ``predict(D_test_train)``.
* :class:`KernelRidgeRegressor` -- kernel ridge regression (Laplacian or RBF kernel) on
  standardised feature vectors: ``fit(X, y)``, ``predict(X)``.
* :class:`MedianRegressor` -- predicts the training median (the baseline).

Every fitted model exports itself without pickle: ``arrays, params = model.to_arrays()``
gives a dict of numpy arrays and a JSON-able dict, and
``model_from_arrays(arrays, params)`` (or ``Class.from_arrays``) rebuilds a model that
predicts exactly the same numbers. :func:`build_model` makes an unfitted model from a
JSON-able spec such as ``{"name": "krr", "kernel": "laplacian"}`` or
``{"name": "knn", "k": [1, 3, 5, 10], "weights": "distance"}``.

Targets may be modelled through ``target_transform="log10"`` (usual for elastic moduli);
predictions are always returned in the original units, and inner cross-validation scores
(mean absolute error) are computed in the original units too.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.linalg
from scipy.spatial.distance import cdist as _cdist

from .splits import kfold_indices

__all__ = [
    "KNNRegressor",
    "KernelRidgeRegressor",
    "MedianRegressor",
    "EnsembleRegressor",
    "MODELS",
    "is_precomputed",
    "build_model",
    "model_from_arrays",
    "check_target",
    "transform_target",
    "inverse_transform_target",
    "TARGET_TRANSFORMS",
]

#: Supported target transforms.
TARGET_TRANSFORMS = (None, "log10")


# ---------------------------------------------------------------------------------------
# validation helpers


def check_target(y: Any, name: str = "target") -> np.ndarray:
    """(n,) float array of finite targets; ValueError naming the first bad record."""
    arr = np.asarray(y, dtype=float)
    if arr.ndim != 1:
        arr = arr.ravel() if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {np.shape(y)}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name} has {bad.size} NaN or infinite value(s) (first at record "
                         f"{int(bad[0])}: {arr[bad[0]]}); drop or fill those records first")
    return arr


def _check_transform(name: str | None) -> str | None:
    if name not in TARGET_TRANSFORMS:
        raise ValueError(f"unknown target_transform {name!r}; use one of {TARGET_TRANSFORMS}")
    return name


def transform_target(y: np.ndarray, transform: str | None) -> np.ndarray:
    """Apply a target transform (``None`` or ``'log10'``; log10 needs positive targets)."""
    _check_transform(transform)
    y = np.asarray(y, dtype=float)
    if transform == "log10":
        if np.any(y <= 0):
            i = int(np.flatnonzero(y <= 0)[0])
            raise ValueError(f"target_transform='log10' needs positive targets; record {i} is {y[i]}")
        return np.log10(y)
    return y.copy()


def inverse_transform_target(y: np.ndarray, transform: str | None) -> np.ndarray:
    """Inverse of :func:`transform_target`."""
    _check_transform(transform)
    y = np.asarray(y, dtype=float)
    return 10.0**y if transform == "log10" else y.copy()


def _check_matrix(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        r, c = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} has NaN or infinite entries (first at [{r}, {c}])")
    return arr


def _check_xy(x: Any, y: Any, xname: str) -> tuple[np.ndarray, np.ndarray]:
    X = _check_matrix(x, xname)
    Y = check_target(y)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"{xname} has {X.shape[0]} rows but the target has {Y.shape[0]} values")
    return X, Y


def _check_cv(cv: int | str, n: int, what: str) -> None:
    if cv == "loo":
        return
    if isinstance(cv, bool) or not isinstance(cv, (int, np.integer)) or cv < 2:
        raise ValueError(f"cv must be an integer >= 2 or 'loo', got {cv!r}")
    if n < cv:
        raise ValueError(f"{what}: {n} training records are fewer than the cv={cv} inner "
                         "folds; give more records or fewer folds")


def _as_list(value: Any, name: str) -> list:
    if np.isscalar(value):
        return [value]
    out = list(value)
    if not out:
        raise ValueError(f"{name} must not be empty")
    return out


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


class _Model:
    """Shared export/import machinery."""

    name: str = ""
    _array_names: tuple[str, ...] = ()
    _fitted_params: tuple[str, ...] = ()

    def get_params(self) -> dict:
        """Constructor arguments (JSON-able)."""
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, self._array_names[0] + "_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """Everything needed to predict: ``(arrays, params)`` -- numpy arrays and a JSON-able
        dict (constructor arguments under ``'init'``, fitted scalars under ``'fitted'``)."""
        self._check_fitted()
        arrays = {a: np.array(getattr(self, a + "_"), copy=True) for a in self._array_names}
        fitted = {}
        for p in self._fitted_params:
            v = getattr(self, p + "_")
            fitted[p] = v.item() if isinstance(v, np.generic) else v
        return arrays, {"name": self.name, "init": _jsonable(self.get_params()), "fitted": _jsonable(fitted)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict) -> "_Model":
        """Rebuild a fitted model from :meth:`to_arrays` output."""
        if params.get("name") != cls.name:
            raise ValueError(f"params describe a {params.get('name')!r} model, not {cls.name!r}")
        model = cls(**params.get("init", {}))
        missing = [a for a in cls._array_names if a not in arrays]
        if missing:
            raise ValueError(f"{cls.name} model arrays are missing {missing}")
        for a in cls._array_names:
            setattr(model, a + "_", np.array(arrays[a], copy=True))
        for p in cls._fitted_params:
            if p not in params.get("fitted", {}):
                raise ValueError(f"{cls.name} model params are missing fitted value {p!r}")
            setattr(model, p + "_", params["fitted"][p])
        return model

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ---------------------------------------------------------------------------------------
# median baseline


class MedianRegressor(_Model):
    """Predicts the median of the training targets (the baseline every model must beat)."""

    name = "median"
    _array_names = ("median",)

    def __init__(self) -> None:
        pass

    def get_params(self) -> dict:
        return {}

    def fit(self, X: Any, y: Any) -> "MedianRegressor":
        """X: (n, d) features or (n, n) distances (only its row count is used); y: (n,)."""
        X = np.asarray(X)
        y = check_target(y)
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but the target has {y.shape[0]} values")
        self.median_ = np.array(np.median(y))
        return self

    def predict(self, X: Any) -> np.ndarray:
        """(m,) the training median for every row of X."""
        self._check_fitted()
        return np.full(np.asarray(X).shape[0], float(self.median_))


# ---------------------------------------------------------------------------------------
# kNN on precomputed distances


def _knn_predict(D: np.ndarray, y: np.ndarray, k: int, weights: str) -> np.ndarray:
    """kNN prediction from an (m, n) distance matrix and (n,) targets."""
    k = min(int(k), D.shape[1])
    idx = np.argsort(D, axis=1, kind="stable")[:, :k]
    d = np.take_along_axis(D, idx, axis=1)
    yy = y[idx]
    if weights == "uniform":
        return yy.mean(1)
    zero = d <= 0.0
    with np.errstate(divide="ignore"):
        w = np.where(zero.any(1, keepdims=True), zero.astype(float), 1.0 / np.where(zero, 1.0, d))
    return (w * yy).sum(1) / w.sum(1)


class KNNRegressor(_Model):
    """k-nearest-neighbour regression on precomputed distances.

    Args:
        k: number of neighbours, or a list of candidates chosen by inner cross-validation
            (mean absolute error in the target's units) on the training records.
        weights: ``'distance'`` (weights 1/d; exact matches d=0 take all the weight) or
            ``'uniform'``.
        cv: number of inner folds when ``k`` is a list, or ``'loo'`` (leave-one-out).
        random_state: seed of the inner folds.
        target_transform: ``None`` or ``'log10'`` (average in log space).

    Fitted attributes: ``y_train_`` (n,) transformed training targets, ``k_`` chosen k,
    ``cv_mae_`` dict k -> inner-CV MAE (empty for a single k).
    """

    name = "knn"
    _array_names = ("y_train",)
    _fitted_params = ("k", "cv_mae")

    def __init__(self, k: int | Sequence[int] = (1, 3, 5, 10, 20), weights: str = "distance", cv: int | str = 5,
                 random_state: int = 0, target_transform: str | None = None) -> None:
        self.k = k
        self.weights = weights
        self.cv = cv
        self.random_state = random_state
        self.target_transform = target_transform

    def get_params(self) -> dict:
        return {"k": _jsonable(self.k), "weights": self.weights, "cv": self.cv,
                "random_state": self.random_state, "target_transform": self.target_transform}

    def _validate(self) -> list[int]:
        if self.weights not in ("distance", "uniform"):
            raise ValueError(f"weights must be 'distance' or 'uniform', got {self.weights!r}")
        _check_transform(self.target_transform)
        ks = _as_list(self.k, "k")
        for k in ks:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise ValueError(f"k must be a positive integer or a list of them, got {self.k!r}")
        return [int(k) for k in ks]

    def fit(self, D: Any, y: Any) -> "KNNRegressor":
        """Fit on an (n, n) matrix of distances between the training records (Angstrom or
        whatever the metric's unit) and (n,) targets."""
        ks = self._validate()
        D, y = _check_xy(D, y, "training distance matrix")
        if D.shape[0] != D.shape[1]:
            raise ValueError(f"training distance matrix must be square (n, n), got {D.shape}")
        if (D < 0).any():
            raise ValueError("distance matrix has negative entries")
        yt = transform_target(y, self.target_transform)
        cv_mae: dict[str, float] = {}
        if len(ks) == 1:
            best = ks[0]
        else:
            _check_cv(self.cv, len(y), "KNNRegressor")
            errs = np.zeros(len(ks))
            if self.cv == "loo":
                loo = D.copy()
                np.fill_diagonal(loo, np.inf)
                splits = [(np.arange(len(y)), np.arange(len(y)), loo)]
            else:
                splits = [(tr, te, D[np.ix_(te, tr)]) for tr, te in kfold_indices(len(y), self.cv, self.random_state)]
            for tr, te, sub in splits:
                for j, k in enumerate(ks):
                    pred = inverse_transform_target(_knn_predict(sub, yt[tr], k, self.weights),
                                                    self.target_transform)
                    errs[j] += np.abs(pred - y[te]).sum()
            errs /= len(y)
            cv_mae = {str(k): float(e) for k, e in zip(ks, errs)}
            best = ks[int(np.argmin(errs))]
        self.y_train_ = yt
        self.k_ = int(best)
        self.cv_mae_ = cv_mae
        return self

    def predict(self, D: Any) -> np.ndarray:
        """Predict from an (m, n_train) matrix of distances from new records to the
        training records (same metric and order as in ``fit``). Returns (m,)."""
        self._check_fitted()
        D = _check_matrix(D, "test-train distance matrix")
        n = len(self.y_train_)
        if D.shape[1] != n:
            raise ValueError(f"test-train distance matrix has {D.shape[1]} columns but the model "
                             f"was trained on {n} records: give distances to every training "
                             "record, in training order")
        return inverse_transform_target(_knn_predict(D, np.asarray(self.y_train_, float), self.k_, self.weights),
                                        self.target_transform)


# ---------------------------------------------------------------------------------------
# kernel ridge regression


_KERNELS = ("laplacian", "rbf")


def _pair_dist(A: np.ndarray, B: np.ndarray, kernel: str) -> np.ndarray:
    """L1 distances (laplacian) or squared Euclidean distances (rbf), (len(A), len(B))."""
    if kernel == "laplacian":
        return _cdist(A, B, metric="cityblock")
    d = _cdist(A, B, metric="sqeuclidean")
    return np.maximum(d, 0.0)


class KernelRidgeRegressor(_Model):
    """Kernel ridge regression on feature vectors, hyperparameters by inner CV.

    Kernels: ``'laplacian'`` exp(-gamma ||x - x'||_1) and ``'rbf'`` exp(-gamma ||x - x'||^2)
    on standardised features (each column centred and scaled to unit variance on the
    training set; constant columns are only centred).

    Args:
        kernel: ``'laplacian'`` or ``'rbf'``.
        alphas: ridge strengths (candidates; one value fixes it).
        gammas: kernel widths (candidates). ``None`` uses ``gamma_factors / n_features``.
        gamma_factors: relative widths used when ``gammas`` is None.
        standardize: standardise the features (recommended).
        center: subtract the mean (transformed) training target before the fit.
        cv: inner folds for the (alpha, gamma) grid search, scored by MAE in target units;
            ``'loo'``: exact closed-form leave-one-out (one eigendecomposition per gamma,
            much faster than K folds).
        random_state: seed of the inner folds.
        target_transform: ``None`` or ``'log10'``.
        scale_column: optional feature column ``c`` (e.g. volume per atom, column 0 of the
            ``density`` descriptor): the model learns ``y * X[:, c]`` (e.g. bulk modulus
            times volume, an energy per atom) and divides its prediction by ``X[:, c]``.
            Column ``c`` must be positive.

    Fitted attributes: ``X_fit_`` (n, d) standardised training features, ``dual_coef_``
    (n,), ``mean_``/``scale_`` (d,), ``y_mean_``, ``alpha_``, ``gamma_``, ``n_features_``,
    ``cv_mae_`` (grid of inner-CV MAE, rows gammas, columns alphas).
    """

    name = "krr"
    _array_names = ("X_fit", "dual_coef", "mean", "scale")
    _fitted_params = ("alpha", "gamma", "y_mean", "n_features", "cv_mae", "gamma_grid")

    def __init__(self, kernel: str = "laplacian",
                 alphas: float | Sequence[float] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
                 gammas: float | Sequence[float] | None = None,
                 gamma_factors: Sequence[float] = (0.03, 0.1, 0.3, 1.0, 3.0),
                 standardize: bool = True, center: bool = True, cv: int | str = "loo", random_state: int = 0,
                 target_transform: str | None = None, scale_column: int | None = None) -> None:
        self.kernel = kernel
        self.alphas = alphas
        self.gammas = gammas
        self.gamma_factors = gamma_factors
        self.standardize = standardize
        self.center = center
        self.cv = cv
        self.random_state = random_state
        self.target_transform = target_transform
        self.scale_column = scale_column

    def get_params(self) -> dict:
        return _jsonable({"scale_column": self.scale_column, "kernel": self.kernel, "alphas": self.alphas, "gammas": self.gammas,
                          "gamma_factors": self.gamma_factors, "standardize": self.standardize,
                          "center": self.center, "cv": self.cv, "random_state": self.random_state,
                          "target_transform": self.target_transform})

    def _scale(self, X: np.ndarray) -> np.ndarray:
        """(n,) the per-record target scale (ones without ``scale_column``)."""
        c = self.scale_column
        if c is None:
            return np.ones(X.shape[0])
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not -X.shape[1] <= c < X.shape[1]:
            raise ValueError(f"scale_column {c!r} is not a column of features of width {X.shape[1]}")
        col = X[:, int(c)]
        if np.any(col <= 0):
            raise ValueError(f"scale_column {c} must hold positive values (e.g. volume per atom)")
        return col

    def _grids(self, n_features: int) -> tuple[list[float], list[float]]:
        if self.kernel not in _KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; use one of {_KERNELS}")
        _check_transform(self.target_transform)
        alphas = [float(a) for a in _as_list(self.alphas, "alphas")]
        if self.gammas is None:
            gammas = [float(g) / n_features for g in _as_list(self.gamma_factors, "gamma_factors")]
        else:
            gammas = [float(g) for g in _as_list(self.gammas, "gammas")]
        if min(alphas) <= 0 or min(gammas) <= 0:
            raise ValueError(f"alphas and gammas must be positive, got {alphas}, {gammas}")
        return alphas, gammas

    def fit(self, X: Any, y: Any) -> "KernelRidgeRegressor":
        """Fit on (n, d) features and (n,) targets."""
        X, y = _check_xy(X, y, "feature matrix")
        alphas, gammas = self._grids(X.shape[1])
        if self.standardize:
            mean = X.mean(0)
            scale = X.std(0)
            scale[scale <= 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0
        else:
            mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        Z = (X - mean) / scale
        tscale = self._scale(X)
        yt = transform_target(y * tscale, self.target_transform)
        dist = _pair_dist(Z, Z, self.kernel)
        grid = np.zeros((len(gammas), len(alphas)))
        if len(alphas) * len(gammas) > 1:
            grid = self._search(dist, y, yt, alphas, gammas, tscale)
            gi, ai = np.unravel_index(int(np.argmin(grid)), grid.shape)
        else:
            gi, ai = 0, 0
        gamma, alpha = gammas[gi], alphas[ai]
        K = np.exp(-gamma * dist)
        y_mean = float(yt.mean()) if self.center else 0.0
        K[np.diag_indices_from(K)] += alpha
        try:
            dual = scipy.linalg.solve(K, yt - y_mean, assume_a="pos", check_finite=False)
        except np.linalg.LinAlgError:  # pragma: no cover - numerically singular
            dual = scipy.linalg.lstsq(K, yt - y_mean)[0]
        self.X_fit_ = Z
        self.dual_coef_ = dual
        self.mean_ = mean
        self.scale_ = scale
        self.y_mean_ = y_mean
        self.alpha_ = float(alpha)
        self.gamma_ = float(gamma)
        self.n_features_ = int(X.shape[1])
        self.gamma_grid_ = gammas
        self.cv_mae_ = grid.tolist()
        return self

    def _search(self, dist: np.ndarray, y: np.ndarray, yt: np.ndarray, alphas: list[float],
                gammas: list[float], tscale: np.ndarray) -> np.ndarray:
        """(n_gammas, n_alphas) inner-CV mean absolute error, in target units."""
        grid = np.zeros((len(gammas), len(alphas)))
        n = len(y)
        if self.cv == "loo":
            if n < 3:
                raise ValueError(f"KernelRidgeRegressor: {n} training records are too few for "
                                 "leave-one-out hyperparameter search (need 3)")
            ym = yt.mean() if self.center else 0.0
            for gi, g in enumerate(gammas):
                s, V = scipy.linalg.eigh(np.exp(-g * dist), check_finite=False)
                s = np.maximum(s, 0.0)
                proj = V.T @ (yt - ym)
                V2 = V**2
                for ai, a in enumerate(alphas):
                    inv = 1.0 / (s + a)
                    c = V @ (proj * inv)  # dual coefficients
                    h = V2 @ inv  # diagonal of (K + a I)^-1
                    pred = yt - c / h  # closed-form leave-one-out predictions
                    grid[gi, ai] = _mae(inverse_transform_target(pred, self.target_transform) / tscale, y)
            return grid
        _check_cv(self.cv, n, "KernelRidgeRegressor")
        folds = kfold_indices(n, self.cv, self.random_state)
        for gi, g in enumerate(gammas):
            K = np.exp(-g * dist)
            for tr, te in folds:
                ym = yt[tr].mean() if self.center else 0.0
                s, V = scipy.linalg.eigh(K[np.ix_(tr, tr)], check_finite=False)
                proj = V.T @ (yt[tr] - ym)
                Kte = K[np.ix_(te, tr)] @ V
                for ai, a in enumerate(alphas):
                    pred = Kte @ (proj / (np.maximum(s, 0.0) + a)) + ym
                    grid[gi, ai] += np.abs(inverse_transform_target(pred, self.target_transform) / tscale[te]
                                           - y[te]).sum()
        return grid / n

    def predict(self, X: Any) -> np.ndarray:
        """Predict (m,) targets from (m, d) features built exactly as in training."""
        self._check_fitted()
        X = _check_matrix(X, "feature matrix")
        d = int(self.n_features_)
        if X.shape[1] != d:
            raise ValueError(f"features have width {X.shape[1]} but the model was trained on {d} "
                             "features: they come from another descriptor or other descriptor "
                             "parameters")
        Z = (X - self.mean_) / self.scale_
        K = np.exp(-float(self.gamma_) * _pair_dist(Z, np.asarray(self.X_fit_, float), self.kernel))
        pred = inverse_transform_target(K @ self.dual_coef_ + float(self.y_mean_), self.target_transform)
        return pred / self._scale(X)


# ---------------------------------------------------------------------------------------
# ensemble


class EnsembleRegressor(_Model):
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

    def get_params(self) -> dict:
        return {"members": _jsonable(list(self.members))}

    def _validate(self) -> list:
        specs = list(self.members)
        if not specs:
            raise ValueError("an ensemble needs at least one member model")
        models = [build_model(dict(m)) for m in specs]
        for m in models:
            if isinstance(m, (KNNRegressor, EnsembleRegressor)):
                raise ValueError(f"ensemble members must be feature models (krr, median), not {m.name!r}")
        return models

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise ValueError("this EnsembleRegressor is not fitted yet; call fit first")

    def fit(self, X: Any, y: Any) -> "EnsembleRegressor":
        """Fit every member on (n, d) features and (n,) targets."""
        self.models_ = [m.fit(X, y) for m in self._validate()]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """(m,) mean of the members' predictions."""
        self._check_fitted()
        return np.mean([m.predict(X) for m in self.models_], axis=0)

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays of member ``i`` are stored under ``'i/<name>'``."""
        self._check_fitted()
        arrays, fitted = {}, []
        for i, m in enumerate(self.models_):
            a, p = m.to_arrays()
            arrays.update({f"{i}/{k}": v for k, v in a.items()})
            fitted.append(p)
        return arrays, {"name": self.name, "init": self.get_params(), "fitted": {"members": fitted}}

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
            model.models_.append(model_from_arrays(sub, p))
        return model


# ---------------------------------------------------------------------------------------
# factory


MODELS: dict[str, type] = {"knn": KNNRegressor, "krr": KernelRidgeRegressor, "median": MedianRegressor,
                           "ensemble": EnsembleRegressor}


def build_model(spec: dict) -> _Model:
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
    allowed = set(cls().get_params())
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(f"model {name!r} has no parameter(s) {unknown}; allowed: {sorted(allowed)}")
    model = cls(**kwargs)
    if hasattr(model, "_validate"):
        model._validate()
    elif hasattr(model, "_grids"):
        model._grids(1)
    return model


def model_from_arrays(arrays: dict[str, np.ndarray], params: dict) -> _Model:
    """Rebuild any fitted model from its :meth:`to_arrays` output."""
    name = params.get("name") if isinstance(params, dict) else None
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} in params; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name].from_arrays(arrays, params)


def is_precomputed(model: Any) -> bool:
    """True when the model takes distance matrices rather than feature vectors."""
    return isinstance(model, KNNRegressor)
