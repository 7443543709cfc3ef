"""The demo from Python: a provenance-tracked run on a synthetic Ewald landscape.

    python examples/demo.py [N] [SEED]

Uses the default AiiDA profile (or creates the embedded SQLite profile 'crystinv' when
there is none, like the ``crystinv`` command), then prints what was stored.
"""

from __future__ import annotations

import sys

from aiida_crystinv.cli.cmd_demo import provenance_summary, run_demo
from aiida_crystinv.cli.embedded import ensure_profile


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    ensure_profile()
    result = run_demo(n=n, seed=seed, report=print)
    dataset, pdd, knn = result.nodes["dataset"], result.nodes["pdd"], result.nodes["knn"]
    print(f"\ndataset {dataset.pk}: {len(dataset)} structures, targets {dataset.target_names}")
    print(f"PDD invariants {pdd.pk}: {pdd.parameters}")
    distances, indices = knn.get_knn()
    print(f"kNN graph {knn.pk}: mean distance to the nearest neighbour {distances[:, 0].mean():.3f} A")
    print(f"near-duplicates found: {result.found_planted}/{len(result.planted)} planted")
    print(provenance_summary(result))
    print(f"wall time {result.wall_time:.1f} s")


if __name__ == "__main__":
    main()
