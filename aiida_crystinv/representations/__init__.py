"""Representations of crystals side by side: the package's invariants, composition
embeddings, dscribe's structural descriptors and unit-cell descriptors, each as a
:class:`Descriptor` (a function of a structure plus the distance between its values).
Pure numerics: no AiiDA import.

* :func:`get_descriptor` -- resolve a name, entry point (group ``crystinv.descriptors``)
  or dotted path ``module:function``;
* :mod:`.embeddings` -- pooled element embeddings (``elementembeddings``) and the
  composition earth mover's distance over an embedding;
* :mod:`.structural` -- sine / Ewald sum matrices, SOAP, MBTR, ACSF (``dscribe``);
* :mod:`.cell` -- Niggli-cell parameters, raw cell parameters, density.

The audit of invariance and continuity of any of them is :mod:`aiida_crystinv.audit`.
"""

from ._base import METRICS, VECTOR_METRICS, Descriptor, DescriptorError, NotComparableError
from .registry import BUILTINS, ENTRY_POINT_GROUP, descriptor_names, get_descriptor, package_invariant

__all__ = [
    "Descriptor",
    "DescriptorError",
    "NotComparableError",
    "METRICS",
    "VECTOR_METRICS",
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "descriptor_names",
    "get_descriptor",
    "package_invariant",
]
