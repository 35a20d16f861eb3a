"""An image whose response arrives together with the Ctrl-C is left unfinished, never failed.

When the event loop is late (a loaded machine, a planner thread holding the GIL), the
signal and the last bytes of images in flight can be seen in one poll, the signal first:
the stop seals the store and cancels the run, but the fetches woken with it run one step
before the cancel reaches them, and the store refuses their commits. Those images did not
fail: they stay pending, so a retry fetches them once and the interrupted run never
reports them as failed (imgflow/local/runner.py).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from support.counting import GIF
from support.loops import on_loop
from support.settings import quick_config
from support.threaded import ThreadedServer

from imgflow.backends.local import run_settings
from imgflow.engine.job import validate_base_url
from imgflow.engine.records import ResultRecord
from imgflow.local.folder import DB_NAME
from imgflow.local.job import LocalJob, RunInterrupted
from imgflow.local.runner import run_job
from imgflow.sources.job_json import from_job

HELD = 6  # images whose responses wait for the signal


class _Holding(ThreadedServer):
    """`0.gif` at once; every other image once `release` is set (`held` count them)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.held = 0
        self.sent = 0

    def handle_error(self, request: object, client_address: object) -> None:
        """(A client gone mid-reply, as an interrupted run is, is no error of the test's.)"""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Holding

    def do_GET(self) -> None:
        if self.path == "/robots.txt":
            self.send_error(404)
            return
        if self.path != "/0.gif":
            with self.server.lock:
                self.server.held += 1
            self.server.release.wait(10)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.send_header("Content-Length", str(len(GIF)))
        self.end_headers()
        self.wfile.write(GIF)
        self.wfile.flush()
        with self.server.lock:
            self.server.sent += 1

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _holding() -> Iterator[_Holding]:
    server = _Holding()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def _signals_kept() -> Iterator[None]:
    """Give this process its SIGINT and SIGTERM handling back after the run (a stopped run
    leaves them ignored for its owner, the command, to restore)."""
    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            signal.signal(signum, handler)


def _until(done: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.005)


class _LateLoop:
    """A progress whose first record holds the event loop while SIGINT comes and then
    the held responses arrive: the loop's next poll sees the signal first."""

    def __init__(self, server: _Holding) -> None:
        self.server = server

    def planned(self, run_id: str, total: int | None, duplicates: int) -> None:
        pass

    def reading(self, count: int) -> None:
        pass

    def record(self, record: ResultRecord) -> None:
        server = self.server
        if server.release.is_set():
            return
        _until(lambda: server.held >= HELD)
        os.kill(os.getpid(), signal.SIGINT)  # (the loop's handler: it only wakes the loop)
        server.release.set()
        _until(lambda: server.sent >= HELD + 1)
        time.sleep(0.05)  # the responses reach the run's sockets


# asyncio's loop sees the signal and the held responses in one poll, the signal first
# (three trials: under heavy load a poll can see the signal alone); uvloop's sees the signal
# on its own and cancels the fetches before they wake, which must end the same way.
@pytest.mark.parametrize(
    ("loop_kind", "trial"), [("asyncio", 0), ("asyncio", 1), ("asyncio", 2), ("uvloop", 0)]
)
def test_an_image_whose_response_comes_with_the_signal_stays_unfinished(
    tmp_path: Path, loop_kind: str, trial: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop(loop_kind, monkeypatch)
    paths = [f"{n}.gif" for n in range(HELD + 1)]
    with _holding() as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        job = LocalJob(
            from_job(validate_base_url(base), paths, None),
            concurrency=HELD + 1,
            batch_size=HELD + 1,
            max_batches=1,
        )
        with _signals_kept(), pytest.raises(RunInterrupted):
            run_job(job, run_settings(quick_config()), tmp_path, progress=_LateLoop(server))
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        rows = conn.execute("SELECT path, outcome, error FROM results ORDER BY seq").fetchall()
    assert ("0.gif", "stored", None) in rows
    assert [r for r in rows if r[1] == "failed"] == []
    # (each held image's response came after the signal: none was stored)
    assert [r[0] for r in rows if r[1] == "pending"] == paths[1:]
    stored = {r[0] for r in rows if r[1] == "stored"}
    files = {p.name for p in (tmp_path / "images").rglob("*.gif")}
    assert files == stored  # a refused commit left no file; a stored image has its row
