"""The durable job queue of `imgflow serve`: table ``serve_jobs`` in the data folder's imgflow.db.

A job is stored before the service answers 202, so accepted work survives SIGTERM, a crash
and a restart. States: ``queued`` -> ``running`` -> ``succeeded`` | ``failed``, or
``interrupted`` (by DELETE, as `imgflow status` says of its local run; a queue written
before says ``cancelled`` and is renamed when opened). A job's first local run has the
job's id; a job resumed after a restart runs again as ``<id>-<attempt>`` (the index skips
what the earlier attempt stored).

A job of full URLs (a body's ``urls``) keeps them, as a JSON array of ``urls`` entries, in
column ``urls`` (added to a table written before), with an empty ``base_url`` and ``paths``.

This module keeps its own connection and its own table; the local backend's tables are
read only through `imgflow.local.index`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgflow.local.job import new_run_id
from imgflow.sources.job_json import UrlsSource

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
INTERRUPTED = "interrupted"  # (a job stopped by DELETE: the word the CLI says of its run)
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, INTERRUPTED)
FINAL = (SUCCEEDED, FAILED, INTERRUPTED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS serve_jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    base_url TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    total INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    paths TEXT NOT NULL,
    run_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    submitted_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS serve_jobs_by_state ON serve_jobs (state);
UPDATE serve_jobs SET state = 'interrupted' WHERE state = 'cancelled';
"""

_COLUMNS = (
    "SELECT id, state, base_url, concurrency, total, duplicates, run_id, attempts, error,"
    " submitted_at, started_at, finished_at FROM serve_jobs"
)


@dataclass(frozen=True)
class Job:
    """One row of serve_jobs (without its paths); `base_url` is None for a job of URLs."""

    id: str
    state: str
    base_url: str | None
    concurrency: int
    total: int
    duplicates: int
    run_id: str | None
    attempts: int
    error: str | None
    submitted_at: float
    started_at: float | None
    finished_at: float | None


class QueueFull(Exception):
    """As many jobs are queued as serve.max_queued allows."""


