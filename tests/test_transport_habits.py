"""Both transports against real servers' habits, and no request silently sent twice.

Servers close keep-alive connections that sat idle; a request written to such a connection
before the client noticed the close never reached the server, so imgflow's transport sends
it again on a fresh connection. Only then: a request on a fresh connection, one the server
began answering, and any request that is not idempotent (POST) are never resent, since the
server may have acted on it. The fault server counts every arrival.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
from support.faultserver import FaultServer, Ok, Raw, Reset, Status

from imgflow.engine import loop as engine_loop
from imgflow.engine.transport import FastTransport

GIF = b"GIF89a" + bytes(range(200))
TIMEOUT = httpx.Timeout(2.0)
Exchange = Callable[[httpx.AsyncClient], Awaitable[None]]


def with_client(transport: str, exchange: Exchange) -> None:
    """Run `exchange` with an httpx client on imgflow's transport or httpx's own."""

    async def go() -> None:
        chosen = FastTransport(4) if transport == "imgflow" else httpx.AsyncHTTPTransport()
        async with httpx.AsyncClient(transport=chosen, timeout=TIMEOUT) as client:
            async with asyncio.timeout(10):  # a transport resending forever fails here
                await exchange(client)

    engine_loop.run(go())


@pytest.fixture
def idle_server() -> FaultServer:
    """A server that closes keep-alive connections idle for 0.2 s."""
    server = FaultServer(idle_timeout=0.2)
    yield server  # type: ignore[misc]
    server.close()


TRANSPORTS = pytest.mark.parametrize("transport", ["imgflow", "httpx"])


@TRANSPORTS
def test_a_connection_closed_while_idle_is_replaced_without_a_failure(
    idle_server: FaultServer, transport: str
) -> None:
    idle_server.set("/a.gif", Ok(GIF))

    async def exchange(client: httpx.AsyncClient) -> None:
        assert (await client.get(idle_server.url("/a.gif"))).content == GIF
        # Block the loop (not await): the client cannot see the server's FIN before it writes.
        assert idle_server.wait_for_idle_closes(1)
        assert (await client.get(idle_server.url("/a.gif"))).content == GIF

    with_client(transport, exchange)
    assert idle_server.count("/a.gif") == 2
    assert idle_server.connections == 2


@TRANSPORTS
def test_a_get_on_a_fresh_connection_is_not_resent(
    fault_server: FaultServer, transport: str
) -> None:
    fault_server.set("/reset.gif", Reset(before_headers=True))

    async def exchange(client: httpx.AsyncClient) -> None:
        with pytest.raises(httpx.TransportError):
            await client.get(fault_server.url("/reset.gif"))

    with_client(transport, exchange)
    assert fault_server.count("/reset.gif") == 1


@TRANSPORTS
@pytest.mark.parametrize(
    "reply",
    [Raw(b"HTTP/1.1 200 OK\r\nContent-Le"), Reset(before_headers=False)],
    ids=["half-a-head", "half-a-body"],
)
def test_a_get_the_server_began_answering_is_not_resent(
    fault_server: FaultServer, transport: str, reply: Raw | Reset
) -> None:
    fault_server.set("/a.gif", Ok(GIF))
    fault_server.set("/half.gif", reply)

    async def exchange(client: httpx.AsyncClient) -> None:
        await client.get(fault_server.url("/a.gif"))
        with pytest.raises(httpx.TransportError):
            await client.get(fault_server.url("/half.gif"))

    with_client(transport, exchange)
    assert fault_server.count("/half.gif") == 1
    assert fault_server.connections == 1


@TRANSPORTS
def test_a_post_is_never_resent(fault_server: FaultServer, transport: str) -> None:
    fault_server.set("/a.gif", Ok(GIF))
    fault_server.set("/jobs", Reset(before_headers=True))

    async def exchange(client: httpx.AsyncClient) -> None:
        await client.get(fault_server.url("/a.gif"))
        with pytest.raises(httpx.TransportError):
            await client.post(fault_server.url("/jobs"), content=b'{"job": 1}')

    with_client(transport, exchange)
    posts = [r for r in fault_server.requests if r.method == "POST"]
    assert len(posts) == 1 and posts[0].body == b'{"job": 1}'


@TRANSPORTS
@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses_leave_the_connection_usable(
    fault_server: FaultServer, transport: str, code: int
) -> None:
    # A 304 keeps the Content-Length of the representation it stands for, sending no body.
    fault_server.set("/empty", Status(code, b"x" * 100))
    fault_server.set("/a.gif", Ok(GIF))

    async def exchange(client: httpx.AsyncClient) -> None:
        response = await client.get(fault_server.url("/empty"))
        assert response.status_code == code and response.content == b""
        assert (await client.get(fault_server.url("/a.gif"))).content == GIF

    with_client(transport, exchange)
    assert fault_server.connections == 1


@TRANSPORTS
def test_a_head_reply_has_no_body(fault_server: FaultServer, transport: str) -> None:
    fault_server.set("/a.gif", Ok(GIF))  # HEAD: the head says Content-Length, no body follows

    async def exchange(client: httpx.AsyncClient) -> None:
        head = await client.head(fault_server.url("/a.gif"))
        assert head.headers["content-length"] == str(len(GIF)) and head.content == b""
        assert (await client.get(fault_server.url("/a.gif"))).content == GIF

    with_client(transport, exchange)
    assert fault_server.count("/a.gif") == 2  # (imgflow's transport never reuses after HEAD)


@TRANSPORTS
def test_chunked_trailers_are_read_and_the_connection_reused(
    fault_server: FaultServer, transport: str
) -> None:
    fault_server.set("/t.gif", Ok(GIF, chunked=True, trailers={"X-Checksum": "abc"}))

    async def exchange(client: httpx.AsyncClient) -> None:
        for _ in range(2):
            assert (await client.get(fault_server.url("/t.gif"))).content == GIF

    with_client(transport, exchange)
    assert fault_server.connections == 1


@TRANSPORTS
@pytest.mark.parametrize(
    "reply",
    [
        Ok(GIF, until_close=True),
        Ok(GIF, version="HTTP/1.0"),
        Ok(GIF, version="HTTP/1.0", until_close=True),
    ],
    ids=["close-delimited", "http10-length", "http10-close-delimited"],
)
def test_bodies_ending_with_the_connection(
    fault_server: FaultServer, transport: str, reply: Ok
) -> None:
    fault_server.set("/c.gif", reply)

    async def exchange(client: httpx.AsyncClient) -> None:
        for _ in range(2):
            assert (await client.get(fault_server.url("/c.gif"))).content == GIF

    with_client(transport, exchange)
    assert fault_server.count("/c.gif") == 2 and fault_server.connections == 2


BAD_FRAMING = {
    "no-crlf-after-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabcXX\r\n0\r\n\r\n",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\nabc",
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nabc\r\n0\r\n\r\n",
    "not-http": b"SMTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
}


@TRANSPORTS
@pytest.mark.parametrize("name", sorted(BAD_FRAMING))
def test_misframed_replies_are_protocol_errors(
    fault_server: FaultServer, transport: str, name: str
) -> None:
    fault_server.set("/bad", Raw(BAD_FRAMING[name]))

    async def exchange(client: httpx.AsyncClient) -> None:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(fault_server.url("/bad"))

    with_client(transport, exchange)
    assert fault_server.count("/bad") == 1


def test_idle_connections_are_closed_by_the_server(idle_server: FaultServer) -> None:
    idle_server.set("/a.gif", Ok(GIF))
    with httpx.Client() as client:
        client.get(idle_server.url("/a.gif"))
        assert idle_server.wait_for_idle_closes(1)
        assert client.get(idle_server.url("/a.gif")).status_code == 200
    assert idle_server.connections == 2
