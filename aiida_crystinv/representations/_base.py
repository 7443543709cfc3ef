"""The :class:`Descriptor` type: a named function of a structure plus the distance that
compares its values. Pure numerics: no AiiDA import."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Descriptor", "NotComparableError", "DescriptorError", "VECTOR_METRICS", "METRICS"]

#: distances between fixed-length vectors (the value is flattened first)
VECTOR_METRICS = ("chebyshev", "euclidean")
#: every metric a descriptor may name
METRICS = VECTOR_METRICS + ("pdd_emd", "grid_emd", "rdf_emd", "composition_emd")


class DescriptorError(ValueError):
    """A descriptor name, parameter or input that cannot be used (the message says why)."""


class NotComparableError(ValueError):
    """Two descriptor values have different shapes, so no distance between them exists
    (a descriptor whose length changes with the unit cell)."""


@dataclass(frozen=True)
class Descriptor:
    """A descriptor of crystals: ``compute(structure) -> ndarray`` and a metric.

    Attributes:
        name: registry name (e.g. ``"amd"``, ``"sine_matrix"``, ``"embedding:mat2vec:mean"``).
        compute: function of one pymatgen ``Structure`` returning a float array.
        metric: one of :data:`METRICS`; vector metrics compare flattened values and refuse
            values of different shapes (:class:`NotComparableError`).
        params: the parameters the descriptor was built with (JSON-serialisable).
        unit: unit of the distance between two values (``"Angstrom"``, ``"a.u."``, ...).
        binder: optional ``binder(structures, fixed_shape) -> Descriptor`` that fixes what
            depends on a dataset (species list of SOAP/MBTR/ACSF, the padded size of a
            Coulomb-type matrix); ``None`` when nothing does.
        ground_metric: for ``composition_emd``: (n_elements, n_elements) element-to-element
            distance matrix over the atomic numbers 1..n_elements.
    """

    name: str
    compute: Callable[[Any], np.ndarray]
    metric: str = "chebyshev"
    params: dict = field(default_factory=dict)
    unit: str = "a.u."
    binder: Callable[[Sequence[Any], bool], "Descriptor"] | None = None
    ground_metric: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise DescriptorError(f"descriptor {self.name!r}: metric must be one of {METRICS}, got {self.metric!r}")

    def __call__(self, structure) -> np.ndarray:
        """The descriptor of one structure as a float array."""
        return np.asarray(self.compute(structure), dtype=float)

    def bind(self, structures: Sequence[Any], fixed_shape: bool = True) -> "Descriptor":
        """The descriptor with its dataset-dependent settings fixed from ``structures``.

        Args:
            structures: the structures it will be applied to.
            fixed_shape: also pad size-dependent outputs (Coulomb-type matrices) to the
                largest structure, so that every value has the same shape.
        """
        if self.binder is None:
            return self
        return self.binder(list(structures), fixed_shape)

    def with_name(self, name: str) -> "Descriptor":
        return replace(self, name=name)

    def values(self, structures: Sequence[Any]) -> list[np.ndarray]:
        """The descriptor of every structure (a list: shapes may differ)."""
        return [self(s) for s in structures]

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """Distance between two values of this descriptor (in :attr:`unit`).

        Raises:
            NotComparableError: vector values of different shapes.
        """
        from .. import distances as dist

        a = np.asarray(a, float)
        b = np.asarray(b, float)
        if self.metric in VECTOR_METRICS:
            if a.shape != b.shape:
                raise NotComparableError(f"{self.name}: values of shapes {a.shape} and {b.shape} cannot be compared")
            d = (a - b).ravel()
            return float(np.max(np.abs(d))) if self.metric == "chebyshev" else float(np.sqrt(d @ d))
        if self.metric == "pdd_emd":
            return float(dist.pdd_emd(a, b))
        if self.metric == "grid_emd":
            if a.shape != b.shape:
                raise NotComparableError(f"{self.name}: GRIDs of shapes {a.shape} and {b.shape} cannot be compared")
            return float(dist.grid_emd(a, b, bin_width=float(self.params.get("bin_width", 0.1))))
        if self.metric == "rdf_emd":
            if a.shape != b.shape:
                raise NotComparableError(f"{self.name}: RDFs of shapes {a.shape} and {b.shape} cannot be compared")
            return float(dist.rdf_emd(a, b, bin_width=float(self.params.get("bin_width", 0.05))))
        from .embeddings import composition_emd_vectors

        assert self.ground_metric is not None
        return composition_emd_vectors(a, b, self.ground_metric)

    def pdist(self, values: Sequence[np.ndarray]) -> np.ndarray:
        """Condensed pairwise distances (like ``scipy.spatial.distance.pdist``) of ``values``.

        Raises:
            NotComparableError: vector values of different shapes (bind with
                ``fixed_shape=True`` first).
        """
        from scipy.spatial.distance import pdist as _pdist

        from .. import distances as dist

        n = len(values)
        if self.metric in VECTOR_METRICS:
            shapes = {np.shape(v) for v in values}
            if len(shapes) > 1:
                raise NotComparableError(f"{self.name}: values of {len(shapes)} different shapes cannot be compared")
            X = np.asarray([np.ravel(v) for v in values], float).reshape(n, -1)
            return _pdist(X, metric=self.metric)
        if self.metric == "pdd_emd":
            return np.asarray(dist.pdist(list(values), metric="pdd_emd"), float)
        if self.metric in ("grid_emd", "rdf_emd"):
            bw = float(self.params.get("bin_width", 0.1 if self.metric == "grid_emd" else 0.05))
            return np.asarray(dist.pdist(np.asarray(values, float), metric=self.metric, bin_width=bw), float)
        out = np.empty(n * (n - 1) // 2)
        pos = 0
        for i in range(n):
            for j in range(i + 1, n):
                out[pos] = self.distance(values[i], values[j])
                pos += 1
        return out
