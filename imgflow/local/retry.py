"""Retry a local run: a new run of just the items that failed in it (or never finished).

The new run skips what the index holds, so an image stored since is not fetched again. Its
link to the run it retries is kept in the ``run_parents`` table of the same database
(``run_id -> parent``), which `imgflow status` reads to show it.

A run stopped while its input was still read (``RunInfo.planned`` false) never planned
the rest of it: its retry reads the source again (`imgflow.sources.reopen`) and runs,
after the run's own unfinished items, every item of the source the run never planned, so
the retry covers the whole job. Such a retry is itself planned as it goes (its count is
None).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from imgflow.engine.plan import Item
from imgflow.engine.records import Outcome
from imgflow.errors import UsageError
from imgflow.local.folder import DB_NAME
from imgflow.local.index import RUNNING, Database, RunInfo
from imgflow.local.job import LocalJob
from imgflow.sources.base import Source
from imgflow.sources.reopen import reopen

KIND = "retry"
ASKED = 500  # the source's items looked up in the index at a time


@dataclass(frozen=True)
class RetrySource:
    """The items of a run that failed or never finished, read back from the index as they
    were planned (URL, key, metadata and name); then, for a run stopped while its input
    was read, the items of its source (`rest`, read again) it never planned."""

    db_path: Path
    run_id: str
    failed: int
    base_url: str | None
    concurrency: int | None = None
    rest: Source | None = None

    @property
    def count(self) -> int | None:
        """The items to retry; None while the rest of the source is still to be read."""
        return self.failed if self.rest is None else None

    def items(self) -> Iterator[Item]:
        """The items to run again, in the order the run had them, streamed."""
        db = Database(self.db_path, readonly=True)
        try:
            yield from db.retry_items(self.run_id)
            if self.rest is not None:
                items = self.rest.items()
                while chunk := list(islice(items, ASKED)):
                    planned = db.planned_urls(self.run_id, [item.url for item in chunk])
                    yield from (item for item in chunk if item.url not in planned)
        finally:
            db.close()

    def describe(self) -> dict[str, Any]:
        """``{"kind": "retry", "run": <the run retried>}``."""
        return {"kind": KIND, "run": self.run_id}

    def cleanup(self) -> None:
        """Nothing to remove (a source read again is a file of the user's)."""


def link(db_path: Path, run_id: str, parent: str) -> None:
    """Record that `run_id` retries `parent`."""
    db = Database(db_path)
    try:
        db.link(run_id, parent)
    finally:
        db.close()


def parents(db_path: Path, run_ids: Iterable[str]) -> dict[str, str]:
    """run id -> the run it retries, for those of `run_ids` that are retries.

    Reads only (the database may be read-only): no database yet means no retries yet.
    """
    if not db_path.exists():
        return {}
    db = Database(db_path, readonly=True)
    try:
        return db.parents(run_ids)
    finally:
        db.close()


@dataclass(frozen=True)
class RetryPlan:
    """The run to retry and the job that retries it.

    `failed` counts the run's planned items to run again (failed or unfinished); for a run
    stopped while its input was read, `unread` names the input read again for the items
    never planned, or `lost` the one that cannot be (standard input); `layout` is the one
    the run stored its images in, when known."""

    parent: RunInfo
    failed: int
    job: LocalJob
    unread: str | None = None
    lost: str | None = None
    layout: str | None = None


def run_layout(conn: sqlite3.Connection, run_id: str) -> str | None:
    """The layout a run stored its images in, as the index shows it: its shards' format,
    files when it stored images and no shard, None when it stored nothing."""
    shard = conn.execute("SELECT name FROM shards WHERE run_id = ? LIMIT 1", (run_id,)).fetchone()
    if shard is not None:
        return "webdataset" if str(shard[0]).endswith(".tar") else "parquet"
    wrote = (Outcome.STORED.value, Outcome.UPDATED.value)
    stored = conn.execute(
        "SELECT 1 FROM results WHERE run_id = ? AND outcome IN (?, ?) LIMIT 1", (run_id, *wrote)
    ).fetchone()
    return "files" if stored is not None else None


def plan_retry(data_dir: Path, run_id: str) -> RetryPlan:
    """The job of a retry of `run_id` (UsageError when there is no such finished run)."""
    db_path = data_dir / DB_NAME
    if not db_path.exists():
        raise UsageError(f"no runs yet in {data_dir}")
    info, failed, layout = _run(db_path, run_id)
    if info.state == RUNNING:
        raise UsageError(f"run {run_id} is still running: retry it once it has ended")
    source = _source(db_path, info, failed)
    job = LocalJob(
        source=source,
        concurrency=info.concurrency,
        batch_size=info.batch_size,
        max_batches=info.max_batches,
    )
    unread = lost = None
    if not info.planned:
        described = info.source or {}
        label = str(described.get("file") or described.get("run") or "its input")
        if source.rest is None:
            lost = label
        else:
            unread = label
    return RetryPlan(info, failed, job, unread, lost, layout)


def _run(db_path: Path, run_id: str) -> tuple[RunInfo, int, str | None]:
    """The run's row, how many of its planned items to run again and its layout (one
    open of the index)."""
    db = Database(db_path)
    try:
        info = db.run_info(run_id)
        failed = 0 if info is None else db.count_retried(run_id)
        layout = None if info is None else run_layout(db.conn, run_id)
    finally:
        db.close()
    if info is None:
        raise UsageError(f"run {run_id!r} not found in {db_path}")
    return info, failed, layout


def _source(db_path: Path, info: RunInfo, failed: int) -> RetrySource:
    """The retry's source of run `info` (with the rest of its input when it was cut)."""
    rest: Source | None = None
    if not info.planned:
        described = info.source or {}
        if described.get("kind") == KIND and isinstance(described.get("run"), str):
            parent, parent_failed, _ = _run(db_path, described["run"])  # a retry cut short
            rest = _source(db_path, parent, parent_failed)
        else:
            rest = reopen(described)
    return RetrySource(db_path, info.id, failed, info.base_url, rest=rest)
