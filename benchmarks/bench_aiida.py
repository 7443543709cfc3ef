"""The cost of provenance: the MP pipeline with AiiDA against the same numbers without it.

Pipeline (the 3163 Materials Project binaries of ``mp_elasticity_binaries.json.gz``):
read the file, AMD_100, PDD_100 and GRID invariants of every structure, and the exact
PDD-EMD 1-nearest-neighbour graph.

* **without AiiDA**: the pure layer -- the project's JSON reader, ``amd``/``pdd``/``grid``
  on each structure, ``distances.nearest_neighbours``;
* **with AiiDA**: the file as a ``SinglefileData``, then the calcfunctions
  ``import_dataset`` -> ``compute_invariants`` (x3) -> ``compute_neighbours``, every
  output a stored node linked to its inputs, in a fresh temporary profile.

Both sides are warm: numba kernels compiled, and the AiiDA engine imported by a
5-structure run of the same pipeline (whose nodes are not counted). Both validate every
structure (``as_crystal`` with its overlap check). Every step starts after a full
garbage collection (:func:`start_clock`), on both sides. Timings on a shared machine vary
by ~10%; run twice when in doubt.

Prints the wall time of each step both ways, the ratio (target <= 1.5), the number of
nodes created (target: a few per dataset, not per structure) and the fixed cost of one
process on the machine at that moment (a calcfunction that does nothing). The AiiDA
pipeline runs twice: one process per step (5 processes), and with the three invariants
in one ``compute_invariant_set`` process (3 processes).

Usage::

    .venv/bin/python benchmarks/bench_aiida.py                   # SQLite (core.sqlite_dos)
    .venv/bin/python benchmarks/bench_aiida.py --storage psql    # PostgreSQL 127.0.0.1:5432
    .venv/bin/python benchmarks/bench_aiida.py --storage both    # both, one table each
    .venv/bin/python benchmarks/bench_aiida.py --n 500           # a seeded subset
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from _data import DatasetMissing, dataset_file  # noqa: E402

PARAMS = {
    "amd": {"name": "amd", "k": 100},
    "pdd": {"name": "pdd", "k": 100},
    "grid": {"name": "grid"},
}


def load_bytes(n: int | None) -> tuple[bytes, str]:
    """The MP file (or a seeded subset of n records, as gzipped JSON) and its name."""
    path = dataset_file("mp_elasticity_binaries.json.gz")
    content = path.read_bytes()
    if n is None:
        return content, path.name
    import numpy as np

    records = json.loads(gzip.decompress(content))
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(records), size=min(n, len(records)), replace=False))
    return gzip.compress(json.dumps([records[i] for i in idx]).encode()), f"mp_subset_{n}.json.gz"


def start_clock() -> float:
    """``time.perf_counter()`` after a full garbage collection.

    With aiida, pymatgen and SQLAlchemy imported, ~300k objects are tracked and a full
    collection costs 0.15-0.2 s; whether one falls inside a step is chance, and it moved
    single runs by up to 0.2 s either way. Collecting before every step, on both sides,
    removes that chance without hiding what a step allocates.
    """
    gc.collect()
    return time.perf_counter()


def warm_up() -> None:
    """Compile the numba kernels so that neither side pays for it."""
    import numpy as np

    from aiida_crystinv.distances import nearest_neighbours
    from aiida_crystinv.invariants import amd, grid, pdd

    s = (np.eye(3) * 3.1, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"])
    t = (np.eye(3) * 4.0, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"])
    amd(s, 100), grid(s)
    nearest_neighbours([pdd(s, 100), pdd(t, 100), pdd(s, 100)], 1, "pdd_emd")


def run_pure(content: bytes, name: str) -> dict[str, float]:
    """The numeric work alone."""
    from aiida_crystinv.distances import nearest_neighbours
    from aiida_crystinv.invariants import amd, as_crystal, grid, pdd
    from aiida_crystinv.sources import read_bytes

    times: dict[str, float] = {}
    t = start_clock()
    result = read_bytes(content, name)
    crystals = [as_crystal(r.structure, label=r.id) for r in result.records]  # validated, as on import
    times["import"] = time.perf_counter() - t
    t = start_clock()
    [amd(c, PARAMS["amd"]["k"]) for c in crystals]
    times["AMD"] = time.perf_counter() - t
    t = start_clock()
    pdds = [pdd(c, PARAMS["pdd"]["k"]) for c in crystals]
    times["PDD"] = time.perf_counter() - t
    t = start_clock()
    [grid(c) for c in crystals]
    times["GRID"] = time.perf_counter() - t
    t = start_clock()
    nearest_neighbours(pdds, 1, "pdd_emd")
    times["PDD-EMD 1-NN"] = time.perf_counter() - t
    times["n"] = len(crystals)
    return times


def make_profile(storage: str, workdir: Path):
    """A fresh profile in ``workdir`` (and, for psql, a new database); returns a clean-up."""
    os.environ["AIIDA_PATH"] = str(workdir)
    from aiida import load_profile
    from aiida.manage.configuration import create_profile, get_config

    config = get_config(create=True)
    cleanup = lambda: None  # noqa: E731
    if storage == "sqlite":
        backend, storage_config = "core.sqlite_dos", {"filepath": str(workdir / "storage")}
    else:
        import psycopg

        db = f"crystinv_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{db}" TEMPLATE template0 ENCODING \'UTF8\'')
        backend = "core.psql_dos"
        storage_config = {
            "database_engine": "postgresql_psycopg",
            "database_hostname": "127.0.0.1",
            "database_port": 5432,
            "database_username": "postgres",
            "database_password": "",
            "database_name": db,
            "repository_uri": (workdir / "repository").as_uri(),
        }

        def cleanup():
            from aiida.manage import get_manager

            get_manager().reset_profile()
            with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    profile = create_profile(
        config, storage_backend=backend, storage_config=storage_config, name="bench", email="bench@localhost"
    )
    config.set_default_profile(profile.name)
    config.store()
    load_profile(profile.name, allow_switch=True)
    return cleanup


def run_aiida(content: bytes, name: str, batched: bool = False) -> tuple[dict[str, float], dict[str, int]]:
    """The same work as provenance-tracked calcfunctions; returns times and node counts.

    ``batched``: the three invariants in one ``compute_invariant_set`` process instead of
    three ``compute_invariants`` processes.
    """
    import io

    from aiida import orm

    from aiida_crystinv.calculations.functions import (
        compute_invariant_set,
        compute_invariants,
        compute_neighbours,
        import_dataset,
    )

    def count(cls=orm.Node) -> int:
        return orm.QueryBuilder().append(cls).count()

    before = {cls: count(cls) for cls in (orm.Node, orm.Data, orm.ProcessNode)}
    times: dict[str, float] = {}
    t = start_clock()
    file = orm.SinglefileData(io.BytesIO(content), filename=name)
    dataset = import_dataset(file=file)["dataset"]
    times["import"] = time.perf_counter() - t
    invariants = {}
    if batched:
        t = start_clock()
        results, node = compute_invariant_set.run_get_node(
            dataset=dataset, descriptors=orm.List([PARAMS[k] for k in ("amd", "pdd", "grid")])
        )
        if not node.is_finished_ok:
            raise RuntimeError(f"compute_invariant_set failed: {node.exit_message}")
        invariants = dict(results)
        times["AMD+PDD+GRID"] = time.perf_counter() - t
    for label, key in (("AMD", "amd"), ("PDD", "pdd"), ("GRID", "grid")) if not batched else ():
        t = start_clock()
        results, node = compute_invariants.run_get_node(dataset=dataset, descriptor=orm.Dict(PARAMS[key]))
        if not node.is_finished_ok:
            raise RuntimeError(f"compute_invariants {key} failed: {node.exit_message}")
        invariants[key] = results["invariants"]
        times[label] = time.perf_counter() - t
    t = start_clock()
    results, node = compute_neighbours.run_get_node(
        invariants=invariants["pdd"], k=orm.Int(1), metric=orm.Dict({"name": "pdd_emd"})
    )
    if not node.is_finished_ok:
        raise RuntimeError(f"compute_neighbours failed: {node.exit_message}")
    times["PDD-EMD 1-NN"] = time.perf_counter() - t
    times["n"] = len(dataset)
    nodes = {
        "total": count(orm.Node) - before[orm.Node],
        "data": count(orm.Data) - before[orm.Data],
        "processes": count(orm.ProcessNode) - before[orm.ProcessNode],
        "repository MB": round(
            sum(
                n.base.repository.get_object_size(f)
                for n in [dataset, *invariants.values(), results["distances"]]
                for f in n.base.repository.list_object_names()
            )
            / 2**20,
            1,
        ),
    }
    return times, nodes


def one(storage: str, n: int | None, repeat: int) -> dict:
    """Interleaved runs (pure, AiiDA, pure, AiiDA, ...); the minimum time of each step."""
    content, name = load_bytes(n)
    warm_up()
    workdir = Path(tempfile.mkdtemp(prefix=f"crystinv-bench-{storage}-"))
    cleanup = make_profile(storage, workdir)
    pures, aiidas, batches, noops = [], [], [], []
    try:
        run_aiida(*load_bytes(5))  # warm-up: import the engine, first queries (not counted)
        run_aiida(*load_bytes(5), batched=True)
        for _ in range(repeat):
            pures.append(run_pure(content, name))
            times, nodes = run_aiida(content, name)
            aiidas.append(times)
            times, nodes_batched = run_aiida(content, name, batched=True)
            batches.append(times)
            noops.append(noop_cost())
    finally:
        cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    best = lambda runs: {k: min(r[k] for r in runs) for k in runs[0]}  # noqa: E731
    return {
        "storage": storage,
        "repeat": repeat,
        "pure": best(pures),
        "aiida": best(aiidas),
        "batched": best(batches),
        "nodes": nodes,
        "nodes_batched": nodes_batched,
        "noop": min(noops),
    }


def noop_cost(calls: int = 5) -> float:
    """Seconds of one calcfunction that does nothing (the fixed cost of a process)."""
    from aiida import orm
    from aiida.engine import calcfunction

    @calcfunction
    def noop(x):
        return orm.Int(x.value + 1)

    best = float("inf")
    for _ in range(calls):
        t = time.perf_counter()
        noop(orm.Int(1))
        best = min(best, time.perf_counter() - t)
    return best


def table(res: dict) -> str:
    pure, per_step, batched = res["pure"], res["aiida"], res["batched"]
    backend = {"sqlite": "SQLite (core.sqlite_dos)", "psql": "PostgreSQL (core.psql_dos)"}[res["storage"]]
    inv = ("AMD", "PDD", "GRID")
    lines = [
        f"storage: {backend}; {per_step['n']} structures; fastest of {res['repeat']} interleaved runs",
        "| step | without AiiDA (s) | AiiDA, one process per step (s) | ratio | AiiDA, invariants in one process (s) | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines.append(f"| import | {pure['import']:.2f} | {per_step['import']:.2f} | {per_step['import'] / pure['import']:.2f} "
                 f"| {batched['import']:.2f} | {batched['import'] / pure['import']:.2f} |")
    for step in inv:
        lines.append(f"| {step} | {pure[step]:.2f} | {per_step[step]:.2f} | {per_step[step] / pure[step]:.2f} | | |")
    p_inv, a_inv, b_inv = sum(pure[s] for s in inv), sum(per_step[s] for s in inv), batched["AMD+PDD+GRID"]
    lines.append(f"| AMD+PDD+GRID | {p_inv:.2f} | {a_inv:.2f} | {a_inv / p_inv:.2f} | {b_inv:.2f} | {b_inv / p_inv:.2f} |")
    k = "PDD-EMD 1-NN"
    lines.append(f"| {k} | {pure[k]:.2f} | {per_step[k]:.2f} | {per_step[k] / pure[k]:.2f} "
                 f"| {batched[k]:.2f} | {batched[k] / pure[k]:.2f} |")
    tp = pure["import"] + p_inv + pure[k]
    ta = per_step["import"] + a_inv + per_step[k]
    tb = batched["import"] + b_inv + batched[k]
    lines.append(f"| **total** | **{tp:.2f}** | **{ta:.2f}** | **{ta / tp:.2f}** | **{tb:.2f}** | **{tb / tp:.2f}** |")
    nodes, nb = res["nodes"], res["nodes_batched"]
    lines.append(
        f"nodes created per run: {nodes['total']} ({nodes['data']} data, {nodes['processes']} processes) one process "
        f"per step; {nb['total']} ({nb['data']} data, {nb['processes']} processes) batched; for {per_step['n']} "
        f"structures; repository {nodes['repository MB']} MB"
    )
    lines.append(f"fixed cost of one process (a calcfunction that does nothing) on this machine now: {res['noop']:.3f} s")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", choices=["sqlite", "psql", "both"], default="sqlite")
    parser.add_argument("--n", type=int, default=None, help="a seeded subset of this many structures")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs; the fastest of each step counts")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args()
    try:
        dataset_file("mp_elasticity_binaries.json.gz")
    except DatasetMissing as exc:
        print(f"skipped: {exc}")
        return 0
    if args.storage == "both":
        status = 0
        for storage in ("sqlite", "psql"):
            cmd = [sys.executable, __file__, "--storage", storage, "--repeat", str(args.repeat)]
            cmd += ["--n", str(args.n)] if args.n else []
            status |= subprocess.call(cmd)
        return status
    res = one(args.storage, args.n, max(1, args.repeat))
    print(json.dumps(res, indent=1) if args.json else table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
