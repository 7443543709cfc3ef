"""The daily-use benchmark: one table of what a user does every day, ours against a peer.

Parts (``--parts a,b,c,d``; each task runs in its own Python process, so that one task's
memory does not count for the next; the time is of the call itself, after its inputs are
loaded from ``.npy`` files, and the peak memory is that process's peak RSS, ``VmHWM``):

* **(a)** AMD and PDD (k=100) per structure from a pymatgen ``Structure`` against
  ``average-minimum-distance`` on Carbon-24 and MP: ``bench_user_call.run(repeats, quick)``.
* **(b)** near-duplicates among N crystals: PDD k=100 of every crystal, then every pair
  within ``--eps`` (0.01 Angstrom, PDD-EMD) with :func:`pairs_within` and the groups with
  :func:`duplicate_groups`. Checked on a subset (``--check-subset`` crystals: half of them
  ends of our pairs, half drawn at random) against brute force, ``amd.PDD_pdist`` over every
  pair of the subset: the pairs must be the same, and the groups the same as SciPy's
  ``connected_components`` of the brute-force pairs; the groups of all N are checked
  against ``connected_components`` of our pairs. Peer: ``amd.PDD_pdist`` (brute force), its
  time per pair on the subset times N(N-1)/2 (extrapolated, said so in the table).
* **(c)** the similarity search: ``--queries`` held-out real structures (never in the
  reference set, nor copies of them), each strained and displaced, against the N crystals;
  the k=5 nearest, exact. The reference invariants (PDD k=100, AMD from it) are computed
  once, in their own row; the search uses them. PDD-EMD: :func:`nearest_neighbours` checked
  against ``amd.PDD_cdist`` on ``--check-queries`` queries (brute force over all N, its time
  extrapolated to every query); AMD L-inf: :func:`nearest_neighbours` with ``amd_linf``
  against SciPy ``cdist`` (Chebyshev) on ``amd.PDD_to_AMD`` vectors with ``argpartition``,
  both timed on every query and compared on every query.
* **(d)** training time and MAE of each documented model: ``bench_learning.run(quick)``.

Data of (b) and (c): every real structure of ``../shared/datasets`` that parses and
validates (``_data.load_all_real``), minus the held-out queries, then seeded copies of
them (a random symmetric strain with entries uniform in +-3% and Gaussian displacements,
sigma 0.02 Angstrom per Cartesian coordinate: the generator of ``bench_scale.py``) until
there are N; N below the number of real structures: a seeded subset of them.

A task that fails is a row of the table saying why, and the script then exits with 1 (2: bad
arguments; 130: interrupted, the temporary folder removed); a part whose ``run`` function
is missing or has another signature, or whose datasets are missing, is a row saying so
(skipped). Asked for (b) or (c) without the shared datasets, the script prints
``skipped: ...`` and exits 0.

Usage::

    .venv/bin/python benchmarks/bench_daily.py --quick                 # N = 2000, small checks
    .venv/bin/python benchmarks/bench_daily.py --n 20000 100000        # the documented run
    .venv/bin/python benchmarks/bench_daily.py --parts b,c --n 20000 --json daily.json
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import signal
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

import numpy as np  # noqa: E402

from _data import DatasetMissing, dataset_file, peak_rss_mb  # noqa: E402

K_PDD = 100
STRAIN = 0.03  # as bench_scale.py: entries of the symmetric strain uniform in [-STRAIN, STRAIN]
SIGMA = 0.02  # as bench_scale.py: Angstrom, Gaussian displacement of every Cartesian coordinate
PARTS = ("a", "b", "c", "d")
AMD_TOL = 1e-7  # Angstrom: amd.EMD's simplex stops at a tolerance; its EMDs differ from POT's by up to ~5e-8


def say(text: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)




# ---------------------------------------------------------------------------- crystals on disk
def save_crystals(path: Path, crystals) -> None:
    """Cells, motifs and species of ``Crystal`` objects as one ``.npz`` (no pickle): the
    site species as indices into a table of distinct sites (JSON)."""
    table: dict[str, int] = {}
    site_index = []
    for c in crystals:
        for site in c.species:
            key = json.dumps([[el, occ] for el, occ in site])
            site_index.append(table.setdefault(key, len(table)))
    lengths = np.array([len(c.frac) for c in crystals], dtype=np.int64)
    np.savez(
        path,
        cells=np.stack([c.cell for c in crystals]) if crystals else np.empty((0, 3, 3)),
        frac=np.concatenate([c.frac for c in crystals]) if crystals else np.empty((0, 3)),
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        site_index=np.array(site_index, dtype=np.int64),
        site_table=np.array(list(table)),
    )


def load_structures(path: Path) -> list[tuple]:
    """The ``(cell, frac_coords, species)`` tuples saved by :func:`save_crystals`."""
    with np.load(path) as z:  # every array read once (z[name] reads it again on every access)
        cells, frac, offsets, site_index, site_table = (z[a] for a in ("cells", "frac", "offsets", "site_index",
                                                                        "site_table"))
    table = [[tuple(p) for p in json.loads(s)] for s in site_table]
    return [
        (cells[n], frac[offsets[n] : offsets[n + 1]], [table[s] for s in site_index[offsets[n] : offsets[n + 1]]])
        for n in range(len(offsets) - 1)
    ]


def save_pdds(path: Path, pdds) -> None:
    lengths = np.array([len(p) for p in pdds], dtype=np.int64)
    np.savez(path, rows=np.concatenate(pdds), offsets=np.concatenate([[0], np.cumsum(lengths)]))


def load_pdds(path: Path) -> list[np.ndarray]:
    with np.load(path) as z:
        rows, offsets = z["rows"], z["offsets"]
    return [rows[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def perturbed_copy(parent, rng, label: str):
    """A strained and displaced copy of the ``Crystal`` ``parent`` (redrawn while atoms
    overlap); ``(crystal, redraws)``."""
    from aiida_crystinv.invariants import InvalidStructureError, as_crystal

    species = [dict(site) for site in parent.species]
    for attempt in range(20):
        a = rng.uniform(-STRAIN, STRAIN, (3, 3))
        cell = parent.cell @ (np.eye(3) + (a + a.T) / 2)
        cart = parent.frac @ cell + rng.normal(0.0, SIGMA, parent.frac.shape)
        try:
            return as_crystal((cell, cart @ np.linalg.inv(cell), species), label=label), attempt
        except InvalidStructureError:
            continue
    raise RuntimeError(f"could not make a copy of {parent.label} without overlapping atoms in 20 draws")


# ---------------------------------------------------------------------------- tasks (child processes)
def task_build(folder: Path, cfg: dict) -> dict:
    """The N reference crystals and the held-out queries, saved as ``ref.npz``/``queries.npz``."""
    from _data import load_all_real

    from aiida_crystinv.invariants import InvalidStructureError, as_crystal

    t0 = time.perf_counter()
    real = load_all_real()
    crystals, info = [], {"sources": {}, "parse_failed": 0, "invalid": 0}
    for source, (rids, structures, failed) in real.items():
        valid = 0
        for rid, structure in zip(rids, structures):
            try:
                crystals.append(as_crystal(structure, label=f"{source}:{rid}"))
                valid += 1
            except InvalidStructureError:
                info["invalid"] += 1
        info["parse_failed"] += len(failed)
        info["sources"][source] = valid
    del real
    load_s = time.perf_counter() - t0
    n, nq = cfg["n"], cfg["queries"]
    rng = np.random.default_rng(cfg["seed"])
    if nq >= len(crystals):
        raise ValueError(f"{nq} held-out queries but only {len(crystals)} real structures")
    perm = rng.permutation(len(crystals))
    held, pool = [crystals[i] for i in perm[:nq]], [crystals[i] for i in np.sort(perm[nq:])]
    redraws = 0
    queries = []
    for c in held:
        q, r = perturbed_copy(c, rng, f"{c.label}~query")
        queries.append(q)
        redraws += r
    if n <= len(pool):
        keep = np.sort(rng.choice(len(pool), size=n, replace=False))
        ref = [pool[i] for i in keep]
        info.update(real=n, copies=0)
    else:
        ref = list(pool)
        order = rng.permutation(len(pool))
        for j in range(n - len(pool)):
            parent = pool[int(order[j % len(pool)])]
            c, r = perturbed_copy(parent, rng, f"{parent.label}~{j // len(pool) + 1}")
            ref.append(c)
            redraws += r
        info.update(real=len(pool), copies=n - len(pool))
    info.update(real_available=len(crystals), held_out=nq, redraws=redraws, load_s=load_s,
                build_s=time.perf_counter() - t0 - load_s)
    save_crystals(folder / "ref.npz", ref)
    save_crystals(folder / "queries.npz", queries)
    return info


def task_pdd(folder: Path, cfg: dict) -> dict:
    """PDD k=100 of every reference crystal and every query, as a user calls ``pdd`` on a
    ``(cell, frac_coords, species)`` tuple (validation included); AMDs from the PDDs."""
    from aiida_crystinv.invariants import pdd, pdd_to_amd

    ref = load_structures(folder / "ref.npz")
    queries = load_structures(folder / "queries.npz")
    pdd(ref[0], K_PDD)  # the compiled kernels loaded before timing
    out = {"rss_before_mb": peak_rss_mb()}
    t = time.perf_counter()
    pdds = [pdd(s, K_PDD) for s in ref]
    out["ref_pdd_s"] = time.perf_counter() - t
    t = time.perf_counter()
    amds = np.stack([pdd_to_amd(p) for p in pdds])
    out["ref_amd_s"] = time.perf_counter() - t
    t = time.perf_counter()
    qpdds = [pdd(s, K_PDD) for s in queries]
    out["query_pdd_s"] = time.perf_counter() - t
    qamds = np.stack([pdd_to_amd(p) for p in qpdds])
    save_pdds(folder / "ref_pdd.npz", pdds)
    save_pdds(folder / "query_pdd.npz", qpdds)
    np.save(folder / "ref_amd.npy", amds)
    np.save(folder / "query_amd.npy", qamds)
    lengths = np.array([len(p) for p in pdds])
    out.update(rows_mean=float(lengths.mean()), rows_max=int(lengths.max()), n=len(pdds), nq=len(qpdds))
    return out


def task_pairs(folder: Path, cfg: dict) -> dict:
    """Every pair within eps (PDD-EMD) and the groups, timed; the groups of all N against
    SciPy's connected components of the same pairs."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from aiida_crystinv.distances import duplicate_groups, pairs_within

    pdds = load_pdds(folder / "ref_pdd.npz")
    n = len(pdds)
    pairs_within(pdds[:50], cfg["eps"])  # the compiled kernels loaded before timing
    out = {"rss_before_mb": peak_rss_mb()}
    t = time.perf_counter()
    i, j, d, evaluated = pairs_within(pdds, cfg["eps"], "pdd_emd", return_stats=True)
    out["pairs_s"] = time.perf_counter() - t
    t = time.perf_counter()
    groups = duplicate_groups(n, i, j)
    out["groups_s"] = time.perf_counter() - t
    np.savez(folder / "pairs.npz", i=i, j=j, d=d)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    ours = {frozenset(g) for g in groups}
    comps: dict[int, list[int]] = {}
    for x, lab in enumerate(labels):
        comps.setdefault(int(lab), []).append(x)
    theirs = {frozenset(m) for m in comps.values() if len(m) > 1}
    out.update(n=n, pairs=int(len(i)), evaluated=int(evaluated), all_pairs=n * (n - 1) // 2, groups=len(groups),
               in_groups=int(sum(len(g) for g in groups)), largest=max((len(g) for g in groups), default=0),
               groups_equal_scipy=ours == theirs)
    return out


