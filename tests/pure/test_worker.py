"""The worker program, run for real: ``python -m aiida_crystinv.worker FOLDER`` in a subprocess.

Every task's outputs must equal the in-process pure functions bit for bit; a blocked kNN
(query blocks, or reference blocks joined by ``merge_topk``) must equal one
``nearest_neighbours`` call exactly, ties included; a bad task folder gives exit 2 and one
line; a failing record is named; the worker imports no AiiDA module.

Each process pays the interpreter start and the import of the numerical layer (~1 s):
the equality tests give each of two parallel processes half of their folders (the worker
takes several), the error tests run one process per folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from scipy.spatial.distance import squareform

from aiida_crystinv.distances import cdist, nearest_neighbours, pdist
from aiida_crystinv.invariants import Crystal, as_crystal
from aiida_crystinv.sources.synthetic import ewald_landscape
from aiida_crystinv.specs import parse_invariant
from aiida_crystinv.worker import (
    ABSENT,
    EXIT_BAD_TASK,
    EXIT_COMPUTATION,
    EXIT_OK,
    crystals_from_arrays,
    merge_topk,
    pack_records,
    read_outputs,
    read_result,
    run,
    write_invariants,
    write_records,
    write_task,
)

DESCRIPTORS = {
    "amd": {"name": "amd", "k": 20},
    "pdd": {"name": "pdd", "k": 20},
    "grid": {"name": "grid", "n_shells": 8, "cutoff": 5.0, "bin_width": 0.1},
    "rdf": {"name": "rdf", "cutoff": 6.0},
    "composition": {"name": "composition"},
}


# ---------------------------------------------------------------------------- helpers


def _run_one(folders: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aiida_crystinv.worker", *map(str, folders)],
        capture_output=True, text=True, timeout=120,
    )


def run_single(folders: list[Path]) -> list[subprocess.CompletedProcess]:
    """One worker process per folder (two at a time)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(_run_one, [[f] for f in folders]))


def run_ok(folders: list[Path]) -> list[dict]:
    """Run the worker on all folders -- two processes in parallel, each taking every other
    folder -- check that each succeeded with one line on stdout; returns the results."""
    chunks = [c for c in (folders[0::2], folders[1::2]) if c]
    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = list(pool.map(_run_one, chunks))
    for chunk, proc in zip(chunks, procs):
        assert proc.returncode == EXIT_OK, (proc.stdout, proc.stderr)
        assert proc.stderr == ""
        lines = proc.stdout.splitlines()
        assert len(lines) == len(chunk)
        for folder, line in zip(chunk, lines):
            assert line.startswith(f"crystinv-worker: {folder}: ok (" if len(chunk) > 1 else "crystinv-worker: ok ("), line
    return [_ok_result(f) for f in folders]


def _ok_result(folder: Path) -> dict:
    result = read_result(folder)
    assert result["status"] == "ok" and result["exit_code"] == 0
    assert set(result["timings"]) == {"parse", "read", "compute", "write", "total"}
    assert result["peak_rss_mb"] > 10 and result["version"]
    return result


def _one_error_line(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"crystinv-worker: error {code} ")
    return proc.stderr


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit: same dtype, shape and values."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _expected_layout(name: str, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays InvariantsData.from_arrays stores, written out independently."""
    if name == "pdd":
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
        return {"pdd_rows": np.concatenate(arrays), "pdd_offsets": offsets}
    if name in ("grid", "rdf"):
        return {"stack": np.array(arrays).astype(np.float32)}
    return {"matrix": np.array(arrays, dtype=np.float64)}


def _windows(stack: np.ndarray) -> dict[str, np.ndarray]:
    """GRID windows as InvariantsData stores them (start, length of each shell's non-zero stretch)."""
    n, shells, _ = stack.shape
    starts = np.zeros((n, shells), dtype=np.int32)
    lengths = np.zeros((n, shells), dtype=np.int32)
    values = []
    for i in range(n):
        for s in range(shells):
            nz = np.flatnonzero(stack[i, s])
            if nz.size:
                starts[i, s], lengths[i, s] = nz[0], nz[-1] - nz[0] + 1
                values.append(stack[i, s, nz[0]: nz[-1] + 1])
    return {"window_starts": starts, "window_lengths": lengths, "window_values": np.concatenate(values).astype(np.float32)}


