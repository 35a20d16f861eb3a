"""`httpx.Headers` made from headers already in bytes, for less.

`httpx.Headers(pairs)` normalises every name and value of every request and response
(three Python calls a header), and its `encoding` decodes each of them again the first
time a header is looked up. A response's headers come from the parser as bytes, and a
request's are the client's (already normalised) with a Host header first: both are the
(name, lowercased name, value) triples httpx keeps, and `headers_of` hands them over as
they are. Its encoding is set as httpx would find it ("ascii" when every byte is ASCII,
else left for httpx to work out). When httpx's internals are not the ones this was
written against, the triples go through `httpx.Headers` itself.
"""

from __future__ import annotations

import httpx

Triple = tuple[bytes, bytes, bytes]


def _fits() -> bool:
    """Whether httpx.Headers keeps its headers as this module makes them."""
    try:
        probe = httpx.Headers([(b"Ab", b"c")])
        return probe._list == [(b"Ab", b"ab", b"c")] and probe._encoding is None
    except AttributeError:  # pragma: no cover - another httpx
        return False


_FAST = _fits()


def headers_of(triples: list[Triple]) -> httpx.Headers:
    """The `httpx.Headers` of (name, lowercased name, value) triples; takes the list."""
    if not _FAST:  # pragma: no cover - another httpx
        return httpx.Headers([(name, value) for name, _, value in triples])
    headers = httpx.Headers()
    headers._list = triples
    if all(name.isascii() and value.isascii() for name, _, value in triples):
        headers._encoding = "ascii"
    return headers


def with_host(headers: httpx.Headers, host: bytes) -> httpx.Headers:
    """A copy of `headers` with a Host header first, unless they have one."""
    if not _FAST:  # pragma: no cover - another httpx
        raw = headers.raw
        return httpx.Headers(raw if "Host" in headers else [(b"Host", host), *raw])
    triples = headers._list
    if any(lower == b"host" for _, lower, _ in triples):
        return headers_of(list(triples))
    return headers_of([(b"Host", b"host", host), *triples])
