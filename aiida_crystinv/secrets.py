"""Credentials never stored: find, remove and scrub anything that looks like a secret.

Pure (no AiiDA import). One place decides what a credential looks like, for every layer:

* :func:`is_secret_key` -- a mapping key that names a credential (``api_key``, ``apikey``,
  ``X-API-KEY``, ``token``, ``password``, ``secret``, ``credential``, ``Authorization``...),
  under any casing and separator;
* :func:`known_secrets` -- the values of the environment variables whose names look like a
  credential (``MP_API_KEY``, ``GITHUB_TOKEN``...): such a value is a secret wherever it
  appears, under any key name;
* :func:`find_secret_keys` -- the places (``query.criteria.api_key``) of such keys in nested
  dicts and lists, and of string values holding a known secret (``query.note``), for
  validators that refuse an input before any node exists (messages name the place, never
  the value);
* :func:`redact` -- a copy of nested dicts / lists without those keys and with every known
  secret value scrubbed from the strings (for anything about to be stored);
* :func:`scrub_text` -- a text (an exit message, a report line, an exception) with the
  known secrets removed, also when echoed in another case or in part (any run of at least
  :data:`MIN_ECHO` characters of a secret), and with the value after a credential-looking
  name (``api_key=...``, ``X-API-KEY: ...``, ``Bearer ...``) removed;
* :func:`cap_text` -- a text cut to a readable length (the head and the tail kept).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

__all__ = [
    "MASK",
    "MIN_ECHO",
    "MAX_MESSAGE",
    "is_secret_key",
    "known_secrets",
    "find_secret_keys",
    "redact",
    "scrub_text",
    "cap_text",
]

#: What replaces a scrubbed secret.
MASK = "***"
#: The shortest part of a known secret that is scrubbed when echoed (a secret shorter than
#: this is scrubbed only whole).
MIN_ECHO = 6
#: Default length of a message stored in an exit message (the full text goes to the report).
MAX_MESSAGE = 1000
#: The shortest value of a credential-named environment variable that counts as a known
#: secret (shorter values, like ``PASSWORD=x`` in a test environment, would match anywhere).
MIN_KNOWN = 8

#: Normalised (lower case, letters and digits only) key names that contain one of these
#: are credentials.
_SECRET_PARTS = (
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "token",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "credential",
    "authorization",
    "cookie",
    "bearer",
)
#: Normalised key names that are credentials only as a whole word.
_SECRET_NAMES = {"key", "auth", "pwd", "pass", "xapikey"}

#: ``name = value`` / ``name: value`` / ``"name": "value"`` where ``name`` looks like a
#: credential: the value is scrubbed. Also ``Bearer <token>`` and ``Basic <token>``.
_NAME = r"[A-Za-z0-9_\-]*(?:api[-_ ]?key|access[-_ ]?key|secret|token|passw(?:or)?d|credential|authorization)[A-Za-z0-9_\-]*"
_ASSIGNED = re.compile(
    rf"(?P<name>['\"]?{_NAME}['\"]?\s*(?:[:=]|=>)\s*)(?P<value>(?:(?:Bearer|Basic|Token)\s+)?(?:'[^']*'|\"[^\"]*\"|[^\s,;&)}}\]]+))",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"(?P<name>\b(?:Bearer|Basic)\s+)(?P<value>[A-Za-z0-9._~+/=\-]{8,})", re.IGNORECASE)


def _normalise(key: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(key).lower())


def is_secret_key(key: Any) -> bool:
    """Whether a mapping key names a credential (any casing, ``-``/``_``/space separators).

    >>> [is_secret_key(k) for k in ("api_key", "X-API-KEY", "apiKey", "Token", "structure_key", "n")]
    [True, True, True, True, False, False]
    """
    name = _normalise(key)
    return name in _SECRET_NAMES or any(part in name for part in _SECRET_PARTS)


def known_secrets() -> list[str]:
    """The values (at least :data:`MIN_KNOWN` characters) of the environment variables whose
    names look like a credential (:func:`is_secret_key`: ``MP_API_KEY``, ``AWS_SECRET_ACCESS_KEY``,
    ``GITHUB_TOKEN``...)."""
    import os

    return [value for name, value in os.environ.items() if len(value.strip()) >= MIN_KNOWN and is_secret_key(name)]


def find_secret_keys(obj: Any, where: str = "", secrets: Iterable[str] | None = None) -> list[str]:
    """The places of credential-looking keys in nested mappings and lists, e.g.
    ``['query.api_key', 'inputs.headers[0].Authorization']``, and of string keys or values that
    hold a known secret (``secrets``, by default :func:`known_secrets`), under any name, e.g.
    ``['query.note']``; never the values themselves."""
    known = [s.lower() for s in (known_secrets() if secrets is None else _usable(secrets))]
    return _find(obj, where, known)


def _find(obj: Any, where: str, known: list[str]) -> list[str]:
    found: list[str] = []
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if isinstance(key, str) and _holds(key, known):  # the key itself is the secret: not named
                found.append(f"{where}.{MASK}" if where else MASK)
                continue
            place = f"{where}.{key}" if where else str(key)
            if is_secret_key(key):
                found.append(place)
            else:
                found.extend(_find(value, place, known))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            found.extend(_find(value, f"{where}[{i}]", known))
    elif isinstance(obj, str) and _holds(obj, known):
        found.append(where or "the value")
    return found


def _holds(text: str, known: list[str]) -> bool:
    low = text.lower()
    return any(secret in low for secret in known)


def redact(obj: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of ``obj`` without credentials, for anything about to be stored.

    Mapping entries whose key looks like a credential (:func:`is_secret_key`) are dropped;
    every string (keys and values, at any depth) is passed through :func:`scrub_text` with
    the known ``secrets``. Tuples become lists; other values are returned as they are.
    """
    secrets = _usable([*secrets, *known_secrets()])
    return _redact(obj, secrets)


