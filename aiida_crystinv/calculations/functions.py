"""Provenance-tracked steps as calcfunctions: import, invariants, distances, hand-offs.

Each function takes and returns nodes, so every output is linked to its inputs. Failures
return an :class:`~aiida.engine.ExitCode` of :mod:`aiida_crystinv.exit_codes` and store no output
node. Inputs of the wrong node type are rejected before the function runs by AiiDA's
input validation (a ``ValueError`` naming the port and the expected type); every spec
input (descriptor, metric, options, chunk, k, ids) is validated at its port by
:mod:`aiida_crystinv.calculations.ports` the same way, so an invalid spec is refused
before any node exists. Dynamic ``**kwargs`` inputs of the wrong type give exit code 213.

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
``compute_neighbours``      ``invariants``, ``k`` (Int), ``metric`` (optional),        ``distances`` (kNN)
                            ``other`` (optional)
``compute_duplicates``      ``invariants``, ``threshold`` (Float), ``metric``          ``duplicates`` (pairs, groups)
``structure_invariants``    ``structure`` (StructureData), ``descriptor`` (Dict)       ``invariants``
``extract_structures``      ``dataset``, ``ids`` (List)                                ``structures.<id>``
``collect_structures``      ``**structures`` (StructureData)                           ``dataset``
==========================  =========================================================  ======================
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import ExitCode, calcfunction

from ..data import CrystalDatasetData, DistancesData, InvariantsData
from ..data._arrays import as_str_array, jsonable
from ..data.invariants import compute_arrays
from ..exit_codes import EXIT
from ..invariants import InvalidStructureError
from ..secrets import scrub_text
from ..sources import RecordError, SourceError
from ..specs import InvariantSpec, MetricSpec, SpecError, metric_for, parse_invariant
from .ports import (
    check_chunk,
    check_descriptor_list,
    check_ids,
    check_finite,
    check_import_options,
    check_invariant,
    check_metric,
    check_mp_options,
    check_mp_query,
    check_positive_int,
    spec_of,
    validate_inputs,
)

__all__ = [
    "EXIT",
    "IMPORT_OPTIONS",
    "import_dataset",
    "import_materials_project",
    "compute_duplicates",
    "compute_invariants",
    "compute_invariant_set",
    "merge_invariants",
    "compute_distances",
    "compute_neighbours",
    "structure_invariants",
    "extract_structures",
    "collect_structures",
    "output_label",
]


#: Keys accepted in the ``options`` of :func:`import_dataset`.
IMPORT_OPTIONS = ("format", "id_column", "cif_column", "target_columns", "units", "on_error", "structure_key", "rows")


def _exit(code: ExitCode, message: Any, secrets: tuple[str, ...] = ()) -> ExitCode:
    """``code`` with ``message`` scrubbed of the known ``secrets`` and of anything that
    reads like a credential (:func:`~aiida_crystinv.secrets.scrub_text`). The exit-code
    table caps the message and puts a longer text whole into the process report
    (:func:`aiida_crystinv.exit_codes.capped`), so the report gets the scrubbed text too."""
    return code.format(message=scrub_text(message, secrets))


def _dataset_from(result, on_error: str):
    """(dataset, None) or (None, ExitCode)."""
    try:
        return CrystalDatasetData.from_read_result(result, on_error=on_error), None
    except RecordError as exc:
        return None, _exit(EXIT.ERROR_INVALID_RECORD, exc)
    except ValueError as exc:
        return None, _exit(EXIT.ERROR_NO_VALID_RECORDS, exc)


def _rows_of(result, start: int, stop: int):
    """The records at file positions start..stop-1 (parsed or failed) of a read result."""
    import dataclasses

    def order(item: Any, default: int) -> int:
        value = item.get("order") if isinstance(item, dict) else getattr(item, "order", None)
        return default if value is None else int(value)

    keys = [order(r, i) for i, r in enumerate(result.records)] + [order(f, 10**12 + i) for i, f in enumerate(result.failed)]
    rank = {k: i for i, k in enumerate(sorted(keys))}  # file order, counted from 0
    records = [r for i, r in enumerate(result.records) if start <= rank[order(r, i)] < stop]
    failed = [f for i, f in enumerate(result.failed) if start <= rank[order(f, 10**12 + i)] < stop]
    source = dict(result.source or {})
    source["extras"] = {**source.get("extras", {}), "rows": [start, stop]}
    return dataclasses.replace(result, records=records, failed=failed, source=source)


@calcfunction
def import_dataset(file: orm.SinglefileData | orm.FolderData, options: orm.Dict | None = None):
    """Read a structure file into one :class:`~aiida_crystinv.data.CrystalDatasetData`.

    Args:
        file: a ``SinglefileData`` (CIF with one or more blocks, CSV with a CIF column, JSON
            list of pymatgen structure dicts; gzipped or not) or a ``FolderData`` of CIFs.
        options: ``format`` (``cif``/``csv``/``json``, default from the file name),
            ``id_column``, ``cif_column``, ``target_columns``, ``units`` ({name: unit}),
            ``structure_key`` (JSON), ``on_error`` (``'fail'`` default, or ``'skip'``),
            ``rows`` ([start, stop]: only the records start..stop-1 of the file, in file
            order, counted from 0, parsed or not; e.g. a training part and a candidate part
            of one file).

    Returns:
        ``{'dataset': CrystalDatasetData}``; skipped records and reasons are in its
        ``skipped`` attribute, the file name and MD5 in its ``source``.

    Options are validated at the port (unknown keys and bad values refuse the launch).

    Exit codes: 200 unreadable / empty / wrong-format file, 201 options that do not fit the
    file, 210 a bad record with ``on_error='fail'`` (the message names it), 211 no valid record.
    """
    from ..sources.cif import _read_cif_files
    from ..sources.files import read_bytes

    opts = spec_of(options) or {}
    on_error = opts.pop("on_error", "fail")
    rows = opts.pop("rows", None)
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
        return _exit(EXIT.ERROR_READING_INPUT, exc)
    except TypeError as exc:
        return _exit(EXIT.ERROR_INVALID_OPTIONS, exc)
    if rows is not None:
        result = _rows_of(result, *rows)
        if not result.records and not result.failed:
            return EXIT.ERROR_INVALID_OPTIONS.format(message=f"rows {list(rows)}: the file has no record there")
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

    Exit codes: 202 no package / no key / request failed, 210, 211.
    """
    import os

    from ..sources import read_materials_project
    from ..sources.materials_project import API_KEY_VARIABLE

    opts = spec_of(options) or {}
    on_error = opts.pop("on_error", "fail")
    key = os.environ.get(API_KEY_VARIABLE, "")
    try:
        result = read_materials_project(query.get_dict(), properties=opts.get("properties"), units=opts.get("units"))
    except SourceError as exc:
        return _exit(EXIT.ERROR_SOURCE_FAILED, exc, (key,))
    except Exception as exc:  # noqa: BLE001 - a client failing outside the request: never echo the key
        return _exit(EXIT.ERROR_SOURCE_FAILED, f"{type(exc).__name__}: {exc}", (key,))
    dataset, exit_code = _dataset_from(result, on_error)
    if exit_code:
        return exit_code
    return {"dataset": dataset}


