"""``merge_blocks``: one ``DistancesData`` from the blocks of a distributed computation.

A distance matrix or k-nearest-neighbour graph computed as many jobs (one per block of
rows, and for a kNN graph possibly one per block of the reference set) is joined here, in
one step, into the node the single-process calcfunction makes for the whole set
(:func:`~aiida_crystinv.calculations.functions.compute_distances` /
:func:`~aiida_crystinv.calculations.functions.compute_neighbours`): same layout, same
identifiers, same attributes, same arrays.

Every block is an input labelled ``block_<a0>_<a1>_<b0>_<b1>``: its rows are rows
``a0:a1`` of the row set (the queries), its columns rows ``b0:b1`` of the column set (the
reference). The blocks must tile the result:

* kNN blocks (partial top-k lists with global reference indices): the blocks of each row
  range are merged with :func:`~aiida_crystinv.worker.topk.merge_topk` (exact: ties are
  broken by the smaller reference index, as in one process), then the row ranges are
  stacked; every row range must search the same reference rows (all of them, or one
  block: then the result is that block's partial lists);
* dense blocks, ``condensed=False``: stacked into the dense matrix (every row range with
  the same columns);
* dense blocks, ``condensed=True`` (one set against itself; rows from 0): each row range must cover at
  least the columns right of its first row (an upper-triangle strip, ``b0 <= a0``,
  ``b1 = n``); the condensed vector is read from the strips.

The row ranges must follow each other without gaps or overlaps; a merge of rows ``a:b``
makes just those rows (a partial result, merged again later).

Exit codes: 213 an input is not DistancesData, 222 blocks that do not tile or do not fit
together, 225 nothing to merge.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from ..data import DistancesData
from ..exit_codes import EXIT

__all__ = ["merge_blocks", "block_label", "parse_block_label"]

_LABEL = re.compile(r"^block_(\d+)_(\d+)_(\d+)_(\d+)$")


def block_label(a: tuple[int, int], b: tuple[int, int]) -> str:
    """The input label of the block of rows ``a`` and columns ``b``."""
    return f"block_{a[0]}_{a[1]}_{b[0]}_{b[1]}"


def parse_block_label(label: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((a0, a1), (b0, b1))`` of a block label; ``ValueError`` for another label."""
    match = _LABEL.match(label)
    if not match:
        raise ValueError(f"input {label!r} is not named block_<a0>_<a1>_<b0>_<b1>")
    a0, a1, b0, b1 = map(int, match.groups())
    if not (a0 < a1 and b0 < b1):
        raise ValueError(f"input {label!r}: empty row or column range")
    return (a0, a1), (b0, b1)


class _Mismatch(ValueError):
    pass


def _groups(blocks: dict[str, DistancesData]) -> list[tuple[tuple[int, int], list[tuple[tuple[int, int], DistancesData]]]]:
    """The blocks grouped by row range, row ranges in order, each group by column start;
    the row ranges must be consecutive (from the first one's start) and each block's shape
    fit its label."""
    groups: dict[tuple[int, int], list[tuple[tuple[int, int], DistancesData]]] = {}
    for label, node in blocks.items():
        a, b = parse_block_label(label)
        groups.setdefault(a, []).append((b, node))
    ordered = sorted(groups.items())
    position = ordered[0][0][0]
    for a, parts in ordered:
        if a[0] != position:
            raise _Mismatch(f"the row ranges do not tile: rows {position}:{a[0]} are missing or overlap")
        position = a[1]
        parts.sort(key=lambda part: part[0])
        for b, node in parts:
            if node.shape[0] != a[1] - a[0]:
                raise _Mismatch(f"block {block_label(a, b)} has {node.shape[0]} rows, its label says {a[1] - a[0]}")
    return ordered


def _common(nodes: list[DistancesData]) -> dict[str, Any]:
    first = nodes[0]
    keys = ("layout", "metric", "metric_parameters", "invariants")
    for node in nodes[1:]:
        for key in keys:
            if node.base.attributes.get(key) != first.base.attributes.get(key):
                raise _Mismatch(f"the blocks differ in {key}: {first.base.attributes.get(key)!r} and {node.base.attributes.get(key)!r}")
    return {"metric_parameters": first.metric_parameters, "invariants": first.base.attributes.get("invariants")}


def _columns(a: tuple[int, int], parts: list[tuple[tuple[int, int], DistancesData]]) -> tuple[int, int]:
    """The columns ``(start, stop)`` the blocks of rows ``a`` cover; they must follow each other."""
    covered = parts[0][0][0]
    for b, _ in parts:
        if b[0] != covered:
            raise _Mismatch(f"rows {a[0]}:{a[1]}: the column blocks do not tile (columns {covered}:{b[0]})")
        covered = b[1]
    return parts[0][0][0], covered


