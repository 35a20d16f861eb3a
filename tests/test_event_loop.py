"""The event loop a run turns on: uvloop's where it is installed, asyncio's own otherwise.

Both run the same transport: the connection takes uvloop's transports (which are not
asyncio.Transport subclasses) and shuts its socket down even though uvloop's stand-in for a
transport's socket refuses `shutdown()`. A reader of a duplicate of the socket (a large
body's worker thread, imgflow/engine/transport/direct.py) must wake at once when the
connection is shut down on either loop.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator

import httpx
import pytest
import uvloop
from support.faultserver import FaultServer, Ok

from imgflow.engine import loop as engine_loop
from imgflow.engine.transport import FastTransport
from imgflow.engine.transport.connection import Connection

GIF = b"GIF89a" + bytes(range(200))


@pytest.fixture(params=["uvloop", "asyncio"])
def loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs through `engine_loop.run` on uvloop's loop, or on asyncio's own as where uvloop
    is not installed (its import fails)."""
    if request.param == "asyncio":
        monkeypatch.setitem(sys.modules, "uvloop", None)
    yield request.param


def test_a_run_turns_on_uvloop_where_it_is_installed_and_on_asyncio_s_loop_elsewhere(
    loop_kind: str,
) -> None:
    async def kind() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    running = engine_loop.run(kind())
    assert isinstance(running, uvloop.Loop) == (loop_kind == "uvloop")


def test_images_come_through_imgflow_s_transport_on_either_loop(
    loop_kind: str, fault_server: FaultServer
) -> None:
    fault_server.set("/a.gif", Ok(GIF))

    async def go() -> list[bytes]:
        async with httpx.AsyncClient(transport=FastTransport(2), timeout=2.0) as client:
            return [(await client.get(fault_server.url("/a.gif"))).content for _ in range(3)]

    assert engine_loop.run(go()) == [GIF] * 3
    assert fault_server.connections == 1  # kept alive on either loop


def test_shutting_a_connection_down_wakes_a_reader_of_its_duplicate(loop_kind: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    async def go() -> bytes:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Connection, "127.0.0.1", port)
        copy = conn.hold()
        assert copy is not None
        copy.settimeout(2)
        try:
            conn.shut()  # a worker thread reading `copy` must see the end now
            return await loop.run_in_executor(None, copy.recv, 1)
        finally:
            copy.close()
            conn.close()

    try:
        assert engine_loop.run(go()) == b""
    finally:
        listener.close()
