"""AMD and PDD (k=100) per structure as a user calls them: from a pymatgen ``Structure``,
conversion and checks included on both sides.

Ours: ``aiida_crystinv.invariants.amd(structure, 100)`` / ``pdd(structure, 100)``.
Peer: ``amd.AMD(amd.periodicset_from_pymatgen_structure(structure), 100)`` / ``amd.PDD``.
Same structures, same process; each pass times ours then the peer over the whole dataset,
and each side keeps its best pass (wall clock, ``time.perf_counter``; ``--clock cpu`` times
the process's CPU time instead, steadier on a machine shared with other jobs).

Usage::

    .venv/bin/python benchmarks/bench_user_call.py [--repeats 5] [--quick] [--clock wall|cpu]
    .venv/bin/python benchmarks/bench_user_call.py --stages       # where the time goes
    .venv/bin/python benchmarks/bench_user_call.py --first-call   # compile / cache cost

Each invocation prints one table. ``--quick`` uses a seeded subset of 300 structures of
each dataset. ``--stages`` splits one call into stages (microseconds per structure, best of
the passes, each stage timed on its own, on the structures of the fast path: fewer than 64
sites, plain species): for ours conversion (reading the ``Structure``'s
arrays), checks + LLL reduction, neighbour collection, selection + sort of the k nearest,
then AMD averaging or PDD grouping, and the Python glue (the whole call minus the stages);
for the peer its conversion, its ``nearest_neighbors`` (search and sort together) and the
rest of its call. ``--first-call`` runs fresh interpreters: import plus first call with an
empty compile cache (what a user pays once per install) and with the cache filled (every
later process), for both packages.

``run(repeats, quick)`` returns the rows of the main table as dicts (descriptor, dataset,
n, ours_ms, amd_ms, ratio) for other benchmarks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from _data import DatasetMissing, load_carbon24, load_mp  # noqa: E402

K = 100
QUICK_N = 300


#: the clock of every timing: ``time.perf_counter`` (wall) or ``time.process_time`` (CPU time
#: of the process, all threads; steadier than wall time on a machine shared with other jobs)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = CLOCKS["wall"]


def best_time(function, structures, repeats: int) -> float:
    """Best seconds per structure over ``repeats`` passes (the clock set by ``--clock``)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = _clock()
        for s in structures:
            function(s)
        best = min(best, _clock() - t0)
    return best / len(structures)


def load_sets(quick: bool) -> dict[str, list]:
    """{dataset name: list of pymatgen Structures} (raises DatasetMissing)."""
    n = QUICK_N if quick else None
    return {"Carbon-24": load_carbon24(n)[1], "MP elasticity": load_mp(n)[1]}


def _calls():
    import amd as peer

    from aiida_crystinv.invariants import amd, pdd

    return {
        f"AMD k={K}": (lambda s: amd(s, K), lambda s: peer.AMD(peer.periodicset_from_pymatgen_structure(s), K)),
        f"PDD k={K}": (lambda s: pdd(s, K), lambda s: peer.PDD(peer.periodicset_from_pymatgen_structure(s), K)),
    }


def run(repeats: int, quick: bool, sets: dict[str, list] | None = None, clock: str = "wall") -> list[dict]:
    """Time both sides; one dict per (descriptor, dataset).

    Raises ImportError without the peer and DatasetMissing without the data.
    """
    global _clock
    _clock = CLOCKS[clock]
    sets = load_sets(quick) if sets is None else sets
    rows = []
    for name, (ours, theirs) in _calls().items():
        for data, structures in sets.items():
            ours(structures[0]), theirs(structures[0])  # compiled kernels loaded before timing
            best_ours = best_theirs = float("inf")
            for _ in range(repeats):  # alternate the sides pass by pass: both see the same load
                best_ours = min(best_ours, best_time(ours, structures, 1))
                best_theirs = min(best_theirs, best_time(theirs, structures, 1))
            rows.append({
                "descriptor": name, "dataset": data, "n": len(structures),
                "ours_ms": best_ours * 1e3, "amd_ms": best_theirs * 1e3, "ratio": best_ours / best_theirs,
            })
    return rows


