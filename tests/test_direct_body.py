"""Large bodies read straight from their sockets in a thread of their own
(engine/transport/direct.py):
the bytes stored are exactly the body's, framing rules hold as on the event loop (bytes
beyond a body close its connection), and a body cut short, stalled or cancelled fails the
way any other body does, leaving nothing behind."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.cli_run import start_cli
from support.faultserver import FaultServer
from support.loops import LOOPS, on_loop
from support.nginx import Nginx, Server
from support.processes import signalled
from support.rawserver import RawServer, ok
from support.replies import Ok, Trickle
from support.settings import quick_fetch
from test_body import CountingStore

from imgflow.demo.images import make_gif
from imgflow.engine import loop as engine_loop
from imgflow.engine import messages
from imgflow.engine.batch import run_batch
from imgflow.engine.body import StoreSink
from imgflow.engine.fetch import Fetcher
from imgflow.engine.outcome import Fetched, FetchFailure
from imgflow.engine.plan import item_for
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.engine.settings import FetchConfig
from imgflow.local.store import FileWriter

MB = 1024 * 1024
BIG = make_gif("ad") + bytes(range(256)) * (4 * MB // 256)  # over 4 MB, not all zeros
OTHER = make_gif("fr")
SETTINGS = quick_fetch(
    timeout=2.0, connect_timeout=1.0, total_timeout=20.0, retries=0, max_bytes=16 * MB
)
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: %d\r\n\r\n"


class WatchedStore(CountingStore):
    """A FileStore that records which thread wrote how many bytes, and any write that
    comes after its writer was aborted or committed."""

    def __init__(self, root: Path, *, fsync: bool) -> None:
        super().__init__(root, fsync=fsync)
        self.written: dict[str, int] = {}
        self.late_writes = 0
        self.lock = threading.Lock()

    def open(self, key: str) -> FileWriter:
        return _WatchedWriter(self, super().open(key))


class _WatchedWriter(FileWriter):
    def __init__(self, store: WatchedStore, inner: FileWriter) -> None:
        self.__dict__.update(inner.__dict__)
        self._watch = store
        self._ended = False

    def write(self, chunk: bytes | memoryview) -> None:
        with self._watch.lock:
            if self._ended:
                self._watch.late_writes += 1
            name = threading.current_thread().name.split("_")[0]
            self._watch.written[name] = self._watch.written.get(name, 0) + len(chunk)
        super().write(chunk)

    def commit(self, content_type: str | None) -> None:
        self._ended = True
        super().commit(content_type)

    def abort(self) -> None:
        self._ended = True
        super().abort()


@pytest.fixture
def raw() -> Iterator[RawServer]:
    with RawServer() as server:
        yield server


def fetch_in_turn(
    urls: list[str], store: WatchedStore, settings: FetchConfig = SETTINGS, pause: float = 0.0
) -> list[ResultRecord]:
    """The images at `urls`, one after another over one connection, into `store`."""

    async def go() -> list[ResultRecord]:
        records = []
        with ThreadPoolExecutor(2) as pool:
            async with Fetcher(settings, max_connections=1) as fetcher:
                for url in urls:
                    base, path = url.rsplit("/", 1)
                    records += await run_batch(
                        [item_for(base, path)],
                        fetcher=fetcher,
                        store=store,
                        concurrency=1,
                        executor=pool,
                    )
                    await asyncio.sleep(pause)
        return records

    try:
        return engine_loop.run(go())
    finally:
        store.close()


def stored(store: WatchedStore, record: ResultRecord) -> bytes:
    assert record.outcome is Outcome.STORED and record.key is not None, record
    return store.path_of(record.key).read_bytes()


@pytest.mark.parametrize("fsync", [True, False])
def test_a_large_body_is_written_by_its_own_thread_not_the_event_loop(
    fault_server: FaultServer, tmp_path: Path, fsync: bool
) -> None:
    fault_server.set("/big.gif", Ok(BIG))
    store = WatchedStore(tmp_path, fsync=fsync)
    (record,) = fetch_in_turn([fault_server.url("/big.gif")], store)
    assert stored(store, record) == BIG
    assert record.sha256 == hashlib.sha256(BIG).hexdigest() and record.bytes == len(BIG)
    # The event loop sees the head and the first read (at most a few hundred KB); the rest
    # goes from socket to file in the body's own thread.
    assert sum(store.written.values()) == len(BIG)
    assert store.written.get("imgflow-body", 0) >= len(BIG) - 600 * 1024, store.written
    assert list(store.tmp_dir.iterdir()) == []


def fetch_queued(urls: list[str], store: WatchedStore) -> list[ResultRecord]:
    """The images at `urls` at once over one connection: each waits for the one before to
    release it, and takes it in the same turn of the event loop."""

    async def go() -> list[ResultRecord]:
        with ThreadPoolExecutor(2) as pool:
            async with Fetcher(SETTINGS, max_connections=1) as fetcher:
                base = urls[0].rsplit("/", 1)[0]
                items = [item_for(base, url.rsplit("/", 1)[1]) for url in urls]
                return await run_batch(
                    items, fetcher=fetcher, store=store, concurrency=len(urls), executor=pool
                )

    try:
        return engine_loop.run(go())
    finally:
        store.close()


EVIL = HEAD % (len(OTHER) + 10) + OTHER + b"EVIL-BYTES"


@pytest.mark.parametrize("loop_kind", LOOPS)  # (uvloop's reads the bytes before reuse too)
def test_bytes_right_after_a_large_body_close_its_connection(
    raw: RawServer, tmp_path: Path, loop_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop(loop_kind, monkeypatch)
    raw.set("/big.gif", HEAD % len(BIG) + BIG + EVIL)
    raw.set("/good.gif", ok(OTHER))
    store = WatchedStore(tmp_path, fsync=False)
    big, good = fetch_queued([raw.url("/big.gif"), raw.url("/good.gif")], store)
    assert stored(store, big) == BIG
    assert stored(store, good) == OTHER
    assert raw.connections == 2  # the connection that carried the extra bytes was closed


def test_bytes_arriving_after_a_large_body_close_its_idle_connection(
    raw: RawServer, tmp_path: Path
) -> None:
    raw.set("/big.gif", HEAD % len(BIG) + BIG, late=EVIL, late_delay=0.05)
    raw.set("/good.gif", ok(OTHER))
    store = WatchedStore(tmp_path, fsync=False)
    big, good = fetch_in_turn([raw.url("/big.gif"), raw.url("/good.gif")], store, pause=0.3)
    assert stored(store, big) == BIG
    assert stored(store, good) == OTHER
    assert raw.connections == 2


def test_a_large_body_cut_short_is_incomplete_and_leaves_nothing(
    raw: RawServer, tmp_path: Path
) -> None:
    raw.set("/cut.gif", HEAD % len(BIG) + BIG[: 2 * MB], close=True)
    store = WatchedStore(tmp_path, fsync=False)
    (record,) = fetch_in_turn([raw.url("/cut.gif")], store)
    assert record.outcome is Outcome.FAILED
    assert record.error == messages.failure(
        messages.INCOMPLETE,
        raw.url("/cut.gif"),
        f"peer closed connection without sending complete message body: received {2 * MB} bytes",
    )
    assert store.written.get("imgflow-body", 0) > 0  # it broke while its thread read it
    assert not any(p.is_file() for p in store.images_dir.rglob("*"))
    assert list(store.tmp_dir.iterdir()) == []


def test_a_large_body_that_stalls_times_out(raw: RawServer, tmp_path: Path) -> None:
    raw.set("/stall.gif", HEAD % len(BIG) + BIG[: 2 * MB])  # then nothing, connection open
    store = WatchedStore(tmp_path, fsync=False)
    settings = dataclasses.replace(SETTINGS, timeout=0.5)
    started = time.monotonic()
    (record,) = fetch_in_turn([raw.url("/stall.gif")], store, settings)
    assert record.error == messages.failure(
        messages.TIMED_OUT, raw.url("/stall.gif"), "read timeout"
    )
    assert time.monotonic() - started < 5
    assert list(store.tmp_dir.iterdir()) == []


def test_a_cancelled_large_body_stops_its_thread_before_the_part_is_removed(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.set("/slow.gif", Trickle(BIG, chunk=64 * 1024, interval=0.05))
    store = WatchedStore(tmp_path, fsync=False)

    async def go() -> float:
        with ThreadPoolExecutor(2) as pool:
            async with Fetcher(SETTINGS, max_connections=1) as fetcher:
                sink = StoreSink(store, "slow.gif", pool)
                task = asyncio.create_task(
                    fetcher.fetch(fault_server.url("/slow.gif"), lambda: sink)
                )
                while store.written.get("imgflow-body", 0) < MB:
                    await asyncio.sleep(0.01)
                task.cancel()
                cancelled = time.monotonic()
                with pytest.raises(asyncio.CancelledError):
                    await task
                return time.monotonic() - cancelled

    try:
        waited = engine_loop.run(go())
    finally:
        store.close()
    assert waited < 1.0  # the thread stopped at once, not at the body's end
    assert store.late_writes == 0
    assert list(store.tmp_dir.iterdir()) == []
    assert fault_server.wait_for_in_flight(0)  # the connection was closed


def test_a_large_body_into_memory_is_read_whole_by_the_event_loop(
    fault_server: FaultServer,
) -> None:
    """Where no thread can read the rest (a memory sink here), the loop reads it all."""
    fault_server.set("/big.gif", Ok(BIG))

    async def go() -> Fetched | FetchFailure:
        async with Fetcher(SETTINGS, max_connections=1) as fetcher:
            return await fetcher.fetch(fault_server.url("/big.gif"))

    result = engine_loop.run(go())
    assert isinstance(result, Fetched) and result.data == BIG


def test_an_abort_after_the_runs_threads_stopped_still_discards_the_part(
    tmp_path: Path,
) -> None:
    """An interrupt can end a run's worker threads while a cancelled fetch is still
    unwinding: its abort must still discard the part and never raise (a RuntimeError there
    replaced the cancel, and the fetch's worker went on to the next image)."""
    store = WatchedStore(tmp_path, fsync=True)
    store.inline = False  # as a store whose writes are network calls: aborts go to the executor
    pool = ThreadPoolExecutor(1)
    sink = StoreSink(store, "a.gif", pool)

    async def go() -> None:
        await sink.write(BIG[: 2 * MB])  # over a flush: the part file exists
        pool.shutdown()
        await sink.abort()

    try:
        engine_loop.run(go())
    finally:
        store.close()
    assert list(store.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("moment", [0.0, 0.2, 0.4, 0.6])
def test_ctrl_c_during_large_downloads_from_nginx_ends_the_run_at_once(
    tmp_path: Path, moment: float
) -> None:
    """SIGINT to a real `imgflow run` while large bodies stream from a real nginx (rate
    limited so that many are in flight): exit 130 with one line, promptly, nothing left
    half-written. A cancelled body waits for its thread; before the fix, its abort could
    fail once the run's threads had stopped, and its worker went on fetching."""
    root = tmp_path / "www" / "l"
    root.mkdir(parents=True)
    names = [f"{i}.gif" for i in range(40)]
    for name in names:
        (root / name).write_bytes(BIG[: 2 * MB])
    (tmp_path / "paths.txt").write_text("".join(f"l/{n}\n" for n in names))
    serve = f"location / {{ root {tmp_path / 'www'}; limit_rate 4m; }}"
    with Nginx(tmp_path / "nginx", [Server(serve)]) as web:
        base = web.url(0, "")
        proc = start_cli(
            "run", "--base-url", base, "--paths-file", "paths.txt", "-c", "8",
            "--max-batches", "2",
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **signalled(),
        )  # fmt: skip
        tmp = tmp_path / "imgflow-data" / "tmp"
        deadline = time.monotonic() + 60
        while not any(tmp.rglob("*.part")) and time.monotonic() < deadline:
            time.sleep(0.01)  # until bodies stream (however slow the start-up)
        time.sleep(moment)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stderr
    lines = stderr.decode().strip().splitlines()
    assert b"interrupted" in stderr and len(lines) <= 2, stderr  # + "continue with: ..."
    assert lines[1:] in ([], [f"continue with: imgflow retry {lines[0].split()[3]}"]), stderr
    assert not any((tmp_path / "imgflow-data" / "tmp").rglob("*.part"))
