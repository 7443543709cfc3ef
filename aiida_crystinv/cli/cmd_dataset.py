"""Commands on datasets: ``import``, ``list``, ``show``, ``export``."""

from __future__ import annotations

import gzip
import pathlib
import typing as t

import click
from aiida.cmdline.utils import echo

from .output import emit_table, table_options
from .params import DATASET, TargetParamType
from .root import cmd_crystinv
from .utils import Timer, check_process, clean_errors, count_of, is_chunk, is_result, one_line, run_process, with_profile

FORMAT_CHOICES = ("auto", "cif", "csv", "json")

#: How the importer's option names read on this command line.
_OPTION_FLAGS = {
    "use on_error='skip'": "use --on-error skip",
    "on_error='skip'": "--on-error skip",
    "give cif_column=...": "give --cif-column COLUMN",
    "give id_column=...": "give --id-column COLUMN",
    "cif_column=": "--cif-column ",
    "id_column=": "--id-column ",
    "give format=": "give --format",
    "read it as format 'json'": "use --format json",
}


#: What the importer's exit message says about the policy; the command says it once, at the end.
_NOTHING_STORED = (" (nothing was stored; use on_error='skip' to drop it)", " (nothing was stored; use --on-error skip to drop it)")


def output_of_type(node: t.Any, cls: type, name: str | None = None) -> t.Any:
    """The output of a process node that is an instance of ``cls`` (by link label, else by type)."""
    from aiida.common.links import LinkType

    links = node.base.links.get_outgoing(link_type=(LinkType.CREATE, LinkType.RETURN)).all()
    created = [link for link in links if isinstance(link.node, cls)]
    if name is not None:
        for link in created:
            if link.link_label == name:
                return link.node
    if not created:
        echo.echo_critical(f"process {node.pk} has no output of type {cls.__name__}")
    return created[0].node


def _file_is_empty(path: pathlib.Path) -> bool:
    if path.stat().st_size == 0:
        return True
    if path.suffix.lower() in (".gz", ".gzip"):
        try:
            with gzip.open(path, "rb") as handle:
                return not handle.read(1 << 16).strip()
        except (OSError, EOFError):
            return False  # the importer reports a corrupt gzip file
    with path.open("rb") as handle:
        return not handle.read(1 << 16).strip()


def _with_flags(message: str) -> str:
    """An importer message with its option names as this command's flags."""
    for option, flag in _OPTION_FLAGS.items():
        message = message.replace(option, flag)
    return message


def _refuse_unreadable(path: pathlib.Path, options: dict[str, t.Any]) -> None:
    """Exit, before any node is stored, when ``path`` is not a dataset file at all (binary,
    corrupt gzip, not JSON, no CIF column...); bad records are left to the importer."""
    from aiida_crystinv.sources import SourceError, check_bytes

    reader_options = {k: v for k, v in options.items() if k not in ("on_error", "format")}
    try:
        check_bytes(path.read_bytes(), path.name, options.get("format"), **reader_options)
    except SourceError as exception:
        message = str(exception)
        message = message[len(path.name) + 2 :] if message.startswith(f"{path.name}: ") else message
        echo.echo_critical(f"cannot import {path.name}: {one_line(_with_flags(message), 220)} [nothing was stored]")
    except OSError as exception:
        echo.echo_critical(f"cannot read {path}: {exception.strerror or exception} [nothing was stored]")


