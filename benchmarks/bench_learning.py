"""Benchmark: energy and modulus models on invariants against the notebook baseline.

For each dataset the same seeded 5-fold split is used by every model. Each model picks
its hyperparameters by inner cross-validation on the outer training folds only.

Models: the documented ones (:mod:`aiida_crystinv.learning.presets` for MP), the median
predictor (its MAE in every row), and the "notebook" a user would otherwise write: AMD_100
from the ``average-minimum-distance`` package + a few pymatgen composition statistics,
standardised, scikit-learn
``KernelRidge`` (RBF) and ``KNeighborsRegressor`` tuned with ``GridSearchCV``.

The outer folds are scikit-learn's ``KFold(5, shuffle=True, random_state=0)``
(:func:`aiida_crystinv.learning.kfold_indices`).

``--sklearn-alternatives`` instead measures, under the same outer folds, the project's own
numerics against the scikit-learn estimators that could replace them (kernel ridge with
closed-form leave-one-out against ``GridSearchCV(KernelRidge)``, kNN on precomputed
distances against ``GridSearchCV(KNeighborsRegressor(metric='precomputed'))``, feature kNN
with exact leave-one-out against ``GridSearchCV(KNeighborsRegressor)``, the MAE-optimal
stack against ``StackingRegressor``): the figures quoted in the docstrings of
:mod:`aiida_crystinv.learning.models`.

One table: every model's descriptor time, training time (descriptor + one fit on all
records), 5-fold CV time and MAE, and the ratios to the notebook's kernel ridge and (MP) to
the stack of 2026-12. ``run(quick)`` returns the rows (for ``bench_daily.py``).

Usage::

    python benchmarks/bench_learning.py            # all records (about 20-30 min, 2 cores)
    python benchmarks/bench_learning.py --skip stack-2026-12   # without the former MP stack
    python benchmarks/bench_learning.py --n 300    # quick run on a subsample
    python benchmarks/bench_learning.py --only carbon24
    python benchmarks/bench_learning.py --sklearn-alternatives            # about 15 min

Needs the shared datasets in ../shared/datasets (or CRYSTINV_DATASETS); skips a dataset
whose file is missing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import DatasetMissing, load_carbon24, load_mp, load_perov5  # noqa: E402

from aiida_crystinv.learning import (  # noqa: E402
    build_model,
    cross_val_predict,
    describe,
    kfold_indices,
    regression_metrics,
)
from aiida_crystinv.learning.presets import (  # noqa: E402
    MP_BULK_DESCRIPTOR,
    bulk_modulus_model,
    bulk_modulus_stack_2026_12,
    mp_bulk_views,
)

SEED = 0
N_SPLITS = 5

#: the two KRR kernels averaged; gamma grid relative to the feature count
_KRR = {"name": "krr", "gamma_factors": [0.5, 1.0, 2.0], "alphas": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]}
_ENSEMBLE = {"name": "ensemble", "members": [dict(_KRR, kernel="laplacian"), dict(_KRR, kernel="rbf")]}

#: MP descriptor: density (7) + element_roles (k=48) + element_stats + pdd_stats (k=16)
_MP_DESC = MP_BULK_DESCRIPTOR
_mp_views = mp_bulk_views
#: the ten-member stack documented until 2026-12 (and measured against StackRegressor)
_mp_stack = bulk_modulus_stack_2026_12


MP_DEFAULT = "default: stack of 3 (KRR rbf, KRR laplacian, kNN; subset search), log10(K V)"
MP_STACK_2026_12 = "stack 2026-12: KRR lap/rbf x weighted/not + kNN, 2 views, log10(K V)"

#: dataset -> (loader, target, unit, [(descriptor, descriptor params, model label, model spec, kind)])
STUDIES = {
    "carbon24": (load_carbon24, "energy_per_atom", "eV/atom", [
        ("pdd_stats+amd", {"pdd_stats": {"k": 16}, "amd": {"k": 100}}, "KRR lap+rbf", _ENSEMBLE, "features"),
        ("amd", {"k": 100}, "kNN AMD L-inf", {"name": "knn", "k": [1, 3, 5, 10, 20], "weights": "distance"},
         "amd_linf"),
    ]),
    "perov5": (load_perov5, "heat_ref", "eV", [
        ("site_roles+element_stats+density", {}, "KRR laplacian", dict(_KRR, kernel="laplacian"), "features"),
    ]),
    "mp_binaries": (load_mp, "bulk_modulus_vrh", "GPa", [
        (_MP_DESC[0], _MP_DESC[1], MP_DEFAULT, bulk_modulus_model(), "features"),
        (_MP_DESC[0], _MP_DESC[1], MP_STACK_2026_12, bulk_modulus_stack_2026_12(), "features"),
    ]),
}


def _amd_linf(X: np.ndarray) -> np.ndarray:
    """(n, n) Chebyshev distances between AMD vectors (the project's 'amd_linf' metric)."""
    try:
        from aiida_crystinv.distances import pdist

        from scipy.spatial.distance import squareform

        return squareform(pdist(list(X), metric="amd_linf"))
    except Exception:  # the distances package is optional here
        from scipy.spatial.distance import cdist

        return cdist(X, X, metric="chebyshev")


def notebook_features(structures) -> np.ndarray:
    """What a user would write: amd.AMD (k=100) + a few pymatgen composition statistics."""
    import amd

    rows = []
    for s in structures:
        a = amd.AMD(amd.periodicset_from_pymatgen_structure(s), 100)
        comp = s.composition.fractional_composition
        els = list(comp.elements)
        w = np.array([comp[e] for e in els])
        props = np.array([[e.Z, e.X if e.X == e.X else 0.0, float(e.atomic_mass), e.row, e.group,
                           float(e.atomic_radius or 1.5)] for e in els])
        mean = w @ props
        rows.append(np.concatenate([a, mean, props.max(0) - props.min(0), [s.volume / s.num_sites]]))
    return np.array(rows)


def notebook_models(y_log: bool) -> dict:
    """The notebook's two scikit-learn models (``GridSearchCV``, 3 inner folds), by label."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def wrap(est):
        # a careful notebook standardises the target (absolute DFT energies are ~ -154 eV)
        # and fits moduli in log10
        inner = TransformedTargetRegressor(est, transformer=StandardScaler())
        if y_log:
            return TransformedTargetRegressor(inner, func=np.log10, inverse_func=lambda v: 10.0**v)
        return inner

    krr = GridSearchCV(make_pipeline(StandardScaler(), KernelRidge(kernel="rbf")),
                       {"kernelridge__alpha": [1e-3, 1e-2, 1e-1], "kernelridge__gamma": [1e-3, 1e-2, 1e-1]},
                       cv=3, scoring="neg_mean_absolute_error")
    knn = GridSearchCV(make_pipeline(StandardScaler(), KNeighborsRegressor(weights="distance")),
                       {"kneighborsregressor__n_neighbors": [1, 3, 5, 10, 20]},
                       cv=3, scoring="neg_mean_absolute_error")
    return {NOTEBOOK_KRR: wrap(krr), NOTEBOOK_KNN: wrap(knn)}


NOTEBOOK_KRR = "notebook: amd AMD_100 + composition, sklearn KernelRidge rbf (GridSearchCV)"
NOTEBOOK_KNN = "notebook: amd AMD_100 + composition, sklearn KNeighborsRegressor (GridSearchCV)"


#: short names for ``--skip``
SKIPPABLE = {"stack-2026-12": MP_STACK_2026_12, "mp-default": MP_DEFAULT, "notebook-krr": NOTEBOOK_KRR, "notebook-knn": NOTEBOOK_KNN}


def _measure(fit_all, cross_val) -> tuple[float, float, np.ndarray]:
    """(seconds of one fit on all records, seconds of the 5-fold CV, out-of-fold predictions)."""
    t0 = time.perf_counter()
    fit_all()
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = cross_val()
    return t_fit, time.perf_counter() - t0, pred


def measure(only: list[str] | None = None, n: int | None = None, plots: Path | None = None,
            skip: tuple[str, ...] = ()) -> list[dict]:
    """One row per (dataset, model), the notebook's two models included.

    Each row: ``dataset``, ``model``, ``descriptor``, ``n``, ``unit``, ``features_s`` (the
    descriptor of all records, from pymatgen structures), ``train_s`` (features + one fit on
    all records: what training the model costs), ``cv_s`` (features + the 5-fold CV),
    ``cv_mae``, ``median_ae``, ``baseline`` (median predictor MAE, same folds). Models whose
    label is in ``skip`` are left out.
    """
    rows = []
    for dataset, (loader, target, unit, studies) in STUDIES.items():
        if only and dataset not in only:
            continue
        t0 = time.perf_counter()
        try:
            ids, structures, targets = loader(n)
        except DatasetMissing as exc:
            print(f"# skipping {dataset}: {exc}", file=sys.stderr)
            continue
        y = targets[target]
        keep = np.isfinite(y)
        structures = [s for s, k in zip(structures, keep) if k]
        y = y[keep]
        print(f"# {dataset}: {len(y)} records, loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
              flush=True)
        folds = kfold_indices(len(y), N_SPLITS, SEED)
        base = np.zeros_like(y)
        for tr, te in folds:
            base[te] = np.median(y[tr])
        base_mae = regression_metrics(y, base)["mae"]

        ctx = {"dataset": dataset, "n": len(y), "unit": unit, "target": target, "baseline": base_mae}
        t0 = time.perf_counter()
        Xn = notebook_features(structures)
        t_nb = time.perf_counter() - t0
        for label, est in notebook_models(dataset == "mp_binaries").items():
            if label in skip:
                continue
            t_fit, t_cv, pred = _measure(partial(_fit_sklearn, est, Xn, y), partial(_cv_sklearn, est, Xn, y, folds))
            rows.append(_row(ctx, y, label, "amd (package amd) + pymatgen composition", t_nb, t_fit, t_cv, pred))
        features: dict = {}
        for desc, params, label, spec, kind in studies:
            if label in skip:
                continue
            key = (desc, repr(params), kind)
            if key not in features:  # a descriptor is computed once, and counted in every row using it
                t0 = time.perf_counter()
                X = describe(desc, structures, **params)
                if kind == "amd_linf":
                    X = _amd_linf(X)
                features[key] = (X, time.perf_counter() - t0)
            X, t_feat = features[key]
            t_fit, t_cv, pred = _measure(partial(_fit_ours, spec, X, y),
                                         partial(cross_val_predict, spec, X, y, folds=folds))
            rows.append(_row(ctx, y, label, desc, t_feat, t_fit, t_cv, pred))
            if plots is not None:
                from aiida_crystinv.learning import parity_plot

                plots.mkdir(parents=True, exist_ok=True)
                parity_plot(y, pred, plots / f"{dataset}_{desc.replace('+', '_')}_{kind}.png",
                            title=f"{dataset} {desc} {label}", unit=unit)
    return rows


def _row(ctx: dict, y: np.ndarray, label: str, desc: str, t_feat: float, t_fit: float, t_cv: float,
         pred: np.ndarray) -> dict:
    m = regression_metrics(y, pred)
    print(f"# {ctx['dataset']} {label}: MAE {m['mae']:.4g}; train {t_feat + t_fit:.1f} s, 5-fold CV "
          f"{t_feat + t_cv:.1f} s", file=sys.stderr, flush=True)
    return dict(ctx, model=label, descriptor=desc, features_s=t_feat, train_s=t_feat + t_fit, cv_s=t_feat + t_cv,
                cv_mae=m["mae"], median_ae=m["median_ae"])


def _fit_ours(spec: dict, X: np.ndarray, y: np.ndarray):
    return build_model(spec).fit(X, y)


def _fit_sklearn(est, X: np.ndarray, y: np.ndarray):
    from sklearn.base import clone

    return clone(est).fit(X, y)


def _cv_sklearn(est, X: np.ndarray, y: np.ndarray, folds) -> np.ndarray:
    from sklearn.base import clone

    pred = np.zeros_like(y)
    for tr, te in folds:
        pred[te] = clone(est).fit(X[tr], y[tr]).predict(X[te])
    return pred


def run(quick: bool = False) -> list[dict]:
    """Rows ``{model, n, train_s, cv_mae, unit, ...}`` of every documented model (see
    :func:`measure`) for ``bench_daily.py``. ``quick``: a seeded subsample of 400 records
    of each dataset (every model, the 2026-12 MP stack included); else every record, without
    the 2026-12 MP stack (about 10 minutes; run the script without ``--skip`` for it)."""
    warnings.filterwarnings("ignore")
    if quick:
        return measure(n=400)
    return measure(skip=(MP_STACK_2026_12,))


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _outer(estimator, X: np.ndarray, y: np.ndarray, folds) -> tuple[float, float]:
    """(seconds, MAE) of ``estimator`` under the outer folds (sklearn's cross_val_predict,
    which cuts a pairwise estimator's square matrix into blocks)."""
    from sklearn.model_selection import cross_val_predict as sk_cvp

    seconds, pred = _timed(lambda: sk_cvp(estimator, X, y, cv=folds))
    return seconds, regression_metrics(y, pred)["mae"]


def sklearn_alternatives(n: int | None = None, n_mp: int = 1000) -> list[dict]:
    """Own numerics against their scikit-learn replacements, same outer 5-fold CV.

    Carbon-24 (all records, or a subsample of ``n``): kernel ridge (Laplacian, the benchmark's 18-point grid) with
    closed-form leave-one-out, and with our 5-fold inner search, against
    ``GridSearchCV(StandardScaler + KernelRidge, cv=KFold(5, shuffle=True, random_state=0))``
    (centred target, as ours); kNN on AMD L-inf distances against ``GridSearchCV(
    KNeighborsRegressor(metric='precomputed'))`` with the same inner folds; feature kNN
    (exact leave-one-out) against ``GridSearchCV(KNeighborsRegressor)`` (5-fold).
    MP bulk modulus (seeded subsample of ``n_mp``): the benchmark's stack against
    ``StackingRegressor`` of the same members (each on its column view) with a
    non-negative least-squares blend (``LinearRegression(positive=True, fit_intercept=False)``).
    """
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.ensemble import StackingRegressor
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    inner = KFold(N_SPLITS, shuffle=True, random_state=0)
    rows = []

    def row(dataset, what, ours, theirs, note=""):
        rows.append({"dataset": dataset, "what": what, "ours_s": ours[0], "ours_mae": ours[1],
                     "sk_s": theirs[0], "sk_mae": theirs[1], "note": note})
        print(f"# {dataset} {what}: ours {ours[0]:.1f} s MAE {ours[1]:.5g}; scikit-learn {theirs[0]:.1f} s "
              f"MAE {theirs[1]:.5g} {note}", file=sys.stderr, flush=True)

    try:
        _, structures, targets = load_carbon24(n)
    except DatasetMissing as exc:
        print(f"# skipping carbon24: {exc}", file=sys.stderr)
    else:
        y = targets["energy_per_atom"]
        folds = kfold_indices(len(y), N_SPLITS, SEED)
        X = describe("pdd_stats+amd", structures, pdd_stats={"k": 16}, amd={"k": 100})
        krr = dict(_KRR, kernel="laplacian")
        gammas = [g / X.shape[1] for g in krr["gamma_factors"]]
        sk_krr = GridSearchCV(
            TransformedTargetRegressor(make_pipeline(StandardScaler(), KernelRidge(kernel="laplacian")),
                                       transformer=StandardScaler(with_std=False)),
            {"regressor__kernelridge__alpha": krr["alphas"], "regressor__kernelridge__gamma": gammas},
            cv=inner, scoring="neg_mean_absolute_error")
        theirs = _outer(sk_krr, X, y, folds)
        row("carbon24", "KRR laplacian, closed-form LOO (ours) vs GridSearchCV(KernelRidge, 5-fold)",
            _outer(build_model(krr), X, y, folds), theirs)
        row("carbon24", "KRR laplacian, our 5-fold inner search vs GridSearchCV(KernelRidge, same folds)",
            _outer(build_model(dict(krr, cv=N_SPLITS)), X, y, folds), theirs)
        # one KernelRidge fit at the size of a leave-one-out fit, to extrapolate sklearn's LOO search
        tr = folds[0][0]
        one, _ = _timed(lambda: make_pipeline(StandardScaler(), KernelRidge(alpha=1e-3, kernel="laplacian",
                                                                            gamma=gammas[0])).fit(X[tr], y[tr]))
        rows[-2]["note"] = (f"GridSearchCV(cv=LeaveOneOut()) would need {len(tr)} x 18 = {18 * len(tr)} fits per "
                            f"outer fold at {one:.2f} s each: about {5 * 18 * len(tr) * one / 60:.0f} min")
        ks = [1, 3, 5, 10, 20]
        D = _amd_linf(describe("amd", structures, k=100))
        sk_knn = GridSearchCV(KNeighborsRegressor(weights="distance", metric="precomputed"), {"n_neighbors": ks},
                              cv=inner, scoring="neg_mean_absolute_error")
        row("carbon24", "kNN on AMD L-inf, k by 5-fold (ours) vs GridSearchCV(KNeighborsRegressor precomputed)",
            _outer(build_model({"name": "knn", "k": ks, "weights": "distance"}), D, y, folds),
            _outer(sk_knn, D, y, folds))
        sk_fknn = GridSearchCV(make_pipeline(StandardScaler(), KNeighborsRegressor(weights="distance",
                                                                                   metric="manhattan")),
                               {"kneighborsregressor__n_neighbors": ks}, cv=inner, scoring="neg_mean_absolute_error")
        row("carbon24", "feature kNN (L1), k by exact LOO (ours) vs GridSearchCV(KNeighborsRegressor, 5-fold)",
            _outer(build_model({"name": "knn_features", "k": ks}), X, y, folds), _outer(sk_fknn, X, y, folds))
    try:
        _, structures, targets = load_mp(n_mp)
    except DatasetMissing as exc:
        print(f"# skipping mp_binaries: {exc}", file=sys.stderr)
        return rows
    y = targets["bulk_modulus_vrh"]
    keep = np.isfinite(y)
    structures = [s for s, k in zip(structures, keep) if k]
    y = y[keep]
    folds = kfold_indices(len(y), N_SPLITS, SEED)
    X = describe(_MP_DESC[0], structures, **_MP_DESC[1])
    spec = _mp_stack()
    members = []
    for i, m in enumerate(spec["members"]):
        m = dict(m)
        cols = np.concatenate([np.arange(a, b) for a, b in m.pop("columns")])
        view = ColumnTransformer([("view", "passthrough", cols)])
        members.append((f"m{i}", make_pipeline(view, build_model(m))))
    sk_stack = StackingRegressor(members, final_estimator=LinearRegression(positive=True, fit_intercept=False),
                                 cv=inner)
    row(f"mp_binaries (n={len(y)})", "stack: MAE-optimal simplex blend on closed-form inner predictions (ours) vs "
        "StackingRegressor (5-fold refits, non-negative least squares)",
        _outer(build_model(spec), X, y, folds), _outer(sk_stack, X, y, folds))
    return rows


def print_alternatives(rows: list[dict]) -> None:
    head = ["dataset", "comparison", "ours: time (s)", "ours: MAE", "scikit-learn: time (s)", "scikit-learn: MAE",
            "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([r["dataset"], r["what"], f"{r['ours_s']:.1f}", f"{r['ours_mae']:.5g}",
                                        f"{r['sk_s']:.1f}", f"{r['sk_mae']:.5g}", r["note"]]) + " |")
    print("\n".join(lines))


