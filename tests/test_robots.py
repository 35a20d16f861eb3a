"""robots.txt (RFC 9309): read before a host's first image, once per run, and obeyed.

Loopback servers (tests/support/rawserver.py) log every request they receive: the tests
assert what the server saw, not what imgflow says it did.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from support.cli_run import FAST_ENV, run_cli
from support.rawserver import RawServer, ok

from imgflow.demo.images import make_gif
from imgflow.engine import loop as engine_loop
from imgflow.engine.fetch import Fetcher
from imgflow.engine.outcome import Excluded, Fetched, FetchFailure, Result
from imgflow.engine.robots import Rules, parse
from imgflow.engine.settings import FetchConfig

GIF = make_gif("robots")
ON = FetchConfig(robots=True, retries=0, timeout=2, connect_timeout=2, backoff_base=0.01)


def robots(text: str | bytes, status: str = "200 OK", ctype: str = "text/plain") -> bytes:
    body = text.encode() if isinstance(text, str) else text
    head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def fetch_all(
    server: RawServer, paths: Sequence[str], settings: FetchConfig = ON, concurrency: int = 4
) -> dict[str, Result]:
    async def go() -> dict[str, Result]:
        async with Fetcher(settings, max_connections=concurrency, env={}) as fetcher:
            results = await asyncio.gather(*(fetcher.fetch(server.url(p)) for p in paths))
        return dict(zip(paths, results, strict=True))

    return engine_loop.run(go())


def images(server: RawServer, *paths: str) -> None:
    for path in paths:
        server.set(path, ok(GIF))


def seen(server: RawServer) -> list[str]:
    return [path for _, path in server.requests]


# -- the rules, as protego reads them ------------------------------------------------------

RULES = """\
User-agent: *
Disallow: /

