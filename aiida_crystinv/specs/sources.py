"""Specs of the sources of structures in a study (a file, an AiiDA group, a Materials
Project query, a generated landscape, a stored dataset): one of them is ``source``,
``screening.candidates`` or ``loop.candidates``."""

from __future__ import annotations

import os
import pathlib
import re
from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    NonNegativeInt,
    Tag,
    ValidationInfo,
    field_validator,
)

from ..secrets import find_secret_keys
from ._base import Float, Int, Name, PositiveInt, Spec, parse, register_tags


SOURCE_KINDS = ("file", "group", "materials_project", "synthetic", "dataset")
FILE_OPTIONS = ("format", "id_column", "cif_column", "target_columns", "units", "on_error", "structure_key")
#: Keys that must never be written into a study (credentials come from the environment);
#: kept for compatibility: the one test is :func:`aiida_crystinv.secrets.is_secret_key`.
SECRET_KEYS = re.compile(r"(api[-_ ]?key|access[-_ ]?key|token|passw(or)?d|secret|credential|authorization)", re.IGNORECASE)


def _refuse_secrets(value: Any, what: str) -> Any:
    """``value`` when no key at any depth looks like a credential; else a ValueError naming
    the places (never the values)."""
    places = find_secret_keys(value)
    if places:
        raise ValueError(f"{', '.join(places)}: never put an API key or other credential in {what}; "
                         "give it in the environment (MP_API_KEY for the Materials Project)")
    return value

OnError = Literal["fail", "skip"]


class ImportOptions(Spec):
    """Options of reading a file (``import_dataset``'s ``options``, a file source's keys)."""

    format: Literal["cif", "csv", "json"] | None = None
    id_column: Name | None = None
    cif_column: Name | None = None
    target_columns: list[Name] | None = None
    units: dict[str, str] | None = None
    on_error: OnError = "fail"
    structure_key: Name | None = None
    rows: tuple[NonNegativeInt, NonNegativeInt] | None = None

    @field_validator("target_columns")
    @classmethod
    def _once(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            repeated = sorted({c for c in value if value.count(c) > 1})
            if repeated:
                raise ValueError(f"{', '.join(map(repr, repeated))} given more than once; give each target once")
        return value

    @field_validator("rows")
    @classmethod
    def _rows(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and value[1] <= value[0]:
            raise ValueError(f"rows [start, stop] needs stop > start, got {list(value)}")
        return value

    @classmethod
    def parse(cls, data: Any, where: str = "options") -> "ImportOptions":
        return parse(cls, {} if data is None else data, where)


class FileSource(ImportOptions):
    """A CIF/CSV/JSON file or a folder of CIFs, with the options of ``import_dataset``."""

    file: Name

    @field_validator("file")
    @classmethod
    def _resolve(cls, value: str, info: ValidationInfo) -> str:
        path = pathlib.Path(os.path.expanduser(os.path.expandvars(value)))
        if not path.is_absolute():
            base = pathlib.Path((info.context or {}).get("base", "."))
            path = (base / path).resolve()
        return str(path)

    def normalised(self, target: str | None) -> dict[str, Any]:
        options = self.model_dump(mode="json", exclude_unset=True, exclude={"file"})
        if self.is_tabular and "target_columns" not in options:
            options["target_columns"] = [target] if target is not None else []
        return {"kind": "file", "path": self.file, "options": options}

    @property
    def is_tabular(self) -> bool:
        """A CSV or JSON file (which has target columns), not CIFs."""
        if pathlib.Path(self.file).is_dir():
            return False
        fmt = self.format
        if fmt is None:
            name = self.file.lower().removesuffix(".gz")
            fmt = "csv" if name.endswith(".csv") else "json" if name.endswith(".json") else "cif"
        return fmt in ("csv", "json")


class GroupOptions(Spec):
    """Options of importing an AiiDA group (``import_group``'s ``options``)."""

    on_error: OnError = "fail"


class GroupSource(GroupOptions):
    """The ``StructureData`` of an AiiDA group (by label)."""

    group: Name

    def normalised(self, target: str | None) -> dict[str, Any]:
        return {"kind": "group", "label": self.group, "options": self.model_dump(mode="json", exclude_unset=True,
                                                                               exclude={"group"})}


class MPOptions(Spec):
    """Options of a Materials Project import: summary fields kept as targets, units."""

    properties: list[Name] | None = None
    units: dict[str, str] | None = None
    on_error: OnError = "fail"


class MaterialsProjectQuery(MPOptions):
    """``query``: arguments of mp-api's summary search; the key comes from ``MP_API_KEY``."""

    query: Annotated[dict[str, Any], Field(min_length=1)]

    @field_validator("query")
    @classmethod
    def _no_secret(cls, query: dict[str, Any]) -> dict[str, Any]:
        return _refuse_secrets(query, "a study or query")


class MaterialsProjectSource(Spec):
    materials_project: MaterialsProjectQuery

    def normalised(self, target: str | None) -> dict[str, Any]:
        mp = self.materials_project
        options = mp.model_dump(mode="json", exclude_unset=True, exclude={"query"})
        if target is not None and "properties" not in options:
            options["properties"] = [target]
        return {"kind": "materials_project", "query": dict(mp.query), "options": options}


class SyntheticParameters(Spec):
    """A generated landscape of ionic polymorphs (:mod:`aiida_crystinv.sources.synthetic`)."""

    generator: Literal["ewald_landscape"] = "ewald_landscape"
    n: Annotated[PositiveInt, Field(le=1_000_000)] = 200
    seed: Int = 0
    duplicate_fraction: Annotated[Float, Field(ge=0, lt=1)] | None = None
    max_atoms: PositiveInt | None = None


class SyntheticSource(Spec):
    synthetic: SyntheticParameters = SyntheticParameters()

    @field_validator("synthetic", mode="before")
    @classmethod
    def _empty(cls, value: Any) -> Any:
        return {} if value is None else value

    def normalised(self, target: str | None) -> dict[str, Any]:
        params = self.synthetic.model_dump(mode="json", exclude_unset=True)
        params.setdefault("generator", "ewald_landscape")
        return {"kind": "synthetic", "parameters": params}


class DatasetSource(Spec):
    """An existing dataset node: pk, UUID or label."""

    dataset: Union[Int, Name]

    def normalised(self, target: str | None) -> dict[str, Any]:
        return {"kind": "dataset", "identifier": str(self.dataset)}


register_tags(*SOURCE_KINDS)


def _source_tag(value: Any) -> str | None:
    if isinstance(value, Mapping):
        kinds = [k for k in SOURCE_KINDS if k in value]
        return kinds[0] if len(kinds) == 1 else None
    for kind, cls in zip(SOURCE_KINDS, (FileSource, GroupSource, MaterialsProjectSource, SyntheticSource, DatasetSource)):
        if isinstance(value, cls):
            return kind
    return None


SourceSpec = Annotated[
    Annotated[
        Union[Annotated[FileSource, Tag("file")], Annotated[GroupSource, Tag("group")],
              Annotated[MaterialsProjectSource, Tag("materials_project")], Annotated[SyntheticSource, Tag("synthetic")],
              Annotated[DatasetSource, Tag("dataset")]],
        Discriminator(_source_tag, custom_error_type="source_kind",
                      custom_error_message="a source needs exactly one of " + ", ".join(SOURCE_KINDS)),
    ],
    BeforeValidator(lambda v: {"file": v} if isinstance(v, str) else v),
]