def print_table(rows: list[dict]) -> None:
    """One table: every model with its training time, 5-fold CV MAE and the ratios to the
    notebook's kernel ridge (the baseline) and, on MP, to the 2026-12 stack."""
    ref = {(r["dataset"], r["model"]): r for r in rows}
    head = ["dataset", "n", "model", "features (s)", "train (s)", "5-fold CV (s)", "CV MAE", "median AE",
            "median-predictor MAE", "MAE / notebook KRR", "train time / notebook KRR", "MAE / stack 2026-12",
            "train time / stack 2026-12"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def ratio(r, label, key):
        other = ref.get((r["dataset"], label))
        return "-" if other is None or not other[key] else f"{r[key] / other[key]:.3g}"

    for r in rows:
        lines.append("| " + " | ".join([
            r["dataset"], str(r["n"]), r["model"], f"{r['features_s']:.1f}", f"{r['train_s']:.1f}",
            f"{r['cv_s']:.1f}", f"{r['cv_mae']:.4g} {r['unit']}", f"{r['median_ae']:.4g}", f"{r['baseline']:.4g}",
            ratio(r, NOTEBOOK_KRR, "cv_mae"), ratio(r, NOTEBOOK_KRR, "train_s"),
            ratio(r, MP_STACK_2026_12, "cv_mae"), ratio(r, MP_STACK_2026_12, "train_s")]) + " |")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None, help="seeded subsample of each dataset")
    parser.add_argument("--only", nargs="*", choices=list(STUDIES), help="datasets to run")
    parser.add_argument("--plots", type=Path, default=None, help="write parity plots (PNG) here")
    parser.add_argument("--skip", nargs="*", choices=list(SKIPPABLE),
                        help="models to leave out (stack-2026-12: the former MP stack, 10 minutes or more; "
                             "over 18 under load 4-6)")
    parser.add_argument("--sklearn-alternatives", action="store_true",
                        help="measure own numerics against their scikit-learn replacements instead")
    parser.add_argument("--n-mp", type=int, default=1000, help="MP subsample for --sklearn-alternatives")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    if args.sklearn_alternatives:
        print_alternatives(sklearn_alternatives(args.n, args.n_mp))
        print(f"\nwall time {time.perf_counter() - t0:.0f} s; outer {N_SPLITS}-fold CV, seed {SEED}; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
        return
    load0 = os.getloadavg()[0]
    rows = measure(args.only, args.n, args.plots, skip=tuple(SKIPPABLE[k] for k in args.skip or ()))
    print_table(rows)
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; {N_SPLITS}-fold CV, seed {SEED}, "
          f"same folds for every model; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"load average (1 min) {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
