"""``InvariantsData``: the invariants of every record of a dataset, as ONE node.

Invariants (:data:`aiida_crystinv.specs.INVARIANTS`; parameters and defaults, all recorded on the node):

=============  ==========================================  =========  ====================
name           parameters (defaults)                       layout     stored as
=============  ==========================================  =========  ====================
``amd``        ``k=100``                                   matrix     (n, k) float64, Angstrom
``pdd``        ``k=100, collapse=True, collapse_tol=1e-4`` ragged     packed rows (R, k+1) float64
                                                                      + offsets (n+1,)
``grid``       ``bin_width=0.1, cutoff=10.0, n_shells=100, stack     (n, shells, bins) float32,
               smearing=0.1``                                         windowed (lossless)
``rdf``        ``cutoff=10.0, bin_width=0.05, smearing=0.1, stack     (n, bins) float32
               normalise='counts'``
``composition`` ``properties``, ``stats`` (element-property  matrix     (n, d) float64
               statistics; defaults of the pure function)
=============  ==========================================  =========  ====================

GRID and RDF stacks are stored as float32 (half the space; their values are binned
densities whose float32 rounding, ~1e-7 relative, is far below any meaningful
difference). AMD, PDD and composition keep float64. A GRID stack is moreover stored
windowed: only the non-zero stretch of each shell's histogram (~10% of the bins) is kept,
with its start and length, which is lossless; :meth:`InvariantsData.get_stack` returns
the dense (n, shells, bins) float32 array.

Repository files: ``ids.npy`` and, by layout, ``matrix.npy`` / ``pdd_rows.npy`` +
``pdd_offsets.npy`` / ``stack.npy`` (RDF) / ``window_starts.npy`` +
``window_lengths.npy`` + ``window_values.npy`` (GRID).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from aiida.orm import Data

from ..invariants.packing import pack_pdds, stack_records
from ..specs import INVARIANTS, InvariantSpec, SpecError, parse_invariant
from ._arrays import ArrayRepositoryMixin, as_str_array, jsonable

__all__ = ["InvariantsData", "compute_arrays"]


def compute_arrays(spec: InvariantSpec, crystals: Sequence[Any]) -> list[np.ndarray]:
    """Apply an invariant to each structure; errors name the structure (its label)."""
    return [np.asarray(spec.compute(c)) for c in crystals]


def _windows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, length and packed values of the non-zero stretch of each row of a 2-D array."""
    matrix = np.ascontiguousarray(matrix)
    first = np.zeros(matrix.shape[0], dtype=np.int32)
    lengths = np.zeros(matrix.shape[0], dtype=np.int32)
    values = _window_kernel()(matrix, np.empty(0, dtype=matrix.dtype), first, lengths)
    return first, lengths, values


_compiled_window_kernel = None


def _window_kernel():
    """The compiled ``kernel(rows, like, starts, lengths) -> values``: the non-zero window
    of each row of a 2-D array, the values cast to ``like.dtype`` first (so a value that is
    non-zero only in float64 counts as zero when storing float32); fills ``starts`` and
    ``lengths`` and returns the packed values, in one call."""
    global _compiled_window_kernel
    if _compiled_window_kernel is None:
        from numba import njit

        @njit(cache=True)
        def kernel(record, like, starts, lengths):
            rows, bins = record.shape
            total = 0
            for r in range(rows):
                lo, hi = -1, -1
                for c in range(bins):
                    if like.dtype.type(record[r, c]) != 0:
                        if lo < 0:
                            lo = c
                        hi = c
                if lo < 0:
                    starts[r], lengths[r] = 0, 0
                else:
                    starts[r], lengths[r] = lo, hi - lo + 1
                total += lengths[r]
            out = np.empty(total, dtype=like.dtype)
            k = 0
            for r in range(rows):
                for c in range(starts[r], starts[r] + lengths[r]):
                    out[k] = record[r, c]
                    k += 1
            return out

        _compiled_window_kernel = kernel
    return _compiled_window_kernel


