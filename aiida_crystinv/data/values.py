"""Descriptor values of records, in the form models take, and where they come from.

* :class:`DescriptorValues` -- ids and items (PDD lists, AMD/GRID/RDF/feature matrices)
  of one normalised descriptor spec (``{'kind', 'name', 'params'}``, see
  :mod:`aiida_crystinv.specs`);
* :func:`compute_values` computes them from structures, :func:`values_from_node` reads
  them from an ``InvariantsData`` or a features ``ArrayData``;
* :func:`descriptor_incompatibility` says why two specs differ; :func:`spec_hash` and
  :func:`ids_hash` identify specs and record lists in queries;
* :class:`blas_limit` keeps small dense solves on one BLAS thread.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from aiida.orm import ArrayData

from ..specs import SpecError, parse_invariant
from ._arrays import jsonable

__all__ = [
    "DescriptorValues",
    "ModelSpecError",
    "compute_values",
    "values_from_node",
    "values_spec",
    "features_node_spec",
    "descriptor_incompatibility",
    "spec_hash",
    "ids_hash",
    "blas_limit",
    "DESCRIPTOR_KINDS",
    "FEATURES_ATTRIBUTE",
]

#: The two kinds of descriptor a model can be trained on.
DESCRIPTOR_KINDS = ("invariants", "features")

#: Attribute of a features ``ArrayData`` holding its descriptor spec.
FEATURES_ATTRIBUTE = "crystinv_features"

_MODEL_PREFIX = "model__"


class ModelSpecError(SpecError):
    """Values or a model that cannot be used together; the message says why."""


# ------------------------------------------------------------------------------- specs


def spec_hash(spec: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a spec (to find equal specs by query)."""
    return hashlib.sha256(json.dumps(jsonable(dict(spec)), sort_keys=True).encode()).hexdigest()


def ids_hash(ids: Sequence[str]) -> str:
    """SHA-256 of a list of record identifiers, in order."""
    digest = hashlib.sha256()
    for rid in ids:
        digest.update(str(rid).encode() + b"\0")
    return digest.hexdigest()


# ------------------------------------------------------------------------------- values


@dataclass
class DescriptorValues:
    """Descriptor values of some records, in the form the models take.

    Attributes:
        spec: normalised descriptor spec (``DescriptorSpec.normalised()``).
        ids: record identifiers.
        items: for ``invariants``: a list of PDDs (r_i, k+1) or an (n, ...) array; for
            ``features``: the (n, d) feature matrix.
    """

    spec: dict[str, Any]
    ids: list[str]
    items: Any

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def is_ragged(self) -> bool:
        return isinstance(self.items, list)

    def matrix(self) -> np.ndarray:
        """(n, d) vectors for vector models (GRID stacks flattened; not for PDDs)."""
        if self.is_ragged:
            raise ModelSpecError("PDDs are ragged and have no vector form: use the amd descriptor")
        arr = np.asarray(self.items, dtype=float)
        return arr.reshape(len(arr), -1)

    def metric_items(self, metric: str) -> Any:
        """The items a metric compares: AMD vectors for ``amd_*`` metrics, else the items."""
        if metric.startswith("amd_") and self.spec["name"] == "pdd":
            return np.stack([p[:, 0] @ p[:, 1:] for p in self.items])
        return self.items

    def select(self, indices: Sequence[int]) -> "DescriptorValues":
        """The values of some records (indices), in that order."""
        idx = [int(i) for i in indices]
        items = [self.items[i] for i in idx] if self.is_ragged else np.asarray(self.items)[idx]
        return DescriptorValues(self.spec, [self.ids[i] for i in idx], items)