def _stage_items(folder: Path, where: str, name: str, ids, arrays: list[np.ndarray], windowed: bool = False) -> None:
    """Stage invariants as a node's repository holds them (GRID optionally windowed)."""
    if windowed:
        target = folder / where
        target.mkdir(parents=True)
        np.save(target / "ids.npy", np.array(ids))
        for key, array in _windows(_expected_layout(name, arrays)["stack"]).items():
            np.save(target / f"{key}.npy", array)
    else:
        write_invariants(folder, DESCRIPTORS[name], ids, arrays, where)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def records():
    """A few dozen crystals: a seeded landscape, exact duplicates (ties) and a disordered one."""
    ids, structures, _, _ = ewald_landscape(n=22, seed=7)
    ids, structures = list(ids), list(structures)
    for src, new in ((2, "dupA-1"), (2, "dupA-2"), (5, "dupB-1")):
        ids.append(new)
        structures.append(structures[src].copy())
    ids.append("disordered")
    structures.append(Structure(Lattice.cubic(5.6), [{"Na": 0.5, "K": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    crystals = [as_crystal(s, label=i) for s, i in zip(structures, ids)]
    return ids, structures, crystals


@pytest.fixture(scope="module")
def invariants(records):
    """Each descriptor of every record, computed in-process as the calcfunctions do."""
    ids, _, crystals = records
    out = {}
    for name, descriptor in DESCRIPTORS.items():
        spec = parse_invariant(descriptor)
        out[name] = [np.asarray(spec.compute(c)) for c in crystals]
    return out


# ---------------------------------------------------------------------------- records


def test_records_round_trip_to_the_same_crystals(records):
    ids, _, crystals = records
    arrays, elements = pack_records(crystals, ids)
    assert arrays["species"].dtype == np.int16 and arrays["ids"].dtype.kind == "U"
    back = crystals_from_arrays(arrays, elements)
    for a, b in zip(crystals, back):
        assert _same(a.cell, b.cell) and _same(a.frac, b.frac)
        assert a.species == b.species and a.label == b.label


def test_invariants_equal_the_pure_functions(tmp_path, records, invariants):
    ids, structures, _ = records
    rows = {"pdd": (3, 20), "grid": (0, len(ids)), "rdf": (10, 26)}
    folders = []
    for name, descriptor in DESCRIPTORS.items():
        folder = tmp_path / name
        elements = write_records(folder, structures, ids)
        task = {"task": "invariants", "descriptor": descriptor, "elements": elements}
        if name in rows:
            task["records"] = {"dir": "records", "rows": list(rows[name])}
        write_task(folder, task)
        folders.append(folder)
    for name, folder, result in zip(DESCRIPTORS, folders, run_ok(folders)):
        start, stop = rows.get(name, (0, len(ids)))
        out = read_outputs(folder)
        assert out["ids"].tolist() == ids[start:stop]
        expected = _expected_layout(name, invariants[name][start:stop])
        assert set(out) == {"ids", *expected}
        for key, array in expected.items():
            assert _same(out[key], array), (name, key)
        assert result["descriptor"]["name"] == name and result["n_outputs"] == stop - start
        assert result["errors"] == [] and result["skipped_ids"] == []


def test_a_failing_record_is_named(tmp_path, records, invariants):
    ids, structures, crystals = records
    bad = Crystal(np.eye(3) * 4.0, np.array([[0.0, 0.0, 0.0], [0.001, 0.0, 0.0]]), ((("Na", 1.0),),) * 2, "overlap-7")
    staged = crystals[:4] + [bad] + crystals[4:8]
    staged_ids = ids[:4] + ["overlap-7"] + ids[4:8]
    folders = []
    for on_error in ("skip", "fail"):
        folder = tmp_path / on_error
        elements = write_records(folder, staged, staged_ids)
        write_task(folder, {"task": "invariants", "descriptor": DESCRIPTORS["amd"], "elements": elements, "on_error": on_error})
        folders.append(folder)
    skip, fail = run_single(folders)

    assert skip.returncode == EXIT_OK and skip.stderr == "" and skip.stdout.count("\n") == 1
    result = _ok_result(folders[0])
    assert result["skipped_ids"] == ["overlap-7"]
    (error,) = result["errors"]
    assert error["id"] == "overlap-7" and error["index"] == 4 and "overlap" in error["message"]
    out = read_outputs(folders[0])
    assert out["ids"].tolist() == ids[:8]
    assert _same(out["matrix"], _expected_layout("amd", invariants["amd"][:8])["matrix"])
    assert "1 skipped: 'overlap-7'" in skip.stdout

    line = _one_error_line(fail, EXIT_COMPUTATION)
    assert "'overlap-7'" in line and "overlap" in line
    result = read_result(folders[1])
    assert result["status"] == "error" and result["exit_code"] == EXIT_COMPUTATION
    assert result["errors"][0]["id"] == "overlap-7" and "Traceback" in result["error"]["traceback"]
    assert result["outputs"] == {}


# ---------------------------------------------------------------------------- distances


def _amd_of_stored_pdds(pdds: list[np.ndarray]) -> np.ndarray:
    """What InvariantsData.get_amd returns for a PDD node holding ``pdds``."""
    rows = np.concatenate(pdds)
    offsets = np.zeros(len(pdds) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pdds], out=offsets[1:])
    return np.add.reduceat(rows[:, :1] * rows[:, 1:], offsets[:-1], axis=0)


CASES = [  # metric, descriptor of the staged invariants, GRID staged windowed
    ("amd_linf", "amd", False),
    ("amd_l1", "pdd", False),
    ("amd_l2", "pdd", False),
    ("pdd_emd", "pdd", False),
    ("grid_emd", "grid", True),
    ("rdf_emd", "rdf", False),
    ("composition_l1", "composition", False),
]


def _items(name: str, metric: str, arrays: list[np.ndarray]):
    """The items the in-process path passes to the distance functions."""
    if name == "pdd":
        return _amd_of_stored_pdds(arrays) if metric.startswith("amd_") else list(arrays)
    return _expected_layout(name, arrays)["stack" if name in ("grid", "rdf") else "matrix"]


def test_distance_blocks_equal_cdist_and_pdist(tmp_path, records, invariants):
    ids = records[0]
    n, split = len(ids), 10
    folders = []
    for metric, name, windowed in CASES:
        folder = tmp_path / metric
        _stage_items(folder, "set", name, ids, invariants[name], windowed)
        write_task(folder, {
            "task": "distances", "descriptor": DESCRIPTORS[name], "metric": metric,
            "a": {"dir": "set", "rows": [0, split]}, "b": {"dir": "set", "rows": [split, n]},
        })
        folders.append(folder)
    # b: null -- a diagonal block, the rows of a against themselves, on one thread
    diagonal = tmp_path / "diagonal"
    _stage_items(diagonal, "set", "pdd", ids, invariants["pdd"])
    write_task(diagonal, {"task": "distances", "descriptor": DESCRIPTORS["pdd"], "a": {"dir": "set", "rows": [4, 12]},
                          "n_jobs": 1})
    results = run_ok(folders + [diagonal])
    full = cdist(invariants["pdd"], invariants["pdd"], "pdd_emd")
    assert _same(read_outputs(diagonal)["matrix"], full[4:12, 4:12])
    assert results[-1]["metric"] == {"name": "pdd_emd"}
    for (metric, name, _), folder, result in zip(CASES, folders, results):
        assert result["metric"]["name"] == metric
        items = _items(name, metric, invariants[name])
        params = {"bin_width": DESCRIPTORS[name].get("bin_width", 0.05)} if metric in ("grid_emd", "rdf_emd") else {}
        block = read_outputs(folder)["matrix"]
        same_blocks = cdist(items[:split], items[split:], metric, **params)
        if metric in ("grid_emd", "rdf_emd"):
            # compiled 1-D Wasserstein sums over float32 profiles: in two fresh-clone CI runs the
            # worker and this process differed in the last bit (the order of a vectorised sum can
            # depend on the arrays' memory layout; the worker reads memory-mapped .npy files), so
            # these two metrics are checked to 1e-12, the others bit for bit
            np.testing.assert_allclose(block, same_blocks, rtol=1e-12, atol=1e-15, err_msg=metric)
        else:  # bit for bit the in-process call on the same blocks
            assert _same(block, same_blocks), metric
        # and the entries of the whole matrix (cdist / pdist of the whole set may block the work
        # differently across threads, which can move the last bit of a compiled sum)
        full = cdist(items, items, metric, **params)
        np.testing.assert_allclose(block, full[:split, split:], rtol=1e-12, atol=1e-15, err_msg=metric)
        condensed = squareform(pdist(items, metric, **params), checks=False)
        np.testing.assert_allclose(block, condensed[:split, split:], rtol=1e-12, atol=1e-15, err_msg=metric)


# ---------------------------------------------------------------------------- knn


KNN = [("pdd_emd", "pdd"), ("amd_linf", "amd")]
K = 4


def test_knn_blocks_equal_one_nearest_neighbours_call(tmp_path, records, invariants):
    ids = records[0]
    n = len(ids)
    query_blocks = [(0, 11), (11, n)]
    reference_blocks = [(0, 3), (3, 15), (15, n)]  # the first is smaller than k: padded
    folders, layout = [], []
    for metric, name in KNN:
        for kind, blocks in (("q", query_blocks), ("r", reference_blocks)):
            for lo, hi in blocks:
                folder = tmp_path / f"{metric}-{kind}{lo}"
                _stage_items(folder, "set", name, ids, invariants[name])
                task = {"task": "knn", "descriptor": DESCRIPTORS[name], "metric": metric, "k": K}
                if kind == "q":  # a block of queries against the whole set
                    task.update(queries={"dir": "set", "rows": [lo, hi]}, reference={"dir": "set"},
                                exclude_self_offset=lo)
                    if lo == 0:
                        task["n_jobs"] = 1  # results do not depend on the number of threads
                else:  # every query against a block of the reference set
                    task.update(queries={"dir": "set"}, reference={"dir": "set", "rows": [lo, hi]},
                                reference_offset=lo, exclude_self_offset=-lo)
                write_task(folder, task)
                folders.append(folder)
                layout.append((metric, kind, lo, hi))
    outputs = {}
    run_ok(folders)
    for key, folder in zip(layout, folders):
        out = read_outputs(folder)
        assert out["distances"].dtype == np.float64 and out["indices"].dtype == np.int64
        outputs[key] = (out["distances"], out["indices"])

    for metric, name in KNN:
        d, i = nearest_neighbours(_items(name, metric, invariants[name]), K, metric)
        # the data have exact ties (duplicate structures): some row has equal distances
        assert any(len(set(row)) < len(row) for row in d), "no ties to test"
        # query blocks, stacked
        qd = np.concatenate([outputs[(metric, "q", lo, hi)][0] for lo, hi in query_blocks])
        qi = np.concatenate([outputs[(metric, "q", lo, hi)][1] for lo, hi in query_blocks])
        assert _same(qd, d) and _same(qi, i), metric
        # reference blocks, merged
        parts = [outputs[(metric, "r", lo, hi)] for lo, hi in reference_blocks]
        first_d, first_i = parts[0]
        assert (first_i == ABSENT).any() and np.isinf(first_d[first_i == ABSENT]).all()
        md, mi = merge_topk(parts)
        assert _same(md, d) and _same(mi, i), metric
        # the duplicates find each other first, ties broken by the smaller index
        a1, a2, orig = ids.index("dupA-1"), ids.index("dupA-2"), 2
        assert mi[a1, :2].tolist() == [orig, a2] and md[a1, 0] == md[a1, 1]


def test_merge_topk_breaks_ties_by_index_and_pads():
    d1 = np.array([[0.5, 1.0, np.inf]])
    i1 = np.array([[7, 3, ABSENT]])
    d2 = np.array([[0.5, 1.0, 2.0]])
    i2 = np.array([[2, 9, 4]])
    d, i = merge_topk([(d1, i1), (d2, i2)], k=4)
    assert i.tolist() == [[2, 7, 3, 9]] and d.tolist() == [[0.5, 0.5, 1.0, 1.0]]
    d, i = merge_topk([(d1, i1)], k=4)
    assert i.tolist() == [[7, 3, ABSENT, ABSENT]] and np.isinf(d[0, 2:]).all()
    with pytest.raises(ValueError, match="appears twice"):
        merge_topk([(d1, i1), (d1, i1)])
    with pytest.raises(ValueError, match="queries"):
        merge_topk([(d1, i1), (np.zeros((2, 3)), np.zeros((2, 3), dtype=int))])


# ---------------------------------------------------------------------------- bad tasks


def _bad_folders(tmp_path: Path, records) -> dict[str, Path]:
    ids, structures, _ = records
    good = {"task": "invariants", "descriptor": {"name": "amd", "k": 5}}
    folders = {}

    def stage(name: str, task: dict) -> Path:
        folder = tmp_path / name
        elements = write_records(folder, structures[:3], ids[:3])
        (folder / "task.json").write_text(json.dumps({"schema_version": 1, "elements": elements, **task}))
        folders[name] = folder
        return folder

    stage("unknown key", {**good, "on_eror": "skip"})
    stage("unknown task", {**good, "task": "relax"})
    (stage("missing npy", good) / "records" / "frac.npy").unlink()
    folder = stage("wrong dtype", good)
    np.save(folder / "records" / "cells.npy", np.load(folder / "records" / "cells.npy").astype(np.float32))
    folder = stage("pickled object array", good)
    np.save(folder / "records" / "ids.npy", np.array(ids[:3], dtype=object), allow_pickle=True)
    return folders


def test_a_bad_task_folder_exits_2_with_one_line(tmp_path, records):
    folders = _bad_folders(tmp_path, records)
    expected = {
        "unknown key": "unknown key(s) 'on_eror' (did you mean 'on_error'?)",
        "unknown task": "unknown task 'relax'",
        "missing npy": "records/frac.npy: missing input file",
        "wrong dtype": "records/cells.npy: dtype <f4 (float32), expected <f8",
        "pickled object array": "records/ids.npy: object array",
    }
    for (name, folder), proc in zip(folders.items(), run_single(list(folders.values()))):
        line = _one_error_line(proc, EXIT_BAD_TASK)
        assert expected[name] in line, (name, line)
        result = read_result(folder)
        assert result["status"] == "error" and result["exit_code"] == EXIT_BAD_TASK
        assert result["error"]["kind"] == "bad_task" and expected[name] in result["message"]
        assert not (folder / "out").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"schema_version": 2}, "newer than this worker understands"),
        ({"records": {"dir": "records", "rows": [0, 99]}}, "rows 0:99 are outside the 3 records"),
        ({"records": {"dir": "../elsewhere"}}, "must be a folder inside the task folder"),
        ({"elements": ["Na"]}, "outside the 1 elements of task.json"),
        ({"descriptor": {"name": "amd", "k": 0}}, "descriptor: k: Input should be greater than or equal to 1"),
    ],
)
def test_bad_task_messages_in_process(tmp_path, records, change, message):
    ids, structures, _ = records
    elements = write_records(tmp_path, structures[:3], ids[:3])
    task = {"schema_version": 1, "task": "invariants", "descriptor": {"name": "amd", "k": 5}, "elements": elements, **change}
    (tmp_path / "task.json").write_text(json.dumps(task))
    code, result = run(tmp_path)
    assert code == EXIT_BAD_TASK and message in result["message"], result["message"]


