"""What a stopped or failed run leaves behind, and its removal: unfinished process nodes,
outputs of processes that did not finish ok, input nodes linked to nothing, scheduler jobs,
repository files no node refers to; and the words for a storage that cannot be written.
Used by the tidy-up after an interrupt (:mod:`.interrupt`), by ``crystinv clean`` and by
:func:`.utils.run_process`."""

from __future__ import annotations

import logging
import typing as t

from aiida.cmdline.utils import echo

from .messages import count_of, one_line

#: Terminal process states; any other (created, running, waiting, or none recorded: a
#: command stopped right after the node was stored) is unfinished.
TERMINAL_STATES = ("finished", "excepted", "killed")


def unfinished_filter() -> dict[str, t.Any]:
    """QueryBuilder filters of the process nodes that are not terminated, those with no
    recorded state included (spelled out: a JSON null is not matched by ``!in`` on every
    database)."""
    return {
        "or": [
            {"attributes.process_state": {"!in": list(TERMINAL_STATES)}},
            {"attributes": {"!has_key": "process_state"}},
        ]
    }


def _fresh_session() -> None:
    """End the transaction an interrupt or a storage error left open (it may hold the
    database's write lock); a broken session is replaced."""
    from aiida.manage import get_manager

    manager = get_manager()
    try:
        manager.get_profile_storage().get_session().rollback()
        return
    except Exception:  # noqa: BLE001 - a broken session: start a new one
        pass
    try:
        manager.reset_profile_storage()
    except Exception:  # noqa: BLE001 - SQLAlchemy refuses to close a session whose commit a signal cut in half
        # ("method 'commit()' is already in progress"): that storage object is dropped
        # unclosed, and the next use opens a new one (its SQLite transaction, if any, was
        # rolled back by `release_interrupted_cursors`)
        manager._profile_storage = None


def _describe_outputs(node: t.Any) -> str:
    """``'import_dataset <3>: dataset <4>'``: a finished process and what it created."""
    from aiida.common.links import LinkType

    try:
        links = node.base.links.get_outgoing(link_type=(LinkType.CREATE, LinkType.RETURN)).all()
        made = [f"{link.link_label} <{link.node.pk}>" for link in links][:3]
        return f"{node.process_label} <{node.pk}>" + (f" ({', '.join(made)})" if made else "")
    except Exception:  # noqa: BLE001 - said in words only
        return "a finished process"


def _stored_inputs(inputs: t.Mapping[str, t.Any]) -> list[t.Any]:
    """The unstored nodes among ``inputs`` (nested namespaces too): stored by the process's
    creation, they are orphans if that fails."""
    from aiida import orm

    found = []
    for value in inputs.values():
        if isinstance(value, orm.Node) and not value.is_stored:
            found.append(value)
        elif isinstance(value, t.Mapping):
            found.extend(_stored_inputs(value))
    return found


def _pk_or_none(node: t.Any) -> int | None:
    """``node.pk``, or None: not stored, already deleted (its row is gone), or of a storage
    that was closed meanwhile."""
    try:
        return node.pk
    except Exception:  # noqa: BLE001 - ObjectDeletedError, ClosedStorage, ...
        return None


def _known_identity(node: t.Any) -> tuple[int | None, str | None]:
    """``(pk, uuid)`` of ``node`` (a pk itself, or a node; uuid None when not known), also
    when the node cannot tell its pk any more: an object whose storage session was reset,
    or whose store a signal cut short after the database had committed it (SQLAlchemy then
    rolls the object back to unsaved, but keeps the values it had; the uuid, made before
    the store, tells whether the row of that pk is this node). ``(None, None)``: never
    stored."""
    if isinstance(node, int):
        return node, None
    pk = _pk_or_none(node)
    try:
        from sqlalchemy import inspect

        model = node.backend_entity.bare_model
        values = vars(model)  # what the object holds, without asking the database
        uuid = str(values["uuid"]) if values.get("uuid") is not None else None
        if pk is None:
            identity = inspect(model).identity
            pk = int(identity[0]) if identity else values.get("id")
    except Exception:  # noqa: BLE001 - not a node of an SQL storage
        uuid = None
    return pk, (uuid if pk is not None else None)


