"""Writing a dataset's records out: multi-block CIF, JSON ``{"units", "records"}`` and CSV
with the CIF text and units in the header (``crystinv export``), as a mixin of
:class:`~aiida_crystinv.data.CrystalDatasetData`."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class DatasetExportMixin:
    """The export methods; the class using it provides ``ids``, ``formulas``, ``units``,
    ``target_names``, ``get_target``, ``get_structures``, ``index_of`` and ``__len__``."""

    def _export_indices(self, records: Sequence[int | str] | None) -> list[int]:
        """Positions of ``records`` (identifiers or indices; ``None``: all), in that order.

        Raises:
            KeyError: unknown identifiers, all named in one message.
        """
        if records is None:
            return list(range(len(self)))
        missing = []
        for record in records:
            try:
                self.index_of(record)
            except (KeyError, IndexError):
                missing.append(str(record))
        if missing:
            where = f"dataset {self.pk}" if self.is_stored else "this dataset"
            raise KeyError(f"no record(s) {', '.join(missing)} in {where}")
        return [self.index_of(record) for record in records]

    def to_cif_text(self, records: Sequence[int | str] | None = None) -> str:
        """Records as one multi-block CIF text (``crystinv export --format cif``).

        Each block is what pymatgen's ``CifWriter`` writes for the record's structure
        (P1, fractional coordinates, occupancies), with the block renamed ``data_<id>``
        (characters other than letters, digits and ``-_.#`` become ``_``).

        Args:
            records: identifiers or indices, in the order wanted (default: all).

        Raises:
            KeyError: an unknown identifier (the message lists every unknown one).
        """
        indices = self._export_indices(records)
        all_ids = self.ids
        return "".join(_cif_block(s, all_ids[i]) for s, i in zip(self.get_structures(indices), indices))

    def to_json_records(self, records: Sequence[int | str] | None = None) -> list[dict[str, Any]]:
        """Records as ``{'id', 'formula', 'structure', <target>: value, ...}`` dicts
        (``crystinv export --format json``; the format ``import_dataset`` reads back).

        ``structure`` is pymatgen's ``Structure.as_dict()``; a target that is not finite
        is ``None``. Args and errors as :meth:`to_cif_text`.
        """
        indices = self._export_indices(records)
        all_ids, formulas = self.ids, self.formulas
        targets = {name: self.get_target(name) for name in self.target_names}
        out = []
        for i, structure in zip(indices, self.get_structures(indices)):
            record: dict[str, Any] = {"id": all_ids[i], "formula": formulas[i], "structure": structure.as_dict()}
            for name, values in targets.items():
                value = float(values[i])
                record[name] = value if np.isfinite(value) else None
            out.append(record)
        return out

    def to_json_text(self, records: Sequence[int | str] | None = None) -> str:
        """``{"units": {target: unit}, "records": [...]}`` (:meth:`to_json_records`) as JSON
        text (one line); ``import_dataset`` reads the units back."""
        import json

        return json.dumps({"units": {name: self.units.get(name, "") for name in self.target_names},
                           "records": self.to_json_records(records)})

    def to_csv_text(self, records: Sequence[int | str] | None = None) -> str:
        """Records as CSV text (``crystinv export -o x.csv``): columns ``id``, ``formula``,
        ``cif`` (the record's CIF block, as :meth:`to_cif_text`) and one per target, its
        unit in the header (``bulk_modulus [GPa]``; ``name []`` for a target declared
        unitless whose name has a known unit or itself ends in brackets). Target values
        are written with ``repr``, so they read back bit-exactly; an unknown (NaN) value is
        an empty cell.
        ``import_dataset`` reads the units back from the headers. Args and errors as
        :meth:`to_cif_text`.
        """
        import csv
        import io

        from ..sources import KNOWN_UNITS
        from ..sources.tabular import split_header_unit

        indices = self._export_indices(records)
        all_ids, formulas, units = self.ids, self.formulas, self.units
        names = self.target_names
        targets = [self.get_target(name) for name in names]
        header = ["id", "formula", "cif"]
        for name in names:
            unit = units.get(name, "")
            bracketed = split_header_unit(name)[1] is not None  # a name like 'E [eV]' keeps its brackets
            header.append(f"{name} [{unit}]" if unit or bracketed or name in KNOWN_UNITS else name)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        for i, structure in zip(indices, self.get_structures(indices)):
            values = [float(t[i]) for t in targets]
            writer.writerow(
                [all_ids[i], formulas[i], _cif_block(structure, all_ids[i])]
                + [repr(v) if np.isfinite(v) else "" for v in values]
            )
        return buffer.getvalue()


def _cif_block(structure: Any, name: str) -> str:
    """pymatgen's CIF of ``structure`` with its ``data_`` line renamed after ``name``."""
    from pymatgen.io.cif import CifWriter

    text = str(CifWriter(structure))
    safe = "".join(c if c.isalnum() or c in "-_.#" else "_" for c in name) or "structure"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("data_"):
            lines[i] = f"data_{safe}"
            break
    return "\n".join(lines) + "\n"
