"""Kernel ridge regression with hyperparameters chosen by closed-form leave-one-out."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.linalg
from scipy.linalg import lapack as _lapack
from scipy.spatial.distance import cdist as _cdist
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics.pairwise import euclidean_distances

from ._estimator import (
    _as_list,
    _check_cv,
    _check_transform,
    _check_X,
    _check_Xy,
    _ExportMixin,
    _mae,
    _positive_targets,
    _standardize,
    inverse_transform_target,
    transform_target,
)
from .errors import TargetError
from .splits import kfold_indices

# ---------------------------------------------------------------------------------------
# kernel ridge regression


_KERNELS = ("laplacian", "rbf")


def _pair_dist(A: np.ndarray, B: np.ndarray, kernel: str) -> np.ndarray:
    """L1 distances (laplacian) or squared Euclidean distances (rbf), (len(A), len(B))."""
    if kernel == "laplacian":
        return _cdist(A, B, metric="cityblock")
    # ||a||^2 + ||b||^2 - 2 a.b through BLAS (scikit-learn's euclidean_distances), several
    # times faster than cdist's loop; clipped at 0 against rounding
    return euclidean_distances(A, B, squared=True)


def _loo_cholesky(Kw: np.ndarray, z: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``(M^-1 z, diag(M^-1))`` for ``M = Kw + alpha I`` by one Cholesky factorisation
    (LAPACK ``potrf``, ``potrs``, ``potri``; about n^3 flops in all, against about 5 n^3
    for the eigendecomposition that serves every alpha at once).

    Kernel ridge with ridge ``alpha`` on targets ``z`` has dual coefficients ``M^-1 z``,
    hat matrix ``H = I - alpha M^-1`` and therefore leave-one-out residuals
    ``(M^-1 z)_i / (M^-1)_ii`` (the hat-matrix identity). Raises ``LinAlgError`` when
    ``M`` is not numerically positive definite.
    """
    M = np.array(Kw, dtype=np.float64, order="F", copy=True)
    M[np.diag_indices_from(M)] += alpha
    c, info = _lapack.dpotrf(M, lower=1, overwrite_a=1, clean=0)
    if info != 0:
        raise np.linalg.LinAlgError(f"kernel matrix + alpha I is not positive definite (potrf info {info})")
    sol, info = _lapack.dpotrs(c, z, lower=1)
    if info != 0:  # pragma: no cover - only for invalid arguments
        raise np.linalg.LinAlgError(f"potrs failed (info {info})")
    inv, info = _lapack.dpotri(c, lower=1, overwrite_c=1)
    if info != 0:  # pragma: no cover - a factor with a zero pivot was refused above
        raise np.linalg.LinAlgError(f"potri failed (info {info})")
    return sol, np.diag(inv).copy()


