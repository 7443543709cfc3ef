"""Commands that compute: ``invariants``, ``distances``, ``neighbours``, ``duplicates``."""

from __future__ import annotations

import math
import typing as t

import click
from aiida.cmdline.utils import echo

from .output import emit_table, table_options
from .params import DATASET, INVARIANTS, JOB_FLAGS, KeyValueParamType, job_options
from .root import cmd_crystinv
from .utils import Timer, check_process, clean_errors, count_of, run_process, table, with_profile

#: Descriptor names (checked against ``aiida_crystinv.specs.INVARIANTS`` in the tests;
#: listed here so that ``--help`` does not import the numerical layer).
DESCRIPTOR_NAMES = ("amd", "pdd", "grid", "rdf", "composition")
METRIC_NAMES = ("amd_linf", "amd_l1", "amd_l2", "pdd_emd", "grid_emd", "rdf_emd", "composition_l1")
DEFAULT_THRESHOLD = 0.05


# ---------------------------------------------------------------------------- library
def descriptor_spec(name: str, params: t.Iterable[tuple[str, t.Any]] = ()) -> dict[str, t.Any]:
    """``{'name': name, **params}`` checked against the descriptor's parameters.

    Exits with a message listing the valid parameters when one is unknown or invalid.
    """
    from aiida_crystinv.specs import SpecError, parse_invariant

    params = list(params)
    keys = [key for key, _ in params]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        echo.echo_critical(f"-p: parameter(s) {', '.join(repeated)} given more than once; give each once")
    spec = {"name": name.lower(), **dict(params)}
    try:
        parse_invariant(dict(spec), where="-p")
    except SpecError as exception:
        echo.echo_critical(str(exception))
    return spec


def job_request(code: str | None, **given: t.Any) -> tuple[t.Any, dict[str, t.Any]]:
    """The worker code and the job options of ``--code`` / ``--max-memory`` / ...

    Returns ``(None, {})`` without ``--code``; exits with one line for an unknown code, a
    code that is not the worker, or job options without ``--code``.
    """
    from aiida_crystinv.specs import SpecError
    from aiida_crystinv.specs.jobs import parse_job_options

    given = {key: value for key, value in given.items() if value is not None}
    if code is None:
        if given:
            flags = ", ".join(JOB_FLAGS[key] for key in given)
            echo.echo_critical(f"{flags}: job options need --code LABEL@COMPUTER (the worker on a computer); "
                               "without --code the work runs here")
        return None, {}
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        node = orm.load_code(code)
    except (NotExistent, MultipleObjectsError, ValueError) as exception:
        echo.echo_critical(f"--code {code}: {exception}; `verdi code list` shows the codes, "
                           "`crystinv setup-worker COMPUTER` sets the worker up")
    plugin = node.default_calc_job_plugin
    if plugin not in (None, "crystinv.worker"):
        echo.echo_critical(f"--code {code}: this code runs {plugin}, not the crystinv worker; "
                           "`crystinv setup-worker COMPUTER` sets the worker up")
    try:
        options = parse_job_options(given, where="job options").as_dict()
    except SpecError as exception:
        echo.echo_critical(str(exception))
    return node, {key: value for key, value in options.items() if key in given}


def _jobs_report(code: t.Any) -> None:
    echo.echo_report(f"the blocks run as jobs on computer '{code.computer.label}' ({code.computer.scheduler_type}); "
                     "follow them with `verdi process list` (Ctrl-C stops, cancels the jobs submitted and keeps nothing)")


def run_distances_workchain(inputs: dict[str, t.Any], what: str) -> tuple[t.Any, t.Any]:
    """Run a :class:`DistancesWorkChain` here (its jobs go to the code's computer)."""
    from aiida_crystinv.workflows.distances import DistancesWorkChain

    if "code" in inputs:
        _jobs_report(inputs["code"])
    outputs, node = run_process(DistancesWorkChain, inputs, label=what)
    check_process(node, what)
    return outputs["distances"], node


