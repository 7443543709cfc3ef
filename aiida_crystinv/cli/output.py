"""Tables out of the commands: ``--format table|csv|json`` and ``-o/--output FILE``.

Every command that prints a table takes :func:`table_options` and hands its table to
:func:`emit_table`::

    @cmd_crystinv.command("neighbours")
    @click.argument("invariants", type=INVARIANTS)
    @table_options
    @with_profile
    @clean_errors
    def cmd_neighbours(invariants, table_format, output, force):
        ...
        emit_table(headers, rows, table_format=table_format, output=output, force=force, limit=limit)

* ``table`` (the default) prints the text table, cut at ``limit`` rows with a
  ``... N more rows`` line;
* ``csv`` and ``json`` write *all* rows, never cut, to ``-o FILE`` or to stdout. Floats are
  written with ``repr`` (the shortest text that reads back to the same float), so values
  round-trip bit-exactly. CSV headers carry units as ``name [unit]``; JSON is
  ``{"units": {column: unit}, "columns": [...], "records": [{column: value}, ...]}``, like
  the JSON export of a dataset.

With ``-o x.csv`` or ``-o x.json`` and no ``--format``, the format is taken from the
suffix. An existing file is never overwritten without ``--force``; this is checked
before the command does any work.

When a CSV/JSON table goes to stdout, every other message of the command (``echo_report``,
``echo_success``, warnings, process reports) goes to stderr, so stdout parses: the
:func:`table_options` wrapper does this for the whole command (:func:`messages_to_stderr`).
A command that writes to stdout itself should use ``click.echo(..., err=True)`` for
anything that is not the table.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import math
import os
import pathlib
import sys
import tempfile
import typing as t

import click

__all__ = (
    "TABLE_FORMATS",
    "table_options",
    "emit_table",
    "resolve_format",
    "check_output",
    "messages_to_stderr",
    "format_table",
    "emit_frame",
    "to_plain",
)

#: The values of ``--format``.
TABLE_FORMATS = ("table", "csv", "json")

#: File suffixes that choose a format when ``--format`` is not given.
_SUFFIX_FORMATS = {".csv": "csv", ".json": "json"}

F = t.TypeVar("F", bound=t.Callable[..., t.Any])


def resolve_format(table_format: str | None, output: pathlib.Path | None) -> str:
    """The format to write: ``table_format`` if given, else from the suffix of ``output``
    (``.csv``, ``.json``), else ``table``."""
    if table_format:
        if table_format not in TABLE_FORMATS:
            raise ValueError(f"format {table_format!r} is not one of {', '.join(TABLE_FORMATS)}")
        return table_format
    if output is not None:
        return _SUFFIX_FORMATS.get(pathlib.Path(output).suffix.lower(), "table")
    return "table"


def check_output(output: pathlib.Path | None, force: bool) -> None:
    """Refuse an output path that cannot be written: an existing file without ``force``, a
    directory, or a file in a folder that does not exist (:class:`click.BadParameter`)."""
    if output is None:
        return
    path = pathlib.Path(output)
    if path.is_dir():
        raise click.BadParameter(f"{path} is a directory; give a file name", param_hint="'-o' / '--output'")
    if path.exists() and not force:
        raise click.BadParameter(
            f"{path} exists; give --force to overwrite it, or another file name", param_hint="'-o' / '--output'"
        )
    parent = path.parent if str(path.parent) else pathlib.Path(".")
    if not parent.is_dir():
        raise click.BadParameter(f"the folder {parent} does not exist", param_hint="'-o' / '--output'")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise click.BadParameter(f"{path} cannot be written (permission denied)", param_hint="'-o' / '--output'")


@contextlib.contextmanager
def messages_to_stderr(enabled: bool = True) -> t.Iterator[None]:
    """While active, every message of AiiDA's command-line logger (``echo.echo``,
    ``echo_report``, ``echo_success``, ``echo_warning``, and process reports when they reach
    the terminal through it) goes to stderr, so that stdout holds only the table.

    The handler class is patched for the duration (AiiDA may reconfigure logging, and so
    replace handler instances, while a command runs); it is restored on exit.
    """
    if not enabled:
        yield
        return
    from aiida.cmdline.utils.log import CliHandler

    original = CliHandler.emit

    def emit(self: t.Any, record: t.Any) -> None:
        record.err = True
        original(self, record)

    CliHandler.emit = emit  # type: ignore[method-assign]
    try:
        yield
    finally:
        CliHandler.emit = original  # type: ignore[method-assign]


def table_options(func: F | None = None, *, force: bool | None = None) -> t.Any:
    """Add ``--format [table|csv|json]``, ``-o/--output FILE`` and (unless the command has
    one already, or ``force=False``) ``-f/--force`` to a click command.

    The command receives the keyword arguments ``table_format`` (resolved: ``table``,
    ``csv`` or ``json``; from the suffix of ``-o`` when ``--format`` is not given),
    ``output`` (a :class:`pathlib.Path` or ``None`` for stdout) and ``force``. An existing
    ``-o`` file without ``--force`` is refused before the command runs; while a CSV/JSON
    table goes to stdout, the command's other messages go to stderr.

    Place it below ``@cmd.command(...)`` and above ``@with_profile``.
    """

    def decorate(function: F) -> F:
        own_force = force
        if own_force is None:
            existing = {getattr(p, "name", None) for p in getattr(function, "__click_params__", [])}
            own_force = "force" not in existing

        @functools.wraps(function)
        def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
            output = kwargs.get("output")
            kwargs["table_format"] = resolve_format(kwargs.get("table_format"), output)
            check_output(output, bool(kwargs.get("force", False)))
            to_stdout = output is None and kwargs["table_format"] != "table"
            with messages_to_stderr(to_stdout):
                return function(*args, **kwargs)

        decorated: t.Any = wrapper
        if own_force:
            decorated = click.option(
                "-f", "--force", is_flag=True, default=False, help="Overwrite the -o/--output file if it exists."
            )(decorated)
        decorated = click.option(
            "-o",
            "--output",
            type=click.Path(dir_okay=False, path_type=pathlib.Path),
            default=None,
            help="Write the table to this file instead of stdout (.csv / .json choose the format).",
        )(decorated)
        decorated = click.option(
            "--format",
            "table_format",
            type=click.Choice(TABLE_FORMATS),
            default=None,
            help="table: text to read (cut at --limit rows where the command prints a limited table); "
            "csv / json: the whole table, floats in full precision, units in the CSV header or under "
            "\"units\" in JSON. Default: from the -o suffix (.csv, .json), else table.",
        )(decorated)
        return t.cast(F, decorated)

    if func is not None:
        return decorate(func)
    return decorate


def to_plain(value: t.Any) -> t.Any:
    """A value as a plain Python scalar: numpy scalars become ``int``/``float``/``bool``/
    ``str``; ``None`` stays; anything else is returned as is."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def _csv_cell(value: t.Any) -> str:
    value = to_plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _json_value(value: t.Any) -> t.Any:
    value = to_plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def _headers_with_units(headers: t.Sequence[str], units: dict[str, str] | None) -> list[str]:
    units = units or {}
    return [f"{h} [{units[h]}]" if units.get(h) else str(h) for h in headers]


