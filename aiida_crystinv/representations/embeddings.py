"""Composition descriptors from learned and hand-built element embeddings.

The element tables come from the ``elementembeddings`` package (Onwuli et al., *Digital
Discovery* 2, 1558 (2023); MIT licence), which ships them as data files: nothing is
downloaded at run time. :func:`embedding_names` lists them (magpie, mat2vec, matscholar,
megnet16, oliynyk, skipatom, ... -- see ``docs/representations.md`` for citations).

* :func:`composition_embedding` -- the pooled embedding of a composition (a fixed-length
  vector; pooling mean / sum / min / max / std, fraction-weighted where that applies);
* :func:`element_distance_matrix` -- element-to-element Euclidean distance in an embedding;
* :func:`composition_emd` -- earth mover's distance between two compositions over that
  ground metric (the element mover's distance of Hargreaves et al., *Chem. Mater.* 32,
  10610 (2020), with any embedding as the ground metric);
* :func:`element_mover` -- the same as a :class:`~aiida_crystinv.representations.Descriptor`
  whose value is the (118,) vector of atomic fractions.

Every function takes a pymatgen ``Structure`` or ``Composition``. Disordered sites count
with their occupancy (pymatgen's ``composition``). Only the composition is used, so every
descriptor here is invariant under any change of cell, rotation, origin and atom order and
does not move at all when atoms move.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from ._base import Descriptor, DescriptorError

__all__ = [
    "POOLINGS",
    "N_ELEMENTS",
    "embedding_names",
    "embedding_table",
    "composition_embedding",
    "element_distance_matrix",
    "composition_emd",
    "composition_emd_vectors",
    "element_mover",
    "fraction_vector",
]

#: pooling operations of :func:`composition_embedding`
POOLINGS = ("mean", "sum", "min", "max", "std")
#: length of :func:`fraction_vector` (atomic numbers 1..118)
N_ELEMENTS = 118


def _import_ee():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from elementembeddings.core import DEFAULT_ELEMENT_EMBEDDINGS, Embedding
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DescriptorError(
            "composition embeddings need the 'elementembeddings' package: pip install 'aiida-crystinv[repr]'"
        ) from exc
    return DEFAULT_ELEMENT_EMBEDDINGS, Embedding


def embedding_names() -> tuple[str, ...]:
    """Names of every element embedding that ``elementembeddings`` ships (sorted)."""
    defaults, _ = _import_ee()
    return tuple(sorted(defaults))


@functools.lru_cache(maxsize=None)
def embedding_table(name: str) -> dict[str, np.ndarray]:
    """Element symbol -> (dim,) float vector of the embedding ``name``.

    Elements whose vector has a missing (NaN) entry are left out.

    Raises:
        DescriptorError: unknown embedding name.
    """
    defaults, Embedding = _import_ee()
    if name not in defaults:
        raise DescriptorError(f"unknown element embedding {name!r}; known: {', '.join(sorted(defaults))}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emb = Embedding.load_data(name)
    table = {}
    for el, vec in emb.embeddings.items():
        v = np.asarray(vec, dtype=float).ravel()
        if np.all(np.isfinite(v)):
            table[str(el)] = v
    return table


def _composition(obj):
    comp = getattr(obj, "composition", obj)
    if not hasattr(comp, "get_el_amt_dict"):
        raise DescriptorError(f"expected a pymatgen Structure or Composition, got {type(obj).__name__}")
    amounts = {str(el): float(a) for el, a in comp.element_composition.get_el_amt_dict().items() if a > 0}
    if not amounts:
        raise DescriptorError("the composition is empty")
    return amounts


def _vectors(name: str, elements: list[str]) -> np.ndarray:
    table = embedding_table(name)
    missing = [e for e in elements if e not in table]
    if missing:
        raise DescriptorError(f"element embedding {name!r} has no (complete) vector for {', '.join(missing)}")
    return np.array([table[e] for e in elements])


def pooled_embedding(obj, embedding: str, pooling: str = "mean") -> np.ndarray:
    """Pooled embedding of the composition of ``obj``, shape (dim,).

    Args:
        obj: pymatgen ``Structure`` or ``Composition``.
        embedding: one of :func:`embedding_names`.
        pooling: ``mean`` (atom-fraction weighted), ``sum`` (weighted by the amounts of the
            reduced formula, so independent of the cell), ``min`` / ``max`` (element-wise
            over the elements present), ``std`` (atom-fraction weighted standard deviation).
    """
    if pooling not in POOLINGS:
        raise DescriptorError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    amounts = _composition(obj)
    elements = sorted(amounts)
    V = _vectors(embedding, elements)
    a = np.array([amounts[e] for e in elements])
    w = a / a.sum()
    if pooling == "mean":
        return w @ V
    if pooling == "sum":
        comp = getattr(obj, "composition", obj)
        red = comp.element_composition.reduced_composition.get_el_amt_dict()
        return np.array([float(red[e]) for e in elements]) @ V
    if pooling == "min":
        return V.min(axis=0)
    if pooling == "max":
        return V.max(axis=0)
    mean = w @ V
    return np.sqrt(np.maximum(w @ (V - mean) ** 2, 0.0))


def composition_embedding(name: str = "mat2vec", pooling: str = "mean") -> Descriptor:
    """The pooled element embedding as a :class:`Descriptor` (L-inf metric).

    Registry name ``embedding:<name>:<pooling>``, e.g. ``embedding:megnet16:mean``.
    """
    embedding_table(name)  # fails early on an unknown name
    if pooling not in POOLINGS:
        raise DescriptorError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    return Descriptor(
        name=f"embedding:{name}:{pooling}",
        compute=functools.partial(pooled_embedding, embedding=name, pooling=pooling),
        metric="chebyshev",
        params={"embedding": name, "pooling": pooling},
        unit=f"{name} units",
    )


def fraction_vector(obj) -> np.ndarray:
    """Atomic fractions indexed by atomic number - 1, shape (118,), summing to 1."""
    from pymatgen.core import Element

    amounts = _composition(obj)
    out = np.zeros(N_ELEMENTS)
    for el, a in amounts.items():
        out[Element(el).Z - 1] = a
    return out / out.sum()


@functools.lru_cache(maxsize=None)
def element_distance_matrix(name: str) -> np.ndarray:
    """(118, 118) Euclidean distances between the element vectors of embedding ``name``,
    indexed by atomic number - 1; NaN where an element has no vector."""
    from pymatgen.core import Element

    table = embedding_table(name)
    V = np.full((N_ELEMENTS, len(next(iter(table.values())))), np.nan)
    for el, v in table.items():
        try:
            z = Element(el).Z
        except ValueError:
            continue
        if z <= N_ELEMENTS:
            V[z - 1] = v
    diff = V[:, None, :] - V[None, :, :]
    return np.sqrt(np.sum(diff * diff, axis=-1))


def composition_emd_vectors(a: np.ndarray, b: np.ndarray, ground: np.ndarray) -> float:
    """Earth mover's distance between two (118,) fraction vectors over a (118, 118) ground
    metric (exact, POT's network simplex on the elements present)."""
    import ot

    ia = np.flatnonzero(a > 0)
    ib = np.flatnonzero(b > 0)
    C = ground[np.ix_(ia, ib)]
    if not np.all(np.isfinite(C)):
        raise DescriptorError("the ground metric has no distance for some element of these compositions")
    wa = a[ia] / a[ia].sum()
    wb = b[ib] / b[ib].sum()
    return float(ot.emd2(wa, wb, np.ascontiguousarray(C)))


def composition_emd(obj_a, obj_b, embedding: str = "mat2vec") -> float:
    """Earth mover's distance between the compositions of two structures, the cost of
    moving a fraction of one element to another being their Euclidean distance in the
    embedding (units of the embedding).

    Raises:
        DescriptorError: an element without a vector in the embedding.
    """
    a, b = fraction_vector(obj_a), fraction_vector(obj_b)
    for obj in (obj_a, obj_b):
        _vectors(embedding, sorted(_composition(obj)))
    return composition_emd_vectors(a, b, element_distance_matrix(embedding))


def _checked_fractions(obj, embedding: str) -> np.ndarray:
    _vectors(embedding, sorted(_composition(obj)))
    return fraction_vector(obj)


def element_mover(name: str = "mat2vec") -> Descriptor:
    """The composition as a (118,) fraction vector compared by :func:`composition_emd`
    over the embedding ``name`` (registry name ``element_mover:<name>``)."""
    embedding_table(name)
    return Descriptor(
        name=f"element_mover:{name}",
        compute=functools.partial(_checked_fractions, embedding=name),
        metric="composition_emd",
        params={"embedding": name},
        unit=f"{name} units",
        ground_metric=element_distance_matrix(name),
    )
