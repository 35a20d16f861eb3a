"""A GET request built for less (engine/transport/request.py): the very URL httpx.URL
makes of the same text (its origin parsed once), or the same error, and the very request
httpx.Request makes."""

from __future__ import annotations

import httpx
import pytest

from imgflow.engine.transport.headers import headers_of
from imgflow.engine.transport.request import get_request, request_url

URLS = [
    "http://127.0.0.1:8080/3f/3f9a1c2e07b4.png",
    "http://127.0.0.1:8080/3f/other.png",  # the same origin again: from the cache
    "HTTP://Example.COM/a/b.png",
    "https://example.com:443/x.jpg",
    "http://example.com:80/x.jpg",
    "http://user:pa%20ss@example.com/x.jpg",
    "http://[::1]:8080/x.gif",
    "http://example.com/a/./b/../c.png",
    "http://example.com/a/%2e%2e/b.png",
    "http://example.com/sp ace/ü.png",
    "http://example.com/caf%C3%A9.png?size=1&q=a b#frag ment",
    "http://example.com/x.png?",
    "http://example.com/x.png#",
    "http://example.com",
    "http://example.com?q=1",
    "http://xn--caf-dma.example/x.png",
    "http://café.example/x.png",
    "http://example.com/a\tb.png",
    "http://example.com:99999/x.png",
    "http://exa mple.com/x.png",
    "http://@/x.png",
    "http:///x.png",
    "//example.com/x.png",
    "/relative/x.png",
    "http://example.com/" + "a" * 70_000,
    "http://[::1/x.png",
    "http://example.com:port/x.png",
]


def _parsed(url: str) -> object:
    try:
        parsed = httpx.URL(url)
    except Exception as exc:  # the error httpx raises for this text
        return (type(exc), str(exc))
    return (parsed, parsed._uri_reference, parsed.raw_path, parsed.netloc, str(parsed))


def _ours(url: str) -> object:
    try:
        parsed = request_url(url)
    except Exception as exc:
        return (type(exc), str(exc))
    return (parsed, parsed._uri_reference, parsed.raw_path, parsed.netloc, str(parsed))


@pytest.mark.parametrize("url", URLS)
def test_a_request_url_is_what_httpx_makes_of_the_same_text(url: str) -> None:
    assert _ours(url) == _parsed(url)
    assert _ours(url) == _parsed(url)  # and again, its origin cached


CLIENT = [("User-Agent", "imgflow/1 (+x)"), ("Accept", "image/*"), ("Accept-Encoding", "br")]
HEADER_SETS = [
    CLIENT,
    [*CLIENT, ("If-None-Match", '"v1"'), ("If-Modified-Since", "Tue, 03 Nov 2026 10:00:00 GMT")],
    [*CLIENT, ("host", "other.example")],  # a Host of the user's: kept, none added
    [(b"User-Agent", b"imgflow"), (b"X-Note", "caf\u00e9".encode())],  # not ASCII
    [],
]


@pytest.mark.parametrize("headers", HEADER_SETS)
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/a.png", "https://Example.com:443/b c.png?x=1", "http://[::1]/c"]
)
def test_a_get_request_is_what_httpx_makes_of_the_same_url_and_headers(
    url: str, headers: list[tuple[str, str]] | list[tuple[bytes, bytes]]
) -> None:
    extensions = {"timeout": {"connect": 1.0, "read": 2.0}}
    given = httpx.Headers(headers)
    ours = get_request(url, given, extensions)
    theirs = httpx.Request("GET", url, headers=given, extensions=extensions)
    assert (ours.method, ours.url, ours.extensions) == (
        theirs.method,
        theirs.url,
        theirs.extensions,
    )
    assert ours.headers.raw == theirs.headers.raw
    assert ours.headers.encoding == theirs.headers.encoding
    assert list(ours.headers.items()) == list(theirs.headers.items())
    assert ours.content == theirs.content == b""
    assert given.raw == httpx.Headers(headers).raw  # the client's headers untouched
    ours.headers["Authorization"] = "x"  # a request's own headers: not the client's
    if "user-agent" in ours.headers:
        del ours.headers["user-agent"]
    assert given.raw == httpx.Headers(headers).raw


RESPONSE_HEADS = [
    [(b"Content-Type", b"image/png"), (b"Content-Length", b"12"), (b"ETag", b'"a"')],
    [(b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"Vary", b"Accept")],  # repeated
    [(b"Content-Type", b"image/png"), (b"X-Note", "caf\u00e9".encode())],  # UTF-8
    [(b"Content-Type", b"image/png"), (b"X-Note", b"caf\xe9")],  # Latin-1
    [],
]


@pytest.mark.parametrize("pairs", RESPONSE_HEADS)
def test_a_response_s_headers_are_what_httpx_makes_of_the_same_bytes(
    pairs: list[tuple[bytes, bytes]],
) -> None:
    ours = headers_of([(name, name.lower(), value) for name, value in pairs])
    theirs = httpx.Headers(pairs)
    assert ours.raw == theirs.raw
    assert ours.encoding == theirs.encoding
    assert ours.multi_items() == theirs.multi_items()
    assert list(ours.items()) == list(theirs.items())
    for name, _ in pairs:
        key = name.decode("latin-1").upper()
        assert ours.get_list(key) == theirs.get_list(key)
        assert ours.get(key) == theirs.get(key)
