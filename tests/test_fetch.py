"""The fetcher against a real scriptable server, on both transports (imgflow's and httpx's)."""

from __future__ import annotations

import dataclasses
import errno
import gzip
import re
import socket
import threading
from collections.abc import Callable

import pytest
from support.faultserver import (
    Delay,
    Drip,
    FaultServer,
    Ok,
    Redirect,
    Reset,
    Short,
    Stall,
    Status,
)
from support.settings import quick_fetch

from imgflow.demo.images import make_gif, make_png
from imgflow.engine import loop as engine_loop
from imgflow.engine import messages
from imgflow.engine.batch import run_batch
from imgflow.engine.failures import FailureKind
from imgflow.engine.fetch import Fetcher
from imgflow.engine.outcome import Fetched, FetchFailure, retry_after
from imgflow.engine.plan import item_for
from imgflow.engine.records import Outcome
from imgflow.engine.settings import FetchConfig
from imgflow.report.classify import classify

GIF = make_gif("ad")
FAST = quick_fetch(timeout=1.0, connect_timeout=0.5, total_timeout=2.0, retries=2, max_bytes=4096)


@pytest.fixture(params=["imgflow", "httpx"])
def settings(request: pytest.FixtureRequest) -> FetchConfig:
    return dataclasses.replace(FAST, transport=request.param)


def fetch(
    settings: FetchConfig, url: str, guard: Callable[[str], object] | None = None
) -> Fetched | FetchFailure:
    async def go() -> Fetched | FetchFailure:
        async def check(u: str) -> None:
            if guard is not None:
                guard(u)

        async with Fetcher(settings, max_connections=4, guard=check) as fetcher:
            return await fetcher.fetch(url)

    return engine_loop.run(go())


