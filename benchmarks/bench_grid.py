"""GRID and GRID-EMD against gridrdf (the GRID authors' package), same process, same data.

Rows (Carbon-24, a seeded random subset of ``n`` structures, default 60):

* GRID per structure (100 shells, 0.1 A bins, 10 A, 0.1 A Gaussian): ours
  :func:`aiida_crystinv.invariants.grid` against gridrdf's own pipeline
  ``extendRDF.get_pairwise_distances(num_neighbours=100)`` + ``extendRDF.calculate_rdf``;
* GRID-EMD per pair, all ``n (n - 1) / 2`` pairs, on the *same* grids (ours): ours
  :func:`aiida_crystinv.distances._profiles.grid_emd_cdist` (including its per-structure
  preprocessing) against gridrdf's ``earth_mover_distance.super_fast_EMD_matrix``
  (numba-parallel; including its cumulative sums). The two matrices are checked to agree.
* the same GRID-EMD matrix as CPU time on one thread each (a child process with
  ``NUMBA_NUM_THREADS=1``): wall-clock times of threaded code swing widely on a busy
  shared machine, CPU time per pair much less.

Numba functions of both packages are compiled (warmed up) before timing; each time is the
best of ``repeats`` runs. Usage::

    .venv/bin/python benchmarks/bench_grid.py [--n 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

GRID_KW = dict(bin_width=0.1, cutoff=10.0, n_shells=100, smearing=0.1)


def _best(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _gridrdf_grid(structure):
    from gridrdf import extendRDF

    neighbours = extendRDF.get_pairwise_distances(structure, num_neighbours=GRID_KW["n_shells"])
    return extendRDF.calculate_rdf(
        structure,
        neighbours,
        rdf_type="grid",
        max_dist=GRID_KW["cutoff"],
        bin_width=GRID_KW["bin_width"],
        smearing=GRID_KW["smearing"],
        normed=True,
        broadening_method="convolve",
    )


def _cpu_child(n: int, repeats: int, seed: int) -> dict:
    """CPU seconds of the GRID-EMD matrix, ours and gridrdf's (run with one numba thread)."""
    warnings.filterwarnings("ignore")
    from _data import load_carbon24
    from gridrdf.earth_mover_distance import super_fast_EMD_matrix

    from aiida_crystinv.distances._profiles import grid_emd_cdist
    from aiida_crystinv.invariants import grid

    _, structures, _ = load_carbon24(n, seed=seed)
    grids = np.array([grid(s, **GRID_KW) for s in structures])
    quiet = contextlib.redirect_stderr(io.StringIO())

    def cpu(fn) -> float:
        best = np.inf
        for _ in range(repeats):
            t = time.process_time()
            fn()
            best = min(best, time.process_time() - t)
        return best

    grid_emd_cdist(grids[:3], bin_width=0.1)
    with quiet:
        super_fast_EMD_matrix(grids[:3] / 0.1, 0.1)
        peer = cpu(lambda: super_fast_EMD_matrix(grids / 0.1, 0.1))
    ours = cpu(lambda: grid_emd_cdist(grids, bin_width=0.1))
    return {"n": len(grids), "ours": ours, "peer": peer}


def run(
    n: int = 60, repeats: int = 3, seed: int = 0, verbose: bool = False, cpu_row: bool = True
) -> list[tuple[str, float, float, str]]:
    """Measure and return rows ``(measure, ours, gridrdf, unit)``.

    GRID rows are milliseconds per structure, GRID-EMD rows microseconds per pair.
    ``cpu_row`` adds the single-thread CPU-time row (a child process).
    Raises ImportError when gridrdf is not installed and ``_data.DatasetMissing`` when the
    Carbon-24 file is absent.
    """
    warnings.filterwarnings("ignore")
    from _data import load_carbon24
    from gridrdf.earth_mover_distance import super_fast_EMD_matrix

    from aiida_crystinv.distances._profiles import grid_emd_cdist
    from aiida_crystinv.invariants import grid

    _, structures, _ = load_carbon24(n, seed=seed)
    n = len(structures)
    n_pairs = n * (n - 1) // 2
    quiet = contextlib.redirect_stderr(io.StringIO())  # gridrdf's tqdm progress bars

    # warm up (numba compilation, pymatgen caches) on both sides
    warm = [grid(s, **GRID_KW) for s in structures[:3]]
    grid_emd_cdist(np.array(warm), bin_width=0.1)
    with quiet:
        _gridrdf_grid(structures[0])
        super_fast_EMD_matrix(np.array(warm) / 0.1, 0.1)

    grids = np.array([grid(s, **GRID_KW) for s in structures])
    t_grid_ours = _best(lambda: [grid(s, **GRID_KW) for s in structures], repeats)
    with quiet:
        t_grid_peer = _best(lambda: [_gridrdf_grid(s) for s in structures], repeats)

    # gridrdf's GRIDs are densities (rows sum to 1 / bin_width): give it the same grids
    # in its own convention; its EMD divides by the largest cumulative value.
    peer_input = grids / GRID_KW["bin_width"]
    ours = grid_emd_cdist(grids, bin_width=0.1)
    with quiet:
        theirs = super_fast_EMD_matrix(peer_input, 0.1)
    diff = float(np.abs(ours - theirs).max())
    if diff > 1e-9:
        raise AssertionError(f"GRID-EMD matrices disagree with gridrdf by {diff:g} A")
    t_emd_ours = _best(lambda: grid_emd_cdist(grids, bin_width=0.1), repeats)
    with quiet:
        t_emd_peer = _best(lambda: super_fast_EMD_matrix(peer_input, 0.1), repeats)
    if verbose:
        print(f"max |ours - gridrdf| over the {n}x{n} GRID-EMD matrix: {diff:.2e} A")
    rows = [
        (f"GRID per structure (100 shells, 0.1 A bins, 10 A), Carbon-24 ({n}), vs gridrdf",
         t_grid_ours / n * 1e3, t_grid_peer / n * 1e3, "ms"),
        (f"GRID-EMD per pair, all {n_pairs} pairs of {n} Carbon-24 GRIDs, vs gridrdf super_fast_EMD_matrix",
         t_emd_ours / n_pairs * 1e6, t_emd_peer / n_pairs * 1e6, "us"),
    ]
    if cpu_row:
        env = dict(os.environ, NUMBA_NUM_THREADS="1")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--cpu-child", str(n), "--repeats", str(repeats),
               "--seed", str(seed)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append((f"GRID-EMD CPU time per pair, one thread each, same {n_pairs} pairs",
                     r["ours"] / n_pairs * 1e6, r["peer"] / n_pairs * 1e6, "us"))
    return rows


def print_table(rows) -> None:
    head = f"{'measure':<98} {'ours':>10} {'gridrdf':>10} {'unit':>4} {'ratio':>7}"
    print(head)
    print("-" * len(head))
    for label, ours, peer, unit in rows:
        print(f"{label:<98} {ours:10.3f} {peer:10.3f} {unit:>4} {peer / ours:7.1f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60, help="Carbon-24 structures (default 60)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the Carbon-24 subset (default 0)")
    parser.add_argument("--cpu-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cpu_child:
        print(json.dumps(_cpu_child(args.cpu_child, args.repeats, args.seed)))
        return
    rows = run(args.n, args.repeats, seed=args.seed, verbose=True)
    print("ratio = gridrdf time / our time (higher is better for us)\n")
    print_table(rows)


if __name__ == "__main__":
    main()
