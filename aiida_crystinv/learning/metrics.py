"""Regression metrics (same units as the target: eV, eV/atom, GPa, ...), computed by
:mod:`sklearn.metrics` after a check that says what is wrong with the input."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, median_absolute_error, r2_score, root_mean_squared_error

__all__ = ["mae", "median_ae", "rmse", "r2", "regression_metrics"]


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=float).ravel()
    b = np.asarray(y_pred, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"y_true has {a.size} values but y_pred has {b.size}")
    if a.size == 0:
        raise ValueError("metrics need at least one value")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("metrics got NaN or infinite values")
    return a, b


def mae(y_true, y_pred) -> float:
    """Mean absolute error (``sklearn.metrics.mean_absolute_error``)."""
    a, b = _pair(y_true, y_pred)
    return float(mean_absolute_error(a, b))


def median_ae(y_true, y_pred) -> float:
    """Median absolute error (``sklearn.metrics.median_absolute_error``)."""
    a, b = _pair(y_true, y_pred)
    return float(median_absolute_error(a, b))


def rmse(y_true, y_pred) -> float:
    """Root-mean-square error (``sklearn.metrics.root_mean_squared_error``)."""
    a, b = _pair(y_true, y_pred)
    return float(root_mean_squared_error(a, b))


def r2(y_true, y_pred) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (``sklearn.metrics.r2_score``), but
    NaN when ``y_true`` is constant (scikit-learn would report 1.0 or 0.0 there, a number
    that says nothing about the model)."""
    a, b = _pair(y_true, y_pred)
    if np.all(a == a[0]):
        return float("nan")
    return float(r2_score(a, b))


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """``{'mae', 'median_ae', 'rmse', 'r2', 'n'}`` of a set of predictions."""
    a, b = _pair(y_true, y_pred)
    return {"mae": mae(a, b), "median_ae": median_ae(a, b), "rmse": rmse(a, b), "r2": r2(a, b),
            "n": int(a.size)}
