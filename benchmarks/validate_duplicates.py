"""Near-duplicates by PDD-EMD threshold against pymatgen's StructureMatcher on Carbon-24.

Ours: PDD (k=100) of every Carbon-24 structure, every pair with PDD-EMD <= the default
threshold of ``crystinv duplicates`` (0.05 A), exactly (``pairs_within``).
Theirs: ``StructureMatcher()`` with its defaults (ltol 0.2, stol 0.3, angle_tol 5,
primitive_cell True, scale True; ``--scale false`` compares without normalising the
volumes), ``fit(a, b)`` on pairs.

StructureMatcher on all 2.06 million pairs is out of reach here, so it is asked about:

* every pair within RADIUS (default 0.15 A) PDD-EMD: this holds every pair we call
  duplicates and the pairs it might call duplicates that are close to ours;
* a uniform random sample of the other pairs (beyond RADIUS), to estimate how many
  duplicates it finds there (with ``scale=True`` it matches crystals that differ by a
  uniform scaling, which the invariants see as different).

Prints one table (both / only ours / only StructureMatcher, per band) and examples of the
disagreements with their PDD-EMD and StructureMatcher's RMS displacement.

Usage::

    .venv/bin/python benchmarks/validate_duplicates.py [--threshold 0.05] [--radius 0.15] [--sample 5000]
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

import numpy as np  # noqa: E402

from _data import DatasetMissing, dataset_file  # noqa: E402


def read_carbon24():
    import csv
    import gzip

    from pymatgen.core import Structure

    csv.field_size_limit(1 << 30)
    ids, structures, energies = [], [], []
    with gzip.open(dataset_file("carbon24.csv.gz"), "rt") as handle:
        for row in csv.DictReader(handle):
            ids.append(row["material_id"])
            structures.append(Structure.from_str(row["cif"], fmt="cif"))
            energies.append(float(row["energy_per_atom"]))
    return ids, structures, np.array(energies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--radius", type=float, default=0.15)
    parser.add_argument("--sample", type=int, default=5000)
    parser.add_argument("--examples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", choices=["true", "false"], default="true",
                        help="StructureMatcher's scale (true: its default, volumes normalised)")
    args = parser.parse_args()
    try:
        ids, structures, energies = read_carbon24()
    except DatasetMissing as exc:
        print(f"skipped: {exc}")
        return 0
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from aiida_crystinv.distances import pairs_within
    from aiida_crystinv.invariants import pdd

    n = len(structures)
    t0 = time.perf_counter()
    pdds = [pdd(s, 100) for s in structures]
    t_pdd = time.perf_counter() - t0
    t0 = time.perf_counter()
    i, j, d = pairs_within(pdds, args.radius)
    t_pairs = time.perf_counter() - t0
    near = {(a, b): x for a, b, x in zip(i.tolist(), j.tolist(), d.tolist())}
    matcher = StructureMatcher(scale=args.scale == "true")
    t0 = time.perf_counter()
    sm_near = {p: bool(matcher.fit(structures[p[0]], structures[p[1]])) for p in near}
    t_sm = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    far: dict[tuple[int, int], bool] = {}
    from aiida_crystinv.distances import pdd_emd

    while len(far) < args.sample:
        a, b = sorted(rng.choice(n, 2, replace=False).tolist())
        if (a, b) in near or (a, b) in far:
            continue
        far[(a, b)] = bool(matcher.fit(structures[a], structures[b]))
    ours = {p for p, x in near.items() if x <= args.threshold}
    theirs_near = {p for p, m in sm_near.items() if m}
    both = ours & theirs_near
    only_ours = ours - theirs_near
    only_sm_near = theirs_near - ours
    far_hits = [p for p, m in far.items() if m]
    n_far = n * (n - 1) // 2 - len(near)
    estimate = len(far_hits) / len(far) * n_far
    print(f"Carbon-24: {n} structures, {n * (n - 1) // 2:,} pairs; PDD k=100 in {t_pdd:.1f} s; "
          f"pairs within {args.radius} A: {len(near):,} ({t_pairs:.1f} s); StructureMatcher on them: {t_sm:.1f} s")
    print(f"threshold {args.threshold} A (PDD-EMD) vs StructureMatcher(scale={args.scale == 'true'}), other settings default")
    print("| pairs | both call duplicates | only ours | only StructureMatcher |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| PDD-EMD <= {args.radius} A (all {len(near):,}) | {len(both):,} | {len(only_ours):,} | {len(only_sm_near):,} |")
    print(f"| PDD-EMD > {args.radius} A (a random {len(far):,} of {n_far:,}) | 0 | 0 | {len(far_hits):,} "
          f"(~{estimate:,.0f} over all) |")
    agree = len(both) / max(1, len(ours | theirs_near))
    print(f"agreement within {args.radius} A: {agree:.1%} of the pairs either calls duplicates are called so by both")

    def describe(p: tuple[int, int]) -> str:
        a, b = p
        sa, sb = structures[a], structures[b]
        rms = matcher.get_rms_dist(sa, sb)
        rms_text = f"rms {rms[0]:.3f}, max {rms[1]:.3f}" if rms else "no match"
        dist = near.get(p)
        if dist is None:
            dist = pdd_emd(pdds[a], pdds[b])
        return (f"{ids[a]} ({len(sa)} atoms, {sa.volume / len(sa):.3f} A^3/atom, E {energies[a]:.4f}) vs "
                f"{ids[b]} ({len(sb)} atoms, {sb.volume / len(sb):.3f} A^3/atom, E {energies[b]:.4f}): "
                f"PDD-EMD {dist:.4f} A; StructureMatcher {rms_text}")

    for title, pairs in (("only ours", sorted(only_ours, key=lambda p: -near[p])),
                         ("only StructureMatcher (within the radius)", sorted(only_sm_near, key=lambda p: near[p])),
                         ("only StructureMatcher (beyond the radius, sampled)", far_hits)):
        print(f"\nexamples, {title}:")
        for p in pairs[: args.examples]:
            print("  " + describe(p))
    return 0


if __name__ == "__main__":
    sys.exit(main())