def import_file(
    path: pathlib.Path,
    *,
    format: str = "auto",
    id_column: str | None = None,
    cif_column: str | None = None,
    targets: t.Sequence[tuple[str, str | None]] = (),
    on_error: str = "fail",
    label: str | None = None,
    description: str | None = None,
    group: str | None = None,
) -> tuple[t.Any, t.Any]:
    """Import ``path`` with the ``import_dataset`` calcfunction; return ``(dataset, process node)``.

    Exits with a clear message (``echo_critical``) on a file that cannot be imported.
    """
    from aiida import orm

    from aiida_crystinv.calculations.functions import import_dataset
    from aiida_crystinv.data.dataset import CrystalDatasetData

    options: dict[str, t.Any] = {"on_error": on_error}
    if path.is_dir():
        cifs = [p for p in path.iterdir() if p.name.lower().endswith((".cif", ".cif.gz"))]
        if not cifs:
            echo.echo_critical(f"{path} is a folder without .cif files: nothing to import")
        file_node: t.Any = orm.FolderData(tree=path.resolve())  # FolderData needs an absolute path
    else:
        if _file_is_empty(path):
            echo.echo_critical(f"{path} is empty: nothing to import")
        if format == "auto":
            from aiida_crystinv.sources import SourceError, detect_format

            try:
                format = detect_format(path.name)
            except SourceError:
                echo.echo_critical(
                    f"cannot tell the format of {path.name} from its extension: use --format cif, csv or json"
                )
        options["format"] = format
        file_node = None
    if id_column:
        options["id_column"] = id_column
    if cif_column:
        options["cif_column"] = cif_column
    if targets:
        options["target_columns"] = [name for name, _ in targets]
        repeated = sorted({name for name in options["target_columns"] if options["target_columns"].count(name) > 1})
        if repeated:
            echo.echo_critical(f"target(s) {', '.join(repeated)} given twice: give each target, and its unit, once")
        units = {name: unit for name, unit in targets if unit}
        if units:
            options["units"] = units
    if file_node is None:
        _refuse_unreadable(path, options)
        with path.open("rb") as handle:
            file_node = orm.SinglefileData(handle, filename=path.name)
    _, node = run_process(import_dataset, {"file": file_node, "options": orm.Dict(options)})
    if node.is_finished and not node.is_finished_ok:
        message = node.exit_message or f"exit status {node.exit_status}"
        hint = ""
        for said in _NOTHING_STORED:
            if said in message:
                message = message.replace(said, "")
                hint = "; --on-error skip imports the valid records"
        message = _with_flags(message)
        echo.echo_critical(
            f"importing {path.name} failed: {one_line(message, 220)} [import_dataset {node.pk}; nothing was stored{hint}]"
        )
    check_process(node, f"importing {path.name}")
    dataset = output_of_type(node, CrystalDatasetData, "dataset")
    if label is not None:
        dataset.label = label
    if description is not None:
        dataset.description = description
    if group:
        group_node, created = orm.Group.collection.get_or_create(group)
        group_node.add_nodes(dataset)
        if created:
            echo.echo_report(f"created group '{group}'")
    return dataset, node


@cmd_crystinv.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=True, path_type=pathlib.Path))
@click.option(
    "-F",
    "--format",
    "format_",
    type=click.Choice(FORMAT_CHOICES),
    default="auto",
    show_default=True,
    help="File format; 'auto' guesses from the extension (.cif, .csv, .json, optionally .gz).",
)
@click.option("--id-column", help="CSV/JSON: column (key) with the record identifiers, e.g. material_id.")
@click.option("--cif-column", help="CSV: column with the CIF text of each record [default: cif].")
@click.option(
    "-t",
    "--target",
    "targets",
    type=TargetParamType(),
    multiple=True,
    help="CSV/JSON: a numeric column to keep as a target, optionally with its unit "
    "(repeat for several columns; each column once). Default: every column holding a number in "
    "any record (a record with text or nothing there is a bad record).",
)
@click.option(
    "--on-error",
    type=click.Choice(("fail", "skip")),
    default="fail",
    show_default=True,
    help="A bad record: 'fail' stores nothing and names it; 'skip' imports the rest and records "
    "the skipped ones with their reasons.",
)
@click.option("-L", "--label", help="Label of the new dataset node.")
@click.option("-D", "--description", help="Description of the new dataset node.")
@click.option("-G", "--group", help="Add the dataset to this group (created if needed).")
@with_profile
@clean_errors
def cmd_import(file, format_, id_column, cif_column, targets, on_error, label, description, group):
    """Import the structures of FILE as one dataset node.

    FILE is a CIF file (one or more data_ blocks), a CSV file with a column of
    CIF text and numeric target columns, a JSON list of records with a
    pymatgen structure dict each (any of them may be gzipped), or a folder of
    CIF files. The import runs
    as the `import_dataset` calcfunction: the file is stored as a
    SinglefileData node and linked to the dataset it produced.

    \b
    Examples:
        crystinv import structures.cif --label my-cifs
        crystinv import carbon24.csv.gz --id-column material_id --target energy_per_atom:eV/atom
        crystinv import mp.json.gz --target bulk_modulus_vrh:GPa --on-error skip --group mp
    """
    with Timer() as timer:
        dataset, node = import_file(
            file,
            format=format_,
            id_column=id_column,
            cif_column=cif_column,
            targets=targets,
            on_error=on_error,
            label=label,
            description=description,
            group=group,
        )
    skipped = dataset.skipped
    echo.echo_success(
        f"imported {count_of(len(dataset), 'structure')} from {file.name} as dataset {dataset.pk} "
        f"(import_dataset process {node.pk}, {timer.seconds:.1f} s)"
    )
    if dataset.target_names:
        units = dataset.units
        echo.echo(
            "  targets: " + ", ".join(f"{n} [{units.get(n) or '-'}]" for n in dataset.target_names)
        )
    if skipped:
        echo.echo_warning(f"{len(skipped)} record(s) skipped; `crystinv show {dataset.pk}` lists them with reasons")
    same = dataset.find_same_content()
    if same:
        earlier = ", ".join(str(n.pk) + (f" ({n.label})" if n.label else "") for n in same[:5])
        echo.echo_report(
            f"the same records and targets were imported before: dataset {earlier}"
            f"{' and more' if len(same) > 5 else ''}. Both are kept; invariants, distances and models "
            "computed there belong to that node."
        )


