"""One worker process: claims batches from the coordinator, fetches and stores them through
the run's Layout, and sends each item's record back.

Started by the coordinator as ``python -m imgflow.local.workers.worker FD PARENT`` with
its end of a socket pair at FD. It ends when the coordinator says stop, when the
coordinator is gone (the socket's end; and the kernel kills it if its parent dies:
PR_SET_PDEATHSIG), or on SIGTERM; then it seals its store, removes the files whose
records it could not send, and exits. SIGINT is the coordinator's to handle.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgflow.engine import loop
from imgflow.engine.batch import run_batch
from imgflow.engine.fetch import Fetcher, gates
from imgflow.engine.plan import Item
from imgflow.engine.records import ResultRecord
from imgflow.engine.robots import Stored
from imgflow.local.folder import DataFolder
from imgflow.local.layouts.base import RunStore
from imgflow.local.layouts.shards import FLUSH_RECORDS, ShardStore, WrittenShard
from imgflow.local.libc import libc
from imgflow.local.safefs import subfolder
from imgflow.local.settings import RunSettings
from imgflow.local.workers.permits import Link, OwnedGate, RemoteRobots
from imgflow.local.workers.wire import Outbox, messages

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerStart:
    """What the coordinator tells a new worker."""

    settings: RunSettings
    data_dir: Path
    run_id: str
    concurrency: int
    max_batches: int
    in_flight: int
    refresh: bool
    # robots.txt answers of earlier runs (from the index): the coordinator's cache for the
    # run, which every worker asks (RemoteRobots); those a worker reads go back to it.
    robots: Mapping[str, Stored] | None = None
    # a table of full URLs: `concurrency` is each host's cap (else `in_flight` is)
    per_host: bool = False

    @property
    def host_cap(self) -> int:
        """Requests in flight to one host at most."""
        return self.concurrency if self.per_host else self.in_flight


FLUSH_SECONDS = 0.5  # a shard layout's records reach the open shard at least this often


class _Worker:
    def __init__(self, link: Link, start: WorkerStart, store: RunStore, folder: str) -> None:
        self.link = link
        self.start = start
        self.store = store
        self.revalidating: set[str] = set()
        self.robots = RemoteRobots(link)
        # A shard layout: this worker appends its samples to shards of its own in its tmp
        # folder (`folder`, in the run's); the coordinator commits each one it sends.
        self.shards = store if isinstance(store, ShardStore) else None
        self.folder = folder
        self.buffer: list[tuple[ResultRecord, float]] = []
        self.batch_of: dict[str, int] = {}  # url -> its claim, until its record is sent
        self.metas: dict[str, Mapping[str, Any]] = {}
        self.flushed = time.monotonic()
        if self.shards is not None:
            self.shards.run_id = start.run_id
            self.shards.commit_to = self.send_shard
            self.shards.save_to = self.send_plain

    async def run(self) -> None:
        start = self.start
        owned = gates(start.settings.fetch, start.host_cap, gate=OwnedGate, link=self.link)
        politeness = self.link.politeness(owned)
        # a table of full URLs: a batch's items wait at their own hosts' gates, not in turn
        concurrency = start.in_flight if start.per_host else start.concurrency
        with ThreadPoolExecutor(max_workers=min(32, start.in_flight)) as pool:
            async with Fetcher(
                start.settings.fetch,
                max_connections=start.in_flight,
                politeness=politeness,
                robots_cache=self.robots,
            ) as fetcher:
                open_batches = asyncio.Semaphore(start.max_batches)
                shared = asyncio.Semaphore(start.in_flight)

                async def one(batch_id: int, items: list[Item], known: Any) -> None:
                    opened = True

                    def started() -> None:
                        nonlocal opened
                        if opened:
                            opened = False
                            open_batches.release()

                    def on_record(record: ResultRecord) -> None:
                        if self.shards is not None:
                            self.staged(batch_id, record)
                        else:
                            self.sent(batch_id, record)

                    try:
                        await run_batch(
                            items,
                            fetcher=fetcher,
                            store=self.store,
                            concurrency=concurrency,
                            executor=pool,
                            known=known,
                            on_record=on_record,
                            shared=shared,
                            on_tail=started,
                            refresh=start.refresh,
                        )
                        self.flush()
                    finally:
                        started()

                async with asyncio.TaskGroup() as group:
                    while True:
                        await open_batches.acquire()
                        claim = await self.link.claim()
                        if claim is None:
                            break
                        batch_id, items, known = claim
                        if self.shards is not None:
                            self.metas.update((i.url, i.meta) for i in items if i.meta)
                        if start.refresh and known:
                            self.revalidating.update(row.key for row in known.values())
                        group.create_task(one(batch_id, items, known))

    def staged(self, batch_id: int, record: ResultRecord) -> None:
        """A shard layout's record: kept for the open shard (the progress hears of it now;
        the coordinator indexes it with its shard's commit)."""
        self.batch_of[record.url] = batch_id
        self.buffer.append((record, time.time()))
        if record.outcome.wrote:
            self.link.send("seen", record)
        if time.monotonic() - self.flushed >= FLUSH_SECONDS or len(self.buffer) >= FLUSH_RECORDS:
            self.flush()

    def flush(self, *, final: bool = False) -> None:
        """Append the kept records' samples to the open shard (a full one, or the last one
        when `final`, is sent to be committed); the others go to the coordinator."""
        self.flushed = time.monotonic()
        if self.shards is None:
            return
        timed, self.buffer = self.buffer, []
        metas = {r.url: self.metas.pop(r.url) for r, _ in timed if r.url in self.metas}
        self.shards.record([r for r, _ in timed], [t for _, t in timed], metas, final=final)

    def send_shard(self, written: WrittenShard) -> list[tuple[ResultRecord, float]]:
        """A shard written whole in this worker's folder: the coordinator commits it."""
        batches = [self.batch_of.pop(url, -1) for url in written.urls]
        self.link.send("shard", self.folder, written, batches)
        return []

    def send_plain(self, timed: Sequence[tuple[ResultRecord, float]]) -> None:
        """Records with no sample (failures, skips): the coordinator indexes them."""
        for record, finished in timed:
            self.link.send("record", self.batch_of.pop(record.url, -1), record, finished, None)

    def sent(self, batch_id: int, record: ResultRecord) -> None:
        """Send a record with its file's time; the file is then the coordinator's to index."""
        key = record.key if record.outcome.wrote and record.key else None
        mtime = self.store.written([key]).get(key) if key else None
        self.link.send("record", batch_id, record, time.time(), mtime)
        if key:
            self.store.settle([key])


