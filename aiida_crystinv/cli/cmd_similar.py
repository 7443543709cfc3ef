"""``crystinv duplicates`` (groups of near-duplicates, every pair within a threshold) and
``crystinv search`` (the nearest reference structures to new ones), both exact."""

from __future__ import annotations


import click
from aiida.cmdline.utils import echo

from .cmd_compute import (
    DEFAULT_THRESHOLD,
    DESCRIPTOR_NAMES,
    METRIC_NAMES,
    descriptor_spec,
    emit_knn,
    job_request,
    neighbours_or_exit,
)
from .output import emit_table, table_options
from .params import DATASET, INVARIANTS, KeyValueParamType, job_options
from .root import cmd_crystinv
from .utils import Timer, check_process, clean_errors, count_of, with_profile


@cmd_crystinv.command("duplicates")
@click.argument("invariants", type=INVARIANTS)
@click.option(
    "-t",
    "--threshold",
    type=click.FloatRange(min=0),
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="Structures at most this far apart are near-duplicates (Angstrom for PDD-EMD / AMD).",
)
@click.option("-m", "--metric", type=click.Choice(METRIC_NAMES), default=None, help="Default: by descriptor.")
@click.option("--pairs", "show_pairs", is_flag=True,
              help="List every pair instead of the groups. --format csv|json: groups as one row per member "
              "(group, size, representative, member); pairs as structure, near_duplicate, distance.")
@click.option(
    "-k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="With --code only: neighbours searched per structure by the jobs (a group of more than k+1 copies shows partly).",
)
@table_options
@job_options
@with_profile
@clean_errors
def cmd_duplicates(invariants, threshold, metric, show_pairs, k, code, table_format, output, force, **job):
    """Groups of near-duplicates among the structures of INVARIANTS.

    Every pair at most THRESHOLD apart is found, exactly (never cut by a neighbour
    count: the AMD lower bound prunes the PDD-EMD search); pairs join into groups
    (single linkage), each shown with its representative (the smallest identifier).
    Isometry invariants do not depend on the unit cell, the origin, rotations or the
    order of atoms: two entries of the same crystal are at distance ~0. PDD with
    PDD-EMD (the default for PDD) is the most discriminating; AMD (L-inf) is faster.

    \b
    Example:
        crystinv duplicates 51 --threshold 0.02
        crystinv duplicates 51 --threshold 0 --pairs       # exact duplicates, pair by pair
        crystinv duplicates 51 --pairs --format json > pairs.json
        crystinv duplicates 51 --code crystinv-worker@slurm --max-memory 2000 -k 10
    """
    from aiida_crystinv.data.distances import check_threshold

    try:
        check_threshold(threshold)
    except ValueError as exception:
        echo.echo_critical(str(exception))
    code_node, options = job_request(code, **job)
    if code_node is not None:
        import numpy as np

        from aiida_crystinv.distances import duplicate_groups

        k = min(k, len(invariants) - 1)
        knn, node = neighbours_or_exit(invariants, k, metric, code=code_node, options=options)
        pairs = knn.pairs_within(threshold)
        index = {r: x for x, r in enumerate(invariants.ids)}
        i = np.array([index[a] for a, _, _ in pairs], dtype=np.int64)
        j = np.array([index[b] for _, b, _ in pairs], dtype=np.int64)
        groups = [[invariants.ids[x] for x in g] for g in duplicate_groups(len(invariants), i, j, invariants.ids)]
        where, metric_name = f"kNN graph node {knn.pk}, k={k}", knn.metric
        cut = sum(1 for row in knn.get_knn()[0] if len(row) and row[-1] <= threshold)
    else:
        from aiida_crystinv.workflows.neighbours import find_duplicates

        try:
            found, node = find_duplicates(invariants, threshold, metric)
        except ValueError as exception:
            echo.echo_critical(str(exception))
        check_process(node, "searching near-duplicates")
        pairs, groups, metric_name = found.pairs, found.groups, found.metric
        where, cut = f"node {node.outputs.duplicates.pk}", 0
    from aiida_crystinv.data.frames import metric_unit

    if table_format != "table":  # every pair / member, also when there are none (a valid, empty table)
        if show_pairs:
            headers = ["structure", "near_duplicate", "distance"]
            rows = [[a, b, d] for a, b, d in pairs]
        else:
            headers = ["group", "size", "representative", "member"]
            rows = [[g, len(members), members[0], m] for g, members in enumerate(groups, start=1) for m in members]
        emit_table(headers, rows, table_format=table_format, output=output, force=force,
                   units={"distance": metric_unit(metric_name)} if show_pairs else None)
    if not pairs:
        echo.echo_report(f"no pairs within {threshold} ({metric_name}; {where})")
        return
    if table_format != "table":
        pass  # written above
    elif show_pairs:
        emit_table(["Structure", "Near-duplicate", metric_name], [[a, b, d] for a, b, d in pairs],
                   table_format="table", output=output, force=force, floatfmt=".4f")
    else:
        rows = []
        for g, members in enumerate(groups, start=1):
            others = ", ".join(members[1:])
            rows.append([g, len(members), members[0], others if len(others) <= 70 else others[:67] + "..."])
        emit_table(["Group", "Size", "Representative", "Others"], rows, table_format="table", output=output, force=force)
    echo.echo_success(
        f"{len(groups)} group(s) of near-duplicates ({sum(len(g) for g in groups)} of {len(invariants)} structures, "
        f"{len(pairs)} pair(s) within {threshold}, {metric_name}; {where})"
    )
    if cut:
        echo.echo_warning(f"{cut} structure(s) have all {k} neighbours within {threshold}: pairs may be missing; "
                          "raise -k, or run without --code for the exact search")


