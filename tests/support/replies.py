"""The replies a ``FaultServer`` can give: one small frozen dataclass per behaviour."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Headers = Mapping[str, str]


@dataclass(frozen=True)
class Ok:
    """200 with ``body`` (gzip-encoded and/or chunked on request).

    Framing as real servers do it: Content-Length (the default), ``chunked`` (with
    ``trailers`` after the last chunk, if any), or ``until_close`` (no length: the body ends
    when the server closes the connection). ``version="HTTP/1.0"`` answers as an HTTP/1.0
    server does: the connection closes after the reply.
    """

    body: bytes = b""
    content_type: str = "image/gif"
    headers: Headers = field(default_factory=dict)
    chunked: bool = False
    gzip: bool = False
    trailers: Headers = field(default_factory=dict)
    until_close: bool = False
    version: str = "HTTP/1.1"


@dataclass(frozen=True)
class Trickle:
    """200 with a Content-Length ``body`` sent ``chunk`` bytes at a time, ``interval`` apart."""

    body: bytes
    chunk: int = 65536
    interval: float = 0.01
    content_type: str = "image/gif"


@dataclass(frozen=True)
class Raw:
    """Exactly ``data`` on the wire (a hand-made reply, e.g. mis-framed), then close."""

    data: bytes


@dataclass(frozen=True)
class HttpDate:
    """A Retry-After HTTP-date ``seconds`` after the reply is sent (whole seconds, GMT)."""

    seconds: float


@dataclass(frozen=True)
class Status:
    """Any status with a body; ``retry_after`` is seconds (a number), an HTTP-date (a str),
    or an ``HttpDate`` computed when the reply is sent.

    As HTTP says: 204 and 304 never carry a body; a 204 has no Content-Length, and a 304's
    Content-Length (if ``body`` is given) is that of the representation, whose bytes are
    not sent."""

    code: int
    body: bytes = b""
    headers: Headers = field(default_factory=dict)
    retry_after: float | str | HttpDate | None = None
    content_type: str = "text/plain"


@dataclass(frozen=True)
class Redirect:
    """A redirect to ``location`` (absolute, or a path on this server)."""

    location: str
    code: int = 302


@dataclass(frozen=True)
class Stall:
    """Say nothing for ``seconds`` (after a 200 head when ``after_headers``), then close."""

    after_headers: bool = True
    seconds: float = 30.0


@dataclass(frozen=True)
class Drip:
    """A 200 whose chunked body sends ``chunk`` every ``interval`` seconds and never ends."""

    chunk: bytes = b"."
    interval: float = 0.05
    content_type: str = "image/gif"


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds``, then give ``then``."""

    seconds: float
    then: Reply


@dataclass(frozen=True)
class Reset:
    """Reset the connection (TCP RST) before the head, or after a head and ``partial`` body."""

    before_headers: bool = True
    partial: bytes = b"GIF89a"


@dataclass(frozen=True)
class Short:
    """A 200 claiming ``claimed_length`` bytes that sends only ``body``, then closes."""

    body: bytes
    claimed_length: int
    content_type: str = "image/gif"


@dataclass(frozen=True)
class PerMethod:
    """HEAD and GET disagree: ``head`` answers HEAD requests, ``get`` every other method."""

    head: Reply
    get: Reply


Reply = Ok | Status | Redirect | Stall | Drip | Delay | Reset | Short | PerMethod | Trickle | Raw