def forget_orphans(nodes: t.Sequence[t.Any]) -> None:
    """Delete the nodes of ``nodes`` (nodes or pks) that are stored but linked to nothing
    (the process they were stored for was never created, or was deleted with its
    interrupted run)."""
    from aiida import orm

    candidates: dict[int, str | None] = {}
    for pk, uuid in map(_known_identity, nodes):
        if pk is not None:
            candidates.setdefault(pk, uuid)
    pks = []
    for pk, uuid in sorted(candidates.items()):
        try:
            rows = orm.QueryBuilder().append(orm.Node, filters={"id": pk}, project="uuid").all(flat=True)
            if not rows or (uuid is not None and str(rows[0]) != uuid):
                continue  # gone, or the pk is another node's (a rolled-back insert's pk reused)
            loaded = orm.load_node(pk)
            if not loaded.base.links.get_outgoing().all() and not loaded.base.links.get_incoming().all():
                pks.append(pk)
        except Exception:  # noqa: BLE001 - best effort
            continue
    if pks:
        try:
            _quiet_delete(pks)
        except Exception:  # noqa: BLE001 - best effort; `crystinv clean` reports what is left
            pass


def inputs_made_by_run(node: t.Any) -> list[t.Any]:
    """Input nodes of the processes of ``node``'s call tree that were stored during the run
    (the chunks' row ranges, ...): they are linked to nothing once the run is deleted."""
    from aiida import orm
    from aiida.common.links import LinkType

    tree = [node] + (list(node.called_descendants) if isinstance(node, orm.WorkflowNode) else [])
    return [
        link.node
        for proc in tree
        for link in proc.base.links.get_incoming(link_type=(LinkType.INPUT_CALC, LinkType.INPUT_WORK)).all()
        if link.node.pk > node.pk
    ]


def cancel_scheduler_jobs(calcs: list[t.Any]) -> list[str]:
    """Cancel the scheduler jobs of unfinished CalcJobs (through each computer's transport
    and scheduler); says which were cancelled and which could not be. Returns the job ids
    cancelled."""
    cancelled: list[str] = []
    for calc in calcs:
        job_id = calc.get_job_id()
        if not job_id:
            continue
        try:
            with calc.computer.get_transport() as transport:
                scheduler = calc.computer.get_scheduler()
                scheduler.set_transport(transport)
                scheduler.kill_job(job_id)
            cancelled.append(job_id)
        except Exception as exception:  # noqa: BLE001 - report and go on with the others
            echo.echo_warning(f"job {job_id} of {calc.process_label} <{calc.pk}> on '{calc.computer.label}' could not be "
                              f"cancelled ({one_line(str(exception))}): cancel it with the scheduler's own command")
    if cancelled:
        echo.echo_report(f"cancelled {count_of(len(cancelled), 'scheduler job')}: {', '.join(cancelled)}")
    return cancelled


def _quiet_delete(pks: list[int]) -> None:
    from aiida.tools import delete_nodes

    delete_logger = logging.getLogger("aiida.delete")
    level = delete_logger.level
    delete_logger.setLevel(logging.WARNING)
    try:
        delete_nodes(pks, dry_run=False)
    finally:
        delete_logger.setLevel(level)


def failed_outputs(node: t.Any, everything: bool = False) -> list[int]:
    """The data nodes *created* by the processes of ``node``'s call tree that did not finish
    ok (see :func:`discard_failed_outputs`), sorted pks; with ``everything``, also those of
    sub-processes that finished ok (the partial results of a run that was stopped), except
    those that a process outside the tree already uses."""
    from aiida import orm
    from aiida.common.links import LinkType

    processes = [node]
    if isinstance(node, orm.WorkflowNode):
        processes.extend(node.called_descendants)
    tree = {proc.pk for proc in processes}
    pks = set()
    for proc in processes:
        failed = not proc.is_finished_ok and not (isinstance(proc, orm.CalcJobNode) and proc.is_finished)
        if not (failed or everything):
            continue
        for link in proc.base.links.get_outgoing(link_type=LinkType.CREATE).all():
            if not failed and _used_outside(link.node, tree):
                continue  # a valid result another run already builds on: deleting it would delete that run too
            pks.add(link.node.pk)
    return sorted(pks)


def _used_outside(node: t.Any, tree: set[int]) -> bool:
    """Whether a data node is an input of a process outside ``tree`` (pks)."""
    from aiida.common.links import LinkType

    links = node.base.links.get_outgoing(link_type=(LinkType.INPUT_CALC, LinkType.INPUT_WORK)).all()
    return any(link.node.pk not in tree for link in links)


