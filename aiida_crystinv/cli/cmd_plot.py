"""``crystinv plot``: pictures (PNG) of distance matrices and datasets.

``heatmap`` (a distance matrix ordered by hierarchical clustering, with its dendrogram),
``map`` (a 2-D MDS map of a set coloured by a target) and ``landscape`` (a target against
mass density, the lowest points marked). The pictures are drawn by
:mod:`aiida_crystinv.learning.maps`; the commands read the nodes and write the file, and
store nothing.
"""

from __future__ import annotations

import pathlib
import typing as t

import click
from aiida.cmdline.utils import echo

from .params import DATASET, CrystinvNodeParamType
from .root import cmd_crystinv
from .utils import clean_errors, count_of, table, with_profile

__all__ = ("cmd_plot", "distance_matrix_of", "dataset_of_distances", "target_of")

DISTANCES = CrystinvNodeParamType("DISTANCES", "crystinv.distances")

#: Linkage methods (checked against ``learning.maps.LINKAGE_METHODS`` in the tests; listed
#: here so that ``--help`` does not import the numerical layer).
LINKAGE_NAMES = ("average", "single", "complete", "weighted")
#: Most records of a picture (``learning.maps.MAX_HEATMAP`` / ``MAX_MAP``; checked in the tests).
MAX_RECORDS = 2000
#: Largest condensed matrix (entries) read whole; a larger one is read row by row for a sample.
_READ_WHOLE = 25_000_000


def distance_unit(metric: str) -> str:
    """Angstrom for the AMD / PDD / GRID / RDF metrics; none for ``composition_l1``."""
    return "" if metric.startswith("composition") else "Angstrom"


def _condensed_sample(distances: t.Any, n: int, rows: t.Any) -> t.Any:
    """The (m, m) matrix of the records ``rows`` (sorted positions) of a condensed node of
    ``n`` records, reading only the row segments of those records from the repository."""
    from aiida_crystinv.data._arrays import read_rows
    from aiida_crystinv.learning.maps import condensed_submatrix

    with distances.base.repository.open("condensed.npy", mode="rb") as handle:

        def read(start: int, stop: int) -> t.Any:
            handle.seek(0)
            return read_rows(handle, start, stop)

        return condensed_submatrix(read, n, rows)


def distance_matrix_of(distances: t.Any, sample: int | None, seed: int, limit: int = MAX_RECORDS) -> tuple[t.Any, list[str]]:
    """``(D, ids)``: the (m, m) pairwise distances of a distances node (all its records, or
    ``sample`` of them drawn with ``seed``) and their identifiers.

    Exits with one line for a kNN graph, a cross-distance matrix, or more than ``limit``
    records without ``--sample``.
    """
    import numpy as np

    from aiida_crystinv.learning.maps import sample_indices

    pk = distances.pk
    if distances.is_knn:
        echo.echo_critical(
            f"distances {pk} are a kNN graph (the k nearest of each record), not a full matrix: compute all pairwise "
            "distances with `crystinv distances INVARIANTS` and plot that node"
        )
    n_rows, n_cols = distances.shape
    if not distances.base.attributes.get("same_set", True) or n_rows != n_cols:
        echo.echo_critical(
            f"distances {pk} are between two sets ({n_rows} x {n_cols}); this picture needs the pairwise distances "
            "within one set (`crystinv distances INVARIANTS` without --other)"
        )
    n = n_rows
    if sample is None and n > limit:
        echo.echo_critical(
            f"distances {pk} hold {n} records; a picture of more than {limit} is not readable: give --sample N "
            f"(N <= {limit}) to draw N records chosen at random (--seed S)"
        )
    rows = sample_indices(n, sample or n, seed)
    ids = distances.row_ids
    if distances.layout == "condensed":
        if len(rows) == n or n * (n - 1) // 2 <= _READ_WHOLE:
            from scipy.spatial.distance import squareform

            D = squareform(distances.get_condensed(), checks=False)[np.ix_(rows, rows)]
        else:
            D = _condensed_sample(distances, n, rows)
    else:
        D = distances.get_matrix()[np.ix_(rows, rows)]
    return D, [ids[int(i)] for i in rows]


def dataset_of_distances(distances: t.Any) -> t.Any:
    """The dataset whose records a distances node compares, found through provenance (the
    invariants it was computed from record their dataset's UUID), or None."""
    from aiida import orm

    from aiida_crystinv.data import CrystalDatasetData, DistancesData, InvariantsData

    builder = orm.QueryBuilder()
    builder.append(DistancesData, filters={"id": distances.pk}, tag="distances")
    builder.append(InvariantsData, with_descendants="distances", project="*")
    wanted = set(distances.row_ids)
    seen: set[str] = set()
    for (invariants,) in builder.all():
        uuid = invariants.dataset_uuid
        if not uuid or uuid in seen:
            continue
        seen.add(uuid)
        try:
            dataset = orm.load_node(uuid)
        except Exception:  # noqa: BLE001 - deleted, or in another profile
            continue
        if isinstance(dataset, CrystalDatasetData) and wanted <= set(dataset.ids):
            return dataset
    return None


