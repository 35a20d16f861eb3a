"""Each FaultServer reply behaves as documented, seen from a real httpx client."""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from support.faultserver import (
    Delay,
    Drip,
    FaultServer,
    HttpDate,
    Ok,
    PerMethod,
    Redirect,
    Reset,
    Short,
    Stall,
    Status,
)

GIF = b"GIF89a" + bytes(range(64))
QUICK = httpx.Timeout(2.0, read=0.2)


def test_replies_are_consumed_in_order_and_the_last_repeats(fault_server: FaultServer) -> None:
    fault_server.set("/a.gif", Status(500), Status(503), Ok(GIF))
    with httpx.Client() as client:
        codes = [client.get(fault_server.url("/a.gif")).status_code for _ in range(4)]
    assert codes == [500, 503, 200, 200]
    assert fault_server.count("/a.gif") == 4


def test_unknown_paths_are_404_and_fallback_is_configurable(fault_server: FaultServer) -> None:
    assert httpx.get(fault_server.url("/nope.gif")).status_code == 404
    with FaultServer(fallback=Ok(GIF)) as server:
        assert httpx.get(server.url("/anything/at/all.gif")).content == GIF


def test_ok_sends_body_type_and_extra_headers(fault_server: FaultServer) -> None:
    fault_server.set("/a.gif", Ok(GIF, headers={"ETag": '"v1"'}))
    response = httpx.get(fault_server.url("/a.gif"))
    assert response.content == GIF
    assert response.headers["content-type"] == "image/gif"
    assert response.headers["content-length"] == str(len(GIF))
    assert response.headers["etag"] == '"v1"'
    fault_server.set("/b.png", Ok(GIF, headers={"content-type": "image/png"}))
    assert httpx.get(fault_server.url("/b.png")).headers.get_list("content-type") == ["image/png"]


def test_ok_can_be_chunked_and_gzipped(fault_server: FaultServer) -> None:
    fault_server.set("/c.gif", Ok(GIF, chunked=True, gzip=True))
    response = httpx.get(fault_server.url("/c.gif"))
    assert response.content == GIF
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["content-encoding"] == "gzip"
    assert "content-length" not in response.headers


def test_head_gets_headers_without_a_body(fault_server: FaultServer) -> None:
    fault_server.set("/a.gif", Ok(GIF))
    with httpx.Client() as client:
        response = client.head(fault_server.url("/a.gif"))
        assert response.headers["content-length"] == str(len(GIF)) and response.content == b""
        assert client.get(fault_server.url("/a.gif")).content == GIF
    assert fault_server.connections == 1