User-agent: imgflow
Disallow: /private/
Allow: /private/open/
Disallow: /*.png$
Disallow: /tmp*/x
"""


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/a.gif", True),  # imgflow's group, not "*", applies
        ("/private/a.gif", False),
        ("/private/open/a.gif", True),  # the longest match wins
        ("/b.png", False),  # "$": ends with .png
        ("/b.png?x=1", True),  # ... and nothing after it
        ("/tmp123/x/a.gif", False),  # "*" within a path
    ],
)
def test_groups_longest_match_wildcards_and_end(path: str, allowed: bool) -> None:
    rules = Rules(parse(RULES.encode()))
    assert (rules.excluded(f"http://h{path}") is None) is allowed


def test_the_star_group_applies_when_none_names_imgflow() -> None:
    rules = Rules(parse(b"User-agent: otherbot\nDisallow: /\n\nUser-agent: *\nDisallow: /x/\n"))
    assert rules.excluded("http://h/a.gif") is None
    assert isinstance(rules.excluded("http://h/x/a.gif"), Excluded)


# -- against a server ----------------------------------------------------------------------


def test_robots_is_read_first_and_once_and_a_disallowed_path_is_never_requested() -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots("User-agent: *\nDisallow: /private/\n"))
        paths = [f"/{i}.gif" for i in range(6)] + ["/private/a.gif", "/private/b.gif"]
        images(server, *paths)
        results = fetch_all(server, paths)
    log = seen(server)
    assert log[0] == "/robots.txt" and log.count("/robots.txt") == 1
    assert not any(p.startswith("/private/") for p in log)
    assert all(isinstance(results[f"/{i}.gif"], Fetched) for i in range(6))
    excluded = results["/private/a.gif"]
    assert isinstance(excluded, Excluded)
    assert excluded.message == f"Disallowed by robots.txt: {server.url('/private/a.gif')}"


def test_robots_txt_of_two_origins_each_rule_their_own_urls() -> None:
    # The rules of the origin asked last are reused without a parse: only for its URLs.
    async def go(first: RawServer, second: RawServer) -> list[Result]:
        async with Fetcher(ON, max_connections=4, env={}) as fetcher:
            return [
                await fetcher.fetch(url)
                for url in (
                    first.url("/a.gif"),
                    second.url("/private/a.gif"),
                    first.url("/private/a.gif"),
                    second.url("/a.gif"),
                )
            ]

    with RawServer() as first, RawServer() as second:
        first.set("/robots.txt", robots("User-agent: *\nDisallow: /private/\n"))
        second.set("/robots.txt", robots("User-agent: *\nDisallow: /a.gif\n"))
        for server in (first, second):
            images(server, "/a.gif", "/private/a.gif")
        results = engine_loop.run(go(first, second))
    assert [type(r) for r in results] == [Fetched, Fetched, Excluded, Excluded]
    assert seen(first) == ["/robots.txt", "/a.gif"]
    assert seen(second) == ["/robots.txt", "/private/a.gif"]


def test_a_404_allows_all() -> None:
    with RawServer() as server:  # unknown paths answer 404
        images(server, "/private/a.gif")
        results = fetch_all(server, ["/private/a.gif"])
    assert isinstance(results["/private/a.gif"], Fetched)
    assert seen(server) == ["/robots.txt", "/private/a.gif"]


@pytest.mark.parametrize("status", ["500 Internal Server Error", "503 Service Unavailable"])
def test_a_5xx_disallows_the_whole_host_for_the_run(status: str) -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots("", status))
        images(server, "/a.gif", "/b.gif")
        results = fetch_all(server, ["/a.gif", "/b.gif"])
    assert seen(server) == ["/robots.txt"]
    for result in results.values():  # a failure, not excluded: `retry` asks again later
        assert isinstance(result, FetchFailure) and result.attempts == 0
        assert "Disallowed by robots.txt" in result.message and status[:3] in result.message


def test_a_robots_txt_that_never_answers_disallows_all() -> None:
    with RawServer() as server:
        server.set("/robots.txt", b"")  # the head is read, nothing is ever sent
        images(server, "/a.gif")
        results = fetch_all(server, ["/a.gif"], FetchConfig(robots=True, retries=0, timeout=0.5))
    assert seen(server) == ["/robots.txt"]
    result = results["/a.gif"]
    assert isinstance(result, FetchFailure) and "no answer" in result.message


def test_a_host_that_refuses_robots_txt_fails_its_image_unrequested_and_says_so() -> None:
    """The image fails as its own request would have; the line says where it was met."""
    with RawServer() as server:
        url = server.url("/a.gif")
    (result,) = engine_loop.run(_fetch_one(url))  # the server is gone: connection refused
    assert isinstance(result, FetchFailure) and result.attempts == 0
    assert "met reading robots.txt first; the image was not requested" in result.message


async def _fetch_one(url: str) -> list[Result]:
    async with Fetcher(ON, max_connections=1, env={}) as fetcher:
        return [await fetcher.fetch(url)]


def test_only_the_first_500_kib_are_read() -> None:
    early = "User-agent: *\nDisallow: /early/\n"
    padding = "# " + "x" * 1000 + "\n"
    late = "Disallow: /late/\n"
    text = early + padding * (600 * 1024 // len(padding)) + late  # about 600 KiB
    with RawServer() as server:
        server.set("/robots.txt", robots(text))
        images(server, "/early/a.gif", "/late/a.gif")
        results = fetch_all(server, ["/early/a.gif", "/late/a.gif"])
    assert isinstance(results["/early/a.gif"], Excluded)
    assert isinstance(results["/late/a.gif"], Fetched)  # its rule lies past 500 KiB


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (bytes(range(256)) * 40, "application/octet-stream"),
        (b"<html><body><h1>Welcome</h1><p>Disallow nothing</p></body></html>", "text/html"),
    ],
)
def test_binary_or_html_robots_has_no_rules(body: bytes, ctype: str) -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots(body, ctype=ctype))
        images(server, "/a.gif")
        results = fetch_all(server, ["/a.gif"])
    assert isinstance(results["/a.gif"], Fetched)


def redirects(server: RawServer, hops: int) -> None:
    """/robots.txt redirects `hops` times; the last hop's file disallows /a.gif."""
    names = ["/robots.txt"] + [f"/r{i}.txt" for i in range(1, hops + 1)]
    for here, there in itertools.pairwise(names):
        server.set(
            here, f"HTTP/1.1 301 Moved\r\nLocation: {there}\r\nContent-Length: 0\r\n\r\n".encode()
        )
    server.set(names[-1], robots("User-agent: *\nDisallow: /a.gif\n"))


def test_five_redirects_are_followed() -> None:
    with RawServer() as server:
        redirects(server, 5)
        images(server, "/a.gif")
        results = fetch_all(server, ["/a.gif"])
    assert isinstance(results["/a.gif"], Excluded)
    assert "/a.gif" not in seen(server)


def test_a_sixth_redirect_makes_robots_unavailable() -> None:
    with RawServer() as server:
        redirects(server, 6)
        images(server, "/a.gif")
        results = fetch_all(server, ["/a.gif"])
    assert isinstance(results["/a.gif"], Fetched)  # unavailable: allow all (RFC 9309)
    assert "/r6.txt" not in seen(server)


def test_crawl_delay_spaces_requests_by_the_servers_clock() -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots("User-agent: *\nCrawl-delay: 1\n"))
        paths = ["/a.gif", "/b.gif", "/c.gif"]
        images(server, *paths)
        results = fetch_all(server, paths, concurrency=3)
    assert all(isinstance(r, Fetched) for r in results.values())
    times = [t for (_, path), t in zip(server.requests, server.times, strict=True) if path in paths]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 2 and min(gaps) >= 0.99, gaps


def test_a_redirect_to_a_disallowed_path_is_not_followed() -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots("User-agent: *\nDisallow: /private/\n"))
        server.set(
            "/a.gif", b"HTTP/1.1 302 Found\r\nLocation: /private/a.gif\r\nContent-Length: 0\r\n\r\n"
        )
        images(server, "/private/a.gif")
        results = fetch_all(server, ["/a.gif"])
    assert isinstance(results["/a.gif"], Excluded)
    assert "/private/a.gif" not in seen(server)


