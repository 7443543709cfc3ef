"""Provenance-tracked steps as calcfunctions: import, invariants, distances, hand-offs.

Each function takes and returns nodes, so every output is linked to its inputs. Failures
return an :class:`~aiida.engine.ExitCode` (see :class:`ExitCodes`) and store no output
node. Inputs of the wrong node type are rejected before the function runs by AiiDA's
input validation (a ``ValueError`` naming the port and the expected type), or, for the
dynamic ``**kwargs`` inputs, by exit code 340.

==========================  =========================================================  ======================
calcfunction                inputs                                                     outputs
==========================  =========================================================  ======================
``import_dataset``          ``file`` (SinglefileData | FolderData of CIFs),            ``dataset``
                            ``options`` (Dict, optional)
``import_materials_project`` ``query`` (Dict), ``options`` (Dict, optional)            ``dataset``
``compute_invariants``      ``dataset``, ``descriptor`` (Dict), ``chunk`` (Dict,       ``invariants``
                            optional ``{start, stop}``)
``compute_invariant_set``   ``dataset``, ``descriptors`` (List of Dicts or names)      ``<name>`` per descriptor
``merge_invariants``        ``**chunks`` (InvariantsData)                              ``invariants``
``compute_distances``       ``invariants``, ``other`` (optional), ``metric``           ``distances``
                            (Dict | Str, optional)
``nearest_neighbours``      ``invariants``, ``k`` (Int), ``metric`` (optional),        ``distances`` (kNN)
                            ``other`` (optional)
``structure_invariants``    ``structure`` (StructureData), ``descriptor`` (Dict)       ``invariants``
``extract_structures``      ``dataset``, ``ids`` (List)                                ``structures.<id>``
``collect_structures``      ``**structures`` (StructureData)                           ``dataset``
==========================  =========================================================  ======================
"""

from __future__ import annotations

import re
from typing import Any

from aiida import orm
from aiida.engine import ExitCode, calcfunction

from ..data import CrystalDatasetData, DistancesData, InvariantsData
from ..data.distances import METRICS, UnknownMetricError, resolve_metric
from ..data.invariants import DESCRIPTORS, UnknownDescriptorError, compute_arrays, resolve_descriptor
from ..invariants import InvalidStructureError
from ..sources import ON_ERROR, RecordError, SourceError

__all__ = [
    "ExitCodes",
    "IMPORT_OPTIONS",
    "import_dataset",
    "import_materials_project",
    "compute_invariants",
    "compute_invariant_set",
    "merge_invariants",
    "compute_distances",
    "nearest_neighbours",
    "structure_invariants",
    "extract_structures",
    "collect_structures",
    "output_label",
]


class ExitCodes:
    """Exit codes of the calcfunctions, grouped by meaning (3xx: the input is at fault)."""

    #: 300-309: the input file or source cannot be read at all
    ERROR_READING_INPUT = ExitCode(300, "the input cannot be read: {message}")
    ERROR_INVALID_OPTIONS = ExitCode(301, "invalid options: {message}")
    #: 310-319: a structure or record is invalid
    ERROR_INVALID_RECORD = ExitCode(310, "invalid record (nothing was stored; use on_error='skip' to drop it): {message}")
    ERROR_NO_VALID_RECORDS = ExitCode(311, "no valid record to store: {message}")
    ERROR_INVARIANT_FAILED = ExitCode(312, "the invariant of a structure could not be computed: {message}")
    #: 320-329: unknown descriptor, metric or parameter
    ERROR_UNKNOWN_DESCRIPTOR = ExitCode(320, "{message}")
    ERROR_UNKNOWN_METRIC = ExitCode(321, "{message}")
    ERROR_INVALID_PARAMETERS = ExitCode(322, "invalid parameters: {message}")
    ERROR_METRIC_NOT_APPLICABLE = ExitCode(323, "{message}")
    #: 330-339: inputs that do not fit together
    ERROR_INCOMPATIBLE_INVARIANTS = ExitCode(330, "incompatible invariants: {message}")
    #: 340-349: wrong node type in a dynamic input
    ERROR_WRONG_NODE_TYPE = ExitCode(340, "wrong node type: {message}")
    #: 350-359: a record asked for does not exist
    ERROR_UNKNOWN_RECORD = ExitCode(350, "{message}")
    #: 360-369: an external service failed
    ERROR_MATERIALS_PROJECT = ExitCode(360, "Materials Project import failed: {message}")


