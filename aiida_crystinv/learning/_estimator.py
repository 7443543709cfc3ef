"""What every estimator of :mod:`aiida_crystinv.learning.models` shares: target checks and
transforms, input checks with scikit-learn's ``validate_data``, and the pickle-free export
(:class:`_ExportMixin`: ``to_arrays`` / ``from_arrays``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from . import models as _models  # the registry (a cycle: resolved when called)
from .errors import TargetError, TooFewRecordsError

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
        models = [_models.build_model({k: v for k, v in dict(m).items() if k != "columns"}) for m in members]
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