# -- end to end: the CLI as a real process -------------------------------------------------


def cli_run(  # type: ignore[no-untyped-def]
    tmp_path: Path,
    server: RawServer,
    paths: list[str],
    *flags: str,
    config: str = "",
    env: dict[str, str] | None = None,
):
    (tmp_path / "paths.txt").write_text("\n".join(paths) + "\n")
    (tmp_path / "imgflow.yaml").write_text(config)
    return run_cli(
        "run", "--base-url", server.url("/"), "--paths-file", "paths.txt", "-o", "json",
        "--config", "imgflow.yaml", *flags, cwd=tmp_path, env={**FAST_ENV, **(env or {})},
        drop=("IMGFLOW_ETIQUETTE_CONTACT",),  # (the file's etiquette, or none, applies)
    )  # fmt: skip


def test_robots_is_on_by_default_and_exclusions_are_counted_apart(tmp_path: Path) -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots("User-agent: imgflow\nDisallow: /no/\n"))
        images(server, "/a.gif", "/no/b.gif")
        done = cli_run(tmp_path, server, ["a.gif", "no/b.gif"])
    assert done.returncode == 0, done.stderr  # an exclusion is not a failure
    doc = json.loads(done.stdout)
    assert doc["summary"]["excluded"] == 1 and doc["summary"]["failed"] == 0
    assert seen(server) == ["/robots.txt", "/a.gif"]
    assert "etiquette.contact is not set" in done.stderr
    assert not list((tmp_path / "imgflow-data").rglob("b.gif"))
    status = run_cli("status", "-o", "json", cwd=tmp_path, env=FAST_ENV)
    assert '"excluded": 1' in status.stdout, status.stdout
    report = run_cli("report", "--no-thumbnails", "-o", "json", cwd=tmp_path, env=FAST_ENV)
    page = Path(json.loads(report.stdout)["report"]).read_text()
    assert 'id="excluded"' in page and "Disallowed by robots.txt" in page
    assert page.count("no/b.gif") >= 1 and "Failures (0)" in page
    again = run_cli("retry", str(doc["run"]), "-o", "json", cwd=tmp_path, env=FAST_ENV)
    assert json.loads(again.stdout)["retried"] == 0, again.stdout  # never retried


def test_ignore_robots_fetches_disallowed_paths_and_is_said(tmp_path: Path) -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots("User-agent: *\nDisallow: /\n"))
        images(server, "/a.gif")
        done = cli_run(tmp_path, server, ["a.gif"], "--ignore-robots")
    assert done.returncode == 0, done.stderr
    assert seen(server) == ["/a.gif"]
    assert "--ignore-robots" in done.stderr.splitlines()[-1]


def test_the_user_agent_names_imgflow_and_the_contact(tmp_path: Path) -> None:
    config = "etiquette:\n  contact: https://example.org/crawl\n"
    with RawServer() as server:
        images(server, "/a.gif")
        done = cli_run(tmp_path, server, ["a.gif"], config=config)
    assert done.returncode == 0, done.stderr
    agents = {
        line
        for h in server.heads
        for line in h.decode().splitlines()
        if line.lower().startswith("user-agent:")
    }
    assert len(agents) == 1
    agent = agents.pop()
    assert "imgflow/" in agent and "(+https://example.org/crawl)" in agent
    assert "contact is not set" not in done.stderr


def test_a_browser_user_agent_is_warned_of(tmp_path: Path) -> None:
    with RawServer() as server:
        images(server, "/a.gif")
        ua = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
        done = cli_run(tmp_path, server, ["a.gif"], "--user-agent", ua)
    assert done.returncode == 0 and "poses as a browser" in done.stderr


@pytest.mark.parametrize("contact", ["nobody", "ftp://x.org/", "a b@c.org"])
def test_a_bad_contact_is_one_line_and_exit_2(tmp_path: Path, contact: str) -> None:
    with RawServer() as server:
        done = cli_run(tmp_path, server, ["a.gif"], config=f"etiquette:\n  contact: '{contact}'\n")
        assert server.requests == []
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "etiquette.contact" in lines[0], done.stderr
    assert not (tmp_path / "imgflow-data").exists()


def test_a_long_crawl_delay_is_capped_with_a_warning(tmp_path: Path) -> None:
    config = "etiquette:\n  max_crawl_delay: 0.5\n"
    with RawServer() as server:
        server.set("/robots.txt", robots("User-agent: *\nCrawl-delay: 60\n"))
        images(server, "/a.gif", "/b.gif", "/c.gif")
        done = cli_run(tmp_path, server, ["a.gif", "b.gif", "c.gif"], config=config)
    assert done.returncode == 0, done.stderr
    assert "Crawl-delay of 60s" in done.stderr and "etiquette.max_crawl_delay" in done.stderr
    times = [
        t for (_, p), t in zip(server.requests, server.times, strict=True) if p != "/robots.txt"
    ]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 2 and min(gaps) >= 0.49 and max(gaps) < 5, gaps
