"""A scriptable HTTP/1.1 server on 127.0.0.1 for tests, with byte-level control of replies.

It runs an asyncio loop in its own thread. Script each path with replies, consumed in order
(the last one repeats); paths without a script get ``fallback`` (404 by default)::

    with FaultServer() as server:
        server.set("/a.gif", Status(503, retry_after=1), Ok(b"GIF89a..."))
        httpx.get(server.url("/a.gif"))          # 503 with Retry-After: 1
        httpx.get(server.url("/a.gif"))          # 200, and every later request too
        assert server.count("/a.gif") == 2

Replies (see ``support.replies``): ``Ok``, ``Status``, ``Redirect``, ``Stall``, ``Drip``,
``Delay``, ``Reset``, ``Short``, ``Trickle`` (a slow but complete body), ``Raw`` (exact bytes),
``PerMethod`` (HEAD and GET disagree); ``Status`` takes a ``Retry-After`` in seconds, as a
fixed HTTP-date or as ``HttpDate(seconds)`` from the moment it is sent. Paths match without
the query string.

Real servers' habits: an idle keep-alive connection is closed after ``idle_timeout`` seconds
(5 by default, as Apache and Node do; ``idle_closes`` counts them, ``wait_for_idle_closes``
waits); ``Ok`` bodies may be delimited by Content-Length, chunks (with trailers) or the
connection's close, and come from an HTTP/1.0 server; 204 and 304 carry no body; an
HTTP/1.0 request gets its connection closed after the reply unless it asks for keep-alive.
TLS is not served here.

``storm(count, reply, prefix)`` answers the next ``count`` requests under ``prefix`` with
``reply`` (503 by default) before any script, e.g. a 503 storm over the whole host.

Observations, all safe to read from the test thread:

- ``requests``: every request as a ``Request`` (method, path, target, headers with lower-case
  names, body, monotonic ``time``, ``connection`` number), in arrival order;
- ``count(path)``; ``connections``: TCP connections accepted (keep-alive reuses one);
- ``in_flight`` now, ``max_in_flight`` ever, ``max_in_flight_under(prefix)`` for paths
  starting with ``prefix``. A request is in flight from its head arriving until just before
  its reply is sent (a client never holds a reply the server still counts); faults
  (``Stall``, ``Drip``, ``Reset``, ``Short``) count until they end or the client goes away
  (seen at the next write: ``wait_for_in_flight(count)`` waits for it).
  A request whose client has already closed its connection when the next request is read
  ends there: the server thread shares the GIL with the client under test and may see the
  close and the next request in one late batch, in either order;
- ``wait_for_requests(n, timeout)``.

Keep-alive is on unless the client asks for ``Connection: close``; no pipelining, and request
bodies must come with Content-Length. ``close()`` (or leaving the ``with``) cancels everything
in progress and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import itertools
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

from support.replies import (
    Delay,
    Drip,
    Headers,
    HttpDate,
    Ok,
    PerMethod,
    Raw,
    Redirect,
    Reply,
    Reset,
    Short,
    Stall,
    Status,
    Trickle,
)

__all__ = [
    "Delay",
    "Drip",
    "FaultServer",
    "HttpDate",
    "Ok",
    "PerMethod",
    "Raw",
    "Redirect",
    "Reply",
    "Request",
    "Reset",
    "Short",
    "Stall",
    "Status",
    "Trickle",
]

_STALL_CLAIMED_LENGTH = 1000
_RESET_EXTRA_CLAIMED = 1000
_NO_BODY = frozenset({204, 304})


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    target: str
    version: str
    headers: Mapping[str, str]
    body: bytes
    time: float
    connection: int

    @property
    def keep_alive(self) -> bool:
        """Whether the client lets the connection stay open after the reply."""
        token = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return token == "keep-alive"
        return token != "close"


@dataclass
class _Span:
    path: str
    start: float
    end: float = field(default=float("inf"))


class FaultServer:
    """A running scriptable server; also a context manager that closes it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        fallback: Reply | None = None,
        idle_timeout: float | None = 5.0,
    ) -> None:
        self.host = host
        self.port = 0
        self.idle_timeout = idle_timeout
        self._idle_closes = 0
        self._fallback: Reply = fallback or Status(404, b"not found\n")
        self._scripts: dict[str, list[Reply]] = {}
        self._storm: tuple[int, Reply, str] = (0, self._fallback, "/")
        self._requests: list[Request] = []
        self._spans: list[_Span] = []
        self._open: dict[int, tuple[_Span, asyncio.StreamReader, asyncio.StreamWriter]] = {}
        self._in_flight = 0
        self._max_in_flight = 0
        self._connection_ids = itertools.count(1)
        self._connections = 0
        self._changed = threading.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="fault-server", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        if self._startup_error is not None or not self.port:
            self.close()
            raise RuntimeError("fault server did not start") from self._startup_error

    # --- scripting and observations (test thread) ----------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:port`` without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The full URL of ``path`` (with or without a leading slash)."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def set(self, path: str, *replies: Reply) -> None:
        """Script ``path``: ``replies`` in order, the last repeating. No replies: unscript."""
        with self._changed:
            if replies:
                self._scripts[_normal(path)] = list(replies)
            else:
                self._scripts.pop(_normal(path), None)

    def storm(self, count: int, reply: Reply | None = None, prefix: str = "/") -> None:
        """Answer the next ``count`` requests under ``prefix`` with ``reply`` (503), scripts
        aside; ``storm(0)`` ends a storm early."""
        with self._changed:
            self._storm = (count, reply or Status(503, b"busy\n"), _normal(prefix))

    @property
    def requests(self) -> list[Request]:
        """Every request so far, in arrival order."""
        with self._changed:
            return list(self._requests)

    def count(self, path: str) -> int:
        """How many requests named ``path``."""
        wanted = _normal(path)
        with self._changed:
            return sum(1 for request in self._requests if request.path == wanted)

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        with self._changed:
            return self._connections

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        with self._changed:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests ever handled at once."""
        with self._changed:
            return self._max_in_flight

    def spans(self) -> list[tuple[float, float]]:
        """When each request was in flight: (start, end) in monotonic time (end is inf
        while it still is), so the spans of several servers can be counted together."""
        with self._changed:
            return [(span.start, span.end) for span in self._spans]

    def max_in_flight_under(self, prefix: str) -> int:
        """The most requests for paths starting with ``prefix`` ever handled at once."""
        with self._changed:
            spans = [span for span in self._spans if span.path.startswith(prefix)]
        events = sorted([(s.start, 1) for s in spans] + [(s.end, -1) for s in spans])
        most = current = 0
        for _, step in events:
            current += step
            most = max(most, current)
        return most

    @property
    def idle_closes(self) -> int:
        """Keep-alive connections the server closed because they sat idle."""
        with self._changed:
            return self._idle_closes

    def wait_for_idle_closes(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` idle connections were closed; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._idle_closes >= count, timeout)

    def wait_for_in_flight(self, count: int, timeout: float = 2.0) -> bool:
        """Block until at most ``count`` requests are being handled; False on timeout.
        A client that hangs up is seen at the server's next write, so this waits for it."""
        with self._changed:
            return self._changed.wait_for(lambda: self._in_flight <= count, timeout)

    def wait_for_requests(self, count: int, timeout: float = 2.0) -> bool:
        """Block until at least ``count`` requests arrived; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._requests) >= count, timeout)

    def close(self) -> None:
        """Stop listening, cancel every connection and join the server thread."""
        if self._thread.is_alive():
            stop = self._stop
            if stop is not None:
                self._loop.call_soon_threadsafe(stop.set)
            self._thread.join(5)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the loop (server thread) --------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as error:  # reported to the constructor
            self._startup_error = error
        finally:
            self._ready.set()
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._on_connection, self.host, 0, backlog=256)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        writer.transport.set_write_buffer_limits(0)
        with self._changed:
            self._connections += 1
        connection = next(self._connection_ids)
        cancelled = idle = False
        try:
            served = 0
            while request := await self._next_request(reader, connection, served):
                served += 1
                keep_alive = await self._handle(request, reader, writer)
                if not (keep_alive and request.keep_alive):
                    break
            else:
                idle = bool(served) and not reader.at_eof()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            cancelled = True
        finally:
            self._tasks.discard(task)
            await _close(writer, abort=cancelled)
            if idle:  # counted once the FIN is out, so a waiting test sees a closed connection
                with self._changed:
                    self._idle_closes += 1
                    self._changed.notify_all()

    async def _handle(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Reply to one request; True if the connection may serve another."""
        span = _Span(request.path, request.time)
        with self._changed:
            self._end_abandoned(request.time)
            self._open[id(span)] = (span, reader, writer)
            reply = self._next_reply(request.path)
            self._requests.append(request)
            self._spans.append(span)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._changed.notify_all()

        def done() -> None:
            with self._changed:
                self._open.pop(id(span), None)
                if span.end == float("inf"):
                    span.end = time.monotonic()
                    self._in_flight -= 1
                    self._changed.notify_all()

        try:
            keep_alive = await _send(reply, request, reader, writer, done)
        finally:
            done()
        if not writer.transport.is_closing():
            await writer.drain()
        return keep_alive

    async def _next_request(
        self, reader: asyncio.StreamReader, connection: int, served: int
    ) -> Request | None:
        """The next request; after the first, None once the connection sat idle too long
        (no complete request head within ``idle_timeout``)."""
        limit = None if not served else self.idle_timeout
        try:
            return await _read_request(reader, connection, limit)
        except TimeoutError:
            return None

    def _end_abandoned(self, now: float) -> None:
        """End the requests whose client has closed the connection (caller holds the lock)."""
        for key, (span, reader, writer) in list(self._open.items()):
            if _client_gone(reader, writer):
                del self._open[key]
                if span.end == float("inf"):
                    span.end = now
                    self._in_flight -= 1

    def _next_reply(self, path: str) -> Reply:
        left, storm, prefix = self._storm
        if left > 0 and path.startswith(prefix):
            self._storm = (left - 1, storm, prefix)
            return storm
        script = self._scripts.get(path)
        if not script:
            return self._fallback
        return script.pop(0) if len(script) > 1 else script[0]


