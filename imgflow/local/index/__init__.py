"""The SQLite index of the local backend, `<data-dir>/imgflow.db`: its one owner.

Every query of the database lives in this package, one module per job:
`schema` (tables, versions, migrations), `runs` (runs and retries' parents), `results`
(a run's plan and records), `images` (the url -> key index), `robots` (robots.txt
answers kept for 24 hours), `report` (the report's
read-only queries) and `connection` (opening, errors, retries). `Database` is a
connection with all of them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from imgflow.engine.plan import Item
from imgflow.engine.records import ResultRecord
from imgflow.local.index.connection import (
    BUSY_TIMEOUT_MS,
    connect_readonly,
    explain,
    has_runs,
    retried,
    sqlite_errors,
    use_wal,
)
from imgflow.local.index.images import ImagesTable
from imgflow.local.index.results import ResultsTable
from imgflow.local.index.robots import RobotsTable
from imgflow.local.index.runs import (
    INTERRUPTED,
    PENDING,
    RUNNING,
    RunInfo,
    RunsTable,
    process_alive,
)
from imgflow.local.index.schema import migrate

# A list of a shard's samples as its commit indexes them (`Database.record_shard`): their
# records, when each finished, and each key's (shard, member).
ShardRows = tuple[Sequence[ResultRecord], Sequence[float], Mapping[str, tuple[str, str]]]

__all__ = [
    "BUSY_TIMEOUT_MS",
    "INTERRUPTED",
    "PENDING",
    "RUNNING",
    "Database",
    "RunInfo",
    "ShardRows",
    "explain",
    "has_runs",
    "process_alive",
    "retried",
    "sqlite_errors",
]


class Database(RunsTable, ResultsTable, ImagesTable, RobotsTable):
    """A connection to `<data-dir>/imgflow.db`, used from one thread."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        with sqlite_errors(path):
            if readonly:  # (status: reads only, also from a read-only folder)
                self.conn = connect_readonly(path)
                try:
                    self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()
                    self._prepare()
                except BaseException:
                    self.conn.close()
                    raise
                return
            self.conn = sqlite3.connect(path, isolation_level=None)
            try:
                self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                use_wal(self.conn)
                self.conn.execute("PRAGMA synchronous=NORMAL")
                migrate(self)
                self._prepare()
            except BaseException:
                self.conn.close()
                raise

    def _prepare(self) -> None:
        self._prepare_runs()
        self._prepare_results()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def plan(
        self,
        run_id: str,
        items: Iterable[Item],
        chunk: int = 5000,
        whole: Callable[[], bool] = lambda: True,
    ) -> tuple[int, int]:
        """Insert every item as pending, once per URL: (unique items, duplicates).

        Each chunk is its own short transaction, so another run on the same database is
        never kept waiting for long. The run's total is written, and the run marked
        planned, once the plan is complete: only if `whole()` says `items` were not cut
        short (a run stopped while its input was read stays unplanned).
        """
        unique, seen = self._insert_plan(run_id, items, chunk)
        if whole():
            self.planned(run_id, unique, seen - unique)
        return unique, seen - unique

    def record(
        self,
        run_id: str,
        records: Sequence[ResultRecord],
        finished: Sequence[float] | None = None,
        *,
        mtimes: Mapping[str, int] | None = None,
    ) -> None:
        """In one transaction: index the stored records and save every record's result.

        `finished` holds each record's end time (default: now), for the report's rate chart;
        `mtimes` gives stored files' modification times by key, checked when a later run
        skips them. An unchanged (revalidated) image keeps its row, with the validators
        the server confirmed.
        """
        now = time.time()
        times = finished if finished is not None else [now] * len(records)
        with self.transaction():
            self._index(run_id, records, now, mtimes or {})
            self._save_results(run_id, records, times)

    def record_shard(
        self,
        run_id: str,
        rows: Iterable[ShardRows],
        *,
        shard: str,
        samples: int,
        size: int,
        mtime: int,
        publish: Callable[[], None],
    ) -> None:
        """In one transaction: index the shard's `samples` (`rows`, a list at a time,
        each stored with the shard's `mtime`), save their records, list the shard, and
        `publish` it (rename it to its final name) before the commit, so a shard's rows
        are never committed without it. `publish` (or `rows`) raising rolls it all back."""
        now = time.time()
        with self.transaction("BEGIN IMMEDIATE"):
            for records, finished, places in rows:
                self._index(run_id, records, now, dict.fromkeys(places, mtime), places)
                self._save_results(run_id, records, finished)
            self.conn.execute(
                "INSERT OR REPLACE INTO shards (name, run_id, samples, bytes, committed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (shard, run_id, samples, size, now),
            )
            publish()
