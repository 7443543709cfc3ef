"""SIGINT and SIGTERM sent to real ``crystinv`` commands, at several moments of a run.

Each run starts the real console script on a fresh embedded profile (SQLite, its own
``AIIDA_PATH``), waits for a moment of the run (the command starting; the process node
stored; the process half-way; the chunks of an invariants run being computed), sends the
signal to that process only and then checks:

* the exit code is 130 (SIGINT) or 143 (SIGTERM), and one ``Critical:`` line says what was
  stopped and what is kept; or 0 when the command had already finished (counted apart);
* no ``Traceback`` in the output, and the command ends within :data:`HANG_AFTER` seconds;
* nothing of the killed run looks like a result: no data node created by a process that
  did not finish ok, no unfinished process node, no node linked to nothing, and
  ``crystinv list`` shows no node of the run (unless the line says it was kept);
* the profile still works: a small import afterwards succeeds.

The counts (interrupted runs, tracebacks, hangs, misleading outputs) are printed.

Also here: the message of a failed chunk names its exception, and exit messages are
capped with the whole text in the process report.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import pathlib
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from . import _bad_inputs as bi

BIN = pathlib.Path(sys.executable).parent
CRYSTINV = str(BIN / "crystinv")

#: Runs per (command, signal).
RUNS = 10
#: Fewer for the demo (one per moment: a run takes about 10 s).
RUNS_OF = {"demo": 4}
#: Seconds after the signal after which a command that has not ended counts as hung.
HANG_AFTER = 90
#: Structures of the generated file (an import takes a few seconds here).
BLOCKS = 1200

#: The one line of an interrupted command (docs/cli.md, "Interruption").
LINE = re.compile(
    r"^Critical: (interrupted \(Ctrl-C\)|terminated \(SIGTERM\))"
    r"(: .+ was stopped.*|: \d+ unfinished process.*| before the command started: nothing was stored"
    r"| after its processes finished; kept: .+|: stopped.*)$"
)

DOCS = pathlib.Path(__file__).parents[2] / "docs" / "cli.md"

#: Printed at the end of the module.
COUNTS: dict[str, dict[str, int]] = {}

def audit_ranges(ranges: list) -> list[dict]:
    """For each ``(since, until)`` pk range: unfinished processes (``stale``), data created by
    a process that did not finish ok (``misleading``), nodes linked to nothing
    (``orphans``), data of processes that finished ok (``results``)."""
    from aiida import orm

    found = []
    for since, until in ranges:
        misleading, stale, orphans, results = [], [], [], []
        found.append({"misleading": misleading, "stale": stale, "orphans": orphans, "results": results})
        for node in orm.QueryBuilder().append(orm.Node, filters={"id": {">": since, "<": until}}).all(flat=True):
            name = f"{type(node).__name__}<{node.pk}>"
            if isinstance(node, orm.ProcessNode):
                if not node.is_terminated:
                    stale.append(f"{node.process_label}<{node.pk}> ({node.process_state})")
                continue
            creator = node.creator
            if creator is not None:
                if creator.is_finished_ok:
                    results.append(node.pk)
                else:
                    misleading.append(f"{name} created by {creator.process_label}<{creator.pk}> ({creator.process_state})")
            elif not node.base.links.get_outgoing().all() and not node.base.links.get_incoming().all():
                orphans.append(f"{name} linked to nothing")
    return found


#: :func:`audit_ranges` as a script, on the profile of its ``AIIDA_PATH``; argv[1]: the ranges in JSON.
AUDIT = (
    "import json, sys\nfrom aiida import load_profile\nload_profile()\n"
    + inspect.getsource(audit_ranges)
    + "print(json.dumps(audit_ranges(json.loads(sys.argv[1]))))\n"
)


class Profile:
    """A fresh embedded profile in its own ``AIIDA_PATH``; runs the real console script."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIIDA_")}
        self.env.update(AIIDA_PATH=str(root), PATH=str(BIN) + os.pathsep + self.env.get("PATH", ""), CRYSTINV_PROGRESS="never")

    def run(self, *args: object, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([CRYSTINV, *map(str, args)], env=self.env, cwd=self.root, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def start(self, *args: object) -> subprocess.Popen:
        return subprocess.Popen([CRYSTINV, *map(str, args)], env=self.env, cwd=self.root, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def python(self, code: str, *args: object) -> str:
        done = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=self.env, cwd=self.root,
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip().splitlines()[-1]

    def query(self, sql: str, *params: object) -> int:
        """One number from the SQLite file, read-only (-1 while it is locked)."""
        database = next((self.root / ".aiida").rglob("database.sqlite"))
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as conn:
                return int(conn.execute(sql, params).fetchone()[0] or 0)
        except sqlite3.Error:
            return -1

    def count(self, label: str) -> int:
        return self.query("SELECT count(*) FROM db_dbnode WHERE node_type LIKE 'process.%' "
                          "AND json_extract(attributes, '$.process_label') = ?", label)

    def last_id(self) -> int:
        return self.query("SELECT max(id) FROM db_dbnode")


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupt")
    prof = Profile(root)
    prof.big = root / "big.cif"
    prof.big.write_text(bi.many_blocks(BLOCKS))
    prof.small = root / "small.cif"
    prof.small.write_text(bi.cif_block("small"))
    done = prof.run("import", prof.big, "-L", "big")
    assert done.returncode == 0, done.stdout + done.stderr
    prof.dataset = int(re.search(r"as dataset (\d+)", done.stdout).group(1))
    yield prof
    if COUNTS:
        total = {key: sum(c[key] for c in COUNTS.values()) for key in next(iter(COUNTS.values()))}
        lines = [f"  {name:28} " + "  ".join(f"{k} {v}" for k, v in c.items()) for name, c in COUNTS.items()]
        print("\n\nInterrupted crystinv commands\n" + "\n".join(lines)
              + "\n  total                        " + "  ".join(f"{k} {v}" for k, v in total.items()))


#: The moments of each command: (what to wait for, (process label, how many more than before), seconds after).
MOMENTS = {
    "import": [
        ("starting", None, 0.5),
        ("process stored", ("import_dataset", 1), 0.0),
        ("reading records", ("import_dataset", 1), 0.4),
        ("late in the run", ("import_dataset", 1), 1.2),
    ],
    "invariants": [
        ("workchain stored", ("InvariantsWorkChain", 1), 0.0),
        ("first chunk", ("compute_invariants", 1), 0.0),
        ("chunks half done", ("compute_invariants", 4), 0.0),
        ("chunks computing", ("InvariantsChunkWorkChain", 8), 0.2),
    ],
    # the main job: one DemoWorkChain that drives its own event loop
    "demo": [
        ("generating", ("generate_landscape", 1), 0.0),
        ("importing", ("import_dataset", 1), 0.0),
        ("invariants chunks", ("compute_invariants", 2), 0.0),
        ("neighbours", ("compute_neighbours", 1), 0.0),
    ],
}


def _args(prof: Profile, command: str, run: int) -> tuple:
    if command == "import":
        return ("import", prof.big, "-L", f"killed-{run}")
    if command == "demo":
        return ("demo", "-n", "1500", "--seed", str(run))
    return ("invariants", prof.dataset, "-d", "pdd", "-p", "k=60", "--chunk-size", str(BLOCKS // 10))


def _one_run(prof: Profile, command: str, sig: int, run: int) -> dict:
    """One interrupted run and its audit; returns what was found."""
    name, wait, after = MOMENTS[command][run % len(MOMENTS[command])]
    since = prof.last_id()
    before = prof.count(wait[0]) if wait else 0
    proc = prof.start(*_args(prof, command, run))
    hung = False
    try:
        deadline = time.monotonic() + 300
        while wait and prof.count(wait[0]) < before + wait[1] and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(after)
        signalled = proc.poll() is None
        if signalled:
            proc.send_signal(sig)
        try:
            output, _ = proc.communicate(timeout=HANG_AFTER)
        except subprocess.TimeoutExpired:
            hung = True
            proc.kill()
            output, _ = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    until = prof.last_id() + 1
    after_run = prof.run("import", prof.small, "-L", f"after-{run}")
    expected = {signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
    critical = [line for line in output.splitlines() if line.startswith("Critical:")]
    kept = bool(critical) and "kept:" in critical[-1]
    return {
        "moment": name,
        "code": proc.returncode,
        "expected": expected,
        "interrupted": signalled and proc.returncode == expected,
        "finished": proc.returncode == 0,
        "signalled": signalled,
        "traceback": "Traceback" in output,
        "hung": hung,
        "lines": critical,
        "kept": kept,
        "range": (since, until),
        "after": after_run,
        "output": output,
    }


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["import", "invariants", "demo"])
def test_interrupted_runs(profile, command, sig):
    """RUNS runs of `crystinv COMMAND` stopped by SIG at the moments of MOMENTS."""
    counts = {"runs": 0, "interrupted": 0, "finished first": 0, "tracebacks": 0, "hangs": 0, "misleading": 0}
    problems: list[str] = []
    n = RUNS_OF.get(command, RUNS)
    runs = [_one_run(profile, command, sig, run) for run in range(n)]
    audits = json.loads(profile.python(AUDIT, json.dumps([got["range"] for got in runs])))
    for run, (got, audit) in enumerate(zip(runs, audits)):
        counts["runs"] += 1
        counts["interrupted"] += got["interrupted"]
        counts["finished first"] += got["finished"]
        counts["tracebacks"] += got["traceback"]
        counts["hangs"] += got["hung"]
        where = f"run {run} ({got['moment']}): exit {got['code']}"
        misleading = audit["misleading"] + audit["stale"] + audit["orphans"]
        if audit["results"] and not (got["finished"] or got["kept"]):
            misleading.append(f"result nodes {audit['results']} stored although the line says nothing is kept")
        counts["misleading"] += bool(misleading)
        if got["traceback"] or got["hung"] or misleading:
            problems.append(f"{where}: traceback={got['traceback']} hung={got['hung']} {misleading} {got['output'][-1500:]!r}")
        if not got["finished"]:
            if got["code"] != got["expected"]:
                problems.append(f"{where}, expected {got['expected']}: {got['output'][-800:]!r}")
            elif len(got["lines"]) != 1 or not LINE.match(got["lines"][0]):
                problems.append(f"{where}: not one Critical line as documented: {got['output'][-800:]!r}")
        if got["after"].returncode != 0:
            problems.append(f"{where}: a small import afterwards failed: {got['after'].stdout + got['after'].stderr}")
    COUNTS[f"{command} {signal.Signals(sig).name}"] = counts
    assert not problems, "\n".join(problems)
    assert counts["tracebacks"] == counts["hangs"] == counts["misleading"] == 0, counts
    assert counts["interrupted"] >= n - (2 if n >= 10 else 1), f"too few runs were interrupted (the rest finished first): {counts}"


@pytest.mark.slow
def test_listing_hides_what_is_not_a_result(profile):
    """After a command is killed with SIGKILL (nothing can tidy up), `crystinv clean` marks
    its processes killed and deletes what they made; `crystinv list` shows only results."""
    since = profile.last_id()
    before = profile.count("compute_invariants")
    proc = profile.start(*_args(profile, "invariants", 0))
    deadline = time.monotonic() + 300
    while profile.count("compute_invariants") < before + 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before the kill: make the input larger"
    proc.kill()
    proc.communicate()
    dry = profile.run("clean", "--dry-run")
    assert dry.returncode == 0 and "Traceback" not in dry.stdout + dry.stderr, dry.stdout + dry.stderr
    assert "InvariantsWorkChain" in dry.stdout and "is no longer running" in dry.stdout, dry.stdout
    assert "dry run: nothing changed" in dry.stdout + dry.stderr
    assert json.loads(profile.python(AUDIT, json.dumps([[since, profile.last_id() + 1]])))[0]["stale"], "the dry run changed something"
    listed = profile.run("list", "--what", "invariants").stdout
    assert not any(int(pk) > since for pk in re.findall(r"^\s*(\d+)\s", listed, re.MULTILINE)), listed
    cleaned = profile.run("clean")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert "marked" in cleaned.stdout + cleaned.stderr
    audit = json.loads(profile.python(AUDIT, json.dumps([[since, profile.last_id() + 1]])))[0]
    assert not audit["stale"] and not audit["misleading"] and not audit["orphans"], audit
    again = profile.run("clean", "--dry-run")
    assert "nothing to clean" in again.stdout + again.stderr, again.stdout + again.stderr
    # the docs' example has the same lines
    docs = DOCS.read_text()
    def shape(text):  # numbers and the plural of a counted noun vary from run to run
        return " ".join(re.sub(r"\b(process|node)(es|s)?\b", r"\1", re.sub(r"\d+", "N", text)).split())

    shapes = {shape(d) for d in docs.splitlines()}
    for line in (dry.stdout + dry.stderr).splitlines():
        if line.startswith(("Processes that will never finish", "  PK  Process", "Report: dry run")):
            assert shape(line) in shapes, line


def test_docs_say_what_the_commands_do():
    """docs/cli.md: the exit statuses and the line of an interrupted command, as the code has them."""
    from aiida_crystinv.cli.interrupt import EXIT_SIGINT, EXIT_SIGTERM

    docs = DOCS.read_text()
    assert (EXIT_SIGINT, EXIT_SIGTERM) == (130, 143)
    assert "status **130** after SIGINT and **143** after SIGTERM" in docs
    critical = [line for line in docs.split("## Interruption")[1].split("## clean")[0].splitlines() if line.startswith("Critical:")]
    assert critical and all(LINE.match(line) for line in critical), critical


def test_a_statement_cut_short_does_not_keep_its_lock(tmp_path):
    """The mechanism behind unfinished trees after Ctrl-C: SQLAlchemy closes a connection
    whose statement a signal cut short, SQLite keeps it (and its write lock) until the
    statement is finalised, and the cursor lives on in the traceback's frames, where
    ``cursor.close()`` refuses (closed database). The tidy-up's release frees it: another
    connection can write again, and the cut-short transaction is rolled back."""
    import sqlite3

    from aiida_crystinv.cli.interrupt import release_interrupted_cursors

    database = tmp_path / "locked.sqlite"
    first = sqlite3.connect(database, timeout=0.1, isolation_level=None)
    first.execute("CREATE TABLE t (x)")
    first.execute("INSERT INTO t VALUES (1), (2), (3)")

    def store_then_query():
        first.execute("BEGIN")
        first.execute("INSERT INTO t VALUES (4)")  # the write lock is taken
        cursor = first.cursor()
        cursor.execute("SELECT x FROM t")
        cursor.fetchone()  # the statement is unfinished when the signal lands
        first.close()  # what SQLAlchemy's invalidation does
        raise KeyboardInterrupt

    second = sqlite3.connect(database, timeout=0.1, isolation_level=None)
    try:
        store_then_query()
    except KeyboardInterrupt as interrupt:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            second.execute("INSERT INTO t VALUES (5)")
        assert release_interrupted_cursors(interrupt) == 0
        second.execute("INSERT INTO t VALUES (5)")
    assert [x for (x,) in second.execute("SELECT x FROM t ORDER BY x")] == [1, 2, 3, 5]


#: Points of :func:`test_an_interrupt_anywhere_in_a_process_creation_is_tidied`.
CREATION_POINTS = 40


def _run_import_interrupted_at(small: pathlib.Path, at: int | None) -> tuple[object, dict[str, int]]:
    """``run_process(import_dataset)`` as ``crystinv import`` runs it, with SIGINT's handler
    called at the ``at``-th Python line/call event (None: never); returns what the run ended
    with (SystemExit's code, or 'finished') and the event numbers at which the process's
    ``_setup_db_record`` and then its ``execute`` were entered."""
    import signal as signals
    import sys as system

    from aiida import orm

    from aiida_crystinv.calculations.functions import import_dataset
    from aiida_crystinv.cli import interrupt
    from aiida_crystinv.cli.utils import run_process

    count, seen = [0], {}

    def tracer(frame, event, arg):
        count[0] += 1
        if event == "call" and frame.f_code.co_name == "_setup_db_record":
            seen.setdefault("_setup_db_record", count[0])
        elif event == "call" and frame.f_code.co_name == "execute" and seen:  # the process's, after its creation
            seen.setdefault("execute", count[0])
        if count[0] == at:
            system.settrace(None)
            interrupt._interrupt(signals.SIGINT, frame)  # what the signal does where it lands
        return tracer

    hook = system.unraisablehook
    try:
        with interrupt.interruptible():
            system.settrace(tracer)
            try:
                run_process(import_dataset, {"file": orm.SinglefileData(small), "options": orm.Dict({})})
            finally:
                system.settrace(None)
        ended: object = "finished"
    except SystemExit as stop:
        ended = stop.code
    finally:
        system.unraisablehook = hook
    return ended, {name: seen.get(name, 0) for name in ("_setup_db_record", "execute")}


def test_an_interrupt_anywhere_in_a_process_creation_is_tidied(aiida_profile, tmp_path):
    """A signal that lands while a process is being created, at CREATION_POINTS points from
    its inputs being stored to its first step: inside SQLAlchemy's commit too, where it
    leaves a session that refuses even to roll back ("method 'commit()' is already in
    progress"), and in code that catches it and fails otherwise (AiiDA's link creation
    raised UniquenessError, a library's assertion AssertionError: the CI run saw
    ``Critical: AssertionError()`` and exit 1). Every time the command takes its one path
    for an interrupt (exit 130), nothing of the run is left (no unfinished process, no
    output of one, no node linked to nothing), and the profile still works."""
    from aiida import orm

    small = tmp_path / "small.cif"
    small.write_text(bi.cif_block("small"))
    ended, marks = _run_import_interrupted_at(small, None)
    assert ended == "finished" and 0 < marks["_setup_db_record"] < marks["execute"], (ended, marks)
    first, last = marks["_setup_db_record"] - 200, marks["execute"] + 2000
    points = sorted({first + (last - first) * i // (CREATION_POINTS - 1) for i in range(CREATION_POINTS)})
    endings, ranges, said = {}, [], io.StringIO()

    def last_pk() -> int:
        return orm.QueryBuilder().append(orm.Node, project="id").order_by({orm.Node: {"id": "desc"}}).first(flat=True)

    for point in points:
        since = last_pk()
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            endings[point], _ = _run_import_interrupted_at(small, point)
        ranges.append((since, last_pk() + 1))
    assert set(endings.values()) == {130}, {p: e for p, e in endings.items() if e != 130}
    assert "Traceback" not in said.getvalue(), said.getvalue()[-3000:]
    assert said.getvalue().count("Critical: interrupted (Ctrl-C): ") == len(points), said.getvalue()[-3000:]
    audits = audit_ranges(ranges)
    left = {point: a["stale"] + a["misleading"] + a["orphans"] for point, a in zip(points, audits)}
    assert not any(left.values()), {p: v for p, v in left.items() if v}
    ended, _ = _run_import_interrupted_at(small, None)
    assert ended == "finished"


# ---------------------------------------------------------------------------- messages
def test_a_chunk_that_raised_is_named_with_its_exception(aiida_profile, monkeypatch):
    """A chunk whose calcfunction raised (an injected fault): the WorkChain's exit message
    names the chunk, that it excepted, and the exception's text (not "[None] None")."""
    from aiida import orm

    from aiida_crystinv.calculations import functions
    from aiida_crystinv.data import CrystalDatasetData
    from aiida_crystinv.sources.synthetic import ewald_landscape
    from aiida_crystinv.workflows.invariants import InvariantsWorkChain

    ids, structures, _, _ = ewald_landscape(n=4, seed=1)
    dataset = CrystalDatasetData.from_structures(structures, ids=ids).store()

    def broken(spec, crystals):
        raise RuntimeError("injected fault: the neighbour search lost its mind")

    monkeypatch.setattr(functions, "compute_arrays", broken)
    from aiida_crystinv._runner import run_get_node_promptly

    _, node = run_get_node_promptly(InvariantsWorkChain, dataset=dataset, descriptor=orm.Dict({"name": "amd", "k": 3}),
                                    chunk_size=orm.Int(2))
    assert node.exit_status == 401, (node.exit_status, node.exit_message)
    message = node.exit_message
    assert "rows 0:2" in message and "excepted" in message, message
    assert "RuntimeError: injected fault: the neighbour search lost its mind" in message, message
    assert "[None]" not in message and len(message) <= 400, message


def test_a_long_error_is_capped_with_the_whole_text_in_the_report(aiida_profile, tmp_path):
    """A bad record with a 5000-character identifier: the error names it; the exit message
    is capped at MAX_EXIT_MESSAGE characters and the whole text is in the process report."""
    from aiida import orm

    from aiida_crystinv.calculations.functions import import_dataset
    from aiida_crystinv.exit_codes import MAX_EXIT_MESSAGE

    long_id = "record-" + "x" * 5000 + "-end"
    records = [{"id": "fine", "structure": bi.structure_dict()}, {"id": long_id, "structure": {"lattice": "oops"}}]
    path = tmp_path / "records.json"
    path.write_text(json.dumps(records))
    with path.open("rb") as handle:
        file = orm.SinglefileData(handle, filename="records.json")
    _, node = import_dataset.run_get_node(file=file, options=orm.Dict({"format": "json", "id_column": "id"}))
    assert node.is_finished and not node.is_finished_ok, node.process_state
    prefix = len("the input cannot be read: ")
    assert len(node.exit_message) <= MAX_EXIT_MESSAGE + prefix + 60, len(node.exit_message)
    logs = " ".join(log.message for log in orm.Log.collection.get_logs_for(node))
    assert " ... " in node.exit_message, node.exit_message  # cut in the middle
    assert "the full message" in logs and long_id in logs, logs[:500]