def stages(repeats: int, quick: bool, sets: dict[str, list] | None = None, clock: str = "wall") -> list[dict]:
    """Per-stage microseconds per structure (best pass of each stage timed on its own)."""
    global _clock
    _clock = CLOCKS[clock]
    import numpy as np
    from amd import PDD, periodicset_from_pymatgen_structure
    from amd._nearest_neighbors import nearest_neighbors

    from aiida_crystinv.invariants import amd, pdd
    from aiida_crystinv.invariants._crystal import MIN_SEPARATION, MIN_VOLUME_PER_SITE, pymatgen_arrays
    from aiida_crystinv.invariants._kernels import collapse_kernel
    from aiida_crystinv.invariants._neighbour_kernel import _collect, _prepare, _select
    from aiida_crystinv.invariants._pdd import SYMMETRY_MIN_SITES, neighbour_distances

    sets = load_sets(quick) if sets is None else sets
    out = []
    for data, structures in sets.items():
        arrays = [pymatgen_arrays(s, SYMMETRY_MIN_SITES - 1) for s in structures]
        keep = [i for i, a in enumerate(arrays) if a is not None]  # the structures of the fast path
        structures = [structures[i] for i in keep]
        arrays = [arrays[i] for i in keep]
        rows = [np.arange(len(a[1])) for a in arrays]
        prepared = [_prepare(a[0], a[1], K, MIN_VOLUME_PER_SITE)[1:] for a in arrays]
        collected = [_collect(*p[:4], r, K, p[4]) for p, r in zip(prepared, rows)]
        selected = [(p, r, c) for p, r, c in zip(prepared, rows, collected)]
        nd = [neighbour_distances(s, K) for s in structures]
        psets = [periodicset_from_pymatgen_structure(s) for s in structures]
        us = lambda f, xs: best_time(f, xs, repeats) * 1e6  # noqa: E731
        ours = {
            "conversion": us(pymatgen_arrays, structures),
            "checks + LLL reduction": us(lambda a: _prepare(a[0], a[1], K, MIN_VOLUME_PER_SITE), arrays),
            "neighbour collection": us(lambda x: _collect(*x[0][:4], x[1], K, x[0][4]), list(zip(prepared, rows))),
            "selection + sort": us(lambda x: _select(*x[0][:4], x[1], K, x[0][4], *x[2], MIN_SEPARATION), selected),
            "AMD averaging": us(lambda wd: wd[0] @ wd[1], nd),
            "PDD grouping": us(lambda wd: collapse_kernel(wd[0], wd[1], 1e-4), nd),
        }
        whole_amd = us(lambda s: amd(s, K), structures)
        whole_pdd = us(lambda s: pdd(s, K), structures)
        core = sum(v for key, v in ours.items() if key not in ("AMD averaging", "PDD grouping"))
        ours["Python glue (AMD call minus the stages)"] = whole_amd - core - ours["AMD averaging"]
        ours["whole AMD call"] = whole_amd
        ours["whole PDD call"] = whole_pdd
        peer_conv = us(periodicset_from_pymatgen_structure, structures)
        peer_nn = us(lambda p: nearest_neighbors(p.motif, p.cell, p.motif, K), psets)
        peer_amd = us(lambda s: __import__("amd").AMD(periodicset_from_pymatgen_structure(s), K), structures)
        peer_pdd_from_set = us(lambda p: PDD(p, K), psets)
        theirs = {
            "conversion": peer_conv,
            "nearest_neighbors (search + sort)": peer_nn,
            "rest of AMD (weights, mean)": peer_amd - peer_conv - peer_nn,
            "rest of PDD (weights, grouping, lexsort)": peer_pdd_from_set - peer_nn,
            "whole AMD call": peer_amd,
            "whole PDD call": peer_conv + peer_pdd_from_set,
        }
        for side, table in (("ours", ours), ("amd", theirs)):
            for stage, value in table.items():
                out.append({"dataset": f"{data} ({len(structures)})", "side": side, "stage": stage, "us": value})
    return out


