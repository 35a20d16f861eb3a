"""The response parser: llhttp's callbacks framing one response after another."""

from __future__ import annotations

from collections import deque

import httptools
import httpx

from imgflow.engine.transport.errors import BadResponse, ConnectionClosed, IncompleteBody

HEAD_LIMIT = 64 * 1024
# Transfer codings that leave the body's bytes as they are (identity: RFC 2616's, retired).
_NO_CODING = (b"", b"chunked", b"identity")


class Exchange:
    """One response being parsed (llhttp's callbacks), and its body chunks waiting.

    A connection reuses its exchange (and parser) for the next request only after a clean,
    complete keep-alive response: llhttp then waits at the start of the next message.
    """

    def __init__(self, head_only: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        # Whitespace before a chunk extension's ";" (RFC 9112 7.1.1's BWS); llhttp then
        # also takes spaces before the CRLF, and still refuses any other byte after a size.
        self.parser.set_dangerous_leniencies(lenient_spaces_after_chunk_size=True)
        self.reset(head_only)

    def reset(self, head_only: bool) -> None:
        """Ready for the next response on the same connection."""
        self.head_only = head_only  # HEAD and CONNECT: the head is the whole response
        # (name, lowercased name, value), as httpx.Headers keeps them (headers.py)
        self.headers: list[tuple[bytes, bytes, bytes]] = []
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
        self.coding: bytes | None = None  # a transfer coding other than chunked
        self.direct = False  # its body's rest was read past the parser (transport/direct.py)

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
        lower = name.lower()
        self.headers.append((name, lower, value))
        if len(name) in (14, 17):
            if lower == b"content-length":
                self.framed = True
                self.length = int(value) if value.isdigit() else None
            elif lower == b"transfer-encoding":
                self.chunked = True
                if value == b"chunked":
                    self.framed = True
                else:
                    self._codings(value)

    def _codings(self, value: bytes) -> None:
        codings = [part.partition(b";")[0].strip() for part in value.lower().split(b",")]
        # llhttp frames a chunked body only when chunked is the final coding.
        self.framed = self.framed or codings[-1] == b"chunked"
        other = [coding for coding in codings if coding not in _NO_CODING]
        if other and self.coding is None:
            self.coding = other[0]

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
            self.coding = None
            self.reason = b""
            return
        if self.coding is not None:  # a body imgflow cannot undo: the response fails
            coding = self.coding.decode("latin-1")
            self.error = self.error or BadResponse(f"unsupported transfer coding {coding}")
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
            room = HEAD_LIMIT - self.head_bytes
            if len(data) > room:  # the head must end within the room left: feed that first
                view = memoryview(data)
                self.head_bytes = HEAD_LIMIT
                self._parse(view[:room])
                if not self.head_done:
                    self.error = self.error or BadResponse(
                        f"response head over {HEAD_LIMIT // 1024} KB"
                    )
                    return
                self._parse(view[room:])
                return
            self.head_bytes += len(data)
        self._parse(data)

    def _parse(self, data: bytes | memoryview) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.error = self.error or BadResponse("unexpected protocol upgrade")
        except httptools.HttpParserError as exc:
            if self.complete:
                self.leftover = True
            elif self.error is None:
                self.error = BadResponse(str(exc) or type(exc).__name__)

    def end(self, error: BaseException | None) -> None:
        """The connection ended (EOF or lost)."""
        if self.complete or self.error is not None:
            return
        if isinstance(error, OSError):
            self.error = httpx.ReadError(str(error) or "connection reset")
            self.error.__cause__ = error
        elif not self.head_done:
            self.error = ConnectionClosed("Server disconnected without sending a response.")
        elif self.until_close:
            self.complete = True
            self.keep_alive = False
        else:
            self.error = IncompleteBody(
                "peer closed connection without sending complete message body: "
                f"received {self.received} bytes"
            )
