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

from typing import Any, Sequence

import numpy as np
import scipy.linalg
from scipy.spatial.distance import cdist as _cdist
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.dummy import DummyRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from .errors import TargetError, TooFewRecordsError
from .splits import kfold_indices

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

#: Supported target transforms.
TARGET_TRANSFORMS = (None, "log10")


# ---------------------------------------------------------------------------------------
# validation helpers



def check_target(y: Any, name: str = "target") -> np.ndarray:
    """(n,) float array of finite targets; ValueError naming the first bad record.

    A column vector (n, 1) is accepted with scikit-learn's ``DataConversionWarning``.
    """
    if y is None:
        raise ValueError(f"this estimator requires y to be passed, but the target y is None ({name})")
    arr = np.asarray(y)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name}: Complex data not supported")
    arr = arr.astype(float)
    if arr.ndim == 2 and arr.shape[1] == 1 and arr.shape[0] > 1:
        arr = column_or_1d(arr, warn=True)
    elif arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {np.shape(y)}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise TargetError(f"{name} has {bad.size} NaN or infinite value(s) (first at record "
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
            raise TargetError(f"target_transform='log10' needs positive targets; record {i} is {y[i]}")
        return np.log10(y)
    return y.copy()


def inverse_transform_target(y: np.ndarray, transform: str | None) -> np.ndarray:
    """Inverse of :func:`transform_target`."""
    _check_transform(transform)
    y = np.asarray(y, dtype=float)
    return 10.0**y if transform == "log10" else y.copy()


_FEATURE_HINT = "the features come from another descriptor or other descriptor parameters"


def _check_X(est: BaseEstimator, X: Any, what: str, reset: bool, hint: str = _FEATURE_HINT) -> np.ndarray:
    """X as a 2-D float array, checked: shape and dtype by ``check_array``, every entry
    finite (the message names the first bad entry), and -- with ``reset=False`` -- the
    width the estimator was fitted on (scikit-learn's message plus ``hint``).
    ``validate_data`` then sets (``reset=True``) or checks ``n_features_in_`` and
    ``feature_names_in_``."""
    arr = check_array(X, dtype=np.float64, ensure_all_finite=False, estimator=est, input_name="X")
    if not np.isfinite(arr).all():
        r, c = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{what} has NaN or infinite entries (first at [{r}, {c}])")
    if not reset:
        n = getattr(est, "n_features_in_", None)
        if n is not None and arr.shape[1] != int(n):
            raise ValueError(f"X has {arr.shape[1]} features, but {type(est).__name__} is expecting {int(n)} "
                             f"features as input: {hint.format(got=arr.shape[1], n=int(n))}")
    validate_data(est, X, reset=reset, skip_check_array=True)
    return arr


def _check_Xy(est: BaseEstimator, X: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Fit-time check of X (see :func:`_check_X`) and y (:func:`check_target`)."""
    Y = check_target(y)
    Xa = _check_X(est, X, what, reset=True)
    if Xa.shape[0] != Y.shape[0]:
        raise ValueError(f"{what} has {Xa.shape[0]} rows but the target has {Y.shape[0]} values")
    return Xa, Y


def _check_cv(cv: int | str, n: int, what: str) -> None:
    if cv == "loo":
        return
    if isinstance(cv, bool) or not isinstance(cv, (int, np.integer)) or cv < 2:
        raise ValueError(f"cv must be an integer >= 2 or 'loo', got {cv!r}")
    if n < cv:
        raise TooFewRecordsError(f"{what}: {n} training records ({n} sample(s)) are fewer than the cv={cv} inner "
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


def _standardize(X: np.ndarray, on: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Z, mean, scale)``: ``StandardScaler().fit_transform(X)`` and its ``mean_`` /
    ``scale_`` (constant columns are only centred); ``on=False``: no scaling."""
    if not on:
        return X.copy(), np.zeros(X.shape[1]), np.ones(X.shape[1])
    scaler = StandardScaler().fit(X)
    return scaler.transform(X), scaler.mean_, scaler.scale_


def _positive_targets(tags: Any, *needs: bool) -> Any:
    """Set ``target_tags.positive_only`` when a log10 transform or record weights
    ``(y / mean y) ** p`` need positive targets."""
    tags.target_tags.positive_only = any(needs)
    return tags


def _members_need_positive_targets(members: Any) -> bool:
    try:
        models = [build_model({k: v for k, v in dict(m).items() if k != "columns"}) for m in members]
    except (TypeError, ValueError):
        return False
    return any(m.__sklearn_tags__().target_tags.positive_only for m in models)


class _ExportMixin:
    """Pickle-free export/import shared by the models (mixed in before the scikit-learn
    bases: ``class M(_ExportMixin, RegressorMixin, BaseEstimator)``)."""

    name: str = ""
    _array_names: tuple[str, ...] = ()
    _fitted_params: tuple[str, ...] = ()

    def _check_fitted(self) -> None:
        """``sklearn.utils.validation.check_is_fitted``: NotFittedError (a ValueError)."""
        check_is_fitted(self, msg="this %(name)s is not fitted yet; call fit first")

    def _restore(self) -> None:
        """Set fitted attributes that are derived, not exported, after :meth:`from_arrays`."""

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """Everything needed to predict: ``(arrays, params)`` -- numpy arrays and a JSON-able
        dict (constructor arguments under ``'init'``, fitted scalars under ``'fitted'``)."""
        self._check_fitted()
        arrays = {a: np.array(getattr(self, a + "_"), copy=True) for a in self._array_names}
        fitted = {}
        for p in self._fitted_params:
            v = getattr(self, p + "_")
            fitted[p] = v.item() if isinstance(v, np.generic) else v
        return arrays, {"name": self.name, "init": _jsonable(self.get_params(deep=False)),
                        "fitted": _jsonable(fitted)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict) -> Any:
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
        model._restore()
        return model


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
# kNN on precomputed distances


def _knn_predict(D: np.ndarray, y: np.ndarray, k: int, weights: str) -> np.ndarray:
    """kNN prediction from an (m, n) distance matrix and (n,) targets (ties between equal
    distances go to the lower training index)."""
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


_KNN_HINT = ("the test-train distance matrix has {got} columns but the model was trained on {n} records: "
             "give distances to every training record, in training order")


class KNNRegressor(_ExportMixin, RegressorMixin, BaseEstimator):
    """k-nearest-neighbour regression on precomputed distances.

    A pairwise estimator (``__sklearn_tags__().input_tags.pairwise is True``):
    ``cross_val_score``, ``cross_val_predict`` and ``GridSearchCV`` give ``fit`` the
    train x train block and ``predict`` the test x train block of a square (n, n) matrix.

    Args:
        k: number of neighbours, or a list of candidates chosen by inner cross-validation
            (mean absolute error in the target's units) on the training records.
        weights: ``'distance'`` (weights 1/d; exact matches d=0 take all the weight) or
            ``'uniform'``.
        cv: number of inner folds when ``k`` is a list, or ``'loo'`` (leave-one-out).
        random_state: seed of the inner folds (``KFold(cv, shuffle=True, random_state)``).
        target_transform: ``None`` or ``'log10'`` (average in log space).

    Fitted attributes: ``y_train_`` (n,) transformed training targets, ``k_`` chosen k,
    ``cv_mae_`` dict k -> inner-CV MAE (empty for a single k), ``n_features_in_`` (n).

    Why not ``GridSearchCV(KNeighborsRegressor(metric='precomputed'))``: measured, it does
    the job as well -- on Carbon-24 (2030 records, AMD_100 L-inf, k in 1, 3, 5, 10, 20,
    weights 1/d, 5 outer x 5 inner folds) both reach MAE 0.017183 eV/atom, in 3.0 s here
    and 2.7 s there, and a test checks the predictions against it. This class is kept
    for what it stores, not for speed: a fitted scikit-learn precomputed model holds the
    (n, n) training matrix (``_fit_X``), which would go into the database (80 MB for the
    3163 records of the MP set), where this one exports only the (n,) training targets;
    and ``cv='loo'`` scores every k from one sort, where ``GridSearchCV(LeaveOneOut())``
    refits n times per k. Ties between equal distances go to the lower training index.
    Reproduce: ``OMP_NUM_THREADS=1 python benchmarks/bench_learning.py --sklearn-alternatives``
    (2026-12-02, 2 shared cores, one BLAS thread each side).
    """

    name = "knn"
    _array_names = ("y_train",)
    _fitted_params = ("k", "cv_mae")
    #: scikit-learn's name for what ``fit`` and ``predict`` take (a class attribute, not a
    #: parameter: the distance itself is computed elsewhere). ``estimator_checks`` reads it
    #: to give this estimator distance matrices.
    metric = "precomputed"

    def __init__(self, k: int | Sequence[int] = (1, 3, 5, 10, 20), weights: str = "distance", cv: int | str = 5,
                 random_state: int | None = 0, target_transform: str | None = None) -> None:
        self.k = k
        self.weights = weights
        self.cv = cv
        self.random_state = random_state
        self.target_transform = target_transform

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = True
        tags.input_tags.positive_only = True  # distances are never negative
        return _positive_targets(tags, self.target_transform == "log10")

    def _validate(self) -> list[int]:
        if self.weights not in ("distance", "uniform"):
            raise ValueError(f"weights must be 'distance' or 'uniform', got {self.weights!r}")
        _check_transform(self.target_transform)
        ks = _as_list(self.k, "k")
        for k in ks:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise ValueError(f"k must be a positive integer or a list of them, got {self.k!r}")
        return [int(k) for k in ks]

    def _restore(self) -> None:
        self.n_features_in_ = len(self.y_train_)

    def fit(self, D: Any, y: Any) -> "KNNRegressor":
        """Fit on an (n, n) matrix of distances between the training records (Angstrom or
        whatever the metric's unit) and (n,) targets."""
        ks = self._validate()
        D, y = _check_Xy(self, D, y, "training distance matrix")
        if D.shape[0] != D.shape[1]:
            raise ValueError(f"training distance matrix must be square (n, n), got {D.shape}")
        if (D < 0).any():
            raise ValueError("Negative values in data passed to KNNRegressor.fit: a distance matrix has no "
                             "negative entries (is it a kernel or a feature matrix?)")
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
        D = _check_X(self, D, "test-train distance matrix", reset=False, hint=_KNN_HINT)
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


class KernelRidgeRegressor(_ExportMixin, RegressorMixin, BaseEstimator):
    """Kernel ridge regression on feature vectors, hyperparameters by inner CV.

    Kernels: ``'laplacian'`` exp(-gamma ||x - x'||_1) and ``'rbf'`` exp(-gamma ||x - x'||^2)
    on standardised features (``StandardScaler`` fitted on the training set: each column
    centred and scaled to unit variance; constant columns are only centred). With fixed
    ``alphas``, ``gammas``, ``center=False`` the fit is ``make_pipeline(StandardScaler(),
    KernelRidge(kernel, alpha, gamma))`` (tests check it to 1e-9).

    Why the search is not ``GridSearchCV(KernelRidge)``: ``cv='loo'`` (the default) gets
    the exact leave-one-out predictions of every alpha from one eigendecomposition per
    gamma (the hat-matrix identity), which ``GridSearchCV(cv=LeaveOneOut())`` would need n
    refits per grid point for. Measured on Carbon-24 (2030 records, pdd_stats+amd, Laplacian,
    the 6 x 3 grid of the benchmark, 5 outer folds): closed-form leave-one-out 10.8 s, MAE
    0.011447 eV/atom; ``GridSearchCV(StandardScaler + KernelRidge, 5-fold)`` 126.9 s, MAE
    0.011419 (0.25 % lower, within fold noise; 11.7 times the time); the same leave-one-out
    search in scikit-learn: 29232 fits per outer fold at 0.22 s, about 9 hours. With
    ``cv=5`` this class searches the very folds ``GridSearchCV`` would (same MAE, 0.011419)
    in 32.3 s (eigendecomposition per gamma and fold instead of a solve per grid point).
    Reproduce: ``OMP_NUM_THREADS=1 python benchmarks/bench_learning.py --sklearn-alternatives``
    (2026-12-02, 2 shared cores, one BLAS thread each side).

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
        weight_power: weight each training record by ``(y / mean(y)) ** weight_power`` in
            the least-squares fit (0: unweighted). With a log10 target, 1 makes the fit
            weigh relative errors of large targets like the absolute errors an MAE counts.

    Fitted attributes: ``X_fit_`` (n, d) standardised training features, ``dual_coef_``
    (n,), ``mean_``/``scale_`` (d,), ``y_mean_``, ``alpha_``, ``gamma_``, ``n_features_``,
    ``cv_mae_`` (grid of inner-CV MAE, rows gammas, columns alphas), and (not exported)
    ``oof_pred_`` (n,) the inner-CV (leave-one-out or K-fold) predictions of the training
    records at the chosen hyperparameters, in target units -- what a stack blends.
    """

    name = "krr"
    _array_names = ("X_fit", "dual_coef", "mean", "scale")
    _fitted_params = ("alpha", "gamma", "y_mean", "n_features", "cv_mae", "gamma_grid")

    def __init__(self, kernel: str = "laplacian",
                 alphas: float | Sequence[float] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
                 gammas: float | Sequence[float] | None = None,
                 gamma_factors: Sequence[float] = (0.03, 0.1, 0.3, 1.0, 3.0),
                 standardize: bool = True, center: bool = True, cv: int | str = "loo", random_state: int = 0,
                 target_transform: str | None = None, scale_column: int | None = None,
                 weight_power: float = 0.0) -> None:
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
        self.weight_power = weight_power

    def __sklearn_tags__(self):
        return _positive_targets(super().__sklearn_tags__(), self.target_transform == "log10",
                                 self.weight_power not in (0, 0.0, None))

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
        wp = self.weight_power
        if isinstance(wp, bool) or not isinstance(wp, (int, float, np.integer, np.floating)) or not np.isfinite(wp):
            raise ValueError(f"weight_power must be a finite number, got {wp!r}")
        return alphas, gammas

    def _sqrt_weights(self, y: np.ndarray) -> np.ndarray:
        """(n,) square roots of the record weights ``(y / mean(y)) ** weight_power``."""
        p = float(self.weight_power)
        if p == 0.0:
            return np.ones(len(y))
        if np.any(y <= 0):
            raise TargetError("weight_power needs positive targets")
        return np.sqrt((y / y.mean()) ** p)

    def fit(self, X: Any, y: Any) -> "KernelRidgeRegressor":
        """Fit on (n, d) features and (n,) targets."""
        self._grids(1)  # the parameters are checked before the data
        X, y = _check_Xy(self, X, y, "feature matrix")
        alphas, gammas = self._grids(X.shape[1])
        Z, mean, scale = _standardize(X, bool(self.standardize))
        tscale = self._scale(X)
        yt = transform_target(y * tscale, self.target_transform)
        dist = _pair_dist(Z, Z, self.kernel)
        sw = self._sqrt_weights(y)
        if len(alphas) * len(gammas) > 1:
            grid, preds = self._search(dist, y, yt, alphas, gammas, tscale, sw)
        else:  # nothing to choose: inner-CV predictions only where the records allow them
            try:
                grid, preds = self._search(dist, y, yt, alphas, gammas, tscale, sw)
            except ValueError:
                grid, preds = np.zeros((1, 1)), np.full((1, 1, len(y)), np.nan)
        gi, ai = np.unravel_index(int(np.argmin(grid)), grid.shape)
        gamma, alpha = gammas[gi], alphas[ai]
        # weighted ridge: (K + alpha W^-1) c = y  <=>  (S K S + alpha I) u = S y, c = S u
        K = np.exp(-gamma * dist) * sw[:, None] * sw[None, :]
        y_mean = float(yt.mean()) if self.center else 0.0
        K[np.diag_indices_from(K)] += alpha
        try:
            dual = sw * scipy.linalg.solve(K, sw * (yt - y_mean), assume_a="pos", check_finite=False)
        except np.linalg.LinAlgError:  # pragma: no cover - numerically singular
            dual = sw * scipy.linalg.lstsq(K, sw * (yt - y_mean))[0]
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
        self.oof_pred_ = preds[gi, ai]
        return self

    def _search(self, dist: np.ndarray, y: np.ndarray, yt: np.ndarray, alphas: list[float],
                gammas: list[float], tscale: np.ndarray,
                sw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n_gammas, n_alphas) inner-CV mean absolute error, in target units, and the
        (n_gammas, n_alphas, n) inner-CV predictions (target units). ``sw``: square roots
        of the record weights."""
        grid = np.zeros((len(gammas), len(alphas)))
        n = len(y)
        sw = np.ones(n) if sw is None else sw
        preds = np.zeros((len(gammas), len(alphas), n))
        if self.cv == "loo":
            if n < 3:
                raise ValueError(f"KernelRidgeRegressor: {n} training records ({n} sample(s)) are too few "
                                 "for leave-one-out hyperparameter search (need 3)")
            ym = yt.mean() if self.center else 0.0
            for gi, g in enumerate(gammas):
                s, V = scipy.linalg.eigh(np.exp(-g * dist) * sw[:, None] * sw[None, :], check_finite=False)
                s = np.maximum(s, 0.0)
                proj = V.T @ (sw * (yt - ym))
                V2 = V**2
                for ai, a in enumerate(alphas):
                    shrink = s / (s + a)
                    fit = (V @ (proj * shrink)) / sw  # fitted values (centred)
                    h = V2 @ shrink  # diagonal of the hat matrix
                    # closed-form leave-one-out predictions of the (weighted) linear smoother
                    pred = yt - (yt - ym - fit) / np.maximum(1.0 - h, 1e-12)
                    preds[gi, ai] = inverse_transform_target(pred, self.target_transform) / tscale
                    grid[gi, ai] = _mae(preds[gi, ai], y)
            return grid, preds
        _check_cv(self.cv, n, "KernelRidgeRegressor")
        folds = kfold_indices(n, self.cv, self.random_state)
        for gi, g in enumerate(gammas):
            K = np.exp(-g * dist)
            for tr, te in folds:
                ym = yt[tr].mean() if self.center else 0.0
                st = sw[tr]
                s, V = scipy.linalg.eigh(K[np.ix_(tr, tr)] * st[:, None] * st[None, :], check_finite=False)
                proj = V.T @ (st * (yt[tr] - ym))
                Kte = (K[np.ix_(te, tr)] * st[None, :]) @ V
                for ai, a in enumerate(alphas):
                    pred = inverse_transform_target(Kte @ (proj / (np.maximum(s, 0.0) + a)) + ym,
                                                    self.target_transform) / tscale[te]
                    preds[gi, ai, te] = pred
                    grid[gi, ai] += np.abs(pred - y[te]).sum()
        return grid / n, preds

    def _restore(self) -> None:
        self.n_features_in_ = int(self.n_features_)

    def predict(self, X: Any) -> np.ndarray:
        """Predict (m,) targets from (m, d) features built exactly as in training."""
        self._check_fitted()
        X = _check_X(self, X, "feature matrix", reset=False)
        Z = (X - self.mean_) / self.scale_  # StandardScaler.transform with the training mean_/scale_
        K = np.exp(-float(self.gamma_) * _pair_dist(Z, np.asarray(self.X_fit_, float), self.kernel))
        pred = inverse_transform_target(K @ self.dual_coef_ + float(self.y_mean_), self.target_transform)
        return pred / self._scale(X)


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
        models = [build_model(dict(m)) for m in specs]
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
            model.models_.append(model_from_arrays(sub, p))
        model._restore()
        return model


# ---------------------------------------------------------------------------------------
# kNN on feature vectors


class FeatureKNNRegressor(_ExportMixin, RegressorMixin, BaseEstimator):
    """k-nearest-neighbour regression on standardised feature vectors (L1 or L2).

    The feature-vector counterpart of :class:`KNNRegressor` (which takes precomputed
    distances), mainly a diverse member for :class:`StackRegressor`. ``k`` is chosen by
    exact leave-one-out on the training records (MAE in target units), from one distance
    matrix, and those leave-one-out predictions (``oof_pred_``) are what the stack blends
    without refitting.

    On its own, ``GridSearchCV(make_pipeline(StandardScaler(), KNeighborsRegressor(
    metric='manhattan', weights='distance')), 5-fold)`` does as well: measured on Carbon-24
    (2030 records, pdd_stats+amd, k in 1, 3, 5, 10, 20, 5 outer folds) MAE 0.014669 there,
    0.014778 here (0.7 % higher), 7.5 s there, 5.3 s here. Use it if a feature kNN is all
    you need; this class adds the free leave-one-out predictions, ``scale_column``,
    ``target_transform`` and the pickle-free export. Reproduce: ``OMP_NUM_THREADS=1 python benchmarks/bench_learning.py --sklearn-alternatives``
    (2026-12-02, 2 shared cores, one BLAS thread each side).

    Args:
        k: number of neighbours or a list of candidates.
        weights: ``'distance'`` or ``'uniform'``.
        metric: ``'l1'`` (cityblock) or ``'l2'`` on standardised features.
        target_transform: ``None`` or ``'log10'``.
        scale_column: as in :class:`KernelRidgeRegressor` (average ``y * X[:, c]``).

    Fitted attributes: ``X_fit_`` (n, d) standardised features, ``y_train_`` (n,)
    transformed (scaled) targets, ``mean_``/``scale_`` (d,), ``k_``, ``n_features_``,
    ``cv_mae_`` dict k -> leave-one-out MAE, ``oof_pred_`` (n,) leave-one-out predictions
    (not exported).
    """

    name = "knn_features"
    _array_names = ("X_fit", "y_train", "mean", "scale")
    _fitted_params = ("k", "n_features", "cv_mae")

    def __init__(self, k: int | Sequence[int] = (1, 3, 5, 10, 20), weights: str = "distance", metric: str = "l1",
                 target_transform: str | None = None, scale_column: int | None = None) -> None:
        self.k = k
        self.weights = weights
        self.metric = metric
        self.target_transform = target_transform
        self.scale_column = scale_column


    def _validate(self) -> list[int]:
        if self.metric not in ("l1", "l2"):
            raise ValueError(f"metric must be 'l1' or 'l2', got {self.metric!r}")
        return KNNRegressor(k=self.k, weights=self.weights, target_transform=self.target_transform)._validate()

    _scale = KernelRidgeRegressor._scale

    def __sklearn_tags__(self):
        return _positive_targets(super().__sklearn_tags__(), self.target_transform == "log10")

    def _dist(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        return _cdist(A, B, metric="cityblock" if self.metric == "l1" else "euclidean")

    def fit(self, X: Any, y: Any) -> "FeatureKNNRegressor":
        """Fit on (n, d) features and (n,) targets."""
        ks = self._validate()
        X, y = _check_Xy(self, X, y, "feature matrix")
        if len(y) < 2:
            raise ValueError(f"FeatureKNNRegressor needs at least 2 training records, got {len(y)} sample(s)")
        Z, mean, scale = _standardize(X)
        tscale = self._scale(X)
        yt = transform_target(y * tscale, self.target_transform)
        D = self._dist(Z, Z)
        np.fill_diagonal(D, np.inf)
        preds = [inverse_transform_target(_knn_predict(D, yt, min(k, len(y) - 1), self.weights),
                                          self.target_transform) / tscale for k in ks]
        errs = [_mae(p, y) for p in preds]
        best = int(np.argmin(errs))
        self.X_fit_, self.y_train_, self.mean_, self.scale_ = Z, yt, mean, scale
        self.k_ = int(ks[best])
        self.n_features_ = int(X.shape[1])
        self.cv_mae_ = {str(k): float(e) for k, e in zip(ks, errs)} if len(ks) > 1 else {}
        self.oof_pred_ = preds[best]
        return self

    def _restore(self) -> None:
        self.n_features_in_ = int(self.n_features_)

    def predict(self, X: Any) -> np.ndarray:
        """(m,) predictions from (m, d) features built exactly as in training."""
        self._check_fitted()
        X = _check_X(self, X, "feature matrix", reset=False)
        D = self._dist((X - self.mean_) / self.scale_, np.asarray(self.X_fit_, float))
        pred = _knn_predict(D, np.asarray(self.y_train_, float), int(self.k_), self.weights)
        return inverse_transform_target(pred, self.target_transform) / self._scale(X)


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
            model = build_model(spec)
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
            pred[te] = build_model(spec).fit(X[tr], y[tr]).predict(X[te])
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
            model.models_.append(model_from_arrays(sub, p))
        model.weights_ = np.array(arrays["weights"], dtype=float)
        model.n_features_ = int(fitted["n_features"])
        model.cv_mae_ = fitted.get("cv_mae", {})
        model.n_features_in_ = model.n_features_
        return model


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
