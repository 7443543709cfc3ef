"""``CrystalDatasetData``: many crystal structures, their identifiers and targets in ONE node.

Storing one node costs milliseconds, so a dataset of thousands of structures is one node
whose arrays live as ``.npy`` files in the node repository (no pickle). Per record it
holds the cell, the sites (packed, with offsets), an identifier, a reduced formula, a
content hash and any number of named numeric targets with units.

Repository layout (``n`` records, ``N`` sites in total, ``P`` species entries)::

    cells.npy            (n, 3, 3) float64   lattice vectors as rows, Angstrom
    site_offsets.npy     (n + 1,)  int64     sites of record i: site_offsets[i]:site_offsets[i+1]
    frac.npy             (N, 3)    float64   fractional coordinates, wrapped into [0, 1)
    species_offsets.npy  (N + 1,)  int64     species entries of site j: species_offsets[j]:[j+1]
    species.npy          (P,)      int16     index into the attribute ``elements``
    occupancies.npy      (P,)      float64   occupancy of each species entry, in (0, 1]
    ids.npy, formulas.npy, hashes.npy  (n,) fixed-width unicode
    targets.npy          (n, t)    float64   columns in the order of ``target_names``

Disorder: a site with partial occupancy or mixed species is stored as several species
entries with their occupancies (vacancies are the missing occupancy); invariants weight
such a site by its total occupancy (see :mod:`aiida_crystinv.invariants._crystal`).
Oxidation states, magnetic moments and other site properties are not stored.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from aiida.orm import Data

from ..invariants import Crystal
from ..secrets import redact
from ..invariants.packing import crystals_from_arrays, pack_crystals
from ..sources import (
    ReadResult,
    record_hash,
    reduced_formula,
    validate_records,
)
from ._arrays import ArrayRepositoryMixin, as_str_array, jsonable
from ._export import DatasetExportMixin

__all__ = ["CrystalDatasetData", "sanitize_source"]

def sanitize_source(source: Mapping[str, Any] | None, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """Copy of a ``source`` description without anything that looks like a credential
    (:func:`aiida_crystinv.secrets.redact`: credential-looking keys at any depth are dropped,
    the known ``secrets`` scrubbed from every string).

    Keys that are not ``aiida.orm.Data.source`` keys are moved under ``extras``.
    """
    allowed = set(Data._source_attributes)

    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return jsonable(value)

    source = redact(clean(dict(source or {})), secrets)
    out = {k: v for k, v in source.items() if k in allowed}
    extra = {k: v for k, v in source.items() if k not in allowed}
    if extra:
        out["extras"] = {**dict(out.get("extras") or {}), **extra}
    return out


class CrystalDatasetData(ArrayRepositoryMixin, DatasetExportMixin, Data):
    """A dataset of periodic crystal structures with identifiers and targets, as one node.

    Construct it with :meth:`from_structures` (pymatgen structures, ``(cell, frac, species)``
    tuples or :class:`~aiida_crystinv.invariants.Crystal`), :meth:`from_structuredata`,
    :meth:`from_group` or :meth:`from_file`; every structure is validated on construction
    (:func:`~aiida_crystinv.invariants.as_crystal`), every target must be finite.

    Reading: :meth:`get_structure` and :meth:`get_crystal` read one record without
    loading the dataset; :meth:`get_crystals` is the fast path into the pure numerical
    layer; :meth:`get_target`, :attr:`ids`, :attr:`formulas`, :attr:`hashes`.
    """

    def __init__(
        self,
        structures: Sequence[Any] | None = None,
        ids: Sequence[str] | None = None,
        targets: Mapping[str, Sequence[float]] | None = None,
        units: Mapping[str, str] | None = None,
        source: Mapping[str, Any] | None = None,
        skipped: Iterable[Mapping[str, Any]] | None = None,
        on_error: str = "fail",
        **kwargs: Any,
    ) -> None:
        """Validate and pack ``structures``; see :meth:`from_structures`."""
        super().__init__(**kwargs)
        if structures is not None:
            valid = validate_records(structures, ids, targets, on_error=on_error)
            self._pack(valid.crystals, valid.ids, valid.targets, units, [*(skipped or []), *valid.skipped])
        if source:
            self.source = sanitize_source(source)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_structures(
        cls,
        structures: Sequence[Any],
        ids: Sequence[str] | None = None,
        targets: Mapping[str, Sequence[float]] | None = None,
        units: Mapping[str, str] | None = None,
        source: Mapping[str, Any] | None = None,
        skipped: Iterable[Mapping[str, Any]] | None = None,
        on_error: str = "fail",
    ) -> "CrystalDatasetData":
        """A new (unstored) dataset.

        Args:
            structures: pymatgen ``Structure`` objects, ``(cell, frac, species)`` tuples or
                ``Crystal`` objects (ordered or disordered).
            ids: unique identifiers, default ``'0'``, ``'1'``, ...
            targets: name -> n numbers (energies, moduli...); NaN/inf are bad records.
            units: name -> unit (``'eV/atom'``, ``'GPa'``); ``''`` when not given.
            source: where the data came from, in ``aiida.orm.Data.source`` keys (other keys
                go under ``extras``; anything looking like a credential is dropped).
            skipped: records already rejected upstream, ``{'id', 'reason'}`` dicts.
            on_error: ``'fail'`` (raise on the first bad record) or ``'skip'``.

        Raises:
            aiida_crystinv.sources.RecordError: a bad record with ``on_error='fail'``;
                the message names the record and the reason.
            ValueError: no valid structure at all, or mismatched lengths.
        """
        return cls(structures, ids=ids, targets=targets, units=units, source=source, skipped=skipped, on_error=on_error)

    @classmethod
    def from_read_result(cls, result: ReadResult, on_error: str = "fail") -> "CrystalDatasetData":
        """A dataset from what a reader of :mod:`aiida_crystinv.sources` returned."""
        names = result.target_names
        structures = [r.structure for r in result.records]
        ids = [r.id for r in result.records]
        targets = {n: [r.targets.get(n, float("nan")) for r in result.records] for n in names}
        valid = validate_records(
            structures,
            ids,
            targets,
            on_error=on_error,
            positions=[r.position for r in result.records],
            failed=result.failed,
            orders=[r.order for r in result.records],
        )
        node = cls()
        node._pack(valid.crystals, valid.ids, valid.targets, result.units, valid.skipped)
        if result.source:
            node.source = sanitize_source(result.source)
        return node

    @classmethod
    def from_file(cls, path: Any, format: str | None = None, on_error: str = "fail", **options: Any) -> "CrystalDatasetData":
        """A dataset from a file or a folder of CIFs (no provenance: for that, run the
        ``import_dataset`` calcfunction on a ``SinglefileData``). See
        :func:`aiida_crystinv.sources.read_path` for formats and options."""
        from ..sources import read_path

        return cls.from_read_result(read_path(path, format=format, **options), on_error=on_error)

    @classmethod
    def from_structuredata(
        cls, nodes: Sequence[Any], ids: Sequence[str] | None = None, on_error: str = "fail"
    ) -> "CrystalDatasetData":
        """A dataset from ``StructureData`` nodes. Identifiers default to the node labels
        when all are set and unique, else the UUIDs; the UUIDs of the source nodes are kept
        (:meth:`get_node_uuids`)."""
        from ..sources import read_structuredata

        nodes = list(nodes)
        node = cls.from_read_result(read_structuredata(nodes, ids=ids), on_error=on_error)
        node._set_node_uuids(nodes, ids)
        return node

    @classmethod
    def from_group(cls, group: Any, on_error: str = "fail") -> "CrystalDatasetData":
        """A dataset from the ``StructureData`` nodes of an AiiDA group (instance or label).

        The group label and UUID go into ``source``; other node types in the group are
        bad records.
        """
        from aiida.orm import Group, Node, QueryBuilder, load_group

        from ..sources import read_group

        result = read_group(group)
        node = cls.from_read_result(result, on_error=on_error)
        grp = group if isinstance(group, Group) else load_group(group)
        qb = QueryBuilder().append(Group, filters={"id": grp.pk}, tag="g")
        qb.append(Node, with_group="g", project="*").order_by({Node: {"id": "asc"}})
        node._set_node_uuids([row[0] for row in qb.all()])
        return node

    def _set_node_uuids(self, nodes: Sequence[Any], ids: Sequence[str] | None = None) -> None:
        """Record the UUID of the node each record came from (``ids[i]`` is node ``i``'s id)."""
        from ..sources.aiida_group import default_ids

        ids = default_ids(nodes) if ids is None else ids
        by_id = {str(i): str(n.uuid) for i, n in zip(ids, nodes)}
        if all(i in by_id for i in self.ids):
            self._set_array("node_uuids", as_str_array([by_id[i] for i in self.ids]))

    # ------------------------------------------------------------------ packing
    def _pack(
        self,
        crystals: Sequence[Crystal],
        ids: Sequence[str],
        targets: Mapping[str, np.ndarray],
        units: Mapping[str, str] | None,
        skipped: Sequence[Mapping[str, Any]],
    ) -> None:
        if not crystals:
            reasons = "; ".join(f"{s.get('id')}: {s.get('reason')}" for s in list(skipped)[:5])
            raise ValueError("a dataset needs at least one valid structure" + (f" (skipped: {reasons})" if reasons else ""))
        n = len(crystals)
        arrays, elements = pack_crystals(crystals)
        site_offsets = arrays["site_offsets"]
        hashes = [record_hash(c) for c in crystals]
        formulas = [reduced_formula(c) for c in crystals]
        names = list(targets)
        target_matrix = np.column_stack([np.asarray(targets[k], dtype=float) for k in names]) if names else np.zeros((n, 0))
        units = dict(units or {})

        for name, array in arrays.items():
            self._set_array(name, array)
        self._set_array("ids", as_str_array(ids))
        self._set_array("formulas", as_str_array(formulas))
        self._set_array("hashes", as_str_array(hashes))
        self._set_array("targets", target_matrix)

        digest = hashlib.sha256()
        for rid, h in zip(ids, hashes):
            digest.update(f"{rid}\0{h}\n".encode())
        digest.update(repr(names).encode())
        digest.update(np.ascontiguousarray(target_matrix).tobytes())
        attrs = self.base.attributes
        attrs.set("n_records", n)
        attrs.set("n_sites", int(site_offsets[-1]))
        attrs.set("elements", elements)
        attrs.set("target_names", names)
        attrs.set("units", {k: str(units.get(k, "")) for k in names})
        attrs.set("skipped", [jsonable(dict(s)) for s in skipped])
        ordered = bool(np.all(np.diff(arrays["species_offsets"]) == 1) and np.all(arrays["occupancies"] == 1.0))
        attrs.set("ordered", ordered)
        attrs.set("content_hash", digest.hexdigest())
        # the validated crystals are exactly what get_crystals() would rebuild from the arrays
        if all(c.label == rid for c, rid in zip(crystals, ids)):
            object.__setattr__(self, "_crystinv_crystals", tuple(crystals))

    def _validate(self) -> bool:
        super()._validate()
        if self.base.attributes.get("n_records", 0) < 1:
            from aiida.common.exceptions import ValidationError

            raise ValidationError("an empty CrystalDatasetData cannot be stored: build it with from_structures()")
        return True

    # ------------------------------------------------------------------ metadata
    def __len__(self) -> int:
        return int(self.base.attributes.get("n_records", 0))

    @property
    def ids(self) -> list[str]:
        """Record identifiers, in order."""
        return self._get_array("ids").tolist()

    @property
    def formulas(self) -> list[str]:
        """Reduced formula of each record."""
        return self._get_array("formulas").tolist()

    @property
    def hashes(self) -> list[str]:
        """SHA-256 of each record's rounded canonical content (see ``sources.record_hash``)."""
        return self._get_array("hashes").tolist()

    @property
    def content_hash(self) -> str:
        """SHA-256 of the whole dataset (identifiers, record hashes, targets)."""
        return self.base.attributes.get("content_hash", "")

    def find_same_content(self) -> list["CrystalDatasetData"]:
        """Other stored datasets with this :attr:`content_hash` (the same identifiers,
        record contents and target values), oldest first.

        Use it to find an earlier import of the same data, whose invariants and models
        may already exist, before computing again.
        """
        from aiida.orm import QueryBuilder

        filters: dict[str, Any] = {"attributes.content_hash": self.content_hash}
        if self.is_stored:
            filters["id"] = {"!==": self.pk}
        qb = QueryBuilder().append(CrystalDatasetData, filters=filters, project="*")
        qb.order_by({CrystalDatasetData: {"ctime": "asc"}})
        return [row[0] for row in qb.all()]

    @property
    def elements(self) -> list[str]:
        return list(self.base.attributes.get("elements", []))

    @property
    def n_sites(self) -> int:
        """Total number of sites over all records."""
        return int(self.base.attributes.get("n_sites", 0))

    def sites_per_record(self) -> np.ndarray:
        """The number of sites of each record's cell, in record order."""
        return np.diff(self._get_array("site_offsets"))

    @property
    def target_names(self) -> list[str]:
        return list(self.base.attributes.get("target_names", []))

    @property
    def units(self) -> dict[str, str]:
        """Unit of each target (``''`` when unknown)."""
        return dict(self.base.attributes.get("units", {}))

    @property
    def skipped(self) -> list[dict]:
        """Records rejected at import, as ``{'id', 'reason', 'position'}`` dicts."""
        return [dict(s) for s in self.base.attributes.get("skipped", [])]

    @property
    def is_ordered(self) -> bool:
        """False when some site has a partial occupancy or mixed species."""
        return bool(self.base.attributes.get("ordered", True))

    def get_target(self, name: str) -> np.ndarray:
        """(n,) float64 values of a target, in record order.

        Raises:
            KeyError: no such target; the message lists the targets.
        """
        names = self.target_names
        if name not in names:
            raise KeyError(f"no target {name!r}; the targets are {names}")
        return np.array(self._get_array("targets")[:, names.index(name)])

    def get_node_uuids(self) -> list[str] | None:
        """UUIDs of the ``StructureData`` the records came from, if built from nodes."""
        return self._get_array("node_uuids").tolist() if self._has_array("node_uuids") else None

    def index_of(self, record: int | str) -> int:
        """Position of a record given its index or identifier.

        Raises:
            KeyError: unknown identifier. IndexError: index out of range.
        """
        if isinstance(record, (int, np.integer)) and not isinstance(record, bool):
            i = int(record)
            n = len(self)
            if not -n <= i < n:
                raise IndexError(f"record index {i} out of range for a dataset of {n} records")
            return i % n
        lookup = getattr(self, "_crystinv_id_index", None)
        if lookup is None:
            lookup = {rid: i for i, rid in enumerate(self.ids)}
            object.__setattr__(self, "_crystinv_id_index", lookup)
        try:
            return lookup[str(record)]
        except KeyError:
            raise KeyError(f"no record with identifier {record!r} in this dataset") from None

    # ------------------------------------------------------------------ records
    def _read_block(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Arrays of records ``start:stop`` read with partial reads (or from the cache)."""
        so = self._get_rows("site_offsets", start, stop + 1)
        a, b = int(so[0]), int(so[-1])
        po = self._get_rows("species_offsets", a, b + 1)
        p, q = int(po[0]), int(po[-1])
        return {
            "cells": self._get_rows("cells", start, stop),
            "site_offsets": so - a,
            "frac": self._get_rows("frac", a, b),
            "species_offsets": po - p,
            "species": self._get_rows("species", p, q),
            "occupancies": self._get_rows("occupancies", p, q),
            "ids": self._get_rows("ids", start, stop),
        }

    def _crystals_from_block(self, block: dict[str, np.ndarray]) -> list[Crystal]:
        return crystals_from_arrays(block, self.elements)

    def get_crystal(self, record: int | str) -> Crystal:
        """One record as a :class:`~aiida_crystinv.invariants.Crystal`, read without
        loading the rest of the dataset."""
        i = self.index_of(record)
        return self._crystals_from_block(self._read_block(i, i + 1))[0]

    def get_structure(self, record: int | str):
        """One record (index or identifier) as a pymatgen ``Structure``.

        Only that record's slices of the arrays are read from the repository.
        Disordered sites become pymatgen disordered sites (``{element: occupancy}``).
        """
        return _to_pymatgen(self.get_crystal(record))

    def get_structures(self, indices: Sequence[int] | None = None) -> list:
        """Records as pymatgen ``Structure`` objects (all by default)."""
        return [_to_pymatgen(c) for c in self.get_crystals(indices)]

    def get_crystals(self, indices: Sequence[int] | range | slice | None = None) -> list[Crystal]:
        """Records as :class:`~aiida_crystinv.invariants.Crystal` objects, the fast path
        into :mod:`aiida_crystinv.invariants` (already validated; no pymatgen involved).

        Args:
            indices: ``None`` (all), a ``range``/``slice`` with step 1 (read with partial
                reads, for chunked processing), or any sequence of indices / identifiers.
        """
        n = len(self)
        if isinstance(indices, slice):
            indices = range(*indices.indices(n))
        if indices is None:
            return list(self._all_crystals())
        if isinstance(indices, range) and indices.step == 1:
            if len(indices) == 0:
                return []
            cached = getattr(self, "_crystinv_crystals", None)
            if cached is not None and len(cached) == n:  # built already: no rebuild, no read
                return list(cached[indices.start : indices.stop])
            if indices.start <= 0 and indices.stop >= n:
                return list(self._all_crystals())
            return self._crystals_from_block(self._read_block(indices.start, indices.stop))
        idx = [self.index_of(i) for i in indices]
        crystals = self._all_crystals()
        return [crystals[i] for i in idx]

    def _all_crystals(self) -> tuple[Crystal, ...]:
        """Every record as a Crystal, built once per node instance (Crystals are immutable)."""
        cached = getattr(self, "_crystinv_crystals", None)
        if cached is None or len(cached) != len(self):
            for name in ("cells", "site_offsets", "frac", "species_offsets", "species", "occupancies", "ids"):
                self._get_array(name)
            cached = tuple(self._crystals_from_block(self._read_block(0, len(self))))
            object.__setattr__(self, "_crystinv_crystals", cached)
        return cached

    # ------------------------------------------------------------------ conversions
    def to_structuredata(self, indices: Sequence[int | str] | None = None) -> list:
        """Records as unstored ``StructureData`` nodes, labelled with the record identifier."""
        from aiida.orm import StructureData

        idx = range(len(self)) if indices is None else [self.index_of(i) for i in indices]
        out = []
        for i in idx:
            crystal = self.get_crystal(i)
            node = StructureData(pymatgen=_to_pymatgen(crystal))
            node.label = crystal.label
            node.description = f"record {crystal.label} of dataset {self.uuid}"
            out.append(node)
        return out

    def to_dataframe(self, cif: bool = False) -> Any:
        """One row per record as a ``pandas.DataFrame``: ``id``, ``formula``, the targets
        (float64, NaN where unknown) and, with ``cif=True``, the CIF text of each record;
        ``df.attrs["units"]`` holds the targets' units (see :mod:`aiida_crystinv.data.frames`)."""
        from .frames import dataset_frame

        return dataset_frame(self, cif=cif)

    def subset(self, indices: Sequence[int | str]) -> "CrystalDatasetData":
        """A new unstored dataset with the chosen records (indices or identifiers), in that
        order, keeping targets, units and source."""
        idx = [self.index_of(i) for i in indices]
        if not idx:
            raise ValueError("a subset needs at least one record")
        if len(set(idx)) != len(idx):
            raise ValueError("a subset cannot repeat a record")
        crystals = self.get_crystals(idx)
        all_ids = self._get_array("ids")
        targets = {name: self.get_target(name)[idx] for name in self.target_names}
        node = type(self)()
        node._pack(crystals, [str(all_ids[i]) for i in idx], targets, self.units, [])
        if self.source:
            node.source = dict(self.source)
        node.base.attributes.set("subset_of", {"uuid": str(self.uuid), "n_records": len(self)})
        if self._has_array("node_uuids"):
            uu = self._get_array("node_uuids")
            node._set_array("node_uuids", uu[idx])
        return node

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        state = f"pk={self.pk}" if self.is_stored else "unstored"
        return f"<CrystalDatasetData: {len(self)} records, targets {self.target_names} ({state})>"


def _to_pymatgen(crystal: Crystal):
    from pymatgen.core import Lattice, Structure

    species = [s[0][0] if len(s) == 1 and s[0][1] == 1.0 else dict(s) for s in crystal.species]
    return Structure(Lattice(crystal.cell), species, crystal.frac, coords_are_cartesian=False)