#: Keys accepted in the ``options`` of :func:`import_dataset`.
IMPORT_OPTIONS = ("format", "id_column", "cif_column", "target_columns", "units", "on_error", "structure_key")


def _dict(node: orm.Dict | orm.Str | None) -> dict[str, Any]:
    if node is None:
        return {}
    if isinstance(node, orm.Str):
        return {"name": node.value}
    return node.get_dict()


def _dataset_from(result, on_error: str):
    """(dataset, None) or (None, ExitCode)."""
    try:
        return CrystalDatasetData.from_read_result(result, on_error=on_error), None
    except RecordError as exc:
        return None, ExitCodes.ERROR_INVALID_RECORD.format(message=str(exc))
    except ValueError as exc:
        return None, ExitCodes.ERROR_NO_VALID_RECORDS.format(message=str(exc))


def _on_error(options: dict[str, Any]):
    on_error = options.pop("on_error", "fail")
    if on_error not in ON_ERROR:
        return None, ExitCodes.ERROR_INVALID_OPTIONS.format(message=f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    return on_error, None


@calcfunction
def import_dataset(file: orm.SinglefileData | orm.FolderData, options: orm.Dict | None = None):
    """Read a structure file into one :class:`~aiida_crystinv.data.CrystalDatasetData`.

    Args:
        file: a ``SinglefileData`` (CIF with one or more blocks, CSV with a CIF column, JSON
            list of pymatgen structure dicts; gzipped or not) or a ``FolderData`` of CIFs.
        options: ``format`` (``cif``/``csv``/``json``, default from the file name),
            ``id_column``, ``cif_column``, ``target_columns``, ``units`` ({name: unit}),
            ``structure_key`` (JSON), ``on_error`` (``'fail'`` default, or ``'skip'``).

    Returns:
        ``{'dataset': CrystalDatasetData}``; skipped records and reasons are in its
        ``skipped`` attribute, the file name and MD5 in its ``source``.

    Exit codes: 300 unreadable / empty / wrong-format file, 301 bad options, 310 a bad
    record with ``on_error='fail'`` (the message names it), 311 no valid record.
    """
    from ..sources.files import _read_cif_files, read_bytes

    opts = _dict(options)
    unknown = set(opts) - set(IMPORT_OPTIONS)
    if unknown:
        return ExitCodes.ERROR_INVALID_OPTIONS.format(
            message=f"unknown option(s) {', '.join(sorted(unknown))}; allowed: {', '.join(IMPORT_OPTIONS)}"
        )
    on_error, exit_code = _on_error(opts)
    if exit_code:
        return exit_code
    try:
        if isinstance(file, orm.FolderData):
            names = sorted(n for n in file.base.repository.list_object_names() if n.lower().endswith((".cif", ".cif.gz")))
            if not names:
                raise SourceError("the folder holds no .cif files")
            result = _read_cif_files((n, file.base.repository.get_object_content(n, mode="rb")) for n in names)
            result.source = {"description": "folder of CIF files", "extras": {"format": "cif-folder", "files": len(names)}}
        else:
            content = file.get_content(mode="rb")
            fmt = opts.pop("format", None)
            result = read_bytes(content, file.filename, format=fmt, **opts)
    except SourceError as exc:
        return ExitCodes.ERROR_READING_INPUT.format(message=str(exc))
    except TypeError as exc:
        return ExitCodes.ERROR_INVALID_OPTIONS.format(message=str(exc))
    dataset, exit_code = _dataset_from(result, on_error)
    if exit_code:
        return exit_code
    return {"dataset": dataset}


@calcfunction
def import_materials_project(query: orm.Dict, options: orm.Dict | None = None):
    """Import structures and properties from the Materials Project (needs ``mp-api`` and
    the environment variable ``MP_API_KEY``; the key is never stored).

    Args:
        query: keyword arguments of ``MPRester.materials.summary.search``.
        options: ``properties`` (list of summary fields stored as targets), ``units``,
            ``on_error``.

    Exit codes: 360 no package / no key / request failed, 301 bad options, 310, 311.
    """
    from ..sources import read_materials_project

    opts = _dict(options)
    on_error, exit_code = _on_error(opts)
    if exit_code:
        return exit_code
    unknown = set(opts) - {"properties", "units"}
    if unknown:
        return ExitCodes.ERROR_INVALID_OPTIONS.format(message=f"unknown option(s) {', '.join(sorted(unknown))}")
    try:
        result = read_materials_project(query.get_dict(), properties=opts.get("properties"), units=opts.get("units"))
    except SourceError as exc:
        return ExitCodes.ERROR_MATERIALS_PROJECT.format(message=str(exc))
    dataset, exit_code = _dataset_from(result, on_error)
    if exit_code:
        return exit_code
    return {"dataset": dataset}


def _resolve_descriptor(descriptor: orm.Dict | orm.Str):
    """(Descriptor, params, None) or (None, None, ExitCode)."""
    spec = _dict(descriptor)
    name = str(spec.get("name", "")).lower()
    if name not in DESCRIPTORS:
        return None, None, ExitCodes.ERROR_UNKNOWN_DESCRIPTOR.format(
            message=f"unknown descriptor {spec.get('name')!r}; use one of {', '.join(DESCRIPTORS)}"
        )
    try:
        desc, params = resolve_descriptor(spec)
    except UnknownDescriptorError as exc:
        return None, None, ExitCodes.ERROR_INVALID_PARAMETERS.format(message=str(exc))
    return desc, params, None


def _compute(desc, params, crystals, ids, **kwargs):
    try:
        arrays = compute_arrays(desc, params, crystals)
    except NotImplementedError:
        return ExitCodes.ERROR_UNKNOWN_DESCRIPTOR.format(message=f"descriptor {desc.name!r} is not available in this installation")
    except (InvalidStructureError, ValueError) as exc:
        return ExitCodes.ERROR_INVARIANT_FAILED.format(message=str(exc))
    return {"invariants": InvariantsData.from_arrays(desc.name, params, ids, arrays, **kwargs)}


@calcfunction
def compute_invariants(dataset: CrystalDatasetData, descriptor: orm.Dict | orm.Str, chunk: orm.Dict | None = None):
    """Invariants of every record (or of rows ``chunk['start']:chunk['stop']``) of a dataset.

    Args:
        dataset: the structures.
        descriptor: ``{'name': 'amd'|'pdd'|'grid'|'rdf'|'composition', **parameters}``;
            missing parameters take their defaults, all are recorded on the output.
        chunk: optional ``{'start': int, 'stop': int}``: only these rows (read without
            loading the rest; used by :class:`~aiida_crystinv.workflows.InvariantsWorkChain`).

    Returns:
        ``{'invariants': InvariantsData}`` with the dataset's ids (of the chunk).

    Exit codes: 320 unknown descriptor, 322 bad parameter or chunk, 312 a structure failed.
    """
    desc, params, exit_code = _resolve_descriptor(descriptor)
    if exit_code:
        return exit_code
    n = len(dataset)
    start, stop = 0, n
    if chunk is not None:
        c = chunk.get_dict()
        try:
            start, stop = int(c["start"]), int(c["stop"])
        except (KeyError, TypeError, ValueError):
            return ExitCodes.ERROR_INVALID_PARAMETERS.format(message=f"chunk must be {{'start': int, 'stop': int}}, got {c}")
        if not 0 <= start < stop <= n:
            return ExitCodes.ERROR_INVALID_PARAMETERS.format(message=f"chunk {start}:{stop} is not inside 0:{n}")
    crystals = dataset.get_crystals(range(start, stop))
    ids = [c.label for c in crystals]
    return _compute(
        desc, params, crystals, ids, dataset_uuid=dataset.uuid, row_range=(start, stop) if chunk is not None else None
    )


@calcfunction
def compute_invariant_set(dataset: CrystalDatasetData, descriptors: orm.List):
    """Several descriptors of a dataset in ONE process (one output node per descriptor).

    A process costs ~0.1-0.4 s whatever it does; when AMD, PDD and GRID of the same
    dataset are wanted, this saves two of them. Each output is an ``InvariantsData``
    exactly as :func:`compute_invariants` would make it.

    Args:
        descriptors: a list of descriptor dicts (``{'name': 'pdd', 'k': 100}``) or names.

    Returns:
        ``{label: InvariantsData}``: the label is the descriptor name (``pdd``), or
        ``pdd_2``, ``pdd_3`` ... when a name repeats.

    Exit codes: as :func:`compute_invariants` (the first failing descriptor decides);
    322 for an empty or malformed list.
    """
    specs = descriptors.get_list()
    if not specs:
        return ExitCodes.ERROR_INVALID_PARAMETERS.format(message="no descriptors given")
    resolved = []
    for spec in specs:
        if not isinstance(spec, (dict, str)):
            return ExitCodes.ERROR_INVALID_PARAMETERS.format(message=f"a descriptor must be a dict or a name, got {spec!r}")
        desc, params, exit_code = _resolve_descriptor(orm.Str(spec) if isinstance(spec, str) else orm.Dict(spec))
        if exit_code:
            return exit_code
        resolved.append((desc, params))
    crystals = dataset.get_crystals()
    ids = [c.label for c in crystals]
    outputs: dict[str, InvariantsData] = {}
    for desc, params in resolved:
        result = _compute(desc, params, crystals, ids, dataset_uuid=dataset.uuid)
        if isinstance(result, ExitCode):
            return result
        label, n = desc.name, 2
        while label in outputs:
            label, n = f"{desc.name}_{n}", n + 1
        outputs[label] = result["invariants"]
    return outputs


@calcfunction
def merge_invariants(**chunks):
    """Concatenate compatible invariants (e.g. the chunks of a dataset) into one node.

    Chunks that carry a ``row_range`` are put in dataset order and must tile it; others are
    taken in the order of their input labels.

    Exit codes: 340 an input is not InvariantsData, 330 different descriptors / parameters
    or chunks that do not tile.
    """
    if not chunks:
        return ExitCodes.ERROR_INCOMPATIBLE_INVARIANTS.format(message="nothing to merge")
    for label, node in chunks.items():
        if not isinstance(node, InvariantsData):
            return ExitCodes.ERROR_WRONG_NODE_TYPE.format(message=f"input {label!r} is a {type(node).__name__}, not InvariantsData")
    parts = [chunks[k] for k in sorted(chunks)]
    try:
        merged = InvariantsData.concatenate(parts)
    except ValueError as exc:
        return ExitCodes.ERROR_INCOMPATIBLE_INVARIANTS.format(message=str(exc))
    return {"invariants": merged}


def _metric_items(invariants: InvariantsData, metric: orm.Dict | orm.Str | None, other: InvariantsData | None):
    """(name, params, items, other_items, None) or (..., ExitCode)."""
    try:
        name, params = resolve_metric(_dict(metric) if metric is not None else None, invariants.descriptor)
    except UnknownMetricError as exc:
        return None, None, None, None, ExitCodes.ERROR_UNKNOWN_METRIC.format(message=str(exc))
    if invariants.descriptor not in METRICS[name]:
        return None, None, None, None, ExitCodes.ERROR_METRIC_NOT_APPLICABLE.format(
            message=f"metric {name!r} applies to {' or '.join(METRICS[name])} invariants, not {invariants.descriptor!r}"
        )
    if other is not None:
        reason = invariants.incompatibility(other)
        if reason:
            return None, None, None, None, ExitCodes.ERROR_INCOMPATIBLE_INVARIANTS.format(message=reason)
    if name in ("grid_emd", "rdf_emd") and "bin_width" not in params:
        params["bin_width"] = invariants.parameters.get("bin_width")

    def items(node):
        return node.get_amd() if name.startswith("amd_") else node.get_items()

    return name, params, items(invariants), (items(other) if other is not None else None), None


def _meta(invariants: InvariantsData, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "metric_parameters": params,
        "invariants": {"descriptor": invariants.descriptor, "parameters": invariants.parameters},
    }


@calcfunction
def compute_distances(
    invariants: InvariantsData, other: InvariantsData | None = None, metric: orm.Dict | orm.Str | None = None
):
    """All distances within ``invariants`` (condensed) or between ``invariants`` and ``other``
    (dense, rows = ``invariants``).

    Args:
        metric: ``{'name': 'amd_linf'|'amd_l1'|'amd_l2'|'pdd_emd'|'grid_emd'|'rdf_emd'|
            'composition_l1', **params}``; default: the descriptor's natural metric
            (``amd_linf`` for AMD, ``pdd_emd`` for PDD, ...).

    Exit codes: 321 unknown metric, 323 metric not applicable, 330 incompatible
    invariants, 322 bad metric parameters.
    """
    from .. import distances as dist

    name, params, items, other_items, exit_code = _metric_items(invariants, metric, other)
    if exit_code:
        return exit_code
    try:
        if other is None:
            out = DistancesData.from_condensed(dist.pdist(items, name, **params), invariants.ids, name, **_meta(invariants, params))
        else:
            matrix = dist.cdist(items, other_items, name, **params)
            out = DistancesData.from_matrix(matrix, invariants.ids, other.ids, name, **_meta(invariants, params))
    except (TypeError, ValueError) as exc:
        return ExitCodes.ERROR_INVALID_PARAMETERS.format(message=str(exc))
    return {"distances": out}


@calcfunction
def nearest_neighbours(
    invariants: InvariantsData,
    k: orm.Int,
    metric: orm.Dict | orm.Str | None = None,
    other: InvariantsData | None = None,
):
    """The ``k`` nearest neighbours of each record: within ``invariants`` (excluding the
    record itself) or, when ``other`` is given, among the records of ``other``.

    Exact (for ``pdd_emd`` the search is pruned by the AMD lower bound).

    Returns:
        ``{'distances': DistancesData}`` with layout ``knn``: (n, k) distances and column
        indices, nearest first.

    Exit codes: 321, 322 (e.g. k larger than the set), 323, 330.
    """
    from .. import distances as dist

    name, params, items, other_items, exit_code = _metric_items(invariants, metric, other)
    if exit_code:
        return exit_code
    try:
        if other is None:
            d, idx = dist.nearest_neighbours(items, k.value, name, **params)
            col_ids = invariants.ids
        else:
            d, idx = dist.nearest_neighbours(other_items, k.value, name, queries=items, **params)
            col_ids = other.ids
    except (TypeError, ValueError) as exc:
        return ExitCodes.ERROR_INVALID_PARAMETERS.format(message=str(exc))
    out = DistancesData.from_knn(
        d, idx, invariants.ids, col_ids, name, exclude_self=other is None, **_meta(invariants, params)
    )
    return {"distances": out}


@calcfunction
def structure_invariants(structure: orm.StructureData, descriptor: orm.Dict | orm.Str):
    """Invariants of a single ``StructureData`` (e.g. a DFT-relaxed structure), one row whose
    id is the structure's label (or UUID).

    Exit codes: 310 invalid structure, 320/322 as :func:`compute_invariants`.
    """
    from ..invariants import as_crystal
    from ..sources import structuredata_to_tuple

    desc, params, exit_code = _resolve_descriptor(descriptor)
    if exit_code:
        return exit_code
    rid = structure.label or str(structure.uuid)
    try:
        crystal = as_crystal(structuredata_to_tuple(structure), label=rid)
    except (InvalidStructureError, ValueError) as exc:
        return ExitCodes.ERROR_INVALID_RECORD.format(message=str(exc))
    return _compute(desc, params, [crystal], [rid])


def output_label(record_id: str, taken: set[str] | None = None) -> str:
    """A valid link label for a record identifier (``'mp-1234'`` -> ``'mp_1234'``)."""
    label = re.sub(r"[^A-Za-z0-9_]", "_", str(record_id)).strip("_") or "record"
    label = re.sub(r"_+", "_", label)
    if label[0].isdigit():
        label = f"r{label}"
    if taken is not None:
        base, n = label, 2
        while label in taken:
            label = f"{base}_{n}"
            n += 1
        taken.add(label)
    return label


@calcfunction
def extract_structures(dataset: CrystalDatasetData, ids: orm.List):
    """Chosen records as ``StructureData`` nodes (to hand to a DFT workflow).

    Returns:
        ``{'structures': {label: StructureData}}`` where ``label`` is the identifier made a
        valid link label (:func:`output_label`); each node's ``label`` is the exact
        identifier.

    Exit codes: 350 unknown identifier, 322 empty or repeated ids.
    """
    wanted = ids.get_list()
    if not wanted:
        return ExitCodes.ERROR_INVALID_PARAMETERS.format(message="no identifiers given")
    if len(set(map(str, wanted))) != len(wanted):
        return ExitCodes.ERROR_INVALID_PARAMETERS.format(message="identifiers are repeated")
    try:
        indices = [dataset.index_of(str(i)) for i in wanted]
    except KeyError as exc:
        return ExitCodes.ERROR_UNKNOWN_RECORD.format(message=str(exc.args[0]))
    taken: set[str] = set()
    nodes = dataset.to_structuredata(indices)
    return {"structures": {output_label(n.label, taken): n for n in nodes}}


@calcfunction
def collect_structures(**structures):
    """Collect ``StructureData`` nodes (e.g. relaxed DFT outputs) into one dataset.

    Identifiers are the node labels, or the input link labels for unlabelled nodes. Each
    input is a separate link, so this is meant for tens to hundreds of structures (link
    validation grows quadratically with the number of inputs); build larger datasets with
    :meth:`CrystalDatasetData.from_group`.

    Exit codes: 340 an input is not StructureData, 310 invalid structure or duplicate ids.
    """
    from ..sources import read_structuredata

    if not structures:
        return ExitCodes.ERROR_NO_VALID_RECORDS.format(message="no structures given")
    labels = sorted(structures)
    nodes = [structures[k] for k in labels]
    for label, node in zip(labels, nodes):
        if not isinstance(node, orm.StructureData):
            return ExitCodes.ERROR_WRONG_NODE_TYPE.format(message=f"input {label!r} is a {type(node).__name__}, not StructureData")
    ids = [n.label or lab for n, lab in zip(nodes, labels)]
    result = read_structuredata(nodes, ids=ids)
    result.source = {"description": f"{len(nodes)} StructureData nodes collected", "extras": {"format": "structuredata"}}
    dataset, exit_code = _dataset_from(result, "fail")
    if exit_code:
        return exit_code
    dataset._set_node_uuids(nodes, ids)
    return {"dataset": dataset}