def _chunk_children_done(node: t.Any) -> int:
    """Number of finished sub-processes called by ``node`` (the chunks of a WorkChain)."""
    from aiida import orm

    builder = orm.QueryBuilder()
    builder.append(orm.WorkflowNode, filters={"id": node.pk}, tag="parent")
    builder.append(
        orm.ProcessNode,
        with_incoming="parent",
        filters={"attributes.process_state": "finished"},
    )
    return builder.count()


def compute_invariants(
    dataset: t.Any,
    spec: dict[str, t.Any],
    chunk_size: int | None = None,
    daemon: bool = False,
    label: str = "",
    code: t.Any = None,
    options: dict[str, t.Any] | None = None,
) -> tuple[t.Any, t.Any]:
    """Run (or submit) the InvariantsWorkChain; return ``(invariants or None, process node)``.

    With ``code`` (the worker on a computer) every chunk is a job there, sized by ``options``."""
    from aiida import orm

    from aiida_crystinv.data import InvariantsData
    from aiida_crystinv.workflows.invariants import InvariantsWorkChain

    from .cmd_dataset import output_of_type

    inputs: dict[str, t.Any] = {"dataset": dataset, "descriptor": orm.Dict(spec)}
    if chunk_size is not None:
        inputs["chunk_size"] = orm.Int(chunk_size)
    if code is not None:
        inputs["code"] = code
        if options:
            inputs["options"] = orm.Dict(options)
            if chunk_size is None and "block_size" in options:
                inputs["chunk_size"] = orm.Int(options["block_size"])
        if not daemon:
            _jobs_report(code)
    if daemon:
        return None, submit_to_daemon(InvariantsWorkChain, inputs)
    from aiida_crystinv.workflows.invariants import DEFAULT_CHUNK_SIZE

    n_chunks = math.ceil(len(dataset) / (chunk_size or DEFAULT_CHUNK_SIZE))
    n_chunks = n_chunks if n_chunks > 1 else 0  # a single chunk runs as one calcfunction: no bar
    _, node = run_process(
        InvariantsWorkChain,
        inputs,
        label=label or f"{spec['name']} invariants",
        total=n_chunks,
        count_done=_chunk_children_done,
    )
    check_process(node, f"computing {spec['name']} invariants")
    return output_of_type(node, InvariantsData, "invariants"), node


def submit_to_daemon(process: t.Any, inputs: dict[str, t.Any]) -> t.Any:
    """Submit to the daemon after checking that the profile can; return the process node."""
    from aiida.engine import submit
    from aiida.manage import get_manager

    profile = get_manager().get_profile()
    if profile.process_control_backend is None:
        echo.echo_critical(
            f"profile '{profile.name}' has no broker, so nothing can be submitted to a daemon: run without "
            f"--daemon (in this process), or configure one with `verdi profile configure-broker {profile.name} "
            "core.zeromq` and start it with `verdi daemon start`"
        )
    from aiida.engine.daemon.client import get_daemon_client

    client = get_daemon_client()
    try:
        running = client.is_daemon_running
    except Exception:  # noqa: BLE001
        running = False
    if not running:
        echo.echo_report(f"starting the daemon of profile '{profile.name}' (1 worker; stop it with `verdi daemon stop`)")
        try:
            client.start_daemon(number_workers=1)
        except Exception as exception:  # noqa: BLE001 - DaemonException and friends: one line
            echo.echo_critical(
                f"the daemon of profile '{profile.name}' could not be started ({exception}): start it with "
                f"`verdi -p {profile.name} daemon start`, or run without --daemon (in this process)"
            )
    node = submit(process, **inputs)
    echo.echo_success(f"submitted {process.__name__} <{node.pk}> to the daemon")
    echo.echo(f"  follow it:  verdi process status {node.pk}")
    echo.echo(f"  result:     verdi process show {node.pk}   (then crystinv show <invariants pk>)")
    return node