class InvariantsData(ArrayRepositoryMixin, Data):
    """Invariants of the records of a dataset: descriptor, parameters, ids and arrays.

    Build with :meth:`from_arrays` (or :meth:`compute`); read with :meth:`get_amd`,
    :meth:`get_pdds`, :meth:`get_stack` or :meth:`get_items` (the form
    :mod:`aiida_crystinv.distances` accepts).
    """

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        descriptor: str,
        parameters: Mapping[str, Any],
        ids: Sequence[str],
        arrays: Sequence[np.ndarray] | np.ndarray,
        dataset_uuid: str | None = None,
        row_range: tuple[int, int] | None = None,
    ) -> "InvariantsData":
        """A new (unstored) node from one array per record (or a stacked array).

        Args:
            descriptor: a name in :data:`aiida_crystinv.specs.INVARIANTS`.
            parameters: the complete parameters (``InvariantSpec.params``).
            ids: record identifiers, in the order of ``arrays``.
            arrays: AMD (k,), PDD (r, k+1), GRID (shells, bins), RDF (bins,) or
                composition (d,) per record.
            dataset_uuid: the dataset the rows come from.
            row_range: ``(start, stop)`` when the rows are a chunk of that dataset.
        """
        if descriptor not in INVARIANTS:
            raise SpecError(f"unknown invariant {descriptor!r}; use one of {', '.join(INVARIANTS)}")
        desc = INVARIANTS[descriptor]
        ids = [str(i) for i in ids]
        if len(arrays) != len(ids):
            raise ValueError(f"{len(arrays)} arrays for {len(ids)} ids")
        if not ids:
            raise ValueError("invariants need at least one record")
        node = cls()
        node._set_array("ids", as_str_array(ids))
        if desc.layout == "ragged":
            pdd_rows, offsets = pack_pdds(arrays)
            node._set_array("pdd_rows", pdd_rows)
            node._set_array("pdd_offsets", offsets)
            feature_shape = [int(pdd_rows.shape[1])]
        elif desc.layout == "stack" and not isinstance(arrays, np.ndarray) and np.ndim(arrays[0]) == 2:
            # GRID: window each record as it comes, never building the dense float stack
            feature_shape = node._set_windowed_records(arrays, ids, desc.dtype)
        else:
            if isinstance(arrays, np.ndarray):
                stack = np.ascontiguousarray(arrays, dtype=desc.dtype)
            else:
                stack = stack_records(arrays, ids, desc.dtype)
            if desc.layout == "stack" and stack.ndim == 3:
                node._set_windowed(stack)
            else:
                node._set_array("matrix" if desc.layout == "matrix" else "stack", stack)
            feature_shape = [int(s) for s in stack.shape[1:]]
        attrs = node.base.attributes
        attrs.set("descriptor", descriptor)
        attrs.set("parameters", jsonable(dict(parameters)))
        attrs.set("layout", desc.layout)
        attrs.set("dtype", desc.dtype)
        attrs.set("units", desc.units)
        attrs.set("n_records", len(ids))
        attrs.set("feature_shape", feature_shape)
        if dataset_uuid:
            attrs.set("dataset_uuid", str(dataset_uuid))
        if row_range is not None:
            attrs.set("row_range", [int(row_range[0]), int(row_range[1])])
        return node

    @classmethod
    def compute(
        cls, structures: Sequence[Any], descriptor: Mapping[str, Any] | str, ids: Sequence[str] | None = None
    ) -> "InvariantsData":
        """Compute a descriptor for structures (anything ``as_crystal`` accepts) into a node."""
        spec = parse_invariant(descriptor)
        if ids is None:
            ids = [getattr(s, "label", None) or str(i) for i, s in enumerate(structures)]
        return cls.from_arrays(spec.name, spec.params, ids, compute_arrays(spec, structures))  # type: ignore[attr-defined]

    @classmethod
    def concatenate(cls, parts: Sequence["InvariantsData"]) -> "InvariantsData":
        """Join compatible invariants row-wise (chunks are ordered by ``row_range`` when all
        have one). Raises ``ValueError`` naming the incompatibility."""
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to concatenate")
        for p in parts[1:]:
            reason = parts[0].incompatibility(p)
            if reason:
                raise ValueError(reason)
        ranges = [p.row_range for p in parts]
        dataset = {p.dataset_uuid for p in parts}
        row_range = None
        if all(r is not None for r in ranges):
            order = sorted(range(len(parts)), key=lambda i: ranges[i][0])
            parts = [parts[i] for i in order]
            ranges = [ranges[i] for i in order]
            for (a0, a1), (b0, b1) in zip(ranges, ranges[1:]):
                if a1 != b0:
                    raise ValueError(f"chunks do not tile the dataset: rows {a0}:{a1} then {b0}:{b1}")
            row_range = (ranges[0][0], ranges[-1][1])
        ids = [i for p in parts for i in p.ids]
        if parts[0].layout == "ragged":
            arrays: Any = [a for p in parts for a in p.get_pdds()]
        else:
            arrays = np.concatenate([p.get_stack() for p in parts], axis=0)
        return cls.from_arrays(
            parts[0].descriptor,
            parts[0].parameters,
            ids,
            arrays,
            dataset_uuid=dataset.pop() if len(dataset) == 1 else None,
            row_range=row_range,
        )

    def _set_windowed(self, stack: np.ndarray) -> None:
        """Store a (n, rows, bins) stack as the non-zero window of each row (lossless).

        GRID rows are Gaussian-smeared shells: ~90% of the bins are exactly zero, so only
        ``values[starts[i, j] : starts[i, j] + lengths[i, j]]`` of each row is kept.
        """
        n, rows, bins = stack.shape
        first, lengths, values = _windows(stack.reshape(n * rows, bins))
        self._set_array("window_starts", first.reshape(n, rows))
        self._set_array("window_lengths", lengths.reshape(n, rows))
        self._set_array("window_values", values)
        self.base.attributes.set("stack_shape", [int(n), int(rows), int(bins)])
        self._array_cache()["stack"] = stack

    def _set_windowed_records(self, arrays: Sequence[np.ndarray], ids: Sequence[str], dtype: str) -> list[int]:
        """:meth:`_set_windowed` of the stack of ``arrays`` without building that stack
        (3163 GRIDs are 250 MB as float64); returns the record shape."""
        rows, bins = np.shape(arrays[0])
        n = len(arrays)
        starts = np.empty((n, rows), dtype=np.int32)
        lengths = np.empty((n, rows), dtype=np.int32)
        like = np.empty(0, dtype=dtype)
        kernel = _window_kernel()
        chunks = []
        for i, a in enumerate(arrays):
            a = np.asarray(a)
            if a.shape != (rows, bins):
                raise ValueError(f"record {ids[i]!r}: shape {a.shape} differs from {(rows, bins)}")
            chunks.append(kernel(np.ascontiguousarray(a), like, starts[i], lengths[i]))
        self._set_array("window_starts", starts)
        self._set_array("window_lengths", lengths)
        self._set_array("window_values", np.concatenate(chunks))
        self.base.attributes.set("stack_shape", [int(n), int(rows), int(bins)])
        return [int(rows), int(bins)]

    def _get_windowed(self) -> np.ndarray:
        cache = self._array_cache()
        if "stack" in cache:
            return cache["stack"]
        n, rows, bins = self.base.attributes.get("stack_shape")
        starts = self._get_array("window_starts", cache=False).ravel().astype(np.int64)
        lengths = self._get_array("window_lengths", cache=False).ravel().astype(np.int64)
        values = self._get_array("window_values", cache=False)
        out = np.zeros(n * rows * bins, dtype=values.dtype)
        row_base = np.arange(n * rows, dtype=np.int64) * bins + starts
        offsets = np.repeat(row_base - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        out[offsets + np.arange(len(values))] = values
        stack = out.reshape(n, rows, bins)
        cache["stack"] = stack
        return stack

    def _validate(self) -> bool:
        super()._validate()
        if not self.base.attributes.get("descriptor", None):
            from aiida.common.exceptions import ValidationError

            raise ValidationError("an empty InvariantsData cannot be stored: build it with from_arrays()")
        return True

    # ------------------------------------------------------------------ metadata
    def __len__(self) -> int:
        return int(self.base.attributes.get("n_records", 0))

    @property
    def descriptor(self) -> str:
        return self.base.attributes.get("descriptor")

    @property
    def parameters(self) -> dict[str, Any]:
        """All parameters of the descriptor, defaults included."""
        return dict(self.base.attributes.get("parameters", {}))

    @property
    def layout(self) -> str:
        """``'matrix'`` (one vector per record), ``'ragged'`` (PDD) or ``'stack'``."""
        return self.base.attributes.get("layout")

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.base.attributes.get("feature_shape", []))

    @property
    def ids(self) -> list[str]:
        return self._get_array("ids").tolist()

    @property
    def dataset_uuid(self) -> str | None:
        return self.base.attributes.get("dataset_uuid", None)

    @property
    def row_range(self) -> tuple[int, int] | None:
        r = self.base.attributes.get("row_range", None)
        return None if r is None else (int(r[0]), int(r[1]))

    # ------------------------------------------------------------------ arrays
    def get_pdds(self) -> list[np.ndarray]:
        """PDDs, one (r_i, k+1) array per record (weights in column 0). PDD only."""
        if self.layout != "ragged":
            raise TypeError(f"{self.descriptor!r} invariants have no PDDs")
        rows, offsets = self._get_array("pdd_rows"), self._get_array("pdd_offsets")
        return [rows[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]

    def get_amd(self) -> np.ndarray:
        """(n, k) AMD matrix: stored for ``amd``, derived from the PDDs for ``pdd``."""
        if self.descriptor == "amd":
            return self._get_array("matrix")
        if self.descriptor == "pdd":
            rows, offsets = self._get_array("pdd_rows"), self._get_array("pdd_offsets")
            weighted = rows[:, :1] * rows[:, 1:]
            return np.add.reduceat(weighted, offsets[:-1], axis=0)
        raise TypeError(f"{self.descriptor!r} invariants have no AMD")

    def get_stack(self) -> np.ndarray:
        """(n, ...) array of a ``matrix`` or ``stack`` layout (AMD, GRID, RDF, composition)."""
        if self.layout == "matrix":
            return self._get_array("matrix")
        if self.layout == "stack":
            return self._get_windowed() if self._has_array("window_values") else self._get_array("stack")
        raise TypeError("PDDs are ragged: use get_pdds()")

    def get_items(self) -> list[np.ndarray] | np.ndarray:
        """The invariants in the form :mod:`aiida_crystinv.distances` accepts."""
        return self.get_pdds() if self.layout == "ragged" else self.get_stack()

    def to_dataframe(self, pdd: str = "rows") -> Any:
        """The invariants as a ``pandas.DataFrame``: one row per record (``id`` and one
        column per feature: ``amd_1`` ... ``amd_k`` in Angstrom, ``rdf_*``, ``grid_s*_b*``,
        composition feature names); PDDs one row per PDD row (``id``, ``row``, ``weight``,
        ``d_1`` ... ``d_k``), or their AMD with ``pdd="amd"``. See
        :mod:`aiida_crystinv.data.frames`."""
        from .frames import invariants_frame

        return invariants_frame(self, pdd=pdd)

    # ------------------------------------------------------------------ comparison
    def incompatibility(self, other: Any) -> str | None:
        """Why ``other`` cannot be compared with or merged into these invariants, or None."""
        if not isinstance(other, InvariantsData):
            return f"expected InvariantsData, got {type(other).__name__}"
        if self.descriptor != other.descriptor:
            return f"different descriptors: {self.descriptor!r} and {other.descriptor!r}"
        if self.parameters != other.parameters:
            diff = sorted(
                k for k in set(self.parameters) | set(other.parameters) if self.parameters.get(k) != other.parameters.get(k)
            )
            details = ", ".join(f"{k}={self.parameters.get(k)!r} vs {other.parameters.get(k)!r}" for k in diff)
            return f"different {self.descriptor} parameters: {details}"
        if self.feature_shape != other.feature_shape:
            return f"different feature shapes {self.feature_shape} and {other.feature_shape}"
        return None

    def compatible_with(self, other: Any) -> bool:
        """True when both have the same descriptor, parameters and feature shape."""
        return self.incompatibility(other) is None

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        state = f"pk={self.pk}" if self.is_stored else "unstored"
        return f"<InvariantsData: {self.descriptor} {self.parameters} x {len(self)} ({state})>"
