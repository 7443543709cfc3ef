"""``DistancesData``: a distance matrix or a k-nearest-neighbour graph, as ONE node.

Three layouts (attribute ``layout``):

* ``condensed`` -- all pairwise distances within one set, stored like
  ``scipy.spatial.distance.pdist`` (n(n-1)/2,) float64; :meth:`get_matrix` expands it.
* ``dense`` -- distances between two sets, (n_rows, n_cols) float64.
* ``knn`` -- for each row, its k nearest columns: ``indices`` (n, k) int64 and
  ``distances`` (n, k) float64, nearest first (a sparse graph for large sets).

The metric name and parameters, the invariants' descriptor and parameters, and the row
and column identifiers are recorded. Distances are in Angstrom for AMD/PDD metrics.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from aiida.orm import Data

from ..specs import METRICS, SpecError
from ._arrays import ArrayRepositoryMixin, as_str_array, jsonable

__all__ = ["DistancesData", "check_threshold"]

class DistancesData(ArrayRepositoryMixin, Data):
    """Distances between the rows of one set of invariants and the rows of another (or
    the same) set: a condensed or dense matrix, or a kNN graph."""

    @classmethod
    def from_condensed(cls, condensed: np.ndarray, ids: Sequence[str], metric: str, **kwargs: Any) -> "DistancesData":
        """Pairwise distances within one set, condensed like ``scipy``'s ``pdist``."""
        n = len(ids)
        condensed = np.asarray(condensed, dtype=float).ravel()
        if condensed.size != n * (n - 1) // 2:
            raise ValueError(f"a condensed matrix for {n} ids has {n * (n - 1) // 2} entries, got {condensed.size}")
        node = cls._new("condensed", metric, ids, ids, **kwargs)
        node._set_array("condensed", condensed)
        return node

    @classmethod
    def from_matrix(
        cls, matrix: np.ndarray, row_ids: Sequence[str], col_ids: Sequence[str], metric: str, **kwargs: Any
    ) -> "DistancesData":
        """A dense (n_rows, n_cols) matrix between two sets."""
        matrix = np.asarray(matrix, dtype=float)
        if matrix.shape != (len(row_ids), len(col_ids)):
            raise ValueError(f"matrix shape {matrix.shape} does not match {len(row_ids)} x {len(col_ids)} ids")
        node = cls._new("dense", metric, row_ids, col_ids, **kwargs)
        node._set_array("matrix", matrix)
        return node

    @classmethod
    def from_knn(
        cls,
        distances: np.ndarray,
        indices: np.ndarray,
        row_ids: Sequence[str],
        col_ids: Sequence[str],
        metric: str,
        exclude_self: bool = True,
        **kwargs: Any,
    ) -> "DistancesData":
        """A kNN graph: row ``i``'s ``k`` nearest columns ``indices[i]`` at ``distances[i]``."""
        distances = np.asarray(distances, dtype=float)
        indices = np.asarray(indices, dtype=np.int64)
        if distances.shape != indices.shape or distances.ndim != 2 or distances.shape[0] != len(row_ids):
            raise ValueError(f"kNN arrays of shapes {distances.shape} and {indices.shape} for {len(row_ids)} rows")
        node = cls._new("knn", metric, row_ids, col_ids, **kwargs)
        node._set_array("distances", distances)
        node._set_array("indices", indices)
        node.base.attributes.set("k", int(distances.shape[1]))
        node.base.attributes.set("exclude_self", bool(exclude_self))
        return node

    @classmethod
    def _new(
        cls,
        layout: str,
        metric: str,
        row_ids: Sequence[str],
        col_ids: Sequence[str],
        metric_parameters: Mapping[str, Any] | None = None,
        invariants: Mapping[str, Any] | None = None,
    ) -> "DistancesData":
        if metric not in METRICS:
            raise SpecError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
        node = cls()
        node._set_array("row_ids", as_str_array(row_ids))
        same = list(map(str, row_ids)) == list(map(str, col_ids))
        if not same:
            node._set_array("col_ids", as_str_array(col_ids))
        attrs = node.base.attributes
        attrs.set("layout", layout)
        attrs.set("metric", metric)
        attrs.set("metric_parameters", jsonable(dict(metric_parameters or {})))
        attrs.set("invariants", jsonable(dict(invariants or {})))
        attrs.set("shape", [len(row_ids), len(col_ids)])
        attrs.set("same_set", same)
        return node

    def _validate(self) -> bool:
        super()._validate()
        if not self.base.attributes.get("layout", None):
            from aiida.common.exceptions import ValidationError

            raise ValidationError("an empty DistancesData cannot be stored")
        return True

    # ------------------------------------------------------------------ metadata
    @property
    def layout(self) -> str:
        """``'condensed'``, ``'dense'`` or ``'knn'``."""
        return self.base.attributes.get("layout")

    @property
    def is_knn(self) -> bool:
        return self.layout == "knn"

    @property
    def metric(self) -> str:
        return self.base.attributes.get("metric")

    @property
    def metric_parameters(self) -> dict[str, Any]:
        return dict(self.base.attributes.get("metric_parameters", {}))

    @property
    def invariants_parameters(self) -> dict[str, Any]:
        """``{'descriptor': ..., 'parameters': {...}}`` of the invariants compared."""
        return dict(self.base.attributes.get("invariants", {}))

    @property
    def shape(self) -> tuple[int, int]:
        """(number of rows, number of columns) of the full matrix."""
        s = self.base.attributes.get("shape")
        return int(s[0]), int(s[1])

    @property
    def row_ids(self) -> list[str]:
        return self._get_array("row_ids").tolist()

    @property
    def col_ids(self) -> list[str]:
        return self._get_array("col_ids").tolist() if self._has_array("col_ids") else self.row_ids

    # ------------------------------------------------------------------ arrays
    def get_matrix(self) -> np.ndarray:
        """The (n_rows, n_cols) distance matrix (not for a kNN graph)."""
        if self.layout == "condensed":
            from scipy.spatial.distance import squareform

            return squareform(self._get_array("condensed"), checks=False)
        if self.layout == "dense":
            return self._get_array("matrix")
        raise TypeError("a kNN graph has no full matrix: use get_knn() or get_sparse()")

    def get_condensed(self) -> np.ndarray:
        """The condensed vector of a pairwise (``condensed``) node."""
        if self.layout != "condensed":
            raise TypeError(f"a {self.layout!r} DistancesData has no condensed vector")
        return self._get_array("condensed")

    def get_knn(self) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)``, both (n, k), nearest first; indices are column positions."""
        if self.layout != "knn":
            raise TypeError(f"a {self.layout!r} DistancesData is not a kNN graph")
        return self._get_array("distances"), self._get_array("indices")

    def get_sparse(self):
        """The kNN graph as a ``scipy.sparse.csr_matrix`` of shape :attr:`shape`."""
        from scipy.sparse import csr_matrix

        d, idx = self.get_knn()
        n, k = d.shape
        rows = np.repeat(np.arange(n), k)
        return csr_matrix((d.ravel(), (rows, idx.ravel())), shape=self.shape)

    def to_dataframe(self, form: str | None = None) -> Any:
        """The distances as a ``pandas.DataFrame``. ``form="long"`` (the default for a kNN
        graph): ``query, neighbour, rank, distance`` rows of a kNN graph, ``row, column,
        distance`` of a matrix (a pairwise matrix: each pair once, ``row`` first in record
        order). ``form="square"`` (the default for a matrix): the full matrix indexed by
        the row and column ids; a kNN graph has none (``ValueError``). Units in
        ``df.attrs["units"]`` (see :mod:`aiida_crystinv.data.frames`)."""
        from .frames import distances_frame

        return distances_frame(self, form=form)

    def pairs_within(self, threshold: float) -> list[tuple[str, str, float]]:
        """Unordered pairs of distinct records at most ``threshold`` apart (near-duplicates).

        Works on every layout: a kNN graph gives the pairs among its edges (a cluster of
        more than ``k + 1`` copies shows partly), a condensed or dense matrix all of them.
        Two entries with the same identifier (the same record in a cross matrix) are not a
        pair, and NaN distances never are.

        Args:
            threshold: the largest distance of a pair, in the metric's unit (Angstrom for
                AMD/PDD metrics); ``0`` keeps exact duplicates only.

        Returns:
            ``[(id_a, id_b, distance), ...]`` with ``id_a < id_b``, each pair once (at its
            smallest distance), sorted by distance, then identifiers.

        Raises:
            ValueError: ``threshold`` is NaN or negative (or not a number).
        """
        limit = check_threshold(threshold)
        rows, cols = self.row_ids, self.col_ids
        if self.layout == "knn":
            distances, indices = self.get_knn()
            i, j = np.nonzero(distances <= limit)
            found = zip(i.tolist(), indices[i, j].tolist(), distances[i, j].tolist())
        elif self.layout == "condensed":
            condensed = self.get_condensed()
            (flat,) = np.nonzero(condensed <= limit)
            i, j = _condensed_to_square(flat, len(rows))
            found = zip(i.tolist(), j.tolist(), condensed[flat].tolist())
        else:
            matrix = self.get_matrix()
            i, j = np.nonzero(matrix <= limit)
            found = zip(i.tolist(), j.tolist(), matrix[i, j].tolist())
        seen: dict[tuple[str, str], float] = {}
        for r, c, d in found:
            a, b = rows[r], cols[int(c)]
            if a == b:
                continue
            key = (a, b) if a < b else (b, a)
            if key not in seen or d < seen[key]:
                seen[key] = float(d)
        return sorted(((a, b, d) for (a, b), d in seen.items()), key=lambda x: (x[2], x[0], x[1]))

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        state = f"pk={self.pk}" if self.is_stored else "unstored"
        return f"<DistancesData: {self.layout} {self.metric} {self.shape} ({state})>"


def check_threshold(threshold: Any) -> float:
    """``threshold`` as a float distance, refused when it is NaN, infinite, negative or not
    a number (``d <= nan`` is never true and ``d <= inf`` always is: neither is a threshold).

    Raises:
        ValueError: with the value in the message.
    """
    message = f"a distance threshold must be a finite number >= 0, got {threshold!r}"
    if isinstance(threshold, (bool, np.bool_)) or isinstance(threshold, str):
        raise ValueError(message)
    try:
        limit = float(threshold)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(message) from None
    if not np.isfinite(limit) or limit < 0:
        raise ValueError(message)
    return limit


def _condensed_to_square(flat: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column ``(i, j)``, ``i < j``, of positions in a condensed vector of ``n`` ids."""
    flat = np.asarray(flat, dtype=np.int64)
    # row i starts at i * n - i * (i + 1) / 2: invert, then correct the float rounding
    i = np.floor(n - 0.5 - np.sqrt((n - 0.5) ** 2 - 2.0 * flat)).astype(np.int64)
    start = i * n - i * (i + 1) // 2
    i[flat < start] -= 1
    start = i * n - i * (i + 1) // 2
    i[flat >= start + (n - 1 - i)] += 1
    start = i * n - i * (i + 1) // 2
    return i, flat - start + i + 1
