"""Compressed bodies whose framing is whole but whose compressed stream stops early fail as
"Incomplete body", never stored as an image; a multi-member gzip body is decoded whole.

Served byte for byte by a raw-socket server, under Content-Length and under chunked framing.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator

import brotli
import pytest
from support.rawserver import RawServer

from imgflow.engine import loop as engine_loop
from imgflow.engine import messages
from imgflow.engine.body import MemorySink
from imgflow.engine.fetch import Fetcher
from imgflow.engine.outcome import Fetched, FetchFailure
from imgflow.engine.settings import FetchConfig

try:
    from compression import zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from backports import zstd  # type: ignore[no-redef,unused-ignore]

SETTINGS = FetchConfig(
    timeout=2.0, connect_timeout=1.0, total_timeout=5.0, retries=1, backoff_base=0.01,
    backoff_max=0.02, max_bytes=1 << 20,
)  # fmt: skip
# An image large enough that a cut stream still decodes thousands of bytes (a PNG-like body:
# the magic, then bytes that compress but not to nothing).
IMAGE = b"\x89PNG\r\n\x1a\n" + b"".join(b"%06d-imgflow-" % n for n in range(900))


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


CODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "deflate-zlib": ("deflate", zlib.compress),
    "deflate-raw": ("deflate", _raw_deflate),
    "br": ("br", brotli.compress),
    "zstd": ("zstd", zstd.compress),
}


def _head(coding: str, framing: str, length: int) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Encoding: %s\r\n" % (
        coding.encode()
    )
    if framing == "chunked":
        return head + b"Transfer-Encoding: chunked\r\n\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % length


def _reply(coding: str, body: bytes, framing: str) -> bytes:
    """A response whose framing is exactly right for `body`."""
    if framing == "chunked":
        half = len(body) // 2
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]) if p)
        return _head(coding, framing, 0) + chunks + b"0\r\n\r\n"
    return _head(coding, framing, len(body)) + body


@pytest.fixture
def raw() -> Iterator[RawServer]:
    with RawServer() as server:
        yield server


def _fetch(url: str) -> Fetched | FetchFailure:
    async def go() -> Fetched | FetchFailure:
        async with Fetcher(SETTINGS, max_connections=1) as fetcher:
            result = await fetcher.fetch(url)
            assert isinstance(result, Fetched | FetchFailure)
            return result

    return engine_loop.run(go())


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("name", sorted(CODINGS))
def test_a_cut_compressed_stream_is_an_incomplete_body(
    raw: RawServer, name: str, framing: str
) -> None:
    coding, compress = CODINGS[name]
    whole = compress(IMAGE)
    cut = whole[: len(whole) * 2 // 3]
    # The cut stream still decodes to a good part of the image: the old code stored that.
    raw.set("/cut.png", _reply(coding, cut, framing))
    result = _fetch(raw.url("/cut.png"))
    assert isinstance(result, FetchFailure), (name, framing)
    assert result.message.startswith(f"{messages.INCOMPLETE}: {raw.url('/cut.png')} ("), result


@pytest.mark.parametrize("name", sorted(CODINGS))
def test_a_whole_compressed_stream_is_stored_whole(raw: RawServer, name: str) -> None:
    coding, compress = CODINGS[name]
    raw.set("/whole.png", _reply(coding, compress(IMAGE), "chunked"))
    result = _fetch(raw.url("/whole.png"))
    assert isinstance(result, Fetched), result
    assert isinstance(result.body, MemorySink) and result.body.data == IMAGE


def test_a_gzip_body_cut_by_a_short_content_length_is_incomplete(raw: RawServer) -> None:
    whole = gzip.compress(IMAGE)
    short = len(whole) - 100
    raw.set("/short.png", _head("gzip", "length", short) + whole, close=True)
    result = _fetch(raw.url("/short.png"))
    assert isinstance(result, FetchFailure), result
    assert result.message.startswith(f"{messages.INCOMPLETE}: "), result


def test_every_member_of_a_multi_member_gzip_body_is_decoded(raw: RawServer) -> None:
    # RFC 1952 2.2: a gzip file is a series of members; gzip -d decodes them all.
    half = len(IMAGE) // 2
    body = gzip.compress(IMAGE[:half]) + gzip.compress(IMAGE[half:])
    raw.set("/members.png", _reply("gzip", body, "length"))
    result = _fetch(raw.url("/members.png"))
    assert isinstance(result, Fetched), result
    assert isinstance(result.body, MemorySink) and result.body.data == IMAGE


def test_a_cut_second_gzip_member_is_an_incomplete_body(raw: RawServer) -> None:
    half = len(IMAGE) // 2
    second = gzip.compress(IMAGE[half:])
    body = gzip.compress(IMAGE[:half]) + second[: len(second) // 2]
    raw.set("/members.png", _reply("gzip", body, "chunked"))
    result = _fetch(raw.url("/members.png"))
    assert isinstance(result, FetchFailure), result
    assert result.message.startswith(f"{messages.INCOMPLETE}: "), result