def discard_failed_outputs(node: t.Any, everything: bool = False) -> list[int]:
    """Delete the data nodes *created* by the processes of ``node``'s call tree that did not
    finish ok (killed, excepted, failed, or never terminated); return their pks.

    A process function interrupted with Ctrl-C is marked killed, but its body runs to the
    end and its outputs are attached anyway: a result of a killed run must not be mistaken
    for a valid one. A CalcJob that finished with an exit status keeps its outputs (the
    retrieved files, the parsed output of a failed DFT run): they are the record of the
    external code's failure, not a result, and its exit status says so.

    With ``everything`` (a run that was interrupted or abandoned), the outputs of its
    sub-processes that finished ok go too (AiiDA's deletion rules then delete those
    processes and their callers: nothing of the run is left)."""
    pks = failed_outputs(node, everything)
    if pks:
        _quiet_delete(pks)
    return pks


# ---------------------------------------------------------------------------- storage errors
#: Words of an error that mean the profile's storage cannot be written, and what to say.
_STORAGE_CAUSES: tuple[tuple[str, str], ...] = (
    ("database or disk is full", "database or disk is full"),
    ("no space left on device", "disk full (no space left on device)"),
    ("disk quota exceeded", "disk quota exceeded"),
    ("attempt to write a readonly database", "read-only database (attempt to write a readonly database)"),
    ("read-only file system", "read-only file system"),
    ("readonly database", "read-only database"),
    ("disk i/o error", "disk I/O error (is the disk full?)"),
)


def storage_problem_text(text: str) -> str:
    """One sentence naming the cause when ``text`` (an error message or a traceback) says
    the storage cannot be written (disk full, read-only), else ``''``."""
    low = text.lower()
    for needle, cause in _STORAGE_CAUSES:
        if needle in low:
            return f"{cause}: the profile's storage{_storage_place()} cannot be written; free space (or make it writable) and run again"
    return ""


def storage_problem(exception: BaseException) -> str:
    """:func:`storage_problem_text` for an exception and its causes (``errno`` ENOSPC,
    EDQUOT, EROFS; SQLite's "database or disk is full", "readonly database")."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = exception
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "errno", None)
        if code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            cause = {errno.ENOSPC: "disk full (no space left on device)", errno.EDQUOT: "disk quota exceeded",
                     errno.EROFS: "read-only file system"}[code]
            return f"{cause}: the profile's storage{_storage_place()} cannot be written; free space (or make it writable) and run again"
        said = storage_problem_text(str(current))
        if said:
            return said
        current = current.__cause__ or current.__context__
    return ""


def _storage_place() -> str:
    try:
        from aiida.manage import get_manager

        path = get_manager().get_profile().storage_config.get("filepath")
        return f" ({path})" if path else ""
    except Exception:  # noqa: BLE001 - said without the place
        return ""


def maintain_quietly() -> None:
    """``verdi storage maintain`` (not the full one, which needs no other process using the
    profile): removes repository files no node refers to, without its report lines."""
    from aiida.manage import get_manager

    logging.disable(logging.CRITICAL)
    try:
        get_manager().get_profile_storage().maintain(full=False, dry_run=False)
    finally:
        logging.disable(logging.NOTSET)


def _drop_new_loose_objects() -> None:
    """Delete the loose repository files written since this command started that no node
    refers to (what a write that failed on a full disk left; the repository's own index
    may not open then, so the files are found on disk and checked against the nodes)."""
    import pathlib

    import psutil
    from aiida import orm
    from aiida.manage import get_manager

    filepath = get_manager().get_profile().storage_config.get("filepath")
    if not filepath:
        return
    loose = pathlib.Path(filepath) / "container" / "loose"
    started = psutil.Process().create_time()
    new = {p.parent.name + p.name: p for p in loose.glob("*/*") if p.is_file() and p.stat().st_mtime >= started}
    if not new:
        return
    referenced: set[str] = set()

    def walk(meta: t.Any) -> None:
        if isinstance(meta, dict):
            if "k" in meta:
                referenced.add(meta["k"])
            for value in (meta.get("o") or {}).values():
                walk(value)

    for (meta,) in orm.QueryBuilder().append(orm.Node, project="repository_metadata").iterall():
        walk(meta)
    for key, path in new.items():
        if key not in referenced:
            path.unlink(missing_ok=True)
