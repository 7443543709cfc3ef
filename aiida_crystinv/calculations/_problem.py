"""From the nodes a learning calcfunction gets to what a model is fitted on (a
:class:`_Problem`: vectors or a square distance matrix, targets, the model spec), and the
exit code of each failure (:class:`_Fail`, raised here, returned by :func:`_guard`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import ExitCode

from ..data import CrystalDatasetData, DistancesData, InvariantsData
from ..data._arrays import as_str_array, jsonable
from ..data.values import (
    DescriptorValues,
    ModelSpecError,
    blas_limit,
    compute_values,
    descriptor_incompatibility,
    values_from_node,
)
from ..exit_codes import EXIT
from ..specs import SpecError, parse_descriptor
from ..specs.learning import resolve_pair
from .ports import (
    spec_of,
)

#: Attribute of a predictions ``ArrayData`` describing what was predicted.
PREDICTIONS_ATTRIBUTE = "crystinv_predictions"

# ------------------------------------------------------------------------------- helpers


class _Fail(Exception):
    """Internal: carries an ExitCode out of the helpers."""

    def __init__(self, exit_code: ExitCode):
        super().__init__(exit_code.message)
        self.exit_code = exit_code


def _target(dataset: CrystalDatasetData, target: orm.Str) -> tuple[np.ndarray, str]:
    from ..learning.models import check_target

    name = target.value
    if name not in dataset.target_names:
        raise _Fail(
            EXIT.ERROR_MISSING_TARGET.format(
                message=f"dataset {dataset.pk} has no target {name!r}; its targets are {dataset.target_names or 'none'}"
            )
        )
    try:
        y = check_target(dataset.get_target(name), name=f"target {name!r}")
    except ValueError as exc:
        raise _Fail(EXIT.ERROR_INVALID_TARGET.format(message=str(exc))) from None
    return y, dataset.units.get(name, "")


def _values(
    dataset: CrystalDatasetData | None,
    descriptor: orm.Dict | orm.Str | None,
    invariants: InvariantsData | None,
    features: orm.ArrayData | None,
) -> DescriptorValues:
    """Descriptor values of the dataset's records: from the node given, or computed."""
    wanted = parse_descriptor(spec_of(descriptor)).normalised() if descriptor is not None else None
    given = [n for n in (invariants, features) if n is not None]
    if len(given) > 1:
        raise _Fail(EXIT.ERROR_MISSING_INPUT.format(message="give either invariants or features, not both"))
    if given:
        try:
            values = values_from_node(given[0])
        except ModelSpecError as exc:
            raise _Fail(EXIT.ERROR_INCOMPATIBLE_INPUTS.format(message=str(exc))) from None
        if wanted is not None:
            reason = descriptor_incompatibility(wanted, values.spec)
            if reason:
                reason = reason.replace("the model was trained on", "the descriptor asked for is")
                raise _Fail(EXIT.ERROR_INCOMPATIBLE_INPUTS.format(message=reason))
        if dataset is not None and values.ids != dataset.ids:
            raise _Fail(
                EXIT.ERROR_INCOMPATIBLE_INPUTS.format(
                    message=f"the rows of node {given[0].pk} ({len(values)} records) are not the records of "
                    f"dataset {dataset.pk} ({len(dataset)} records) in dataset order"
                )
            )
        return values
    if wanted is None:
        raise _Fail(EXIT.ERROR_MISSING_INPUT.format(message="give a descriptor, invariants or features"))
    if dataset is None:
        raise _Fail(EXIT.ERROR_MISSING_INPUT.format(message="give a dataset to compute the descriptor on"))
    try:
        return compute_values(wanted, dataset.get_crystals(), dataset.ids)
    except ValueError as exc:
        raise _Fail(EXIT.ERROR_DESCRIPTOR_FAILED.format(message=str(exc))) from None


def _model_spec(model: orm.Dict, values: DescriptorValues) -> dict[str, Any]:
    try:
        return resolve_pair(model.get_dict(), values.spec)
    except SpecError as exc:
        raise _Fail(EXIT.ERROR_INCOMPATIBLE_INPUTS.format(message=str(exc))) from None


