"""The base of every spec: pydantic v2 models that forbid unknown keys, and errors that
name the place in the file and suggest the closest allowed key."""

from __future__ import annotations

import difflib
import math
import re
from typing import Annotated, Any, Mapping, TypeVar

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

__all__ = ["MAX_K", "Spec", "SpecError", "parse", "Int", "PositiveInt", "Float", "PositiveFloat", "NonNegativeFloat", "Name"]

#: The largest neighbour count accepted (the pure functions' own bound).
from ..invariants._pdd import MAX_K  # noqa: E402


class SpecError(ValueError):
    """A spec that cannot be used. The message names the place (``models[1].k``) and the
    problem, and for unknown keys the closest allowed key."""


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"must be an integer, got {value!r}")
    return int(value)


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty name, got {value!r}")
    return value.strip()


#: An integer (not a bool, not a string, numpy integers accepted).
Int = Annotated[int, BeforeValidator(_int)]
PositiveInt = Annotated[int, BeforeValidator(_int), Field(ge=1)]
#: A finite number (not a bool, not a string).
Float = Annotated[float, BeforeValidator(_float)]
PositiveFloat = Annotated[float, BeforeValidator(_float), Field(gt=0)]
NonNegativeFloat = Annotated[float, BeforeValidator(_float), Field(ge=0)]
Name = Annotated[str, BeforeValidator(_name)]


class Spec(BaseModel):
    """Base of every spec: immutable, unknown keys refused with a "did you mean"."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            allowed = [name for name, f in cls.model_fields.items()] + [
                f.alias for f in cls.model_fields.values() if f.alias
            ]
            unknown = [k for k in data if k not in allowed]
            if unknown:
                hints = []
                for key in unknown:
                    close = difflib.get_close_matches(str(key), allowed, n=1)
                    hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
                raise ValueError(f"unknown key(s) {', '.join(hints)}; allowed: {', '.join(allowed)}")
        return data

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of the spec with every field (defaults included)."""
        return self.model_dump(mode="json")


#: Location parts added by tagged unions (the tag), dropped from messages.
_TAG_PARTS: set[str] = set()


def register_tags(*tags: str) -> None:
    """Tags of discriminated unions: they are not keys of the file, so messages skip them."""
    _TAG_PARTS.update(tags)


_TYPE_PARTS = {"int", "float", "str", "bool", "list", "dict", "tuple", "none", "literal"}


def _is_key(part: str) -> bool:
    return (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part) is not None and part not in _TAG_PARTS
            and part.lower() not in _TYPE_PARTS)


def _where(loc: tuple[Any, ...], where: str) -> str:
    out = where
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_key(str(part)):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "spec"


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    value = error.get("input")
    if (error.get("type") in ("unknown_model", "unknown_invariant", "unknown_descriptor") and isinstance(value, Mapping)
            and isinstance(value.get("name"), str) and ";" in msg):
        head, tail = msg.split(";", 1)
        msg = f"{head} {value['name']!r};{tail}"
    if error.get("type", "").endswith(("_type", "_parsing", "greater_than", "greater_than_equal", "less_than",
                                       "less_than_equal", "literal_error")) and "got" not in msg:
        msg += f" (got {value!r})" if len(repr(value)) < 80 else ""
    return msg


def format_error(exc: ValidationError, where: str = "") -> str:
    """One line per problem (at most three), each naming its place."""
    # a union reports one error per member it tried: keep the deepest per place
    best: dict[str, tuple[int, str]] = {}
    for e in exc.errors():
        loc = tuple(e["loc"])
        if e.get("type") == "missing" and loc:
            keys = [p for p in loc if isinstance(p, str) and _is_key(p)]
            place = _where(loc[:-1], where)
            best[place] = (len(loc), f"{keys[-1] if keys else loc[-1]!r} is missing")
            continue
        place = _where(loc, where)
        depth = len(e["loc"])
        if place not in best or depth >= best[place][0]:
            best[place] = (depth, _message(e))
    # a place with a deeper problem (``alphas[0]``) reports only that one
    errors = [(p, v) for p, v in best.items() if not any(o != p and o.startswith(p + "[") for o in best)]
    lines = [f"{place}: {msg}" for place, (_, msg) in errors[:3]]
    if len(errors) > 3:
        lines.append(f"... and {len(errors) - 3} more")
    return "; ".join(lines)


T = TypeVar("T")


def parse(kind: Any, data: Any, where: str = "", context: Mapping[str, Any] | None = None) -> Any:
    """Validate ``data`` as the spec ``kind`` (a Spec class or an annotated union).

    Raises:
        SpecError: the first problems, each with its place (``where`` is the prefix, e.g.
            the file name); a key at any depth that looks like a credential
            (:func:`aiida_crystinv.secrets.is_secret_key`) is refused first, naming its
            place and never its value.
    """
    from pydantic import TypeAdapter

    from ..secrets import find_secret_keys

    places = find_secret_keys(data)
    if places:
        prefix = f"{where}." if where else ""
        raise SpecError(
            f"{', '.join(prefix + p for p in places[:5])}: never put an API key or other credential in a spec, "
            "a study or options; give it in the environment (MP_API_KEY for the Materials Project)"
        )
    adapter = _ADAPTERS.get(id(kind))
    if adapter is None:
        adapter = _ADAPTERS[id(kind)] = TypeAdapter(kind)
    try:
        return adapter.validate_python(data, context=dict(context or {}))
    except ValidationError as exc:
        raise SpecError(format_error(exc, where)) from None


_ADAPTERS: dict[int, Any] = {}