def _die_with_parent(parent: int) -> None:
    """Be killed when the coordinator's process dies (Linux); exit if it already has."""
    prctl = getattr(libc(), "prctl", None)
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        sys.exit(1)


async def _main(fd: int) -> None:
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
    incoming = messages(reader)
    link = Link(incoming, Outbox(writer))
    first = await anext(incoming, None)
    if first is None or first[0] != "start":
        return
    start: WorkerStart = first[1]
    folder = DataFolder(start.data_dir, create=False)
    try:
        run_tmp = subfolder(folder.folder("tmp", create=False), start.run_id, create=False)
        own = f"worker-{os.getpid()}"
        try:  # a folder of its own: part files are named by a counter of each process
            tmp = subfolder(run_tmp, own)
        finally:
            os.close(run_tmp)
        store = start.settings.layout.open_run(folder, tmp, fsync=start.settings.fsync)
        worker = _Worker(link, start, store, own)
        task = asyncio.current_task()
        assert task is not None
        pump = asyncio.create_task(link.pump())
        loop = asyncio.get_running_loop()
        ended = asyncio.create_task(link.ended.wait())
        ended.add_done_callback(lambda waited: waited.cancelled() or task.cancel())
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await worker.run()
        except asyncio.CancelledError:
            pass
        finally:
            ended.cancel()
            store.seal()
            try:
                worker.flush(final=True)  # a shard layout's last shard, however full
            finally:
                store.discard_unsettled(keep=worker.revalidating)
            store.close()
            os.close(tmp)
            await link.outbox.close(drain=not link.gone)
            pump.cancel()
    finally:
        folder.close()


def main(argv: list[str]) -> int:
    """Run one worker on the socket at descriptor argv[1] for the process argv[2]."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd, parent = int(argv[1]), int(argv[2])
    _die_with_parent(parent)
    try:
        loop.run(_main(fd))
    except Exception as exc:  # one line for the run's terminal, never a traceback
        print(f"imgflow worker {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