def _square_distances(values: DescriptorValues, metric: dict[str, Any], distances: DistancesData | None) -> np.ndarray:
    """(n, n) distances between the records, from ``distances`` or computed."""
    from .. import distances as dist

    params = dict(metric)
    name = params.pop("name")
    if distances is not None:
        problems = []
        if distances.metric != name:
            problems.append(f"metric {distances.metric!r} instead of {name!r}")
        if distances.layout not in ("condensed", "dense") or distances.row_ids != values.ids or distances.col_ids != values.ids:
            problems.append("not all pairwise distances between these records in this order")
        inv = distances.invariants_parameters
        if inv and (inv.get("descriptor") != values.spec["name"] or jsonable(inv.get("parameters")) != jsonable(values.spec["params"])):
            problems.append("computed on other invariants")
        mp = {k: v for k, v in distances.metric_parameters.items() if v is not None}
        if {k: v for k, v in params.items() if v is not None} != mp:
            problems.append(f"metric parameters {mp} instead of {params}")
        if problems:
            raise _Fail(
                EXIT.ERROR_INCOMPATIBLE_INPUTS.format(
                    message=f"distances {distances.pk} cannot be used: " + "; ".join(problems)
                )
            )
        return np.asarray(distances.get_matrix(), dtype=float)
    from scipy.spatial.distance import squareform

    try:
        return squareform(dist.pdist(values.metric_items(name), name, **params), checks=False)
    except (TypeError, ValueError) as exc:
        raise _Fail(EXIT.ERROR_INVALID_SPEC.format(message=f"metric {name!r}: {exc}")) from None


@dataclass
class _Problem:
    """What a model is fitted on: X (vectors) or D (square distances), targets, ids."""

    values: DescriptorValues
    y: np.ndarray
    unit: str
    model_spec: dict[str, Any]
    D: np.ndarray | None

    def inputs(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """Model input for records ``rows``: vectors, or distances to the records ``cols``."""
        if self.D is not None:
            return self.D[np.ix_(rows, rows if cols is None else cols)]
        if self.values.is_ragged:  # only the median baseline gets here
            return np.zeros((len(rows), 1))
        return self.values.matrix()[rows]

    def build(self):
        from ..learning.models import build_model

        spec = {k: v for k, v in self.model_spec.items() if k != "metric"}
        return build_model(spec)


def _problem(dataset, target, model, descriptor, invariants, features, distances) -> _Problem:
    y, unit = _target(dataset, target)
    values = _values(dataset, descriptor, invariants, features)
    model_spec = _model_spec(model, values)
    if model_spec["name"] == "krr" and values.is_ragged:
        raise _Fail(EXIT.ERROR_INVALID_SPEC.format(message="kernel ridge needs vectors, not ragged PDDs"))
    D = _square_distances(values, model_spec["metric"], distances) if model_spec["name"] == "knn" else None
    return _Problem(values, y, unit, model_spec, D)


def _fail_from(exc: ValueError) -> _Fail:
    """The exit code of an error of the learning layer, chosen by its type."""
    from ..learning.errors import TargetError, TooFewRecordsError

    if isinstance(exc, TooFewRecordsError):
        return _Fail(EXIT.ERROR_TOO_FEW_RECORDS.format(message=str(exc)))
    if isinstance(exc, TargetError):
        return _Fail(EXIT.ERROR_INVALID_TARGET.format(message=str(exc)))
    return _Fail(EXIT.ERROR_FIT_FAILED.format(message=str(exc)))


def _fit(problem: _Problem, rows: np.ndarray):
    model = problem.build()
    try:
        with blas_limit(len(rows)):
            model.fit(problem.inputs(rows), problem.y[rows])
    except ValueError as exc:
        raise _fail_from(exc) from None
    return model


def _predict(problem: _Problem, model, rows: np.ndarray, train_rows: np.ndarray) -> np.ndarray:
    with blas_limit(len(train_rows)):
        return model.predict(problem.inputs(rows, train_rows))


def predictions_arrays(node: orm.ArrayData) -> dict[str, np.ndarray]:
    """The arrays of a predictions node: ``ids``, ``y_pred`` and, if known, ``y_true``, ``fold``."""
    return {name: node.get_array(name) for name in node.get_arraynames()}


def _predictions_node(ids, y_pred, y_true=None, fold=None, info: dict[str, Any] | None = None) -> orm.ArrayData:
    node = orm.ArrayData()
    node.set_array("ids", as_str_array(ids))
    node.set_array("y_pred", np.asarray(y_pred, dtype=float))
    if y_true is not None:
        node.set_array("y_true", np.asarray(y_true, dtype=float))
    if fold is not None:
        node.set_array("fold", np.asarray(fold, dtype=np.int64))
    node.base.attributes.set(PREDICTIONS_ATTRIBUTE, jsonable(info or {}))
    return node


def _guard(func):
    """Run ``func``; a :class:`_Fail` becomes its exit code (nothing was made yet)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except _Fail as fail:
            return fail.exit_code

    return wrapper
