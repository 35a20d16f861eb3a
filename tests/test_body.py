"""Bodies as real servers send them: content codings, real file headers, empty bodies, and
bodies streamed into the store (nothing published until complete and checked)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import brotli
import pytest
from support.faultserver import FaultServer, Ok, Short
from support.settings import quick_fetch
from test_sniff import BINARIES, SVG_BODY

from imgflow.demo.images import make_gif, make_png
from imgflow.engine import loop as engine_loop
from imgflow.engine import messages
from imgflow.engine.batch import run_batch
from imgflow.engine.fetch import Fetcher
from imgflow.engine.outcome import Fetched, FetchFailure
from imgflow.engine.plan import item_for
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.engine.settings import FetchConfig
from imgflow.local.store import FileStore, FileWriter

try:
    from compression import zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from backports import zstd  # type: ignore[no-redef,unused-ignore]

GIF = make_gif("ad")
FAST = quick_fetch(
    timeout=2.0, connect_timeout=1.0, total_timeout=10.0, retries=1, max_bytes=8 * 1024 * 1024
)

# Illustrator's SVG export: a prolog of over 1 KB before the first element.
ILLUSTRATOR_PROLOG = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b"<!-- Generator: Adobe Illustrator 24.0.0, SVG Export Plug-In . SVG Version: 6.00 "
    b"Build 0)  -->\n"
    b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [\n'
    + b"".join(
        b'\t<!ENTITY ns_%s "http://ns.adobe.com/%s/1.0/">\n' % (name, name.title())
        for name in (
            b"extend",
            b"ai",
            b"graphs",
            b"vars",
            b"imrep",
            b"sfw",
            b"custom",
            b"adobe_xpath",
            b"flows",
            b"x",
            b"pdf",
            b"xmp",
            b"layers",
            b"swatches",
            b"styles",
            b"symbols",
        )
    )
    + b"]>\n"
)
assert len(ILLUSTRATOR_PROLOG) > 1024

SVGS = {
    "illustrator": ILLUSTRATOR_PROLOG + SVG_BODY,
    "bom": b"\xef\xbb\xbf" + SVG_BODY,
    "comment": b"<!-- icon set v2 -->\n" + SVG_BODY,
    "licence": b"<?xml version='1.0'?>\n<!--\n"
    + b"MIT licence text. " * 120
    + b"\n-->\n"
    + SVG_BODY,
}


@pytest.fixture(params=["imgflow", "httpx"])
def settings(request: pytest.FixtureRequest) -> FetchConfig:
    return dataclasses.replace(FAST, transport=request.param)


def fetch(settings: FetchConfig, url: str) -> Fetched | FetchFailure:
    async def go() -> Fetched | FetchFailure:
        async with Fetcher(settings, max_connections=4) as fetcher:
            return await fetcher.fetch(url)

    return engine_loop.run(go())


@pytest.mark.parametrize("name", sorted(SVGS))
def test_real_world_svgs_are_fetched(
    fault_server: FaultServer, settings: FetchConfig, name: str
) -> None:
    fault_server.set("/i.svg", Ok(SVGS[name], content_type="image/svg+xml"))
    result = fetch(settings, fault_server.url("/i.svg"))
    assert isinstance(result, Fetched), result
    assert result.data == SVGS[name] and result.content_type == "image/svg+xml"


@pytest.mark.parametrize("name", ["jp2 box", "j2k codestream", "jxl codestream", "avif", "heif"])
def test_other_formats_are_fetched(fault_server: FaultServer, name: str) -> None:
    body, kind = BINARIES[name]
    fault_server.set("/f", Ok(body, content_type="application/octet-stream"))
    result = fetch(FAST, fault_server.url("/f"))
    assert isinstance(result, Fetched), result
    assert result.data == body and result.content_type == kind


def test_recorded_type_is_what_the_bytes_are(fault_server: FaultServer) -> None:
    fault_server.set("/wrong.png", Ok(GIF, content_type="image/png"))
    result = fetch(FAST, fault_server.url("/wrong.png"))
    assert isinstance(result, Fetched) and result.content_type == "image/gif"


def test_empty_body_says_so(fault_server: FaultServer, settings: FetchConfig) -> None:
    url = fault_server.url("/empty.gif")
    fault_server.set("/empty.gif", Ok(b""))
    result = fetch(settings, url)
    assert isinstance(result, FetchFailure)
    assert result.message == f"Empty body: {url}" and result.attempts == 1


def test_empty_body_without_content_check(fault_server: FaultServer) -> None:
    url = fault_server.url("/empty.gif")
    fault_server.set("/empty.gif", Ok(b"", chunked=True))
    result = fetch(dataclasses.replace(FAST, sniff=False), url)
    assert isinstance(result, FetchFailure) and result.message == f"Empty body: {url}"


CODINGS = {
    "br": lambda data: brotli.compress(data),
    "zstd": lambda data: zstd.compress(data),
    "deflate": lambda data: zlib.compress(data),
    "raw deflate": lambda data: zlib.compress(data, wbits=-15),
    "gzip": lambda data: gzip.compress(data),
}


@pytest.mark.parametrize("name", sorted(CODINGS))
def test_encoded_bodies_are_decoded(
    fault_server: FaultServer, settings: FetchConfig, name: str
) -> None:
    png = make_png("x", 64)
    coding = name.split()[-1]
    body = CODINGS[name](png)
    fault_server.set(
        "/e.png", Ok(body, content_type="image/png", headers={"Content-Encoding": coding})
    )
    result = fetch(settings, fault_server.url("/e.png"))
    assert isinstance(result, Fetched), result
    assert result.data == png


def test_what_is_decoded_is_advertised(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/a.gif", Ok(GIF))
    assert isinstance(fetch(settings, fault_server.url("/a.gif")), Fetched)
    sent = fault_server.requests[-1].headers["accept-encoding"]
    assert [c.strip() for c in sent.split(",")] == ["gzip", "deflate", "br", "zstd"]


@pytest.mark.parametrize("coding", ["gzip, gzip", "br, gzip", "gzip,deflate"])
def test_stacked_codings_are_refused(
    fault_server: FaultServer, settings: FetchConfig, coding: str
) -> None:
    url = fault_server.url("/s.gif")
    fault_server.set(
        "/s.gif", Ok(gzip.compress(gzip.compress(GIF)), headers={"Content-Encoding": coding})
    )
    result = fetch(settings, url)
    assert isinstance(result, FetchFailure)
    assert result.message.startswith(f"Bad response: {url} (stacked content codings")
    assert result.attempts == 1


def test_unknown_coding_is_refused(fault_server: FaultServer) -> None:
    url = fault_server.url("/c.gif")
    fault_server.set("/c.gif", Ok(GIF, headers={"Content-Encoding": "compress"}))
    result = fetch(FAST, url)
    assert isinstance(result, FetchFailure)
    assert result.message == f"Bad response: {url} (unsupported content coding 'compress')"


def test_corrupt_coding_is_a_bad_response(fault_server: FaultServer, settings: FetchConfig) -> None:
    url = fault_server.url("/bad.gif")
    fault_server.set(
        "/bad.gif", Ok(b"\x1f\x8bnot gzip at all", headers={"Content-Encoding": "gzip"})
    )
    result = fetch(settings, url)
    assert isinstance(result, FetchFailure) and result.message.startswith(f"Bad response: {url}")


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_bombs_stop_at_the_cap(fault_server: FaultServer, coding: str) -> None:
    """20 MB of zeros after a GIF header, compressed to a few KB, against a 1 MB cap."""
    bomb = CODINGS[coding](GIF + b"\0" * (20 * 1024 * 1024))
    assert len(bomb) < 100_000
    fault_server.set("/bomb.gif", Ok(bomb, headers={"Content-Encoding": coding}))
    result = fetch(dataclasses.replace(FAST, max_bytes=1024 * 1024), fault_server.url("/bomb.gif"))
    assert isinstance(result, FetchFailure)
    assert result.message.endswith(f"(over {1024 * 1024} bytes)")
    assert result.message.startswith(messages.TOO_LARGE)


# -- streaming into the store ----------------------------------------------------------------


class CountingStore(FileStore):
    """A FileStore over `folder`/images and `folder`/tmp that counts the writers it opened."""

    opened = 0

    def __init__(self, folder: Path, *, fsync: bool) -> None:
        self.images_dir, self.tmp_dir = folder / "images", folder / "tmp"
        self.images_dir.mkdir()
        self.tmp_dir.mkdir()
        self._fds = [
            os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in (self.images_dir, self.tmp_dir)
        ]
        super().__init__(self._fds[0], self._fds[1], fsync=fsync)

    def open(self, key: str) -> FileWriter:
        self.opened += 1
        return super().open(key)

    def path_of(self, key: str) -> Path:
        return self.images_dir / key

    def close(self) -> None:
        super().close()
        os.close(self._fds[1])


def run(
    server: FaultServer,
    paths: list[str],
    tmp_path: Path,
    *,
    fsync: bool,
    max_bytes: int = FAST.max_bytes,
) -> tuple[list[ResultRecord], CountingStore]:
    store = CountingStore(tmp_path, fsync=fsync)
    settings = dataclasses.replace(FAST, max_bytes=max_bytes, retries=0)
    items = [item_for(server.base_url, p) for p in paths]

    async def go() -> list[ResultRecord]:
        with ThreadPoolExecutor(2) as pool:
            async with Fetcher(settings, max_connections=4) as fetcher:
                return await run_batch(
                    items, fetcher=fetcher, store=store, concurrency=4, executor=pool
                )

    try:
        return engine_loop.run(go()), store
    finally:
        store.close()


@pytest.mark.parametrize("fsync", [True, False])
def test_large_bodies_stream_into_the_store(
    fault_server: FaultServer, tmp_path: Path, fsync: bool
) -> None:
    big = make_png("big", target_bytes=3 * 1024 * 1024 + 7)
    small = make_gif("ad")
    fault_server.set("/big.png", Ok(big, content_type="image/png", chunked=True))
    fault_server.set("/big.gz.png", Ok(big, content_type="image/png", gzip=True))
    fault_server.set("/small.gif", Ok(small))
    records, store = run(
        fault_server, ["big.png", "big.gz.png", "small.gif"], tmp_path, fsync=fsync
    )
    for record, body in zip(records, [big, big, small], strict=True):
        assert record.outcome is Outcome.STORED, record
        assert record.key is not None
        assert store.path_of(record.key).read_bytes() == body
        assert record.bytes == len(body) and record.sha256 == hashlib.sha256(body).hexdigest()
    assert list(store.tmp_dir.iterdir()) == []


def test_a_body_cut_short_leaves_nothing(fault_server: FaultServer, tmp_path: Path) -> None:
    """A body that ends after 2 MB of 3: no file at the key, no part file left in tmp."""
    body = GIF + b"\0" * (2 * 1024 * 1024)
    fault_server.set("/cut.gif", Short(body, claimed_length=3 * 1024 * 1024))
    records, store = run(fault_server, ["cut.gif"], tmp_path, fsync=False)
    assert records[0].outcome is Outcome.FAILED
    assert store.opened == 1  # the body was streaming into the store when it broke
    assert not (any(p.is_file() for p in store.images_dir.rglob("*")))
    assert list(store.tmp_dir.iterdir()) == []


def test_too_large_and_not_images_never_reach_the_store(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.set("/html.gif", Ok(b"<html>" + b"x" * 100_000, content_type="image/gif"))
    fault_server.set("/huge.gif", Ok(GIF + b"\0" * 3_000_000, chunked=True))
    records, store = run(
        fault_server, ["html.gif", "huge.gif"], tmp_path, fsync=True, max_bytes=2_000_000
    )
    assert [r.error.split(":")[0] for r in records if r.error] == [
        messages.NOT_AN_IMAGE,
        messages.TOO_LARGE,
    ]
    assert list(store.tmp_dir.iterdir()) == []
    assert not (any(p.is_file() for p in store.images_dir.rglob("*")))


def test_file_writer_publishes_only_on_commit(tmp_path: Path) -> None:
    store = CountingStore(tmp_path, fsync=True)
    writer = store.open("a/b.gif")
    writer.write(GIF[:10])
    writer.write(GIF[10:])
    assert not store.path_of("a/b.gif").exists()
    writer.commit("image/gif")
    assert store.path_of("a/b.gif").read_bytes() == GIF
    writer.abort()  # a no-op after commit
    assert store.path_of("a/b.gif").read_bytes() == GIF
    other = store.open("a/b.gif")
    other.write(b"partial")
    other.abort()
    assert store.path_of("a/b.gif").read_bytes() == GIF
    assert list(store.tmp_dir.iterdir()) == []
    with pytest.raises(OSError):
        other.write(b"more")
    store.close()
