"""Nodes as pandas DataFrames: :func:`to_dataframe` (pandas is imported only when called).

========================  ==================================================================
node                      frame (``df.attrs["units"]``: unit of each column that has one)
========================  ==================================================================
``CrystalDatasetData``    one row per record: ``id``, ``formula``, one column per target
                          (its unit in ``units``), with ``cif=True`` a ``cif`` column of
                          CIF text (what ``crystinv export --format cif`` writes per record)
``InvariantsData``        ``amd``: one row per record, ``id``, ``amd_1`` ... ``amd_k``
                          (Angstrom); ``rdf``: ``id``, ``rdf_1`` ... (one per bin; bin
                          centres in ``attrs["bin_centres"]``, Angstrom); ``grid``: ``id``,
                          ``grid_s<shell>_b<bin>`` (shell-major, both from 1);
                          ``composition``: ``id`` and the feature names.
                          ``pdd``: one row per *PDD row* (a PDD is a weighted set of rows,
                          which no fixed set of columns holds without loss): ``id``,
                          ``row`` (from 1 within the record), ``weight`` (the row's
                          multiplicity / motif size; they sum to 1 per record) and
                          ``d_1`` ... ``d_k`` (Angstrom). ``pdd="amd"`` gives the AMD
                          derived from the PDDs instead, one row per record.
``DistancesData``         ``form="long"``: kNN graph -> ``query``, ``neighbour``, ``rank``
                          (from 1), ``distance``; a matrix -> ``row``, ``column``,
                          ``distance`` (a pairwise matrix: each unordered pair once,
                          ``row`` before ``column`` in record order; a cross matrix: every
                          entry). ``form="square"`` (the default for a matrix): the full
                          matrix, index the row ids, columns the column ids. A kNN graph
                          has no square form.
predictions ``ArrayData``  ``id``, ``y_true`` (if known), ``y_pred``, ``fold`` (cross-
                          validation only); the target's unit for ``y_true`` / ``y_pred``
metrics ``Dict``          a study summary (``rows``): one row per trained pair; the metrics
                          of ``cross_validate`` / ``predict``: one row of the scalar metrics
duplicates ``ArrayData``  (``compute_duplicates``) ``what="pairs"``: ``structure``,
                          ``near_duplicate``, ``distance``, by distance; ``what="groups"``:
                          ``group``, ``size``, ``representative``, ``member``, one row per
                          member (what ``crystinv duplicates --format csv`` writes)
========================  ==================================================================

``df.attrs`` also holds ``node`` (the UUID) and, by type, ``descriptor`` / ``parameters``
/ ``metric`` / ``target``. The values are the node's arrays as stored (float64, or float32
for GRID and RDF), never rounded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["to_dataframe", "dataset_frame", "invariants_frame", "distances_frame", "predictions_frame",
           "metrics_frame", "duplicates_frame", "metric_unit", "DISTANCE_FORMS", "PDD_FORMS"]

#: ``form`` of :func:`distances_frame`.
DISTANCE_FORMS = ("long", "square")
#: ``pdd`` of :func:`invariants_frame`.
PDD_FORMS = ("rows", "amd")

#: Attribute of a predictions ``ArrayData`` (``aiida_crystinv.calculations._problem``).
_PREDICTIONS_ATTRIBUTE = "crystinv_predictions"

#: Scalar metrics of a metrics Dict, in the order shown.
_METRIC_KEYS = ("mae", "median_ae", "rmse", "r2", "n", "baseline_mae", "baseline_median_ae")


def metric_unit(metric: str) -> str:
    """Unit of a distance metric: Angstrom for AMD, PDD, GRID and RDF metrics; ``''`` for
    ``composition_l1`` (its features have mixed units)."""
    return "" if metric.startswith("composition") else "Angstrom"


def _frame(columns: dict[str, Any], units: dict[str, str], **attrs: Any) -> "pandas.DataFrame":
    import pandas as pd

    df = pd.DataFrame(columns)
    df.attrs["units"] = {k: v for k, v in units.items() if v and k in df.columns}
    df.attrs.update(attrs)
    return df


def dataset_frame(node: Any, cif: bool = False) -> "pandas.DataFrame":
    """One row per record of a ``CrystalDatasetData``: ``id``, ``formula``, the targets
    (float64, NaN where unknown) and, with ``cif=True``, the CIF text of each record."""
    columns: dict[str, Any] = {"id": node.ids, "formula": node.formulas}
    if cif:
        from ._export import _cif_block

        columns["cif"] = [_cif_block(s, rid) for s, rid in zip(node.get_structures(), node.ids)]
    for name in node.target_names:
        columns[name] = node.get_target(name)
    return _frame(columns, node.units, node=str(node.uuid))


def _numbered(prefix: str, n: int) -> list[str]:
    return [f"{prefix}_{i}" for i in range(1, n + 1)]


def invariants_frame(node: Any, pdd: str = "rows") -> "pandas.DataFrame":
    """The invariants of an ``InvariantsData`` as a frame (see the module table).

    Raises:
        ValueError: ``pdd`` not ``'rows'`` or ``'amd'``.
    """
    if pdd not in PDD_FORMS:
        raise ValueError(f"pdd={pdd!r}: use one of {', '.join(PDD_FORMS)}")
    ids = node.ids
    descriptor, params = node.descriptor, node.parameters
    attrs = {"node": str(node.uuid), "descriptor": descriptor, "parameters": params}
    if descriptor == "pdd" and pdd == "rows":
        pdds = node.get_pdds()
        counts = [len(p) for p in pdds]
        stacked = np.concatenate(pdds) if pdds else np.zeros((0, int(params.get("k", 0)) + 1))
        names = _numbered("d", stacked.shape[1] - 1)
        columns: dict[str, Any] = {
            "id": np.repeat(np.array(ids, dtype=object), counts),
            "row": np.concatenate([np.arange(1, c + 1) for c in counts]) if counts else np.zeros(0, dtype=np.int64),
            "weight": stacked[:, 0],
        }
        columns.update({name: stacked[:, j + 1] for j, name in enumerate(names)})
        return _frame(columns, dict.fromkeys(names, "Angstrom"), **attrs)
    if descriptor in ("amd", "pdd"):
        amd = node.get_amd()
        names = _numbered("amd", amd.shape[1])
        units = dict.fromkeys(names, "Angstrom")
    else:
        stack = node.get_stack()
        amd = stack.reshape(len(stack), -1)
        if descriptor == "grid":
            shells, bins = stack.shape[1:]
            names = [f"grid_s{s}_b{b}" for s in range(1, shells + 1) for b in range(1, bins + 1)]
            attrs["bin_centres"] = _bin_centres("grid", params, bins)
        elif descriptor == "rdf":
            names = _numbered("rdf", amd.shape[1])
            attrs["bin_centres"] = _bin_centres("rdf", params, amd.shape[1])
        else:
            names = _feature_names(params, amd.shape[1])
        units = {}
    columns = {"id": ids}
    columns.update({name: amd[:, j] for j, name in enumerate(names)})
    return _frame(columns, units, **attrs)


def _bin_centres(descriptor: str, params: dict[str, Any], n_bins: int) -> list[float]:
    """Bin centres (Angstrom) of GRID / RDF bins: ``(b + 0.5) * bin_width``."""
    width = float(params.get("bin_width", 0.1 if descriptor == "grid" else 0.05))
    return [(b + 0.5) * width for b in range(n_bins)]


def _feature_names(params: dict[str, Any], n: int) -> list[str]:
    """Names of the composition features (``composition_feature_names``), or
    ``feature_1`` ... when they cannot be derived from the recorded parameters."""
    try:
        from ..invariants.composition import composition_feature_names

        kwargs = {k: params[k] for k in ("properties", "stats") if k in params}
        names = list(composition_feature_names(**kwargs))
    except Exception:  # noqa: BLE001 - fall back to numbered columns
        names = []
    if len(names) != n or len(set(names)) != n or "id" in names:
        names = _numbered("feature", n)
    return names


def distances_frame(node: Any, form: str | None = None) -> "pandas.DataFrame":
    """A ``DistancesData`` as a frame (see the module table); ``form`` defaults to
    ``'long'`` for a kNN graph and ``'square'`` for a matrix.

    Raises:
        ValueError: an unknown ``form``, or ``'square'`` for a kNN graph.
    """
    import pandas as pd

    if form is None:
        form = "long" if node.is_knn else "square"
    if form not in DISTANCE_FORMS:
        raise ValueError(f"form={form!r}: use one of {', '.join(DISTANCE_FORMS)}")
    unit = metric_unit(node.metric)
    attrs = {"node": str(node.uuid), "metric": node.metric, "layout": node.layout}
    rows, cols = node.row_ids, node.col_ids
    if node.is_knn:
        if form == "square":
            raise ValueError("a kNN graph has no square form (most entries are unknown): use form='long'")
        distances, indices = node.get_knn()
        n, k = distances.shape
        columns: dict[str, Any] = {
            "query": np.repeat(np.array(rows, dtype=object), k),
            "neighbour": np.array(cols, dtype=object)[indices.ravel()] if indices.size else np.zeros(0, dtype=object),
            "rank": np.tile(np.arange(1, k + 1), n),
            "distance": distances.ravel(),
        }
        return _frame(columns, {"distance": unit}, **attrs)
    if form == "square":
        df = pd.DataFrame(node.get_matrix(), index=pd.Index(rows, name="row"), columns=pd.Index(cols, name="column"))
        df.attrs["units"] = {"distance": unit} if unit else {}
        df.attrs.update(attrs)
        return df
    if node.layout == "condensed":
        i, j = np.triu_indices(len(rows), k=1)
        values = node.get_condensed()
    else:
        i, j = np.indices(node.shape).reshape(2, -1)
        values = node.get_matrix().ravel()
    columns = {
        "row": np.array(rows, dtype=object)[i],
        "column": np.array(cols, dtype=object)[j],
        "distance": values,
    }
    return _frame(columns, {"distance": unit}, **attrs)


def predictions_frame(node: Any) -> "pandas.DataFrame":
    """A predictions ``ArrayData`` (``cross_validate`` / ``predict``): ``id``, ``y_true``
    (if known), ``y_pred``, ``fold`` (cross-validation); units of the target."""
    info = dict(node.base.attributes.get(_PREDICTIONS_ATTRIBUTE, {}))
    names = node.get_arraynames()
    columns: dict[str, Any] = {"id": node.get_array("ids").tolist()}
    for name in ("y_true", "y_pred", "fold"):
        if name in names:
            columns[name] = node.get_array(name)
    unit = str(info.get("unit") or "")
    return _frame(columns, {"y_true": unit, "y_pred": unit}, node=str(node.uuid), target=info.get("target"))


def metrics_frame(node: Any) -> "pandas.DataFrame":
    """A metrics ``Dict``: a study summary (``rows``) gives one row per trained pair; the
    metrics of ``cross_validate`` / ``train_model`` / ``predict`` one row of scalars."""
    data = node.get_dict()
    if isinstance(data.get("rows"), list):
        import pandas as pd

        df = pd.DataFrame(data["rows"])
        unit = str(data.get("unit") or "")
        error_columns = [c for c in df.columns if c in ("mae", "median_ae", "rmse", "baseline_mae", "baseline_median_ae")]
        df.attrs["units"] = dict.fromkeys(error_columns, unit) if unit else {}
        df.attrs.update({"node": str(node.uuid), "target": data.get("target"), "evaluation": data.get("evaluation")})
        return df
    scalars = {k: v for k, v in data.items() if isinstance(v, (int, float, str, bool)) or v is None}
    if not any(k in scalars for k in _METRIC_KEYS) and not any(k.startswith("train_") for k in scalars):
        raise TypeError(f"Dict {node.pk} holds no metrics (no {', '.join(_METRIC_KEYS[:4])} ...)")
    unit = str(data.get("unit") or "")
    errors = [k for k in scalars if k.endswith("mae") or k.endswith("median_ae") or k.endswith("rmse")]
    return _frame({k: [v] for k, v in scalars.items()}, dict.fromkeys(errors, unit), node=str(node.uuid),
                  target=data.get("target"))


#: Arrays of a ``compute_duplicates`` output node.
_DUPLICATES_ARRAYS = {"pairs", "distances", "group", "ids"}


def duplicates_frame(node: Any, what: str = "pairs") -> "pandas.DataFrame":
    """A ``compute_duplicates`` output (``ArrayData``): its pairs or its groups.

    ``pairs``: ``structure``, ``near_duplicate`` (``structure`` first in record order),
    ``distance``, sorted by distance, then record positions. ``groups``: one row per
    member, ``group`` (from 1, in the order of the stored group numbers), ``size``,
    ``representative`` (the smallest identifier), ``member`` (sorted).

    Raises:
        ValueError: ``what`` not ``'pairs'`` or ``'groups'``.
    """
    if what not in ("pairs", "groups"):
        raise ValueError(f"what={what!r}: use 'pairs' or 'groups'")
    ids = np.array(node.get_array("ids").tolist(), dtype=object)
    metric = str(node.base.attributes.get("metric", ""))
    attrs = {"node": str(node.uuid), "metric": metric, "threshold": node.base.attributes.get("threshold")}
    if what == "pairs":
        pairs, distances = node.get_array("pairs"), node.get_array("distances")
        order = np.lexsort((pairs[:, 1], pairs[:, 0], distances)) if len(distances) else np.zeros(0, dtype=np.int64)
        columns = {
            "structure": ids[pairs[order, 0]] if len(order) else np.zeros(0, dtype=object),
            "near_duplicate": ids[pairs[order, 1]] if len(order) else np.zeros(0, dtype=object),
            "distance": distances[order],
        }
        return _frame(columns, {"distance": metric_unit(metric)}, **attrs)
    group = node.get_array("group")
    rows: list[tuple[int, int, str, str]] = []
    for number, g in enumerate(sorted(set(group[group >= 0].tolist())), start=1):
        members = sorted(str(x) for x in ids[group == g])
        rows.extend((number, len(members), members[0], m) for m in members)
    columns = {name: [r[c] for r in rows] for c, name in enumerate(("group", "size", "representative", "member"))}
    return _frame(columns, {}, **attrs)


def to_dataframe(node: Any, **options: Any) -> "pandas.DataFrame":
    """Any table-like node of aiida-crystinv as a ``pandas.DataFrame`` (module table).

    Args:
        node: a ``CrystalDatasetData`` (option ``cif``), ``InvariantsData`` (``pdd``),
            ``DistancesData`` (``form``), a predictions ``ArrayData``, a duplicates
            ``ArrayData`` (``what``) or a metrics / study-summary ``Dict``.
        options: passed to the function of that node type.

    Raises:
        TypeError: a node that holds no table of this package.
    """
    from aiida import orm

    from .dataset import CrystalDatasetData
    from .distances import DistancesData
    from .invariants import InvariantsData

    if isinstance(node, CrystalDatasetData):
        return dataset_frame(node, **options)
    if isinstance(node, InvariantsData):
        return invariants_frame(node, **options)
    if isinstance(node, DistancesData):
        return distances_frame(node, **options)
    if isinstance(node, orm.ArrayData) and node.base.attributes.get(_PREDICTIONS_ATTRIBUTE, None) is not None:
        return predictions_frame(node, **options)
    if isinstance(node, orm.ArrayData) and _DUPLICATES_ARRAYS <= set(node.get_arraynames()):
        return duplicates_frame(node, **options)
    if isinstance(node, orm.Dict):
        return metrics_frame(node, **options)
    raise TypeError(
        f"{type(node).__name__} {getattr(node, 'pk', '')} is not a dataset, invariants, distances, predictions "
        "or metrics node of aiida-crystinv"
    )
