"""Run a job on the local backend: plan -> fetch -> store -> index -> consolidate -> notify."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from imgflow.config import Config
from imgflow.engine.batch import run_batch
from imgflow.engine.fetch import Fetcher
from imgflow.engine.plan import Item, item_for
from imgflow.engine.politeness import OnChange
from imgflow.engine.ports import StoredObject
from imgflow.engine.records import ResultRecord, Summary
from imgflow.errors import BackendError
from imgflow.local.db import INTERRUPTED, Database, process_alive
from imgflow.local.notifier import run_notify_command, write_failures
from imgflow.local.store import FileStore

DB_NAME = "imgflow.db"
FLUSH_SECONDS = 1.0


@dataclass(frozen=True)
class LocalJob:
    """A validated job; `paths` yields normalised paths and can be called more than once."""

    base_url: str
    paths: Callable[[], Iterable[str]]
    concurrency: int
    batch_size: int
    max_batches: int
    force: bool = False
    key_base: str | None = None


class Progress(Protocol):
    """What a run reports while it works."""

    def planned(self, run_id: str, total: int, duplicates: int) -> None:
        """The job is planned: `total` unique paths."""

    def record(self, record: ResultRecord) -> None:
        """One path is done."""


@dataclass(frozen=True)
class LocalRunResult:
    """What a finished (or interrupted) local run reports."""

    run_id: str
    data_dir: Path
    summary: Summary
    duplicates: int
    state: str
    failures_file: Path | None
    notify_problem: str
    throttles: Mapping[str, int] = field(default_factory=dict)


class RunInterrupted(BackendError):
    """The run was stopped by a signal; what was done so far is saved."""

    exit_code = 130


def new_run_id() -> str:
    """A sortable, unique run id such as ``20261124-190512-3fa9c1``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def run_job(
    job: LocalJob,
    cfg: Config,
    data_dir: Path,
    progress: Progress | None = None,
    run_id: str | None = None,
    on_throttle: OnChange | None = None,
    stop: threading.Event | None = None,
) -> LocalRunResult:
    """Run `job` into `data_dir`; raises RunInterrupted after saving on SIGINT/SIGTERM.

    `on_throttle` hears each time a host's politeness tightens (see engine.politeness).
    Setting `stop` (from another thread) interrupts the run the same way a signal does.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(data_dir / DB_NAME)
    run_id = run_id or new_run_id()
    tmp_root = data_dir / "tmp"
    _sweep_stale_tmp(tmp_root)
    tmp_dir = tmp_root / f"{run_id}{_PID_MARK}{os.getpid()}"
    store = FileStore(data_dir / "images", tmp_dir, fsync=cfg.local.fsync)
    store.open_tmp()
    try:
        db.create_run(run_id, job.base_url, job.concurrency, job.batch_size, job.max_batches)
        items = (item_for(job.base_url, p, job.key_base) for p in job.paths())
        total, duplicates = db.plan(run_id, items)
        if progress is not None:
            progress.planned(run_id, total, duplicates)
        runner = _Runner(job, cfg, db, store, run_id, progress, stop)
        runner.on_throttle = on_throttle
        try:
            asyncio.run(runner.main())
        except (KeyboardInterrupt, asyncio.CancelledError):
            runner.flush()
            db.finish_run(run_id, INTERRUPTED)
            raise RunInterrupted(
                f"run {run_id} interrupted; finished images are saved, rerun to complete it"
            ) from None
        result = _consolidate(db, cfg, data_dir, run_id, duplicates, store.tmp_dir)
        return replace(result, throttles=runner.throttles)
    finally:
        store.close_tmp()
        db.close()


def _consolidate(
    db: Database, cfg: Config, data_dir: Path, run_id: str, duplicates: int, tmp_dir: Path
) -> LocalRunResult:
    summary = db.summary(run_id)
    state = "succeeded" if summary.succeeded(cfg.job.tolerate_failures) else "failed"
    failures_file: Path | None = None
    problem = ""
    if summary.failed:
        failures_file = data_dir / "runs" / run_id / "failures.json"
        write_failures(failures_file, db.failure_messages(run_id), tmp_dir)
        if cfg.notify.command:
            problem = run_notify_command(
                cfg.notify.command, failures_file, run_id, shell=cfg.notify.shell
            )
    db.finish_run(run_id, state)
    return LocalRunResult(run_id, data_dir, summary, duplicates, state, failures_file, problem)


_PID_MARK = ".pid"


def _sweep_stale_tmp(tmp_root: Path) -> None:
    """Remove temporary folders left by runs whose process is gone (kill -9).

    A run's folder is named ``<run-id>.pid<pid>`` from the moment it exists, so a run
    starting beside a live one never mistakes the other's folder for a stale one.
    """
    if not tmp_root.is_dir():
        return
    for folder in tmp_root.iterdir():
        _, mark, pid = folder.name.rpartition(_PID_MARK)
        if mark and pid.isdigit() and process_alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)


async def _cancel_on(stop: threading.Event, task: asyncio.Task[None]) -> None:
    """Cancel `task` once `stop` is set (polled: the event is set from another thread)."""
    while not stop.is_set():
        await asyncio.sleep(0.1)
    task.cancel()


class _Runner:
    """The asynchronous part of a run: batches in flight, records flushed as they finish."""

    def __init__(
        self,
        job: LocalJob,
        cfg: Config,
        db: Database,
        store: FileStore,
        run_id: str,
        progress: Progress | None,
        stop: threading.Event | None = None,
    ) -> None:
        self.stop = stop
        self.job = job
        self.cfg = cfg
        self.db = db
        self.store = store
        self.run_id = run_id
        self.progress = progress
        self.buffer: list[ResultRecord] = []
        self.finished: list[float] = []
        self.flushed = time.monotonic()
        self.on_throttle: OnChange | None = None
        self.throttles: dict[str, int] = {}

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        in_main = threading.current_thread() is threading.main_thread()
        if task is not None and in_main:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        watcher = None
        if task is not None and self.stop is not None:
            watcher = asyncio.create_task(_cancel_on(self.stop, task))
        in_flight = self.job.concurrency * self.job.max_batches
        batches = self.db.pending_batches(self.run_id, self.job.batch_size)
        try:
            with ThreadPoolExecutor(max_workers=min(32, in_flight)) as pool:
                async with Fetcher(self.cfg.fetch, max_connections=in_flight) as fetcher:
                    fetcher.politeness.on_change = self.on_throttle
                    try:
                        await self._batches(batches, fetcher, pool, in_flight)
                    finally:
                        self.throttles = fetcher.politeness.throttles()
        finally:
            if in_main:
                loop.remove_signal_handler(signal.SIGTERM)
            if watcher is not None:
                watcher.cancel()
            self.flush()

    async def _batches(
        self, batches: Iterator[list[Item]], fetcher: Fetcher, pool: Executor, in_flight: int
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
                )
                self.flush()
            finally:
                started()

        async with asyncio.TaskGroup() as group:
            for batch in batches:
                await open_batches.acquire()
                group.create_task(one(batch))

    def known(self, batch: Sequence[Item]) -> dict[str, StoredObject] | None:
        """Index rows to skip: only those whose file is still there, whole."""
        if self.job.force:
            return None
        rows = self.db.lookup([item.url for item in batch])
        intact = {u: o for u, o in rows.items() if self.store.size_of(o.key) == o.bytes}
        gone = [u for u in rows if u not in intact]
        if gone:
            self.db.forget(gone)
        return intact

    def on_record(self, record: ResultRecord) -> None:
        self.buffer.append(record)
        self.finished.append(time.time())
        if self.progress is not None:
            self.progress.record(record)
        # Live counts for `imgflow status RUN` while the run works: records reach the
        # index at least every FLUSH_SECONDS, not only when a whole batch is done.
        if time.monotonic() - self.flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.flushed = time.monotonic()
        if self.buffer:
            records, self.buffer = self.buffer, []
            finished, self.finished = self.finished, []
            self.db.record(self.run_id, records, finished)