def _redact(obj: Any, secrets: list[str]) -> Any:
    if isinstance(obj, Mapping):
        return {
            (scrub_text(k, secrets) if isinstance(k, str) else k): _redact(v, secrets)
            for k, v in obj.items()
            if not is_secret_key(k)
        }
    if isinstance(obj, (list, tuple)):
        return [_redact(v, secrets) for v in obj]
    if isinstance(obj, str):
        return scrub_text(obj, secrets)
    return obj


def _usable(secrets: Iterable[str]) -> list[str]:
    """The non-trivial secrets (at least 3 characters), longest first."""
    out = sorted({str(s) for s in secrets if s is not None and len(str(s).strip()) >= 3}, key=len, reverse=True)
    return out


def scrub_text(text: Any, secrets: Iterable[str] = ()) -> str:
    """``text`` without the known ``secrets`` and without credential-looking assignments.

    A secret is removed whole and also when echoed in part or in another case: every run of
    at least :data:`MIN_ECHO` consecutive characters of a secret (compared without case)
    becomes :data:`MASK`, so an uppercased echo, the first eight characters or the last
    four-and-more of a long key are all caught. A secret shorter than :data:`MIN_ECHO` is
    removed only whole (case-insensitively). Independently of known secrets, the value
    after a credential-looking name (``api_key=abc``, ``"X-API-KEY": "abc"``,
    ``Authorization: Bearer abc``) is replaced by :data:`MASK`.
    """
    text = str(text)
    marked = bytearray(len(text))
    for secret in _usable([*secrets, *known_secrets()]):
        low = secret.lower()
        width = min(MIN_ECHO, len(low))
        windows = sorted({low[i : i + width] for i in range(len(low) - width + 1)})
        # every start of a window, overlapping ones included (a zero-width look-ahead)
        pattern = re.compile("(?=(?:" + "|".join(map(re.escape, windows)) + "))", re.IGNORECASE)
        for match in pattern.finditer(text):
            i = match.start()
            marked[i : i + width] = b"\x01" * width
    if any(marked):
        out, i = [], 0
        while i < len(text):
            if marked[i]:
                while i < len(text) and marked[i]:
                    i += 1
                out.append(MASK)
            else:
                out.append(text[i])
                i += 1
        text = "".join(out)
    text = _ASSIGNED.sub(lambda m: m.group("name") + MASK, text)
    text = _SCHEME.sub(lambda m: m.group("name") + MASK, text)
    return text


def cap_text(text: Any, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to at most ``limit`` characters, the head (what failed) and the tail
    (often the hint) kept around ``' ... [N characters cut] ... '``."""
    text = str(text)
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    marker = f" ... [{cut} characters cut] ... "
    keep = max(limit - len(marker), 20)
    head = keep * 2 // 3
    tail = keep - head
    cut = len(text) - head - tail
    marker = f" ... [{cut} characters cut] ... "
    return f"{text[:head]}{marker}{text[-tail:]}"
