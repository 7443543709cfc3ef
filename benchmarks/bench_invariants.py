"""Invariant core against its peers, same process, same data.

Prints one table: AMD / PDD per structure against ``average-minimum-distance`` (amd),
PDD-EMD per pair against ``amd.PDD_pdist``, the exact PDD-EMD 1-nearest-neighbour search of
all Carbon-24 structures against brute force with the peer, GRID and GRID-EMD against
``gridrdf`` (rows from ``bench_grid.py``), and the peak memory of a 10,000-structure
PDD-EMD neighbour search (run in a child process so its peak is its own).

Usage::

    .venv/bin/python benchmarks/bench_invariants.py            # everything (~5 min)
    .venv/bin/python benchmarks/bench_invariants.py --quick    # smaller samples
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from _data import load_carbon24, load_mp, load_perov5  # noqa: E402

from aiida_crystinv.distances import nearest_neighbours, pdist  # noqa: E402
from aiida_crystinv.invariants import amd, as_crystal, pdd  # noqa: E402


def timed(fn, *args, repeat: int = 1, **kw):
    best = np.inf
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args, **kw)
        best = min(best, time.perf_counter() - t)
    return best, out


def per_structure_rows(name: str, structures, k: int = 100):
    import amd as peer

    crystals = [as_crystal(s) for s in structures]
    psets = [peer.periodicset_from_pymatgen_structure(s) for s in structures]
    # warm both (numba compilation)
    amd(crystals[0], k), pdd(crystals[0], k), peer.AMD(psets[0], k), peer.PDD(psets[0], k)
    rows = []
    n = len(crystals)
    for label, ours, theirs in (
        ("AMD", lambda: [amd(c, k) for c in crystals], lambda: [peer.AMD(p, k) for p in psets]),
        ("PDD", lambda: [pdd(c, k) for c in crystals], lambda: [peer.PDD(p, k) for p in psets]),
    ):
        t_ours, _ = timed(ours, repeat=2)
        t_peer, _ = timed(theirs, repeat=2)
        rows.append((f"{label} k={k} per structure, {name} ({n})", t_ours / n * 1e3, t_peer / n * 1e3, "ms", ">= 1"))
    return rows


def emd_rows(pdds_ours, pdds_peer, n_pairs_set: int = 300):
    import amd as peer

    a, b = pdds_ours[:n_pairs_set], pdds_peer[:n_pairs_set]
    pdist(a[:5]), peer.PDD_pdist(b[:5])
    t_ours, d_ours = timed(pdist, a)
    t_peer, d_peer = timed(peer.PDD_pdist, b)
    npairs = len(d_ours)
    assert np.abs(d_ours - d_peer).max() < 1e-6, "EMDs disagree with the peer"
    return [(f"PDD-EMD per pair (pdist, {n_pairs_set} Carbon-24)", t_ours / npairs * 1e6, t_peer / npairs * 1e6, "us", ">= 3")]


def knn_row(pdds_ours, pdds_peer):
    import amd as peer

    n = len(pdds_ours)
    nearest_neighbours(pdds_ours[:20], 1)
    t_ours, (d, i, frac) = timed(nearest_neighbours, pdds_ours, 1, return_stats=True)
    t_peer, cond = timed(peer.PDD_pdist, pdds_peer)
    from scipy.spatial.distance import squareform

    full = squareform(cond)
    np.fill_diagonal(full, np.inf)
    ref = full.min(1)
    # same answer as brute force: our neighbour is at the brute-force minimum distance
    assert np.abs(d[:, 0] - ref).max() < 1e-6, "pruned search differs from brute force"
    agree = float(np.mean(i[:, 0] == full.argmin(1)))
    return [(f"exact PDD-EMD 1-NN of all {n} Carbon-24 ({frac:.1%} of EMDs evaluated; "
             f"distances = brute force, same index {agree:.1%}, rest exact ties)", t_ours, t_peer, "s", ">= 10")]


def memory_child(n: int) -> dict:
    """Runs in a child process: PDDs of n structures and their exact 1-NN graph."""
    import resource

    _, s1, _ = load_carbon24()
    _, s2, _ = load_mp()
    _, s3, _ = load_perov5()
    structures = (s1 + s2 + s3)
    np.random.seed(0)  # Structure.perturb draws from numpy's global generator
    while len(structures) < n:  # top up with perturbed copies (0.05 A) of Carbon-24 structures
        structures.append(s1[len(structures) % len(s1)].copy().perturb(0.05))
    structures = structures[:n]
    t = time.perf_counter()
    pdds = [pdd(s, 100) for s in structures]
    t_pdd = time.perf_counter() - t
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    d, i, frac = nearest_neighbours(pdds, 1, return_stats=True)
    t_knn = time.perf_counter() - t
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pdd_mb = sum(p.nbytes for p in pdds) / 2 ** 20
    return {"n": n, "t_pdd": t_pdd, "t_knn": t_knn, "frac": frac, "rss_before_mb": rss_before,
            "rss_peak_mb": rss_after, "pdd_mb": pdd_mb}


def memory_row(n: int):
    out = subprocess.run([sys.executable, __file__, "--memory-child", str(n)], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return [(f"exact 1-NN over {r['n']} PDDs k=100: {r['t_knn']:.1f} s, {r['frac']:.1%} of EMDs; "
             f"peak RSS {r['rss_peak_mb']:.0f} MB (PDDs {r['pdd_mb']:.0f} MB, "
             f"{r['rss_before_mb']:.0f} MB before the search)", r["t_knn"], float("nan"), "s", "bounded")]


def print_table(rows):
    head = f"{'measure':<100} {'ours':>10} {'peer':>10} {'unit':>4} {'peer/ours':>9} {'target':>8}"
    print(head)
    print("-" * len(head))
    for label, ours, peer, unit, target in rows:
        ratio = peer / ours if np.isfinite(peer) and ours > 0 else float("nan")
        peer_s = f"{peer:10.3f}" if np.isfinite(peer) else f"{'-':>10}"
        ratio_s = f"{ratio:9.1f}" if np.isfinite(ratio) else f"{'-':>9}"
        print(f"{label:<100} {ours:10.3f} {peer_s} {unit:>4} {ratio_s} {target:>8}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller samples (a few minutes less)")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memory-n", type=int, default=10_000, help="structures in the memory row")
    parser.add_argument("--skip", nargs="*", default=[], choices=["grid", "memory", "knn"], help="rows to skip")
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child)))
        return
    import amd as peer

    n_c = 300 if args.quick else None
    _, carbon, _ = load_carbon24(n_c)
    _, mp, _ = load_mp(300 if args.quick else None)
    rows = per_structure_rows("Carbon-24", carbon) + per_structure_rows("MP", mp)
    pdds_ours = [pdd(s, 100) for s in carbon]
    pdds_peer = [peer.PDD(peer.periodicset_from_pymatgen_structure(s), 100) for s in carbon]
    rows += emd_rows(pdds_ours, pdds_peer)
    if "knn" not in args.skip:
        rows += knn_row(pdds_ours, pdds_peer)
    if "grid" not in args.skip:
        try:
            import bench_grid

            rows += [(label, ours, theirs, unit, ">= 10") for label, ours, theirs, unit in bench_grid.run()]
        except ImportError as exc:
            print(f"(GRID rows skipped: {exc})", file=sys.stderr)
    if "memory" not in args.skip:
        rows += memory_row(1000 if args.quick else args.memory_n)
    print(f"\ncores: {os.cpu_count()}; times are per structure / per pair / per search; peer = "
          "average-minimum-distance for AMD, PDD, EMD and 1-NN, gridrdf for GRID\n")
    print_table(rows)


if __name__ == "__main__":
    main()