_FIRST_CALL = r"""
import sys, time, warnings
warnings.filterwarnings("ignore")
t0 = time.perf_counter()
from pymatgen.core import Lattice, Structure
s = Structure(Lattice.from_parameters(2.5, 4.3, 6.1, 90, 97, 90), ["C"] * 4,
              [[0, 0, 0], [0.5, 0.5, 0], [0.1, 0.6, 0.5], [0.6, 0.1, 0.5]])
t1 = time.perf_counter()
if sys.argv[1] == "ours":
    from aiida_crystinv.invariants import amd, pdd
    t2 = time.perf_counter(); amd(s, 100); pdd(s, 100); t3 = time.perf_counter()
else:
    import amd as peer
    t2 = time.perf_counter()
    peer.AMD(peer.periodicset_from_pymatgen_structure(s), 100); peer.PDD(peer.periodicset_from_pymatgen_structure(s), 100)
    t3 = time.perf_counter()
print(t2 - t1, t3 - t2)
"""


def first_call() -> list[dict]:
    """Import and first AMD + PDD call in fresh interpreters, cold and warm compile cache."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in ("ours", "amd"):
            cache = os.path.join(tmp, side)
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            for state in ("empty cache (compiles)", "cache filled by the run before"):
                res = subprocess.run([sys.executable, "-c", _FIRST_CALL, side], env=env, capture_output=True,
                                     text=True, check=True, cwd=str(HERE.parent))
                imp, call = (float(x) for x in res.stdout.split())
                out.append({"side": side, "state": state, "import_s": imp, "first_call_s": call})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="passes per side; the best counts (default 5)")
    parser.add_argument("--quick", action="store_true", help=f"a seeded subset of {QUICK_N} structures per dataset")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: time.perf_counter (default); cpu: time.process_time, the process's CPU time")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--stages", action="store_true", help="print where the time goes instead")
    what.add_argument("--first-call", action="store_true", help="print the import + first-call cost instead")
    args = parser.parse_args()
    try:
        import amd  # noqa: F401
    except ImportError:
        print("skipped: average-minimum-distance (the peer) is not installed")
        return 0
    if args.first_call:
        print("| package | numba cache | import (s) | first AMD + PDD call (s) |")
        print("| --- | --- | ---: | ---: |")
        for r in first_call():
            print(f"| {r['side']} | {r['state']} | {r['import_s']:.2f} | {r['first_call_s']:.2f} |")
        return 0
    try:
        sets = load_sets(args.quick)
    except DatasetMissing as exc:
        print(f"skipped: {exc}")
        return 0
    load = os.getloadavg()[0]
    if args.stages:
        rows = stages(args.repeats, args.quick, sets, args.clock)
        print(f"load average {load:.1f} on {os.cpu_count()} cores at the start; best of {args.repeats} passes; "
              f"{args.clock} clock")
        print("| data | side | stage | us / structure |")
        print("| --- | --- | --- | ---: |")
        for r in rows:
            print(f"| {r['dataset']} | {r['side']} | {r['stage']} | {r['us']:.1f} |")
        return 0
    rows = run(args.repeats, args.quick, sets, args.clock)
    print(f"load average {load:.1f} on {os.cpu_count()} cores at the start; best of {args.repeats} passes; "
          f"{args.clock} clock")
    print("| invariant, from a pymatgen Structure | data | ours (ms/structure) | amd (ms/structure) | ours / amd |")
    print("| --- | --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['descriptor']} | {r['dataset']} ({r['n']}) | {r['ours_ms']:.3f} | {r['amd_ms']:.3f} | {r['ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