def target_of(dataset: t.Any, target: str, ids: t.Sequence[str] | None = None) -> tuple[t.Any, str]:
    """``(values, unit)`` of a target of ``dataset`` (for the records ``ids``, in that
    order); exits with one line naming the dataset's targets when it has no such target."""
    import numpy as np

    if target not in dataset.target_names:
        have = ", ".join(dataset.target_names) or "none"
        echo.echo_critical(f"dataset {dataset.pk} has no target {target!r}; its targets: {have}")
    values = dataset.get_target(target)
    if ids is not None:
        position = {r: x for x, r in enumerate(dataset.ids)}
        missing = [r for r in ids if r not in position]
        if missing:
            echo.echo_critical(
                f"dataset {dataset.pk} does not hold {count_of(len(missing), 'record')} of the distances "
                f"(e.g. {missing[0]!r}): give the dataset they were computed from with --dataset"
            )
        values = values[np.array([position[r] for r in ids], dtype=np.int64)]
    return values, dataset.units.get(target) or ""


def _png_path(output: pathlib.Path, force: bool) -> pathlib.Path:
    """Refuse (before any work) an output that is not a .png or that cannot be written."""
    from .output import check_output

    if output.suffix.lower() != ".png":
        raise click.BadParameter(f"{output.name}: the picture is a PNG file; give a name ending in .png",
                                 param_hint="'-o' / '--output'")
    check_output(output, force)
    return output


def _wrote(path: pathlib.Path, what: str) -> None:
    echo.echo_success(f"wrote {path} ({what}; {path.stat().st_size / 1024:.0f} kB)")


def _plot_failed(exception: ValueError) -> t.NoReturn:
    from .utils import one_line

    echo.echo_critical(one_line(f"cannot draw the picture: {exception}"))
    raise AssertionError  # unreachable: echo_critical exits


#: Options shared by the three commands.
_OUTPUT = (
    click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=pathlib.Path), required=True,
                 help="The PNG file to write."),
    click.option("-f", "--force", is_flag=True, help="Overwrite the output file if it exists."),
    click.option("--title", default=None, help="Title of the picture [default: says what it shows]."),
)
_SAMPLE = (
    click.option("--sample", type=click.IntRange(2, MAX_RECORDS), default=None,
                 help=f"Draw this many records chosen at random (needed above {MAX_RECORDS} records)."),
    click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of --sample (and of the MDS)."),
)


def _options(*groups: tuple) -> t.Callable:
    def decorate(func: t.Callable) -> t.Callable:
        for group in reversed(groups):
            for option in reversed(group):
                func = option(func)
        return func

    return decorate


@cmd_crystinv.group("plot")
def cmd_plot() -> None:
    """Pictures (PNG) of distance matrices and datasets; nothing is stored.

    \b
    heatmap    a distance matrix ordered by hierarchical clustering, with the dendrogram
    map        a 2-D map (metric MDS) of a set, coloured by a target
    landscape  a target (an energy) against density, the lowest points marked

    \b
    Examples:
        crystinv plot heatmap 230 -o heatmap.png
        crystinv plot map 230 --target ewald_energy_per_atom -o map.png
        crystinv plot landscape 155 --target energy_per_atom -o landscape.png
    """


@cmd_plot.command("heatmap")
@click.argument("distances", type=DISTANCES)
@_options(_OUTPUT, _SAMPLE)
@click.option("--method", type=click.Choice(LINKAGE_NAMES), default="average", show_default=True,
              help="Linkage of the hierarchical clustering that orders the rows (average: UPGMA).")
@with_profile
@clean_errors
def cmd_plot_heatmap(distances, output, force, title, sample, seed, method):
    """Heatmap of the pairwise DISTANCES, rows ordered by a dendrogram.

    DISTANCES is a pairwise distances node (`crystinv distances INVARIANTS`). The
    records are clustered hierarchically (scipy, --method linkage) and shown in
    the order of the dendrogram's leaves, so groups of similar structures are
    blocks on the diagonal. Above 2000 records give --sample N.

    \b
    Example:
        crystinv plot heatmap 230 -o heatmap.png
        crystinv plot heatmap 230 --sample 500 --method complete -o heatmap.png
    """
    from aiida_crystinv.learning.maps import heatmap_png

    path = _png_path(output, force)
    D, ids = distance_matrix_of(distances, sample, seed)
    of = f"{len(ids)} of {distances.shape[0]}" if len(ids) < distances.shape[0] else str(len(ids))
    try:
        heatmap_png(D, ids, title=title if title is not None else f"{distances.metric} distances <{distances.pk}>, {of} records",
                    unit=distance_unit(distances.metric), method=method, path=path)
    except ValueError as exception:
        _plot_failed(exception)
    _wrote(path, f"heatmap of {of} records, {distances.metric}, {method} linkage")


