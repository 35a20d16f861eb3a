"""The event loop a run turns on: uvloop's where it is installed, asyncio's own otherwise.

Both run the same transport: the connection takes uvloop's transports (which are not
asyncio.Transport subclasses) and shuts its socket down even though uvloop's stand-in for a
transport's socket refuses `shutdown()`. A reader of a duplicate of the socket (a large
body's worker thread, imgflow/engine/transport/direct.py) must wake at once when the
connection is shut down on either loop.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import sys
import warnings
from collections.abc import Coroutine, Iterator
from typing import Any

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


# -- a signal while the loop is set up, runs or shuts down -----------------------------------


@pytest.fixture
def raising_handler() -> Iterator[list[int]]:
    """SIGTERM raises KeyboardInterrupt from a Python handler, as the command line's does
    (imgflow/signals.py); the signals it got, in order."""
    got: list[int] = []

    def unwind(signum: int, frame: object) -> None:
        got.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, unwind)
    try:
        yield got
    finally:
        signal.signal(signal.SIGTERM, previous)


def _signal_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def test_a_signal_while_the_loop_shuts_down_is_the_interrupt_and_the_loop_is_closed(
    loop_kind: str, raising_handler: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signal comes in the Python code the loop runs after `main` has returned (uvloop
    closes its signal socket pair there): that raised KeyboardInterrupt inside uvloop's run,
    which left the loop marked running for good; closing it raised RuntimeError, a traceback
    on the command line."""
    loops: list[asyncio.AbstractEventLoop] = []
    real_close = socket.socket.close
    armed: list[bool] = []

    def close(self: socket.socket) -> None:
        if armed and not raising_handler:
            _signal_self()  # (the handler runs at the next bytecode: inside this close)
        real_close(self)

    async def main() -> int:
        loops.append(asyncio.get_running_loop())
        armed.append(True)
        return 1

    monkeypatch.setattr(socket.socket, "close", close)
    with pytest.raises(KeyboardInterrupt):
        engine_loop.run(main())
    assert raising_handler == [signal.SIGTERM]
    assert loops[0].is_closed() and not loops[0].is_running()
    monkeypatch.undo()

    async def again() -> int:
        return 2

    assert engine_loop.run(again()) == 2  # (the next run gets a loop of its own)


def test_a_signal_before_main_starts_is_the_interrupt_and_main_is_never_left_unawaited(
    loop_kind: str, raising_handler: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signal comes while the loop is made: `main` never ran, and Python printed
    "coroutine ... was never awaited" under the command's one line."""
    started: list[bool] = []
    make = engine_loop._factory() or asyncio.new_event_loop

    def factory() -> asyncio.AbstractEventLoop:
        _signal_self()
        return make()

    async def main() -> None:
        started.append(True)

    monkeypatch.setattr(engine_loop, "_factory", lambda: factory)
    gc.collect()  # (earlier tests' garbage, collected outside the block)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        assert _interrupted(main())
        gc.collect()  # (the coroutine and the interrupt's frames are gone by now)
    assert not _about_the_loop(warned)
    assert raising_handler == [signal.SIGTERM] and not started


def test_a_signal_while_main_runs_cancels_it_on_the_loop_then_interrupts(
    loop_kind: str, raising_handler: list[int]
) -> None:
    """Outside a run's own watch (imgflow/local/stopping.py) the signal cancels `main`,
    whose cleanup still runs on the loop, and is the interrupt once the loop is closed."""
    cleaned: list[str] = []

    async def main() -> None:
        asyncio.get_running_loop().call_later(0.05, _signal_self)
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0)  # (an await: the cleanup runs on the loop)
            cleaned.append("done")

    with pytest.raises(KeyboardInterrupt):
        engine_loop.run(main())
    assert cleaned == ["done"] and raising_handler == [signal.SIGTERM]


def test_a_loop_that_cannot_be_made_leaves_no_coroutine_unawaited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(Out of file descriptors, say): the error is the command's one line, with no "coroutine
    ... was never awaited" warning under it."""

    def factory() -> asyncio.AbstractEventLoop:
        raise OSError(24, "Too many open files")

    async def main() -> None:
        pass

    monkeypatch.setattr(engine_loop, "_factory", lambda: factory)
    gc.collect()  # (earlier tests' garbage, collected outside the block)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            engine_loop.run(main())
        except OSError as exc:
            assert exc.errno == 24
        gc.collect()
    assert not _about_the_loop(warned)


def _about_the_loop(warned: list[warnings.WarningMessage]) -> list[str]:
    """The warnings of `warned` about a coroutine or an event loop left behind (a test
    worker's other tests may leave a file unclosed for the collector to warn of meanwhile:
    seen under load, "unclosed file <_io.BufferedReader name=16>")."""
    messages = [str(w.message) for w in warned]
    return [m for m in messages if "never awaited" in m or "loop" in m]


def _interrupted(main: Coroutine[Any, Any, object]) -> bool:
    """Whether running `main` raised KeyboardInterrupt (which is not kept)."""
    try:
        engine_loop.run(main)
    except KeyboardInterrupt:
        return True
    return False
