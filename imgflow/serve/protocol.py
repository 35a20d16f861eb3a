"""uvicorn's h11 protocol with the limits a long-running service needs.

uvicorn gives every connection as long as it likes to send a request and takes any number
of connections. This subclass adds, per connection:

- a **read timeout**: a request (head and body) must arrive whole within
  ``serve.read_timeout`` seconds of the connection opening or of the previous answer,
  else the client gets ``408`` and the connection is closed (slow or stalled clients);
- a **connection cap**: beyond ``serve.max_connections`` open connections, a new
  connection's request is answered ``503`` with ``Retry-After`` and closed;
- JSON bodies on the refusals uvicorn itself writes (malformed HTTP: ``400``);
- a **lingering close**: when the service closes a connection whose request body is still
  arriving (``413``, ``503``, refusals before the body is read), it half-closes (FIN after
  the answer) and discards what the client still sends until it stops (LINGER_IDLE seconds
  without data), LINGER_MAX seconds or LINGER_BYTES have passed, then closes.
  A plain close would make the kernel reset the connection, and a client still sending
  its body (httpx, requests, curl) would lose the answer.

It relies on uvicorn's documented extension point (``Config(http=<protocol class>)``) and
on the h11 protocol's per-request ``cycle`` (tested against the pinned uvicorn range).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

from imgflow.serve.errors import error_body

log = logging.getLogger("imgflow.serve")

LINGER_IDLE = 2.0
LINGER_MAX = 30.0
LINGER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-connection limits (from serve.* config)."""

    read_timeout: float
    max_connections: int
    retry_after: int = 5


def raw_response(status: int, reason: str, message: str, extra: str = "") -> bytes:
    """A whole HTTP/1.1 response with a JSON error body that closes the connection."""
    body = json.dumps(error_body(message)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n"
    )
    return head.encode("ascii") + body


class LimitedH11Protocol(H11Protocol):
    """H11Protocol with a read timeout and a connection cap (see the module docstring)."""

    limits: ClassVar[ConnectionLimits]
    _deadline: asyncio.TimerHandle | None = None
    _linger: asyncio.TimerHandle | None = None
    _discarded = -1  # bytes discarded while lingering; -1: not lingering
    _linger_until = 0.0

    @classmethod
    def with_limits(cls, limits: ConnectionLimits) -> type[LimitedH11Protocol]:
        """A protocol class bound to `limits` (uvicorn instantiates it per connection)."""
        return type("ImgflowH11Protocol", (cls,), {"limits": limits})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_LingeringTransport(transport, self))
        if len(self.connections) > self.limits.max_connections:
            self.app = self._over_capacity
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarded < 0:
            super().data_received(data)
            return
        self._discarded += len(data)
        if self._discarded > LINGER_BYTES or self.loop.time() > self._linger_until:
            self._close_now()
        elif self._linger is not None:
            self._linger.cancel()
            self._linger = self.loop.call_later(LINGER_IDLE, self._close_now)

    def eof_received(self) -> None:
        if self._discarded >= 0:
            self._close_now()

    def body_unread(self) -> bool:
        """True while the current request's body is still arriving."""
        cycle = self.cycle
        return cycle is not None and cycle.more_body

    def start_lingering(self, inner: asyncio.Transport) -> None:
        """Half-close after the answer; discard the rest of the request for a while."""
        self._discarded = 0
        self._disarm_deadline()
        inner.write_eof()
        inner.resume_reading()
        self._linger_until = self.loop.time() + LINGER_MAX
        self._linger = self.loop.call_later(LINGER_IDLE, self._close_now)

    def _close_now(self) -> None:
        transport = self.transport
        if isinstance(transport, _LingeringTransport):
            transport.inner.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_deadline()

    def send_400_response(self, msg: str) -> None:
        self._disarm_deadline()
        peer = _peer(self.client)
        log.info("%s - refused: malformed HTTP request (400)", peer)
        self.transport.write(raw_response(400, "Bad Request", f"malformed HTTP request: {msg}"))
        self.transport.close()

    def _arm_deadline(self) -> None:
        self._disarm_deadline()
        self._deadline = self.loop.call_later(self.limits.read_timeout, self._read_timed_out)

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _read_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answering = cycle is not None and not cycle.response_complete
        if answering and (cycle.response_started or not cycle.more_body):
            return  # the request is in: answering it is the server's time, not the client's
        log.info(
            "%s - refused: request not received within %gs (408)",
            _peer(self.client),
            self.limits.read_timeout,
        )
        message = (
            f"the request did not arrive whole within {self.limits.read_timeout:g} seconds"
            " (serve.read_timeout)"
        )
        self.transport.write(raw_response(408, "Request Timeout", message))
        self.transport.close()

    async def _over_capacity(self, scope: Any, receive: Any, send: Any) -> None:
        log.info(
            "%s - refused: over %d open connections (503)",
            _peer(self.client),
            self.limits.max_connections,
        )
        message = (
            f"more than {self.limits.max_connections} open connections"
            " (serve.max_connections); retry later"
        )
        body = json.dumps(error_body(message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.limits.retry_after).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "-"


class _LingeringTransport(asyncio.Transport):
    """The connection's transport, whose close lingers while a request body still arrives."""

    def __init__(self, inner: asyncio.Transport, protocol: LimitedH11Protocol) -> None:
        super().__init__()
        self.inner = inner
        self._protocol = protocol
        self._lingering = False

    def close(self) -> None:
        if self._lingering or self.inner.is_closing():
            return
        if self._protocol.body_unread() and self.inner.can_write_eof():
            self._lingering = True
            self._protocol.start_lingering(self.inner)
        else:
            self.inner.close()

    def is_closing(self) -> bool:
        return self._lingering or self.inner.is_closing()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._lingering:
            self.inner.write(data)

    def abort(self) -> None:
        self.inner.abort()

    def pause_reading(self) -> None:
        if not self._lingering:
            self.inner.pause_reading()

    def resume_reading(self) -> None:
        self.inner.resume_reading()

    def is_reading(self) -> bool:
        return self.inner.is_reading()

    def can_write_eof(self) -> bool:
        return self.inner.can_write_eof()

    def write_eof(self) -> None:
        self.inner.write_eof()

    def get_write_buffer_size(self) -> int:
        return self.inner.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.inner.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.inner.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.inner.get_protocol()
