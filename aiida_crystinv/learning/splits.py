"""Seeded data splits: the same seed gives the same folds for every model."""

from __future__ import annotations

import numpy as np

__all__ = ["kfold_indices", "fold_labels", "holdout_split"]


def _check_n(n_samples: int, n_splits: int) -> None:
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    if n_samples < n_splits:
        raise ValueError(f"cannot split {n_samples} records into {n_splits} folds: "
                         f"need at least {n_splits} records (use fewer folds or more data)")


def fold_labels(n_samples: int, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """(n_samples,) fold number of each record: a seeded shuffle cut into near-equal folds."""
    _check_n(n_samples, n_splits)
    perm = np.random.default_rng(seed).permutation(n_samples)
    labels = np.empty(n_samples, dtype=np.int64)
    labels[perm] = np.arange(n_samples) % n_splits
    return labels


def kfold_indices(n_samples: int, n_splits: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded K-fold split: list of ``(train_idx, test_idx)`` (sorted int arrays).

    Every record is in exactly one test fold; fold sizes differ by at most one.
    """
    labels = fold_labels(n_samples, n_splits, seed)
    return [(np.flatnonzero(labels != f), np.flatnonzero(labels == f)) for f in range(n_splits)]


def holdout_split(n_samples: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random hold-out: ``(train_idx, test_idx)`` with round(test_fraction * n) tests."""
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    n_test = int(round(test_fraction * n_samples))
    if n_test < 1 or n_test >= n_samples:
        raise ValueError(f"a hold-out of {test_fraction} of {n_samples} records leaves an empty "
                         "train or test set")
    perm = np.random.default_rng(seed).permutation(n_samples)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])
