"""Opt-out headers (X-Robots-Tag, tdm-reservation): read before the body, which is left
unread; nothing is stored. The loopback server says whether its reply went out whole."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from support.cli_run import FAST_ENV, run_cli
from support.rawserver import RawServer, ok

from imgflow.demo.images import make_gif
from imgflow.engine import loop as engine_loop
from imgflow.engine.fetch import Fetcher
from imgflow.engine.opt_out import opted_out
from imgflow.engine.outcome import Excluded, Fetched, Result
from imgflow.engine.settings import DEFAULT_OPT_OUT, FetchConfig

GIF = make_gif("opt-out")
BIG = 32 * 1024 * 1024  # more than the socket buffers hold: a send cut short shows


def reply(header: str, size: int = BIG) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\n{header}\r\nContent-Length: {size}\r\n\r\n"
    )
    return head.encode() + GIF + bytes(size - len(GIF))


def fetch(server: RawServer, path: str, settings: FetchConfig) -> Result:
    async def go() -> Result:
        async with Fetcher(settings, max_connections=1, env={}) as fetcher:
            return await fetcher.fetch(server.url(path))

    return engine_loop.run(go())


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ("X-Robots-Tag: noai", "X-Robots-Tag: noai"),
        ("X-Robots-Tag: noimageai", "X-Robots-Tag: noimageai"),
        ("X-Robots-Tag: noindex, nofollow", "X-Robots-Tag: noindex"),
        ("X-Robots-Tag: noimageindex", "X-Robots-Tag: noimageindex"),
        ("X-Robots-Tag: noml", "X-Robots-Tag: noml"),
        ("X-Robots-Tag:   NoAI ,NOIMAGEAI  ", "X-Robots-Tag: noai"),
        ("x-robots-tag: imgflow:noai", "X-Robots-Tag: noai"),
        ("X-Robots-Tag: ImgFlow : noimageai", "X-Robots-Tag: noimageai"),
        ("X-Robots-Tag: none", "X-Robots-Tag: noindex"),
        ("tdm-reservation: 1", "tdm-reservation: 1"),
    ],
)
def test_an_opt_out_header_keeps_the_image_out_and_its_body_unread(header: str, named: str) -> None:
    with RawServer() as server:
        server.set("/a.gif", reply(header))
        result = fetch(server, "/a.gif", FetchConfig(retries=0))
    assert isinstance(result, Excluded), result
    assert result.message == f"Opted out ({named}): {server.url('/a.gif')}"
    assert "/a.gif" not in server.sent  # the server's send was cut: the body was not read


@pytest.mark.parametrize(
    "header",
    [
        "X-Robots-Tag: googlebot: noai",  # another crawler's scope
        "X-Robots-Tag: nofollow",
        "X-Robots-Tag: unavailable_after: 25 Jun 2030 15:00:00 PST",
        "tdm-reservation: 0",
    ],
)
def test_headers_that_do_not_opt_out(header: str) -> None:
    with RawServer() as server:
        server.set("/a.gif", reply(header, len(GIF)))
        result = fetch(server, "/a.gif", FetchConfig(retries=0))
    assert isinstance(result, Fetched), result


def test_an_empty_opt_out_list_turns_the_headers_off() -> None:
    headers = httpx.Headers({"X-Robots-Tag": "noai", "tdm-reservation": "1"})
    assert opted_out(headers, DEFAULT_OPT_OUT) is not None
    assert opted_out(headers, ()) is None
    assert opted_out(headers, ("noai",)) == "X-Robots-Tag: noai"


def test_ignore_robots_keeps_the_opt_out_headers(tmp_path: Path) -> None:
    with RawServer() as server:
        server.set("/robots.txt", ok(b"User-agent: *\nDisallow: /\n", "text/plain"))
        server.set("/a.gif", ok(GIF))
        server.set("/b.gif", reply("X-Robots-Tag: imgflow: noai"))
        (tmp_path / "paths.txt").write_text("a.gif\nb.gif\n")
        done = run_cli(
            "run", "--base-url", server.url("/"), "--paths-file", "paths.txt", "-o", "json",
            "--ignore-robots", cwd=tmp_path, env=FAST_ENV,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["summary"]["stored"] == 1 and doc["summary"]["excluded"] == 1
    stored = [p.name for p in (tmp_path / "imgflow-data").rglob("*.gif")]
    assert stored == ["a.gif"]
    assert "/b.gif" not in server.sent
    report = run_cli("status", cwd=tmp_path, env=FAST_ENV)
    assert "excluded" in report.stdout, report.stdout
