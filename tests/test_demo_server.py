"""The demo static server serves files with the right headers, keeps connections alive and
refuses anything outside its root."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import httpx
import pytest

from imgflow.demo import FLAGS_DIR
from imgflow.demo.images import make_jpeg, make_png
from imgflow.demo.server import StaticServer, serve_directory


def test_flag_server_serves_the_bundled_flags(flag_server: StaticServer) -> None:
    response = httpx.get(flag_server.url("/ad/ad.gif"))
    assert response.status_code == 200
    assert response.content == (FLAGS_DIR / "ad" / "ad.gif").read_bytes()
    assert response.headers["content-type"] == "image/gif"
    assert response.headers["content-length"] == str(len(response.content))
    assert httpx.get(flag_server.url("zz/zz.gif")).status_code == 404


def test_content_types_head_and_directories(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(make_png("a"))
    (tmp_path / "b.JPG").write_bytes(make_jpeg("b"))
    (tmp_path / "sub").mkdir()
    with serve_directory(tmp_path) as server, httpx.Client(base_url=server.base_url) as client:
        assert client.get("/a.png").headers["content-type"] == "image/png"
        assert client.get("/b.JPG").headers["content-type"] == "image/jpeg"
        head = client.head("/a.png")
        assert head.content == b"" and head.headers["content-length"] == str(len(make_png("a")))
        assert client.get("/sub").status_code == 404
        assert client.get("/sub/").status_code == 404


def test_keep_alive_and_no_escape_from_root(flag_server: StaticServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", flag_server.port, timeout=2)
    try:
        for path in ["/ad/ad.gif", "/../__init__.py", "/%2e%2e/__init__.py", "/ae/ae.gif"]:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            assert response.status == (200 if path.endswith(".gif") else 404), path
            assert not response.will_close
            if path == "/ad/ad.gif":
                first_socket = connection.sock
        assert connection.sock is first_socket
    finally:
        connection.close()


def test_close_stops_serving_and_drops_idle_connections(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(make_png("a"))
    server = serve_directory(tmp_path)
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=1)
    idle.request("GET", "/a.png")
    idle.getresponse().read()
    server.close()
    assert idle.sock is not None and idle.sock.recv(1) == b""
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()
