"""uvicorn's h11 protocol with the limits a long-running service needs.

uvicorn gives every connection as long as it likes to send a request and takes any number
of connections. This subclass adds, per connection:

- a **read timeout**: a request (head and body) must arrive whole within
  ``serve.read_timeout`` seconds of the connection opening or of the previous answer,
  else the client gets ``408`` and the connection is closed (slow or stalled clients);
- a **connection cap**: beyond ``serve.max_connections`` open connections, a new
  connection's request is answered ``503`` with ``Retry-After`` and closed;
- JSON bodies on the refusals uvicorn itself writes (malformed HTTP: ``400``).

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

    @classmethod
    def with_limits(cls, limits: ConnectionLimits) -> type[LimitedH11Protocol]:
        """A protocol class bound to `limits` (uvicorn instantiates it per connection)."""
        return type("ImgflowH11Protocol", (cls,), {"limits": limits})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.app = self._over_capacity
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

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