def compute_values(spec: Mapping[str, Any], structures: Sequence[Any], ids: Sequence[str] | None = None) -> DescriptorValues:
    """Compute a (normalised) descriptor for structures (pymatgen, ``Crystal`` ...).

    Raises:
        ValueError: a structure whose invariants cannot be computed (the message names it).
    """
    from ..learning.descriptors import describe
    from .invariants import compute_arrays

    structures = list(structures)
    ids = [str(i) for i in (ids if ids is not None else [getattr(s, "label", None) or str(n) for n, s in enumerate(structures)])]
    if spec["kind"] == "features":
        return DescriptorValues(dict(spec), ids, describe(spec["name"], structures, **spec["params"]))
    invariant = parse_invariant({"name": spec["name"], **spec["params"]})
    arrays = compute_arrays(invariant, structures)
    items: Any = [np.asarray(a, dtype=float) for a in arrays] if invariant.layout == "ragged" else np.stack(arrays)
    return DescriptorValues(dict(spec), ids, items)


def features_node_spec(node: Any) -> dict[str, Any] | None:
    """The descriptor spec of a features ``ArrayData`` made by ``compute_features``, or None."""
    if not isinstance(node, ArrayData):
        return None
    info = node.base.attributes.get(FEATURES_ATTRIBUTE, None)
    return dict(info["descriptor"]) if info else None


def values_from_node(node: Any) -> DescriptorValues:
    """Descriptor values stored in an ``InvariantsData`` or a features ``ArrayData``.

    Raises:
        ModelSpecError: a node that holds neither.
    """
    from .invariants import InvariantsData

    if isinstance(node, InvariantsData):
        spec = {"kind": "invariants", "name": node.descriptor, "params": node.parameters}
        return DescriptorValues(spec, node.ids, node.get_items())
    spec = features_node_spec(node)
    if spec is None:
        raise ModelSpecError(f"node {getattr(node, 'pk', None)} holds neither invariants nor crystinv features")
    return DescriptorValues(spec, node.get_array("ids").tolist(), node.get_array("features"))


def _same(a: Any, b: Any) -> bool:
    return json.dumps(jsonable(a), sort_keys=True) == json.dumps(jsonable(b), sort_keys=True) or a == b


def descriptor_incompatibility(expected: Mapping[str, Any], got: Mapping[str, Any]) -> str | None:
    """Why descriptor values ``got`` differ from the ``expected`` spec, or None."""
    if expected["kind"] != got["kind"] or expected["name"] != got["name"]:
        return (
            f"the model was trained on {expected['kind']} {expected['name']!r} but was given "
            f"{got['kind']} {got['name']!r}"
        )
    pe, pg = dict(expected["params"]), dict(got["params"])
    if not _same(pe, pg):
        keys = sorted(k for k in set(pe) | set(pg) if not _same(pe.get(k), pg.get(k)))
        details = ", ".join(f"{k}={pg.get(k)!r} (trained with {pe.get(k)!r})" for k in keys)
        return f"the model was trained on {expected['name']} with other parameters: {details}"
    return None


def values_spec(node: Any) -> dict[str, Any]:
    """The descriptor spec of an InvariantsData or features ArrayData node."""
    from .invariants import InvariantsData

    if isinstance(node, InvariantsData):
        return {"kind": "invariants", "name": node.descriptor, "params": node.parameters}
    spec = features_node_spec(node)
    if spec is None:
        raise ModelSpecError(f"a {type(node).__name__} holds neither invariants nor crystinv features")
    return spec


class blas_limit:
    """Limit BLAS threads to one for small problems (``n`` records).

    Multi-threaded BLAS on a busy machine makes the small dense solves of kernel ridge
    orders of magnitude slower (measured: 0.1 s -> 30 s for 200 records on 2 shared cores).
    """

    def __init__(self, n: int, threshold: int = 3000) -> None:
        self._limit = 1 if n <= threshold else None
        self._ctx: Any = None

    def __enter__(self) -> "blas_limit":
        if self._limit is not None:
            from threadpoolctl import threadpool_limits

            self._ctx = threadpool_limits(limits=self._limit, user_api="blas")
            self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
