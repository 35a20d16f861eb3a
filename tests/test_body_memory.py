"""Peak memory of a real `imgflow run` process: bodies stream, decoding is bounded.

The server makes its bodies on the fly (a GIF header, then zeros), so neither it nor the
test holds an image; the child's peak RSS is its VmHWM, read from /proc while it runs.
The bounds are generous
(memory, not time: stable on any machine): holding any one body would exceed them.
"""

from __future__ import annotations

import gzip
import http.server
import json
import subprocess
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli_run import start_cli
from support.processes import peak_rss_until_exit
from support.threaded import ThreadedServer

from imgflow.demo.images import make_gif

GIF = make_gif("ad")
MB = 1024 * 1024
BIG = 200 * MB
BOMB_CAP = 256 * MB
RSS_LIMIT = 150 * MB  # small-image runs peak near 50 MB


def gzip_bomb(size: int) -> bytes:
    """A gzip stream of a GIF header and `size` zeros, made without holding or compressing
    them all: after a full flush the compressor starts afresh, so every 1 MB of zeros
    compresses to the same bytes, repeated here."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = b"\0" * MB
    head = packer.compress(GIF) + packer.flush(zlib.Z_FULL_FLUSH)
    zeros = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    assert packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH) == zeros
    crc = zlib.crc32(GIF)
    for _ in range(size // MB):
        crc = zlib.crc32(block, crc)
    length = (len(GIF) + size // MB * MB) % 2**32
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = crc.to_bytes(4, "little") + length.to_bytes(4, "little")
    return header + head + zeros * (size // MB) + packer.flush() + trailer


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bomb = b""

    def do_GET(self) -> None:
        if self.path == "/robots.txt":  # the site has none: all allowed
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/big/"):
            self.send_response(200)
            self.send_header("Content-Type", "image/gif")
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            self.wfile.write(GIF)
            block = b"\0" * MB
            left = BIG - len(GIF)
            while left > 0:
                self.wfile.write(block[:left])
                left -= min(left, MB)
            return
        coding = {"/bomb.gif": "gzip", "/double.gif": "gzip, gzip"}[self.path]
        body = self.bomb if coding == "gzip" else gzip.compress(self.bomb)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.send_header("Content-Encoding", coding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    Handler.bomb = gzip_bomb(1024 * MB)
    httpd = ThreadedServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def run_imgflow(base: str, paths: list[str], folder: Path, max_bytes: int) -> tuple[dict, int]:
    """`imgflow run` as a child process: its JSON output and its peak RSS in bytes."""
    (folder / "paths.txt").write_text("\n".join(paths) + "\n")
    env = {
        "IMGFLOW_FETCH_MAX_BYTES": str(max_bytes),
        "IMGFLOW_FETCH_RETRIES": "0",
        "IMGFLOW_FETCH_TOTAL_TIMEOUT": "300",
        "IMGFLOW_LOCAL_FSYNC": "false",
    }
    argv = [
        "run",
        "--base-url", base,
        "--paths-file", str(folder / "paths.txt"),
        "--data-dir", str(folder / "data"),
        "-c", "3",
        "-o", "json",
        "--tolerate-failures", "100",
    ]  # fmt: skip
    out = folder / "out.json"
    with out.open("wb") as sink:
        proc = start_cli(*argv, env=env, stdout=sink, stderr=subprocess.PIPE)
        peak = peak_rss_until_exit(proc)
        stderr = proc.stderr.read() if proc.stderr else b""
    assert proc.returncode == 0, stderr.decode(errors="replace")
    return json.loads(out.read_text()), peak


def test_images_larger_than_memory_stream_to_disk(server: str, tmp_path: Path) -> None:
    paths = [f"big/{i}.gif" for i in range(3)]
    doc, peak = run_imgflow(server, paths, tmp_path, max_bytes=BIG)
    results = doc["results"]
    assert [r["outcome"] for r in results] == ["stored"] * 3, results
    assert all(r["bytes"] == BIG for r in results)
    for record in results:
        path = tmp_path / "data" / "images" / record["key"]
        assert path.stat().st_size == BIG
        path.unlink()  # 600 MB: free the disk at once
    print(f"peak RSS {peak / MB:.0f} MB")
    assert peak < RSS_LIMIT, f"peak RSS {peak / MB:.0f} MB for 3 x {BIG // MB} MB images"


@pytest.mark.parametrize(
    ("path", "error"), [("bomb.gif", "Too large"), ("double.gif", "Bad response")]
)
def test_compression_bombs_stay_small(server: str, tmp_path: Path, path: str, error: str) -> None:
    """1 GB of zeros in 1 MB of gzip (or in gzip over gzip) against a 256 MB cap."""
    doc, peak = run_imgflow(server, [path], tmp_path, max_bytes=BOMB_CAP)
    (record,) = doc["results"]
    assert record["outcome"] == "failed" and record["error"].startswith(f"{error}: "), record
    print(f"peak RSS {peak / MB:.0f} MB")
    assert peak < RSS_LIMIT, f"peak RSS {peak / MB:.0f} MB for a {path}"
