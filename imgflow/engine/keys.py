"""Stored keys: derived from the host and the full URL path, so they never collide.

The original pipeline stored ``host/basename``, so ``a/x.gif`` and ``b/x.gif`` overwrote
each other. imgflow keeps every path segment, the port when it is not the scheme's
default (``host:8080``; a host name cannot hold a colon, and IPv6 literals keep their
brackets), and a digest of the query string when there is one.

Markers use a bare ``%``, which no path segment can hold (job validation accepts ``%`` only
as the start of a ``%XX`` escape): an empty segment (``a//b``, or the end of ``a/``) is
``%``, and a query adds ``%q<digest>``. So ``a/``, ``a/index`` and ``x.gif@q<digest>``
keep keys of their own.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def key_for(url: str) -> str:
    """The stored key of `url`, e.g. ``www.example.com/data/flags/ad/ad.gif``."""
    parts = urlsplit(url)
    host = (parts.hostname or "unknown-host").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets, so a port can follow unambiguously
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(parts.scheme) else f"{host}:{port}"
    segments = [segment or "%" for segment in parts.path.split("/")[1:]] or ["%"]
    key = "/".join([netloc, *segments])
    if parts.query:
        digest = hashlib.sha256(parts.query.encode()).hexdigest()[:16]
        key = f"{key}%q{digest}"
    return key
