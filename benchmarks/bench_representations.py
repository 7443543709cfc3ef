"""Benchmark: every representation side by side, on the three shared datasets.

``--table learning`` (default): the same model family -- kNN regression on each
descriptor's distance matrix (:class:`aiida_crystinv.learning.KNNRegressor`, k picked by an
inner 5-fold CV among 1, 3, 5, 10, distance-weighted) -- under the same outer 5-fold split
(``KFold(5, shuffle=True, random_state=0)``) for every representation. The package's
invariants use their own metrics (AMD: L-inf; PDD, GRID, RDF: earth mover's distances);
every other vector uses the Euclidean distance; ``element_mover:*`` uses the composition EMD
over the embedding. Columns: MAE and the seconds spent computing the descriptor, the
distance matrix and the 5 folds of fitting and predicting (2 shared cores). The median
predictor is the baseline row.

``--table audit``: the invariance and continuity audit (aiida_crystinv.audit) of every
representation on the first ``--n-audit`` records of Perov-5 and Carbon-24 (the records the
tests audit).

``--table target``: target continuity (close pairs: the 1% closest; c for 95% of them) on
Carbon-24 energies and Perov-5 heats of formation for AMD, PDD, GRID, density and the sine
matrix.

``--table model``: model continuity: a kNN model on AMD trained on Perov-5 (with, and
without, the displaced structures in its training set), one atom of the five lowest-heat
structures displaced by growing Gaussian noise, against the Ewald energy (pymatgen) of the
same displaced structures.

``--plot-dir DIR`` writes the PNG plot of the table there.

Usage::

    python benchmarks/bench_representations.py --n 300            # learning table
    python benchmarks/bench_representations.py --table audit --n-audit 2 --plot-dir docs/img
    python benchmarks/bench_representations.py --table target --n 600 --plot-dir docs/img

Needs the shared datasets (../shared/datasets or CRYSTINV_DATASETS) and the ``repr`` extra.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _data import DatasetMissing, load_carbon24, load_mp, load_perov5  # noqa: E402

from aiida_crystinv.representations import get_descriptor  # noqa: E402

LEARNING = ("amd", "pdd", "grid", "rdf", "density", "niggli", "sine_matrix", "ewald_sum_matrix", "soap", "mbtr",
            "acsf", "embedding:mat2vec:mean", "embedding:megnet16:mean", "embedding:magpie:mean",
            "element_mover:mat2vec")
AUDIT = ("amd", "pdd", "grid", "rdf", "embedding:mat2vec:mean", "embedding:megnet16:std", "element_mover:magpie",
         "density", "soap", "mbtr", "acsf", "niggli", "sine_matrix", "ewald_sum_matrix")
TARGET = ("amd", "pdd", "grid", "density", "sine_matrix")
#: smaller dscribe settings for the learning table (56 elements in Perov-5: SOAP and MBTR
#: grow with the square of the number of species)
LEARNING_PARAMS = {"soap": {"n_max": 2, "l_max": 2}, "mbtr": {"n": 25}, "amd": {"k": 100}, "pdd": {"k": 100}}
DATASETS = {
    "carbon24": (load_carbon24, "energy_per_atom", "eV/atom"),
    "perov5": (load_perov5, "heat_ref", "eV"),
    "mp_binaries": (load_mp, "bulk_modulus_vrh", "GPa"),
}


def _learning_metric(d):
    """Each descriptor with the metric the learning table uses."""
    from dataclasses import replace

    if d.name in ("amd", "pdd", "grid", "rdf") or d.metric not in ("chebyshev", "euclidean"):
        return d
    return replace(d, metric="euclidean")


def learning_table(n: int, only: list[str] | None) -> list[dict]:
    from scipy.spatial.distance import squareform
    from sklearn.model_selection import KFold

    from aiida_crystinv.learning import KNNRegressor

    rows = []
    for ds, (loader, target, unit) in DATASETS.items():
        if only and ds not in only:
            continue
        try:
            _, structures, targets = loader(n=n, seed=0)
        except DatasetMissing as exc:
            print(f"# skipped {ds}: {exc}", file=sys.stderr)
            continue
        y = targets[target]
        keep = np.flatnonzero(np.isfinite(y))
        structures, y = [structures[i] for i in keep], y[keep]
        folds = list(KFold(5, shuffle=True, random_state=0).split(y))
        base = np.mean(np.concatenate([np.abs(y[te] - np.median(y[tr])) for tr, te in folds]))
        rows.append({"dataset": ds, "n": len(y), "representation": "median (baseline)", "mae": base, "unit": unit,
                     "t_desc": 0.0, "t_dist": 0.0, "t_fit": 0.0})
        for name in LEARNING:
            d = _learning_metric(get_descriptor(name, **LEARNING_PARAMS.get(name, {})).bind(structures))
            try:
                t0 = time.perf_counter()
                values = d.values(structures)
                t1 = time.perf_counter()
                D = squareform(d.pdist(values))
                t2 = time.perf_counter()
            except Exception as exc:  # noqa: BLE001 - a representation that fails is a row, not a crash
                rows.append({"dataset": ds, "n": len(y), "representation": name, "mae": float("nan"), "unit": unit,
                             "t_desc": float("nan"), "t_dist": float("nan"), "t_fit": float("nan"),
                             "note": f"{type(exc).__name__}: {exc}"[:80]})
                continue
            err = []
            for tr, te in folds:
                model = KNNRegressor(k=(1, 3, 5, 10), weights="distance", cv=5).fit(D[np.ix_(tr, tr)], y[tr])
                err.append(np.abs(model.predict(D[np.ix_(te, tr)]) - y[te]))
            t3 = time.perf_counter()
            rows.append({"dataset": ds, "n": len(y), "representation": name, "mae": float(np.mean(np.concatenate(err))),
                         "unit": unit, "t_desc": t1 - t0, "t_dist": t2 - t1, "t_fit": t3 - t2})
            print(f"# {ds} {name}: {rows[-1]['mae']:.4g} {unit}", file=sys.stderr)
    return rows


def print_learning(rows: list[dict]) -> None:
    print("| dataset | n | representation | MAE | unit | descriptor (s) | distances (s) | 5-fold kNN (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        note = f" ({r['note']})" if r.get("note") else ""
        print(f"| {r['dataset']} | {r['n']} | {r['representation']}{note} | {r['mae']:.4g} | {r['unit']} | "
              f"{r['t_desc']:.2f} | {r['t_dist']:.2f} | {r['t_fit']:.2f} |")


def _first_records(name: str, n: int) -> list:
    """The first ``n`` records of a shared CSV dataset (the records the tests audit)."""
    import csv
    import gzip

    from pymatgen.core import Structure

    from _data import dataset_file

    out = []
    with gzip.open(dataset_file(name), "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            if len(out) == n:
                break
            out.append(Structure.from_str(row["cif"], fmt="cif"))
    return out


def audit_table(n_audit: int, plot_dir: Path | None) -> None:
    from aiida_crystinv.audit import audit, format_table
    from aiida_crystinv.audit.plots import continuity_plot

    perov = _first_records("perov5.csv.gz", n_audit)
    carbon = _first_records("carbon24.csv.gz", n_audit)
    structures = perov + carbon
    t0 = time.perf_counter()
    rows = audit(AUDIT, structures)
    print(f"# the first {len(perov)} Perov-5 + {len(carbon)} Carbon-24 records (as tests/pure/test_audit.py), "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(format_table(rows))
    if plot_dir is not None:
        (plot_dir / "audit_continuity.png").write_bytes(continuity_plot(rows, "Perov-5 + Carbon-24"))


def target_table(n: int, plot_dir: Path | None) -> None:
    from aiida_crystinv.audit import target_continuity
    from aiida_crystinv.audit.plots import target_continuity_plot

    print("| dataset | target | n | descriptor | d | c (95%) | median dy close | median dy all | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ds in ("carbon24", "perov5"):
        loader, target, unit = DATASETS[ds]
        _, structures, targets = loader(n=n, seed=0)
        results = []
        for name in TARGET:
            r = target_continuity(get_descriptor(name, **({"k": 100} if name in ("amd", "pdd") else {})),
                                  structures, targets[target])
            results.append(r)
            print(f"| {ds} | {target} ({unit}) | {r['n']} | {name} | {r['d']:.3g} {r['unit']} | {r['c']:.3g} | "
                  f"{r['median_dy_close']:.3g} | {r['median_dy_all']:.3g} | {r['ratio']:.3f} |")
        if plot_dir is not None:
            (plot_dir / f"target_continuity_{ds}.png").write_bytes(
                target_continuity_plot(results, target, f"{ds}: {len(structures)} structures"))


def model_table(n: int, plot_dir: Path | None) -> None:
    from scipy.spatial.distance import cdist

    from aiida_crystinv.audit import model_continuity
    from aiida_crystinv.audit.plots import model_continuity_plot
    from aiida_crystinv.invariants import amd
    from aiida_crystinv.learning import KNNRegressor
    from aiida_crystinv.sources.synthetic import OxidationStateError, ewald_energy_per_atom

    _, structures, targets = load_perov5(n=n, seed=0)
    y = targets["heat_ref"]
    stable = []
    for i in np.argsort(y):
        try:
            ewald_energy_per_atom(structures[i])
        except (OxidationStateError, ValueError):
            continue
        stable.append(int(i))
        if len(stable) == 5:
            break
    X = np.array([amd(s, 100) for s in structures])
    results = {}
    for label, train in (("in training set", np.arange(len(y))),
                         ("held out", np.setdiff1d(np.arange(len(y)), stable))):
        model = KNNRegressor(k=(1, 3, 5, 10), weights="distance", cv=5).fit(cdist(X[train], X[train], "chebyshev"),
                                                                             y[train])

        def predict(xs, model=model, train=train):
            return model.predict(cdist(np.array([amd(s, 100) for s in xs]), X[train], "chebyshev"))

        results[label] = model_continuity(predict, [structures[i] for i in stable], truth=ewald_energy_per_atom)
    print(f"# kNN (k by inner CV, distance-weighted) on AMD_100 (L-inf), Perov-5 heat_ref, {len(y)} records; "
          "atom 0 of the 5 lowest-heat structures with an Ewald energy displaced, 3 draws per sigma", file=sys.stderr)
    print("| sigma (Angstrom) | mean displacement (Angstrom) | mean abs change of the kNN prediction, structures in "
          "the training set (eV) | same, structures held out (eV) | mean abs change of the Ewald energy (eV/atom) |")
    print("|---|---|---|---|---|")
    a, b = results["in training set"], results["held out"]
    for s in np.unique(a["sigma"]):
        m = a["sigma"] == s
        print(f"| {s:g} | {a['displacement'][m].mean():.3f} | {np.abs(a['delta_predicted'][m]).mean():.4f} | "
              f"{np.abs(b['delta_predicted'][m]).mean():.4f} | {np.abs(a['delta_truth'][m]).mean():.4f} |")
    if plot_dir is not None:
        (plot_dir / "model_continuity_perov5.png").write_bytes(
            model_continuity_plot(b, "kNN on AMD (Perov-5, held out) vs Ewald energy", "(eV)"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", choices=("learning", "audit", "target", "model"), default="learning")
    p.add_argument("--n", type=int, default=300, help="seeded subset size per dataset (default 300)")
    p.add_argument("--n-audit", type=int, default=2, help="first records per dataset in the audit (default 2)")
    p.add_argument("--only", action="append", choices=list(DATASETS), help="learning: only these datasets")
    p.add_argument("--plot-dir", type=Path, default=None, help="write the plot(s) of the table here")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.plot_dir is not None:
        args.plot_dir.mkdir(parents=True, exist_ok=True)
    if args.table == "learning":
        print_learning(learning_table(args.n, args.only))
    elif args.table == "audit":
        audit_table(args.n_audit, args.plot_dir)
    elif args.table == "target":
        target_table(args.n, args.plot_dir)
    else:
        model_table(args.n, args.plot_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
