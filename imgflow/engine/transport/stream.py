"""A response's body as the transport streams it, and the rest of a large one pumped by a
thread of its own (transport/direct.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING

import httpx

from imgflow.engine.transport.connection import Connection, next_event
from imgflow.engine.transport.direct import Rest, read_rest
from imgflow.engine.transport.parse import Exchange

if TYPE_CHECKING:
    from imgflow.engine.transport.pool import FastTransport, Route


async def _joined(job: Future[Rest], stop: threading.Event, conn: Connection) -> Rest:
    """`job`'s result; on a cancel, the thread is stopped and waited for, then re-raised."""
    waiter = asyncio.wrap_future(job)
    try:
        return await asyncio.shield(waiter)
    except asyncio.CancelledError:
        if not job.cancel():  # it started: make it stop and wait until it has
            stop.set()
            conn.shut()
            while not waiter.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(waiter)
        raise


class Body(httpx.AsyncByteStream):
    """A response body as llhttp frames it: raw bytes, not content-decoded."""

    def __init__(
        self,
        pool: FastTransport,
        route: Route,
        conn: Connection,
        exchange: Exchange,
        read_timeout: float | None,
    ) -> None:
        self._pool = pool
        self._route = route
        self._conn = conn
        self._exchange = exchange
        self._timeout = read_timeout
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn, exchange = self._conn, self._exchange
        while True:
            if exchange.chunks:
                yield conn.take(exchange)
            elif exchange.error is not None:
                raise exchange.error
            elif exchange.complete:
                break
            else:
                await next_event(conn, exchange, self._timeout)
        await self.aclose()

    def left(self) -> int | None:
        """The body bytes not yet taken when `pump` can read them: a Content-Length body
        on a plain TCP connection; None otherwise."""
        exchange = self._exchange
        if (
            exchange.length is None
            or exchange.complete
            or exchange.error is not None
            or not self._conn.plain
        ):
            return None
        return exchange.length - exchange.received + exchange.buffered

    async def pump(self, write: Callable[[memoryview], None], first: list[bytes]) -> int | None:
        """In a thread of its own: `first` (bytes the caller holds), then the rest of the
        body (`left` bytes) into `write`; the rest's size, or None when it cannot start.

        Network errors are httpx's; an error from `write` propagates unchanged; either
        closes the connection. A cancel stops the thread and waits for it, so `write` is
        never called once this returns.
        """
        conn, exchange = self._conn, self._exchange
        sock = None if self.left() is None else conn.hold()
        if sock is None:
            return None
        assert exchange.length is not None
        size = exchange.length - exchange.received
        rest_size = size + exchange.buffered
        held = first + list(exchange.chunks)
        first.clear()
        exchange.chunks.clear()
        exchange.buffered = 0
        stop = threading.Event()
        try:
            job = self._pool.pumps().submit(
                read_rest, held, sock, size, exchange.received, write, self._timeout, stop
            )
        except RuntimeError:  # the transport was closed under this body
            sock.close()
            conn.close()
            raise httpx.ReadError("the connection pool is closed") from None
        try:
            rest = await _joined(job, stop, conn)
        except BaseException:
            if job.cancelled():  # it never ran: the duplicate is still open
                sock.close()
            conn.close()
            raise
        exchange.received += size
        conn.received += size
        exchange.direct = exchange.complete = True
        exchange.leftover = rest.leftover
        exchange.keep_alive = not rest.closed and exchange.parser.should_keep_alive()
        conn.resume()
        return rest_size

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        exchange = self._exchange
        reuse = (
            exchange.complete
            and exchange.keep_alive
            and not exchange.leftover
            and exchange.error is None
            and not self._conn.closed
        )
        self._conn.finish(reuse)
        self._pool.release(self._route, self._conn, reuse)


def direct_body(response: httpx.Response) -> Body | None:
    """The response's body when this transport made it (its rest can be pumped)."""
    stream = response.stream
    return stream if isinstance(stream, Body) else None
