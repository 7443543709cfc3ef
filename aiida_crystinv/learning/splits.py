"""Seeded data splits on top of scikit-learn: the same seed gives the same folds for every
model.

:func:`kfold_indices` is ``sklearn.model_selection.KFold(n_splits, shuffle=True,
random_state=seed)`` and :func:`holdout_split` is ``ShuffleSplit(n_splits=1,
test_size=test_fraction, random_state=seed)`` (what ``train_test_split`` uses), returned as
sorted index arrays, with error messages that say what to change. Pass ``seed`` as an int
for reproducible folds (``None`` draws fresh folds on every call).
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold, ShuffleSplit

from .errors import TooFewRecordsError

__all__ = ["kfold_indices", "fold_labels", "holdout_split"]


def _check_n(n_samples: int, n_splits: int) -> None:
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    if n_samples < n_splits:
        raise TooFewRecordsError(f"cannot split {n_samples} records into {n_splits} folds: "
                         f"need at least {n_splits} records (use fewer folds or more data)")


def kfold_indices(n_samples: int, n_splits: int = 5, seed: int | None = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded K-fold split: list of ``(train_idx, test_idx)`` (sorted int arrays).

    Exactly ``KFold(n_splits, shuffle=True, random_state=seed).split(range(n_samples))``:
    every record is in exactly one test fold; the first ``n_samples % n_splits`` folds hold
    one record more than the others.
    """
    _check_n(n_samples, n_splits)
    kfold = KFold(n_splits=int(n_splits), shuffle=True, random_state=seed)
    return [(train, test) for train, test in kfold.split(np.zeros((n_samples, 1)))]


def fold_labels(n_samples: int, n_splits: int = 5, seed: int | None = 0) -> np.ndarray:
    """(n_samples,) fold number of each record under :func:`kfold_indices` (same seed,
    same folds)."""
    labels = np.empty(n_samples, dtype=np.int64)
    for f, (_, test) in enumerate(kfold_indices(n_samples, n_splits, seed)):
        labels[test] = f
    return labels


def holdout_split(n_samples: int, test_fraction: float = 0.2, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random hold-out: ``(train_idx, test_idx)`` (sorted int arrays) with
    ``ceil(test_fraction * n_samples)`` test records, as ``train_test_split(range(n),
    test_size=test_fraction, random_state=seed)`` draws them."""
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.integer, np.floating)) \
            or not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    n_test = int(np.ceil(float(test_fraction) * n_samples))
    if n_test < 1 or n_test >= n_samples:
        raise TooFewRecordsError(f"a hold-out of {test_fraction} of {n_samples} records leaves an empty "
                         "train or test set")
    split = ShuffleSplit(n_splits=1, test_size=float(test_fraction), random_state=seed)
    train, test = next(split.split(np.zeros((n_samples, 1))))
    return np.sort(train), np.sort(test)
