"""Regression metrics (same units as the target: eV, eV/atom, GPa, ...)."""

from __future__ import annotations

import numpy as np

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
    """Mean absolute error."""
    a, b = _pair(y_true, y_pred)
    return float(np.mean(np.abs(a - b)))


def median_ae(y_true, y_pred) -> float:
    """Median absolute error."""
    a, b = _pair(y_true, y_pred)
    return float(np.median(np.abs(a - b)))


def rmse(y_true, y_pred) -> float:
    """Root-mean-square error."""
    a, b = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def r2(y_true, y_pred) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (NaN when y_true is constant)."""
    a, b = _pair(y_true, y_pred)
    ss_tot = float(np.sum((a - a.mean()) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((a - b) ** 2)) / ss_tot


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """``{'mae', 'median_ae', 'rmse', 'r2', 'n'}`` of a set of predictions."""
    a, b = _pair(y_true, y_pred)
    return {"mae": mae(a, b), "median_ae": median_ae(a, b), "rmse": rmse(a, b), "r2": r2(a, b),
            "n": int(a.size)}
