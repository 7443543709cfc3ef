"""Readers of crystal structures: files, AiiDA groups and the Materials Project.

Every reader returns a :class:`ReadResult` (parsed records, unreadable records with
reasons, target units, and a ``source`` description in the keys of
``aiida.orm.Data.source``). :func:`validate_records` applies the ``on_error`` policy
(``'fail'`` or ``'skip'``); :class:`~aiida_crystinv.data.CrystalDatasetData` packs the
result into one node.

* :func:`read_path` / :func:`read_bytes` -- CIF (multi-block), folders of CIFs, CSV with a
  CIF column, JSON lists of pymatgen structure dicts (gzipped or not); :func:`check_bytes`
  refuses a file that is not a dataset without reading its records
* :func:`read_group` / :func:`read_structuredata` -- AiiDA ``StructureData`` nodes
* :func:`read_materials_project` -- the Materials Project through ``mp-api``
"""

from ._records import (
    ON_ERROR,
    ReadResult,
    Record,
    RecordError,
    SourceError,
    ValidRecords,
    record_hash,
    reduced_formula,
    validate_records,
)
from .aiida_group import read_group, read_structuredata, structuredata_to_tuple
from .files import (
    FORMATS,
    KNOWN_UNITS,
    check_bytes,
    detect_format,
    parse_cif_block,
    read_bytes,
    read_cif,
    read_cif_folder,
    read_csv,
    read_json,
    read_path,
)
from .materials_project import read_materials_project

__all__ = [
    "ON_ERROR",
    "FORMATS",
    "KNOWN_UNITS",
    "ReadResult",
    "Record",
    "RecordError",
    "SourceError",
    "ValidRecords",
    "validate_records",
    "record_hash",
    "reduced_formula",
    "check_bytes",
    "detect_format",
    "parse_cif_block",
    "read_bytes",
    "read_path",
    "read_cif",
    "read_cif_folder",
    "read_csv",
    "read_json",
    "read_group",
    "read_structuredata",
    "structuredata_to_tuple",
    "read_materials_project",
]
