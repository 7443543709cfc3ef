"""Read ``StructureData`` nodes (a list or an AiiDA group) as records.

Identifiers are the node labels when every node has a non-empty, unique label (the
labels written by :func:`~aiida_crystinv.calculations.functions.extract_structures`);
otherwise the node UUIDs. Nodes that are not ``StructureData`` and structures that are
not periodic in three dimensions are bad records (``on_error`` decides).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._records import ReadResult, Record, SourceError

__all__ = ["structuredata_to_tuple", "read_structuredata", "read_group", "default_ids"]


def default_ids(nodes: Sequence[Any]) -> list[str]:
    """Labels of the ``StructureData`` nodes when all are non-empty and unique, else UUIDs.

    Nodes of other types (bad records) are always identified by their UUID.
    """
    from aiida.orm import StructureData

    labels = [n.label or "" for n in nodes if isinstance(n, StructureData)]
    use_labels = all(labels) and len(set(labels)) == len(labels)
    return [n.label if use_labels and isinstance(n, StructureData) else str(n.uuid) for n in nodes]


def structuredata_to_tuple(node: Any) -> tuple[np.ndarray, np.ndarray, list]:
    """``(cell, frac_coords, species)`` of a ``StructureData`` without going through pymatgen.

    Kinds with several symbols or weights below one become disordered sites
    (``{symbol: weight}``); vacancies are the missing weight.

    Raises:
        ValueError: the structure is not periodic in all three directions, or has no sites.
    """
    if not all(node.pbc):
        raise ValueError(f"structure is not periodic in three dimensions (pbc={tuple(node.pbc)})")
    cell = np.array(node.cell, dtype=float)
    kinds = {k.name: k for k in node.kinds}
    sites = node.sites
    if not sites:
        raise ValueError("the structure has no sites")
    cart = np.array([s.position for s in sites], dtype=float)
    frac = np.linalg.solve(cell.T, cart.T).T
    species: list = []
    for site in sites:
        kind = kinds[site.kind_name]
        if len(kind.symbols) == 1 and abs(kind.weights[0] - 1.0) < 1e-12:
            species.append(kind.symbols[0])
        else:
            species.append({s: float(w) for s, w in zip(kind.symbols, kind.weights)})
    return cell, frac, species


def read_structuredata(nodes: Sequence[Any], ids: Sequence[str] | None = None) -> ReadResult:
    """Records from ``StructureData`` nodes (stored or not), in the given order."""
    from aiida.orm import StructureData

    nodes = list(nodes)
    if ids is None:
        ids = default_ids(nodes)
    elif len(ids) != len(nodes):
        raise ValueError(f"{len(ids)} ids for {len(nodes)} nodes")
    result = ReadResult(records=[], units={}, source={})
    for number, (node, rid) in enumerate(zip(nodes, ids), start=1):
        position = f"node {node.pk}" if node.is_stored else f"item {number}"
        if not isinstance(node, StructureData):
            result.failed.append(
                {
                    "id": str(rid),
                    "reason": f"not a StructureData (got {type(node).__name__})",
                    "position": position,
                    "order": number,
                }
            )
            continue
        try:
            structure = structuredata_to_tuple(node)
        except (ValueError, KeyError) as exc:
            result.failed.append({"id": str(rid), "reason": str(exc), "position": position, "order": number})
            continue
        result.records.append(Record(str(rid), structure, {}, position, number))
    result.source = {
        "description": f"{len(nodes)} StructureData nodes",
        "extras": {"format": "structuredata"},
    }
    return result


def read_group(group: Any) -> ReadResult:
    """Records from the nodes of an AiiDA group (``Group`` instance or label), ordered by pk."""
    from aiida.orm import Group, Node, QueryBuilder, load_group

    if not isinstance(group, Group):
        try:
            group = load_group(group)
        except Exception as exc:  # noqa: BLE001 - NotExistent, MultipleObjectsError
            raise SourceError(f"no AiiDA group {group!r} ({exc})") from None
    qb = QueryBuilder().append(Group, filters={"id": group.pk}, tag="g")
    qb.append(Node, with_group="g", project="*")
    qb.order_by({Node: {"id": "asc"}})
    nodes = [row[0] for row in qb.all()]
    if not nodes:
        raise SourceError(f"the group {group.label!r} is empty")
    result = read_structuredata(nodes)
    result.source = {
        "description": f"AiiDA group {group.label}",
        "extras": {"format": "group", "group_label": group.label, "group_uuid": str(group.uuid)},
    }
    return result
