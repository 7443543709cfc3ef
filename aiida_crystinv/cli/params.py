"""Click parameter types and reusable options of the ``crystinv`` commands."""

from __future__ import annotations

import json
import math
import typing as t

import click
from aiida.cmdline.params.types import DataParamType

__all__ = (
    "CrystinvNodeParamType",
    "KeyValueParamType",
    "TargetParamType",
    "FiniteFloatRange",
    "DATASET",
    "INVARIANTS",
    "CRYSTINV_NODE",
    "MODEL",
)

#: Entry points (``aiida.data``) of the node types, with the words used in messages.
NODE_KINDS = {
    "crystinv.dataset": ("a crystal dataset", "crystinv list"),
    "crystinv.invariants": ("an invariants node", "crystinv list --what invariants"),
    "crystinv.distances": ("a distances node", "crystinv list --what distances"),
    "crystinv.model": ("a trained model", "verdi node list -e crystinv.model"),
}


class CrystinvNodeParamType(DataParamType):
    """A node given by PK, UUID or label, checked to be one of the ``crystinv`` node types.

    A node of another type is refused with a message naming its actual type and the
    command that lists the right ones (instead of a generic "not found").
    """

    def __init__(self, name: str, *entry_points: str):
        super().__init__()
        self.name = name
        self.entry_points = entry_points

    def convert(self, value: t.Any, param: click.Parameter | None, ctx: click.Context | None) -> t.Any:
        from aiida.common.exceptions import EntryPointError
        from aiida.orm import Node
        from aiida.plugins import DataFactory

        if isinstance(value, Node):
            node = value
        else:
            from .utils import require_profile

            require_profile()
            try:
                node = super().convert(value, param, ctx)
            except click.BadParameter:
                self._fail_for_other_node(value, param, ctx)
                raise
        classes = []
        for entry_point in self.entry_points:
            try:
                classes.append(DataFactory(entry_point))
            except (EntryPointError, ImportError) as exception:
                self.fail(f"the node type {entry_point} cannot be loaded ({exception}); is aiida-crystinv installed?")
        if not isinstance(node, tuple(classes)):
            kinds = " or ".join(NODE_KINDS[e][0] for e in self.entry_points)
            hint = NODE_KINDS[self.entry_points[0]][1]
            name = type(node).__name__
            article = "an" if name[0] in "AEIOU" else "a"
            self.fail(
                f"node {node.pk} is {article} {name} ({node.node_type.rstrip('.')}), not {kinds}; "
                f"`{hint}` shows the ones you have",
                param,
                ctx,
            )
        return node

    def _fail_for_other_node(self, value: t.Any, param: click.Parameter | None, ctx: click.Context | None) -> None:
        """When ``value`` names a node that is not a data node (a process, say): say what it
        is, and which of its outputs are of the wanted kind, instead of "no Data found"."""
        from aiida import orm
        from aiida.common.links import LinkType
        from aiida.plugins import DataFactory

        try:
            node = orm.load_node(value)
        except Exception:  # noqa: BLE001 - not a node at all: AiiDA's own message stands
            return
        if not isinstance(node, orm.ProcessNode):
            return
        try:
            wanted = tuple(DataFactory(entry_point) for entry_point in self.entry_points)
        except Exception:  # noqa: BLE001 - said by `convert`
            return
        kinds = " or ".join(NODE_KINDS[e][0] for e in self.entry_points)
        links = node.base.links.get_outgoing(link_type=(LinkType.CREATE, LinkType.RETURN)).all()
        fitting = [f"{link.link_label} <{link.node.pk}>" for link in links if isinstance(link.node, wanted)]
        said = f"node {node.pk} is the process {node.process_label} <{node.pk}> ({node.process_state.value if node.process_state else 'no state'}), not {kinds}"
        if fitting:
            said += f"; give its output instead: {', '.join(fitting[:5])}"
        else:
            said += f"; it has no output of that kind (`verdi process show {node.pk}` lists its outputs)"
        self.fail(said, param, ctx)


def _parse_scalar(text: str) -> t.Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, ``"[1,2]"`` -> [1, 2], else the string."""
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _non_finite(value: t.Any) -> bool:
    """Whether a parsed value holds a NaN or an infinity (at any depth of a JSON list)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    return False


def _first_time(ctx: click.Context | None, param: click.Parameter | None, key: str) -> bool:
    """Record ``key`` as given for ``param`` in this command invocation; ``False`` when it
    was given already (a repeated option value is refused, never silently overridden)."""
    if ctx is None or param is None:
        return True
    seen = ctx.meta.setdefault(f"crystinv.seen.{param.name}", set())
    if key in seen:
        return False
    seen.add(key)
    return True


def _flag(param: click.Parameter | None) -> str:
    opts = getattr(param, "opts", None) or []
    return min(opts, key=len) if opts else "the option"