def task_check_pairs(folder: Path, cfg: dict) -> dict:
    """Brute force (``amd.PDD_pdist``) on a subset: same pairs, same groups as SciPy."""
    import amd
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from aiida_crystinv.distances import duplicate_groups

    pdds = load_pdds(folder / "ref_pdd.npz")
    z = np.load(folder / "pairs.npz")
    pi, pj, pd = z["i"], z["j"], z["d"]
    n, m = len(pdds), min(cfg["check_subset"], len(pdds))
    rng = np.random.default_rng(cfg["seed"] + 1)
    ends = np.unique(np.concatenate([pi, pj]))
    take = rng.choice(ends, size=min(len(ends), m // 2), replace=False) if len(ends) else np.empty(0, np.int64)
    rest = np.setdiff1d(np.arange(n), take)
    subset = np.sort(np.concatenate([take, rng.choice(rest, size=m - len(take), replace=False)])).astype(np.int64)
    sub = [np.ascontiguousarray(pdds[s]) for s in subset]
    amd.EMD(sub[0], sub[1])  # compiled before timing
    t = time.perf_counter()
    cdm = amd.PDD_pdist(sub)
    brute_s = time.perf_counter() - t
    iu, ju = np.triu_indices(m, 1)  # the order of a condensed matrix
    # amd's simplex stops at a tolerance (its EMDs differ from POT's by up to ~1e-7 A):
    # distances that close to eps are recomputed with POT's exact solver before deciding
    close = np.flatnonzero(np.abs(cdm - cfg["eps"]) <= AMD_TOL)
    for t in close:
        cdm[t] = pot_emd(sub[iu[t]], sub[ju[t]])
    hit = cdm <= cfg["eps"]
    brute = {(int(a), int(b)): float(x) for a, b, x in zip(iu[hit], ju[hit], cdm[hit])}
    position = np.full(n, -1, np.int64)
    position[subset] = np.arange(m)
    inside = (position[pi] >= 0) & (position[pj] >= 0)
    si, sj = position[pi[inside]], position[pj[inside]]
    ours = {(int(a), int(b)): float(x) for a, b, x in zip(si, sj, pd[inside])}
    common = brute.keys() & ours.keys()
    only_ours, only_brute = sorted(ours.keys() - brute.keys()), sorted(brute.keys() - ours.keys())
    near = [(a, b) for a, b in only_ours + only_brute
            if abs(cdm[a * m - a * (a + 1) // 2 + b - a - 1] - cfg["eps"]) <= AMD_TOL]
    max_dd = max((abs(brute[p] - ours[p]) for p in common), default=0.0)
    pot_dd = max((abs(pot_emd(sub[a], sub[b]) - ours[(a, b)]) for a, b in list(ours)[:500]), default=0.0)
    graph = coo_matrix((np.ones(len(brute)), ([a for a, _ in brute], [b for _, b in brute])), shape=(m, m))
    _, labels = connected_components(graph, directed=False)
    comps: dict[int, list[int]] = {}
    for x, lab in enumerate(labels):
        comps.setdefault(int(lab), []).append(x)
    scipy_groups = {frozenset(g) for g in comps.values() if len(g) > 1}
    our_groups = {frozenset(g) for g in duplicate_groups(m, si, sj)}
    return {"subset": m, "from_pairs": int(len(take)), "brute_s": brute_s, "brute_pairs": m * (m - 1) // 2,
            "pairs_brute": len(brute), "pairs_ours": len(ours), "pairs_common": len(common),
            "only_ours": len(only_ours), "only_brute": len(only_brute), "at_eps": len(near), "max_dd": max_dd,
            "pot_dd": pot_dd, "pot_checked": min(500, len(ours)), "recomputed": int(len(close)),
            "groups_brute": len(scipy_groups), "groups_equal": scipy_groups == our_groups}


def task_knn(folder: Path, cfg: dict) -> dict:
    """The k nearest references of every query, PDD-EMD, exact."""
    from aiida_crystinv.distances import nearest_neighbours

    ref = load_pdds(folder / "ref_pdd.npz")
    queries = load_pdds(folder / "query_pdd.npz")
    nearest_neighbours(ref[:50], cfg["k"], queries=queries[:2])  # the compiled kernels loaded before timing
    out = {"rss_before_mb": peak_rss_mb()}
    t = time.perf_counter()
    d, i, evaluated = nearest_neighbours(ref, cfg["k"], "pdd_emd", queries=queries, return_stats=True)
    out["search_s"] = time.perf_counter() - t
    np.savez(folder / "knn_pdd.npz", d=d, i=i)
    out.update(evaluated=float(evaluated), n=len(ref), nq=len(queries))
    return out


def pot_emd(a: np.ndarray, b: np.ndarray) -> float:
    """EMD of two PDDs with POT's exact network simplex, Chebyshev ground distance."""
    import ot
    from scipy.spatial.distance import cdist

    M = cdist(np.ascontiguousarray(a[:, 1:]), np.ascontiguousarray(b[:, 1:]), "chebyshev")
    return float(ot.emd2(np.ascontiguousarray(a[:, 0]), np.ascontiguousarray(b[:, 0]), M))


def _same_neighbours(d_ours, i_ours, d_ref, i_ref, tol: float = 1e-9) -> tuple[int, float]:
    """(queries whose k neighbours agree, max |distance difference|); at a tie within
    ``tol`` either index is accepted, as long as the distances agree."""
    ok = 0
    for q in range(len(d_ours)):
        same = np.allclose(d_ours[q], d_ref[q], rtol=0, atol=tol)
        for t in range(d_ours.shape[1]):
            if i_ours[q, t] != i_ref[q, t]:
                tied = np.abs(d_ref[q] - d_ours[q, t]) <= tol
                same = same and bool(tied.any())
        ok += same
    return ok, float(np.abs(d_ours - d_ref).max()) if d_ours.size else 0.0


def task_check_knn(folder: Path, cfg: dict) -> dict:
    """Brute force ``amd.PDD_cdist`` of the first queries against every reference."""
    import amd

    ref = [np.ascontiguousarray(p) for p in load_pdds(folder / "ref_pdd.npz")]
    queries = [np.ascontiguousarray(p) for p in load_pdds(folder / "query_pdd.npz")]
    z = np.load(folder / "knn_pdd.npz")
    m, k = min(cfg["check_queries"], len(queries)), cfg["k"]
    amd.EMD(queries[0], ref[0])
    t = time.perf_counter()
    D = amd.PDD_cdist(queries[:m], ref)
    brute_s = time.perf_counter() - t
    order = np.argsort(D, axis=1, kind="stable")[:, :k]
    ok, max_dd = _same_neighbours(z["d"][:m], z["i"][:m], np.take_along_axis(D, order, 1), order, AMD_TOL)
    pot_dd = max(abs(pot_emd(queries[q], ref[z["i"][q, t]]) - z["d"][q, t]) for q in range(m) for t in range(k))
    return {"checked": m, "agree": ok, "max_dd": max_dd, "pot_dd": pot_dd, "brute_s": brute_s, "n": len(ref),
            "nq": len(queries)}


def task_knn_amd(folder: Path, cfg: dict) -> dict:
    """The k nearest references of every query, AMD L-inf, exact (our AMDs from our PDDs)."""
    from aiida_crystinv.distances import nearest_neighbours

    ref = np.load(folder / "ref_amd.npy")
    queries = np.load(folder / "query_amd.npy")
    nearest_neighbours(ref[:50], cfg["k"], "amd_linf", queries=queries[:2])
    out = {"rss_before_mb": peak_rss_mb()}
    t = time.perf_counter()
    d, i = nearest_neighbours(ref, cfg["k"], "amd_linf", queries=queries)
    out["search_s"] = time.perf_counter() - t
    np.savez(folder / "knn_amd.npz", d=d, i=i)
    return out


def task_peer_amd(folder: Path, cfg: dict) -> dict:
    """The peer of the AMD search: ``amd.PDD_to_AMD`` of the saved PDDs, SciPy ``cdist``
    (Chebyshev) in blocks of 100 queries, ``argpartition`` + a stable sort of the k."""
    import amd
    from scipy.spatial.distance import cdist

    ref = np.stack([amd.PDD_to_AMD(p) for p in load_pdds(folder / "ref_pdd.npz")])
    queries = np.stack([amd.PDD_to_AMD(p) for p in load_pdds(folder / "query_pdd.npz")])
    k = cfg["k"]
    out = {"rss_before_mb": peak_rss_mb()}
    t = time.perf_counter()
    d_all, i_all = [], []
    for s in range(0, len(queries), 100):
        D = cdist(queries[s : s + 100], ref, "chebyshev")
        part = np.argpartition(D, k - 1, axis=1)[:, :k]
        dp = np.take_along_axis(D, part, 1)
        order = np.lexsort((part, dp), axis=1)
        i_all.append(np.take_along_axis(part, order, 1))
        d_all.append(np.take_along_axis(dp, order, 1))
    out["search_s"] = time.perf_counter() - t
    d, i = np.concatenate(d_all), np.concatenate(i_all)
    z = np.load(folder / "knn_amd.npz")
    ok, max_dd = _same_neighbours(z["d"], z["i"], d, i)
    out.update(agree=ok, nq=len(queries), max_dd=max_dd)
    return out


def _call_run(module_name: str, cfg: dict) -> list[dict]:
    """``module.run`` with the keywords it takes among ``repeats`` and ``quick``."""
    module = __import__(module_name)
    run = getattr(module, "run", None)
    if run is None:
        raise LookupError(f"{module_name}.py has no run() function yet")
    params = inspect.signature(run).parameters
    wanted = {"quick": cfg["quick"], "repeats": cfg["repeats"]}
    missing = [p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in wanted]
    if missing or "quick" not in params:
        raise LookupError(f"{module_name}.run{inspect.signature(run)} is not run(quick, ...) yet")
    return list(run(**{p: v for p, v in wanted.items() if p in params}))


def task_part_a(folder: Path, cfg: dict) -> dict:
    """``bench_user_call.run``; then ours against ``amd`` on the same structures: the
    largest AMD difference and the largest ``amd.EMD`` between the two PDDs."""
    import bench_user_call

    rows = _call_run("bench_user_call", cfg)
    out: dict = {"rows": rows}
    load_sets = getattr(bench_user_call, "load_sets", None)
    if load_sets is None:
        return out
    import amd as peer

    from aiida_crystinv.invariants import amd, pdd

    checks = {}
    for name, structures in load_sets(cfg["quick"]).items():
        amd_diff = emd = 0.0
        for s in structures:
            ps = peer.periodicset_from_pymatgen_structure(s)
            amd_diff = max(amd_diff, float(np.abs(amd(s, K_PDD) - peer.AMD(ps, K_PDD)).max()))
            emd = max(emd, float(peer.EMD(np.ascontiguousarray(pdd(s, K_PDD)), peer.PDD(ps, K_PDD))))
        checks[name] = {"n": len(structures), "amd_max_diff": amd_diff, "pdd_max_emd": emd}
    out["checks"] = checks
    return out


def task_part_d(folder: Path, cfg: dict) -> dict:
    return {"rows": _call_run("bench_learning", cfg)}


TASKS = {
    "build": task_build, "pdd": task_pdd, "pairs": task_pairs, "check_pairs": task_check_pairs,
    "knn": task_knn, "check_knn": task_check_knn, "knn_amd": task_knn_amd, "peer_amd": task_peer_amd,
    "part_a": task_part_a, "part_d": task_part_d,
}


def child_main(name: str, folder: Path, cfg: dict) -> int:
    """Run one task here; write ``<name>.json`` with its results, its peak RSS and, on a
    failure, the reason (exit code 3)."""
    try:
        out = TASKS[name](folder, cfg)
        code = 0
    except (LookupError, DatasetMissing) as exc:
        out, code = {"skipped": str(exc)}, 0
    except Exception as exc:  # noqa: BLE001 - reported in the table, not a traceback
        out, code = {"failed": f"{type(exc).__name__}: {exc}"}, 3
    out["peak_rss_mb"] = peak_rss_mb()
    (folder / f"{name}.json").write_text(json.dumps(out, default=str))
    return code


def run_task(name: str, folder: Path, cfg: dict) -> dict:
    """``name`` in a fresh Python process; its JSON answer plus the process's wall time."""
    say(f"{name} ...")
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--_task", name, "--_folder", str(folder),
                             "--_cfg", json.dumps(cfg)])
    try:
        proc.wait()
    except BaseException:  # Ctrl-C, SIGTERM: the child goes too
        proc.terminate()
        proc.wait()
        raise
    wall = time.perf_counter() - t
    path = folder / f"{name}.json"
    out = json.loads(path.read_text()) if path.exists() else {"failed": f"exit code {proc.returncode}"}
    out["process_s"] = wall
    say(f"{name}: {wall:.1f} s, peak {out.get('peak_rss_mb', float('nan')):.0f} MiB"
        + (f" -- {out.get('failed') or out.get('skipped')}" if ("failed" in out or "skipped" in out) else ""))
    return out


# ---------------------------------------------------------------------------- the table
def _s(x: float | None, unit: str = "") -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return (f"{x:.3g}" if x < 10 else f"{x:,.0f}" if x >= 1000 else f"{x:.1f}") + unit


def _row(part, task, n, ours, mem, peer="-", peer_s=None, check="-", unit=" s") -> list[str]:
    ratio = "-" if not (peer_s and ours) else f"{peer_s / ours:,.0f}" if peer_s / ours >= 100 else f"{peer_s / ours:.3g}"
    return [part, task, n, _s(ours, unit), _s(mem), peer, _s(peer_s, unit), ratio, check]


def rows_b_c(n: int, res: dict, cfg: dict) -> list[list[str]]:
    out: list[list[str]] = []
    N = f"{n:,}"
    p = res.get("pdd", {})
    if "failed" in p or "ref_pdd_s" not in p:
        return [["(b)(c)", "PDD k=100", N, "failed", "", "", "", "", p.get("failed", "")]]
    if "b" in cfg["parts"] or "c" in cfg["parts"]:
        out.append(_row("(b)(c)", f"PDD k={K_PDD} of every reference crystal, from (cell, frac, species) "
                        f"(+ AMD from it {p['ref_amd_s']:.1f} s); mean {p['rows_mean']:.1f} rows", N,
                        p["ref_pdd_s"], p["peak_rss_mb"], check="see (a)"))
    if "b" in cfg["parts"]:
        r, c = res.get("pairs", {}), res.get("check_pairs", {})
        if "pairs_s" in r:
            check = (f"subset {c.get('subset', 0):,} ({c.get('from_pairs', 0):,} ends of our pairs + random), "
                     f"amd.PDD_pdist: {c.get('pairs_common', 0)}/{c.get('pairs_brute', 0)} pairs found, "
                     f"{c.get('only_ours', '?')} extra, max diff {c.get('max_dd', float('nan')):.1g} A; "
                     f"POT on {c.get('pot_checked', 0)} of our pairs: max diff {c.get('pot_dd', float('nan')):.1g} A"
                     if "pairs_common" in c else f"check: {c.get('failed') or c.get('skipped') or 'not run'}")
            extrap = c["brute_s"] / c["brute_pairs"] * r["all_pairs"] if "brute_s" in c else None
            out.append(_row("(b)", f"all pairs within {cfg['eps']} A (PDD-EMD): {r['pairs']:,} pairs, "
                            f"{r['evaluated']:,} EMDs of {r['all_pairs']:,} pairs", N, r["pairs_s"], r["peak_rss_mb"],
                            "amd.PDD_pdist, all pairs (extrapolated from the subset)", extrap, check))
            gcheck = ("= SciPy connected_components of the same pairs" if r["groups_equal_scipy"] else
                      "DIFFERENT from SciPy connected_components")
            if "groups_equal" in c:
                gcheck += ("; subset groups = SciPy components of the brute-force pairs" if c["groups_equal"]
                           else "; subset groups DIFFER from the brute-force components")
            out.append(_row("(b)", f"duplicate groups: {r['groups']:,} groups, {r['in_groups']:,} crystals, "
                            f"largest {r['largest']}", N, r["groups_s"], r["peak_rss_mb"], check=gcheck))
        else:
            out.append(["(b)", "pairs within eps", N, "failed", "", "", "", "", r.get("failed", "")])
    if "c" in cfg["parts"]:
        q, c = res.get("knn", {}), res.get("check_knn", {})
        nq = p["nq"]
        out.append(_row("(c)", f"PDD k={K_PDD} of the {nq:,} queries", f"{nq:,}", p["query_pdd_s"], p["peak_rss_mb"]))
        if "search_s" in q:
            check = (f"{c['agree']}/{c['checked']} queries: same {cfg['k']} neighbours as amd.PDD_cdist (all {n:,}), "
                     f"max diff {c['max_dd']:.1g} A (POT on ours: {c['pot_dd']:.1g} A)" if "agree" in c else
                     f"check: {c.get('failed') or c.get('skipped') or 'not run'}")
            extrap = c["brute_s"] / c["checked"] * nq if "brute_s" in c else None
            out.append(_row("(c)", f"{nq:,} queries x {n:,}, k={cfg['k']}, PDD-EMD, exact "
                            f"({q['evaluated']:.2%} of pairs evaluated)", N, q["search_s"], q["peak_rss_mb"],
                            f"amd.PDD_cdist brute force (extrapolated from {c.get('checked', 0)} queries)", extrap,
                            check))
        else:
            out.append(["(c)", "PDD-EMD search", N, "failed", "", "", "", "", q.get("failed", "")])
        a, pa = res.get("knn_amd", {}), res.get("peer_amd", {})
        if "search_s" in a:
            check = (f"{pa['agree']}/{pa['nq']} queries: same {cfg['k']} neighbours as SciPy, max diff "
                     f"{pa['max_dd']:.1g} A" if "agree" in pa else f"check: {pa.get('failed', 'not run')}")
            out.append(_row("(c)", f"{nq:,} queries x {n:,}, k={cfg['k']}, AMD L-inf, exact", N, a["search_s"],
                            a["peak_rss_mb"], f"SciPy cdist + argpartition (peak {_s(pa.get('peak_rss_mb'))} MiB)",
                            pa.get("search_s"), check))
    return out


def rows_a(res: dict) -> list[list[str]]:
    """``bench_user_call.run`` rows: descriptor, dataset, n, ours_ms, amd_ms (per structure)."""
    rows = res.get("rows", [])
    if not rows or not all({"descriptor", "dataset", "n", "ours_ms", "amd_ms"} <= r.keys() for r in rows):
        return _generic_rows("(a)", res)
    checks = res.get("checks", {})

    def check(r: dict) -> str:
        c = checks.get(r["dataset"])
        if c is None:
            return "not checked here"
        if r["descriptor"].startswith("AMD"):
            return f"all {c['n']:,}: max diff from amd.AMD {c['amd_max_diff']:.1g} A"
        return f"all {c['n']:,}: max amd.EMD(ours, amd.PDD) {c['pdd_max_emd']:.1g} A"

    return [_row("(a)", f"{r['descriptor']} per structure from a pymatgen Structure, {r['dataset']} (best pass)",
                 f"{r['n']:,}", r["ours_ms"], res.get("peak_rss_mb"), "amd.AMD / amd.PDD (same structures)",
                 r["amd_ms"], check(r), unit=" ms") for r in rows]


def rows_d(res: dict) -> list[list[str]]:
    """``bench_learning.run`` rows: dataset, model, descriptor, n, unit, train_s, cv_s, cv_mae,
    baseline (the notebook's models are rows of their own)."""
    rows = res.get("rows", [])
    if not rows or not all({"dataset", "model", "n", "train_s", "cv_mae"} <= r.keys() for r in rows):
        return _generic_rows("(d)", res)
    # the notebook's kernel ridge (amd AMD_100 + composition, GridSearchCV) is the peer of each dataset
    peers = {r["dataset"]: r for r in rows if str(r["model"]).startswith("notebook") and "KernelRidge" in str(r["model"])}
    out = []
    for r in rows:
        unit = r.get("unit", "")
        notebook = str(r["model"]).startswith("notebook")
        check = f"5-fold CV MAE {r['cv_mae']:.4g} {unit}"
        peer = peers.get(r["dataset"]) if not notebook else None
        if peer is not None:
            check += f" (notebook KRR {peer['cv_mae']:.4g})"
        if isinstance(r.get("baseline"), (int, float)):
            check += f"; median predictor {r['baseline']:.4g}"
        if isinstance(r.get("cv_s"), (int, float)):
            check += f"; the 5-fold CV {r['cv_s']:.0f} s"
        what = (f"peer: {str(r['model']).removeprefix('notebook: ')}" if notebook
                else f"train {r['model']} on {r.get('descriptor', '?')}")
        out.append(_row("(d)", f"{r['dataset']}: {what} (descriptor + one fit on all records)", f"{r['n']:,}",
                        r["train_s"], res.get("peak_rss_mb"), "notebook KRR (same folds)" if peer else "-",
                        peer["train_s"] if peer else None, check=check))
    return out


def _generic_rows(part: str, res: dict) -> list[list[str]]:
    """Rows of the ``run`` functions of bench_user_call / bench_learning, whatever their keys."""
    if "rows" not in res:
        return [[part, "skipped" if "skipped" in res else "failed", "", "", "", "", "", "",
                 res.get("skipped") or res.get("failed", "")]]
    out = []
    text_keys = ("task", "name", "invariant", "dataset", "data", "target", "descriptor", "model")
    ours_keys = ("ours_s", "ours", "time", "seconds", "train_s", "wall")
    peer_keys = ("peer_s", "peer_time", "amd_s", "amd")
    n_keys = ("n", "N", "records", "structures")
    for r in res["rows"]:
        task = ", ".join(str(r[k]) for k in text_keys if k in r and r[k] not in (None, ""))
        ours = next((float(r[k]) for k in ours_keys if isinstance(r.get(k), (int, float))), None)
        peer_s = next((float(r[k]) for k in peer_keys if isinstance(r.get(k), (int, float))), None)
        n = next((f"{int(r[k]):,}" for k in n_keys if isinstance(r.get(k), (int, float))), "-")
        used = set(text_keys) | set(ours_keys) | set(peer_keys) | set(n_keys)
        rest = "; ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items() if k not in used)
        out.append(_row(part, task, n, ours, res.get("peak_rss_mb"), str(r.get("peer", "-")), peer_s, rest))
    return out


def render(results: dict, cfg: dict) -> str:
    head = ["part", "task", "N", "ours", "peak memory (MiB)", "peer / reference", "peer",
            "peer / ours", "correctness"]
    lines = ["| " + " | ".join(head) + " |", "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    rows: list[list[str]] = []
    if "a" in results:
        rows += rows_a(results["a"])
    for n, res in results.get("bc", {}).items():
        rows += rows_b_c(int(n), res, cfg)
    if "d" in results:
        rows += rows_d(results["d"])
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def header(results: dict, cfg: dict, load: str) -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [f"machine: {os.cpu_count()} cores, {mem:.0f} GiB; load average before / after: {load}; "
             f"ours = the call itself in a fresh process (inputs loaded, compiled kernels loaded); peak memory = "
             f"that process's VmHWM"]
    for n, res in results.get("bc", {}).items():
        b = res.get("build", {})
        if "real" in b:
            src = ", ".join(f"{k} {v}" for k, v in b["sources"].items())
            lines.append(f"N={int(n):,}: {b['real']:,} real structures (of {b['real_available']:,} valid: {src}; "
                         f"{b['parse_failed']} failed to parse, {b['invalid']} failed validation; {b['held_out']:,} "
                         f"held out as queries) + {b['copies']:,} copies (strain <= {STRAIN:.0%}, sigma {SIGMA} A, "
                         f"seed {cfg['seed']}, {b['redraws']} redrawn for overlap); reading the datasets "
                         f"{b['load_s']:.0f} s, making the copies {b['build_s']:.0f} s")
    return "\n".join(lines)


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="a,b,c,d", help="parts to run, e.g. 'b,c' (default a,b,c,d)")
    parser.add_argument("--quick", action="store_true",
                        help="N = 2000, 100 queries, small checks; (a), (d) in their quick mode")
    parser.add_argument("--n", type=int, nargs="+", default=None, help="sizes of the reference set (default 20000 "
                        "100000; 2000 with --quick)")
    parser.add_argument("--queries", type=int, default=None, help="held-out queries of (c) (default 1000; 100 quick)")
    parser.add_argument("--k", type=int, default=5, help="neighbours per query in (c)")
    parser.add_argument("--eps", type=float, default=0.01, help="PDD-EMD threshold of (b), Angstrom")
    parser.add_argument("--check-subset", type=int, default=None, help="crystals of the brute-force check of (b) "
                        "(default 2000; 300 quick)")
    parser.add_argument("--check-queries", type=int, default=None, help="queries of the brute-force check of (c) "
                        "(default 20; 5 quick)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of (a)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write every number to this file")
    parser.add_argument("--_task", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_folder", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_cfg", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._task:
        return child_main(args._task, Path(args._folder), json.loads(args._cfg))
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not parts or set(parts) - set(PARTS):
        parser.error(f"--parts takes a comma-separated subset of a,b,c,d, got {args.parts!r}")
    quick = args.quick
    cfg = {
        "parts": parts, "quick": quick, "k": args.k, "eps": args.eps, "seed": args.seed, "repeats": args.repeats,
        "queries": args.queries or (100 if quick else 1000),
        "check_subset": args.check_subset or (300 if quick else 2000),
        "check_queries": args.check_queries or (5 if quick else 20),
    }
    sizes = args.n or ([2000] if quick else [20000, 100000])
    if args.k < 1 or args.eps < 0 or min(sizes) <= max(args.k, 1) or cfg["queries"] < 1:
        parser.error("need k >= 1, eps >= 0, every N > k and at least one query")
    if {"b", "c"} & set(parts):
        try:
            dataset_file("mp_elasticity_binaries.json.gz")
        except DatasetMissing as exc:
            print(f"skipped: {exc}")
            return 0
    load_before = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    signal.signal(signal.SIGTERM, _interrupt)
    root = Path(tempfile.mkdtemp(prefix="crystinv-bench-daily-"))
    results: dict = {}
    try:
        if "a" in parts:
            (root / "a").mkdir()
            results["a"] = run_task("part_a", root / "a", cfg)
        if {"b", "c"} & set(parts):
            results["bc"] = {}
            for n in sizes:
                folder = root / f"n{n}"
                folder.mkdir()
                c = {**cfg, "n": n}
                res = results["bc"][n] = {}
                tasks = ["build", "pdd"]
                if "b" in parts:
                    tasks += ["pairs", "check_pairs"]
                if "c" in parts:
                    tasks += ["knn", "check_knn", "knn_amd", "peer_amd"]
                for name in tasks:
                    res[name] = run_task(name, folder, c)
                    if name in ("build", "pdd") and "failed" in res[name]:
                        break
                shutil.rmtree(folder, ignore_errors=True)
        if "d" in parts:
            (root / "d").mkdir()
            results["d"] = run_task("part_d", root / "d", cfg)
    except KeyboardInterrupt:
        say("interrupted: the temporary folder is removed")
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load = f"{load_before} / " + "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print(header(results, cfg, load))
    print(render(results, cfg))
    if args.json:
        Path(args.json).write_text(json.dumps({"config": cfg, "sizes": sizes, "load": load, "results": results},
                                              indent=1, default=str))
    tasks = [results.get("a"), results.get("d"), *(t for r in results.get("bc", {}).values() for t in r.values())]
    return 1 if any(t and "failed" in t for t in tasks) else 0


if __name__ == "__main__":
    sys.exit(main())