def _merge_knn(ordered, meta) -> DistancesData:
    from ..worker.topk import ABSENT, merge_topk

    first = ordered[0][1][0][1]
    col_ids = first.col_ids
    k = int(first.base.attributes.get("k"))
    exclude_self = bool(first.base.attributes.get("exclude_self"))
    rows_d, rows_i, row_ids = [], [], []
    span = None
    for a, parts in ordered:
        columns = _columns(a, parts)
        for b, node in parts:
            if node.col_ids != col_ids or int(node.base.attributes.get("k")) != k:
                raise _Mismatch(f"block {block_label(a, b)} has another reference set or k")
        if span is None:
            span = columns
        elif span != columns:
            raise _Mismatch(f"rows {a[0]}:{a[1]} search reference rows {columns[0]}:{columns[1]}, other rows {span[0]}:{span[1]}")
        d, i = merge_topk([node.get_knn() for _, node in parts], k)
        if span == (0, len(col_ids)) and (i == ABSENT).any():
            q = int(np.argwhere(i == ABSENT)[0][0])
            raise _Mismatch(f"row {a[0] + q} has fewer than k={k} neighbours in all its blocks")
        rows_d.append(d)
        rows_i.append(i)
        row_ids.extend(parts[0][1].row_ids)
    return DistancesData.from_knn(
        np.concatenate(rows_d), np.concatenate(rows_i), row_ids, col_ids, first.metric, exclude_self=exclude_self, **meta
    )


def _merge_dense(ordered, meta, condensed: bool) -> DistancesData:
    first = ordered[0][1][0][1]
    n = ordered[-1][0][1]
    row_ids: list[str] = []
    rows, pieces = [], []
    col_ids = None
    for a, parts in ordered:
        start, stop = _columns(a, parts)
        strip = np.hstack([node.get_matrix() for _, node in parts])
        row_ids.extend(parts[0][1].row_ids)
        if condensed:
            if start > a[0] or stop != n:
                raise _Mismatch(f"rows {a[0]}:{a[1]} cover columns {start}:{stop}; a condensed matrix needs {a[0]}:{n}")
            for r in range(a[1] - a[0]):
                row = a[0] + r
                pieces.append(strip[r, row + 1 - start:])
        else:
            ids = [i for _, node in parts for i in node.col_ids]
            if col_ids is None:
                col_ids = ids
            elif ids != col_ids:
                raise _Mismatch(f"rows {a[0]}:{a[1]} have other columns than rows {ordered[0][0][0]}:{ordered[0][0][1]}")
            rows.append(strip)
    if condensed:
        flat = np.concatenate(pieces) if pieces else np.empty(0)
        return DistancesData.from_condensed(flat, row_ids, first.metric, **meta)
    return DistancesData.from_matrix(np.vstack(rows), row_ids, col_ids, first.metric, **meta)


@calcfunction
def merge_blocks(condensed: orm.Bool | None = None, **blocks):
    """One ``DistancesData`` from the blocks of a distributed distance matrix or kNN graph
    (see the module docstring for the labels and the rules).

    Args:
        condensed: dense blocks of one set against itself make the condensed vector
            (default ``False``: the dense matrix).
        blocks: ``block_<a0>_<a1>_<b0>_<b1>`` -> ``DistancesData`` (all ``knn`` or all
            ``dense``).

    Returns:
        ``{'distances': DistancesData}``.
    """
    if not blocks:
        return EXIT.ERROR_MISSING_INPUT.format(message="no blocks to merge")
    for label, node in blocks.items():
        if not isinstance(node, DistancesData):
            return EXIT.ERROR_WRONG_NODE_TYPE.format(message=f"input {label!r} is a {type(node).__name__}, not DistancesData")
    try:
        ordered = _groups(blocks)
        meta = _common([node for _, parts in ordered for _, node in parts])
        layout = ordered[0][1][0][1].layout
        if layout == "knn":
            if condensed is not None and condensed.value:
                raise _Mismatch("kNN blocks do not make a condensed matrix")
            out = _merge_knn(ordered, meta)
        elif layout == "dense":
            out = _merge_dense(ordered, meta, bool(condensed.value) if condensed is not None else False)
        else:
            raise _Mismatch(f"blocks must be 'knn' or 'dense' DistancesData, got {layout!r}")
    except ValueError as exc:
        return EXIT.ERROR_INCOMPATIBLE_INPUTS.format(message=str(exc))
    return {"distances": out}