class KeyValueParamType(click.ParamType):
    """``key=value``; the value is read as a number, boolean, JSON list or string.

    A NaN or infinite number (``k=nan``, ``eps=inf``, ``[1, NaN]``) is refused, and so is a
    key given twice in one command (``-p k=100 -p k=5``).
    """

    name = "KEY=VALUE"

    def convert(self, value: t.Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, t.Any]:
        if isinstance(value, tuple):
            return value
        key, sep, raw = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r} is not of the form key=value (e.g. k=100)", param, ctx)
        key = key.strip()
        parsed = _parse_scalar(raw)
        if _non_finite(parsed) or (isinstance(parsed, str) and _is_non_finite_word(parsed)):
            self.fail(f"{key}={raw.strip()}: NaN and infinite values are not accepted; give a finite number", param, ctx)
        if not _first_time(ctx, param, key):
            self.fail(f"{_flag(param)}: parameter(s) {key} given more than once; give each once", param, ctx)
        return key, parsed


def _is_non_finite_word(text: str) -> bool:
    """``'nan'``, ``'-inf'``, ``'Infinity'`` ... (what ``float()`` reads as not finite)."""
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


class TargetParamType(click.ParamType):
    """``COLUMN`` or ``COLUMN:UNIT``, e.g. ``bulk_modulus_vrh:GPa``; a column given twice
    in one command (with the same unit or another) is refused."""

    name = "COLUMN[:UNIT]"

    def convert(self, value: t.Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str | None]:
        if isinstance(value, tuple):
            return value
        column, sep, unit = str(value).partition(":")
        column = column.strip()
        if not column:
            self.fail(f"{value!r}: the column name is empty", param, ctx)
        if not _first_time(ctx, param, column):
            self.fail(f"{column} is given twice ({_flag(param)} {column}[:UNIT]): give each target, "
                      "and its unit, once", param, ctx)
        return column, (unit.strip() or None) if sep else None


class FiniteFloatRange(click.FloatRange):
    """A ``click.FloatRange`` that also refuses NaN and infinities (``nan`` compares false
    with every bound, so a plain ``FloatRange(min=0)`` lets it through)."""

    def convert(self, value: t.Any, param: click.Parameter | None, ctx: click.Context | None) -> t.Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


DATASET = CrystinvNodeParamType("DATASET", "crystinv.dataset")
INVARIANTS = CrystinvNodeParamType("INVARIANTS", "crystinv.invariants")
CRYSTINV_NODE = CrystinvNodeParamType(
    "NODE", "crystinv.dataset", "crystinv.invariants", "crystinv.distances", "crystinv.model"
)
MODEL = CrystinvNodeParamType("MODEL", "crystinv.model")


class WalltimeParamType(click.ParamType):
    """A wall-clock limit: seconds (``3600``) or ``[[D-]HH:]MM:SS`` (``1:00:00``) -> seconds."""

    name = "SECONDS|HH:MM:SS"

    def convert(self, value: t.Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        days, _, clock = text.rpartition("-") if "-" in text else ("", "", text)
        try:
            parts = [int(p) for p in clock.split(":")]
            seconds = 0
            for part in parts:
                if part < 0:
                    raise ValueError
                seconds = seconds * 60 + part
            seconds += int(days or 0) * 86400
        except ValueError:
            self.fail(f"{value!r} is not a duration: give seconds (3600) or HH:MM:SS (1:00:00)", param, ctx)
        if len(parts) > 3 or seconds < 1:
            self.fail(f"{value!r} is not a duration of at least one second (seconds or [D-]HH:MM:SS)", param, ctx)
        return seconds


#: The options that send the work to a computer (``--code``) and size its jobs; they make
#: a :class:`~aiida_crystinv.specs.jobs.JobOptions` (``job_options_of`` in cmd_compute).
JOB_OPTIONS = (
    click.option("--code", "code", default=None, metavar="LABEL@COMPUTER",
                 help="The worker (`crystinv setup-worker`) on an AiiDA computer: every block is a job there, "
                      "through its scheduler. Default: here, in this process."),
    click.option("--max-memory", "max_memory_mb", type=FiniteFloatRange(min=1), default=None, metavar="MB",
                 help="Memory bound of one job, MiB: blocks are sized to stay below it (SLURM is given it as --mem)."),
    click.option("--walltime", type=WalltimeParamType(), default=None,
                 help="Wall-clock limit of one job (a job past it is split in two and rerun)."),
    click.option("--block-size", type=click.IntRange(min=1), default=None,
                 help="Records per job (default 5000, lowered to fit --max-memory)."),
    click.option("--num-machines", type=click.IntRange(min=1), default=None, help="Machines per job (default 1)."),
    click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads (cores) per job (default 1)."),
    click.option("--max-jobs", "max_concurrent", type=click.IntRange(min=1), default=None,
                 help="Jobs submitted at a time (default 100; core.direct runs all it is given at once, so give it "
                      "about cores / threads)."),
    click.option("--queue", "queue_name", default=None, help="Scheduler queue / partition."),
    click.option("--account", default=None, help="Scheduler account."),
)


#: The flag of each job option (for messages).
JOB_FLAGS = {"max_memory_mb": "--max-memory", "walltime": "--walltime", "block_size": "--block-size",
             "num_machines": "--num-machines", "threads": "--threads", "max_concurrent": "--max-jobs",
             "queue_name": "--queue", "account": "--account"}


def job_options(func: t.Callable) -> t.Callable:
    """Add :data:`JOB_OPTIONS` to a command."""
    for option in reversed(JOB_OPTIONS):
        func = option(func)
    return func
