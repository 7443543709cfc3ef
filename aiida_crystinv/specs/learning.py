"""Specs of models, splits and selections.

Models (``name`` chooses the kind; every other key is an argument of the estimator of
:mod:`aiida_crystinv.learning.models`, validated here by type and range)::

    {name: knn, k: [1, 3, 5, 10], weights: distance, metric: pdd_emd}
    {name: krr, kernel: laplacian}
    {name: stack, members: [{name: krr}, {name: knn_features}]}

Splits: ``{kind: kfold, n_splits: 5, seed: 0}`` or ``{kind: holdout, test_fraction: 0.2,
seed: 0}``. Selections (screening): ``{top: 5, order: lowest}`` and/or ``threshold``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from ._base import Float, Int, NonNegativeFloat, PositiveFloat, PositiveInt, Spec, parse, register_tags
from .descriptors import FeaturesSpec, InvariantSpec, MetricSpec, metric_for

__all__ = [
    "ModelSpec",
    "KNNSpec",
    "KRRSpec",
    "MedianSpec",
    "EnsembleSpec",
    "FeatureKNNSpec",
    "StackSpec",
    "MODEL_SPECS",
    "SplitSpec",
    "KFoldSpec",
    "HoldoutSpec",
    "SelectionSpec",
    "parse_model",
    "parse_split",
    "parse_selection",
    "pair_problem",
]

_CV = Union[Annotated[PositiveInt, Field(ge=2)], Literal["loo"]]


def _list(value: Any) -> Any:
    """A scalar or a non-empty list of them."""
    if isinstance(value, (list, tuple)) and not value:
        raise ValueError("must not be an empty list")
    return list(value) if isinstance(value, tuple) else value


class _ModelBase(Spec):
    def estimator_params(self) -> dict[str, Any]:
        """``{'name': ..., **arguments given}`` for :func:`aiida_crystinv.learning.models.build_model`."""
        out = self.model_dump(mode="json", exclude_unset=True, exclude={"metric"})
        out["name"] = self.name  # type: ignore[attr-defined]
        return out

    def normalised(self) -> dict[str, Any]:
        """The spec as stored (arguments given, ``metric`` normalised for kNN)."""
        return self.estimator_params()


class KNNSpec(_ModelBase):
    """k-nearest neighbours on precomputed distances between invariants."""

    name: Literal["knn"] = "knn"
    k: Annotated[Union[PositiveInt, list[PositiveInt]], BeforeValidator(_list)] = [1, 3, 5, 10, 20]
    weights: Literal["distance", "uniform"] = "distance"
    cv: _CV = 5
    random_state: Int = 0
    target_transform: Literal["log10"] | None = None
    metric: MetricSpec | None = None

    def normalised(self) -> dict[str, Any]:
        out = self.estimator_params()
        if self.metric is not None:
            out["metric"] = self.metric.normalised()
        return out


class KRRSpec(_ModelBase):
    """Kernel ridge regression on feature vectors (hyperparameters by closed-form LOO)."""

    name: Literal["krr"] = "krr"
    kernel: Literal["laplacian", "rbf"] = "laplacian"
    alphas: Annotated[Union[PositiveFloat, list[PositiveFloat]], BeforeValidator(_list)] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    gammas: Annotated[Union[PositiveFloat, list[PositiveFloat], None], BeforeValidator(_list)] = None
    gamma_factors: Annotated[list[PositiveFloat], BeforeValidator(_list)] = [0.03, 0.1, 0.3, 1.0, 3.0]
    standardize: bool = True
    center: bool = True
    cv: _CV = "loo"
    random_state: Int = 0
    target_transform: Literal["log10"] | None = None
    scale_column: Annotated[Int, Field(ge=0)] | None = None
    weight_power: Float = 0.0
    search_size: Annotated[PositiveInt, Field(ge=3)] | None = None

    @field_validator("standardize", "center", mode="before")
    @classmethod
    def _bool(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value


class MedianSpec(_ModelBase):
    """The median of the training targets (the baseline)."""

    name: Literal["median"] = "median"


class FeatureKNNSpec(_ModelBase):
    """k-nearest neighbours on feature vectors."""

    name: Literal["knn_features"] = "knn_features"
    k: Annotated[Union[PositiveInt, list[PositiveInt]], BeforeValidator(_list)] = [1, 3, 5, 10, 20]
    weights: Literal["distance", "uniform"] = "distance"
    metric: Literal["l1", "l2"] = "l1"
    target_transform: Literal["log10"] | None = None
    scale_column: Annotated[Int, Field(ge=0)] | None = None

    def estimator_params(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude_unset=True)
        out["name"] = self.name
        return out


def _model_tag(value: Any) -> str | None:
    name = value.get("name") if isinstance(value, Mapping) else getattr(value, "name", None)
    return name if name in MODEL_SPECS else None


def _model_shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class _Member(Spec):
    """A member of a stack: a feature model and, optionally, the columns it sees."""


class EnsembleSpec(_ModelBase):
    """The mean of several feature models."""

    name: Literal["ensemble"] = "ensemble"
    members: Annotated[list["ModelSpec"], Field(min_length=1)] = [  # type: ignore[valid-type]
        KRRSpec(kernel="laplacian"), KRRSpec(kernel="rbf")]

    @field_validator("members")
    @classmethod
    def _feature_models(cls, members: list[Any]) -> list[Any]:
        for i, m in enumerate(members):
            if isinstance(m, (KNNSpec, StackSpec)):
                raise ValueError(f"members[{i}]: ensemble members must be feature models, not {m.name!r}")
        return members

    def estimator_params(self) -> dict[str, Any]:
        out = super().estimator_params()
        if "members" in out:
            out["members"] = [m.estimator_params() for m in self.members]  # type: ignore[attr-defined]
        return out


def _columns(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"columns must be a non-empty list of [start, stop] pairs, got {value!r}")
    for pair in value:
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair)
                or not 0 <= pair[0] < pair[1]):
            raise ValueError(f"columns must be [start, stop) ranges with 0 <= start < stop, got {pair!r}")
    return [list(p) for p in value]


class StackSpec(_ModelBase):
    """A non-negative, MAE-optimal blend of feature models (weights from inner CV)."""

    name: Literal["stack"] = "stack"
    members: Annotated[list[dict[str, Any]], Field(min_length=1)] = [{"name": "krr", "kernel": "laplacian"},
                                                                     {"name": "krr", "kernel": "rbf"}]
    cv: Annotated[PositiveInt, Field(ge=2)] = 5
    random_state: Int = 0

    @field_validator("members")
    @classmethod
    def _members(cls, members: list[Any]) -> list[Any]:
        out = []
        for i, m in enumerate(members):
            if not isinstance(m, Mapping):
                raise ValueError(f"members[{i}] must be a model mapping, got {m!r}")
            m = dict(m)
            cols = _columns(m.pop("columns", None))
            spec = parse_model(m, where=f"members[{i}]")
            if isinstance(spec, (KNNSpec, StackSpec)):
                raise ValueError(f"members[{i}]: stack members must be feature models (krr, knn_features, "
                                 f"ensemble, median), not {spec.name!r}")
            out.append({**spec.estimator_params(), **({"columns": cols} if cols else {})})
        return out


#: Every model, by name.
MODEL_SPECS: dict[str, type[_ModelBase]] = {
    "knn": KNNSpec, "krr": KRRSpec, "median": MedianSpec, "ensemble": EnsembleSpec,
    "knn_features": FeatureKNNSpec, "stack": StackSpec,
}
register_tags(*MODEL_SPECS)

ModelSpec = Annotated[  # type: ignore[valid-type]
    Annotated[
        Union[tuple(Annotated[cls, Tag(name)] for name, cls in MODEL_SPECS.items())],  # type: ignore[misc]
        Discriminator(_model_tag, custom_error_type="unknown_model",
                      custom_error_message="unknown model; use one of " + ", ".join(MODEL_SPECS)),
    ],
    BeforeValidator(_model_shorthand),
]
EnsembleSpec.model_rebuild()


def parse_model(data: Any, where: str = "model") -> _ModelBase:
    """A validated model spec; raises SpecError."""
    if isinstance(data, _ModelBase):
        return data
    return parse(ModelSpec, data, where)


def pair_problem(model: _ModelBase, descriptor: InvariantSpec | FeaturesSpec) -> str | None:
    """Why ``model`` cannot be trained on ``descriptor``, or None (then, for kNN, the
    metric is the one that will be used: see :func:`knn_metric`)."""
    if isinstance(model, KNNSpec):
        if not isinstance(descriptor, InvariantSpec):
            return (f"a knn model needs distances between invariants, but {descriptor.name!r} is a features "
                    "descriptor: use an invariants descriptor (amd, pdd, grid, rdf, composition) for knn, or krr on features")
        try:
            metric_for(model.metric, descriptor)
        except ValueError as exc:
            return str(exc)
        return None
    if isinstance(descriptor, InvariantSpec) and descriptor.name == "pdd":  # type: ignore[attr-defined]
        return (f"{model.name} needs one vector per record, but PDDs are ragged matrices: use the amd (or pdd_stats "  # type: ignore[attr-defined]
                "features) descriptor, or a knn model on pdd")
    return None


def resolve_pair(model: Any, descriptor: Any) -> dict[str, Any]:
    """The model spec as stored for training on ``descriptor``: for kNN with the metric
    filled in (given or natural, with the invariants' bin width for grid/rdf).

    Raises:
        SpecError: the model cannot be trained on this descriptor (the message says why).
    """
    from ._base import SpecError
    from .descriptors import parse_descriptor

    model = parse_model(model)
    descriptor = parse_descriptor(descriptor)
    problem = pair_problem(model, descriptor)
    if problem:
        raise SpecError(problem)
    out = model.normalised()
    if isinstance(model, KNNSpec):
        out["metric"] = knn_metric(model, descriptor).normalised()  # type: ignore[arg-type]
    return out


def knn_metric(model: KNNSpec, descriptor: InvariantSpec) -> MetricSpec:
    """The metric a kNN model uses on these invariants (given, or the natural one)."""
    return metric_for(model.metric, descriptor)


# ------------------------------------------------------------------------------ splits


class KFoldSpec(Spec):
    """Seeded shuffled K-fold cross-validation."""

    kind: Literal["kfold"] = "kfold"
    n_splits: Annotated[PositiveInt, Field(ge=2)] = 5
    seed: Int = 0


class HoldoutSpec(Spec):
    """A seeded random hold-out of ``test_fraction`` of the records."""

    kind: Literal["holdout"] = "holdout"
    test_fraction: Annotated[Float, Field(gt=0, lt=1)] = 0.2
    seed: Int = 0


register_tags("kfold", "holdout")


def _split_tag(value: Any) -> str | None:
    kind = value.get("kind", "kfold") if isinstance(value, Mapping) else getattr(value, "kind", None)
    return kind if kind in ("kfold", "holdout") else None


SplitSpec = Annotated[  # type: ignore[valid-type]
    Union[Annotated[KFoldSpec, Tag("kfold")], Annotated[HoldoutSpec, Tag("holdout")]],
    Discriminator(_split_tag, custom_error_type="unknown_split",
                  custom_error_message="split kind must be 'kfold' or 'holdout' (an explicit test set is a second dataset)"),
]


def parse_split(data: Any, where: str = "split") -> KFoldSpec | HoldoutSpec:
    """A validated split (default: 5-fold, seed 0); raises SpecError."""
    if isinstance(data, (KFoldSpec, HoldoutSpec)):
        return data
    return parse(SplitSpec, {"kind": "kfold"} if data is None else data, where)


# ------------------------------------------------------------------------------ selection


class SelectionSpec(Spec):
    """Which candidates to keep: the ``top`` N by prediction and/or those beyond a
    ``threshold`` (``order`` lowest: below it). Default: the 10 lowest."""

    top: PositiveInt | None = None
    threshold: Float | None = None
    order: Literal["lowest", "highest"] = "lowest"

    @model_validator(mode="after")
    def _criterion(self) -> "SelectionSpec":
        if self.top is None and self.threshold is None:
            object.__setattr__(self, "top", 10)
        return self

    def normalised(self) -> dict[str, Any]:
        return {"top": self.top, "threshold": self.threshold, "order": self.order}


def parse_selection(data: Any, where: str = "selection") -> SelectionSpec:
    """A validated selection; raises SpecError."""
    if isinstance(data, SelectionSpec):
        return data
    return parse(SelectionSpec, {} if data is None else data, where)


__all__ += ["knn_metric", "resolve_pair", "NonNegativeFloat"]