def test_staged_invariants_must_match_the_descriptor(tmp_path, records, invariants):
    ids = records[0]
    write_invariants(tmp_path, DESCRIPTORS["pdd"], ids, invariants["pdd"], "set")
    write_task(tmp_path, {"task": "knn", "descriptor": {"name": "pdd", "k": 10}, "k": 2,
                          "queries": {"dir": "set"}, "reference": {"dir": "set"}})
    code, result = run(tmp_path)
    assert code == EXIT_BAD_TASK and "set/pdd_rows.npy: shape" in result["message"] and "size 11" in result["message"]


def test_a_non_finite_invariant_is_named(tmp_path, records, invariants):
    ids = records[0]
    amds = [a.copy() for a in invariants["amd"]]
    amds[6][3] = np.nan
    write_invariants(tmp_path, DESCRIPTORS["amd"], ids, amds, "set")
    write_task(tmp_path, {"task": "knn", "descriptor": DESCRIPTORS["amd"], "k": 2,
                          "queries": {"dir": "set", "rows": [5, 10]}, "reference": {"dir": "set"}})
    code, result = run(tmp_path)
    assert code == EXIT_COMPUTATION and f"{ids[6]!r}" in result["message"]
    (error,) = [e for e in result["errors"] if e["set"] == "set" and e["index"] == 6]
    assert error["id"] == ids[6]


