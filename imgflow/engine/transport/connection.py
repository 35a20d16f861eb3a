"""One connection: the asyncio protocol that feeds a connection's bytes to its parser."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import cast

import httpx

from imgflow.engine.transport.parse import Exchange

_HIGH_WATER = 256 * 1024
# The loop runs a timer this close to its time (asyncio's clock_resolution).
_RESOLUTION = time.get_clock_info("monotonic").resolution


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; its bytes go to the exchange in progress."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.closed = False
        self.paused = False
        self.used = False
        self.received = 0
        self._waiter: asyncio.Future[None] | None = None
        # The read timeout: the wait in progress ends at `_deadline`. One timer per
        # connection, re-armed only when it would fire too late or finds the deadline moved
        # on, rather than a timer made and cancelled for every wait.
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._spare: Exchange | None = None  # the last exchange, cleanly complete

    def start(self, head_only: bool) -> Exchange:
        """A new exchange on this connection (its last one reset, when that ended cleanly)."""
        exchange = self._spare
        if exchange is None:
            exchange = Exchange(head_only)
        else:
            exchange.reset(head_only)
            self._spare = None
        self.exchange = exchange
        return exchange

    def finish(self, reuse: bool) -> None:
        """The exchange is over; with `reuse`, its parser waits for the next message."""
        if reuse and self.exchange is not None and not self.exchange.direct:
            self._spare = self.exchange
        self.exchange = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but have its methods)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        exchange = self.exchange
        if exchange is None or exchange.complete:
            # Bytes while idle, or after a complete response: never reused.
            if exchange is not None:
                exchange.leftover = True
            self.close()
            return
        exchange.feed(data)
        if exchange.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def eof_received(self) -> bool | None:
        self._ended(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    def _ended(self, exc: BaseException | None) -> None:
        self.closed = True
        self._disarm()
        if self.exchange is not None:
            self.exchange.end(exc)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- reading ------------------------------------------------------------------------

    async def wait(self, timeout: float | None) -> None:
        """Wait for more bytes or the end of the connection, at most `timeout` seconds."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        if timeout is not None:
            deadline = self._deadline = loop.time() + timeout
            timer = self._timer
            if timer is None or timer.when() > deadline:  # it would fire too late
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(deadline, self._expire)
        try:
            await waiter
        finally:
            self._waiter = None
            self._deadline = None

    def _expire(self) -> None:
        """The timer: the wait in progress fails when its deadline has come; one that began
        after the timer was armed has a later deadline, and the timer is armed again for it."""
        self._timer = None
        waiter, deadline = self._waiter, self._deadline
        if waiter is None or deadline is None or waiter.done():
            return
        loop = waiter.get_loop()
        if deadline <= loop.time() + _RESOLUTION:  # due, as the loop itself decides
            waiter.set_exception(TimeoutError())
        else:
            self._timer = loop.call_at(deadline, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def take(self, exchange: Exchange) -> bytes:
        """Every body byte buffered, resuming reading when it was paused."""
        chunks = exchange.chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        exchange.buffered = 0
        self.resume()
        return data

    @property
    def plain(self) -> bool:
        """An open plain TCP connection (a TLS one's bytes only its SSL protocol reads)."""
        transport = self.transport
        return (
            not self.closed and transport is not None and not transport.get_extra_info("sslcontext")
        )

    def hold(self) -> socket.socket | None:
        """Stop reading on the loop and give a duplicate of the plain TCP socket, or None."""
        transport = self.transport
        if transport is None or not self.plain:
            return None
        sock = transport.get_extra_info("socket")
        if sock is None:
            return None
        try:
            copy: socket.socket = sock.dup()
        except OSError:  # out of descriptors: the loop reads on
            return None
        if not self.paused:
            transport.pause_reading()
            self.paused = True
        return copy

    def resume(self) -> None:
        """Read on the loop again (after `hold`)."""
        if self.paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()
            self.paused = False

    def reusable(self) -> bool:
        """True when the connection is open and idle with nothing received since."""
        return not self.closed and self.exchange is None and self.transport is not None

    def close(self) -> None:
        """Close the connection at once.

        The FIN goes out now, not on the loop's next turn (as `abort` alone would have it),
        so a server never sees the next request before this connection ends.
        """
        self.shut()
        self._disarm()
        if self.transport is not None:
            self.transport.abort()

    def shut(self) -> None:
        """Shut the socket down both ways (a reader of a duplicate wakes up at once)."""
        self.closed = True
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    """Shut `sock` (a transport's stand-in for its socket) down both ways, through a
    duplicate: uvloop's stand-in refuses `shutdown()`."""
    with sock.dup() as copy:
        copy.shutdown(socket.SHUT_RDWR)


async def next_event(conn: Connection, exchange: Exchange, timeout: float | None) -> None:
    """Wait for the exchange to move on; an error of the exchange is raised."""
    if exchange.error is not None:
        raise exchange.error
    if conn.closed:
        exchange.end(None)
        if exchange.error is not None:
            raise exchange.error
        return
    try:
        await conn.wait(timeout)
    except TimeoutError:
        what = "the response body" if exchange.head_done else "the response"
        raise httpx.ReadTimeout(f"timed out waiting for {what}") from None
