"""Run a job on the local backend: plan -> fetch -> store -> index -> consolidate -> notify."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from imgflow.engine import loop
from imgflow.engine.batch import run_batch
from imgflow.engine.breaker import Breaker
from imgflow.engine.failures import FailureKind
from imgflow.engine.fetch import Fetcher, gates
from imgflow.engine.hosts import run_hosts
from imgflow.engine.plan import Item
from imgflow.engine.politeness import OnChange, Politeness
from imgflow.engine.ports import StoredObject
from imgflow.engine.records import ResultRecord
from imgflow.engine.robots import Stored
from imgflow.errors import JobError
from imgflow.local.consolidate import INDEX_FULL_SECONDS, INDEX_FULL_WAIT, consolidate
from imgflow.local.folder import DataFolder
from imgflow.local.index import INTERRUPTED, Database, retried, sqlite_errors
from imgflow.local.job import LocalJob, LocalRunResult, Progress, RunInterrupted, new_run_id
from imgflow.local.layouts.base import RunStore
from imgflow.local.layouts.shard_rewrite import mend_folder
from imgflow.local.layouts.shards import FLUSH_RECORDS, ShardLayout, ShardStore, WrittenShard
from imgflow.local.planner import Planner
from imgflow.local.safefs import StorageError, remove_tree
from imgflow.local.settings import RunSettings
from imgflow.local.stopping import Stopper

FLUSH_SECONDS = 1.0
# Items of a per-host run read ahead of the fetches, at most (memory stays flat).
LOOKAHEAD = 10_000
# How often the fetching side looks for rows a planner thread has added meanwhile.
PLAN_POLL = 0.02


def run_job(
    job: LocalJob,
    settings: RunSettings,
    data_dir: Path,
    progress: Progress | None = None,
    run_id: str | None = None,
    on_wait: Callable[[str], None] | None = None,
    on_throttle: OnChange | None = None,
    stop: threading.Event | None = None,
    on_warn: Callable[[str], None] | None = None,
) -> LocalRunResult:
    """Run `job` into `data_dir` (stored by `settings.layout`); raises RunInterrupted after
    saving on SIGINT/SIGTERM.

    Setting `stop` (from another thread) interrupts the run the same way a signal does.

    Every storage problem (the folder, a link in it, the index) is a StorageError of one
    line. Images are stored while holding the folder's lock (imgflow/local/folder.py);
    `on_wait` hears which run holds it when this one has to wait; `on_throttle` hears
    each time a host's politeness tightens (see engine.politeness).
    """
    folder = DataFolder(data_dir)
    try:
        if isinstance(settings.layout, ShardLayout):
            settings.layout.prepare(folder)  # a linked or read-only shards/: nothing written
        db = folder.database()
        try:
            with sqlite_errors(db.path):
                return _run(
                    job,
                    settings,
                    folder,
                    db,
                    run_id or new_run_id(),
                    progress,
                    on_wait,
                    on_throttle,
                    stop,
                    on_warn,
                )
        finally:
            db.close()
    finally:
        folder.close()


def _run(
    job: LocalJob,
    settings: RunSettings,
    folder: DataFolder,
    db: Database,
    run_id: str,
    progress: Progress | None,
    on_wait: Callable[[str], None] | None,
    on_throttle: OnChange | None,
    stop: threading.Event | None = None,
    on_warn: Callable[[str], None] | None = None,
) -> LocalRunResult:
    db.create_run(run_id, job.source, job.concurrency, job.batch_size, job.max_batches)
    planner: Planner | None = None
    duplicates = 0
    if job.source.count is None:
        # A source of unknown size (a large table, a stream) is planned in a thread while
        # the run fetches what is planned already: the first request goes out at once.
        planner = Planner(db.path, run_id, job.source.items())
        if progress is not None:
            progress.planned(run_id, None, 0)
    else:
        total, duplicates = db.plan(run_id, job.source.items())
        if progress is not None:
            progress.planned(run_id, total, duplicates)
            _planned_failures(db, run_id, progress)
    try:
        return _fetch_all(
            job,
            settings,
            folder,
            db,
            run_id,
            progress,
            on_wait,
            on_throttle,
            stop,
            planner,
            duplicates,
            on_warn,
        )
    except JobError:  # the rest of a table streamed while fetching proved unreadable
        with contextlib.suppress(sqlite3.Error):
            db.finish_run(run_id, INTERRUPTED)
        raise
    finally:
        if planner is not None:
            planner.stop()


def _fetch_all(
    job: LocalJob,
    settings: RunSettings,
    folder: DataFolder,
    db: Database,
    run_id: str,
    progress: Progress | None,
    on_wait: Callable[[str], None] | None,
    on_throttle: OnChange | None,
    stop: threading.Event | None,
    planner: Planner | None,
    duplicates: int,
    on_warn: Callable[[str], None] | None = None,
) -> LocalRunResult:
    """Fetch, store and index every planned item (while `planner` plans the rest)."""
    with folder.locked(f"run {run_id}", on_wait):
        tmp_root = folder.folder("tmp")
        folder.sweep_tmp(tmp_root)
        tmp, marker = folder.run_tmp(tmp_root, run_id)
        store = settings.layout.open_run(folder, tmp, fsync=settings.fsync)
        try:
            if isinstance(store, ShardStore):
                store.bind(db, run_id)
            runner = _Runner(job, settings, db, store, run_id, progress)
            runner.on_throttle = on_throttle
            runner.stop_event = stop
            runner.data_dir, runner.on_warn = folder.path, on_warn
            runner.spill_dir = str(folder.path / "tmp" / run_id)
            runner.planner = planner
            _store_all(runner, db, store, run_id)
            with contextlib.suppress(OSError, sqlite3.Error):  # else the next start does
                mend_folder(folder, db, fsync=settings.fsync)  # marked shards, once each
            if planner is not None:
                duplicates = planner.duplicates
            lines = tuple(runner.breaker.lines())
            with sqlite_errors(db.path):
                db.note_hosts(run_id, lines)  # (for `imgflow status`)
            result = consolidate(db, settings, folder, run_id, duplicates, tmp)
            return replace(result, throttles=runner.throttles, host_lines=lines)
        finally:
            store.close()
            remove_tree(tmp_root, run_id)
            marker.close()


def _planned_failures(db: Database, run_id: str, progress: Progress) -> None:
    """Tell `progress` of the items that failed when planned (a table's bad rows)."""
    for record in db.records(run_id, only_failed=True):
        if record.failure_kind is FailureKind.INVALID_URL:  # (not a fetch's failure)
            progress.record(record)


def _store_all(runner: _Runner, db: Database, store: RunStore, run_id: str) -> None:
    """Fetch and store every pending item; on an interrupt or a failed index write, keep
    exactly the images whose rows are written."""
    try:
        loop.run(runner.main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        store.seal()
        with contextlib.suppress(sqlite3.Error):
            runner.flush(final=True)  # a shard layout commits its partial shard
        store.discard_unsettled(keep=runner.revalidating)
        db.finish_run(run_id, INTERRUPTED)
        raise RunInterrupted(
            f"run {run_id} interrupted; finished images are saved, rerun to complete it"
        ) from None
    except BaseException as exc:
        store.seal()
        store.discard_unsettled(keep=runner.revalidating)
        problem = _first_error(exc, StorageError)
        if problem is None:
            unreadable = _first_error(exc, JobError)  # the rest of a streamed table
            if unreadable is not None:
                raise unreadable from None
            raise
        with contextlib.suppress(sqlite3.Error):
            db.finish_run(run_id, INTERRUPTED)
        raise problem from None


_E = TypeVar("_E", bound=BaseException)


def _first_error(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first `kind` error that stopped a run (inside exception groups too), if one did."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_error(inner, kind)
            if found is not None:
                return found
    return None


class _Runner:
    """The asynchronous part of a run: batches in flight, records flushed as they finish."""

    def __init__(
        self,
        job: LocalJob,
        settings: RunSettings,
        db: Database,
        store: RunStore,
        run_id: str,
        progress: Progress | None,
    ) -> None:
        self.job = job
        self.planner: Planner | None = None
        self.settings = settings
        self.db = db
        self.store = store
        self.run_id = run_id
        self.progress = progress
        self.buffer: list[ResultRecord] = []
        self.stop_event: threading.Event | None = None
        self.finished: list[float] = []
        self.flushed = time.monotonic()
        self.on_throttle: OnChange | None = None
        self.throttles: dict[str, int] = {}
        self.breaker = Breaker(job.breaker)
        self.stopped = False  # a signal or `stop_event` came: the store is sealed
        # Keys of stored images being revalidated: a new version that replaced one is kept
        # even when its record is lost to an interrupt (the old file is gone already; the
        # stale row's size and mtime make the next run fetch it again).
        self.revalidating: set[str] = set()
        self.data_dir = Path()
        self.spill_dir: str | None = None  # a per-host run's items past a host's share
        self.on_warn: Callable[[str], None] | None = None
        self.mtimes: dict[str, int] = {}  # of files stored by worker processes
        # A shard layout writes each sample's metadata (a caption) into its shard.
        self.shards = store if isinstance(store, ShardStore) else None
        self.metas: dict[str, Mapping[str, object]] = {}
        # robots.txt answers of earlier runs (24 hours), and those read now, saved by flush.
        self.robots = db.robots_cache() if settings.fetch.robots else None

    async def main(self) -> None:
        """Run every pending batch; a signal or `stop_event` seals the store and cancels."""
        try:
            if self.job.workers > 1 and await self._on_workers():
                return
            with Stopper(self.stopping, self.stop_event).watching():
                in_flight = self.in_flight()
                batches = self._pending()
                with ThreadPoolExecutor(max_workers=min(32, in_flight)) as pool:
                    if self.job.per_host:
                        await self._by_host(batches, pool, in_flight)
                    else:
                        await self._fetch(batches, pool, in_flight)
        finally:
            self.flush(final=True)

    def in_flight(self) -> int:
        """The run's cap on requests in flight (one process or many)."""
        in_flight = self.job.wanted_in_flight
        if self.job.max_in_flight is not None:
            in_flight = min(in_flight, self.job.max_in_flight)
        return in_flight

    async def _on_workers(self) -> bool:
        """Run the batches on worker processes; False when none could start."""
        from imgflow.local.workers.coordinator import Coordinator
        from imgflow.local.workers.worker import WorkerStart

        in_flight = self.in_flight()
        start = WorkerStart(
            self.settings,
            self.data_dir,
            self.run_id,
            self.job.concurrency,
            self.job.max_batches,
            in_flight,
            self.job.refresh,
            self.robots.entries() if self.robots is not None else None,
            self.job.per_host,
        )
        coordinator = Coordinator(
            self,
            self._pending(),  # (a table still being planned: its batches as they come)
            start,
            self.job.workers,
            on_change=self.on_throttle,
            on_seal=self.store.seal,
            stop_event=self.stop_event,
            on_warn=self.on_warn,
        )
        try:
            return await coordinator.run_all()
        finally:
            self.throttles = coordinator.throttles()

    def take(self, record: ResultRecord, finished: float, mtime: int | None) -> None:
        """A worker process's record, with the time of the file it stored."""
        if mtime is not None and record.key:
            self.mtimes[record.key] = mtime
        self.buffer.append(record)
        self.finished.append(finished)
        self.seen(record)
        if time.monotonic() - self.flushed >= FLUSH_SECONDS:
            self.flush()

    def seen(self, record: ResultRecord) -> None:
        """A record the progress hears of (a worker's sample is indexed with its shard)."""
        if self.planner is not None and not self.planner.fetching.is_set():
            self.planner.fetching.set()
        if self.progress is not None:
            self.progress.record(record)

    def commit_shard(self, folder: str, written: WrittenShard) -> None:
        """A shard a worker process wrote whole in its `folder` of the run's tmp folder."""
        assert self.shards is not None
        self.shards.commit_from(folder, written)

    def kept_robots(self, read: Mapping[str, Stored]) -> None:
        """robots.txt answers a worker process read: saved with the next flush."""
        if self.robots is not None:
            for origin, stored in read.items():
                self.robots.put(origin, stored)

    def _planned(self, total: int, duplicates: int) -> None:
        """The planner has planned every item: the progress learns the total."""
        if self.progress is not None:
            self.progress.planned(self.run_id, total, duplicates)
            _planned_failures(self.db, self.run_id, self.progress)

    async def _pending(self) -> AsyncIterator[list[Item]]:
        """The pending batches in input order; while a planner is still adding items, an
        empty page waits for more (a batch may then be short)."""
        planner, size = self.planner, self.job.batch_size
        if planner is None:
            for batch in self.db.pending_batches(self.run_id, size):
                yield batch
            return
        last = 0
        while True:
            done = planner.done.is_set()
            if self.progress is not None and not done:
                self.progress.reading(planner.read)
            last, batch = self.db.pending_page(self.run_id, last, size)
            if batch:
                yield batch
            elif done:
                self._planned(planner.result(), planner.duplicates)
                return
            else:
                await asyncio.sleep(PLAN_POLL)

    async def _fetch(
        self, batches: AsyncIterator[list[Item]], pool: Executor, in_flight: int
    ) -> None:
        async with Fetcher(
            self.settings.fetch, max_connections=in_flight, robots_cache=self.robots
        ) as fetcher:
            fetcher.politeness.on_change = self.on_throttle
            try:
                await self._batches(batches, fetcher, pool, in_flight)
            finally:
                self.throttles = fetcher.politeness.throttles()

    def note_metas(self, items: Sequence[Item]) -> None:
        """Keep the items' metadata until their records reach a shard (a shard layout)."""
        if self.shards is not None:
            self.metas.update((item.url, item.meta) for item in items if item.meta)

    async def _noting_metas(self, pages: AsyncIterator[list[Item]]) -> AsyncIterator[list[Item]]:
        async for page in pages:
            self.note_metas(page)
            yield page

    async def _by_host(
        self, pages: AsyncIterator[list[Item]], pool: Executor, in_flight: int
    ) -> None:
        """Run the items of many hosts, each host's queue on its own (engine/hosts.py)."""
        pages = self._noting_metas(pages)
        # Each host's gate lets `concurrency` requests go at once; the pool, `in_flight`.
        politeness = Politeness(gates(self.settings.fetch, self.job.concurrency), self.on_throttle)
        async with Fetcher(
            self.settings.fetch,
            max_connections=in_flight,
            politeness=politeness,
            robots_cache=self.robots,
        ) as fetcher:
            try:
                await run_hosts(
                    pages,
                    fetcher=fetcher,
                    store=self.store,
                    concurrency=self.job.concurrency,
                    breaker=self.breaker,
                    lookahead=max(LOOKAHEAD, self.job.batch_size * self.job.max_batches),
                    executor=pool,
                    known=self.known,
                    on_record=self.on_record,
                    refresh=self.job.refresh,
                    spill_dir=self.spill_dir,
                )
            finally:
                self.throttles = politeness.throttles()

    async def _batches(
        self,
        batches: AsyncIterator[list[Item]],
        fetcher: Fetcher,
        pool: Executor,
        in_flight: int,
    ) -> None:
        """Run the batches, at most max_batches with items not yet started.

        A batch's slot opens for the next batch as soon as fewer than concurrency of its
        items are left, so the next batch's fetches fill the slots its last, slowest
        fetches leave idle.
        Requests in flight stay within concurrency per batch and concurrency x max_batches
        in all (the shared semaphore); each batch's records are saved when it finishes.
        """
        open_batches = asyncio.Semaphore(self.job.max_batches)
        shared = asyncio.Semaphore(in_flight)

        async def one(batch: list[Item]) -> None:
            opened = True

            def started() -> None:
                nonlocal opened
                if opened:
                    opened = False
                    open_batches.release()

            self.note_metas(batch)
            try:
                await run_batch(
                    batch,
                    fetcher=fetcher,
                    store=self.store,
                    concurrency=self.job.concurrency,
                    executor=pool,
                    known=self.known(batch),
                    on_record=self.on_record,
                    shared=shared,
                    on_tail=started,
                    refresh=self.job.refresh,
                )
                self.flush()
            finally:
                started()

        async with asyncio.TaskGroup() as group:
            async for batch in batches:
                await open_batches.acquire()
                group.create_task(one(batch))

    def known(self, batch: Sequence[Item]) -> dict[str, StoredObject] | None:
        """Index rows to skip (or revalidate): only those whose file is still there, whole.

        A file whose time changed but whose bytes did not (a copied folder) is kept, and
        its row takes the file's new time."""
        if self.job.force:
            return None
        rows = self.db.stamps([item.url for item in batch])
        intact: dict[str, StoredObject] = {}
        restamp: list[tuple[int, str]] = []
        for url, (row, mtime) in rows.items():
            found = self.store.intact(row.key, row.bytes, mtime, row.sha256)
            if found is not None:
                intact[url] = row
                if found != mtime:
                    restamp.append((found, url))
        gone = [u for u in rows if u not in intact]
        if gone:
            self.db.forget(gone)
        if restamp:
            self.db.restamp(restamp)
        if self.job.refresh:
            self.revalidating.update(row.key for row in intact.values())
        return intact

    def stopping(self) -> None:
        """A stop came (a signal, `stop_event`): the store refuses every commit from now on."""
        self.stopped = True
        self.store.seal()

    def on_record(self, record: ResultRecord) -> None:
        if self.stopped and record.failure_kind is FailureKind.STORE_FAILED:
            # The sealed store refused its commit: the image's response came with the stop
            # (a late event loop sees both in one poll, the signal first). It did not fail:
            # it stays unfinished (pending), for a retry to fetch once.
            return
        if self.planner is not None and not self.planner.fetching.is_set():
            self.planner.fetching.set()
        self.buffer.append(record)
        self.finished.append(time.time())
        if self.progress is not None:
            self.progress.record(record)
        # Live counts for `imgflow status RUN` while the run works: records reach the
        # index at least every FLUSH_SECONDS, not only when a whole batch is done (a shard
        # layout's, with their held images, at least every FLUSH_RECORDS).
        if time.monotonic() - self.flushed >= FLUSH_SECONDS or (
            self.shards is not None and len(self.buffer) >= FLUSH_RECORDS
        ):
            self.flush()

    def flush(self, *, final: bool = False) -> None:
        """Save the buffered records; the stored files' entries are settled once saved.

        A shard layout saves them itself, a shard's with its commit (`final`: the last
        shard is committed, however full)."""
        self.flushed = time.monotonic()
        if self.robots is not None:
            read = self.robots.take_new()
            if read:
                with sqlite_errors(self.db.path):
                    self.db.save_robots(read)
        if self.shards is not None:
            records, self.buffer = self.buffer, []
            finished, self.finished = self.finished, []
            metas = {r.url: self.metas.pop(r.url) for r in records if r.url in self.metas}
            self.shards.record(records, finished, metas, final=final)
            return
        if self.buffer:
            records, self.buffer = self.buffer, []
            keys = [r.key for r in records if r.outcome.wrote and r.key]
            mtimes = self.store.written(keys)
            if self.mtimes:
                mtimes.update((k, self.mtimes.pop(k)) for k in keys if k in self.mtimes)
            finished, self.finished = self.finished, []
            with sqlite_errors(self.db.path):
                # A disk full only for a moment (an image's part file that failed with
                # ENOSPC is being removed by its thread) gets a few short retries.
                retried(
                    lambda: self.db.record(self.run_id, records, finished, mtimes=mtimes),
                    "full",
                    seconds=INDEX_FULL_SECONDS,
                    pause=INDEX_FULL_WAIT,
                    most=INDEX_FULL_WAIT,
                )
            self.store.settle(keys)
