"""Read structures and properties from the Materials Project through ``mp-api``.

Needs the optional extra ``mp`` (``pip install aiida-crystinv[mp]``) and an API key in the
environment variable ``MP_API_KEY``. The query, the requested fields and the database
version go into the dataset's ``source``; the key never does: a query holding a
credential-looking key (:func:`aiida_crystinv.secrets.is_secret_key`) is refused, and the
key, also echoed in part or in another case by a failing client, is scrubbed from every
message (:func:`aiida_crystinv.secrets.scrub_text`).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from ..secrets import cap_text, find_secret_keys, redact, scrub_text
from ._records import ReadResult, Record, SourceError

__all__ = ["read_materials_project", "API_KEY_VARIABLE", "DEFAULT_PROPERTIES"]

#: Environment variable holding the Materials Project API key.
API_KEY_VARIABLE = "MP_API_KEY"

#: Properties fetched as targets when none are requested, with their units.
DEFAULT_PROPERTIES = {
    "formation_energy_per_atom": "eV/atom",
    "energy_above_hull": "eV/atom",
    "band_gap": "eV",
}


def _mprester():
    try:
        from mp_api.client import MPRester
    except ImportError:
        raise SourceError(
            "the Materials Project importer needs the 'mp-api' package: pip install 'aiida-crystinv[mp]'"
        ) from None
    return MPRester


def read_materials_project(
    query: dict[str, Any],
    properties: Sequence[str] | None = None,
    units: dict[str, str] | None = None,
    api_key: str | None = None,
) -> ReadResult:
    """Query ``materials.summary`` of the Materials Project.

    Args:
        query: keyword arguments of ``MPRester.materials.summary.search``, e.g.
            ``{'elements': ['Si', 'O'], 'num_elements': 2}`` or
            ``{'material_ids': ['mp-149']}``. Must not be empty.
        properties: summary fields stored as targets (default
            :data:`DEFAULT_PROPERTIES`).
        units: units of the targets (defaults for known fields).
        api_key: the key; by default read from ``MP_API_KEY``. Never stored.

    Raises:
        SourceError: no ``mp-api`` package, no key, an empty query, or the request failed
            (no network, bad key, bad query); the message says which.
    """
    if not query:
        raise SourceError("the Materials Project query is empty; give e.g. {'material_ids': ['mp-149']}")
    if not isinstance(query, Mapping):
        raise SourceError(f"the Materials Project query must be a mapping, got {type(query).__name__}")
    places = find_secret_keys(query, "query")
    if places:
        raise SourceError(
            f"{', '.join(places)}: never put an API key or other credential in the query; "
            f"set {API_KEY_VARIABLE} in the environment"
        )
    MPRester = _mprester()
    key = api_key or os.environ.get(API_KEY_VARIABLE, "")
    if not key:
        raise SourceError(
            f"no Materials Project API key: set the environment variable {API_KEY_VARIABLE} "
            "(get a key at https://materialsproject.org/api)"
        )
    props = list(properties) if properties is not None else list(DEFAULT_PROPERTIES)
    fields = ["material_id", "structure", *props]
    try:
        with MPRester(key) as mpr:
            docs = list(mpr.materials.summary.search(**dict(query), fields=fields))
            try:
                version = str(mpr.get_database_version())
            except Exception:  # noqa: BLE001 - the version is informative
                version = "unknown"
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - network, HTTP, validation errors
        text = cap_text(scrub_text(exc, [key]), 500)
        raise SourceError(f"the Materials Project request failed ({type(exc).__name__}: {text})") from None
    if not docs:
        raise SourceError(f"the Materials Project query {cap_text(redact(query, [key]), 300)!r} matched no material")
    result = ReadResult(records=[], units={}, source={})
    known = dict(DEFAULT_PROPERTIES)
    known.update(units or {})
    result.units = {p: known.get(p, "") for p in props}
    for number, doc in enumerate(docs, start=1):
        get = doc.get if isinstance(doc, dict) else (lambda name, d=doc: getattr(d, name, None))
        rid = str(get("material_id") or number)
        structure = get("structure")
        position = f"Materials Project result {number}"
        if structure is None:
            result.failed.append({"id": rid, "reason": "no structure returned", "position": position, "order": number})
            continue
        targets = {p: (float("nan") if get(p) is None else get(p)) for p in props}
        result.records.append(Record(rid, structure, targets, position, number))
    result.source = {
        "db_name": "Materials Project",
        "db_uri": "https://api.materialsproject.org",
        "version": version,
        "description": "Materials Project summary search via mp-api",
        "extras": {"format": "materials_project", "query": _jsonable(redact(query, [key])), "fields": fields},
    }
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
