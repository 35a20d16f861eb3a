"""A loopback server of one small GIF at every path that notes when the first request came
and counts requests per path (the streamed-input tests: a large table, a large paths file).

    with counting_server() as server:
        ... server.base_url, server.first, server.requests, server.paths["/img/1.gif"]
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

from imgflow.demo.images import make_gif
from support.threaded import ThreadedServer

GIF = make_gif("s", 4)


class Counting(ThreadedServer):
    """The server: `first` (time.monotonic of the first request), `requests`, `paths`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.first: float | None = None
        self.requests = 0
        self.paths: Counter[str] = Counter()
        self.lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        """(A client gone mid-reply, as an interrupted run is, is no error of the test's.)"""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Counting

    def do_GET(self) -> None:
        with self.server.lock:
            if self.server.first is None:
                self.server.first = time.monotonic()
            self.server.requests += 1
            self.server.paths[self.path] += 1
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.send_header("Content-Length", str(len(GIF)))
        self.end_headers()
        self.wfile.write(GIF)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def counting_server() -> Iterator[Counting]:
    """A Counting server on a free loopback port, stopped on the way out."""
    server = Counting()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
