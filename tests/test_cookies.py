"""A cookie a site sets is sent back on its later requests, as a browser or curl -b/-c
would (engine/fetch.py `_send`: the client's jar on imgflow's own transport), and a run
whose sites set none sends none."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from support.cli_run import imgflow_run
from support.threaded import ThreadedServer

from imgflow.demo.images import make_gif

GIF = make_gif("c", 4)


class _Site(ThreadedServer):
    def __init__(self, sets: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.sets = sets  # the path whose response sets the cookie
        self.seen: list[tuple[str, str | None]] = []  # (path, Cookie header) in order
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Site

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen.append((self.path, self.headers.get("Cookie")))
        if self.path == "/robots.txt":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.send_header("Content-Length", str(len(GIF)))
        if self.path == self.server.sets:
            self.send_header("Set-Cookie", "session=s1; Path=/")
        self.end_headers()
        self.wfile.write(GIF)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _site(sets: str) -> Iterator[_Site]:
    server = _Site(sets)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_cookie_a_site_sets_goes_back_with_its_later_requests(tmp_path: Path) -> None:
    paths = [f"img/{n}.gif" for n in range(6)]
    with _site("/img/0.gif") as server:
        doc = imgflow_run(tmp_path, f"http://127.0.0.1:{server.server_address[1]}", paths,
                          "-c", "1", "--max-batches", "1")  # fmt: skip
    assert doc["exit"] == 0, doc["stderr"]
    images = [(path, cookie) for path, cookie in server.seen if path.startswith("/img/")]
    setter = [path for path, _ in images].index("/img/0.gif")
    assert images[setter][1] is None
    after = images[setter + 1 :]
    assert after, images
    assert all(cookie == "session=s1" for _, cookie in after), images


def test_a_site_that_sets_no_cookie_is_sent_none(tmp_path: Path) -> None:
    with _site("/never") as server:
        doc = imgflow_run(tmp_path, f"http://127.0.0.1:{server.server_address[1]}",
                          [f"img/{n}.gif" for n in range(3)], "-c", "1")  # fmt: skip
    assert doc["exit"] == 0, doc["stderr"]
    assert all(cookie is None for _, cookie in server.seen), server.seen
