"""A lean HTTP/1.1 transport for httpx, built on asyncio protocols and llhttp.

httpx's default async transport (httpcore over anyio and h11) spends about 2 ms of CPU on
each small response; imgflow fetches thousands of small images a second, so it plugs this
transport into ``httpx.AsyncClient`` instead. The client's API, headers, timeouts and
redirect handling are unchanged: only the bytes on the wire are handled here.

Responses are framed by llhttp (Node's strict HTTP parser, through httptools), never by
hand: a malformed or conflicting Content-Length, a bad chunk size, an HTTP/0.9 reply, an
oversized head or an unexpected 101 raise `BadResponse` and close the connection. Bytes
left after a complete response, or arriving while a connection waits in the pool, close
that connection: it is never reused. Interim 1xx responses are skipped.

Also: a keep-alive pool per origin, flow control, read-until-close bodies, forward proxies
(http URLs in absolute form, https URLs through a CONNECT tunnel, Proxy-Authorization from
the proxy URL's credentials), and a transparent resend when a reused keep-alive
connection turns out closed. Body bytes are delivered as received: content decoding is the
caller's. Errors are httpx's own exception types.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httptools
import httpx

from imgflow.engine.direct import Rest, read_rest
from imgflow.engine.guard import AddressCheck, TargetRefused
from imgflow.engine.proxy import Proxy, ProxyRouter

HEAD_LIMIT = 64 * 1024
_HIGH_WATER = 256 * 1024
# (scheme, host, port, proxy): the key of a pool of interchangeable connections. Plain http
# through a proxy is keyed by the proxy alone: one connection to it serves every origin.
Route = tuple[str, str, int, Proxy | None]


class BadResponse(httpx.RemoteProtocolError):
    """A response a strict HTTP/1.1 parser refuses; the connection is closed."""


class _Exchange:
    """One response being parsed (llhttp's callbacks), and its body chunks waiting.

    A connection reuses its exchange (and parser) for the next request only after a clean,
    complete keep-alive response: llhttp then waits at the start of the next message.
    """

    def __init__(self, head_only: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reset(head_only)

    def reset(self, head_only: bool) -> None:
        """Ready for the next response on the same connection."""
        self.head_only = head_only  # HEAD and CONNECT: the head is the whole response
        self.headers: list[tuple[bytes, bytes]] = []
        self.framed = False  # a Content-Length or Transfer-Encoding header was seen
        self.reason = b""
        self.status = 0
        self.head_done = False
        self.complete = False
        self.leftover = False  # bytes beyond the response: the connection is not reused
        self.keep_alive = False
        self.until_close = False
        self.error: Exception | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.received = 0
        self.head_bytes = 0
        self.length: int | None = None  # a Content-Length body's size (no Transfer-Encoding)
        self.chunked = False
        self.direct = False  # its body's rest was read past the parser (engine/direct.py)

    # -- llhttp callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self.leftover = True

    def on_status(self, reason: bytes) -> None:
        if not self.head_done:
            self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:  # after the head: trailers, not kept
            return
        if value[-1:] in (b" ", b"\t"):
            value = value.rstrip(b" \t")
        self.headers.append((name, value))
        if len(name) in (14, 17):
            lower = name.lower()
            if lower == b"content-length":
                self.framed = True
                self.length = int(value) if value.isdigit() else None
            elif lower == b"transfer-encoding":
                self.chunked = True
                # llhttp frames a chunked body only when chunked is the final coding.
                self.framed = self.framed or value.lower().rsplit(b",", 1)[-1].strip() == (
                    b"chunked"
                )

    def on_headers_complete(self) -> None:
        if self.complete or self.head_done:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                self.error = BadResponse("unexpected 101 Switching Protocols")
            self.headers = []  # an interim response: the final one follows
            self.framed = False
            self.length = None
            self.chunked = False
            self.reason = b""
            return
        self.status = status
        self.head_done = True
        self.until_close = not self.framed
        if self.chunked:
            self.length = None
        if self.head_only:
            self.complete = True
            self.keep_alive = False

    def on_body(self, data: bytes) -> None:
        if self.complete:
            self.leftover = True
            return
        self.chunks.append(data)
        self.buffered += len(data)
        self.received += len(data)

    def on_message_complete(self) -> None:
        if self.head_done and not self.complete:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()

    # -- input ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.complete:
            self.leftover = True
            return
        if self.error is not None:
            return
        if not self.head_done:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.error = self.error or BadResponse("unexpected protocol upgrade")
        except httptools.HttpParserError as exc:
            if self.complete:
                self.leftover = True
            elif self.error is None:
                self.error = BadResponse(str(exc) or type(exc).__name__)
        if not self.head_done and self.head_bytes > HEAD_LIMIT and self.error is None:
            self.error = BadResponse(f"response head over {HEAD_LIMIT // 1024} KB")

    def end(self, error: BaseException | None) -> None:
        """The connection ended (EOF or lost)."""
        if self.complete or self.error is not None:
            return
        if isinstance(error, OSError):
            self.error = httpx.ReadError(str(error) or "connection reset")
            self.error.__cause__ = error
        elif not self.head_done:
            self.error = httpx.RemoteProtocolError(
                "Server disconnected without sending a response."
            )
        elif self.until_close:
            self.complete = True
            self.keep_alive = False
        else:
            self.error = httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body: "
                f"received {self.received} bytes"
            )


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; its bytes go to the exchange in progress."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.closed = False
        self.paused = False
        self.used = False
        self.received = 0
        self._waiter: asyncio.Future[None] | None = None
        self._spare: _Exchange | None = None  # the last exchange, cleanly complete

    def start(self, head_only: bool) -> _Exchange:
        """A new exchange on this connection (its last one reset, when that ended cleanly)."""
        exchange = self._spare
        if exchange is None:
            exchange = _Exchange(head_only)
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
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

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
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def take(self, exchange: _Exchange) -> bytes:
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
        if self.transport is not None:
            self.transport.abort()

    def shut(self) -> None:
        """Shut the socket down both ways (a reader of a duplicate wakes up at once)."""
        self.closed = True
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


async def _joined(job: Future[Rest], stop: threading.Event, conn: _Connection) -> Rest:
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


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def _next_event(conn: _Connection, exchange: _Exchange, timeout: float | None) -> None:
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


class _Body(httpx.AsyncByteStream):
    """A response body as llhttp frames it: raw bytes, not content-decoded."""

    def __init__(
        self,
        pool: FastTransport,
        route: Route,
        conn: _Connection,
        exchange: _Exchange,
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
                await _next_event(conn, exchange, self._timeout)
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


class FastTransport(httpx.AsyncBaseTransport):
    """An httpx transport for HTTP/1.1 with a keep-alive pool of `max_connections`.

    With `address_check`, the transport resolves each host it connects to (the origin, or
    the proxy) itself, refuses the connection when the check refuses any of its addresses
    (raising ConnectError caused by TargetRefused), and connects to an address it checked,
    so a DNS answer cannot change between the check and the connection. `proxies` routes
    requests through forward proxies.
    """

    def __init__(
        self,
        max_connections: int,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
        address_check: AddressCheck | None = None,
        proxies: ProxyRouter | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_connections
        self._idle: dict[Route, deque[_Connection]] = {}
        self._ssl = ssl_context  # a factory is called at the first https connection
        self._address_check = address_check
        self._proxies = proxies if proxies is not None and proxies.active else None
        self._closed = False
        self._max_connections = max_connections
        self._pumps: ThreadPoolExecutor | None = None

    def pumps(self) -> ThreadPoolExecutor:
        """The threads that read large bodies (`_Body.pump`): one per connection at most,
        so a body never waits for one."""
        if self._pumps is None:
            self._pumps = ThreadPoolExecutor(self._max_connections, "imgflow-body")
        return self._pumps

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            import certifi

            self._ssl = ssl.create_default_context(cafile=certifi.where())
        elif not isinstance(self._ssl, ssl.SSLContext):
            self._ssl = self._ssl()
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        port = url.port or (443 if scheme == "https" else 80)
        proxy = None if self._proxies is None else self._proxies.proxy_for(scheme, url.host, port)
        if proxy is not None and scheme == "http":
            route: Route = ("http", proxy.host, proxy.port, proxy)
        else:
            route = (scheme, url.host, port, proxy)
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        head = _serialize(request, await request.aread(), proxy if scheme == "http" else None)
        await self._slots.acquire()
        try:
            return await self._exchange(request, route, head, timeouts)
        except BaseException:
            self._slots.release()
            raise

    async def _exchange(
        self, request: httpx.Request, route: Route, head: bytes, timeouts: dict[str, Any]
    ) -> httpx.Response:
        idempotent = request.method in ("GET", "HEAD", "OPTIONS")
        while True:
            conn = self._idle_connection(route) or await self._connect(
                route, request.url.host, timeouts
            )
            reused = conn.used
            before = conn.received
            conn.used = True
            exchange = conn.start(head_only=request.method == "HEAD")
            assert conn.transport is not None
            conn.transport.write(head)
            try:
                return await self._response(route, conn, exchange, timeouts)
            except BadResponse:
                conn.close()
                raise
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

    def _idle_connection(self, route: Route) -> _Connection | None:
        idle = self._idle.get(route)
        while idle:
            conn = idle.pop()
            if conn.reusable():
                return conn
            conn.close()
        return None

    async def _connect(self, route: Route, host: str, timeouts: dict[str, Any]) -> _Connection:
        scheme, _, port, proxy = route
        loop = asyncio.get_running_loop()
        tls = self._ssl_context() if scheme == "https" else None
        peer_host, peer_port = (proxy.host, proxy.port) if proxy is not None else (host, port)
        where = f"proxy {proxy.shown}" if proxy is not None else f"{host}:{port}"
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                address = await self._checked_address(peer_host, peer_port)
                direct_tls = tls if proxy is None else None
                _, conn = await loop.create_connection(
                    _Connection,
                    address,
                    peer_port,
                    ssl=direct_tls,
                    server_hostname=host if direct_tls else None,
                )
                if proxy is not None and tls is not None:
                    await self._tunnel(conn, proxy, host, port, timeouts)
                    transport = await loop.start_tls(
                        _transport(conn), conn, tls, server_hostname=host
                    )
                    if transport is None:  # pragma: no cover - only on a closed transport
                        raise ConnectionResetError("the tunnel closed during the handshake")
                    conn.transport = transport
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {where} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return conn

    async def _tunnel(
        self, conn: _Connection, proxy: Proxy, host: str, port: int, timeouts: dict[str, Any]
    ) -> None:
        """Ask the proxy for a tunnel to host:port (CONNECT); ProxyError when it refuses."""
        target = f"{_bracketed(host)}:{port}".encode("ascii")
        lines = [b"CONNECT " + target + b" HTTP/1.1", b"Host: " + target]
        if proxy.authorization is not None:
            lines.append(b"Proxy-Authorization: " + proxy.authorization)
        exchange = conn.start(head_only=True)
        _transport(conn).write(b"\r\n".join(lines) + b"\r\n\r\n")
        try:
            while not exchange.head_done:
                await _next_event(conn, exchange, timeouts.get("read"))
        except httpx.HTTPError as exc:
            conn.close()
            raise httpx.ProxyError(f"CONNECT failed: {exc}") from exc
        conn.finish(reuse=False)  # its parser is inside the CONNECT reply: never reused
        if not 200 <= exchange.status < 300 or exchange.leftover:
            conn.close()
            reason = exchange.reason.decode("latin-1").strip()
            raise httpx.ProxyError(f"{exchange.status} {reason}".strip())

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
        self, route: Route, conn: _Connection, exchange: _Exchange, timeouts: dict[str, Any]
    ) -> httpx.Response:
        read_timeout = timeouts.get("read")
        while not exchange.head_done:
            await _next_event(conn, exchange, read_timeout)
        version = exchange.parser.get_http_version()
        body = _Body(self, route, conn, exchange, read_timeout)
        return httpx.Response(
            exchange.status,
            headers=exchange.headers,
            stream=body,
            extensions={
                "http_version": b"HTTP/" + version.encode("ascii"),
                "reason_phrase": exchange.reason,
            },
        )

    def release(self, route: Route, conn: _Connection, reuse: bool) -> None:
        """Return a connection after its response body was closed."""
        self._slots.release()
        if reuse and not self._closed:
            idle = self._idle.setdefault(route, deque())
            if len(idle) < self._max_idle:
                idle.append(conn)
                return
        conn.close()

    async def aclose(self) -> None:
        self._closed = True
        if self._pumps is not None:
            self._pumps.shutdown(wait=False)
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


def direct_body(response: httpx.Response) -> _Body | None:
    """The response's body when this transport made it (its rest can be pumped)."""
    stream = response.stream
    return stream if isinstance(stream, _Body) else None


def _transport(conn: _Connection) -> asyncio.Transport:
    assert conn.transport is not None
    return conn.transport


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _serialize(request: httpx.Request, body: bytes, proxy: Proxy | None) -> bytes:
    url = request.url
    target = url.raw_path or b"/"
    if proxy is not None:  # absolute form, for a forward proxy
        host = url.raw_host
        if b":" in host:
            host = b"[" + host + b"]"
        target = url.raw_scheme + b"://" + host + _port(url) + target
    lines = [request.method.encode() + b" " + target + b" HTTP/1.1"]
    lines.extend(k + b": " + v for k, v in request.headers.raw)
    if proxy is not None and proxy.authorization is not None:
        lines.append(b"Proxy-Authorization: " + proxy.authorization)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _port(url: httpx.URL) -> bytes:
    return b"" if url.port is None else b":" + str(url.port).encode("ascii")
