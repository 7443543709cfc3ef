"""Typed, validated specs of everything a user describes: descriptors, metrics, models,
splits, selections, sources, hand-offs and whole studies.

Pure (pydantic v2, no AiiDA import). Every other layer takes these objects; the
processes validate their ``Dict`` inputs with them at the ports, so an invalid spec is
refused before any process node exists. Errors are :class:`SpecError` (a ``ValueError``)
naming the place (``study.yaml.models[1].k``) and, for unknown keys, the closest allowed one.
"""

from ._base import SpecError, parse
from .descriptors import (
    DEFAULT_METRIC,
    INVARIANTS,
    METRICS,
    AMDSpec,
    CompositionSpec,
    DescriptorSpec,
    FeaturesSpec,
    GRIDSpec,
    InvariantSpec,
    MetricSpec,
    PDDSpec,
    RDFSpec,
    metric_for,
    parse_descriptor,
    parse_invariant,
    parse_metric,
)

__all__ = [
    "SpecError",
    "parse",
    "DEFAULT_METRIC",
    "INVARIANTS",
    "METRICS",
    "AMDSpec",
    "CompositionSpec",
    "DescriptorSpec",
    "FeaturesSpec",
    "GRIDSpec",
    "InvariantSpec",
    "MetricSpec",
    "PDDSpec",
    "RDFSpec",
    "metric_for",
    "parse_descriptor",
    "parse_invariant",
    "parse_metric",
]