def _compute(spec: InvariantSpec, crystals, ids, **kwargs):
    try:
        arrays = compute_arrays(spec, crystals)
    except NotImplementedError:
        return EXIT.ERROR_DESCRIPTOR_FAILED.format(message=f"descriptor {spec.name!r} is not available in this installation")  # type: ignore[attr-defined]
    except (InvalidStructureError, ValueError) as exc:
        return EXIT.ERROR_INVARIANT_FAILED.format(message=str(exc))
    return {"invariants": InvariantsData.from_arrays(spec.name, spec.params, ids, arrays, **kwargs)}  # type: ignore[attr-defined]


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

    The descriptor and the chunk are validated at the ports.

    Exit codes: 220 a chunk outside the dataset, 300 a structure failed.
    """
    spec = parse_invariant(spec_of(descriptor))
    n = len(dataset)
    start, stop = 0, n
    if chunk is not None:
        c = chunk.get_dict()
        start, stop = int(c["start"]), int(c["stop"])
        if stop > n:
            return EXIT.ERROR_INVALID_SPEC.format(message=f"chunk {start}:{stop} is not inside 0:{n}")
    crystals = dataset.get_crystals(range(start, stop))
    ids = [c.label for c in crystals]
    return _compute(spec, crystals, ids, dataset_uuid=dataset.uuid, row_range=(start, stop) if chunk is not None else None)


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

    Exit codes: as :func:`compute_invariants` (the first failing descriptor decides); the
    list is validated at the port.
    """
    specs = [parse_invariant(item) for item in descriptors.get_list()]
    crystals = dataset.get_crystals()
    ids = [c.label for c in crystals]
    outputs: dict[str, InvariantsData] = {}
    for spec in specs:
        result = _compute(spec, crystals, ids, dataset_uuid=dataset.uuid)
        if isinstance(result, ExitCode):
            return result
        name = spec.name  # type: ignore[attr-defined]
        label, n = name, 2
        while label in outputs:
            label, n = f"{name}_{n}", n + 1
        outputs[label] = result["invariants"]
    return outputs


