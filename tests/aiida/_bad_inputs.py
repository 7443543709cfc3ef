"""Machinery of the bad-input corpus (``test_bad_inputs.py``): generated files, cases,
how an outcome is judged, and the audit of what a case left in the profile.

Every input is generated here or in the test module; nothing is read from the shared
datasets. A case runs one bad input through one interface:

``cli``
    ``crystinv ARGS`` through click's ``CliRunner`` on the test profile. A clear error is a
    non-zero exit, no traceback, exactly one ``Critical:`` / ``Error:`` line of less than
    :data:`MAX_LINE` characters that says what is wrong (the case's ``mention`` patterns).
``api``
    the pure layer (``aiida_crystinv.invariants``, ``aiida_crystinv.sources``): a clear error
    is a ``ValueError`` (subclass) with a one-line message saying what is wrong.
``process``
    a calcfunction or WorkChain run here: a clear error is a process that finished with a
    documented exit code (:func:`documented_exit_codes`), or a refusal at the ports (a
    ``ValueError`` raised before any process node exists).
``subprocess``
    a real ``crystinv`` process interrupted with SIGINT / SIGKILL (the slow tests).

Whatever the interface, the profile is audited after the case (:func:`audit`): a *half-
stored* result is a data node created by a process that did not finish ok (killed,
excepted, failed, or never terminated), or a data node linked to nothing. Inputs kept by a
process that failed with an exit code are its provenance (``verdi process report`` shows
why it failed): they are counted, as ``kept``, but are not half-stored results.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import traceback as tb
from dataclasses import dataclass, field
from typing import Any, Callable

#: Longest acceptable error line (characters).
MAX_LINE = 300

#: What each kind of outcome is called in the table.
CLEAR, ACCEPTED = "clear error", "accepted"
TRACEBACK, UNCLEAR, WRONGLY_ACCEPTED, WRONGLY_REFUSED = "traceback", "unclear", "wrongly accepted", "wrongly refused"


# --------------------------------------------------------------------------- generated inputs
def cif_block(
    name: str = "x",
    a: Any = 4.0,
    b: Any = 4.0,
    c: Any = 4.0,
    alpha: Any = 90,
    beta: Any = 90,
    gamma: Any = 90,
    sites: tuple = (("Na1", "Na", 0, 0, 0, 1), ("Cl1", "Cl", 0.5, 0.5, 0.5, 1)),
) -> str:
    """One P1 CIF data block; every value is written as given (so ``'nan'`` or ``'oops'``
    can be planted anywhere). ``sites``: (label, element, x, y, z, occupancy)."""
    rows = "\n".join(" ".join(str(v) for v in site) for site in sites)
    return (
        f"data_{name}\n_cell_length_a {a}\n_cell_length_b {b}\n_cell_length_c {c}\n"
        f"_cell_angle_alpha {alpha}\n_cell_angle_beta {beta}\n_cell_angle_gamma {gamma}\n"
        "_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
        f"_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_occupancy\n{rows}\n"
    )


#: A block that pymatgen cannot parse (a cell length that is not a number).
BROKEN_BLOCK = "data_broken\n_cell_length_a 4.0\n_cell_length_b oops\nloop_\n_atom_site_label\n_atom_site_fract_x\nNa1 0.0\n"


def many_blocks(n: int, prefix: str = "b") -> str:
    """``n`` distinct valid blocks (the Cl site moves along z), for large generated files."""
    return "".join(
        cif_block(f"{prefix}{i}", sites=(("Na1", "Na", 0, 0, 0, 1), ("Cl1", "Cl", 0.5, 0.5, f"{0.3 + 0.4 * i / n:.6f}", 1)))
        for i in range(n)
    )


def structure_dict(cell=((4.0, 0, 0), (0, 4.0, 0), (0, 0, 4.0)), sites=(("Na", (0, 0, 0)), ("Cl", (0.5, 0.5, 0.5)))) -> dict:
    """A pymatgen ``Structure.as_dict()``-shaped dict (only what the readers use)."""
    return {
        "@module": "pymatgen.core.structure",
        "@class": "Structure",
        "lattice": {"matrix": [list(map(float, row)) for row in cell]},
        "sites": [{"abc": list(map(float, abc)), "species": [{"element": el, "occu": 1}], "label": el} for el, abc in sites],
    }


def csv_text(rows: list[dict], header: list[str] | None = None) -> str:
    """A CSV file of ``rows`` (CIF cells quoted), in the layout of the real datasets."""
    import csv
    import io

    header = header or list(rows[0])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, quoting=csv.QUOTE_MINIMAL, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# --------------------------------------------------------------------------- cases and outcomes
@dataclass(frozen=True)
class Case:
    """One bad input through one interface.

    ``run(env)`` does the call: for ``cli`` it returns the argument list; for ``api`` it
    calls the function; for ``process`` it returns the process node. ``mention``: regular
    expressions that the message must all match (case-insensitive), so that "clear" means
    it says what is wrong. ``forbid``: patterns it must not match. ``check(env, value)``
    verifies an accepted input (raises ``AssertionError``). ``known``: why the case still
    fails, with the fix needed outside this engineer's files (an ``xfail(strict=True)``).
    """

    name: str
    interface: str
    run: Callable[[Any], Any]
    expect: str = "error"
    mention: tuple[str, ...] = ()
    forbid: tuple[str, ...] = ()
    check: Callable[[Any, Any], None] | None = None
    known: str | None = None
    memory_cap: bool = False

    @property
    def id(self) -> str:
        return f"{self.interface}:{self.name}"


@dataclass
class Outcome:
    """What a case did: the verdict, the message (or what went wrong) and the audit."""

    case: Case
    result: str
    detail: str
    half_stored: list[str] = field(default_factory=list)
    kept: int = 0
    stale: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result in (CLEAR, ACCEPTED) and not self.half_stored

    def explain(self) -> str:
        text = f"{self.case.id}: {self.result}: {self.detail}"
        if self.half_stored:
            text += f"; half-stored: {', '.join(self.half_stored)}"
        return text


def _says(message: str, case: Case) -> str | None:
    """Why ``message`` is not a clear statement of the fault, or ``None``."""
    if "\n" in message.strip():
        return f"the message spans several lines: {message!r}"
    if len(message) > MAX_LINE:
        return f"the message has {len(message)} characters: {message[:120]!r}..."
    for pattern in case.mention:
        if not re.search(pattern, message, re.IGNORECASE):
            return f"the message does not say {pattern!r}: {message!r}"
    for pattern in case.forbid:
        if re.search(pattern, message, re.IGNORECASE):
            return f"the message should not say {pattern!r}: {message!r}"
    return None


def _accept(case: Case, env: Any, value: Any, detail: str) -> tuple[str, str]:
    if case.check is not None:
        try:
            case.check(env, value)
        except AssertionError as exc:
            return WRONGLY_ACCEPTED, f"accepted, but wrongly: {exc}"
    return ACCEPTED, detail


#: Lines that may accompany the error line: click's usage hint and log lines.
_OTHER_LINES = ("Usage:", "Try '", "Report:", "Warning:")
#: A study run's progress lines (``[    0.4 s] step 1/4 import: started``), printed before a step fails.
_STEP_LINE = re.compile(r"^\[\s*\d+\.\d s\] step \d+/\d+ ")


def judge_cli(case: Case, env: Any, result: Any) -> tuple[str, str]:
    """Verdict on a ``CliRunner`` result."""
    text = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        lines = "".join(tb.format_exception(type(result.exception), result.exception, result.exception.__traceback__))
        return TRACEBACK, f"{type(result.exception).__name__} escaped the command: {result.exception}\n{lines[-600:]}"
    if "Traceback" in text:
        return TRACEBACK, f"a traceback in the output: {text[-600:]!r}"
    errors = [line for line in text.splitlines() if line.startswith(("Critical:", "Error:"))]
    if case.expect == "accept":
        if result.exit_code != 0:
            return WRONGLY_REFUSED, f"exit code {result.exit_code}: {' | '.join(errors) or text[-300:]!r}"
        return _accept(case, env, result, text.strip().splitlines()[0] if text.strip() else "")
    if result.exit_code == 0:
        return WRONGLY_ACCEPTED, f"exit code 0: {text[-300:]!r}"
    if len(errors) != 1:
        return UNCLEAR, f"{len(errors)} error lines (exit code {result.exit_code}): {text[-400:]!r}"
    stray = [line for line in text.splitlines() if line.strip() and line not in errors and not line.startswith(_OTHER_LINES) and not _STEP_LINE.match(line)]
    if stray:
        return UNCLEAR, f"the error goes on over {len(stray)} more line(s): {text[-400:]!r}"
    problem = _says(errors[0], case)
    return (UNCLEAR, problem) if problem else (CLEAR, errors[0])


def judge_api(case: Case, env: Any) -> tuple[str, str]:
    """Run an ``api`` case and judge it."""
    try:
        value = case.run(env)
    except ValueError as exc:
        message = f"{type(exc).__name__}: {exc}"
        if case.expect == "accept":
            return WRONGLY_REFUSED, message
        problem = _says(str(exc), case)
        return (UNCLEAR, problem) if problem else (CLEAR, message)
    except Exception as exc:  # noqa: BLE001 - any other exception is the finding
        return TRACEBACK, f"{type(exc).__name__} (not a ValueError): {str(exc)[:200]}"
    if case.expect == "error":
        return WRONGLY_ACCEPTED, f"returned {type(value).__name__} {str(value)[:100]!r}"
    return _accept(case, env, value, f"returned {type(value).__name__}")


def documented_exit_codes(node: Any) -> dict[int, str]:
    """Exit statuses documented for ``node``'s process: the package's exit-code table and
    the codes declared on the process spec (status -> label)."""
    codes: dict[int, str] = {}
    try:
        from aiida_crystinv.exit_codes import EXIT_CODES

        codes.update({status: label for status, (label, _) in EXIT_CODES.items()})
    except ImportError:
        from aiida.engine import ExitCode

        from aiida_crystinv.calculations import functions

        table = getattr(functions, "ExitCodes", None)
        for label in dir(table):
            value = getattr(table, label)
            if isinstance(value, ExitCode):
                codes[value.status] = label
    try:
        for label, code in node.process_class.spec().exit_codes.items():
            if code.status >= 100:  # AiiDA's generic 1-99 (e.g. invalid output) are bugs here
                codes.setdefault(code.status, label)
    except Exception:  # noqa: BLE001 - a process class that cannot be loaded: the table only
        pass
    return codes


def judge_process(case: Case, env: Any, since: int) -> tuple[str, str]:
    """Run a ``process`` case and judge it: ``since`` is the largest node id before it."""
    from aiida import orm

    try:
        node = case.run(env)
    except ValueError as exc:
        created = orm.QueryBuilder().append(orm.ProcessNode, filters={"id": {">": since}}).count()
        message = " ".join(str(exc).split())
        if created:
            return TRACEBACK, f"{type(exc).__name__} raised after a process node was created: {message[:200]}"
        if case.expect == "accept":
            return WRONGLY_REFUSED, f"refused at the ports: {message[:200]}"
        problem = _says(message[:MAX_LINE], case)
        return (UNCLEAR, problem) if problem else (CLEAR, f"refused at the ports: {message[:160]}")
    except Exception as exc:  # noqa: BLE001 - the process excepted (or worse)
        return TRACEBACK, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    if node.is_excepted:
        last = (node.exception or "").strip().splitlines()[-1:] or ["?"]
        return TRACEBACK, f"{node.process_label} <{node.pk}> excepted: {last[0][:200]}"
    if case.expect == "accept":
        if not node.is_finished_ok:
            return WRONGLY_REFUSED, f"{node.process_label} <{node.pk}> [{node.exit_status}] {node.exit_message}"
        return _accept(case, env, node, f"{node.process_label} <{node.pk}> finished ok")
    if node.is_finished_ok:
        return WRONGLY_ACCEPTED, f"{node.process_label} <{node.pk}> finished ok"
    if not node.is_finished:
        return UNCLEAR, f"{node.process_label} <{node.pk}> is {node.process_state}"
    documented = documented_exit_codes(node)
    status = node.exit_status
    message = f"[{status}] {node.exit_message or ''}"
    if status not in documented:
        return UNCLEAR, f"{node.process_label} <{node.pk}> exit status {status} is not documented: {message}"
    problem = _says(node.exit_message or "", case)
    return (UNCLEAR, problem) if problem else (CLEAR, f"{node.process_label} {message} ({documented[status]})")


# --------------------------------------------------------------------------- audit of the profile
def last_node_id() -> int:
    from aiida import orm

    row = orm.QueryBuilder().append(orm.Node, project="id").order_by({orm.Node: {"id": "desc"}}).first()
    return int(row[0]) if row else 0


def audit(since: int) -> tuple[list[str], int, int]:
    """What the nodes newer than ``since`` are: ``(half_stored, kept, stale)``.

    * half-stored: a data node created by a process that did not finish ok, or a data node
      linked to no process at all (stored, then abandoned);
    * kept: data nodes that are only inputs of processes that failed (their provenance);
    * stale: process nodes that never reached a terminal state.
    """
    from aiida import orm
    from aiida.common.links import LinkType

    half: list[str] = []
    kept = stale = 0
    for node in orm.QueryBuilder().append(orm.Node, filters={"id": {">": since}}).all(flat=True):
        name = f"{type(node).__name__}<{node.pk}>"
        if isinstance(node, orm.ProcessNode):
            stale += not node.is_terminated
            continue
        creator = node.creator
        if creator is not None:
            if not creator.is_finished_ok:
                state = creator.process_state.value if creator.process_state else "?"
                half.append(f"{name} created by {creator.process_label}<{creator.pk}> ({state}, exit {creator.exit_status})")
            continue
        consumers = node.base.links.get_outgoing(link_type=(LinkType.INPUT_CALC, LinkType.INPUT_WORK)).all()
        if not consumers:
            half.append(f"{name} linked to no process")
        elif not any(link.node.is_finished_ok for link in consumers):
            kept += 1
    return half, kept, stale


# --------------------------------------------------------------------------- resources
def _vm_bytes() -> int:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


@contextlib.contextmanager
def memory_cap(extra: int = 3 << 30):
    """Cap this process's address space at its current size plus ``extra`` bytes, so that a
    request for a huge array fails at once with ``MemoryError`` instead of exhausting the
    machine (a huge k asks for k x 16 bytes per row). Restored on exit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _vm_bytes() + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_case(case: Case, env: Any) -> Outcome:
    """Run one case (not ``subprocess``), judge it and audit the profile."""
    from click.testing import CliRunner

    from aiida_crystinv.cli import cmd_crystinv

    since = last_node_id()
    start = time.perf_counter()
    cap = memory_cap() if case.memory_cap else contextlib.nullcontext()
    with cap:
        if case.interface == "cli":
            args = [str(a) for a in case.run(env)]
            result = CliRunner().invoke(cmd_crystinv, args, catch_exceptions=True)
            verdict, detail = judge_cli(case, env, result)
        elif case.interface == "api":
            verdict, detail = judge_api(case, env)
        elif case.interface == "process":
            verdict, detail = judge_process(case, env, since)
        else:
            raise ValueError(f"unknown interface {case.interface!r}")
    seconds = time.perf_counter() - start
    half, kept, stale = audit(since)
    return Outcome(case, verdict, detail, half, kept, stale, seconds)


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    """The corpus counts: cases, clear errors, accepted, tracebacks, half-stored..."""
    known = [o for o in outcomes if o.case.known]
    return {
        "cases": len(outcomes),
        "clear errors": sum(o.result == CLEAR for o in outcomes),
        "accepted (valid input)": sum(o.result == ACCEPTED for o in outcomes),
        "tracebacks": sum(o.result == TRACEBACK for o in outcomes),
        "unclear": sum(o.result == UNCLEAR for o in outcomes),
        "wrongly accepted": sum(o.result == WRONGLY_ACCEPTED for o in outcomes),
        "wrongly refused": sum(o.result == WRONGLY_REFUSED for o in outcomes),
        "half-stored results": sum(bool(o.half_stored) for o in outcomes),
        "inputs kept by failed processes": sum(o.kept for o in outcomes),
        "stale process nodes": sum(o.stale for o in outcomes),
        "known failures (xfail, fix elsewhere)": sum(not o.ok for o in known),
    }


def table(outcomes: list[Outcome]) -> str:
    """The corpus as a plain-text table: case, interface, result, message."""
    rows = []
    for o in outcomes:
        detail = " ".join(o.detail.split())
        result = o.result + (" + HALF-STORED" if o.half_stored else "") + (" [xfail]" if o.case.known else "")
        rows.append(f"{o.case.interface:10} {o.case.name:38} {result:30} {detail[:110]}")
    return "\n".join(rows)


def dumps(outcomes: list[Outcome]) -> str:
    """The outcomes as JSON (for a report file)."""
    return json.dumps(
        [
            {
                "case": o.case.name,
                "interface": o.case.interface,
                "result": o.result,
                "detail": o.detail,
                "half_stored": o.half_stored,
                "kept": o.kept,
                "stale": o.stale,
                "known": o.case.known,
            }
            for o in outcomes
        ],
        indent=1,
    )
