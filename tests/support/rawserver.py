"""A server that answers each path with bytes given byte for byte: malformed HTTP on purpose.

    with RawServer() as server:
        server.set("/a.gif", b"HTTP/1.1 200 OK\\r\\nContent-Length: +43\\r\\n\\r\\n...")
        server.set("/b.gif", ok(GIF), late=b"junk", late_delay=0.2)   # bytes while idle
        server.url("/a.gif"); server.requests    # [(connection number, path), ...]

Every connection is served in its own thread: read a request head, send the path's bytes
(then `late` after `late_delay` seconds), and read the next request on the same connection
unless the reply says ``close``. Unknown paths get a 404 with Content-Length. The server
never looks at what it sends: it is for responses no well-behaved server produces.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass


def ok(body: bytes, content_type: str = "image/gif") -> bytes:
    """A well-formed 200 response with Content-Length."""
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


@dataclass(frozen=True)
class RawReply:
    """The bytes to send, bytes to send later, and whether to close after."""

    data: bytes
    late: bytes = b""
    late_delay: float = 0.0
    close: bool = False


class RawServer:
    """Raw replies on a free port of 127.0.0.1, from a thread per connection."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self._replies: dict[str, RawReply] = {}
        self._lock = threading.Lock()
        self.requests: list[tuple[int, str]] = []
        self.heads: list[bytes] = []  # each request's head, in the order of `requests`
        self.times: list[float] = []  # when each request's head arrived (time.monotonic)
        self.sent: list[str] = []  # paths whose reply was sent to its end
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._clients: list[socket.socket] = []
        self._closing = False
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str) -> str:
        """The URL of `path` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def set(
        self, path: str, data: bytes, *, late: bytes = b"", late_delay: float = 0.0,
        close: bool = False,
    ) -> None:  # fmt: skip
        """Answer `path` with `data` (then `late` after `late_delay` s; close when asked)."""
        with self._lock:
            self._replies[path] = RawReply(data, late, late_delay, close)

    def __enter__(self) -> RawServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        with contextlib.suppress(OSError):  # wakes the acceptor (a close alone does not)
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                client.close()
        self._acceptor.join(5)
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
                self._clients.append(client)
            thread = threading.Thread(target=self._serve, args=(client, number), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket, number: int) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = client.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
                path = target.split("?", 1)[0]
                if "://" in path:  # absolute form, from a proxy
                    path = "/" + path.split("://", 1)[1].partition("/")[2]
                with self._lock:
                    self.requests.append((number, path))
                    self.heads.append(head)
                    self.times.append(time.monotonic())
                    reply = self._replies.get(path) or RawReply(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                    )
                client.sendall(reply.data)
                with self._lock:
                    self.sent.append(path)
                if reply.late:
                    time.sleep(reply.late_delay)
                    client.sendall(reply.late)
                if reply.close:
                    client.shutdown(socket.SHUT_WR)
                    while client.recv(65536):
                        pass
                    return
        except OSError:
            return
        finally:
            client.close()
