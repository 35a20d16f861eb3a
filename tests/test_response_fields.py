"""The response's headers as the fetcher reads them (`_fields`, one dict per response): the
same values httpx's own look-ups give, for every name (engine/fetch.py)."""

from __future__ import annotations

import httpx
import pytest

from imgflow.engine.fetch import _declared_size, _fields, _validators

HEADERS: list[list[tuple[bytes, bytes]]] = [
    [  # nginx's, for a small image
        (b"Server", b"nginx/1.22.1"),
        (b"Date", b"Fri, 04 Dec 2026 12:52:39 GMT"),
        (b"Content-Type", b"image/png"),
        (b"Content-Length", b"12345"),
        (b"Last-Modified", b"Fri, 04 Dec 2026 12:52:39 GMT"),
        (b"Connection", b"keep-alive"),
        (b"ETag", b'"abc-3039"'),
        (b"Accept-Ranges", b"bytes"),
    ],
    [  # repeated names, in any case, values with spaces
        (b"content-encoding", b"gzip"),
        (b"Content-Encoding", b" br "),
        (b"X-Robots-Tag", b"noindex"),
        (b"x-robots-tag", b"otherbot: noimageai"),
        (b"Content-Length", b"12"),
        (b"ETAG", b'  W/"x"  '),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ],
    [  # not ASCII: httpx decodes every value as UTF-8, or else Latin-1
        (b"Content-Type", b"image/gif"),
        (b"Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT \u00e9".encode()),
        (b"Content-Length", b"-1"),
    ],
    [(b"Content-Type", b"image/jpeg"), (b"ETag", b"caf\xe9"), (b"Content-Length", b"1e3")],
    [],
]
NAMES = [
    "content-type",
    "content-length",
    "content-encoding",
    "etag",
    "last-modified",
    "x-robots-tag",
    "tdm-reservation",
    "set-cookie",
    "server",
    "absent",
]


@pytest.mark.parametrize("raw", HEADERS)
def test_a_response_s_fields_are_what_httpx_s_header_look_ups_give(
    raw: list[tuple[bytes, bytes]],
) -> None:
    response = httpx.Response(200, headers=raw)
    fields = _fields(response)
    for name in NAMES:
        assert fields.get(name) == response.headers.get(name), name
        assert (name in fields) == (name in response.headers), name
    assert _validators(response, fields=fields) == _validators(response)


def test_the_declared_size_is_the_length_of_an_unencoded_body_only() -> None:
    def size(*raw: tuple[bytes, bytes]) -> int | None:
        return _declared_size(_fields(httpx.Response(200, headers=list(raw))))

    assert size((b"Content-Length", b"12")) == 12
    assert size((b"Content-Length", b"12"), (b"Content-Encoding", b" Identity ")) == 12
    assert size((b"Content-Length", b"12"), (b"Content-Encoding", b"gzip")) is None
    assert size((b"Content-Length", b"x12")) is None
    assert size((b"Content-Type", b"image/png")) is None