def _workchain_inputs(invariants: t.Any, other: t.Any, metric: str | None, code: t.Any, options: dict | None) -> dict:
    from aiida import orm

    inputs: dict[str, t.Any] = {"invariants": invariants, "code": code}
    if other is not None:
        inputs["other"] = other
    if metric:
        inputs["metric"] = orm.Dict({"name": metric})
    if options:
        inputs["options"] = orm.Dict(options)
    return inputs


def compute_distances(
    invariants: t.Any, other: t.Any = None, metric: str | None = None, code: t.Any = None, options: dict | None = None
) -> tuple[t.Any, t.Any]:
    """``compute_distances`` as :func:`~aiida_crystinv.workflows.neighbours.launch_distances` runs it (or, with ``code``, the
    ``DistancesWorkChain`` with jobs on the code's computer); exits with its message on bad
    arguments or a failed process. Returns ``(distances, process node)``."""
    from aiida_crystinv.calculations.functions import compute_distances
    from aiida_crystinv.workflows.neighbours import check_metric_applies, distances_inputs

    if code is not None:
        try:
            check_metric_applies(invariants, metric)
        except ValueError as exception:
            echo.echo_critical(str(exception))
        return run_distances_workchain(_workchain_inputs(invariants, other, metric, code, options), "computing distances")
    try:
        inputs = distances_inputs(invariants, other, metric)
    except ValueError as exception:
        echo.echo_critical(str(exception))
    results, node = run_process(compute_distances, inputs)  # Ctrl-C: tidied up, one line
    check_process(node, "computing distances")
    return results.get("distances"), node


def neighbours_or_exit(
    invariants: t.Any, k: int, metric: str | None = None, code: t.Any = None, options: dict | None = None
) -> tuple[t.Any, t.Any]:
    """``compute_neighbours`` as :func:`~aiida_crystinv.workflows.neighbours.launch_neighbours` runs it (or, with ``code``, the
    ``DistancesWorkChain`` with jobs on the code's computer); exits with its message on bad
    arguments or a failed process. Returns ``(kNN distances, process node)``."""
    from aiida_crystinv.calculations.functions import compute_neighbours
    from aiida_crystinv.workflows.neighbours import check_neighbour_count, neighbours_inputs

    if code is not None:
        from aiida import orm

        try:
            check_neighbour_count(invariants, k, metric)
        except ValueError as exception:
            echo.echo_critical(str(exception))
        inputs = {**_workchain_inputs(invariants, None, metric, code, options), "k": orm.Int(k)}
        return run_distances_workchain(inputs, "searching nearest neighbours")
    try:
        inputs = neighbours_inputs(invariants, k, metric)
    except ValueError as exception:
        echo.echo_critical(str(exception))
    results, node = run_process(compute_neighbours, inputs)  # Ctrl-C: tidied up, one line
    check_process(node, "searching nearest neighbours")
    return results.get("distances"), node


# ---------------------------------------------------------------------------- commands
@cmd_crystinv.command("invariants")
@click.argument("dataset", type=DATASET)
@click.option(
    "-d",
    "--descriptor",
    type=click.Choice(DESCRIPTOR_NAMES, case_sensitive=False),
    required=True,
    help="amd: average minimum distances (k,); pdd: pointwise distance distribution; grid: "
    "grouped interatomic distances; rdf: cell-invariant radial distribution; composition: "
    "element-property statistics.",
)
@click.option(
    "-p",
    "--param",
    "params",
    type=KeyValueParamType(),
    multiple=True,
    help="A descriptor parameter, e.g. -p k=100 (repeatable). amd/pdd: k; pdd: collapse, "
    "collapse_tol; grid: cutoff, bin_width, n_shells; rdf: cutoff, bin_width, smearing.",
)
@click.option(
    "-c",
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    help="Structures per sub-process; chunks run in parallel on daemon workers. Default: the WorkChain's.",
)
@click.option("--daemon", is_flag=True, help="Submit to the daemon instead of running in this process.")
@job_options
@with_profile
@clean_errors
def cmd_invariants(dataset, descriptor, params, chunk_size, daemon, code, **job):
    """Compute invariants of every structure of DATASET, as one node.

    Runs the chunked InvariantsWorkChain: here (default, with a progress bar)
    or on the daemon (--daemon). The result is an invariants node whose rows
    match the dataset's records.

    \b
    Examples:
        crystinv invariants 42 --descriptor amd -p k=100
        crystinv invariants 42 --descriptor pdd -p k=50 --chunk-size 500 --daemon
        crystinv invariants 42 -d pdd -p k=100 --code crystinv-worker@slurm --walltime 1:00:00
    """
    spec = descriptor_spec(descriptor, params)
    code_node, options = job_request(code, **job)
    with Timer() as timer:
        invariants, node = compute_invariants(dataset, spec, chunk_size=chunk_size, daemon=daemon, code=code_node,
                                              options=options)
    if invariants is None:
        return
    shape = "x".join(str(s) for s in invariants.feature_shape)
    echo.echo_success(
        f"{descriptor} invariants of {count_of(len(invariants), 'structure')}: node {invariants.pk} "
        f"(features {shape}; {type(node).__name__} {node.pk}; {timer.seconds:.1f} s)"
    )
    echo.echo(f"  next: crystinv neighbours {invariants.pk} -k 5   |   crystinv duplicates {invariants.pk}")