_LIST_KINDS = {
    "datasets": "crystinv.dataset",
    "invariants": "crystinv.invariants",
    "distances": "crystinv.distances",
}


def _dataset_row(node: t.Any) -> list[t.Any]:
    return [
        node.pk,
        node.label or "",
        len(node),
        ", ".join(node.target_names) or "-",
        len(node.skipped),
        node.ctime.strftime("%Y-%m-%d %H:%M"),
    ]


def _invariants_row(node: t.Any) -> list[t.Any]:
    return [
        node.pk,
        node.descriptor,
        ", ".join(f"{k}={v}" for k, v in node.parameters.items()),
        len(node),
        _source_dataset_pk(node),
        node.ctime.strftime("%Y-%m-%d %H:%M"),
    ]


def _distances_row(node: t.Any) -> list[t.Any]:
    rows, cols = node.shape
    kind = f"knn (k={node.base.attributes.get('k')})" if node.is_knn else node.layout
    return [node.pk, node.metric, kind, f"{rows}x{cols}", node.ctime.strftime("%Y-%m-%d %H:%M")]


def _source_dataset_pk(node: t.Any) -> str:
    """PK of the dataset an invariants node was computed from (recorded by UUID)."""
    from aiida import orm

    uuid = node.dataset_uuid
    if not uuid:
        return "-"
    try:
        return str(orm.load_node(uuid).pk)
    except Exception:  # noqa: BLE001 - e.g. the dataset lives in another profile
        return "-"


