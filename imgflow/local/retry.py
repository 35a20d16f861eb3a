"""Retry a local run: a new run of just the paths that failed in it (or never finished).

The new run skips what the index holds, so an image stored since is not fetched again. Its
link to the run it retries is kept in the ``run_parents`` table of the same database
(``run_id -> parent``), which `imgflow status` reads to show it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from imgflow.engine.records import Outcome
from imgflow.errors import UsageError
from imgflow.local.db import PENDING, RUNNING, Database, RunInfo
from imgflow.local.runner import DB_NAME, LocalJob

SCHEMA = "CREATE TABLE IF NOT EXISTS run_parents (run_id TEXT PRIMARY KEY, parent TEXT NOT NULL)"
_RETRIED = (Outcome.FAILED.value, PENDING)


def _connect(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute(SCHEMA)
    return conn


def _paths(db_path: Path, run_id: str) -> Iterator[str]:
    conn = _connect(db_path)
    try:
        cursor = conn.execute(
            "SELECT path FROM results WHERE run_id = ? AND outcome IN (?, ?) ORDER BY seq",
            (run_id, *_RETRIED),
        )
        for (path,) in cursor:
            yield str(path)
    finally:
        conn.close()


def count_failed(db_path: Path, run_id: str) -> int:
    """How many paths of the run failed or never finished."""
    conn = _connect(db_path)
    try:
        row = conn.execute(
            "SELECT COUNT(*) FROM results WHERE run_id = ? AND outcome IN (?, ?)",
            (run_id, *_RETRIED),
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])


def link(db_path: Path, run_id: str, parent: str) -> None:
    """Record that `run_id` retries `parent`."""
    conn = _connect(db_path)
    try:
        conn.execute("INSERT OR REPLACE INTO run_parents VALUES (?, ?)", (run_id, parent))
    finally:
        conn.close()


def parents(db_path: Path, run_ids: Iterable[str]) -> dict[str, str]:
    """run id -> the run it retries, for those of `run_ids` that are retries.

    Reads only (the database may be read-only): no table yet means no retries yet.
    """
    ids = list(run_ids)
    if not ids or not db_path.exists():
        return {}
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT run_id, parent FROM run_parents WHERE run_id IN ({marks})", ids
        ).fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()
    return {str(r): str(p) for r, p in rows}


@dataclass(frozen=True)
class RetryPlan:
    """The run to retry and the job that retries it."""

    parent: RunInfo
    failed: int
    job: LocalJob


def plan_retry(data_dir: Path, run_id: str) -> RetryPlan:
    """The job of a retry of `run_id` (UsageError when there is no such finished run)."""
    db_path = data_dir / DB_NAME
    if not db_path.exists():
        raise UsageError(f"no runs yet in {data_dir}")
    db = Database(db_path)
    try:
        info = db.run_info(run_id)
    finally:
        db.close()
    if info is None:
        raise UsageError(f"run {run_id!r} not found in {db_path}")
    if info.state == RUNNING:
        raise UsageError(f"run {run_id} is still running: retry it once it has ended")
    job = LocalJob(
        base_url=info.base_url,
        paths=lambda: _paths(db_path, run_id),
        concurrency=info.concurrency,
        batch_size=info.batch_size,
        max_batches=info.max_batches,
    )
    return RetryPlan(info, count_failed(db_path, run_id), job)