@pytest.mark.parametrize("retry_after", [3, "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_status_carries_retry_after(fault_server: FaultServer, retry_after: int | str) -> None:
    fault_server.set("/busy", Status(429, b"slow down", retry_after=retry_after))
    response = httpx.get(fault_server.url("/busy"))
    assert response.status_code == 429 and response.text == "slow down"
    assert response.headers["retry-after"] == str(retry_after)


def test_http_date_retry_after_is_computed_when_sent(fault_server: FaultServer) -> None:
    fault_server.set("/busy", Status(503, retry_after=HttpDate(30)))
    response = httpx.get(fault_server.url("/busy"))
    when = email.utils.parsedate_to_datetime(response.headers["retry-after"]).timestamp()
    assert 25 <= when - time.time() <= 31


def test_head_and_get_can_disagree(fault_server: FaultServer) -> None:
    fault_server.set("/a.gif", PerMethod(head=Ok(GIF), get=Ok(b"<html>", content_type="text/html")))
    with httpx.Client() as client:
        assert client.head(fault_server.url("/a.gif")).headers["content-type"] == "image/gif"
        got = client.get(fault_server.url("/a.gif"))
        assert got.headers["content-type"] == "text/html" and got.content == b"<html>"


def test_storm_answers_every_path_then_scripts_resume(fault_server: FaultServer) -> None:
    fault_server.set("/a/x.gif", Ok(GIF))
    fault_server.storm(3, prefix="/a/")
    with httpx.Client() as client:
        codes = [client.get(fault_server.url(p)).status_code for p in ["/b", "/a/x.gif"] * 3]
        assert codes == [404, 503, 404, 503, 404, 503]
        assert client.get(fault_server.url("/a/x.gif")).content == GIF


def test_redirect_is_followed_to_its_target(fault_server: FaultServer) -> None:
    fault_server.set("/old.gif", Redirect("/new.gif", 301))
    fault_server.set("/new.gif", Ok(GIF))
    response = httpx.get(fault_server.url("/old.gif"), follow_redirects=True)
    assert response.content == GIF
    assert [r.status_code for r in response.history] == [301]


@pytest.mark.parametrize("after_headers", [True, False])
def test_stall_outlasts_a_read_timeout(fault_server: FaultServer, after_headers: bool) -> None:
    fault_server.set("/stall", Stall(after_headers=after_headers, seconds=5))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(fault_server.url("/stall"), timeout=QUICK)
    assert 0.2 <= time.monotonic() - started < 3
    assert _eventually(lambda: fault_server.in_flight == 0), "client left, stall should end"


def test_drip_keeps_sending_and_never_finishes(fault_server: FaultServer) -> None:
    fault_server.set("/drip", Drip(b"xy", interval=0.02))
    received = b""
    with httpx.stream("GET", fault_server.url("/drip"), timeout=QUICK) as response:
        assert response.status_code == 200
        for part in response.iter_raw():
            received += part
            if len(received) >= 10:
                break
    assert received.startswith(b"xyxyxyxyxy")


def test_delay_waits_then_replies(fault_server: FaultServer) -> None:
    fault_server.set("/late.gif", Delay(0.3, Ok(GIF)))
    started = time.monotonic()
    assert httpx.get(fault_server.url("/late.gif")).content == GIF
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("before_headers", [True, False])
def test_reset_breaks_the_connection(fault_server: FaultServer, before_headers: bool) -> None:
    fault_server.set("/reset", Reset(before_headers=before_headers))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(fault_server.url("/reset"), timeout=QUICK)


def test_short_body_is_a_protocol_error(fault_server: FaultServer) -> None:
    fault_server.set("/short.gif", Short(GIF[:10], claimed_length=len(GIF)))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(fault_server.url("/short.gif"), timeout=QUICK)


def test_keep_alive_serves_many_requests_on_one_connection(fault_server: FaultServer) -> None:
    fault_server.set("/a.gif", Ok(GIF))
    with httpx.Client() as client:
        for _ in range(20):
            assert client.get(fault_server.url("/a.gif")).status_code == 200
    assert fault_server.connections == 1
    assert {request.connection for request in fault_server.requests} == {1}


def test_connection_close_is_honoured(fault_server: FaultServer) -> None:
    fault_server.set("/a.gif", Ok(GIF))
    with httpx.Client(headers={"Connection": "close"}) as client:
        for _ in range(3):
            assert client.get(fault_server.url("/a.gif")).headers["connection"] == "close"
    assert fault_server.connections == 3


def test_requests_are_recorded(fault_server: FaultServer) -> None:
    httpx.post(fault_server.url("/jobs?x=1"), json={"a": 1}, headers={"X-Probe": "yes"})
    assert fault_server.wait_for_requests(1)
    (request,) = fault_server.requests
    assert (request.method, request.path, request.target) == ("POST", "/jobs", "/jobs?x=1")
    assert request.headers["x-probe"] == "yes"
    assert request.body == b'{"a":1}'
    assert request.time <= time.monotonic()


def test_max_in_flight_counts_concurrent_requests(fault_server: FaultServer) -> None:
    fault_server.set("/slow/a.gif", Delay(1.0, Ok(GIF)))
    fault_server.set("/fast/a.gif", Ok(GIF))

    def fetch(path: str) -> None:
        httpx.get(fault_server.url(path))

    threads = [threading.Thread(target=fetch, args=("/slow/a.gif",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert _eventually(lambda: fault_server.in_flight == 4)
    with httpx.Client() as client:
        for _ in range(3):
            client.get(fault_server.url("/fast/a.gif"))
    for thread in threads:
        thread.join()
    assert fault_server.max_in_flight >= 4
    assert fault_server.max_in_flight_under("/slow/") == 4
    assert fault_server.max_in_flight_under("/fast/") == 1
    assert fault_server.in_flight == 0


def test_close_is_prompt_even_with_stalled_clients() -> None:
    server = FaultServer()
    server.set("/stall", Stall(seconds=30))
    errors: list[Exception] = []

    def fetch() -> None:
        try:
            httpx.get(server.url("/stall"), timeout=10)
        except httpx.HTTPError as error:
            errors.append(error)

    client = threading.Thread(target=fetch)
    client.start()
    assert server.wait_for_requests(1)
    started = time.monotonic()
    server.close()
    client.join(3)
    assert time.monotonic() - started < 2.0
    assert not client.is_alive() and len(errors) == 1
    assert not any(t.name == "fault-server" for t in threading.enumerate())
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=0.5).close()


def _eventually(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False
