"""The rest of a large body read straight from its socket, in a worker thread.

A large image costs the event loop about 3 ms of CPU per MB when its bytes pass through it
(recv into new bytes, llhttp's copy, hashing and writing in Python pieces), and one thread
cannot go faster than that. Once a response's head is parsed (by llhttp, with its
Content-Length checked) and its first bytes have passed the content check, the rest of the
body is a known number of bytes: a worker thread reads exactly that many from its own
duplicate of the connection's socket into one reused buffer and hands each piece to the
sink (hash and write), with the GIL released for every recv, hash and write. Several large
bodies then proceed on several cores, and the memory of each is one buffer.

Only the body's length is counted here; the framing was decided by the parser. Anything
the server sends beyond that length is left in the socket for the event loop, which then
closes the connection (bytes after a complete response), as for any other response.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from imgflow.engine.transport.errors import IncompleteBody

BUFFER_BYTES = 256 * 1024
# How often a wait for bytes looks at the stop flag, in seconds.
_STOP_POLL = 0.2


class Stopped(Exception):
    """The reading was stopped from the event loop (a cancel)."""


@dataclass(frozen=True, slots=True)
class Rest:
    """How reading the rest of a body ended: bytes beyond it waiting, or the peer's EOF."""

    leftover: bool
    closed: bool


def read_rest(
    held: list[bytes],
    sock: socket.socket,
    size: int,
    received: int,
    write: Callable[[memoryview], None],
    timeout: float | None,
    stop: threading.Event,
) -> Rest:
    """Write the body bytes `held` (received already, of `received` so far), then read
    exactly `size` more from `sock` into `write`; close `sock` (a duplicate) in any case.

    Network failures raise httpx's exceptions (ReadTimeout when no byte comes for
    `timeout` seconds, ReadError, IncompleteBody for an early close); an exception
    from `write` (the store) propagates unchanged.
    """
    try:
        held.reverse()
        while held:  # each piece let go once written
            write(memoryview(held.pop()))
        sock.setblocking(False)
        buffer = memoryview(bytearray(max(1, min(size, BUFFER_BYTES))))
        got = 0
        while got < size:
            if stop.is_set():
                raise Stopped
            try:
                n = sock.recv_into(buffer, min(size - got, len(buffer)))
            except BlockingIOError:
                _wait_readable(sock, timeout, stop)
                continue
            except OSError as exc:
                raise httpx.ReadError(exc.strerror or str(exc)) from exc
            if n == 0:
                raise IncompleteBody(
                    "peer closed connection without sending complete message body: "
                    f"received {received + got} bytes"
                )
            write(buffer[:n])
            got += n
        return _after(sock)
    finally:
        sock.close()


def _wait_readable(sock: socket.socket, timeout: float | None, stop: threading.Event) -> None:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = _STOP_POLL if deadline is None else min(_STOP_POLL, deadline - time.monotonic())
        if wait <= 0:
            raise httpx.ReadTimeout("timed out waiting for the response body")
        if poller.poll(wait * 1000):
            return
        if stop.is_set():
            raise Stopped


def _after(sock: socket.socket) -> Rest:
    """What is already waiting after the body: more bytes, the peer's close, or nothing."""
    try:
        extra = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return Rest(leftover=False, closed=False)
    except OSError:
        return Rest(leftover=False, closed=True)
    return Rest(leftover=bool(extra), closed=not extra)
