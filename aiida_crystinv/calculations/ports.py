"""Port validators: every spec input of every process is validated by the typed specs of
:mod:`aiida_crystinv.specs` before the process (or any node) exists.

A validator takes the input node (and AiiDA's port context) and returns ``None`` or the
message of the problem; AiiDA then refuses the launch with a ``ValueError`` naming the
port. :func:`validate_inputs` attaches validators to the ports of a calcfunction (whose
spec is built from its signature and has no ``validator=`` argument).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from aiida import orm

from ..specs import SpecError, parse, parse_descriptor, parse_invariant, parse_metric
from ..specs.learning import parse_model, parse_selection, parse_split

__all__ = [
    "spec_of",
    "validate_inputs",
    "check_invariant",
    "check_descriptor",
    "check_metric",
    "check_model",
    "check_split",
    "check_selection",
    "check_positive_int",
    "check_chunk",
    "check_import_options",
    "check_mp_options",
    "check_mp_query",
    "check_group_options",
    "check_synthetic_parameters",
    "check_descriptor_list",
    "check_ids",
]

Validator = Callable[[Any, Any], "str | None"]


def spec_of(node: Any) -> Any:
    """The JSON content of a spec input: a ``Dict``'s dict, a ``Str``'s name, a ``List``."""
    if node is None:
        return None
    if isinstance(node, orm.Dict):
        return node.get_dict()
    if isinstance(node, orm.Str):
        return {"name": node.value}
    if isinstance(node, orm.List):
        return node.get_list()
    return node


def _checker(parse: Callable[..., Any]) -> Validator:
    def check(value: Any, _ctx: Any = None) -> str | None:
        if value is None:
            return None
        try:
            parse(spec_of(value))
        except SpecError as exc:
            return str(exc)
        return None

    check.__doc__ = f"Refuse what :func:`{parse.__module__}.{parse.__name__}` refuses."
    return check


check_invariant = _checker(parse_invariant)
check_descriptor = _checker(parse_descriptor)
check_metric = _checker(parse_metric)
check_model = _checker(parse_model)
check_split = _checker(parse_split)
check_selection = _checker(parse_selection)


def _options_checker(spec_name: str) -> Validator:
    """A validator of an options ``Dict`` by a spec class of :mod:`aiida_crystinv.specs.study`."""

    def check(value: Any, _ctx: Any = None) -> str | None:
        from ..specs import study

        if value is None:
            return None
        try:
            parse(getattr(study, spec_name), value.get_dict(), "options" if spec_name.endswith("Options") else "parameters")
        except SpecError as exc:
            return str(exc)
        return None

    check.__doc__ = f"Refuse what :class:`aiida_crystinv.specs.study.{spec_name}` refuses."
    return check


check_import_options = _options_checker("ImportOptions")
check_mp_options = _options_checker("MPOptions")
check_group_options = _options_checker("GroupOptions")
check_synthetic_parameters = _options_checker("SyntheticParameters")


def check_mp_query(value: Any, _ctx: Any = None) -> str | None:
    """A non-empty query without credentials (the key comes from ``MP_API_KEY``)."""
    from ..specs.study import MaterialsProjectQuery

    try:
        parse(MaterialsProjectQuery, {"query": value.get_dict()}, "")
    except SpecError as exc:
        return str(exc)
    return None


def check_positive_int(value: Any, _ctx: Any = None) -> str | None:
    if value is None:
        return None
    v = value.value
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        return f"must be a positive integer, got {v!r}"
    return None


def check_finite(value: Any, _ctx: Any = None) -> str | None:
    if value is None:
        return None
    v = value.value
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return f"must be a finite non-negative number, got {v!r}"
    return None


def check_chunk(value: Any, _ctx: Any = None) -> str | None:
    if value is None:
        return None
    c = value.get_dict()
    if set(c) != {"start", "stop"} or any(isinstance(c[k], bool) or not isinstance(c[k], int) for k in c):
        return f"chunk must be {{'start': int, 'stop': int}}, got {c}"
    if not 0 <= c["start"] < c["stop"]:
        return f"chunk {c['start']}:{c['stop']} is empty or negative"
    return None


def check_descriptor_list(value: Any, _ctx: Any = None) -> str | None:
    if value is None:
        return None
    items = value.get_list()
    if not items:
        return "no descriptors given"
    for i, item in enumerate(items):
        try:
            parse_invariant(item, where=f"descriptors[{i}]")
        except SpecError as exc:
            return str(exc)
    return None


def check_ids(value: Any, _ctx: Any = None) -> str | None:
    if value is None:
        return None
    ids = value.get_list()
    if not ids:
        return "no identifiers given"
    if len(set(map(str, ids))) != len(ids):
        return "identifiers are repeated"
    return None


def validate_inputs(function: Any, **validators: Validator) -> Any:
    """Attach validators to the named input ports of a calcfunction; returns it.

    AiiDA validates the inputs when the process is built, before any node is stored, so a
    refused input leaves nothing in the database.
    """
    ports = function.process_class.spec().inputs
    for name, validator in validators.items():
        port = ports[name]
        port._validator = validator  # plumpy's Port has no public setter for the validator
    return function