@cmd_crystinv.command("distances")
@click.argument("invariants", type=INVARIANTS)
@click.option(
    "-m",
    "--metric",
    type=click.Choice(METRIC_NAMES),
    default=None,
    help="Default: pdd_emd for PDD, amd_linf for AMD, grid_emd, rdf_emd, composition_l1.",
)
@click.option("-O", "--other", type=INVARIANTS, default=None, help="Distances from INVARIANTS to these (cross).")
@click.option(
    "--form",
    type=click.Choice(("long", "square")),
    default="long",
    show_default=True,
    help="With --format csv|json or -o: long: one row per pair (row, column, distance; a pairwise matrix "
    "lists each pair once); square: the full matrix, one row per structure, one column per structure.",
)
@table_options
@job_options
@with_profile
@clean_errors
def cmd_distances(invariants, metric, other, form, code, table_format, output, force, **job):
    """Distance matrix between all structures of INVARIANTS (or to --other).

    Stored as one distances node (pairwise: condensed; cross: dense).
    For large sets prefer `neighbours`, which stores only the k nearest.
    Prints min / median / max; --format csv|json or -o FILE writes every
    distance (--form long or square).

    \b
    Examples:
        crystinv distances 51 --metric pdd_emd
        crystinv distances 51 --other 77
        crystinv distances 51 --format csv -o d.csv
        crystinv distances 51 --form square -o d.json
        crystinv distances 51 --code crystinv-worker@localhost --block-size 2000
    """
    import numpy as np

    code_node, options = job_request(code, **job)
    with Timer() as timer:
        distances, _ = compute_distances(invariants, other, metric, code=code_node, options=options)
    matrix = distances.get_matrix()
    values = matrix[np.triu_indices_from(matrix, k=1)] if other is None else matrix.ravel()
    echo.echo_success(
        f"{distances.metric} distances {matrix.shape[0]}x{matrix.shape[1]}: node {distances.pk} ({timer.seconds:.1f} s)"
    )
    if values.size:
        echo.echo(
            f"  min {values.min():.4g}  median {np.median(values):.4g}  max {values.max():.4g}  (Angstrom for AMD/PDD)"
        )
    if table_format != "table" or output is not None:
        headers, rows, units = distances_table(distances, form)
        emit_table(headers, rows, table_format=table_format, output=output, force=force, units=units)


