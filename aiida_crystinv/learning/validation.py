"""Cross-validation of model specs on feature matrices or precomputed distance matrices,
on top of scikit-learn.

Outer folds come from :func:`~aiida_crystinv.learning.splits.kfold_indices` (scikit-learn's
``KFold(shuffle=True, random_state=seed)``, the same for every model) or are given
explicitly; each fold fits a fresh ``sklearn.base.clone`` of the model, which chooses its
own hyperparameters by inner cross-validation on the outer training records only, so test
records never influence the hyperparameters. A model tagged pairwise
(:class:`~aiida_crystinv.learning.models.KNNRegressor`) gets the train x train block of the
square distance matrix to fit and the test x train block to predict, exactly as
``sklearn.model_selection.cross_val_predict`` cuts it (that is what runs when the folds
partition the records).

This is the one cross-validation loop of the package: the AiiDA ``cross_validate``
calcfunction calls :func:`cross_validate` here.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict as _sklearn_cross_val_predict

from .metrics import regression_metrics
from .models import MedianRegressor, build_model, check_target, is_precomputed
from .splits import kfold_indices

__all__ = ["cross_val_predict", "cross_validate", "fit_predict_split"]

Folds = Sequence[tuple[np.ndarray, np.ndarray]]


def _model_of(spec: Any):
    """A fresh unfitted model: built from a spec dict, or a clone of an estimator."""
    return build_model(spec) if isinstance(spec, dict) else clone(spec)


def _inputs(model: Any, X: Any, y: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array: (n, d) features or an (n, n) distance matrix, got shape {X.shape}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but the target has {y.shape[0]} values")
    if is_precomputed(model) and X.shape[0] != X.shape[1]:
        raise ValueError(f"a kNN model needs the square (n, n) distance matrix of all records, got {X.shape}")
    return X


def _folds(n: int, n_splits: int, seed: int | None, folds: Folds | None) -> list[tuple[np.ndarray, np.ndarray]]:
    if folds is None:
        return kfold_indices(n, n_splits, seed)
    out = [(np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)) for tr, te in folds]
    if not out:
        raise ValueError("no folds given")
    tested = np.concatenate([te for _, te in out])
    if len(np.unique(tested)) != len(tested):
        raise ValueError("a record is in more than one test fold")
    if tested.size and (tested.min() < 0 or tested.max() >= n):
        raise ValueError(f"fold indices must be in [0, {n}), got {tested.min()}..{tested.max()}")
    return out


def _is_partition(folds: list[tuple[np.ndarray, np.ndarray]], n: int) -> bool:
    return sum(len(te) for _, te in folds) == n


def fit_predict_split(spec: Any, X: Any, y: Any, train: np.ndarray, test: np.ndarray):
    """Fit ``spec`` on the ``train`` records and predict the ``test`` records.

    Args:
        spec: a model spec dict (see :func:`~aiida_crystinv.learning.build_model`) or an
            estimator (cloned, not modified).
        X: (n, d) features, or an (n, n) distance matrix for a pairwise (kNN) model.
        y: (n,) targets.

    Returns:
        ``(model, predictions)``: the fitted model and (len(test),) predictions.
    """
    model = _model_of(spec)
    y = check_target(y)
    X = _inputs(model, X, y)
    train, test = np.asarray(train), np.asarray(test)
    if is_precomputed(model):
        model.fit(X[np.ix_(train, train)], y[train])
        return model, model.predict(X[np.ix_(test, train)])
    model.fit(X[train], y[train])
    return model, model.predict(X[test])


def cross_val_predict(spec: Any, X: Any, y: Any, n_splits: int = 5, seed: int | None = 0,
                      folds: Folds | None = None, n_jobs: int | None = None) -> np.ndarray:
    """Out-of-fold predictions (n,) of a model spec: ``sklearn.model_selection.
    cross_val_predict`` on seeded K folds (:func:`kfold_indices`).

    ``folds`` overrides ``n_splits``/``seed`` with explicit ``(train, test)`` pairs, which
    must put every record in exactly one test fold. ``n_jobs``: folds in parallel (joblib).
    """
    y = check_target(y)
    model = _model_of(spec)
    X = _inputs(model, X, y)
    folds = _folds(len(y), n_splits, seed, folds)
    if not _is_partition(folds, len(y)):
        raise ValueError("the folds do not cover every record (each record must be in exactly one test fold); "
                         "use cross_validate for a hold-out")
    return np.asarray(_sklearn_cross_val_predict(model, X, y, cv=folds, n_jobs=n_jobs), dtype=float)


def cross_validate(spec: Any, X: Any, y: Any, n_splits: int = 5, seed: int | None = 0,
                   folds: Folds | None = None, n_jobs: int | None = None) -> dict:
    """Cross-validated (or hold-out) metrics and predictions of a model spec.

    Args:
        spec: model spec dict or estimator (cloned for every fold).
        X: (n, d) features, or the (n, n) distance matrix for a pairwise (kNN) model.
        y: (n,) targets.
        n_splits, seed: seeded K-fold (:func:`kfold_indices`) when ``folds`` is None.
        folds: explicit ``(train, test)`` index pairs; each record in at most one test
            fold, so ``[holdout_split(n, 0.2, seed)]`` is a hold-out.

    Returns:
        ``{'metrics': {'mae', 'median_ae', 'rmse', 'r2', 'n'}`` over the tested records,
        ``'predictions'``: (n,) (NaN for records in no test fold), ``'fold'``: (n,) int
        test-fold number of each record (-1: in no test fold), ``'fold_metrics'``: metrics
        of each fold, ``'baseline'``: metrics of the median of each fold's training
        targets (:class:`~aiida_crystinv.learning.MedianRegressor`) on the same records}
        (units of the target).

    Raises:
        ValueError: bad folds or inputs, a model's fit error (unchanged), or non-finite
            predictions.
    """
    y = check_target(y)
    model = _model_of(spec)
    X = _inputs(model, X, y)
    folds = _folds(len(y), n_splits, seed, folds)
    n = len(y)
    if _is_partition(folds, n):
        pred = cross_val_predict(model, X, y, folds=folds, n_jobs=n_jobs)
    else:
        pred = np.full(n, np.nan)
        for train, test in folds:
            _, pred[test] = fit_predict_split(model, X, y, train, test)
    fold = np.full(n, -1, dtype=np.int64)
    base = np.full(n, np.nan)
    for number, (train, test) in enumerate(folds):
        fold[test] = number
        base[test] = MedianRegressor().fit(np.zeros((len(train), 1)), y[train]).predict(np.zeros((len(test), 1)))
    tested = np.flatnonzero(fold >= 0)
    bad = tested[~np.isfinite(pred[tested])]
    if bad.size:
        raise ValueError(f"the model predicted NaN or infinite values for {bad.size} record(s) (first: record {bad[0]})")
    return {
        "metrics": regression_metrics(y[tested], pred[tested]),
        "predictions": pred,
        "fold": fold,
        "fold_metrics": [regression_metrics(y[te], pred[te]) for _, te in folds],
        "baseline": regression_metrics(y[tested], base[tested]),
    }
