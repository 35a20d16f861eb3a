"""A GET request built exactly as httpx builds it, for less: its URL's origin is parsed
once per origin, and the request is not run through httpx's body encoding.

`httpx.URL(text)` checks and normalises every part of a URL at each call: about two thirds
of building a request, most of it spent on the scheme and authority (the host's IP address
or IDNA check, the port), the same for every image of a host. `request_url` splits a URL
with httpx's own regular expression, takes the parsed scheme, user info, host and port
from a cache keyed by their text (filled by `httpx.URL` itself), and runs httpx's own
checks and quoting on the path, query and fragment: the same `httpx.URL`, or the same
error. A URL that is not printable ASCII, has no scheme or host, or is over httpx's length
limit goes to `httpx.URL` whole, and so does every URL when httpx's internals are not the
ones this was written against. `get_request` then makes the `httpx.Request` httpx makes
of the same method, URL and headers (a Host header first, unless given; an empty body,
read), without the checks for a body a GET never has, and with the client's headers
taken as httpx keeps them (imgflow/engine/transport/headers.py).
"""

from __future__ import annotations

import httpx

from imgflow.engine.transport.headers import with_host

try:
    from httpx import _urlparse as _parse

    _PARTS = (
        _parse.URL_REGEX,
        _parse.MAX_URL_LENGTH,
        _parse.validate_path,
        _parse.normalize_path,
        _parse.quote,
        _parse.PATH_SAFE,
        _parse.QUERY_SAFE,
        _parse.FRAG_SAFE,
    )
    _FAST = isinstance(httpx.URL("http://h/")._uri_reference, _parse.ParseResult)
except (ImportError, AttributeError):  # pragma: no cover - another httpx
    _FAST = False

from typing import Any

# Origins kept (scheme and authority as written): a run has one per host it reads.
ORIGINS_KEPT = 4096
_origins: dict[str, _parse.ParseResult] = {}


def request_url(url: str) -> httpx.URL:
    """`httpx.URL(url)`, with the origin's part parsed once per origin."""
    if not _FAST or len(url) > _parse.MAX_URL_LENGTH or not (url.isascii() and url.isprintable()):
        return httpx.URL(url)
    match = _parse.URL_REGEX.match(url)
    if match is None or not match["scheme"] or not match["authority"]:
        return httpx.URL(url)
    prefix = url[: match.end("authority")]
    origin = _origins.get(prefix)
    try:
        if origin is None:
            origin = httpx.URL(prefix)._uri_reference
            if len(_origins) >= ORIGINS_KEPT:
                _origins.clear()
            _origins[prefix] = origin
        path, query, fragment = match["path"], match["query"], match["fragment"]
        # As httpx's urlparse (a scheme is there, so the path is normalised).
        authority = origin.userinfo != "" or origin.host != "" or origin.port is not None
        _parse.validate_path(path, has_scheme=True, has_authority=authority)
        parsed = origin._replace(
            path=_parse.quote(_parse.normalize_path(path), safe=_parse.PATH_SAFE),
            query=None if query is None else _parse.quote(query, safe=_parse.QUERY_SAFE),
            fragment=None if fragment is None else _parse.quote(fragment, safe=_parse.FRAG_SAFE),
        )
    except httpx.InvalidURL:
        return httpx.URL(url)  # its own error, raised by its own parse
    built = httpx.URL.__new__(httpx.URL)
    built._uri_reference = parsed
    return built


_EMPTY = httpx.ByteStream(b"")


def get_request(url: str, headers: httpx.Headers, extensions: dict[str, Any]) -> httpx.Request:
    """`httpx.Request("GET", url, headers=headers, extensions=extensions)`, for less."""
    parsed = request_url(url)
    request = httpx.Request("GET", parsed, extensions=extensions, stream=_EMPTY)
    request.headers = with_host(headers, parsed.netloc) if parsed.host else headers.copy()
    request.read()
    return request
