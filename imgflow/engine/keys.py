"""Stored keys: derived from the host and the full URL path, so they never collide.

The original pipeline stored ``host/basename``, so ``a/x.gif`` and ``b/x.gif`` overwrote
each other. imgflow keeps every path segment, the port when it is not the scheme's
default, and a digest of the query string when there is one.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def key_for(url: str) -> str:
    """The stored key of `url`, e.g. ``www.example.com/data/flags/ad/ad.gif``."""
    parts = urlsplit(url)
    host = (parts.hostname or "unknown-host").lower()
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(parts.scheme) else f"{host}_{port}"
    segments = [_segment(s) for s in parts.path.split("/")[1:]]
    if not segments or segments[-1] == "%":
        segments = [*segments[:-1], "index"] if segments else ["index"]
    key = "/".join([netloc, *segments])
    if parts.query:
        digest = hashlib.sha256(parts.query.encode()).hexdigest()[:16]
        key = f"{key}@q{digest}"
    return key


def _segment(segment: str) -> str:
    # An empty segment (``a//b``) cannot be a directory name; "%" cannot occur bare in a
    # percent-encoded URL path, so mapping to it cannot collide with a real segment.
    return segment if segment else "%"
