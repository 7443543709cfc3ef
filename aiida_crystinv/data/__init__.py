"""AiiDA data types of aiida-crystinv: each holds many records in ONE node.

* :class:`CrystalDatasetData` (``crystinv.dataset``) -- structures, identifiers, formulas,
  content hashes and named targets with units
* :class:`InvariantsData` (``crystinv.invariants``) -- AMD / PDD / GRID / RDF /
  composition invariants of every record, with the descriptor and all its parameters
* :class:`DistancesData` (``crystinv.distances``) -- a distance matrix or a kNN graph

:func:`to_dataframe` gives any of them (and predictions / metrics nodes) as a pandas
DataFrame, units in ``df.attrs["units"]`` (:mod:`aiida_crystinv.data.frames`).

Arrays live as ``.npy`` files in the node repository, written and read without pickle.
"""

from .dataset import CrystalDatasetData
from .distances import DistancesData
from .frames import to_dataframe
from .invariants import InvariantsData

__all__ = ["CrystalDatasetData", "InvariantsData", "DistancesData", "to_dataframe"]