@calcfunction
def merge_invariants(**chunks):
    """Concatenate compatible invariants (e.g. the chunks of a dataset) into one node.

    Chunks that carry a ``row_range`` are put in dataset order and must tile it; others are
    taken in the order of their input labels.

    Exit codes: 213 an input is not InvariantsData, 222 different descriptors / parameters
    or chunks that do not tile, 225 nothing to merge.
    """
    if not chunks:
        return EXIT.ERROR_MISSING_INPUT.format(message="nothing to merge")
    for label, node in chunks.items():
        if not isinstance(node, InvariantsData):
            return EXIT.ERROR_WRONG_NODE_TYPE.format(message=f"input {label!r} is a {type(node).__name__}, not InvariantsData")
    parts = [chunks[k] for k in sorted(chunks)]
    try:
        merged = InvariantsData.concatenate(parts)
    except ValueError as exc:
        return EXIT.ERROR_INCOMPATIBLE_INPUTS.format(message=str(exc))
    return {"invariants": merged}


def _metric_items(invariants: InvariantsData, metric: orm.Dict | orm.Str | None, other: InvariantsData | None):
    """(metric, items, other_items, None) or (..., ExitCode)."""
    try:
        spec: MetricSpec = metric_for(spec_of(metric), parse_invariant({"name": invariants.descriptor, **invariants.parameters}))
    except SpecError as exc:
        return None, None, None, EXIT.ERROR_METRIC_NOT_APPLICABLE.format(message=str(exc))
    if other is not None:
        reason = invariants.incompatibility(other)
        if reason:
            return None, None, None, EXIT.ERROR_INCOMPATIBLE_INPUTS.format(message=reason)

    def items(node):
        return node.get_amd() if spec.name.startswith("amd_") else node.get_items()

    return spec, items(invariants), (items(other) if other is not None else None), None


def _meta(invariants: InvariantsData, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "metric_parameters": params,
        "invariants": {"descriptor": invariants.descriptor, "parameters": invariants.parameters},
    }


@calcfunction
def compute_duplicates(invariants: InvariantsData, threshold: orm.Float, metric: orm.Dict | orm.Str | None = None):
    """Every pair of records at most ``threshold`` apart, and the groups they form.

    Exact: :func:`~aiida_crystinv.distances.pairs_within` (the AMD lower bound prunes
    PDD-EMD), never cut by a neighbour count; groups are connected components (single
    linkage at ``threshold``) with the member of smallest identifier as representative.

    Returns ``duplicates`` (ArrayData): ``pairs`` (m, 2) record indices ``i < j``,
    ``distances`` (m,), ``group`` (n,) the group of each record (-1: no near-duplicate),
    ``ids``; attributes ``threshold``, ``metric``, ``n_groups``, ``n_pairs``,
    ``evaluated`` (exact distances computed), ``invariants_uuid``.

    Exit codes: 221 metric not applicable, 302 the computation failed. The threshold (a
    finite number >= 0) and the metric are validated at the ports.
    """
    from .. import distances as dist

    spec, items, _, exit_code = _metric_items(invariants, metric, None)
    if exit_code:
        return exit_code
    try:
        i, j, d, evaluated = dist.pairs_within(items, threshold.value, spec.name, return_stats=True, **spec.params)
    except (ValueError, MemoryError) as exc:
        return EXIT.ERROR_DISTANCES_FAILED.format(message=str(exc))
    ids = invariants.ids
    groups = dist.duplicate_groups(len(ids), i, j, ids)
    group = np.full(len(ids), -1, dtype=np.int64)
    for g, members in enumerate(groups):
        group[members] = g
    node = orm.ArrayData()
    node.set_array("pairs", np.stack([i, j], axis=1) if len(i) else np.empty((0, 2), np.int64))
    node.set_array("distances", d)
    node.set_array("group", group)
    node.set_array("ids", as_str_array(ids))
    node.base.attributes.set_many({
        "threshold": threshold.value, "metric": spec.name, "metric_parameters": jsonable(spec.params),
        "n_groups": len(groups), "n_pairs": int(len(i)), "evaluated": int(evaluated), "invariants_uuid": invariants.uuid,
    })
    return {"duplicates": node}


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

    Exit codes: 221 metric not applicable, 222 incompatible invariants, 302 the
    computation failed. The metric is validated at the port.
    """
    from .. import distances as dist

    spec, items, other_items, exit_code = _metric_items(invariants, metric, other)
    if exit_code:
        return exit_code
    name, params = spec.name, spec.params
    try:
        if other is None:
            out = DistancesData.from_condensed(dist.pdist(items, name, **params), invariants.ids, name, **_meta(invariants, params))
        else:
            matrix = dist.cdist(items, other_items, name, **params)
            out = DistancesData.from_matrix(matrix, invariants.ids, other.ids, name, **_meta(invariants, params))
    except (TypeError, ValueError) as exc:
        return EXIT.ERROR_DISTANCES_FAILED.format(message=str(exc))
    return {"distances": out}


@calcfunction
def compute_neighbours(
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

    Exit codes: 220 k larger than the set, 221, 222, 302.
    """
    from .. import distances as dist

    spec, items, other_items, exit_code = _metric_items(invariants, metric, other)
    if exit_code:
        return exit_code
    name, params = spec.name, spec.params
    n_ref = len(other.ids) if other is not None else len(invariants.ids) - 1
    if k.value > n_ref:
        return EXIT.ERROR_INVALID_SPEC.format(message=f"k={k.value} but only {n_ref} records can be neighbours")
    try:
        if other is None:
            d, idx = dist.nearest_neighbours(items, k.value, name, **params)
            col_ids = invariants.ids
        else:
            d, idx = dist.nearest_neighbours(other_items, k.value, name, queries=items, **params)
            col_ids = other.ids
    except (TypeError, ValueError) as exc:
        return EXIT.ERROR_DISTANCES_FAILED.format(message=str(exc))
    out = DistancesData.from_knn(
        d, idx, invariants.ids, col_ids, name, exclude_self=other is None, **_meta(invariants, params)
    )
    return {"distances": out}