#: with at most this many alphas per gamma, leave-one-out goes by Cholesky per (gamma,
#: alpha) rather than one eigendecomposition per gamma (measured ratio here: eigh 1.46 s,
#: potrf + potri 0.30 s at n=1500, one thread)
_CHOLESKY_MAX_ALPHAS = 3


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
    (2026-12-02, 2 shared cores, one BLAS thread each side). With at most 3 alphas the
    leave-one-out search factorises ``K + alpha I`` by Cholesky for each (gamma, alpha)
    instead (about n^3 flops against about 5 n^3 for the eigendecomposition; the same
    predictions), and ``search_size`` searches the grid on a subset of the training
    records (see below): the default bulk-modulus model of
    :mod:`aiida_crystinv.learning.presets` uses both.

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
        search_size: ``None`` (default): search the (gamma, alpha) grid on all training
            records. An integer m: search it on a seeded random subset (``random_state``)
            of m training records when there are more, then fit all records at the chosen
            point and compute their inner-CV predictions there (``oof_pred_``; for
            ``cv='loo'`` one Cholesky factorisation). Costs ``len(gammas)`` m x m
            eigendecompositions plus about two n x n factorisations instead of
            ``len(gammas)`` n x n eigendecompositions. The ridge ``alpha`` of this
            formulation (``K + alpha I``, no 1/n) is a noise-to-signal ratio, so its
            optimum does not drift with the number of records; ``cv_mae_`` is then the
            subset's grid.

    Fitted attributes: ``X_fit_`` (n, d) standardised training features, ``dual_coef_``
    (n,), ``mean_``/``scale_`` (d,), ``y_mean_``, ``alpha_``, ``gamma_``, ``n_features_``,
    ``cv_mae_`` (grid of inner-CV MAE, rows gammas, columns alphas, on the search subset
    with ``search_size``), and (not exported)
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
                 weight_power: float = 0.0, search_size: int | None = None) -> None:
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
        self.search_size = search_size

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
        m = self.search_size
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 3):
            raise ValueError(f"search_size must be None or an integer >= 3, got {m!r}")
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
        solutions: dict = {}  # (gamma, alpha) -> (S K S + alpha I)^-1 S (yt - mean) of all records
        m = self.search_size
        if m is not None and len(y) > m and len(alphas) * len(gammas) > 1:
            # the grid on a seeded subset, then inner CV of all records at the chosen point
            sub = np.sort(np.random.default_rng(self.random_state).choice(len(y), size=int(m), replace=False))
            grid, _ = self._search(dist[np.ix_(sub, sub)], y[sub], yt[sub], alphas, gammas, tscale[sub], sw[sub])
            gi, ai = np.unravel_index(int(np.argmin(grid)), grid.shape)
            _, point = self._search(dist, y, yt, [alphas[ai]], [gammas[gi]], tscale, sw, solutions)
            preds = np.zeros(grid.shape + (len(y),))
            preds[gi, ai] = point[0, 0]
        elif len(alphas) * len(gammas) > 1:
            grid, preds = self._search(dist, y, yt, alphas, gammas, tscale, sw, solutions)
        else:  # nothing to choose: inner-CV predictions only where the records allow them
            try:
                grid, preds = self._search(dist, y, yt, alphas, gammas, tscale, sw, solutions)
            except ValueError:
                grid, preds = np.zeros((1, 1)), np.full((1, 1, len(y)), np.nan)
        gi, ai = np.unravel_index(int(np.argmin(grid)), grid.shape)
        gamma, alpha = gammas[gi], alphas[ai]
        # weighted ridge: (K + alpha W^-1) c = y  <=>  (S K S + alpha I) u = S y, c = S u
        y_mean = float(yt.mean()) if self.center else 0.0
        if (gamma, alpha) in solutions:  # solved already by the leave-one-out search
            dual = sw * solutions[gamma, alpha]
        else:
            K = np.exp(-gamma * dist) * sw[:, None] * sw[None, :]
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
                gammas: list[float], tscale: np.ndarray, sw: np.ndarray | None = None,
                solutions: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n_gammas, n_alphas) inner-CV mean absolute error, in target units, and the
        (n_gammas, n_alphas, n) inner-CV predictions (target units). ``sw``: square roots
        of the record weights. ``solutions``: filled with ``(gamma, alpha) -> (S K S +
        alpha I)^-1 S (yt - mean)`` where leave-one-out went by Cholesky."""
        grid = np.zeros((len(gammas), len(alphas)))
        n = len(y)
        sw = np.ones(n) if sw is None else sw
        preds = np.zeros((len(gammas), len(alphas), n))
        if self.cv == "loo":
            if n < 3:
                raise ValueError(f"KernelRidgeRegressor: {n} training records ({n} sample(s)) are too few "
                                 "for leave-one-out hyperparameter search (need 3)")
            ym = yt.mean() if self.center else 0.0
            if len(alphas) <= _CHOLESKY_MAX_ALPHAS:
                z = sw * (yt - ym)
                for gi, g in enumerate(gammas):
                    Kw = np.exp(-g * dist) * sw[:, None] * sw[None, :]
                    for ai, a in enumerate(alphas):
                        try:
                            sol, dinv = _loo_cholesky(Kw, z, a)
                        except np.linalg.LinAlgError:  # pragma: no cover - numerically singular
                            preds[gi, ai], grid[gi, ai] = np.nan, np.inf
                            continue
                        # the same leave-one-out predictions as the eigendecomposition below
                        pred = yt - sol / (sw * dinv)
                        if solutions is not None:
                            solutions[g, a] = sol
                        preds[gi, ai] = inverse_transform_target(pred, self.target_transform) / tscale
                        grid[gi, ai] = _mae(preds[gi, ai], y)
                return grid, preds
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