def test_out_of_memory_and_internal_errors_have_their_codes(tmp_path, records, invariants, monkeypatch):
    from aiida_crystinv.worker import EXIT_INTERNAL, EXIT_OUT_OF_MEMORY, tasks

    ids = records[0]
    write_invariants(tmp_path, DESCRIPTORS["amd"], ids, invariants["amd"], "set")
    write_task(tmp_path, {"task": "distances", "descriptor": DESCRIPTORS["amd"], "a": {"dir": "set"}})

    def no_memory(task, inputs):
        raise MemoryError

    monkeypatch.setattr(tasks, "compute", no_memory)
    code, result = run(tmp_path)
    assert code == EXIT_OUT_OF_MEMORY and result["error"]["kind"] == "out_of_memory" and result["error"]["phase"] == "compute"

    def broken_write(path, array):
        raise RuntimeError("disk on fire")

    monkeypatch.undo()
    monkeypatch.setattr("aiida_crystinv.worker._files.write_npy_atomic", broken_write)
    code, result = run(tmp_path)
    assert code == EXIT_INTERNAL and "disk on fire" in result["message"] and "Traceback" in result["error"]["traceback"]


# ---------------------------------------------------------------------------- process


def test_the_worker_imports_no_aiida_module(tmp_path, records, invariants):
    ids, structures, _ = records
    inv = tmp_path / "inv"
    write_task(inv, {"task": "invariants", "descriptor": DESCRIPTORS["composition"],
                     "elements": write_records(inv, structures, ids)})
    knn = tmp_path / "knn"
    write_invariants(knn, DESCRIPTORS["pdd"], ids, invariants["pdd"], "set")
    write_task(knn, {"task": "knn", "descriptor": DESCRIPTORS["pdd"], "k": 2, "queries": {"dir": "set", "rows": [0, 5]},
                     "reference": {"dir": "set"}, "exclude_self_offset": 0})
    script = (
        "import json, sys\n"
        "from aiida_crystinv.worker import main\n"
        f"codes = [main([{str(inv)!r}, '-q']), main([{str(knn)!r}, '-q'])]\n"
        "print(json.dumps([codes, sorted(m for m in sys.modules if m == 'aiida' or m.startswith('aiida.'))]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    codes, aiida_modules = json.loads(proc.stdout)
    assert codes == [0, 0] and aiida_modules == []


def test_a_killed_worker_leaves_no_result(tmp_path, records):
    ids, structures, _ = records
    elements = write_records(tmp_path, structures * 4, [f"{i}-{c}" for c in range(4) for i in ids])
    write_task(tmp_path, {"task": "invariants", "descriptor": {"name": "pdd", "k": 200}, "elements": elements})
    stale = tmp_path / "result.json"
    stale.write_text(json.dumps({"status": "ok", "note": "from an earlier run"}))
    proc = subprocess.Popen([sys.executable, "-m", "aiida_crystinv.worker", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while stale.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.002)
        assert proc.poll() is None, "the worker finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not stale.exists()
    assert not list(tmp_path.rglob(".*.tmp"))
