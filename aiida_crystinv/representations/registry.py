"""One place that turns a name into a :class:`Descriptor`.

:func:`get_descriptor` resolves, in this order:

1. a :class:`Descriptor` (returned as is) or a callable ``f(structure) -> array`` (wrapped,
   L-inf metric);
2. a built-in name of :data:`BUILTINS` (``amd``, ``pdd``, ``grid``, ``rdf``, ``density``,
   ``niggli``, ``sine_matrix``, ``ewald_sum_matrix``, ``soap``, ``mbtr``, ``acsf``) with its
   keyword parameters;
3. ``embedding:<embedding>[:<pooling>]`` (pooling ``mean`` by default) and
   ``element_mover:<embedding>`` (:mod:`.embeddings`); ``matminer:<Featurizer>`` (a
   structure featurizer of matminer, when it is installed: :mod:`.matminer_adapter`);
4. an entry point of the group ``crystinv.descriptors`` with that name;
5. a dotted path ``package.module:attribute``.

An entry point or dotted path may point at a :class:`Descriptor` or at a function
``f(structure, **params) -> array`` (wrapped with the L-inf metric; ``params`` are bound).
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import Any, Callable

import numpy as np

from ._base import Descriptor, DescriptorError

__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "get_descriptor", "descriptor_names", "package_invariant"]

ENTRY_POINT_GROUP = "crystinv.descriptors"


def _amd(structure, k: int) -> np.ndarray:
    from ..invariants import amd

    return amd(structure, k)


def _pdd(structure, k: int) -> np.ndarray:
    from ..invariants import pdd

    return pdd(structure, k)


def _grid(structure, **params) -> np.ndarray:
    from ..invariants import grid

    return grid(structure, **params)


def _rdf(structure, **params) -> np.ndarray:
    from ..invariants import rdf

    return rdf(structure, **params)


def package_invariant(name: str, **params: Any) -> Descriptor:
    """The package's own invariants as descriptors, compared with the package's metrics:
    ``amd`` (k=100; L-inf), ``pdd`` (k=100; EMD), ``grid`` (GRID-EMD), ``rdf`` (RDF-EMD);
    other keyword parameters go to :func:`aiida_crystinv.invariants.grid` / ``rdf``."""
    if name in ("amd", "pdd"):
        unknown = set(params) - {"k"}
        if unknown:
            raise DescriptorError(f"{name} takes only the parameter k, got {sorted(unknown)}")
        k = params.get("k", 100)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise DescriptorError(f"{name}: k must be a positive integer, got {k!r}")
        fn = _amd if name == "amd" else _pdd
        return Descriptor(name=name, compute=functools.partial(fn, k=int(k)),
                          metric="chebyshev" if name == "amd" else "pdd_emd", params={"k": int(k)}, unit="Angstrom")
    if name in ("grid", "rdf"):
        import inspect

        from ..invariants import grid, rdf

        allowed = set(inspect.signature(grid if name == "grid" else rdf).parameters) - {"structure", "label"}
        if name == "rdf":
            allowed -= {"partial"}
        unknown = set(params) - allowed
        if unknown:
            raise DescriptorError(f"{name}: unknown parameter(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        profile: Callable[..., np.ndarray] = _grid if name == "grid" else _rdf
        return Descriptor(name=name, compute=functools.partial(profile, **params), metric=f"{name}_emd",
                          params=dict(params), unit="Angstrom")
    raise DescriptorError(f"{name!r} is not one of the package's invariants (amd, pdd, grid, rdf)")


def _builtins() -> dict[str, Callable[..., Descriptor]]:
    from . import cell, structural

    return {
        "amd": functools.partial(package_invariant, "amd"),
        "pdd": functools.partial(package_invariant, "pdd"),
        "grid": functools.partial(package_invariant, "grid"),
        "rdf": functools.partial(package_invariant, "rdf"),
        "density": cell.density,
        "niggli": cell.niggli,
        "sine_matrix": structural.sine_matrix,
        "ewald_sum_matrix": structural.ewald_sum_matrix,
        "soap": structural.soap,
        "mbtr": structural.mbtr,
        "acsf": structural.acsf,
    }


#: built-in descriptor names (each a factory taking keyword parameters)
BUILTINS = ("amd", "pdd", "grid", "rdf", "density", "niggli", "sine_matrix", "ewald_sum_matrix", "soap", "mbtr", "acsf")


def _wrap(obj: Any, name: str, params: dict) -> Descriptor:
    if isinstance(obj, Descriptor):
        if params:
            raise DescriptorError(f"descriptor {name!r} is a fixed Descriptor and takes no parameters, got {sorted(params)}")
        return obj.with_name(name)
    if callable(obj):
        return Descriptor(name=name, compute=functools.partial(obj, **params) if params else obj,
                          metric="chebyshev", params=dict(params))
    raise DescriptorError(f"{name!r} resolves to a {type(obj).__name__}, not a Descriptor or a function of a structure")


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def descriptor_names() -> tuple[str, ...]:
    """Built-in names and the names registered in the ``crystinv.descriptors`` group
    (``embedding:<name>:<pooling>`` and ``element_mover:<name>`` come on top)."""
    return BUILTINS + tuple(sorted(set(_entry_points()) - set(BUILTINS)))


def get_descriptor(spec: Any, **params: Any) -> Descriptor:
    """Resolve ``spec`` (see the module docstring) into a :class:`Descriptor`.

    Raises:
        DescriptorError: an unknown name, a path that does not import, or bad parameters
            (the message says which).
    """
    if isinstance(spec, Descriptor):
        if params:
            raise DescriptorError("parameters cannot be applied to a ready Descriptor")
        return spec
    if callable(spec):
        return _wrap(spec, getattr(spec, "__name__", "descriptor"), params)
    if not isinstance(spec, str) or not spec.strip():
        raise DescriptorError(f"a descriptor is a name, a Descriptor or a function; got {spec!r}")
    name = spec.strip()
    if name in BUILTINS:
        try:
            return _builtins()[name](**params)
        except TypeError as exc:
            raise DescriptorError(f"descriptor {name!r}: {exc}") from None
    if name.startswith("embedding:") or name.startswith("element_mover:"):
        from .embeddings import composition_embedding, element_mover

        parts = name.split(":")
        if params:
            raise DescriptorError(f"{name!r} takes its parameters in the name, got {sorted(params)}")
        if parts[0] == "embedding" and len(parts) in (2, 3):
            return composition_embedding(parts[1], parts[2] if len(parts) == 3 else "mean")
        if parts[0] == "element_mover" and len(parts) == 2:
            return element_mover(parts[1])
        raise DescriptorError(f"write 'embedding:<embedding>:<pooling>' or 'element_mover:<embedding>', got {name!r}")
    if name.startswith("matminer:"):
        from .matminer_adapter import matminer_featurizer

        if params:
            raise DescriptorError(f"{name!r} takes no parameters (matminer defaults), got {sorted(params)}")
        return matminer_featurizer(name.partition(":")[2])
    eps = _entry_points()
    if name in eps:
        try:
            obj = eps[name].load()
        except Exception as exc:  # noqa: BLE001 - a broken plug-in is reported, not raised raw
            raise DescriptorError(f"entry point {name!r} ({eps[name].value}) does not load: {exc}") from exc
        return _wrap(obj, name, params)
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise DescriptorError(f"dotted path {name!r} does not resolve: {exc}") from None
        return _wrap(obj, name, params)
    raise DescriptorError(f"unknown descriptor {name!r}; known: {', '.join(descriptor_names())}, "
                          "'embedding:<embedding>:<pooling>', 'element_mover:<embedding>', 'matminer:<Featurizer>' "
                          "or 'module:function'")
