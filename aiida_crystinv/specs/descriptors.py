"""Specs of descriptors and metrics: what to compute from a crystal, and how to compare.

A descriptor is either an **invariant** (:data:`INVARIANTS`: ``amd``, ``pdd``, ``grid``,
``rdf``, ``composition``; stored as :class:`~aiida_crystinv.data.InvariantsData`) or a
**features** vector (``kind: features``; a name of
:data:`aiida_crystinv.learning.descriptors.FEATURES` or several joined with ``+``, such as
``amd+element_stats``). Both are written the same way in a study file or a Python call::

    {name: pdd, k: 50}                       # an invariant, its parameters flat
    {name: amd+element_stats, amd: {k: 50}}  # features (a name that is not an invariant)
    {kind: features, name: amd, k: 50}       # features explicitly

This registry is the only one: each invariant spec class carries how it is computed
(``function`` of :mod:`aiida_crystinv.invariants`) and stored (``layout``, ``dtype``,
``units``).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Mapping, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from ..invariants.composition import DEFAULT_PROPERTIES, DEFAULT_STATS
from ._base import MAX_K, Int, Name, NonNegativeFloat, PositiveFloat, PositiveInt, Spec, parse, register_tags

__all__ = [
    "InvariantSpec",
    "AMDSpec",
    "PDDSpec",
    "GRIDSpec",
    "RDFSpec",
    "CompositionSpec",
    "FeaturesSpec",
    "DescriptorSpec",
    "MetricSpec",
    "INVARIANTS",
    "METRICS",
    "DEFAULT_METRIC",
    "parse_descriptor",
    "parse_invariant",
    "parse_metric",
    "metric_for",
]

#: Largest number of histogram bins a GRID shell or an RDF may have.
MAX_BINS = 100_000


class InvariantSpec(Spec):
    """An invariant of :mod:`aiida_crystinv.invariants` with all its parameters."""

    kind: Literal["invariants"] = "invariants"
    function: ClassVar[str]
    layout: ClassVar[str]  # 'matrix' | 'ragged' | 'stack'
    dtype: ClassVar[str]
    units: ClassVar[str]
    #: parameters of the function that cannot be set here
    fixed: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, data: Any) -> Any:
        """``{'name': 'pdd', 'params': {'k': 50}}`` is the same as ``{'name': 'pdd', 'k': 50}``."""
        if isinstance(data, Mapping) and isinstance(data.get("params"), Mapping):
            data = dict(data)
            params = data.pop("params")
            clash = set(params) & set(data)
            if clash:
                raise ValueError(f"parameter(s) {sorted(clash)} given twice (flat and under 'params')")
            data.update(params)
        if isinstance(data, Mapping) and isinstance(data.get("name"), str):
            data = {**data, "name": data["name"].strip().lower()}
        return data

    @property
    def params(self) -> dict[str, Any]:
        """Every parameter of the function (defaults included), JSON form."""
        return self.model_dump(mode="json", exclude={"kind", "name"})

    def normalised(self) -> dict[str, Any]:
        """``{'kind': 'invariants', 'name': ..., 'params': {...}}``."""
        return {"kind": "invariants", "name": self.name, "params": self.params}  # type: ignore[attr-defined]

    def compute(self, structure: Any, label: str | None = None) -> Any:
        """The invariant of one structure (see :mod:`aiida_crystinv.invariants`)."""
        from .. import invariants

        return getattr(invariants, self.function)(structure, **self.params, **self.fixed, label=label)


class AMDSpec(InvariantSpec):
    """Average minimum distances: (k,) Angstrom."""

    name: Literal["amd"] = "amd"
    k: Annotated[PositiveInt, Field(le=MAX_K)] = 100
    function: ClassVar[str] = "amd"
    layout: ClassVar[str] = "matrix"
    dtype: ClassVar[str] = "float64"
    units: ClassVar[str] = "Angstrom"


class PDDSpec(InvariantSpec):
    """Pointwise distance distribution: (rows, k+1) weights and Angstrom."""

    name: Literal["pdd"] = "pdd"
    k: Annotated[PositiveInt, Field(le=MAX_K)] = 100
    collapse: bool = True
    collapse_tol: NonNegativeFloat = 1e-4
    function: ClassVar[str] = "pdd"
    layout: ClassVar[str] = "ragged"
    dtype: ClassVar[str] = "float64"
    units: ClassVar[str] = "Angstrom"

    @field_validator("collapse", mode="before")
    @classmethod
    def _bool(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value


def _check_bins(spec: Any) -> Any:
    if spec.bin_width > spec.cutoff:
        raise ValueError(f"bin_width ({spec.bin_width}) must not exceed cutoff ({spec.cutoff})")
    if spec.cutoff / spec.bin_width > MAX_BINS:
        raise ValueError(f"cutoff / bin_width = {spec.cutoff / spec.bin_width:.0f} bins; at most {MAX_BINS} are allowed")
    return spec


class GRIDSpec(InvariantSpec):
    """Generalised radial distribution functions of the first ``n_shells`` shells."""

    name: Literal["grid"] = "grid"
    bin_width: PositiveFloat = 0.1
    cutoff: PositiveFloat = 10.0
    n_shells: Annotated[PositiveInt, Field(le=MAX_K)] = 100
    smearing: NonNegativeFloat = 0.1
    function: ClassVar[str] = "grid"
    layout: ClassVar[str] = "stack"
    dtype: ClassVar[str] = "float32"
    units: ClassVar[str] = "density"

    _bins = model_validator(mode="after")(_check_bins)


class RDFSpec(InvariantSpec):
    """Cell-invariant, smeared radial distribution function (total, not partial)."""

    name: Literal["rdf"] = "rdf"
    cutoff: PositiveFloat = 10.0
    bin_width: PositiveFloat = 0.05
    smearing: NonNegativeFloat = 0.1
    normalise: Literal["counts", "density"] = "counts"
    function: ClassVar[str] = "rdf"
    layout: ClassVar[str] = "stack"
    dtype: ClassVar[str] = "float32"
    units: ClassVar[str] = "density"
    fixed: ClassVar[dict[str, Any]] = {"partial": False}

    _bins = model_validator(mode="after")(_check_bins)


class CompositionSpec(InvariantSpec):
    """Statistics of element properties over the composition (occupancy-weighted)."""

    name: Literal["composition"] = "composition"
    properties: tuple[str, ...] = DEFAULT_PROPERTIES
    stats: tuple[str, ...] = DEFAULT_STATS
    function: ClassVar[str] = "composition"
    layout: ClassVar[str] = "matrix"
    dtype: ClassVar[str] = "float64"
    units: ClassVar[str] = "mixed"

    @model_validator(mode="after")
    def _known(self) -> "CompositionSpec":
        from ..invariants.composition import _check_names

        _check_names(self.properties, self.stats)
        return self


#: Every invariant, by name.
INVARIANTS: dict[str, type[InvariantSpec]] = {
    "amd": AMDSpec, "pdd": PDDSpec, "grid": GRIDSpec, "rdf": RDFSpec, "composition": CompositionSpec,
}


class FeaturesSpec(Spec):
    """Feature vectors of :mod:`aiida_crystinv.learning.descriptors` (``+`` joins parts)."""

    kind: Literal["features"] = "features"
    name: Name
    params: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _collect(cls, data: Any) -> Any:
        """Keys other than kind/name/params are parameters."""
        if isinstance(data, Mapping):
            data = dict(data)
            params = dict(data.pop("params", None) or {})
            for key in [k for k in data if k not in ("kind", "name")]:
                if key in params:
                    raise ValueError(f"parameter {key!r} given twice (flat and under 'params')")
                params[key] = data.pop(key)
            if not isinstance(data.get("name"), str):
                raise ValueError(f"a features descriptor needs a 'name', got {data.get('name')!r}")
            from ..learning.descriptors import describe_spec

            full = describe_spec(data["name"].strip().lower(), **params)
            data["name"], data["params"] = full["name"], _jsonable(full["params"])
        return data

    def normalised(self) -> dict[str, Any]:
        """``{'kind': 'features', 'name': ..., 'params': {...}}``."""
        return {"kind": "features", "name": self.name, "params": dict(self.params)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


def _descriptor_tag(value: Any) -> str | None:
    if isinstance(value, Mapping):
        kind, name = value.get("kind"), value.get("name")
    else:
        kind, name = getattr(value, "kind", None), getattr(value, "name", None)
    name = name.strip().lower() if isinstance(name, str) else name
    if kind == "features" or (kind is None and name not in INVARIANTS):
        return "features" if isinstance(name, str) else None
    if kind not in (None, "invariants"):
        return None
    return name if name in INVARIANTS else None


register_tags(*INVARIANTS, "features")

#: Any invariant: ``{'name': 'amd', 'k': 50}`` or ``'amd'``.
InvariantDescriptor = Annotated[  # type: ignore[valid-type]
    Annotated[
        Union[tuple(Annotated[cls, Tag(name)] for name, cls in INVARIANTS.items())],  # type: ignore[misc]
        Discriminator(
            _descriptor_tag,
            custom_error_type="unknown_invariant",
            custom_error_message=f"unknown invariant; use one of {', '.join(INVARIANTS)}",
        ),
    ],
    BeforeValidator(_shorthand),
]

#: Any descriptor, invariant or features.
DescriptorSpec = Annotated[  # type: ignore[valid-type]
    Annotated[
        Union[tuple([*(Annotated[cls, Tag(name)] for name, cls in INVARIANTS.items()),  # type: ignore[misc]
                     Annotated[FeaturesSpec, Tag("features")]])],
        Discriminator(
            _descriptor_tag,
            custom_error_type="unknown_descriptor",
            custom_error_message="a descriptor needs a 'name' (an invariant: " + ", ".join(INVARIANTS)
            + "; or features) and kind, if given, 'invariants' or 'features'",
        ),
    ],
    BeforeValidator(_shorthand),
]


# ------------------------------------------------------------------------------ metrics

#: Metric name -> the invariants it compares.
METRICS: dict[str, tuple[str, ...]] = {
    "amd_linf": ("amd", "pdd"),
    "amd_l1": ("amd", "pdd"),
    "amd_l2": ("amd", "pdd"),
    "pdd_emd": ("pdd",),
    "grid_emd": ("grid",),
    "rdf_emd": ("rdf",),
    "composition_l1": ("composition",),
}

#: The natural metric of each invariant.
DEFAULT_METRIC: dict[str, str] = {
    "amd": "amd_linf", "pdd": "pdd_emd", "grid": "grid_emd", "rdf": "rdf_emd", "composition": "composition_l1",
}


class MetricSpec(Spec):
    """A distance between invariants: ``{'name': 'pdd_emd'}`` or ``'pdd_emd'``;
    ``bin_width`` (Angstrom) only for ``grid_emd`` / ``rdf_emd`` (default: the invariants')."""

    name: Literal["amd_linf", "amd_l1", "amd_l2", "pdd_emd", "grid_emd", "rdf_emd", "composition_l1"]
    bin_width: PositiveFloat | None = None

    @model_validator(mode="before")
    @classmethod
    def _lower(cls, data: Any) -> Any:
        data = _shorthand(data)
        if isinstance(data, Mapping) and isinstance(data.get("name"), str):
            data = {**data, "name": data["name"].strip().lower()}
        return data

    @model_validator(mode="after")
    def _bin_width(self) -> "MetricSpec":
        if self.bin_width is not None and self.name not in ("grid_emd", "rdf_emd"):
            raise ValueError(f"only grid_emd and rdf_emd take a bin_width, not {self.name}")
        return self

    @property
    def params(self) -> dict[str, Any]:
        """Keyword arguments of :func:`aiida_crystinv.distances.pdist` and friends."""
        return {} if self.bin_width is None else {"bin_width": self.bin_width}

    def applies_to(self, invariant: str) -> bool:
        return invariant in METRICS[self.name]

    def normalised(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


def metric_for(metric: MetricSpec | Mapping[str, Any] | str | None, invariant: InvariantSpec) -> MetricSpec:
    """The metric to compare ``invariant``s with: the one given (checked to apply) or the
    natural one; ``grid_emd``/``rdf_emd`` get the invariants' bin width.

    Raises:
        SpecError: a metric that does not apply to this invariant.
    """
    from ._base import SpecError

    spec = parse_metric(metric if metric is not None else DEFAULT_METRIC[invariant.name])  # type: ignore[attr-defined]
    name = invariant.name  # type: ignore[attr-defined]
    if not spec.applies_to(name):
        raise SpecError(f"metric {spec.name!r} applies to {' or '.join(METRICS[spec.name])} invariants, not {name!r}")
    if spec.name in ("grid_emd", "rdf_emd") and spec.bin_width is None:
        spec = MetricSpec(name=spec.name, bin_width=invariant.params["bin_width"])
    return spec


def parse_descriptor(data: Any, where: str = "descriptor") -> InvariantSpec | FeaturesSpec:
    """A validated descriptor spec (invariant or features); raises SpecError."""
    if isinstance(data, (InvariantSpec, FeaturesSpec)):
        return data
    return parse(DescriptorSpec, data, where)  # type: ignore[no-any-return]


def parse_invariant(data: Any, where: str = "descriptor") -> InvariantSpec:
    """A validated invariant spec; raises SpecError (also for a features descriptor)."""
    if isinstance(data, InvariantSpec):
        return data
    return parse(InvariantDescriptor, data, where)


def parse_metric(data: Any, where: str = "metric") -> MetricSpec:
    """A validated metric spec; raises SpecError."""
    if isinstance(data, MetricSpec):
        return data
    return parse(MetricSpec, data, where)


__all__ += ["InvariantDescriptor", "MAX_BINS", "Int"]
