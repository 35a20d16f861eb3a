"""Extra request headers given as ``Name: value`` (``--header``, ``fetch.headers``)."""

from __future__ import annotations

import string
from collections.abc import Iterable

_TOKEN = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
# Framing and routing are imgflow's to set: a fixed value would break them.
_RESERVED = frozenset({"host", "content-length", "transfer-encoding", "connection", "te"})


class HeaderError(ValueError):
    """A header that cannot be sent; the text says why (the caller names the option)."""


def parse_header(text: str) -> tuple[str, str]:
    """(name, value) of ``Name: value``; HeaderError when it cannot be sent as it is."""
    if any(c in text for c in "\r\n\0"):
        raise HeaderError(f"{text!r}: a header cannot contain CR, LF or NUL")
    name, sep, value = text.partition(":")
    if not sep:
        raise HeaderError(f"{text!r}: expected 'Name: value'")
    if not name or any(c not in _TOKEN for c in name):
        raise HeaderError(f"{text!r}: {name!r} is not a header name")
    if name.lower() in _RESERVED:
        raise HeaderError(f"{text!r}: imgflow sets {name} itself")
    value = value.strip(" \t")
    if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value):
        raise HeaderError(f"{text!r}: control characters in the value")
    return name, value


def parse_headers(texts: Iterable[str]) -> list[tuple[str, str]]:
    """Every header of `texts`, in order (HeaderError for the first bad one)."""
    return [parse_header(text) for text in texts]
