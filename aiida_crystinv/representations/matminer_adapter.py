"""matminer structure featurizers as descriptors (optional: needs ``matminer`` installed).

``matminer:<ClassName>`` (registry name) builds ``matminer.featurizers.structure.<ClassName>()``
with its defaults; a featurizer that must be fitted (e.g. ``SineCoulombMatrix`` with
``flatten=True``) is fitted by :meth:`Descriptor.bind` on the dataset (the audit binds it on
the structures it audits, so a value may still change shape under a supercell). Values are
compared with the L-inf distance. Ward et al., *Comput. Mater. Sci.* 152, 60 (2018).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from ._base import Descriptor, DescriptorError, NotComparableError

__all__ = ["matminer_featurizer"]


def _featurizer_class(name: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import matminer.featurizers.structure as mfs
    except ImportError as exc:
        raise DescriptorError("matminer featurizers need the 'matminer' package: pip install matminer") from exc
    cls = getattr(mfs, name, None)
    if not isinstance(cls, type) or not hasattr(cls, "featurize"):
        raise DescriptorError(f"matminer.featurizers.structure has no featurizer {name!r}")
    return cls


def _featurize(structure, featurizer) -> np.ndarray:
    fitted = getattr(featurizer, "_max_eigs", None)  # Coulomb-type matrices fitted to a number of sites
    if isinstance(fitted, int) and len(structure) > fitted:
        raise NotComparableError(f"matminer {type(featurizer).__name__} was fitted to {fitted} sites; "
                                 f"this structure has {len(structure)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return np.asarray(featurizer.featurize(structure), dtype=float).ravel()
        except Exception as exc:  # noqa: BLE001 - a third-party failure becomes one clear message
            raise DescriptorError(f"matminer {type(featurizer).__name__} failed on "
                                  f"{structure.composition.reduced_formula}: {exc}") from exc


def _build(name: str, featurizer) -> Descriptor:
    def binder(structures, fixed_shape):
        fresh = _featurizer_class(name)()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fresh.fit(list(structures))
            except Exception as exc:  # noqa: BLE001 - e.g. a featurizer that takes no fit
                raise DescriptorError(f"matminer {name} cannot be fitted on these structures: {exc}") from exc
        return _build(name, fresh)

    return Descriptor(name=f"matminer:{name}", compute=functools.partial(_featurize, featurizer=featurizer),
                      metric="chebyshev", params={"featurizer": name}, unit="matminer units", binder=binder)


def matminer_featurizer(name: str) -> Descriptor:
    """The matminer structure featurizer ``name`` (default parameters) as a descriptor."""
    return _build(name, _featurizer_class(name)())