@cmd_crystinv.command("list")
@click.option(
    "-w",
    "--what",
    type=click.Choice(tuple(_LIST_KINDS)),
    default="datasets",
    show_default=True,
    help="Which kind of node to list.",
)
@click.option("-G", "--group", help="Only nodes in this group.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most this many (newest first).")
@click.option(
    "-a",
    "--all",
    "show_all",
    is_flag=True,
    help="Also nodes that are not results: per-chunk invariants of chunked runs, and outputs of processes that did "
    "not finish ok (killed, excepted, failed; `crystinv clean` deletes them).",
)
@table_options
@with_profile
@clean_errors
def cmd_list(what, group, limit, show_all, table_format, output, force):
    """List datasets (or invariants / distances nodes) with their size and date.

    \b
    Examples:
        crystinv list
        crystinv list --what invariants
        crystinv list --group mp
        crystinv list --what invariants --format json
    """
    from aiida import orm
    from aiida.plugins import DataFactory

    cls = DataFactory(_LIST_KINDS[what])
    builder = orm.QueryBuilder()
    if group:
        try:
            group_node = orm.load_group(group)
        except Exception:  # noqa: BLE001
            echo.echo_critical(f"no group with label {group!r}: `verdi group list` shows the groups")
        builder.append(orm.Group, filters={"id": group_node.pk}, tag="group")
        builder.append(cls, with_group="group", project="*")
    else:
        builder.append(cls, project="*")
    builder.order_by({cls: {"ctime": "desc"}})
    nodes = [row[0] for row in builder.all()]
    if not show_all:  # only finished results
        nodes = [n for n in nodes if is_result(n) and not (what == "invariants" and is_chunk(n))]
    if limit:
        nodes = nodes[:limit]
    if not nodes:
        hint = "crystinv import FILE` or `crystinv demo" if what == "datasets" else "crystinv invariants DATASET"
        echo.echo_report(f"no {what} found: create some with `{hint}`")
        if table_format == "table":
            return  # CSV / JSON: an empty table (headers only), still valid to parse
    if what == "datasets":
        headers = ["PK", "Label", "Structures", "Targets", "Skipped", "Created"]
        rows = [_dataset_row(n) for n in nodes]
    elif what == "invariants":
        headers = ["PK", "Descriptor", "Parameters", "Rows", "Dataset", "Created"]
        rows = [_invariants_row(n) for n in nodes]
    else:
        headers = ["PK", "Metric", "Kind", "Shape", "Created"]
        rows = [_distances_row(n) for n in nodes]
    emit_table(headers, rows, table_format=table_format, output=output, force=force)


@cmd_crystinv.command("export")
@click.argument("dataset", type=DATASET)
@click.option(
    "-i",
    "--ids",
    "ids",
    multiple=True,
    help="Only these records (identifiers; repeat the option or separate with commas). Default: all.",
)
@click.option(
    "-F",
    "--format",
    "format_",
    type=click.Choice(("cif", "csv", "json")),
    default=None,
    help="cif: one multi-block CIF file; csv: columns id, formula, cif (CIF text) and the targets, "
    "units in the header ('bulk_modulus [GPa]'); json: {units, records: [{id, formula, structure, "
    "targets...}]}. csv and json are re-importable with every target value and unit. Default: "
    "from the extension of --output.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=pathlib.Path),
    required=True,
    help="File to write (.cif, .csv or .json; .csv.gz and .json.gz are compressed).",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite the output file if it exists.")
@with_profile
@clean_errors
def cmd_export(dataset, ids, format_, output, force):
    """Write the structures (and targets) of DATASET to a CIF, CSV or JSON file.

    CSV and JSON files import back (`crystinv import`) with the same identifiers,
    target values (bit-exact) and units.

    \b
    Examples:
        crystinv export 42 -o all.cif
        crystinv export 42 -o all.csv
        crystinv export 42 --ids mp-149,mp-2534 -o two.json
    """
    if output.exists() and not force:
        echo.echo_critical(f"{output} exists: use --force to overwrite it")
    if format_ is None:
        suffixes = [s.lower() for s in output.suffixes]
        if ".cif" in suffixes:
            format_ = "cif"
        elif ".json" in suffixes:
            format_ = "json"
        elif ".csv" in suffixes:
            format_ = "csv"
        else:
            echo.echo_critical(f"cannot tell the format from {output.name}: use --format cif, csv or json")
    wanted = [i.strip() for chunk in ids for i in chunk.split(",") if i.strip()] or None
    repeated = sorted({i for i in wanted or () if wanted.count(i) > 1})  # type: ignore[union-attr]
    if repeated:
        echo.echo_critical(f"--ids names {', '.join(map(repr, repeated[:5]))} more than once: give each record once")
    try:
        writers = {"cif": dataset.to_cif_text, "csv": dataset.to_csv_text, "json": dataset.to_json_text}
        text = writers[format_](wanted)
    except KeyError as exception:
        echo.echo_critical(exception.args[0])
    if format_ in ("json", "csv") and output.suffix.lower() == ".gz":
        with gzip.open(output, "wt", newline="") as handle:
            handle.write(text)
    else:
        output.write_text(text)
    n = len(dataset) if wanted is None else len(wanted)
    echo.echo_success(f"wrote {count_of(n, 'structure')} of dataset {dataset.pk} to {output} ({format_})")