def distances_table(distances: t.Any, form: str = "long") -> tuple[list[str], list[list[t.Any]], dict[str, str]]:
    """``(headers, rows, units)`` of a distances node (a matrix or a kNN graph).

    ``long``: a kNN graph gives ``query, neighbour, rank, distance``; a matrix gives
    ``row, column, distance`` (a pairwise matrix each pair once, ``row`` first in record
    order). ``square`` (matrices only): headers ``id`` and the column ids, one row per row
    id; the unit is under ``distance`` in ``units`` (no column has that name).
    """
    from aiida_crystinv.data.frames import distances_frame, metric_unit

    unit = metric_unit(distances.metric)
    if form == "square":
        if distances.is_knn:
            raise click.UsageError("a kNN graph has no square form: use --form long")
        matrix = distances.get_matrix()
        return (["id"] + distances.col_ids, [[r] + row for r, row in zip(distances.row_ids, matrix.tolist())],
                {"distance": unit})
    frame = distances_frame(distances, form="long")
    return list(frame.columns), frame.astype(object).values.tolist(), {"distance": unit}


@cmd_crystinv.command("neighbours")
@click.argument("invariants", type=INVARIANTS)
@click.option("-k", type=click.IntRange(min=1), default=5, show_default=True, help="Neighbours per structure.")
@click.option("-m", "--metric", type=click.Choice(METRIC_NAMES), default=None, help="Default: by descriptor.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="Rows of the text table (0: none); --format csv|json writes every row.")
@table_options
@job_options
@with_profile
@clean_errors
def cmd_neighbours(invariants, k, metric, limit, code, table_format, output, force, **job):
    """The k nearest neighbours of every structure of INVARIANTS (exact).

    Stored as one kNN-graph distances node; prints the first rows.
    --format csv|json (or -o FILE.csv / FILE.json) writes the whole graph, one
    row per edge: query, neighbour, rank, distance.

    \b
    Example:
        crystinv neighbours 51 -k 3
        crystinv neighbours 51 -k 5 -o neighbours.csv
        crystinv neighbours 51 -k 10 --code crystinv-worker@slurm --max-memory 2000 --walltime 2:00:00
    """
    code_node, options = job_request(code, **job)
    with Timer() as timer:
        knn, _ = neighbours_or_exit(invariants, k, metric, code=code_node, options=options)
    echo.echo_success(
        f"{knn.metric} {k}-nearest-neighbour graph of {count_of(knn.shape[0], 'structure')}: node {knn.pk} ({timer.seconds:.1f} s)"
    )
    emit_knn(knn, table_format=table_format, output=output, force=force, limit=limit)


def emit_knn(knn: t.Any, *, table_format: str, output: t.Any, force: bool, limit: int, columns: int = 3) -> None:
    """A kNN graph out: the text table of the first ``limit`` rows (``neighbour
    (distance)`` per column, at most ``columns``; nothing when ``limit`` is 0), or with
    CSV/JSON every edge as ``query, neighbour, rank, distance``."""
    if table_format == "table":
        if not limit:
            return
        distances, indices = knn.get_knn()
        ids, cols = knn.row_ids, knn.col_ids
        shown = min(columns, distances.shape[1])
        body = [
            [ids[i]] + [f"{cols[int(indices[i, j])]} ({distances[i, j]:.4f})" for j in range(shown)]
            for i in range(min(limit, distances.shape[0]))
        ]
        headers = ["Structure"] + [f"Neighbour {j + 1} (distance)" for j in range(shown)]
        emit_table(headers, body, table_format="table", output=output, force=force, total_rows=distances.shape[0])
        return
    headers, rows, units = distances_table(knn, "long")
    emit_table(headers, rows, table_format=table_format, output=output, force=force, units=units)


def knn_table(knn: t.Any, limit: int = 20, columns: int = 3) -> str:
    """The first ``limit`` rows of a kNN graph as a table of ``neighbour (distance)``."""
    distances, indices = knn.get_knn()
    rows, cols = knn.row_ids, knn.col_ids
    shown = min(columns, distances.shape[1])
    body = []
    for i in range(min(limit, distances.shape[0])):
        body.append([rows[i]] + [f"{cols[int(indices[i, j])]} ({distances[i, j]:.4f})" for j in range(shown)])
    headers = ["Structure"] + [f"Neighbour {j + 1} (distance)" for j in range(shown)]
    text = table(body, headers)
    if distances.shape[0] > limit:
        text += f"\n... {distances.shape[0] - limit} more rows (--limit N)"
    return text
