"""Benchmark: energy and modulus models on invariants against the notebook baseline.

For each dataset the same seeded 5-fold split is used by every model. Each model picks
its hyperparameters by inner cross-validation on the outer training folds only.

Columns: our descriptor + model (MAE, median AE), the median predictor (MAE), and the
"notebook" a user would otherwise write: AMD_100 from the ``average-minimum-distance``
package + a few pymatgen composition statistics, standardised, scikit-learn
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

Usage::

    python benchmarks/bench_learning.py            # all records (about 10-15 min, 2 cores)
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

SEED = 0
N_SPLITS = 5

#: the two KRR kernels averaged; gamma grid relative to the feature count
_KRR = {"name": "krr", "gamma_factors": [0.5, 1.0, 2.0], "alphas": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]}
_ENSEMBLE = {"name": "ensemble", "members": [dict(_KRR, kernel="laplacian"), dict(_KRR, kernel="rbf")]}
_KRR_MP = dict(_KRR, alphas=[1e-3, 3e-3, 1e-2, 3e-2, 1e-1], target_transform="log10", scale_column=0)

#: MP descriptor: density (7) + element_roles (k=48) + element_stats + pdd_stats (k=16)
_MP_DESC = ("density+element_roles+element_stats+pdd_stats", {"element_roles": {"k": 48}, "pdd_stats": {"k": 16}})


def _mp_views() -> tuple[list, list]:
    """Column ranges of two views of the MP descriptor: (a) density + element_roles (AMD_48
    per role) + element_stats; (b) density + element_roles with AMD_24 per role + element_stats
    + pdd_stats."""
    from aiida_crystinv.invariants.elements import ELEMENT_PROPERTIES

    p, k, pair = len(ELEMENT_PROPERTIES), 48, 4  # pair: 2 pair distances + 2 shares per role
    role = 2 + p + k + pair
    comp = 7 + 2 * role
    a = [[0, comp + 4 * p]]
    b = [[0, 7 + 2 + p + 24], [7 + role - pair, 7 + role + 2 + p + 24], [7 + 2 * role - pair, comp + 4 * p + 4 * 16]]
    return a, b


def _mp_stack() -> dict:
    """Stack of Laplacian/RBF KRR, unweighted/``weight_power=1``, on both views, plus feature
    kNN on each view, all on log10(K V); blend weights learned inside each training fold."""
    members = []
    for cols in _mp_views():
        for kernel, gf in (("laplacian", [0.5, 1.0, 2.0]), ("rbf", [0.25, 0.5, 1.0])):
            for wp in (0.0, 1.0):
                members.append(dict(_KRR_MP, kernel=kernel, gamma_factors=gf, weight_power=wp, columns=cols))
        members.append({"name": "knn_features", "k": [1, 3, 5, 10, 20, 40], "target_transform": "log10",
                        "scale_column": 0, "columns": cols})
    return {"name": "stack", "members": members}


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
        (_MP_DESC[0], _MP_DESC[1], "stack: KRR lap/rbf x weighted/not + kNN, 2 views, log10(K V)", _mp_stack(),
         "features"),
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


def notebook_scores(Xn: np.ndarray, y: np.ndarray, folds, log_target: bool) -> tuple[float, float]:
    """(KRR MAE, kNN MAE) of the scikit-learn notebook under the same outer folds."""
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
        if log_target:
            return TransformedTargetRegressor(inner, func=np.log10, inverse_func=lambda v: 10.0**v)
        return inner

    krr = GridSearchCV(make_pipeline(StandardScaler(), KernelRidge(kernel="rbf")),
                       {"kernelridge__alpha": [1e-3, 1e-2, 1e-1], "kernelridge__gamma": [1e-3, 1e-2, 1e-1]},
                       cv=3, scoring="neg_mean_absolute_error")
    knn = GridSearchCV(make_pipeline(StandardScaler(), KNeighborsRegressor(weights="distance")),
                       {"kneighborsregressor__n_neighbors": [1, 3, 5, 10, 20]},
                       cv=3, scoring="neg_mean_absolute_error")
    out = []
    for est in (krr, knn):
        pred = np.zeros_like(y)
        for tr, te in folds:
            pred[te] = wrap(est).fit(Xn[tr], y[tr]).predict(Xn[te])
        out.append(regression_metrics(y, pred)["mae"])
    return out[0], out[1]


def run(only: list[str] | None, n: int | None, plots: Path | None) -> list[dict]:
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
        t_load = time.perf_counter() - t0
        folds = kfold_indices(len(y), N_SPLITS, SEED)
        base = np.zeros_like(y)
        for tr, te in folds:
            base[te] = np.median(y[tr])
        base_mae = regression_metrics(y, base)["mae"]
        t0 = time.perf_counter()
        Xn = notebook_features(structures)
        nb_krr, nb_knn = notebook_scores(Xn, y, folds, log_target=(dataset == "mp_binaries"))
        t_notebook = time.perf_counter() - t0
        print(f"# {dataset}: {len(y)} records, loaded in {t_load:.0f} s; notebook {t_notebook:.0f} s",
              file=sys.stderr, flush=True)
        for desc, params, label, spec, kind in studies:
            t0 = time.perf_counter()
            X = describe(desc, structures, **params)
            if kind == "amd_linf":
                X = _amd_linf(X)
            pred = cross_val_predict(spec, X, y, folds=folds)
            m = regression_metrics(y, pred)
            elapsed = time.perf_counter() - t0
            rows.append({"dataset": dataset, "target": f"{target} ({unit})", "descriptor": desc, "model": label,
                         "mae": m["mae"], "median_ae": m["median_ae"], "baseline": base_mae,
                         "nb_krr": nb_krr, "nb_knn": nb_knn, "time": elapsed, "n": len(y)})
            print(f"# {dataset} {desc} {label}: MAE {m['mae']:.4g} in {elapsed:.0f} s", file=sys.stderr, flush=True)
            if plots is not None:
                from aiida_crystinv.learning import parity_plot

                plots.mkdir(parents=True, exist_ok=True)
                parity_plot(y, pred, plots / f"{dataset}_{desc.replace('+', '_')}_{kind}.png",
                            title=f"{dataset} {desc} {label}", unit=unit)
    return rows


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
    head = ["dataset", "n", "target", "descriptor", "model", "MAE", "median AE", "median-predictor MAE",
            "notebook KRR MAE", "notebook kNN MAE", "time (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["dataset"], str(r["n"]), r["target"], r["descriptor"], r["model"], f"{r['mae']:.4g}",
            f"{r['median_ae']:.4g}", f"{r['baseline']:.4g}", f"{r['nb_krr']:.4g}", f"{r['nb_knn']:.4g}",
            f"{r['time']:.0f}"]) + " |")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None, help="seeded subsample of each dataset")
    parser.add_argument("--only", nargs="*", choices=list(STUDIES), help="datasets to run")
    parser.add_argument("--plots", type=Path, default=None, help="write parity plots (PNG) here")
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
    rows = run(args.only, args.n, args.plots)
    print_table(rows)
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; {N_SPLITS}-fold CV, seed {SEED}, "
          f"same folds for every model; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


if __name__ == "__main__":
    main()
