"""Launchers of the distance calcfunctions, and the near-duplicate search.

* :func:`launch_distances`, :func:`launch_neighbours`, :func:`find_duplicates`,
  :func:`find_near_duplicates`: Python launchers (what ``crystinv distances / neighbours /
  duplicates`` call); :func:`find_duplicates` is the exact threshold search with groups,
  :func:`find_near_duplicates` the pairs of a k-nearest-neighbour graph (cut by k);
  :func:`similarity_search` the nearest records of a reference set to new structures
  (``crystinv search``);
* :func:`near_duplicate_pairs`: a calcfunction storing the near-duplicate pairs of a
  distances node as a ``List`` (used by the ``DemoWorkChain``).

Each launcher checks its arguments first and raises ``ValueError`` with an actionable message
before any node is stored, then runs the calcfunction here and returns
``(output or None, process node)`` (``None`` when the process failed: its
``exit_status`` and ``exit_message`` say why).

Example::

    from aiida_crystinv.workflows.neighbours import find_near_duplicates

    pairs, knn, node = find_near_duplicates(pdd_invariants, threshold=0.05, k=5)
    pairs[:3]   # [('KBr-wurtzite-3', 'KBr-wurtzite-3-dup', 0.0114), ...]  (PDD-EMD, Angstrom)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from ..calculations.functions import compute_distances, compute_duplicates, compute_neighbours
from ..calculations.ports import check_finite, validate_inputs
from ..data import DistancesData, InvariantsData
from ..data.distances import check_threshold
from ..exit_codes import EXIT
from ..specs import METRICS

__all__ = ["check_metric_applies", "check_neighbour_count", "launch_distances", "launch_neighbours", "find_duplicates",
           "Duplicates", "find_near_duplicates", "near_duplicate_pairs", "similarity_search", "SearchResult"]


def check_metric_applies(invariants: InvariantsData, metric: str | None) -> None:
    """Refuse a metric that does not apply to the descriptor of ``invariants``.

    Raises:
        ValueError: the message lists the metrics that apply.
    """
    if metric is None:
        return
    if invariants.descriptor not in METRICS.get(metric, ()):
        usable = [m for m, descs in METRICS.items() if invariants.descriptor in descs]
        raise ValueError(f"metric {metric} does not apply to {invariants.descriptor} invariants; use one of {', '.join(usable)}")


def _metric_input(metric: str | None) -> dict[str, Any]:
    return {"metric": orm.Dict({"name": metric})} if metric else {}


def launch_distances(
    invariants: InvariantsData, other: InvariantsData | None = None, metric: str | None = None
) -> tuple[DistancesData | None, orm.ProcessNode]:
    """Run ``compute_distances``: all pairs within ``invariants`` (condensed) or the dense
    matrix from ``invariants`` (rows) to ``other`` (columns).

    Args:
        metric: a name of :data:`~aiida_crystinv.data.METRICS`; default: the descriptor's.

    Raises:
        ValueError: a metric that does not apply, or ``other`` of another descriptor.
    """
    results, node = compute_distances.run_get_node(**distances_inputs(invariants, other, metric))
    return results.get("distances"), node


def distances_inputs(
    invariants: InvariantsData, other: InvariantsData | None = None, metric: str | None = None
) -> dict[str, Any]:
    """The checked inputs of ``compute_distances`` (see :func:`launch_distances`).

    Raises:
        ValueError: a metric that does not apply, or ``other`` of another descriptor.
    """
    check_metric_applies(invariants, metric)
    if other is not None and other.descriptor != invariants.descriptor:
        raise ValueError(
            f"cannot compare {invariants.descriptor} invariants ({invariants.pk}) with {other.descriptor} invariants ({other.pk})"
        )
    inputs: dict[str, Any] = {"invariants": invariants, **_metric_input(metric)}
    if other is not None:
        inputs["other"] = other
    return inputs


def check_neighbour_count(invariants: InvariantsData, k: int, metric: str | None = None) -> None:
    """Refuse ``k`` < 1 or not below the number of records, and a metric that does not apply.

    Raises:
        ValueError: one actionable line.
    """
    check_metric_applies(invariants, metric)
    n = len(invariants)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if k >= n:
        raise ValueError(f"k={k} is too large: there are only {n} structures (k < {n})")


def launch_neighbours(
    invariants: InvariantsData, k: int, metric: str | None = None
) -> tuple[DistancesData | None, orm.ProcessNode]:
    """Run ``compute_neighbours``: the exact ``k`` nearest neighbours of every record.

    Raises:
        ValueError: ``k`` < 1 or not smaller than the number of records, or a metric
            that does not apply.
    """
    results, node = compute_neighbours.run_get_node(**neighbours_inputs(invariants, k, metric))
    return results.get("distances"), node


def neighbours_inputs(invariants: InvariantsData, k: int, metric: str | None = None) -> dict[str, Any]:
    """The checked inputs of ``compute_neighbours`` (see :func:`launch_neighbours`)."""
    check_neighbour_count(invariants, k, metric)
    return {"invariants": invariants, "k": orm.Int(k), **_metric_input(metric)}


@dataclass(frozen=True)
class Duplicates:
    """The near-duplicates of a set: ``groups`` (identifiers, the representative first,
    sorted by representative) and ``pairs`` ``(id_a, id_b, distance)`` closest first."""

    groups: list[list[str]]
    pairs: list[tuple[str, str, float]]
    threshold: float
    metric: str


def read_duplicates(node: orm.ArrayData) -> Duplicates:
    """:class:`Duplicates` from a ``compute_duplicates`` output node."""
    ids = node.get_array("ids").tolist()
    group = node.get_array("group")
    pairs = node.get_array("pairs")
    d = node.get_array("distances")
    order = np.lexsort((pairs[:, 1], pairs[:, 0], d)) if len(d) else np.empty(0, int)
    members: dict[int, list[int]] = {}
    for index, g in enumerate(group.tolist()):
        if g >= 0:
            members.setdefault(g, []).append(index)
    groups = [sorted((ids[x] for x in members[g]), key=lambda r: (r != min(ids[x] for x in members[g]), r))
              for g in sorted(members)]
    return Duplicates(
        groups=groups,
        pairs=[(ids[pairs[t, 0]], ids[pairs[t, 1]], float(d[t])) for t in order],
        threshold=float(node.base.attributes.get("threshold")),
        metric=str(node.base.attributes.get("metric")),
    )


def find_duplicates(
    invariants: InvariantsData, threshold: float, metric: str | None = None
) -> tuple[Duplicates | None, orm.ProcessNode]:
    """Every pair within ``threshold`` and the groups they form, exactly
    (``compute_duplicates``; never cut by a neighbour count).

    Returns:
        ``(duplicates, node)``; ``(None, node)`` when the search failed.

    Raises:
        ValueError: a NaN or negative ``threshold``, a metric that does not apply (checked
            before anything is stored).
    """
    check_threshold(threshold)
    check_metric_applies(invariants, metric)
    results, node = compute_duplicates.run_get_node(invariants=invariants, threshold=orm.Float(threshold),
                                                    **_metric_input(metric))
    return (read_duplicates(results["duplicates"]) if "duplicates" in results else None), node


@dataclass(frozen=True)
class SearchResult:
    """The k nearest reference records of each query: ``knn`` (a kNN ``DistancesData``,
    rows = queries, columns = reference records), the invariants of both, and whether the
    reference invariants were found stored (``reused``) rather than computed."""

    knn: DistancesData
    query_invariants: InvariantsData
    reference_invariants: InvariantsData
    reused: bool

    def rows(self) -> list[tuple[str, int, str, float]]:
        """``(query id, rank from 1, reference id, distance)``, nearest first."""
        d, idx = self.knn.get_knn()
        return [(q, r + 1, self.knn.col_ids[int(idx[i, r])], float(d[i, r]))
                for i, q in enumerate(self.knn.row_ids) for r in range(d.shape[1])]


def _invariants_of(dataset: Any, spec: dict[str, Any], label: str) -> tuple[InvariantsData, bool]:
    from ..calculations.functions import compute_invariants
    from .training import find_invariants

    found = find_invariants(dataset, spec)
    if found is not None:
        return found, True
    results, node = compute_invariants.run_get_node(dataset=dataset, descriptor=orm.Dict({"name": spec["name"], **spec["params"]}),
                                                    metadata={"call_link_label": label})
    if not node.is_finished_ok:
        raise RuntimeError(f"the {label} failed: [{node.exit_status}] {node.exit_message}")
    return results["invariants"], False


def similarity_search(queries: Any, reference: Any, descriptor: Any = None, k: int = 5,
                      metric: str | None = None) -> tuple[SearchResult | None, orm.ProcessNode]:
    """The ``k`` nearest records of ``reference`` to each structure of ``queries``, exact.

    The invariants of both datasets are found stored (same descriptor and parameters) or
    computed once (``compute_invariants``) and reused by later searches against the same
    reference; the search is ``compute_neighbours`` with ``other`` = the reference.

    Args:
        queries, reference: ``CrystalDatasetData`` nodes (store a new one first).
        descriptor: ``{'name': 'pdd', 'k': 100}`` (the default) or any invariant spec.
        metric: default: the descriptor's natural metric.

    Returns:
        ``(result, node)``; ``(None, node)`` when the search failed.

    Raises:
        ValueError: an invalid descriptor, a metric that does not apply, ``k`` larger than
            the reference set (checked before anything is stored).
        RuntimeError: the invariants could not be computed (the message says why).
    """
    from ..specs import SpecError, parse_invariant

    try:
        spec = parse_invariant(descriptor if descriptor is not None else {"name": "pdd", "k": 100}).normalised()
    except SpecError as exc:
        raise ValueError(str(exc)) from None
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > len(reference):
        raise ValueError(f"k={k} but the reference set has {len(reference)} records")
    ref_inv, reused = _invariants_of(reference, spec, "reference invariants")
    check_metric_applies(ref_inv, metric)
    query_inv, _ = _invariants_of(queries, spec, "query invariants")
    results, node = compute_neighbours.run_get_node(invariants=query_inv, k=orm.Int(k), other=ref_inv,
                                                    **_metric_input(metric))
    if "distances" not in results:
        return None, node
    return SearchResult(results["distances"], query_inv, ref_inv, reused), node


def find_near_duplicates(
    invariants: InvariantsData, threshold: float, k: int = 5, metric: str | None = None
) -> tuple[list[tuple[str, str, float]], DistancesData | None, orm.ProcessNode]:
    """Near-duplicate pairs: the ``k``-nearest-neighbour graph (stored), then its pairs
    within ``threshold`` (:meth:`~aiida_crystinv.data.DistancesData.pairs_within`).

    ``k`` is lowered to the number of records minus one; a cluster of more than ``k + 1``
    copies of one crystal shows partly.

    Returns:
        ``(pairs, knn, node)``; ``([], None, node)`` when the search failed.

    Raises:
        ValueError: a NaN or negative ``threshold``, a single record, a metric that does
            not apply (all checked before anything is stored).
    """
    check_threshold(threshold)
    check_metric_applies(invariants, metric)
    k = min(k, len(invariants) - 1)
    if k < 1:
        raise ValueError("a single structure has no duplicates")
    knn, node = launch_neighbours(invariants, k, metric)
    return (knn.pairs_within(threshold) if knn is not None else []), knn, node


@calcfunction
def near_duplicate_pairs(distances: DistancesData, threshold: orm.Float):
    """The pairs of ``distances`` at most ``threshold`` apart, as ``pairs``: a ``List`` of
    ``[id_a, id_b, distance]`` (``id_a < id_b``), closest first
    (:meth:`~aiida_crystinv.data.DistancesData.pairs_within`).

    ``threshold`` is checked at its port (a finite number >= 0).
    """
    try:
        pairs = distances.pairs_within(threshold.value)
    except ValueError as exc:
        return EXIT.ERROR_INVALID_SPEC.format(message=str(exc))
    return {"pairs": orm.List([list(pair) for pair in pairs])}


validate_inputs(near_duplicate_pairs, threshold=check_finite)