@cmd_crystinv.command("search")
@click.argument("queries", metavar="QUERIES")
@click.option("-r", "--reference", type=DATASET, required=True, help="The reference dataset to search in.")
@click.option("-k", type=click.IntRange(min=1), default=5, show_default=True, help="Nearest reference records per query.")
@click.option(
    "-d", "--descriptor", type=click.Choice(DESCRIPTOR_NAMES, case_sensitive=False), default="pdd", show_default=True,
    help="The invariant compared (the reference's are computed once and reused).",
)
@click.option("-p", "--param", "params", type=KeyValueParamType(), multiple=True,
              help="A descriptor parameter, e.g. -p k=100 (repeatable); pdd/amd default k=100.")
@click.option("-m", "--metric", type=click.Choice(METRIC_NAMES), default=None, help="Default: by descriptor.")
@click.option("-F", "--query-format", "format_", type=click.Choice(["auto", "cif", "csv", "json"]), default="auto",
              show_default=True, help="Format of a QUERIES file; 'auto' guesses from the extension.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Queries of the text table (0: none); --format csv|json writes every row.")
@table_options
@with_profile
@clean_errors
def cmd_search(queries, reference, k, descriptor, params, metric, format_, limit, table_format, output, force):
    """The k nearest structures of a reference dataset to each structure of QUERIES (exact).

    QUERIES is a structure file (CIF, CSV, JSON, or a folder of CIFs: imported as a new
    dataset), a dataset (PK, UUID or label) or an AiiDA group of StructureData. The
    reference's invariants are found stored or computed once, then reused by every
    later search against it.

    \b
    Examples:
        crystinv search my_candidates.cif --reference mp-elastic -k 3
        crystinv search 77 -r 51 -d amd -p k=100
        crystinv search my_candidates.cif -r mp-elastic -k 3 -o hits.csv
    """
    from aiida_crystinv.workflows.neighbours import similarity_search

    from .cmd_model import structures_dataset

    params = list(params)
    if descriptor.lower() in ("amd", "pdd") and not any(key == "k" for key, _ in params):
        params.append(("k", 100))
    spec = descriptor_spec(descriptor, params)
    dataset, _ = structures_dataset(queries, format_, what="QUERIES")
    with Timer() as timer:
        try:
            result, node = similarity_search(dataset, reference, spec, k, metric)
        except (ValueError, RuntimeError) as exception:
            echo.echo_critical(str(exception))
    check_process(node, "the search")
    reused = "reused" if result.reused else "computed"
    echo.echo_success(
        f"{result.knn.metric}: the {k} nearest of {len(reference)} reference structures to each of "
        f"{count_of(len(dataset), 'query structure')}: node {result.knn.pk} (reference invariants {result.reference_invariants.pk}, "
        f"{reused}; {timer.seconds:.1f} s)"
    )
    emit_knn(result.knn, table_format=table_format, output=output, force=force, limit=limit, columns=min(k, 3))
