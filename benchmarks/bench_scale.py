"""The exact 10-nearest-neighbour PDD-EMD graph of N crystals: one process, jobs through a
daemon, jobs through SLURM.

Data: every real structure of the shared datasets (Materials Project elasticity, Carbon-24,
Perov-5, the 9 T2 crystals; records that do not parse or validate are skipped and counted),
then seeded copies of them -- a random symmetric strain (entries uniform in +-3%) and
Gaussian site displacements (sigma 0.02 Angstrom per Cartesian coordinate) -- until there
are N (N below the number of real structures: a seeded subset of them). The crystals are
stored as ONE ``CrystalDatasetData``; their PDDs (k=100) are computed ONCE by the
``compute_invariants`` calcfunction (not timed with the paths) and all three paths use that
one ``InvariantsData``:

* **(a)** the pure layer as a user calls it: ``nearest_neighbours(pdds, 10, 'pdd_emd')`` in a
  fresh Python process (no AiiDA import) on ``InvariantsData.get_pdds()`` as saved ``.npy``;
  the time of that call, and that process's peak RSS (``VmHWM``);
* **(b)** ``DistancesWorkChain`` (k=10, the worker ``crystinv-worker`` as an
  ``InstalledCode`` on a ``core.local`` + ``core.direct`` computer, ``options`` =
  ``{'max_memory_mb': BOUND[, 'block_size': B]}``) submitted to a daemon with two workers;
  the time from ``submit`` to the WorkChain's termination;
* **(c)** the same on a ``core.local`` + ``core.slurm`` computer (the one-node cluster of
  ``tests/services/slurm.sh``; skipped with the reason when ``sinfo`` does not answer).

The whole run lives in a temporary AiiDA profile (SQLite ``core.sqlite_dos`` storage, the
ZeroMQ broker that runs inside the daemon) in a temporary ``AIIDA_PATH``; the daemon is
stopped, unfinished jobs are cancelled and the folder removed at the end, also on Ctrl-C.

Usage::

    .venv/bin/python benchmarks/bench_scale.py                      # N = 2000
    .venv/bin/python benchmarks/bench_scale.py --n 20000 100000     # one row group per N
    .venv/bin/python benchmarks/bench_scale.py --skip c --bound 1000 --json scale.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402

from _data import DatasetMissing, dataset_file, load_all_real, peak_rss_mb  # noqa: E402

K_PDD = 100
K_NN = 10
METRIC = "pdd_emd"
STRAIN = 0.03  # entries of the symmetric strain: uniform in [-STRAIN, STRAIN]
SIGMA = 0.02  # Angstrom, Gaussian displacement of every Cartesian coordinate
SLOTS = 2  # jobs that hold a core at once on the core.direct computer (a 2-core node)
WORKER = Path(sys.executable).parent / "crystinv-worker"
TARGETS = ((229_000, "CSD (229,000 crystals)"), (2_000_000, "2,000,000 crystals"))


def say(text: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)




# ---------------------------------------------------------------------------- data (pure)
def build_crystals(n: int, seed: int = 0):
    """``(crystals, ids, info)``: N validated ``Crystal`` objects (real ones, then copies)."""
    from aiida_crystinv.invariants import InvalidStructureError, as_crystal

    real = load_all_real()
    crystals, ids, info = [], [], {"sources": {}, "parse_failed": 0, "invalid": 0, "examples": []}
    for source, (rids, structures, failed) in real.items():
        valid = 0
        for rid, structure in zip(rids, structures):
            label = f"{source}:{rid}"
            try:
                crystals.append(as_crystal(structure, label=label))
            except InvalidStructureError as exc:
                info["invalid"] += 1
                info["examples"].append(str(exc)[:120])
                continue
            ids.append(label)
            valid += 1
        info["parse_failed"] += len(failed)
        info["examples"] += [f"{source}:{i}: {r}"[:120] for i, r in failed]
        info["sources"][source] = valid
    if not crystals:
        raise DatasetMissing("no real structure could be read from the shared datasets")
    del real
    rng = np.random.default_rng(seed)
    n_real = len(crystals)
    info["real_available"] = n_real
    if n <= n_real:
        keep = np.sort(rng.choice(n_real, size=n, replace=False))
        info.update(real=n, copies=0, redraws=0)
        return [crystals[i] for i in keep], [ids[i] for i in keep], info
    order = rng.permutation(n_real)
    copies_of = np.zeros(n_real, dtype=np.int64)
    redraws = 0
    for j in range(n - n_real):
        p = int(order[j % n_real])
        parent = crystals[p]
        species = [dict(site) for site in parent.species]
        for _attempt in range(20):
            a = rng.uniform(-STRAIN, STRAIN, (3, 3))
            cell = parent.cell @ (np.eye(3) + (a + a.T) / 2)
            cart = parent.frac @ cell + rng.normal(0.0, SIGMA, parent.frac.shape)
            frac = cart @ np.linalg.inv(cell)
            copies_of[p] += 1
            label = f"{ids[p]}~{copies_of[p]}"
            try:
                crystals.append(as_crystal((cell, frac, species), label=label))  # overlap check included
            except InvalidStructureError:
                redraws += 1
                continue
            ids.append(label)
            break
        else:  # pragma: no cover - 20 overlapping draws in a row
            raise RuntimeError(f"could not make a valid copy of {ids[p]}")
    info.update(real=n_real, copies=n - n_real, redraws=redraws)
    return crystals, ids, info


# ---------------------------------------------------------------------------- (a), in a child process
def pure_child(folder: Path) -> None:
    """``nearest_neighbours`` on the PDDs saved in ``folder``; writes ``a_*.npy`` and
    ``a.json`` (time of the call, this process's peak RSS). No AiiDA import."""
    t0 = time.perf_counter()
    from aiida_crystinv.distances import nearest_neighbours

    import_s = time.perf_counter() - t0
    rows = np.load(folder / "pdd_rows.npy")
    offsets = np.load(folder / "pdd_offsets.npy")
    pdds = [rows[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    before = peak_rss_mb()
    t = time.perf_counter()
    d, i, evaluated = nearest_neighbours(pdds, K_NN, METRIC, return_stats=True)
    wall = time.perf_counter() - t
    np.save(folder / "a_distances.npy", d)
    np.save(folder / "a_indices.npy", i)
    out = {
        "wall": wall,
        "import_s": import_s,
        "rss_before_call_mb": before,
        "peak_rss_mb": peak_rss_mb(),
        "evaluated_fraction": float(evaluated),
        "n": len(pdds),
    }
    (folder / "a.json").write_text(json.dumps(out))


# ---------------------------------------------------------------------------- AiiDA set-up
class Session:
    """The temporary profile, its daemon and everything to undo at the end."""

    def __init__(self, root: Path):
        self.root = root
        self.daemon = None
        self.child: subprocess.Popen | None = None
        self.workchains: list[int] = []

    def create_profile(self) -> None:
        """A ``core.sqlite_dos`` + ``core.zeromq`` profile under ``root`` (AIIDA_PATH)."""
        from aiida import load_profile
        from aiida.manage.configuration import get_config

        from aiida_crystinv.cli.embedded import create_embedded_profile

        config = get_config(create=True)
        profile, _ = create_embedded_profile(config, name="bench-scale")
        load_profile(profile.name, allow_switch=True)

    def start_daemon(self, workers: int = 2) -> None:
        from aiida.engine.daemon.client import get_daemon_client

        self.daemon = get_daemon_client()
        self.daemon.start_daemon(number_workers=workers)

    def stop_daemon(self) -> None:
        """Stop the daemon and wait for its circus process to end (SIGTERM it by pid after 60 s)."""
        from aiida.engine.daemon.client import DaemonException

        pid = self.daemon.get_daemon_pid()
        if pid is None or not self.daemon.is_daemon_running:
            return
        say("stopping the daemon")
        try:
            self.daemon.stop_daemon(wait=True, timeout=60)
        except DaemonException as exc:
            say(f"the daemon did not answer the stop request ({exc}); waiting for it")
        for _ in range(600):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        say(f"the daemon (pid {pid}) is still running: SIGTERM")
        os.kill(pid, signal.SIGTERM)

    def cancel_jobs(self) -> None:
        """Kill the jobs of unfinished WorkerCalculations (direct: the job's process tree;
        SLURM: scancel), so that nothing outlives the benchmark."""
        from aiida import orm

        qb = orm.QueryBuilder().append(orm.CalcJobNode, project=["*"])
        for (calc,) in qb.iterall():
            if calc.is_terminated or not calc.get_job_id() or calc.computer is None:
                continue
            job = calc.get_job_id()
            if calc.computer.scheduler_type == "core.slurm":
                subprocess.run(["scancel", str(job)], capture_output=True, check=False)
                continue
            try:
                import psutil

                proc = psutil.Process(int(job))
                for p in [*proc.children(recursive=True), proc]:
                    p.terminate()
            except Exception:  # noqa: BLE001 - gone already
                pass

    def close(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            self.child.wait(10)
        try:
            from aiida.manage import get_manager

            if get_manager().get_profile() is not None:
                if self.daemon is not None:  # first, so that no job is submitted after the cancelling
                    self.stop_daemon()
                self.cancel_jobs()
                get_manager().reset_profile()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def make_code(scheduler: str, root: Path, poll: float):
    """A computer (``core.local`` + ``scheduler``) and the worker as an ``InstalledCode``.

    The code's prepend/append text write three timestamps to the scheduler's stdout (which
    the job retrieves): ``bench_queued`` (the job script started), ``bench_start`` (the
    worker is about to start), ``bench_end``. On core.direct the WorkChain submits SLOTS
    jobs at a time (``JobOptions.max_concurrent``), so the computer runs two jobs at once,
    like the 2-CPU SLURM node, instead of every job at once.
    """
    from aiida import orm

    label = scheduler.split(".")[-1]
    workdir = root / f"work-{label}"
    workdir.mkdir(parents=True, exist_ok=True)
    computer = orm.Computer(
        label=f"bench-{label}", hostname="localhost", workdir=str(workdir),
        transport_type="core.local", scheduler_type=scheduler,
    ).store()
    computer.set_default_mpiprocs_per_machine(1)
    computer.set_minimum_job_poll_interval(poll)
    computer.configure(safe_interval=0.0)
    lines = ['echo "bench_queued $(date +%s.%N)"', 'echo "bench_start $(date +%s.%N)"']
    if scheduler == "core.slurm":  # SLURM's own submit and start times (1 s resolution)
        lines.append('echo "bench_slurm $(squeue -h -j "$SLURM_JOB_ID" -o \'%V %S\')"')
    code = orm.InstalledCode(
        computer=computer, filepath_executable=str(WORKER), label="crystinv-worker",
        default_calc_job_plugin="crystinv.worker", prepend_text="\n".join(lines),
        append_text='echo "bench_end $(date +%s.%N)"',
    )
    return code.store()


def slurm_unavailable() -> str | None:
    """Why the SLURM path cannot run (``None``: it can)."""
    for exe in ("sinfo", "sbatch", "squeue"):
        if shutil.which(exe) is None:
            return f"{exe} is not on PATH (tests/services/slurm.sh installs SLURM)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo does not answer ({exc})"
    states = [s.rstrip("*~#!%$@^-") for s in out.stdout.split()]
    if out.returncode != 0 or not any(s in ("idle", "mixed", "allocated", "completing") for s in states):
        return f"the SLURM node is not ready (sinfo: {out.stdout.strip() or out.stderr.strip()!r})"
    return None


def count_nodes() -> int:
    from aiida import orm

    return orm.QueryBuilder().append(orm.Node).count()


# ---------------------------------------------------------------------------- (b), (c)
def run_jobs(path: str, code, invariants, bound: float, block_size: int | None, timeout: float) -> dict:
    """Submit the DistancesWorkChain, wait for it, and measure its jobs."""
    from aiida import orm
    from aiida.engine import submit

    from aiida_crystinv.workflows.distances import DistancesWorkChain

    options = {"max_memory_mb": bound, **({"block_size": block_size} if block_size else {})}
    if code.computer.scheduler_type == "core.direct":  # it starts every job it is given: two at a time
        options["max_concurrent"] = SLOTS
    before = count_nodes()
    t0 = time.perf_counter()
    node = submit(
        DistancesWorkChain, invariants=invariants, k=orm.Int(K_NN), metric=orm.Dict({"name": METRIC}),
        code=code, options=orm.Dict(options),
    )
    say(f"({path}) submitted DistancesWorkChain<{node.pk}>")
    last = t0
    while not node.is_terminated:
        time.sleep(0.2)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"({path}) not finished after {timeout:.0f} s")
        if time.perf_counter() - last > 60:
            last = time.perf_counter()
            done = sum(1 for c in _calcs(node) if c.is_terminated)
            say(f"({path}) {time.perf_counter() - t0:.0f} s: {done}/{len(_calcs(node))} job(s) finished")
    wall = time.perf_counter() - t0
    after = count_nodes()
    if not node.is_finished_ok:
        from aiida.cmdline.utils.common import get_workchain_report

        raise RuntimeError(f"({path}) DistancesWorkChain<{node.pk}> failed: [{node.exit_status}] {node.exit_message}\n"
                           + get_workchain_report(node, "REPORT"))
    jobs = [job_figures(c) for c in _calcs(node)]
    for calc in _calcs(node):  # measured: free the disk (N=100,000 stages ~10 GB per path)
        if "remote_folder" in calc.outputs:
            shutil.rmtree(calc.outputs.remote_folder.get_remote_path(), ignore_errors=True)
    children = [c for c in node.called if c.process_label == "WorkerJobWorkChain"]
    # the WorkChain's step that submits the blocks: seconds per block, measured WITHIN a wave
    # (a block created before any earlier block terminated belongs to the same wave; the gap
    # between two waves is the waiting for the previous wave, not submitting)
    submit_per_block = submit_rate(children, node)
    merges = [c for c in node.called_descendants if c.process_label == "merge_blocks"]
    merge_s = sum(c.mtime.timestamp() - c.ctime.timestamp() for c in merges if c.caller.pk == node.pk)
    d, i = node.outputs.distances.get_knn()
    return {
        "wall": wall, "pk": node.pk, "nodes": after - before, "jobs": jobs, "submit_per_block": submit_per_block,
        "merge_s": merge_s, "blocks": len(children), "distances": d, "indices": i, "options": options,
    }


def submit_rate(children: list, node) -> float:
    """Seconds per block of the WorkChain's submit step, from the creation times of the blocks
    of one wave (consecutive creations with no block terminated in between)."""
    ordered = sorted(children, key=lambda c: c.ctime)
    gaps = []
    for prev, nxt in zip(ordered, ordered[1:]):
        finished_before = any(c.mtime <= nxt.ctime and c.is_terminated for c in ordered if c.ctime <= prev.ctime)
        if not finished_before:
            gaps.append((nxt.ctime - prev.ctime).total_seconds())
    if gaps:
        return float(np.mean(gaps))
    return (ordered[0].ctime - node.ctime).total_seconds() if ordered else 0.0


def _calcs(node) -> list:
    from aiida import orm

    return sorted(
        (c for c in node.called_descendants
         if isinstance(c, orm.CalcJobNode) and c.process_type.endswith("crystinv.worker")),
        key=lambda c: c.pk,
    )


_JOB_FILES = {"out", "result.json", "worker.out", "worker.err", "_scheduler-stdout.txt", "_scheduler-stderr.txt"}


def job_figures(calc) -> dict:
    """Times (epoch seconds) and sizes of one WorkerCalculation; see the table's header."""
    fig: dict = {"pk": calc.pk, "ok": calc.is_finished_ok, "exit_status": calc.exit_status,
                 "ctime": calc.ctime.timestamp(), "mtime": calc.mtime.timestamp()}
    task = calc.inputs.task.get_dict()
    fig["task"] = {k: task[k] for k in ("queries", "reference") if k in task}
    retrieved = calc.outputs.retrieved if "retrieved" in calc.outputs else None
    names = retrieved.base.repository.list_object_names() if retrieved is not None else []
    if "result.json" in names:
        result = json.loads(retrieved.base.repository.get_object_content("result.json"))
        fig.update(peak_rss_mb=result.get("peak_rss_mb"), timings=result.get("timings", {}),
                   stats=result.get("stats", {}), n_queries=result.get("n_inputs"))
    if "_scheduler-stdout.txt" in names:
        for line in retrieved.base.repository.get_object_content("_scheduler-stdout.txt").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("bench_queued", "bench_start", "bench_end"):
                fig[parts[0][6:]] = float(parts[1])
            elif len(parts) == 3 and parts[0] == "bench_slurm":
                try:
                    submitted, started = (datetime.fromisoformat(p).timestamp() for p in parts[1:])
                except ValueError:
                    continue
                fig["wait"] = max(0.0, started - submitted)
    if "remote_folder" in calc.outputs:
        remote = Path(calc.outputs.remote_folder.get_remote_path())
        staged, uploaded = 0, 0.0
        for path in remote.rglob("*"):
            rel = path.relative_to(remote).parts
            if rel[0] in _JOB_FILES or not path.is_file():
                continue
            st = path.stat()
            staged += st.st_size
            uploaded = max(uploaded, st.st_mtime)
        fig.update(staged_mb=staged / 2**20, uploaded=uploaded or None)
    # the decomposition of the job's span (see the header)
    if all(fig.get(key) for key in ("start", "end", "uploaded")) and "timings" in fig:
        total = float(fig["timings"]["total"])
        if "wait" not in fig:  # core.direct: no queue (the jobs are submitted SLOTS at a time)
            fig["wait"] = fig["start"] - fig.get("queued", fig["start"])
        fig["span"] = fig["mtime"] - fig["ctime"]
        fig["before"] = fig["uploaded"] - fig["ctime"]
        fig["submit"] = fig["start"] - fig["uploaded"] - fig["wait"]
        fig["startup"] = (fig["end"] - fig["start"]) - total
        fig["after"] = fig["mtime"] - fig["end"]
        fig["overhead"] = fig["span"] - total - fig["wait"]
    return fig


def core_shares(jobs: list[dict], cores: int, threads: int) -> None:
    """Each job's average share of the machine's cores while it ran (``share``): ``cores``
    over the number of jobs running at once, at most ``threads`` (the worker's numba
    threads), averaged over the job's time."""
    spans = [(j["start"], j["end"]) for j in jobs if j.get("start") and j.get("end")]
    for j in jobs:
        if not (j.get("start") and j.get("end")):
            continue
        a, b = j["start"], j["end"]
        cuts = sorted({a, b, *(x for s, e in spans for x in (s, e) if a < x < b)})
        total = 0.0
        for lo, hi in zip(cuts, cuts[1:]):
            mid = (lo + hi) / 2
            running = sum(1 for s, e in spans if s <= mid < e)
            total += (hi - lo) * min(threads, cores / max(1, running))
        j["share"] = total / (b - a) if b > a else float(min(threads, cores))


# ---------------------------------------------------------------------------- projection
def projection(runs: list[dict], mb_record: float, bytes_record: float, bound: float, block_size: int | None,
               nodes: int, cores_per_node: int) -> list[str]:
    """Lines projecting the measured per-job figures to the target sizes (see the header)."""
    from aiida_crystinv.specs.jobs import WORKER_BASE_MB, JobOptions, knn_blocks

    points = []  # (N, core-seconds per query per reference record, per-query core-s, figures)
    for run in runs:
        jobs = [j for j in run["jobs"] if j.get("share") and j.get("timings")]
        if not jobs:
            continue
        pairs = sum(_rows_len(j, run["n"], "queries") * _rows_len(j, run["n"], "reference") for j in jobs)
        core_s = sum(j["timings"]["compute"] * j["share"] for j in jobs)
        points.append((run["n"], core_s / pairs, core_s / run["n"], run))
    if not points:
        return ["projection: no measured jobs (paths b and c skipped or failed)"]
    points.sort(key=lambda p: p[0])
    n0, c_pair, per_query, ref = points[-1]
    lines = ["", f"projection (from the jobs of ({ref['path']}) at N={n0:,}; {nodes} nodes x {cores_per_node} cores, "
             f"one single-threaded job per core, each node with >= {cores_per_node} x {bound:g} MiB):"]
    evaluated = [j["stats"].get("evaluated_fraction") for j in ref["jobs"] if j.get("stats")]
    evaluated = [e for e in evaluated if e is not None]
    lines.append(
        f"  worker time per query at N={n0:,}: {per_query * 1e3:.2f} core-ms (sum of the jobs' compute time x their "
        f"core share / N); the pruned search evaluated {np.mean(evaluated):.2%} of the pairs" if evaluated else ""
    )
    if len({p[0] for p in points}) > 1:
        x = np.log([p[0] for p in points])
        y = np.log([p[2] for p in points])
        alpha = float(np.polyfit(x, y, 1)[0])
        lines.append(f"  scaling: per-query cost ~ N^{alpha:.2f}, fitted on N = {', '.join(f'{p[0]:,}' for p in points)}")
    else:
        alpha = 1.0
        lines.append("  scaling: ONE N was run, so per-query cost ~ N^1 is ASSUMED (the pruned search keeps evaluating "
                     "the same fraction of the reference set; pessimistic if that fraction falls with N). Run two N to fit it.")
    lines.append(f"  data: as here ({ref['rows_mean']:.1f} PDD rows per record on average); crystals with more distinct "
                 "sites (organic CSD entries: tens to hundreds) cost more per pair")
    overheads = [j["overhead"] for j in ref["jobs"] if "overhead" in j]
    overhead = float(np.mean(overheads)) if overheads else 0.0
    read_rate = [j["timings"].get("read", 0.0) / max(j.get("staged_mb", 0.0), 1e-9) for j in ref["jobs"]
                 if j.get("timings") and j.get("staged_mb")]
    s_per_mb = float(np.median(read_rate)) if read_rate else 0.0
    submit_per_job = ref["submit_per_block"]
    merge_per_record = ref["merge_s"] / n0
    upload_rate = [j["before"] / j["staged_mb"] for j in ref["jobs"] if j.get("before") and j.get("staged_mb")]
    upload_s_per_mb = float(np.median(upload_rate)) if upload_rate else 0.0
    slots = nodes * cores_per_node
    lines.append(f"  run with --max-jobs {slots} (max_concurrent) and --block-size ceil(N / {slots}) (one wave fills the "
                 f"cluster); the figures measured: submit step {submit_per_job:.2f} s/block (within a wave), "
                 f"{overhead:.1f} s of overhead per job, reading staged input {s_per_mb * 1e3:.1f} ms/MB, staging "
                 f"(before upload) {upload_s_per_mb * 1e3:.1f} ms/MB, merge_blocks {merge_per_record * 1e3:.2f} ms per record")

    def links(inputs: int) -> float:  # the guide: 1000 inputs of one calcfunction ~27 s of link checks
        return 27.0 * (inputs / 1000) ** 2

    for m, name in TARGETS:
        options = JobOptions(max_memory_mb=bound, max_concurrent=slots, block_size=max(1, math.ceil(m / slots)))
        qs, rs = knn_blocks(m, m, mb_record, options)
        jobs = len(qs) * len(rs)
        q, r = qs[0][1] - qs[0][0], rs[0][1] - rs[0][0]
        compute = q * r * c_pair * (r / n0) ** (alpha - 1.0)
        staged_mb = (q + r) * bytes_record / 2**20
        job_s = compute + staged_mb * s_per_mb + overhead
        waves = math.ceil(jobs / slots)
        # the merge (DistancesWorkChain.merge): with reference blocks, one merge per query block
        # (len(rs) inputs each), then one of the query blocks (len(qs) inputs)
        merge_links = (len(qs) * links(len(rs)) if len(rs) > 1 else 0.0) + links(len(qs))
        terms = {
            "jobs": waves * job_s,
            "staging": jobs * staged_mb * upload_s_per_mb,  # every job's input copied by the daemon machine
            "the submit steps": jobs * submit_per_job,
            "merge links": merge_links,
            "merge data": merge_per_record * m * (2 if len(rs) > 1 else 1),
        }
        total = sum(terms.values())
        largest = max(terms, key=terms.get)
        peak = WORKER_BASE_MB + 3 * mb_record * (q + r)
        in_flight = min(jobs, slots)
        workers = math.ceil((2 * in_flight + 1) / 200)
        lines.append(
            f"  {name}: {jobs:,} jobs = {len(qs):,} query blocks of {q:,} x {len(rs)} reference block(s) of {r:,} "
            f"(estimated peak {peak:.0f} MiB/job); {waves:,} wave(s) x {job_s / 60:.1f} min = {terms['jobs'] / 3600:.2f} h, "
            f"staging {terms['staging'] / 3600:.2f} h ({jobs * staged_mb / 2**20:.2f} TiB at this machine's local copy rate), "
            f"submit steps {terms['the submit steps'] / 3600:.2f} h, merge_blocks "
            f"{(terms['merge links'] + terms['merge data']) / 3600:.2f} h ({terms['merge links'] / 3600:.2f} h of it input "
            f"links): total ~ {total / 3600:.1f} h, largest term {largest} ({terms[largest] / total:.0%}); "
            f"{2 * in_flight + 1:,} processes at once need >= {workers} daemon workers at 200 slots"
        )
    lines.append(
        "  limits: (1) the reference set per job: under the bound the reference set is cut into blocks, so every "
        "query block runs once per reference block (and the AMD bound prunes worse inside a block), and every job "
        "stages the whole reference (block) it reads through the transport of ONE daemon machine (TiB above); "
        "(2) the waves are barriers: a wave waits for its slowest job; (3) the merge: merge_blocks runs in the "
        "daemon, its link checks grow with the square of its inputs (per query block: the reference blocks; then the "
        "query blocks), and the final one holds every top-k list in one process; (4) AiiDA per job: the submit step "
        "and the job overhead above, and two daemon slots per job in flight. The staging term assumes the daemon "
        "machine copies at this machine's local-disk rate; over a network it is slower."
    )
    return [line for line in lines if line]


def _rows_len(job: dict, n: int, key: str) -> int:
    rows = (job["task"].get(key) or {}).get("rows")
    return int(rows[1] - rows[0]) if rows else n


# ---------------------------------------------------------------------------- one N
def one_n(n: int, args, session: Session, codes: dict, skip_reasons: dict) -> dict:
    from aiida import orm

    from aiida_crystinv.calculations.functions import compute_invariants
    from aiida_crystinv.data import CrystalDatasetData
    from aiida_crystinv.workflows.distances import mb_per_record

    res: dict = {"n": n, "paths": {}}
    t = time.perf_counter()
    crystals, ids, info = build_crystals(n, seed=args.seed)
    res["data"] = info
    res["data_s"] = time.perf_counter() - t
    say(f"N={n}: {info['real']} real + {info['copies']} copies built in {res['data_s']:.1f} s")
    t = time.perf_counter()
    dataset = CrystalDatasetData.from_structures(
        crystals, ids=ids, source={"description": f"bench_scale: real structures and strained copies, seed {args.seed}"}
    ).store()
    del crystals
    res["store_s"] = time.perf_counter() - t
    t = time.perf_counter()
    results, node = compute_invariants.run_get_node(dataset=dataset, descriptor=orm.Dict({"name": "pdd", "k": K_PDD}))
    if not node.is_finished_ok:
        raise RuntimeError(f"compute_invariants failed: {node.exit_message}")
    invariants = results["invariants"]
    res["invariants_s"] = time.perf_counter() - t
    say(f"N={n}: dataset stored in {res['store_s']:.1f} s, PDDs (k={K_PDD}) in {res['invariants_s']:.1f} s")
    pdds = invariants.get_pdds()
    lengths = np.array([len(p) for p in pdds], dtype=np.int64)
    res["pdd_rows"] = {"mean": float(lengths.mean()), "max": int(lengths.max()), "total": int(lengths.sum())}
    res["mb_per_record"] = mb_per_record(invariants)
    res["bytes_per_record"] = sum(
        invariants.base.repository.get_object_size(f) for f in invariants.base.repository.list_object_names()
    ) / n
    folder = session.root / f"pure-{n}"
    folder.mkdir()
    np.save(folder / "pdd_rows.npy", np.concatenate(pdds))
    np.save(folder / "pdd_offsets.npy", np.concatenate([[0], np.cumsum(lengths)]))
    del pdds

    reference = None
    if "a" not in args.skip:
        say(f"N={n}: (a) nearest_neighbours in a child process")
        session.child = subprocess.Popen([sys.executable, __file__, "--_pure", str(folder)])
        code = session.child.wait()
        session.child = None
        if code != 0:
            raise RuntimeError(f"(a) the child process failed with exit code {code}")
        a = json.loads((folder / "a.json").read_text())
        reference = (np.load(folder / "a_distances.npy"), np.load(folder / "a_indices.npy"))
        res["paths"]["a"] = a
        say(f"N={n}: (a) {a['wall']:.1f} s, peak RSS {a['peak_rss_mb']:.0f} MiB")
    for path in ("b", "c"):
        if path in args.skip:
            continue
        if skip_reasons.get(path):
            res["paths"][path] = {"skipped": skip_reasons[path]}
            continue
        run = run_jobs(path, codes[path], invariants, args.bound, args.block_size, args.timeout)
        run["path"], run["n"], run["rows_mean"] = path, n, res["pdd_rows"]["mean"]
        core_shares(run["jobs"], os.cpu_count() or 1, 1)  # one kernel thread per job (JobOptions.threads default)
        d, i = run.pop("distances"), run.pop("indices")
        if reference is None:
            reference = (d, i)
            run["identical"] = "reference"
        else:
            same = np.array_equal(d, reference[0]) and np.array_equal(i, reference[1])
            run["identical"] = "yes" if same else f"NO ({_difference(d, i, reference)})"
        res["paths"][path] = run
        say(f"N={n}: ({path}) {run['wall']:.1f} s, {len(run['jobs'])} job(s), identical: {run['identical']}")
    res["main_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # started by a shell: its own
    res["disk_mb"] = sum(f.stat().st_size for f in session.root.rglob("*") if f.is_file()) / 2**20
    return res


def _difference(d, i, reference) -> str:
    if d.shape != reference[0].shape:
        return f"shapes {d.shape} and {reference[0].shape}"
    rows_i = int((i != reference[1]).any(axis=1).sum())
    rows_d = int((d != reference[0]).any(axis=1).sum())
    return f"{rows_i} rows with other indices, {rows_d} rows with other distances, max |dd| {np.abs(d - reference[0]).max():.3g}"


# ---------------------------------------------------------------------------- output
def fmt(x, spec=".1f", none="-") -> str:
    return none if x is None else format(x, spec)


def table(results: list[dict], args) -> str:
    lines = [
        "| path | N | wall time (s) | ratio to (a) | jobs | nodes stored | nodes per job "
        "| peak memory per job (MiB, max) / bound | AiiDA overhead per job (s) | identical to (a) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    names = {"a": "(a) one process, pure layer", "b": "(b) DistancesWorkChain, daemon x2, core.direct",
             "c": "(c) DistancesWorkChain, daemon x2, core.slurm"}
    for res in results:
        n = res["n"]
        a = res["paths"].get("a")
        for path in ("a", "b", "c"):
            if path in args.skip:
                continue
            r = res["paths"].get(path)
            if r is None:
                continue
            if "skipped" in r:
                lines.append(f"| {names[path]} | {n:,} | skipped: {r['skipped']} | | | | | | | |")
                continue
            if path == "a":
                lines.append(f"| {names[path]} | {n:,} | {r['wall']:.1f} | 1.00 | - | 0 | - "
                             f"| {r['peak_rss_mb']:.0f} (the one process) / none | - | reference |")
                continue
            jobs = r["jobs"]
            peaks = [j["peak_rss_mb"] for j in jobs if j.get("peak_rss_mb") is not None]
            over = [j["overhead"] for j in jobs if "overhead" in j]
            ratio = f"{r['wall'] / a['wall']:.2f}" if a and "wall" in a else "-"
            failed = sum(1 for j in jobs if not j["ok"])
            njobs = f"{len(jobs)}" + (f" ({failed} failed, split)" if failed else "")
            lines.append(
                f"| {names[path]} | {n:,} | {r['wall']:.1f} | {ratio} | {njobs} | {r['nodes']} "
                f"| {r['nodes'] / max(1, len(jobs)):.1f} | {fmt(max(peaks) if peaks else None, '.0f')} / {args.bound:g} "
                f"| {fmt(float(np.mean(over)) if over else None, '.2f')} | {r['identical']} |"
            )
    return "\n".join(lines)


def header(results: list[dict], args) -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        f"exact {K_NN}-NN graph, PDD k={K_PDD}, metric {METRIC}; machine: {os.cpu_count()} cores, {mem:.0f} GiB; "
        f"memory bound {args.bound:g} MiB/job, block_size {args.block_size or 'JobOptions default'}; "
        f"temporary profile: core.sqlite_dos + core.zeromq, daemon with 2 workers; job poll interval {args.poll:g} s",
    ]
    for res in results:
        info = res["data"]
        src = ", ".join(f"{k} {v}" for k, v in info["sources"].items())
        lines.append(
            f"N={res['n']:,}: {info['real']:,} real structures (of {info['real_available']:,} valid: {src}; "
            f"{info['parse_failed']} failed to parse, {info['invalid']} failed validation) + {info['copies']:,} copies "
            f"(strain <= {STRAIN:.0%}, sigma {SIGMA} A, seed {args.seed}, {info['redraws']} redrawn for overlap); "
            f"PDD rows/record mean {res['pdd_rows']['mean']:.1f} max {res['pdd_rows']['max']}; build "
            f"{res['data_s']:.1f} s, store CrystalDatasetData {res['store_s']:.1f} s, compute_invariants "
            f"{res['invariants_s']:.1f} s (not in the table); this script's own peak RSS {res['main_peak_rss_mb']:.0f} "
            f"MiB, temporary folder {res['disk_mb']:.0f} MiB after the run"
        )
        a = res["paths"].get("a")
        if a and "wall" in a:
            lines.append(
                f"  (a) nearest_neighbours({res['n']:,} PDDs, {K_NN}, '{METRIC}') in a fresh process (numba kernels "
                f"from the on-disk cache, loaded inside the call), default threads; the process's peak RSS "
                f"{a['peak_rss_mb']:.0f} MiB ({a['rss_before_call_mb']:.0f} before the call); evaluated "
                f"{a['evaluated_fraction']:.2%} of the pairs"
            )
        for path in ("b", "c"):
            r = res["paths"].get(path)
            if not r or "jobs" not in r:
                continue
            jobs = [j for j in r["jobs"] if "overhead" in j]
            mean = lambda key, js=jobs: float(np.mean([j[key] for j in js])) if js else float("nan")  # noqa: E731
            tot = [j["timings"]["total"] for j in jobs]
            lines.append(
                f"  ({path}) {len(r['jobs'])} WorkerCalculation(s) in {r['blocks']} block(s), options {r['options']}; "
                f"per job: worker total {np.mean(tot) if tot else float('nan'):.1f} s, span {mean('span'):.1f} s = worker "
                f"{np.mean(tot) if tot else float('nan'):.1f} + wait for a core {mean('wait'):.1f} + overhead "
                f"{mean('overhead'):.2f} [before upload {mean('before'):.2f}, submit+launch {mean('submit'):.2f}, start-up "
                f"{mean('startup'):.2f}, after {mean('after'):.2f}]; staged {mean('staged_mb'):.1f} MiB/job; the "
                f"WorkChain's submit step {r['submit_per_block']:.2f} s/block, merge_blocks {r['merge_s']:.1f} s"
            )
    lines.append(
        "  AiiDA overhead per job := (mtime - ctime of the WorkerCalculation node) - the worker's timings.total "
        "(result.json) - the time the job waited for a core, mean over jobs. Waiting for a core: on core.direct "
        f"none (the WorkChain submits {SLOTS} jobs at a time, max_concurrent={SLOTS}, so the computer runs {SLOTS} at "
        "once; a wave ends with its slowest job); the code's prepend_text writes timestamps before and after; on core.slurm "
        "SLURM's StartTime - SubmitTime (squeue, 1 s resolution). The overhead is the sum of 'before upload' "
        "(node created -> last staged file written in the remote folder: daemon pick-up, staging), 'submit+launch' "
        "(-> the job script runs on a core, minus the wait: the engine's submit step and the scheduler's own latency), "
        "'start-up' (-> the worker's clock starts: Python and imports) and 'after' (the worker done -> the node sealed: "
        "polling, retrieval, parsing, storing)."
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2000], help="numbers of crystals (one run each)")
    parser.add_argument("--bound", type=float, default=2000.0, help="max_memory_mb of every job (MiB)")
    parser.add_argument("--block-size", type=int, default=None, help="records per job (default: JobOptions decides)")
    parser.add_argument("--skip", default="", help="paths to skip, e.g. 'c' or 'a,b'")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poll", type=float, default=1.0, help="minimum job poll interval of the computers (s)")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait for one WorkChain")
    parser.add_argument("--nodes", type=int, default=100, help="cluster nodes of the projection")
    parser.add_argument("--cores-per-node", type=int, default=32, help="cores per node of the projection")
    parser.add_argument("--_pure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._pure:
        pure_child(Path(args._pure))
        return 0
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.skip - {"a", "b", "c"}:
        parser.error(f"--skip takes a, b and c, got {','.join(sorted(args.skip))}")
    try:
        dataset_file("mp_elasticity_binaries.json.gz")
    except DatasetMissing as exc:
        print(f"skipped: {exc}")
        return 0

    root = Path(tempfile.mkdtemp(prefix="crystinv-bench-scale-"))
    os.environ["AIIDA_PATH"] = str(root)  # before anything reads the AiiDA configuration
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # verdi, for the daemon
    session = Session(root)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    results = []
    try:
        session.create_profile()
        skip_reasons = {"c": slurm_unavailable()} if "c" not in args.skip else {}
        codes = {}
        if not {"b", "c"} <= args.skip:
            if "b" not in args.skip:
                codes["b"] = make_code("core.direct", root, args.poll)
            if "c" not in args.skip and not skip_reasons.get("c"):
                codes["c"] = make_code("core.slurm", root, args.poll)
            if codes:
                say("starting the daemon (2 workers)")
                session.start_daemon(2)
        for n in args.n:
            results.append(one_n(n, args, session, codes, skip_reasons))
        runs = [
            {**r["paths"][p], "n": r["n"]} for r in results for p in ("b", "c")
            if p in r["paths"] and "jobs" in r["paths"][p]
        ]
        last = results[-1]
        runs_b = [x for x in runs if x["path"] == "b"] or runs
        proj = projection(runs_b, last["mb_per_record"], last["bytes_per_record"], args.bound, args.block_size,
                          args.nodes, args.cores_per_node)
    except KeyboardInterrupt:
        say("interrupted: cancelling jobs, stopping the daemon, removing the temporary profile")
        session.close()
        return 130
    except BaseException:
        session.close()
        raise
    session.close()
    print(header(results, args))
    print(table(results, args))
    print("\n".join(proj))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"args": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()},
             "results": results, "projection": proj},
            indent=1, default=str,
        ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
