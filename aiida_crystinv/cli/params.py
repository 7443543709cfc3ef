"""Click parameter types and reusable options of the ``crystinv`` commands."""

from __future__ import annotations

import json
import typing as t

import click
from aiida.cmdline.params.types import DataParamType

__all__ = (
    "CrystinvNodeParamType",
    "KeyValueParamType",
    "TargetParamType",
    "DATASET",
    "INVARIANTS",
    "CRYSTINV_NODE",
)

#: Entry points (``aiida.data``) of the node types, with the words used in messages.
NODE_KINDS = {
    "crystinv.dataset": ("a crystal dataset", "crystinv list"),
    "crystinv.invariants": ("an invariants node", "crystinv list --what invariants"),
    "crystinv.distances": ("a distances node", "crystinv list --what distances"),
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
            node = super().convert(value, param, ctx)
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


class KeyValueParamType(click.ParamType):
    """``key=value``; the value is read as a number, boolean, JSON list or string."""

    name = "KEY=VALUE"

    def convert(self, value: t.Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, t.Any]:
        if isinstance(value, tuple):
            return value
        key, sep, raw = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r} is not of the form key=value (e.g. k=100)", param, ctx)
        return key.strip(), _parse_scalar(raw)


class TargetParamType(click.ParamType):
    """``COLUMN`` or ``COLUMN:UNIT``, e.g. ``bulk_modulus_vrh:GPa``."""

    name = "COLUMN[:UNIT]"

    def convert(self, value: t.Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str | None]:
        if isinstance(value, tuple):
            return value
        column, sep, unit = str(value).partition(":")
        if not column.strip():
            self.fail(f"{value!r}: the column name is empty", param, ctx)
        return column.strip(), (unit.strip() or None) if sep else None


DATASET = CrystinvNodeParamType("DATASET", "crystinv.dataset")
INVARIANTS = CrystinvNodeParamType("INVARIANTS", "crystinv.invariants")
CRYSTINV_NODE = CrystinvNodeParamType("NODE", "crystinv.dataset", "crystinv.invariants", "crystinv.distances")


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
    click.option("--max-memory", "max_memory_mb", type=click.FloatRange(min=1), default=None, metavar="MB",
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
