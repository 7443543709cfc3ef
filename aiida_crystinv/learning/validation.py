"""Cross-validation of model specs on feature matrices or precomputed distance matrices.

Outer folds come from :func:`~aiida_crystinv.learning.splits.kfold_indices` (seeded, the
same for every model); each model chooses its own hyperparameters by inner
cross-validation on the outer training records only, so test records never influence
the hyperparameters.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .metrics import regression_metrics
from .models import KNNRegressor, build_model, check_target
from .splits import kfold_indices

__all__ = ["cross_val_predict", "cross_validate", "fit_predict_split"]


def _model_of(spec: Any):
    return build_model(spec) if isinstance(spec, dict) else spec


def _subset(X: np.ndarray, rows: np.ndarray, cols: np.ndarray | None, precomputed: bool) -> np.ndarray:
    return X[np.ix_(rows, cols)] if precomputed else X[rows]


def fit_predict_split(spec: Any, X: Any, y: Any, train: np.ndarray, test: np.ndarray):
    """Fit ``spec`` on the ``train`` records and predict the ``test`` records.

    Args:
        spec: a model spec dict (see :func:`~aiida_crystinv.learning.build_model`) or an
            unfitted model.
        X: (n, d) features, or an (n, n) distance matrix for a kNN model.
        y: (n,) targets.

    Returns:
        ``(model, predictions)``: the fitted model and (len(test),) predictions.
    """
    model = _model_of(spec)
    precomputed = isinstance(model, KNNRegressor)
    X = np.asarray(X, dtype=float)
    y = check_target(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but the target has {y.shape[0]} values")
    if precomputed and X.shape[0] != X.shape[1]:
        raise ValueError(f"a kNN model needs the square (n, n) distance matrix of all records, got {X.shape}")
    model.fit(_subset(X, train, train, precomputed), y[train])
    return model, model.predict(_subset(X, test, train, precomputed))


def cross_val_predict(spec: Any, X: Any, y: Any, n_splits: int = 5, seed: int = 0,
                      folds: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """Out-of-fold predictions (n,) of a model spec under seeded K-fold CV.

    ``folds`` overrides ``n_splits``/``seed`` with explicit ``(train, test)`` pairs.
    """
    y = check_target(y)
    folds = kfold_indices(len(y), n_splits, seed) if folds is None else folds
    pred = np.full(len(y), np.nan)
    for train, test in folds:
        _, pred[test] = fit_predict_split(spec, X, y, np.asarray(train), np.asarray(test))
    if np.isnan(pred).any():
        raise ValueError("the folds do not cover every record")
    return pred


def cross_validate(spec: Any, X: Any, y: Any, n_splits: int = 5, seed: int = 0,
                   folds: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> dict:
    """Cross-validated metrics and predictions of a model spec.

    Returns:
        ``{'metrics': {'mae', 'median_ae', 'rmse', 'r2', 'n'}, 'predictions': (n,),
        'fold_metrics': [per-fold metrics]}`` (same units as the target).
    """
    y = check_target(y)
    folds = kfold_indices(len(y), n_splits, seed) if folds is None else folds
    pred = cross_val_predict(spec, X, y, folds=folds)
    return {
        "metrics": regression_metrics(y, pred),
        "predictions": pred,
        "fold_metrics": [regression_metrics(y[te], pred[te]) for _, te in folds],
    }
