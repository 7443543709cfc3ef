"""Learning steps as calcfunctions: features, cross-validation, training, prediction, plots
(the sources ``synthetic_dataset`` and ``import_group`` are in
:mod:`aiida_crystinv.calculations.sources`; the shared input handling in ``_problem``).

Each function takes and returns nodes, so every model, prediction and plot is linked to
the data it came from. A bad input returns an :class:`~aiida.engine.ExitCode` of
:mod:`aiida_crystinv.exit_codes` and stores no output at all (everything is checked and
computed before the first output node is made).

=======================  ==============================================================  ==========================
calcfunction             inputs                                                          outputs
=======================  ==============================================================  ==========================
``compute_features``     ``dataset``, ``descriptor`` (Dict)                              ``features`` (ArrayData)
``cross_validate``       ``dataset``, ``target`` (Str), ``model`` (Dict), ``split``      ``predictions``, ``metrics``
                         (Dict), and ``descriptor`` (Dict) or ``invariants`` /
                         ``features``; ``distances`` (optional, kNN)
``train_model``          as ``cross_validate`` without ``split``                         ``model`` (ModelData),
                                                                                          ``metrics``
``predict``              ``model``, ``dataset`` and/or ``invariants`` / ``features``,    ``predictions``,
                         ``reference`` (kNN: training invariants)                        ``metrics`` (if targets)
``parity_plot``          ``predictions``, ``title`` (Str, optional)                      ``plot`` (SinglefileData PNG)
=======================  ==============================================================  ==========================

Predictions are an ``ArrayData`` with arrays ``ids`` (record identifiers), ``y_pred``
and, when the true values are known, ``y_true`` (and ``fold`` for cross-validation); the
attribute ``crystinv_predictions`` names the target, its unit, the model and descriptor.

Specs (JSON):

* descriptor -- ``{'name': 'pdd', 'k': 50}`` (invariants: amd, pdd, grid, rdf,
  composition) or ``{'name': 'amd+element_stats', 'kind': 'features', ...}`` (see
  :mod:`aiida_crystinv.specs`);
* model -- ``{'name': 'knn', 'k': [1, 3, 5, 10], 'weights': 'distance', 'metric':
  'pdd_emd'}``, ``{'name': 'krr', 'kernel': 'laplacian'}``, ``{'name': 'median'}``, plus
  ``target_transform: log10`` (see :func:`aiida_crystinv.learning.models.build_model`);
* split -- ``{'kind': 'kfold', 'n_splits': 5, 'seed': 0}`` or ``{'kind': 'holdout',
  'test_fraction': 0.2, 'seed': 0}``.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from ..data import CrystalDatasetData, DistancesData, InvariantsData
from ..data._arrays import as_str_array, jsonable
from ..data.model import ModelData
from ..data.values import (
    FEATURES_ATTRIBUTE,
    ModelSpecError,
    blas_limit,
    compute_values,
    spec_hash,
)
from ..exit_codes import EXIT
from ..specs import parse_descriptor
from ..specs.learning import parse_split
from ._problem import (
    PREDICTIONS_ATTRIBUTE,
    _fail_from,
    _Fail,
    _fit,
    _guard,
    _predict,
    _predictions_node,
    _Problem,
    _problem,
    _values,
    predictions_arrays,
)
from .ports import (
    check_descriptor,
    check_model,
    check_split,
    spec_of,
    validate_inputs,
)

__all__ = [
    "PREDICTIONS_ATTRIBUTE",
    "compute_features",
    "cross_validate",
    "train_model",
    "predict",
    "parity_plot",
    "predictions_arrays",
]




# ------------------------------------------------------------------------------- features


@calcfunction
@_guard
def compute_features(dataset: CrystalDatasetData, descriptor: orm.Dict | orm.Str):
    """Feature vectors of every record (a ``features`` descriptor of
    :mod:`aiida_crystinv.learning.descriptors`), as ONE ``ArrayData``.

    Arrays ``features`` (n, d) and ``ids`` (n,); attribute ``crystinv_features`` =
    ``{'descriptor': spec, 'dataset_uuid', 'spec_sha256'}`` (used to find it again by query).

    The descriptor is validated at the port. Exit codes: 220 an invariants descriptor (use
    ``compute_invariants``), 301 a structure failed.
    """
    spec = parse_descriptor(spec_of(descriptor)).normalised()
    if spec["kind"] != "features":
        raise _Fail(
            EXIT.ERROR_INVALID_SPEC.format(
                message=f"{spec['name']!r} is an invariants descriptor: compute it with compute_invariants"
            )
        )
    values = _values(dataset, descriptor, None, None)
    node = orm.ArrayData()
    node.set_array("features", np.asarray(values.items, dtype=float))
    node.set_array("ids", as_str_array(values.ids))
    node.base.attributes.set(
        FEATURES_ATTRIBUTE, {"descriptor": spec, "dataset_uuid": dataset.uuid, "spec_sha256": spec_hash(spec)}
    )
    return {"features": node}


# ------------------------------------------------------------------------------- learning


def _info(problem: _Problem, target: str, **extra: Any) -> dict[str, Any]:
    return {
        "target": target,
        "unit": problem.unit,
        "model": problem.model_spec,
        "descriptor": problem.values.spec,
        **extra,
    }


@calcfunction
@_guard
def cross_validate(
    dataset: CrystalDatasetData,
    target: orm.Str,
    model: orm.Dict,
    split: orm.Dict | None = None,
    descriptor: orm.Dict | orm.Str | None = None,
    invariants: InvariantsData | None = None,
    features: orm.ArrayData | None = None,
    distances: DistancesData | None = None,
):
    """Cross-validated (k-fold) or hold-out predictions of a model spec on a dataset.

    Every fold fits a fresh model on the other folds (inner CV for hyperparameters sees
    only those) and predicts its records; the same seed gives the same folds for every
    model. A hold-out split predicts only the test records.

    Returns:
        ``predictions`` (ArrayData: ``ids``, ``y_true``, ``y_pred``, ``fold``) and
        ``metrics`` (Dict: ``mae``, ``median_ae``, ``rmse``, ``r2``, ``n``, ``unit``,
        ``fold_mae``, ``baseline_mae`` and ``baseline_median_ae`` of the median predictor
        on the same folds).

    The model, split and descriptor specs are validated at the ports. Exit codes: 230 no
    such target, 231 NaN / infinite / non-positive (log10) targets, 232 fewer records than
    folds, 222 a model that cannot use these values, or invariants of another dataset,
    descriptor or parameters, 225 missing input, 301 a structure failed, 310 the fit failed.
    The folds, fits and metrics are those of :func:`aiida_crystinv.learning.cross_validate`
    (the benchmarks measure the same function).
    """
    from ..learning.splits import holdout_split, kfold_indices
    from ..learning.validation import cross_validate as cross_validate_pure

    split_spec = parse_split(spec_of(split)).as_dict()
    problem = _problem(dataset, target, model, descriptor, invariants, features, distances)
    n = len(problem.y)
    try:
        if split_spec["kind"] == "kfold":
            folds = kfold_indices(n, split_spec["n_splits"], split_spec["seed"])
        else:
            folds = [holdout_split(n, split_spec["test_fraction"], split_spec["seed"])]
    except ValueError as exc:
        raise _fail_from(exc) from None
    X = problem.D if problem.D is not None else problem.inputs(np.arange(n))
    train_size = max(len(train) for train, _ in folds)
    try:
        with blas_limit(train_size):
            res = cross_validate_pure(problem.build(), X, problem.y, folds=folds)
    except ValueError as exc:
        raise _fail_from(exc) from None
    tested = np.flatnonzero(res["fold"] >= 0)
    y_pred, fold = res["predictions"], res["fold"]
    metrics = dict(res["metrics"])
    metrics.update(
        {
            "unit": problem.unit,
            "target": target.value,
            "split": split_spec,
            "fold_mae": [m["mae"] for m in res["fold_metrics"]],
            "baseline_mae": res["baseline"]["mae"],
            "baseline_median_ae": res["baseline"]["median_ae"],
        }
    )
    ids = [problem.values.ids[i] for i in tested]
    node = _predictions_node(
        ids, y_pred[tested], problem.y[tested], fold[tested], _info(problem, target.value, split=split_spec)
    )
    return {"predictions": node, "metrics": orm.Dict(jsonable(metrics))}


@calcfunction
@_guard
def train_model(
    dataset: CrystalDatasetData,
    target: orm.Str,
    model: orm.Dict,
    descriptor: orm.Dict | orm.Str | None = None,
    invariants: InvariantsData | None = None,
    features: orm.ArrayData | None = None,
    distances: DistancesData | None = None,
):
    """Fit a model on every record of a dataset: a :class:`~aiida_crystinv.data.ModelData`.

    Args:
        dataset: the records and their targets.
        target: name of the target (a column of the dataset).
        model: the model spec (``name`` and constructor arguments; ``metric`` for kNN).
        descriptor: the descriptor spec, computed on the dataset when neither
            ``invariants`` nor ``features`` is given (then it is recomputed at every
            prediction; pass the stored node to keep the link).
        invariants / features: precomputed values for the dataset's records, in order.
        distances: kNN only: all pairwise distances of the invariants (else computed).

    Returns:
        ``model`` (ModelData) and ``metrics`` (Dict: training-set ``mae`` ... and the
        fitted hyperparameters; these are fit errors, not generalisation errors -- use
        ``cross_validate`` for those).

    Exit codes: as :func:`cross_validate`.
    """
    from ..learning.metrics import regression_metrics

    problem = _problem(dataset, target, model, descriptor, invariants, features, distances)
    if problem.model_spec["name"] == "knn" and invariants is None:
        raise _Fail(
            EXIT.ERROR_MISSING_INPUT.format(
                message="a knn model predicts from distances to its training invariants: pass the stored "
                "invariants node (compute_invariants / InvariantsWorkChain) instead of a descriptor"
            )
        )
    rows = np.arange(len(problem.y))
    fitted = _fit(problem, rows)
    fit = _predict(problem, fitted, rows, rows)
    metrics = {f"train_{k}": v for k, v in regression_metrics(problem.y, fit).items()}
    _, params = fitted.to_arrays()
    metrics.update(
        {
            "unit": problem.unit,
            "target": target.value,
            "target_median": float(np.median(problem.y)),
            "fitted": params.get("fitted", {}),
        }
    )
    transform = problem.model_spec.get("target_transform")
    node = ModelData.from_model(
        fitted,
        problem.model_spec,
        problem.values.spec,
        {"name": target.value, "unit": problem.unit, "transform": transform},
        problem.values.ids,
        dataset_uuid=dataset.uuid,
        invariants_uuid=invariants.uuid if invariants is not None else None,
        features_uuid=features.uuid if features is not None else None,
        metrics=metrics,
    )
    return {"model": node, "metrics": orm.Dict(jsonable(metrics))}


@calcfunction
@_guard
def predict(
    model: ModelData,
    dataset: CrystalDatasetData | None = None,
    invariants: InvariantsData | None = None,
    features: orm.ArrayData | None = None,
    reference: InvariantsData | None = None,
):
    """Predictions of a trained model for new records.

    Args:
        model: the trained model.
        dataset: the records (the descriptor is computed on them unless ``invariants`` /
            ``features`` are given); when it has the model's target, the true values and
            ``metrics`` are returned too.
        invariants / features: precomputed values of the model's descriptor (same name
            and parameters, else exit code 320).
        reference: kNN models: the training invariants (default: loaded by the UUID
            recorded in the model; pass them to keep the link in the graph).

    Returns:
        ``predictions`` (ArrayData ``ids``, ``y_pred`` [, ``y_true``]) and, with true
        values, ``metrics`` (Dict).

    Exit codes: 225 no records given, 222 other descriptor / parameters or a wrong
    reference, 301 a structure failed.
    """
    from ..learning.metrics import regression_metrics

    if dataset is None and invariants is None and features is None:
        raise _Fail(EXIT.ERROR_MISSING_INPUT.format(message="give a dataset, invariants or features"))
    given = invariants if invariants is not None else features
    if given is not None:
        reason = model.incompatibility(given)
        if reason:
            raise _Fail(EXIT.ERROR_INCOMPATIBLE_INPUTS.format(message=reason))
        values = _values(dataset, None, invariants, features)
    else:
        try:
            values = compute_values(model.descriptor, dataset.get_crystals(), dataset.ids)
        except ValueError as exc:
            raise _Fail(EXIT.ERROR_DESCRIPTOR_FAILED.format(message=str(exc))) from None
    if reference is not None and model.needs_reference:
        reason = model.check_reference(reference)
        if reason:
            raise _Fail(EXIT.ERROR_INCOMPATIBLE_INPUTS.format(message=reason))
    try:
        y_pred = model.predict_values(values, reference if model.needs_reference else None)
    except ModelSpecError as exc:
        raise _Fail(EXIT.ERROR_INCOMPATIBLE_INPUTS.format(message=str(exc))) from None
    except (TypeError, ValueError) as exc:
        raise _Fail(EXIT.ERROR_INCOMPATIBLE_INPUTS.format(message=str(exc))) from None
    target = model.target
    y_true = None
    if dataset is not None and target["name"] in dataset.target_names:
        y_true = dataset.get_target(target["name"])
    info = {
        "target": target["name"],
        "unit": target.get("unit", ""),
        "model": model.model_spec,
        "descriptor": model.descriptor,
        "model_uuid": model.uuid,
    }
    out = {"predictions": _predictions_node(values.ids, y_pred, y_true, None, info)}
    if y_true is not None:
        metrics = regression_metrics(y_true, y_pred)
        metrics.update({"unit": target.get("unit", ""), "target": target["name"]})
        median = model.metrics.get("target_median")
        if median is not None:  # the median predictor of the training set, for comparison
            baseline = regression_metrics(y_true, np.full(len(y_true), float(median)))
            metrics.update({"baseline_mae": baseline["mae"], "baseline_median_ae": baseline["median_ae"]})
        out["metrics"] = orm.Dict(jsonable(metrics))
    return out


# ------------------------------------------------------------------------------- plots


@calcfunction
def parity_plot(predictions: orm.ArrayData, title: orm.Str | None = None):
    """Parity plot of predictions with known true values, as a PNG ``SinglefileData``.

    Exit codes: 225 the predictions have no true values.
    """
    names = predictions.get_arraynames()
    if "y_true" not in names:
        return EXIT.ERROR_MISSING_INPUT.format(message="the predictions have no true values to plot against")
    info = predictions.base.attributes.get(PREDICTIONS_ATTRIBUTE, {})
    text = title.value if title is not None else f"{info.get('model', {}).get('name', '')} on {info.get('descriptor', {}).get('name', '')}"
    from ..learning.plots import parity_png

    png = parity_png(predictions.get_array("y_true"), predictions.get_array("y_pred"), title=text, unit=info.get("unit", ""))
    return {"plot": orm.SinglefileData(io.BytesIO(png), filename="parity.png")}


validate_inputs(compute_features, descriptor=check_descriptor)
validate_inputs(cross_validate, model=check_model, split=check_split, descriptor=check_descriptor)
validate_inputs(train_model, model=check_model, descriptor=check_descriptor)