def test_ok(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/a/ad.gif", Ok(GIF))
    result = fetch(settings, fault_server.url("/a/ad.gif"))
    assert isinstance(result, Fetched)
    assert result.data == GIF and result.content_type == "image/gif" and result.attempts == 1


def test_chunked_and_gzip_bodies_are_decoded(
    fault_server: FaultServer, settings: FetchConfig
) -> None:
    png = make_png("x", 8)
    fault_server.set("/c.png", Ok(png, content_type="image/png", chunked=True, gzip=True))
    result = fetch(settings, fault_server.url("/c.png"))
    assert isinstance(result, Fetched) and result.data == png


def test_404_uses_the_original_message(fault_server: FaultServer, settings: FetchConfig) -> None:
    url = fault_server.url("/zz/zz.gif")
    result = fetch(settings, url)
    assert isinstance(result, FetchFailure)
    assert result.message == f"Could not find: {url}" and result.status_code == 404
    assert result.attempts == 1


def test_500_then_200_is_retried(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/r.gif", Status(500), Ok(GIF))
    result = fetch(settings, fault_server.url("/r.gif"))
    assert isinstance(result, Fetched) and result.attempts == 2


def test_persistent_502_fails_after_retries(
    fault_server: FaultServer, settings: FetchConfig
) -> None:
    fault_server.set("/s.gif", Status(502))
    url = fault_server.url("/s.gif")
    result = fetch(settings, url)
    assert isinstance(result, FetchFailure)
    assert result.message == f"HTTP error 502 - Bad Gateway: {url}"
    assert result.attempts == 3 and fault_server.count("/s.gif") == 3


@pytest.mark.parametrize("status", [503, 429])
def test_a_throttling_host_is_retried_for_its_patience_not_a_count(
    fault_server: FaultServer, settings: FetchConfig, status: int
) -> None:
    """429 and 503 outlast `retries` (2 here): they end only when throttle_patience does."""
    fault_server.set("/s.gif", Status(status))
    url = fault_server.url("/s.gif")
    patient = dataclasses.replace(settings, throttle_patience=1.5)
    result = fetch(patient, url)
    assert isinstance(result, FetchFailure)
    assert result.status_code == status
    assert re.fullmatch(
        rf"Throttled: {re.escape(url)} \({status} for [12] s, (\d+) attempts\)", result.message
    ), result.message
    assert result.attempts > 3 and fault_server.count("/s.gif") == result.attempts


def test_other_4xx_is_not_retried(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/f.gif", Status(403))
    result = fetch(settings, fault_server.url("/f.gif"))
    assert isinstance(result, FetchFailure) and result.message.startswith("HTTP error 403 - ")
    assert fault_server.count("/f.gif") == 1


def test_429_retry_after_is_honoured(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/t.gif", Status(429, retry_after=0.3), Ok(GIF))
    result = fetch(settings, fault_server.url("/t.gif"))
    # (a machine under load may time an attempt out and add one: the wait is the point)
    assert isinstance(result, Fetched) and result.attempts >= 2
    first, second = fault_server.requests[:2]
    assert second.time - first.time >= 0.25


def test_retry_after_beyond_the_limit_fails_at_once(fault_server: FaultServer) -> None:
    fault_server.set("/t.gif", Status(429, retry_after=3600))
    result = fetch(FAST, fault_server.url("/t.gif"))
    assert isinstance(result, FetchFailure) and "Retry-After 3600s" in result.message
    assert fault_server.count("/t.gif") == 1


def test_retry_after_http_date() -> None:
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10)
    assert retry_after("12") == 12 and retry_after("soon") is None and retry_after(None) is None


def test_stall_after_headers_times_out(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/stall.gif", Stall(after_headers=True, seconds=5))
    result = fetch(dataclasses.replace(settings, retries=0), fault_server.url("/stall.gif"))
    assert isinstance(result, FetchFailure) and result.message.startswith(messages.TIMED_OUT)


def test_drip_that_never_ends_hits_the_total_timeout(
    fault_server: FaultServer, settings: FetchConfig
) -> None:
    fault_server.set("/drip.gif", Drip(chunk=b"GIF89a", interval=0.05))
    quick = dataclasses.replace(settings, retries=0, total_timeout=0.6, max_bytes=10**6)
    result = fetch(quick, fault_server.url("/drip.gif"))
    assert isinstance(result, FetchFailure) and result.message.startswith(messages.TIMED_OUT)


def test_slow_but_complete_response_succeeds(
    fault_server: FaultServer, settings: FetchConfig
) -> None:
    fault_server.set("/slow.gif", Delay(0.2, Ok(GIF)))
    result = fetch(settings, fault_server.url("/slow.gif"))
    assert isinstance(result, Fetched)
    assert (result.data, result.status_code, result.content_type, result.attempts) == (
        GIF,
        200,
        "image/gif",
        1,
    )
    assert fault_server.count("/slow.gif") == 1


def test_oversize_by_content_length(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/big.gif", Ok(GIF + b"\0" * 5000))
    result = fetch(settings, fault_server.url("/big.gif"))
    assert isinstance(result, FetchFailure) and result.message.startswith(messages.TOO_LARGE)
    assert fault_server.count("/big.gif") == 1


def test_oversize_when_decoded(fault_server: FaultServer, settings: FetchConfig) -> None:
    bomb = GIF + b"\0" * 100_000
    assert len(gzip.compress(bomb)) < FAST.max_bytes
    fault_server.set("/bomb.gif", Ok(bomb, gzip=True))
    result = fetch(settings, fault_server.url("/bomb.gif"))
    assert isinstance(result, FetchFailure) and result.message.startswith(messages.TOO_LARGE)


def test_html_is_not_an_image(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/err.gif", Ok(b"<html>oops</html>", content_type="text/html"))
    result = fetch(settings, fault_server.url("/err.gif"))
    assert isinstance(result, FetchFailure)
    assert result.message.startswith(messages.NOT_AN_IMAGE) and "text/html" in result.message


def test_image_type_with_non_image_bytes_fails_the_sniff(
    fault_server: FaultServer, settings: FetchConfig
) -> None:
    fault_server.set("/fake.gif", Ok(b"<html>error page</html>", content_type="image/gif"))
    result = fetch(settings, fault_server.url("/fake.gif"))
    assert isinstance(result, FetchFailure) and "does not look like an image" in result.message


def test_octet_stream_gets_the_sniffed_type(
    fault_server: FaultServer, settings: FetchConfig
) -> None:
    fault_server.set("/o", Ok(GIF, content_type="application/octet-stream"))
    result = fetch(settings, fault_server.url("/o"))
    assert isinstance(result, Fetched) and result.content_type == "image/gif"


def test_redirect_is_followed(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/old.gif", Redirect("/new.gif", 301))
    fault_server.set("/new.gif", Ok(GIF))
    result = fetch(settings, fault_server.url("/old.gif"))
    assert isinstance(result, Fetched) and result.data == GIF


def test_redirect_loop_fails(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/a", Redirect("/b"))
    fault_server.set("/b", Redirect("/a"))
    result = fetch(settings, fault_server.url("/a"))
    assert isinstance(result, FetchFailure)
    assert result.message.startswith(messages.TOO_MANY_REDIRECTS)


def test_redirect_to_another_scheme_fails(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/a", Redirect("file:///etc/passwd"))
    result = fetch(settings, fault_server.url("/a"))
    assert isinstance(result, FetchFailure) and result.message.startswith(messages.BAD_REDIRECT)


def test_guard_sees_every_hop(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/a", Redirect("http://169.254.169.254/latest/meta-data"))
    seen: list[str] = []

    def guard(url: str) -> None:
        seen.append(url)
        if "169.254" in url:
            raise PermissionError("link-local address")

    result = fetch(settings, fault_server.url("/a"), guard)
    assert isinstance(result, FetchFailure) and result.message.startswith(messages.REFUSED_TARGET)
    assert seen == [fault_server.url("/a"), "http://169.254.169.254/latest/meta-data"]


def test_reset_before_headers_is_retried(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/reset.gif", Reset(before_headers=True), Ok(GIF))
    result = fetch(settings, fault_server.url("/reset.gif"))
    assert isinstance(result, Fetched) and result.attempts == 2


def test_reset_mid_body_is_reported(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/reset.gif", Reset(before_headers=False))
    result = fetch(settings, fault_server.url("/reset.gif"))
    assert isinstance(result, FetchFailure)
    assert messages.failure_class(result.message) in (
        messages.CONNECTION_RESET,
        messages.INCOMPLETE,
    )


def test_short_body_is_incomplete(fault_server: FaultServer, settings: FetchConfig) -> None:
    fault_server.set("/short.gif", Short(GIF, claimed_length=len(GIF) + 100))
    result = fetch(settings, fault_server.url("/short.gif"))
    assert isinstance(result, FetchFailure)
    assert messages.failure_class(result.message) in (
        messages.INCOMPLETE,
        messages.CONNECTION_RESET,
    )
    assert fault_server.count("/short.gif") == 3


def test_connection_refused(settings: FetchConfig) -> None:
    with FaultServer() as server:
        url = server.url("/gone.gif")
    result = fetch(settings, url)
    assert isinstance(result, FetchFailure)
    assert result.message == f"Connection refused: {url}"


def test_dns_failure(settings: FetchConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The name fails in a stub resolver: no query leaves the machine."""
    asked: list[object] = []

    def no_such_host(host: object, *args: object, **kwargs: object) -> object:
        asked.append(host.decode() if isinstance(host, bytes) else host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    if settings.transport == "httpx":
        # httpx's transport asks the loop's getaddrinfo: uvloop's calls libuv's, out of
        # this stub's reach; asyncio's own loop calls socket.getaddrinfo.
        monkeypatch.setattr(engine_loop, "_factory", lambda: None)
    result = fetch(dataclasses.replace(settings, retries=0), "http://no-such-host.invalid/a.gif")
    assert isinstance(result, FetchFailure)
    url = "http://no-such-host.invalid/a.gif"
    assert result.message == messages.failure(messages.DNS_FAILED, url, "Name or service not known")
    assert asked and set(asked) == {"no-such-host.invalid"}


def test_keep_alive_reuses_connections(fault_server: FaultServer) -> None:
    for i in range(20):
        fault_server.set(f"/k{i}.gif", Ok(GIF))

    async def go() -> None:
        async with Fetcher(FAST, max_connections=2) as fetcher:
            for i in range(20):
                assert isinstance(await fetcher.fetch(fault_server.url(f"/k{i}.gif")), Fetched)

    engine_loop.run(go())
    assert fault_server.connections == 1


# Each failure path, its answers from the server and the kind its failure carries.
KINDS = {
    "404": ([Status(404)], FailureKind.NOT_FOUND),
    "410": ([Status(410)], FailureKind.NOT_FOUND),
    "403": ([Status(403)], FailureKind.HTTP_ERROR),
    "502": ([Status(502)], FailureKind.HTTP_ERROR),
    "retry-after-too-long": ([Status(503, retry_after=3600)], FailureKind.THROTTLED),
    "cut-body": ([Short(GIF, claimed_length=len(GIF) + 100)], FailureKind.INCOMPLETE),
    "reset-before-head": ([Reset(before_headers=True)], FailureKind.CONNECTION_RESET),
    "stall": ([Stall(after_headers=True, seconds=5)], FailureKind.TIMED_OUT),
    "html": ([Ok(b"<html>oops</html>", content_type="text/html")], FailureKind.NOT_AN_IMAGE),
    "sniff": ([Ok(b"<html>page</html>", content_type="image/gif")], FailureKind.NOT_AN_IMAGE),
    "declared-too-large": ([Ok(GIF + b"\0" * 5000)], FailureKind.TOO_LARGE),
    "decoded-too-large": ([Ok(GIF + b"\0" * 100_000, gzip=True)], FailureKind.TOO_LARGE),
    "empty": ([Ok(b"")], FailureKind.EMPTY_BODY),
    "redirect-loop": ([Redirect("/kind")], FailureKind.TOO_MANY_REDIRECTS),
    "redirect-scheme": ([Redirect("file:///etc/passwd")], FailureKind.BAD_REDIRECT),
}


@pytest.mark.parametrize("case", KINDS)
def test_every_failure_carries_its_kind(
    fault_server: FaultServer, settings: FetchConfig, case: str
) -> None:
    """The kind is set where the failure happens, and matches the message's class."""
    answers, kind = KINDS[case]
    fault_server.set("/kind", *answers)
    result = fetch(settings, fault_server.url("/kind"))
    assert isinstance(result, FetchFailure)
    assert result.kind is kind, result.message
    expected = FailureKind.HTTP_ERROR if kind is FailureKind.THROTTLED else kind
    assert messages.failure_class(result.message) == expected.label
    # The report groups it as it grouped the message before failures had kinds.
    status = result.status_code
    assert classify(kind, result.message, status) == classify(None, result.message, status)


def test_a_refused_port_is_connection_refused(settings: FetchConfig) -> None:
    with FaultServer() as server:
        url = server.url("/gone.gif")
    result = fetch(dataclasses.replace(settings, retries=0), url)
    assert isinstance(result, FetchFailure) and result.kind is FailureKind.CONNECTION_REFUSED


def test_a_guard_refusal_is_a_refused_target(
    fault_server: FaultServer, settings: FetchConfig
) -> None:
    def guard(url: str) -> None:
        raise ValueError("loopback")

    result = fetch(settings, fault_server.url("/a.gif"), guard)
    assert isinstance(result, FetchFailure) and result.kind is FailureKind.REFUSED_TARGET


def test_a_throttling_host_that_outlasts_patience_is_throttled(
    fault_server: FaultServer, settings: FetchConfig
) -> None:
    fault_server.set("/t.gif", Status(429))
    result = fetch(dataclasses.replace(settings, throttle_patience=0.3), fault_server.url("/t.gif"))
    assert isinstance(result, FetchFailure) and result.kind is FailureKind.THROTTLED


class FullDisk:
    """A store whose disk is full at every commit."""

    inline = True

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def open(self, key: str) -> FullDisk:
        return self

    def write(self, chunk: bytes | memoryview) -> None:
        pass

    def commit(self, content_type: str | None) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def abort(self) -> None:
        pass


def test_failed_records_carry_their_kind_in_json(fault_server: FaultServer) -> None:
    """A full disk is no-space; a 404 not-found; both in the record's JSON (failureKind)."""
    fault_server.set("/a/ok.gif", Ok(GIF))
    fault_server.set("/a/no.gif", Status(404))
    items = [item_for(fault_server.base_url, path) for path in ("a/ok.gif", "a/no.gif")]

    async def go() -> list[dict[str, object]]:
        async with Fetcher(FAST, max_connections=2) as fetcher:
            records = await run_batch(items, fetcher=fetcher, store=FullDisk(), concurrency=2)
        assert [r.outcome for r in records] == [Outcome.FAILED, Outcome.FAILED]
        return [r.to_json() for r in records]

    full, missing = engine_loop.run(go())
    assert (full["failureKind"], full["error"]) == ("no-space", f"No space left: {items[0].url}")
    assert (missing["failureKind"], missing["error"]) == (
        "not-found",
        messages.not_found(items[1].url),
    )


def test_a_tls_handshake_failure_is_tls_failed(settings: FetchConfig) -> None:
    """A server that answers a TLS hello in plain HTTP: a TLS failure, not the certificate's."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_in_plain_http() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    server = threading.Thread(target=answer_in_plain_http, daemon=True)
    server.start()
    with listener:
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/a.gif"
        result = fetch(dataclasses.replace(settings, retries=0), url)
    server.join(5)
    assert isinstance(result, FetchFailure) and result.kind is FailureKind.TLS_FAILED, result
    assert messages.failure_class(result.message) == messages.CONNECTION_ERROR
    assert classify(result.kind, result.message, None).slug == "tls"


def test_a_gate_s_host_is_the_netloc_of_each_url_whatever_came_before() -> None:
    from urllib.parse import urlsplit

    from imgflow.engine.fetch import host_of

    urls = [
        "http://a.example/x.png",
        "http://a.example/y.png",
        "http://A.Example:8080/x.png",
        "http://a.example.evil/x.png",
        "http://a.example/z.png",
        "https://a.example/x.png",
        "http://a.example?x=1",
        "http://u@a.example/x.png",
        "\thttp://b.example/x.png",
        "http://b.example/x.png",
        "http://c.exa\tmple/x.png",
        "http://c.example/x.png",
        "http://c.exa\tmple/y.png",
        "http://[::1]:8080/x.png",
        "http://a.example/x.png",
    ]
    for url in urls + urls[::-1]:
        assert host_of(url) == urlsplit(url).netloc.lower(), url