# --- the wire ----------------------------------------------------------------------------------


async def _read_request(
    reader: asyncio.StreamReader, connection: int, head_timeout: float | None = None
) -> Request | None:
    """The next request on the connection, or None when the client has closed it.

    Raises TimeoutError when no complete head arrived within ``head_timeout`` seconds."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), head_timeout)
    except asyncio.IncompleteReadError:
        return None
    arrived = time.monotonic()
    first, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    method, target, version = first.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    path = _normal(target.split("?", 1)[0])
    return Request(method, path, target, version, headers, body, arrived, connection)


async def _send(
    reply: Reply,
    request: Request,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    done: Callable[[], None],
) -> bool:
    """Perform ``reply``; True if the connection may serve another request.

    A complete reply calls ``done`` just before handing its bytes to the transport (the caller
    drains), so no client can see a reply while the server still counts its request.
    """
    closing = not request.keep_alive
    head_only = request.method == "HEAD"
    match reply:
        case PerMethod():
            chosen = reply.head if head_only else reply.get
            return await _send(chosen, request, reader, writer, done)
        case Delay(seconds=seconds, then=then):
            if not await _sleep_unless_gone(reader, seconds):
                return False
            return await _send(then, request, reader, writer, done)
        case Ok():
            body = gzip.compress(reply.body, mtime=0) if reply.gzip else reply.body
            extra = {"Content-Encoding": "gzip"} if reply.gzip else {}
            head = _merged({"Content-Type": reply.content_type}, extra, reply.headers)
            if reply.until_close or reply.version == "HTTP/1.0":
                framing = {} if reply.until_close else {"Content-Length": str(len(body))}
                status = _head(200, _merged(framing, head), reply.version)
                done()
                await _write(writer, status if head_only else status + body)
                return False
            chunked = reply.chunked or bool(reply.trailers)
            _write_full(writer, done, 200, head, body, closing, head_only, chunked, reply.trailers)
            return True
        case Trickle():
            length = {"Content-Length": str(len(reply.body))}
            await _write(writer, _head(200, {"Content-Type": reply.content_type, **length}))
            for start in range(0, len(reply.body), reply.chunk):
                if head_only or not await _sleep_unless_gone(reader, reply.interval):
                    return False
                await _write(writer, reply.body[start : start + reply.chunk])
            done()
            return True
        case Raw():
            done()
            await _write(writer, reply.data)
            return False
        case Status():
            retry = {} if reply.retry_after is None else {"Retry-After": _retry(reply.retry_after)}
            head = _merged({"Content-Type": reply.content_type}, retry, reply.headers)
            _write_full(writer, done, reply.code, head, reply.body, closing, head_only)
            return True
        case Redirect():
            _write_full(writer, done, reply.code, {"Location": reply.location}, b"", closing)
            return True
        case Stall():
            if reply.after_headers:
                length = str(_STALL_CLAIMED_LENGTH)
                head = {"Content-Type": "image/gif", "Content-Length": length}
                await _write(writer, _head(200, head))
            await _sleep_unless_gone(reader, reply.seconds)
            return False
        case Drip():
            head = {"Content-Type": reply.content_type, "Transfer-Encoding": "chunked"}
            await _write(writer, _head(200, head))
            await _write(writer, _chunk(reply.chunk))
            while await _sleep_unless_gone(reader, reply.interval):
                await _write(writer, _chunk(reply.chunk))
            return False
        case Reset():
            if not reply.before_headers:
                claimed = str(len(reply.partial) + _RESET_EXTRA_CLAIMED)
                await _write(writer, _head(200, {"Content-Length": claimed}) + reply.partial)
            _reset(writer)
            return False
        case Short():
            head = {"Content-Type": reply.content_type, "Content-Length": str(reply.claimed_length)}
            await _write(writer, _head(200, head) + reply.body)
            return False


def _write_full(
    writer: asyncio.StreamWriter,
    done: Callable[[], None],
    code: int,
    headers: Headers,
    body: bytes,
    closing: bool,
    head_only: bool = False,
    chunked: bool = False,
    trailers: Headers | None = None,
) -> None:
    """A complete response: head with framing headers, then the (maybe chunked) body.

    204 and 304 send no body: a 204 has no Content-Length, a 304 keeps the length of the
    representation it stands for."""
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(len(body))}
    if code == 204:
        framing = {}
    close = {"Connection": "close"} if closing else {}
    payload = _chunked(body, trailers or {}) if chunked else body
    if code in _NO_BODY:
        payload = b""
    head = _head(code, _merged(framing, headers, close))
    done()
    writer.write(head if head_only else head + payload)


def _head(code: int, headers: Headers, version: str = "HTTP/1.1") -> bytes:
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"{version} {code} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _merged(*parts: Headers) -> dict[str, str]:
    """Headers from ``parts``; a later part overrides an earlier one, ignoring case."""
    merged: dict[str, tuple[str, str]] = {}
    for part in parts:
        merged.update((name.lower(), (name, value)) for name, value in part.items())
    return dict(merged.values())


def _chunked(body: bytes, trailers: Headers) -> bytes:
    """``body`` as two chunks (one if short), the last-chunk marker and any trailers."""
    half = (len(body) + 1) // 2
    parts = [part for part in (body[:half], body[half:]) if part]
    last = b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in trailers.items())
    return b"".join(_chunk(part) for part in parts) + last + b"\r\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _retry(value: float | str | HttpDate) -> str:
    if isinstance(value, HttpDate):
        return email.utils.formatdate(time.time() + value.seconds, usegmt=True)
    return value if isinstance(value, str) else f"{value:g}"


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def _sleep_unless_gone(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Sleep ``seconds``; False (early) if the client closed the connection meanwhile."""
    if reader.at_eof():
        return False
    try:
        await asyncio.wait_for(_until_eof(reader), seconds)
    except TimeoutError:
        return True
    return False


async def _until_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


def _client_gone(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """True when the client closed the connection of a request still being answered.

    Clients here never pipeline, so a readable socket mid-request means FIN or RST."""
    if reader.at_eof() or writer.transport.is_closing():
        return True
    sock = writer.get_extra_info("socket")
    fd = sock.fileno() if sock is not None else -1
    if fd < 0:
        return True
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _close(writer: asyncio.StreamWriter, abort: bool) -> None:
    if abort:
        writer.transport.abort()
        return
    writer.close()
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        await writer.wait_closed()


def _normal(path: str) -> str:
    return "/" + path.lstrip("/")