def format_table(
    headers: list[str],
    rows: list[list[t.Any]],
    *,
    table_format: str,
    units: dict[str, str] | None = None,
    limit: int | None = None,
    floatfmt: str = ".4g",
    total_rows: int | None = None,
) -> str:
    """The text of a table in ``table_format`` (see :func:`emit_table`)."""
    if total_rows is not None and total_rows != len(rows) and table_format != "table":
        raise ValueError(f"a {table_format} table is written whole: got {len(rows)} of {total_rows} rows")
    for number, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"row {number} has {len(row)} values for {len(headers)} columns")
    if table_format == "table":
        from .utils import table

        shown = rows if limit is None else rows[:limit]
        text = table([[to_plain(v) for v in row] for row in shown], _headers_with_units(headers, units), floatfmt=floatfmt)
        total = len(rows) if total_rows is None else max(total_rows, len(rows))
        if total > len(shown):
            text += f"\n... {total - len(shown)} more rows (--limit N, or --format csv|json for all)"
        return text
    if table_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_headers_with_units(headers, units))
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row])
        return buffer.getvalue()
    if table_format == "json":
        columns = [str(h) for h in headers]
        document = {
            "units": {h: u for h, u in (units or {}).items() if u},
            "columns": columns,
            "records": [dict(zip(columns, (_json_value(v) for v in row))) for row in rows],
        }
        return json.dumps(document, allow_nan=False) + "\n"
    raise ValueError(f"format {table_format!r} is not one of {', '.join(TABLE_FORMATS)}")