class JobQueue:
    """The serve_jobs table; safe to use from several threads (one connection, a lock)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # a 202 must survive a power cut
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.executescript(SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(serve_jobs)")}
        if "urls" not in columns:
            self._conn.execute("ALTER TABLE serve_jobs ADD COLUMN urls TEXT")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def add(
        self,
        base_url: str | None,
        paths: Sequence[str],
        concurrency: int,
        max_queued: int,
        urls: UrlsSource | None = None,
    ) -> Job:
        """Store a queued job (durably: committed before this returns); QueueFull when full.

        A job of full URLs gives `urls` (its entries, rejected ones included: they fail
        when it runs) and no base URL or paths."""
        names = paths if urls is None else [item.url for item in urls.items()]
        unique = len(dict.fromkeys(names))
        stored_urls: str | None = None
        if urls is not None:
            stored_urls = json.dumps(urls.stored(), separators=(",", ":"))
        job = Job(
            id=new_run_id(),
            state=QUEUED,
            base_url=base_url,
            concurrency=concurrency,
            total=unique,
            duplicates=len(names) - unique,
            run_id=None,
            attempts=0,
            error=None,
            submitted_at=time.time(),
            started_at=None,
            finished_at=None,
        )
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                (queued,) = self._conn.execute(
                    "SELECT COUNT(*) FROM serve_jobs WHERE state = ?", (QUEUED,)
                ).fetchone()
                if queued >= max_queued:
                    raise QueueFull
                self._conn.execute(
                    "INSERT INTO serve_jobs (id, state, base_url, concurrency, total, duplicates,"
                    " paths, submitted_at, urls) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job.id,
                        job.state,
                        job.base_url or "",
                        job.concurrency,
                        job.total,
                        job.duplicates,
                        "\n".join(paths),
                        job.submitted_at,
                        stored_urls,
                    ),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return job  # as stored: the worker may have claimed it already

    def queued_count(self) -> int:
        """Jobs waiting to run."""
        with self._lock:
            (count,) = self._conn.execute(
                "SELECT COUNT(*) FROM serve_jobs WHERE state = ?", (QUEUED,)
            ).fetchone()
        return int(count)

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        with self._lock:
            row = self._conn.execute(_COLUMNS + " WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def jobs(self, state: str | None = None, limit: int = 50) -> list[Job]:
        """Jobs, newest first (queued ones in the order they will run, first)."""
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        order = "rowid" if state == QUEUED else "rowid DESC"
        with self._lock:
            rows = self._conn.execute(
                f"{_COLUMNS} {where} ORDER BY {order} LIMIT ?", (*args, limit)
            ).fetchall()
        return [_job(r) for r in rows]

    def paths(self, job_id: str) -> list[str]:
        """The job's normalised paths, in the order given."""
        with self._lock:
            row = self._conn.execute(
                "SELECT paths FROM serve_jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return str(row[0]).split("\n") if row else []

    def urls(self, job_id: str) -> list[Any] | None:
        """The ``urls`` entries of a job of full URLs; None for a job of paths."""
        with self._lock:
            row = self._conn.execute(
                "SELECT urls FROM serve_jobs WHERE id = ?", (job_id,)
            ).fetchone()
        if row is None or row[0] is None:
            return None
        entries: list[Any] = json.loads(str(row[0]))
        return entries

    def claim(self) -> Job | None:
        """The next queued job, now marked running with a fresh attempt; None when idle."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute(
                    "SELECT id, attempts FROM serve_jobs WHERE state = ? ORDER BY rowid LIMIT 1",
                    (QUEUED,),
                ).fetchone()
                if row is not None:
                    job_id, attempts = str(row[0]), int(row[1]) + 1
                    run_id = job_id if attempts == 1 else f"{job_id}-{attempts}"
                    self._conn.execute(
                        "UPDATE serve_jobs SET state = ?, attempts = ?, run_id = ?,"
                        " started_at = COALESCE(started_at, ?) WHERE id = ?",
                        (RUNNING, attempts, run_id, time.time(), job_id),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return None if row is None else self.get(str(row[0]))

    def finish(self, job_id: str, state: str, error: str | None = None) -> None:
        """Record a running job's end: succeeded, failed (with `error`) or interrupted."""
        with self._lock:
            self._conn.execute(
                "UPDATE serve_jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                (state, error, time.time(), job_id),
            )

    def requeue(self, job_id: str) -> None:
        """Put a running job back at its place in the queue (interrupted by a shutdown)."""
        with self._lock:
            self._conn.execute(
                "UPDATE serve_jobs SET state = ? WHERE id = ? AND state = ?",
                (QUEUED, job_id, RUNNING),
            )

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; False when it is not queued (any more)."""
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE serve_jobs SET state = ?, finished_at = ? WHERE id = ? AND state = ?",
                (INTERRUPTED, time.time(), job_id, QUEUED),
            )
        return cursor.rowcount == 1

    def recover(self) -> list[str]:
        """Queue again the jobs a stopped or crashed service left running; their ids.

        Call it only while holding the data folder's serve lock: no other service runs them.
        """
        with self._lock:
            ids = [
                str(r[0])
                for r in self._conn.execute(
                    "SELECT id FROM serve_jobs WHERE state = ? ORDER BY rowid", (RUNNING,)
                )
            ]
            self._conn.execute("UPDATE serve_jobs SET state = ? WHERE state = ?", (QUEUED, RUNNING))
        return ids


def _job(row: tuple[object, ...]) -> Job:
    (jid, state, base, conc, total, dups, run_id, attempts, error, sub, start, end) = row
    return Job(
        id=str(jid),
        state=str(state),
        base_url=str(base) or None,
        concurrency=int(str(conc)),
        total=int(str(total)),
        duplicates=int(str(dups)),
        run_id=None if run_id is None else str(run_id),
        attempts=int(str(attempts)),
        error=None if error is None else str(error),
        submitted_at=float(str(sub)),
        started_at=None if start is None else float(str(start)),
        finished_at=None if end is None else float(str(end)),
    )
