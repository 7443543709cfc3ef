"""How the commands word what went wrong: one line, capped, counts in words."""

from __future__ import annotations


def _debugging() -> bool:
    from aiida.common import log

    return (log.CLI_LOG_LEVEL or "").upper() == "DEBUG"


#: Longest error message (characters) a command prints; the rest is in the debug output.
MAX_MESSAGE = 280

#: Exceptions that mean "the request is too big", with what to say instead of their text.
_RESOURCE_ERRORS: dict[type, str] = {
    MemoryError: "not enough memory for this computation; use smaller parameters (e.g. a smaller k, cutoff or n_shells)",
    RecursionError: "the input is nested too deeply to be processed",
    OverflowError: "a number is too large",
}


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (runs of whitespace and newlines become one space), at most
    ``limit`` characters (cut in the middle with ``...`` so that both the start, which says
    what failed, and the end, which often holds the hint, are kept)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head = (limit - 5) * 2 // 3
    tail = limit - 5 - head
    return f"{text[:head]} ... {text[-tail:]}"


def count_of(n: int, noun: str) -> str:
    """``'1 structure'``, ``'3163 structures'``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