def _write_atomically(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, renamed at the
    end: a failure never leaves a half-written file."""
    folder = path.parent if str(path.parent) else pathlib.Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _to_stdout(text: str) -> None:
    """Print ``text``; a reader that closed the pipe (``| head``) is not an error: the rest
    of the command's stdout goes to ``/dev/null`` and the command goes on (exit status 0,
    as ``ripgrep`` does), its stderr messages still shown."""
    try:
        click.echo(text, nl=not text.endswith("\n"))
        sys.stdout.flush()
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass


def emit_table(
    headers: list[str],
    rows: list[list[t.Any]],
    *,
    table_format: str,
    output: pathlib.Path | None,
    units: dict[str, str] | None = None,
    limit: int | None = None,
    floatfmt: str = ".4g",
    force: bool = False,
    total_rows: int | None = None,
) -> None:
    """Print or write a table.

    :param headers: column names (without units).
    :param rows: one list of values per row, as many as ``headers``; numpy scalars are fine.
    :param table_format: ``table`` (text, cut at ``limit`` rows), ``csv`` or ``json`` (all rows).
    :param output: file to write, or ``None`` for stdout.
    :param units: unit of some columns, e.g. ``{"distance": "Angstrom"}``: CSV and text headers
        become ``distance [Angstrom]``; JSON has them under ``"units"``.
    :param limit: most rows of the text table (``None``: all); CSV/JSON are never cut.
    :param floatfmt: number format of the text table (CSV/JSON use full precision).
    :param force: overwrite ``output`` if it exists.
    :param total_rows: text table only: the number of rows of the whole table when ``rows``
        holds only the first ones (the rest are counted in the ``... N more rows`` line
        without being built); CSV/JSON need every row (``ValueError`` otherwise).
    """
    text = format_table(
        headers, rows, table_format=table_format, units=units, limit=limit, floatfmt=floatfmt, total_rows=total_rows
    )
    if output is None:
        _to_stdout(text)
        return
    path = pathlib.Path(output)
    check_output(path, force)
    if table_format == "table" and not text.endswith("\n"):
        text += "\n"
    _write_atomically(path, text)
    click.echo(f"wrote {len(rows)} rows to {path}", err=True)


def emit_frame(frame: t.Any, **options: t.Any) -> None:
    """:func:`emit_table` of a ``pandas.DataFrame`` (e.g. from
    :func:`aiida_crystinv.data.to_dataframe`): its columns, its rows, the units in
    ``frame.attrs["units"]``. A named index (the square form of a distance matrix) becomes
    the first column. ``options`` as :func:`emit_table`."""
    if frame.index.name is not None:
        frame = frame.reset_index()
    headers = [str(c) for c in frame.columns]
    rows = frame.astype(object).values.tolist()
    units = options.pop("units", None) or dict(frame.attrs.get("units", {}))
    emit_table(headers, rows, units=units, **options)