@calcfunction
def structure_invariants(structure: orm.StructureData, descriptor: orm.Dict | orm.Str):
    """Invariants of a single ``StructureData`` (e.g. a DFT-relaxed structure), one row whose
    id is the structure's label (or UUID).

    Exit codes: 214 invalid structure, 300 as :func:`compute_invariants`.
    """
    from ..invariants import as_crystal
    from ..sources import structuredata_to_tuple

    spec = parse_invariant(spec_of(descriptor))
    rid = structure.label or str(structure.uuid)
    try:
        crystal = as_crystal(structuredata_to_tuple(structure), label=rid)
    except (InvalidStructureError, ValueError) as exc:
        return EXIT.ERROR_INVALID_STRUCTURE.format(message=str(exc))
    return _compute(spec, [crystal], [rid])


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

    Exit codes: 212 unknown identifier (empty or repeated ids are refused at the port).
    """
    wanted = ids.get_list()
    try:
        indices = [dataset.index_of(str(i)) for i in wanted]
    except KeyError as exc:
        return EXIT.ERROR_UNKNOWN_RECORD.format(message=str(exc.args[0]))
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

    Exit codes: 213 an input is not StructureData, 210 invalid structure or duplicate ids,
    211 no structures.
    """
    from ..sources import read_structuredata

    if not structures:
        return EXIT.ERROR_NO_VALID_RECORDS.format(message="no structures given")
    labels = sorted(structures)
    nodes = [structures[k] for k in labels]
    for label, node in zip(labels, nodes):
        if not isinstance(node, orm.StructureData):
            return EXIT.ERROR_WRONG_NODE_TYPE.format(message=f"input {label!r} is a {type(node).__name__}, not StructureData")
    ids = [n.label or lab for n, lab in zip(nodes, labels)]
    result = read_structuredata(nodes, ids=ids)
    result.source = {"description": f"{len(nodes)} StructureData nodes collected", "extras": {"format": "structuredata"}}
    dataset, exit_code = _dataset_from(result, "fail")
    if exit_code:
        return exit_code
    dataset._set_node_uuids(nodes, ids)
    return {"dataset": dataset}


validate_inputs(import_dataset, options=check_import_options)
validate_inputs(import_materials_project, query=check_mp_query, options=check_mp_options)
validate_inputs(compute_invariants, descriptor=check_invariant, chunk=check_chunk)
validate_inputs(compute_invariant_set, descriptors=check_descriptor_list)
validate_inputs(compute_distances, metric=check_metric)
validate_inputs(compute_duplicates, metric=check_metric, threshold=check_finite)
validate_inputs(compute_neighbours, metric=check_metric, k=check_positive_int)
validate_inputs(structure_invariants, descriptor=check_invariant)
validate_inputs(extract_structures, ids=check_ids)
