"""Retry a local run: a new run of just the items that failed in it (or never finished).

The new run skips what the index holds, so an image stored since is not fetched again. Its
link to the run it retries is kept in the ``run_parents`` table of the same database
(``run_id -> parent``), which `imgflow status` reads to show it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgflow.engine.plan import Item
from imgflow.engine.records import Outcome
from imgflow.errors import UsageError
from imgflow.local.index import RUNNING, Database, RunInfo
from imgflow.local.runner import DB_NAME, LocalJob


@dataclass(frozen=True)
class RetrySource:
    """The items of a run that failed or never finished, read back from the index as they
    were planned (URL, key, metadata and name)."""

    db_path: Path
    run_id: str
    count: int
    base_url: str | None
    concurrency: int | None = None

    def items(self) -> Iterator[Item]:
        """The items to run again, in the order the run had them, streamed."""
        db = Database(self.db_path, readonly=True)
        try:
            yield from db.retry_items(self.run_id)
        finally:
            db.close()

    def describe(self) -> dict[str, Any]:
        """``{"kind": "retry", "run": <the run retried>}``."""
        return {"kind": "retry", "run": self.run_id}

    def cleanup(self) -> None:
        """Nothing to remove."""


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
    """The run to retry and the job that retries it (in the run's `layout`, when known)."""

    parent: RunInfo
    failed: int
    job: LocalJob
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
    db = Database(db_path)
    try:
        info = db.run_info(run_id)
        failed = 0 if info is None else db.count_retried(run_id)
        layout = None if info is None else run_layout(db.conn, run_id)
    finally:
        db.close()
    if info is None:
        raise UsageError(f"run {run_id!r} not found in {db_path}")
    if info.state == RUNNING:
        raise UsageError(f"run {run_id} is still running: retry it once it has ended")
    job = LocalJob(
        source=RetrySource(db_path, run_id, failed, info.base_url),
        concurrency=info.concurrency,
        batch_size=info.batch_size,
        max_batches=info.max_batches,
    )
    return RetryPlan(info, failed, job, layout)
