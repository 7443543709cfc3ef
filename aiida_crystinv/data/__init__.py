"""AiiDA data types of aiida-crystinv: each holds many records in ONE node.

* :class:`CrystalDatasetData` (``crystinv.dataset``) -- structures, identifiers, formulas,
  content hashes and named targets with units
* :class:`InvariantsData` (``crystinv.invariants``) -- AMD / PDD / GRID / RDF /
  composition invariants of every record, with the descriptor and all its parameters
* :class:`DistancesData` (``crystinv.distances``) -- a distance matrix or a kNN graph

Arrays live as ``.npy`` files in the node repository, written and read without pickle.
"""

from .dataset import CrystalDatasetData
from .distances import DEFAULT_METRIC, METRICS, DistancesData, UnknownMetricError, resolve_metric
from .invariants import DESCRIPTORS, InvariantsData, UnknownDescriptorError, resolve_descriptor

__all__ = [
    "CrystalDatasetData",
    "InvariantsData",
    "DistancesData",
    "DESCRIPTORS",
    "METRICS",
    "DEFAULT_METRIC",
    "resolve_descriptor",
    "resolve_metric",
    "UnknownDescriptorError",
    "UnknownMetricError",
]