@cmd_plot.command("map")
@click.argument("distances", type=DISTANCES)
@click.option("-t", "--target", required=True, help="The target that colours the points (a target of the dataset).")
@click.option("-d", "--dataset", type=DATASET, default=None,
              help="The dataset holding the target [default: the one the distances were computed from].")
@_options(_OUTPUT, _SAMPLE)
@with_profile
@clean_errors
def cmd_plot_map(distances, target, dataset, output, force, title, sample, seed):
    """2-D map of the records of DISTANCES, coloured by a target.

    The points are placed by metric multidimensional scaling of the distance
    matrix (scikit-learn MDS on the precomputed distances, seeded), so that
    their distances on the page approximate the stored ones; the picture says
    how well (Kruskal's stress-1: 0 exact, below 0.1 faithful). The target is
    read from the dataset the distances were computed from (found through
    provenance) or from --dataset, matched by record identifier. Above 2000
    records give --sample N.

    \b
    Example:
        crystinv plot map 230 --target ewald_energy_per_atom -o map.png
        crystinv plot map 230 -t energy_per_atom --dataset 155 --sample 1000 -o map.png
    """
    from aiida_crystinv.learning.maps import map_png

    path = _png_path(output, force)
    if dataset is None:
        dataset = dataset_of_distances(distances)
        if dataset is None:
            echo.echo_critical(
                f"the dataset of distances {distances.pk} cannot be found through provenance: give it with --dataset"
            )
    elif not set(distances.row_ids) <= set(dataset.ids):
        missing = next(r for r in distances.row_ids if r not in set(dataset.ids))
        echo.echo_critical(f"dataset {dataset.pk} does not hold the records of distances {distances.pk} (e.g. {missing!r})")
    target_of(dataset, target)  # a missing target exits before the matrix is read
    D, ids = distance_matrix_of(distances, sample, seed)
    values, unit = target_of(dataset, target, ids)
    of = f"{len(ids)} of {distances.shape[0]}" if len(ids) < distances.shape[0] else str(len(ids))
    try:
        map_png(D, values, target=target, unit=unit, distance_unit=distance_unit(distances.metric), labels=ids,
                title=title if title is not None else f"{distances.metric} map of dataset <{dataset.pk}>, {of} records",
                random_state=seed, path=path)
    except ValueError as exception:
        _plot_failed(exception)
    _wrote(path, f"MDS map of {of} records, {distances.metric}, coloured by {target} of dataset {dataset.pk}")


@cmd_plot.command("landscape")
@click.argument("dataset", type=DATASET)
@click.option("-t", "--target", required=True, help="The target on the vertical axis, e.g. energy_per_atom.")
@click.option("-n", "--lowest", type=click.IntRange(min=0), default=5, show_default=True,
              help="Mark (and list) this many of the lowest points.")
@click.option("--relative", is_flag=True, help="Plot the target minus its lowest value (energy above the minimum).")
@_options(_OUTPUT)
@with_profile
@clean_errors
def cmd_plot_landscape(dataset, target, lowest, relative, output, force, title):
    """Target against density of the structures of DATASET (a CSP landscape).

    The density (g/cm^3) of each structure is computed from its cell and atoms
    (occupancy-weighted atomic masses over the cell volume); the lowest points
    of the target are marked on the picture and listed.

    \b
    Example:
        crystinv plot landscape 155 --target energy_per_atom -o landscape.png
        crystinv plot landscape 155 -t energy_per_atom --relative --lowest 10 -o landscape.png
    """
    import numpy as np

    from aiida_crystinv.learning.maps import landscape_png, lowest_indices, mass_density

    path = _png_path(output, force)
    values, unit = target_of(dataset, target)
    density = np.array([mass_density(c) for c in dataset.get_crystals()])
    if relative:
        finite = values[np.isfinite(values)]
        values = values - (finite.min() if finite.size else 0.0)
    label = f"{target} - lowest" if relative else target
    ids = dataset.ids
    try:
        landscape_png(density, values, target=label, unit=unit, labels=ids, n_lowest=lowest,
                      title=title if title is not None else f"{target} against density, dataset <{dataset.pk}> ({len(ids)} structures)",
                      path=path)
    except ValueError as exception:
        _plot_failed(exception)
    low = lowest_indices(values, lowest)
    if len(low):
        rows = [[rank, ids[i], density[i], values[i]] for rank, i in enumerate(low, start=1)]
        echo.echo(table(rows, ["Rank", "Structure", "Density (g/cm^3)", f"{label} ({unit or '-'})"], floatfmt=".5g"))
    _wrote(path, f"{target} against density of {count_of(len(ids), 'structure')} of dataset {dataset.pk}")
