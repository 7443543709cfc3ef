"""AMD and PDD (k=100) per structure as a user calls them: from a pymatgen ``Structure``,
conversion and checks included on both sides.

Ours: ``aiida_crystinv.invariants.amd(structure, 100)`` / ``pdd(structure, 100)``.
Peer: ``amd.AMD(amd.periodicset_from_pymatgen_structure(structure), 100)`` / ``amd.PDD``.
Same structures, same process, alternating; the best of three passes over each dataset.

Usage::

    .venv/bin/python benchmarks/bench_user_call.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from _data import DatasetMissing, load_carbon24, load_mp  # noqa: E402


def best_time(function, structures, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in structures:
            function(s)
        best = min(best, time.perf_counter() - t0)
    return best / len(structures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    try:
        import amd as peer
    except ImportError:
        print("skipped: average-minimum-distance (the peer) is not installed")
        return 0
    from aiida_crystinv.invariants import amd, pdd

    try:
        sets = {"Carbon-24": load_carbon24()[1], "MP elasticity": load_mp()[1]}
    except DatasetMissing as exc:
        print(f"skipped: {exc}")
        return 0
    calls = {
        "AMD k=100": (lambda s: amd(s, 100), lambda s: peer.AMD(peer.periodicset_from_pymatgen_structure(s), 100)),
        "PDD k=100": (lambda s: pdd(s, 100), lambda s: peer.PDD(peer.periodicset_from_pymatgen_structure(s), 100)),
    }
    print("| invariant, from a pymatgen Structure | data | ours (ms/structure) | amd (ms/structure) | ours / amd |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, (ours, theirs) in calls.items():
        for data, structures in sets.items():
            ours(structures[0]), theirs(structures[0])  # compiled kernels loaded before timing
            a = best_time(ours, structures, args.repeats)
            b = best_time(theirs, structures, args.repeats)
            print(f"| {name} | {data} ({len(structures)}) | {a * 1e3:.3f} | {b * 1e3:.3f} | {a / b:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
