"""A lean HTTP/1.1 transport for httpx, built on asyncio protocols.

httpx's default async transport (httpcore over anyio and h11) spends about 2 ms of CPU on
each small response; imgflow fetches thousands of small images a second, so it plugs this
transport into ``httpx.AsyncClient`` instead. The client's API, headers, timeouts,
redirect handling and content decoding (gzip, deflate, br) are unchanged: only the bytes
on the wire are handled here, with keep-alive connection reuse, Content-Length, chunked
and read-until-close bodies, flow control, and errors raised as httpx's own exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx

from imgflow.engine.guard import AddressCheck, TargetRefused

_HEAD_LIMIT = 64 * 1024
_HIGH_WATER = 256 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})
Origin = tuple[str, str, int]


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the bytes received on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self.error: BaseException | None = None
        self.paused = False
        self.used = False
        self.received = 0
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def eof_received(self) -> bool | None:
        self.closed = True
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
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
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def take(self, limit: int) -> bytes:
        """Up to `limit` buffered bytes, resuming reading when the buffer drains."""
        size = min(limit, len(self.buffer))
        chunk = bytes(self.buffer[:size])
        del self.buffer[:size]
        if self.paused and len(self.buffer) < _HIGH_WATER // 2 and self.transport is not None:
            self.transport.resume_reading()
            self.paused = False
        return chunk

    def reusable(self) -> bool:
        """True when the connection is open with nothing left unread."""
        return not self.closed and not self.buffer and self.transport is not None

    def close(self) -> None:
        """Close the connection at once.

        The FIN goes out now, not on the loop's next turn (as `abort` alone would have it),
        so a server never sees the next request before this connection ends.
        """
        self.closed = True
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.transport.abort()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Body(httpx.AsyncByteStream):
    """A response body read from a connection: Content-Length, chunked or until close."""

    def __init__(
        self,
        pool: FastTransport,
        origin: Origin,
        conn: _Connection,
        mode: str,
        length: int,
        keep_alive: bool,
        read_timeout: float | None,
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._conn = conn
        self._mode = mode
        self._length = length
        self._keep_alive = keep_alive
        self._timeout = read_timeout
        self._complete = mode == "none"
        self._released = False
        self._received = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._mode == "length":
            async for chunk in self._read_length():
                yield chunk
        elif self._mode == "chunked":
            async for chunk in self._read_chunked():
                yield chunk
        elif self._mode == "close":
            async for chunk in self._read_to_close():
                yield chunk
        self._complete = True
        await self.aclose()

    async def _more(self, what: str) -> None:
        """Wait for more bytes than are buffered; the connection ending here is an error."""
        conn = self._conn
        if conn.closed:
            if isinstance(conn.error, OSError):
                raise httpx.ReadError(str(conn.error) or "connection reset") from conn.error
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body: "
                f"received {self._received} bytes{what}"
            )
        try:
            await conn.wait(self._timeout)
        except TimeoutError:
            raise httpx.ReadTimeout("timed out reading the response body") from None

    async def _read_length(self) -> AsyncIterator[bytes]:
        remaining = self._length
        expected = f", expected {self._length}"
        while remaining > 0:
            if not self._conn.buffer:
                await self._more(expected)
                continue
            chunk = self._conn.take(remaining)
            remaining -= len(chunk)
            self._received += len(chunk)
            yield chunk

    async def _read_line(self) -> bytes:
        conn = self._conn
        while True:
            end = conn.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(conn.buffer[:end])
                conn.take(end + 2)
                return line
            if len(conn.buffer) > _HEAD_LIMIT:
                raise httpx.RemoteProtocolError("chunk header line too long")
            await self._more(" (in a chunked body)")

    async def _read_chunked(self) -> AsyncIterator[bytes]:
        while True:
            line = await self._read_line()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise httpx.RemoteProtocolError(f"invalid chunk size {line[:20]!r}") from None
            if size == 0:
                while await self._read_line():
                    pass  # trailers
                return
            remaining = size
            while remaining > 0:
                if not self._conn.buffer:
                    await self._more(" (in a chunked body)")
                    continue
                chunk = self._conn.take(remaining)
                remaining -= len(chunk)
                self._received += len(chunk)
                yield chunk
            if await self._read_line():
                raise httpx.RemoteProtocolError("missing CRLF after a chunk")

    async def _read_to_close(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.buffer:
                chunk = conn.take(len(conn.buffer))
                self._received += len(chunk)
                yield chunk
                continue
            if conn.closed:
                if isinstance(conn.error, OSError):
                    raise httpx.ReadError(str(conn.error)) from conn.error
                return
            try:
                await conn.wait(self._timeout)
            except TimeoutError:
                raise httpx.ReadTimeout("timed out reading the response body") from None

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        reuse = self._complete and self._keep_alive and self._conn.reusable()
        self._pool.release(self._origin, self._conn, reuse)


class FastTransport(httpx.AsyncBaseTransport):
    """An httpx transport for HTTP/1.1 with a keep-alive pool of `max_connections`.

    With `address_check`, the transport resolves each host itself, refuses the connection
    when the check refuses any of its addresses (raising ConnectError caused by
    TargetRefused), and connects to an address it checked, so a DNS answer cannot change
    between the check and the connection.
    """

    def __init__(
        self,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
        address_check: AddressCheck | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_connections
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._ssl = ssl_context
        self._address_check = address_check
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            import certifi

            self._ssl = ssl.create_default_context(cafile=certifi.where())
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        origin: Origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        head = _serialize(request, await request.aread())
        await self._slots.acquire()
        try:
            return await self._exchange(request, origin, head, timeouts)
        except BaseException:
            self._slots.release()
            raise

    async def _exchange(
        self, request: httpx.Request, origin: Origin, head: bytes, timeouts: dict[str, Any]
    ) -> httpx.Response:
        idempotent = request.method in ("GET", "HEAD", "OPTIONS")
        while True:
            conn = self._idle_connection(origin) or await self._connect(origin, timeouts)
            reused = conn.used
            before = conn.received
            conn.used = True
            assert conn.transport is not None
            conn.transport.write(head)
            try:
                return await self._response(request, origin, conn, timeouts)
            except (httpx.RemoteProtocolError, httpx.ReadError):
                conn.close()
                # A keep-alive connection the server closed while it sat idle: the request
                # never reached it, so it is sent again on a fresh connection.
                if not (reused and idempotent and conn.received == before):
                    raise
            except BaseException:
                # A timeout or cancel while waiting for the head: the connection must not
                # stay open, or the server still counts a request the client gave up on.
                conn.close()
                raise

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.reusable():
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin, timeouts: dict[str, Any]) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        ssl_arg = self._ssl_context() if scheme == "https" else None
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                address = await self._checked_address(host, port)
                _, conn = await loop.create_connection(
                    _Connection,
                    address,
                    port,
                    ssl=ssl_arg,
                    server_hostname=host if ssl_arg else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return conn

    async def _checked_address(self, host: str, port: int) -> str:
        """The host itself, or (with an address check) the address checked for it."""
        if self._address_check is None:
            return host
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]) for info in infos]
        for address in addresses:
            reason = await self._address_check(address)
            if reason is not None:
                refused = TargetRefused(
                    reason if address == host else f"{host} resolves to {reason}"
                )
                raise httpx.ConnectError(str(refused)) from refused
        return addresses[0]

    async def _response(
        self, request: httpx.Request, origin: Origin, conn: _Connection, timeouts: dict[str, Any]
    ) -> httpx.Response:
        read_timeout = timeouts.get("read")
        while True:
            version, status, reason, headers = await _read_head(conn, read_timeout)
            if not 100 <= status < 200:
                break
        fields = {k.lower(): v for k, v in headers}
        connection = fields.get(b"connection", b"").lower()
        keep_alive = version == b"HTTP/1.1" and b"close" not in connection
        if request.method == "HEAD" or status in _NO_BODY_STATUSES:
            mode, length = "none", 0
        elif b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            mode, length = "chunked", 0
        elif b"content-length" in fields:
            try:
                length = int(fields[b"content-length"])
            except ValueError:
                raise httpx.RemoteProtocolError("invalid Content-Length") from None
            mode = "length" if length > 0 else "none"
        else:
            mode, length, keep_alive = "close", 0, False
        body = _Body(self, origin, conn, mode, length, keep_alive, read_timeout)
        return httpx.Response(
            status,
            headers=headers,
            stream=body,
            extensions={"http_version": version, "reason_phrase": reason},
        )

    def release(self, origin: Origin, conn: _Connection, reuse: bool) -> None:
        """Return a connection after its response body was closed."""
        self._slots.release()
        if reuse and not self._closed:
            idle = self._idle.setdefault(origin, deque())
            if len(idle) < self._max_idle:
                idle.append(conn)
                return
        conn.close()

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


def _serialize(request: httpx.Request, body: bytes) -> bytes:
    url = request.url
    target = url.raw_path or b"/"
    lines = [request.method.encode() + b" " + target + b" HTTP/1.1"]
    lines.extend(k + b": " + v for k, v in request.headers.raw)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def _read_head(
    conn: _Connection, timeout: float | None
) -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]]:
    while True:
        end = conn.buffer.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(conn.buffer) > _HEAD_LIMIT:
            raise httpx.RemoteProtocolError("response headers are too large")
        if conn.closed:
            if isinstance(conn.error, OSError):
                raise httpx.ReadError(str(conn.error) or "connection reset") from conn.error
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        try:
            await conn.wait(timeout)
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for the response") from None
    head = conn.take(end + 4)[:-4]
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"invalid status line {lines[0][:40]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise httpx.RemoteProtocolError(f"invalid header line {line[:40]!r}")
        headers.append((name, value.strip()))
    reason = parts[2] if len(parts) > 2 else b""
    return parts[0], int(parts[1]), reason, headers
