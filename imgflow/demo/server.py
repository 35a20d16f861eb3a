"""A static file server on loopback for the demo, the tests and the benchmarks.

``serve_directory(root)`` starts serving ``root`` over HTTP/1.1 (keep-alive, Content-Length,
Content-Type by extension, 404 for anything that is not a file under ``root``) from
background threads, and returns a ``StaticServer`` that is also a context manager::

    with serve_directory(FLAGS_DIR) as server:
        httpx.get(server.base_url + "/ad/ad.gif")
"""

from __future__ import annotations

import contextlib
import mimetypes
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

CONTENT_TYPES = {
    ".gif": "image/gif",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}


def serve_directory(root: Path, host: str = "127.0.0.1", port: int = 0) -> StaticServer:
    """Start serving the files under ``root``; ``port=0`` picks a free port."""
    return StaticServer(root, host, port)


def content_type(path: Path) -> str:
    """The Content-Type to send for ``path``, by its extension."""
    suffix = path.suffix.lower()
    guessed = CONTENT_TYPES.get(suffix) or mimetypes.guess_type(path.name)[0]
    return guessed or "application/octet-stream"


class StaticServer:
    """A running static file server; ``close()`` stops it and its connections."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = root.resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"not a directory: {root}")
        self._httpd = _Server((host, port), _Handler, self.root)
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"imgflow-static-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        """``http://host:port`` without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The full URL of ``path`` (with or without a leading slash)."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def close(self) -> None:
        """Stop accepting, drop open keep-alive connections and join the threads."""
        self._httpd.shutdown()
        self._httpd.drop_connections()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> StaticServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    """One daemon thread per connection; remembers them so close can drop and join them."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handler: type[_Handler], root: Path) -> None:
        self.root = root
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        """Remember (or forget) an open connection and the thread serving it."""
        with self._lock:
            if open_:
                self._connections[connection] = threading.current_thread()
            else:
                self._connections.pop(connection, None)

    def drop_connections(self, timeout: float = 2.0) -> None:
        """Shut down every open connection and wait for its handler thread to return."""
        with self._lock:
            open_now = list(self._connections.items())
        for connection, _ in open_now:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for _, thread in open_now:
            thread.join(timeout)


class _Handler(BaseHTTPRequestHandler):
    """GET and HEAD for files under the server's root; nothing else."""

    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "imgflow-demo"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 60

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        super().finish()

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet."""

    def _respond(self, send_body: bool) -> None:
        file = self._resolve()
        if file is None:
            self._reply(404, b"not found\n", "text/plain; charset=utf-8", send_body)
            return
        try:
            body = file.read_bytes()
        except OSError:
            self._reply(404, b"not found\n", "text/plain; charset=utf-8", send_body)
            return
        self._reply(200, body, content_type(file), send_body)

    def _resolve(self) -> Path | None:
        """The file the request names, or None if it is missing or outside the root."""
        relative = unquote(urlsplit(self.path).path).lstrip("/")
        if "\x00" in relative:
            return None
        candidate = (self.server.root / relative).resolve()
        if not candidate.is_relative_to(self.server.root) or not candidate.is_file():
            return None
        return candidate

    def _reply(self, status: int, body: bytes, kind: str, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)
