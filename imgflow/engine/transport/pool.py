"""The keep-alive pool: connections per route, opened (through a proxy, with TLS) and
reused, behind httpx's transport interface."""

from __future__ import annotations

import asyncio
import resource
import socket
import ssl
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from imgflow.engine.dns import Resolver
from imgflow.engine.guard import AddressCheck, TargetRefused
from imgflow.engine.proxy import Proxy, ProxyRouter
from imgflow.engine.transport.connection import Connection, next_event
from imgflow.engine.transport.errors import BadResponse
from imgflow.engine.transport.headers import headers_of
from imgflow.engine.transport.parse import Exchange
from imgflow.engine.transport.stream import Body

# (scheme, host, port, proxy): the key of a pool of interchangeable connections. Plain http
# through a proxy is keyed by the proxy alone: one connection to it serves every origin.
Route = tuple[str, str, int, Proxy | None]

# Idle keep-alive connections kept, of every host together: enough for each host of a table
# to keep its own (hosts x per-host concurrency is often more than the requests in flight,
# and a pool of only that many closed a busy host's connection to make room for another's,
# so hosts were reconnected again and again), bounded so a run of many hosts does not run
# out of file descriptors (a quarter of the process's limit).
IDLE_CONNECTIONS = 256


def idle_budget(max_connections: int) -> int:
    """How many idle connections a pool of `max_connections` keeps open."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = soft // 4 if soft != resource.RLIM_INFINITY else IDLE_CONNECTIONS
    return max(max_connections, min(IDLE_CONNECTIONS, limit))


class FastTransport(httpx.AsyncBaseTransport):
    """An httpx transport for HTTP/1.1 with a keep-alive pool of `max_connections`.

    With `address_check`, the transport resolves each host it connects to (the origin, or
    the proxy) itself, refuses the connection when the check refuses any of its addresses
    (raising ConnectError caused by TargetRefused), and connects to an address it checked,
    so a DNS answer cannot change between the check and the connection. `proxies` routes
    requests through forward proxies. Names are resolved through `resolver` (one lookup
    per host per run, off the event loop: imgflow.engine.dns); a new one by default.
    """

    def __init__(
        self,
        max_connections: int,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
        address_check: AddressCheck | None = None,
        proxies: ProxyRouter | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.resolver = resolver or Resolver()
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = idle_budget(max_connections)
        self._idle: dict[Route, deque[Connection]] = {}
        self._idle_total = 0  # idle connections of every route: at most _max_idle
        self._idle_since: OrderedDict[Connection, Route] = OrderedDict()  # oldest first
        self._ssl = ssl_context  # a factory is called at the first https connection
        self._address_check = address_check
        self._proxies = proxies if proxies is not None and proxies.active else None
        self._closed = False
        self._max_connections = max_connections
        self._pumps: ThreadPoolExecutor | None = None

    def pumps(self) -> ThreadPoolExecutor:
        """The threads that read large bodies (`Body.pump`): one per connection at most,
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
        if not self._idle.get(route):
            # A new connection is needed: its name is resolved before a slot is taken, so a
            # host whose lookup is slow holds none of the slots the other hosts need.
            peer = route[1] if proxy is None else proxy.host
            if not self.resolver.fresh(peer):
                await self._resolve_early(route, timeouts)
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

    def _idle_connection(self, route: Route) -> Connection | None:
        idle = self._idle.get(route)
        while idle:
            conn = idle.pop()
            self._idle_total -= 1
            del self._idle_since[conn]
            if conn.reusable():
                return conn
            conn.close()
        return None

    async def _connect(self, route: Route, host: str, timeouts: dict[str, Any]) -> Connection:
        scheme, _, port, proxy = route
        loop = asyncio.get_running_loop()
        tls = self._ssl_context() if scheme == "https" else None
        peer_host, peer_port = (proxy.host, proxy.port) if proxy is not None else (host, port)
        where = f"proxy {proxy.shown}" if proxy is not None else f"{host}:{port}"
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                addresses = await self._checked_addresses(peer_host, peer_port)
                direct_tls = tls if proxy is None else None
                conn = await _first_connection(
                    addresses, peer_port, direct_tls, host if direct_tls else None
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

    async def _resolve_early(self, route: Route, timeouts: dict[str, Any]) -> None:
        """Resolve the route's peer (the origin, or the proxy) into the resolver's cache,
        failing as `_connect` would."""
        _, host, port, proxy = route
        peer, peer_port = (proxy.host, proxy.port) if proxy is not None else (host, port)
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                await self.resolver.resolve(peer, peer_port)
        except TimeoutError:
            where = f"proxy {proxy.shown}" if proxy is not None else f"{host}:{port}"
            raise httpx.ConnectTimeout(f"connecting to {where} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc

    async def _tunnel(
        self, conn: Connection, proxy: Proxy, host: str, port: int, timeouts: dict[str, Any]
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
                await next_event(conn, exchange, timeouts.get("read"))
        except httpx.HTTPError as exc:
            conn.close()
            raise httpx.ProxyError(f"CONNECT failed: {exc}") from exc
        conn.finish(reuse=False)  # its parser is inside the CONNECT reply: never reused
        if not 200 <= exchange.status < 300 or exchange.leftover:
            conn.close()
            reason = exchange.reason.decode("latin-1").strip()
            raise httpx.ProxyError(f"{exchange.status} {reason}".strip())

    async def _checked_addresses(self, host: str, port: int) -> list[str]:
        """The host's addresses (resolved once per run), or with an address check the one
        address checked for it (every address it resolves to is checked)."""
        addresses = await self.resolver.resolve(host, port)
        if self._address_check is None:
            return addresses
        for address in addresses:
            reason = await self._address_check(address)
            if reason is not None:
                refused = TargetRefused(
                    reason if address == host else f"{host} resolves to {reason}"
                )
                raise httpx.ConnectError(str(refused)) from refused
        return addresses[:1]

    async def _response(
        self, route: Route, conn: Connection, exchange: Exchange, timeouts: dict[str, Any]
    ) -> httpx.Response:
        read_timeout = timeouts.get("read")
        while not exchange.head_done:
            await next_event(conn, exchange, read_timeout)
        version = exchange.parser.get_http_version()
        body = Body(self, route, conn, exchange, read_timeout)
        response = httpx.Response(
            exchange.status,
            stream=body,
            extensions={
                "http_version": b"HTTP/" + version.encode("ascii"),
                "reason_phrase": exchange.reason,
            },
        )
        response.headers = headers_of(exchange.headers)
        return response

    def release(self, route: Route, conn: Connection, reuse: bool) -> None:
        """Return a connection after its response body was closed."""
        self._slots.release()
        if reuse and not self._closed:
            if self._idle_total >= self._max_idle:
                self._evict()
            self._idle.setdefault(route, deque()).append(conn)
            self._idle_total += 1
            self._idle_since[conn] = route
            return
        conn.close()

    def _evict(self) -> None:
        """Close the connection idle the longest, whichever its host: idle connections of
        every host together stay within the pool's budget, and the one closed is of a
        host that has gone quiet, not of one still being fetched from."""
        conn, route = self._idle_since.popitem(last=False)
        idle = self._idle[route]
        idle.remove(conn)  # (its leftmost: a route's idle ones are in the same order)
        self._idle_total -= 1
        if not idle:
            del self._idle[route]
        conn.close()

    async def aclose(self) -> None:
        self._closed = True
        if self._pumps is not None:
            self._pumps.shutdown(wait=False)
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
        self._idle_since.clear()
        self._idle_total = 0


async def _first_connection(
    addresses: list[str], port: int, tls: ssl.SSLContext | None, server_hostname: str | None
) -> Connection:
    """A connection to the first of `addresses` that accepts one, in order (as
    create_connection tries a name's addresses); the last one's error otherwise."""
    loop = asyncio.get_running_loop()
    for i, address in enumerate(addresses):
        try:
            _, conn = await loop.create_connection(
                Connection, address, port, ssl=tls, server_hostname=server_hostname
            )
        except OSError:
            if i == len(addresses) - 1:
                raise
            continue
        return conn
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def _transport(conn: Connection) -> asyncio.Transport:
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
