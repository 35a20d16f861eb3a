"""The SQLite database of the local backend: the url index and every run's results.

`<data-dir>/imgflow.db` holds three tables:
- ``images``: url -> key, bytes, sha256, content type, run id, time, the file's
  modification time (``mtime_ns``), so a rerun notices a file changed behind its back,
  and the server's ``etag`` and ``last_modified``, for a revalidation (``--refresh``);
- ``runs``: one row per run, with its settings, state and counts;
- ``results``: one row per unique input path of a run; rows start ``pending`` when the
  run is planned and are updated batch by batch, so a run killed at any point can be
  reported, and nothing planned is ever silently dropped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from imgflow.engine.plan import Item
from imgflow.engine.ports import StoredObject, Validators
from imgflow.engine.records import Outcome, ResultRecord, Summary
from imgflow.local.safefs import StorageError

# How long a statement waits for another process's lock before "database is locked".
BUSY_TIMEOUT_MS = 60_000

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    url TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    content_type TEXT,
    run_id TEXT NOT NULL,
    stored_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    base_url TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    batch_size INTEGER NOT NULL,
    max_batches INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    state TEXT NOT NULL,
    pid INTEGER,
    total INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    stored INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    path TEXT NOT NULL,
    url TEXT NOT NULL,
    key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER,
    bytes INTEGER,
    sha256 TEXT,
    content_type TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    finished_at REAL,
    PRIMARY KEY (run_id, seq),
    UNIQUE (run_id, path)
);
"""

PENDING = "pending"
RUNNING = "running"
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class RunInfo:
    """One row of the runs table."""

    id: str
    backend: str
    base_url: str
    concurrency: int
    batch_size: int
    max_batches: int
    started_at: float
    finished_at: float | None
    state: str
    total: int
    duplicates: int
    summary: Summary


def explain(path: Path, exc: sqlite3.Error) -> StorageError:
    """One line naming the database, what is wrong with it and the way out."""
    text = str(exc)
    if "malformed" in text or "not a database" in text:
        return StorageError(
            f"{path} is damaged ({text}): move it aside and run again (the images stay;"
            " they are downloaded again into a new index), or restore a copy"
        )
    if "readonly" in text or "read-only" in text:
        return StorageError(f"{path} is read-only ({text}): make it and its folder writable")
    if "unable to open" in text:
        return StorageError(f"cannot open {path} ({text}): check the folder's permissions")
    if "full" in text:
        return StorageError(
            f"cannot write the index {path}: no space left on the device; free some and"
            " run again (stored images are kept)"
        )
    if "locked" in text:
        return StorageError(f"{path} stayed locked by another process ({text}); try again")
    return StorageError(f"{path}: {text}")


@contextlib.contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's errors into a StorageError naming `path`."""
    try:
        yield
    except sqlite3.Error as exc:
        raise explain(path, exc) from None


class Database:
    """A connection to `<data-dir>/imgflow.db`, used from one thread."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        with sqlite_errors(path):
            if readonly:  # (status: reads only, also from a read-only folder)
                uri = f"{path.absolute().as_uri()}?mode=ro"
                self.conn = sqlite3.connect(uri, uri=True, isolation_level=None)
                self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()
                self._runs_select = _runs_select(self.conn)
                return
            self.conn = sqlite3.connect(path, isolation_level=None)
            try:
                self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                _use_wal(self.conn)
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.executescript(SCHEMA)
                _add_missing_column(self.conn, "images", "mtime_ns", "INTEGER")
                _add_missing_column(self.conn, "images", "etag", "TEXT")
                _add_missing_column(self.conn, "images", "last_modified", "TEXT")
                _add_missing_column(self.conn, "results", "finished_at", "REAL")
                for column in ("updated", "unchanged"):
                    _add_missing_column(self.conn, "runs", column, "INTEGER NOT NULL DEFAULT 0")
                self._runs_select = _runs_select(self.conn)
            except BaseException:
                self.conn.close()
                raise

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def _rollback(self) -> None:
        """Roll back what is open, never hiding the error that led here."""
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    # -- runs -----------------------------------------------------------------------------

    def create_run(
        self, run_id: str, base_url: str, concurrency: int, batch_size: int, max_batches: int
    ) -> None:
        """Record a new run as running (planning comes next)."""
        self.conn.execute(
            "INSERT INTO runs (id, backend, base_url, concurrency, batch_size, max_batches,"
            " started_at, state, pid) VALUES (?, 'local', ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                base_url,
                concurrency,
                batch_size,
                max_batches,
                time.time(),
                RUNNING,
                os.getpid(),
            ),
        )

    def plan(self, run_id: str, items: Iterable[Item], chunk: int = 5000) -> tuple[int, int]:
        """Insert every item as pending, once per path: (unique paths, duplicates).

        Each chunk is its own short transaction, so another run on the same database is
        never kept waiting for long (a run's total is written once the plan is complete).
        """
        unique = seen = 0
        buffer: list[tuple[str, int, str, str, str]] = []
        for item in items:
            seen += 1
            buffer.append((run_id, seen, item.path, item.url, item.key))
            if len(buffer) >= chunk:
                unique += self._insert_pending(buffer)
                buffer.clear()
        unique += self._insert_pending(buffer)
        self.conn.execute(
            "UPDATE runs SET total = ?, duplicates = ? WHERE id = ?",
            (unique, seen - unique, run_id),
        )
        return unique, seen - unique

    def _insert_pending(self, rows: Sequence[tuple[str, int, str, str, str]]) -> int:
        before = self.conn.total_changes
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(
                "INSERT OR IGNORE INTO results (run_id, seq, path, url, key, outcome)"
                f" VALUES (?, ?, ?, ?, ?, '{PENDING}')",
                rows,
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return self.conn.total_changes - before

    def pending_batches(self, run_id: str, size: int) -> Iterator[list[Item]]:
        """The run's pending items in input order, a batch at a time (keyset paging)."""
        last = 0
        while True:
            rows = self.conn.execute(
                "SELECT seq, path, url, key FROM results WHERE run_id = ? AND seq > ?"
                f" AND outcome = '{PENDING}' ORDER BY seq LIMIT ?",
                (run_id, last, size),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [Item(path=r[1], url=r[2], key=r[3]) for r in rows]

    def finish_run(self, run_id: str, state: str) -> Summary:
        """Count the run's outcomes and record its final state."""
        summary = self.summary(run_id)
        self.conn.execute(
            "UPDATE runs SET finished_at = ?, state = ?, stored = ?, skipped = ?, failed = ?,"
            " updated = ?, unchanged = ? WHERE id = ?",
            (
                time.time(),
                state,
                summary.stored,
                summary.skipped,
                summary.failed,
                summary.updated,
                summary.unchanged,
                run_id,
            ),
        )
        return summary

    def summary(self, run_id: str) -> Summary:
        """Counts of the run's finished records (pending ones count in total only)."""
        counts = dict(
            self.conn.execute(
                "SELECT outcome, COUNT(*) FROM results WHERE run_id = ? GROUP BY outcome",
                (run_id,),
            ).fetchall()
        )
        summary = Summary.of_counts(counts)
        # Pending records count in the total only.
        return dataclasses.replace(summary, total=sum(counts.values()))

    def run_info(self, run_id: str) -> RunInfo | None:
        """The run's row, or None."""
        row = self.conn.execute(self._runs_select + " WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else self._run_info(row)

    def recent_runs(self, limit: int = 20) -> list[RunInfo]:
        """The latest runs, newest first."""
        rows = self.conn.execute(
            self._runs_select + " ORDER BY started_at DESC LIMIT ?", (limit,)
        ).fetchall()
        return [self._run_info(r) for r in rows]

    def _run_info(self, row: tuple[object, ...]) -> RunInfo:
        (
            rid,
            backend,
            base,
            conc,
            bsize,
            mbatch,
            started,
            finished,
            state,
            pid,
            total,
            dups,
            stored,
            skipped,
            failed,
            updated,
            unchanged,
        ) = row
        if state == RUNNING and not process_alive(pid):
            state = INTERRUPTED
        summary = (
            self.summary(str(rid))
            if finished is None
            else Summary(
                *(int(str(n)) for n in (total, stored, skipped, failed, updated, unchanged))
            )
        )
        return RunInfo(
            id=str(rid),
            backend=str(backend),
            base_url=str(base),
            concurrency=int(str(conc)),
            batch_size=int(str(bsize)),
            max_batches=int(str(mbatch)),
            started_at=float(str(started)),
            finished_at=None if finished is None else float(str(finished)),
            state=str(state),
            total=int(str(total)),
            duplicates=int(str(dups)),
            summary=summary,
        )

    def records(self, run_id: str, only_failed: bool = False) -> Iterator[ResultRecord]:
        """The run's records in input order, streamed (pending ones are left out)."""
        which = f"= '{Outcome.FAILED.value}'" if only_failed else f"!= '{PENDING}'"
        cursor = self.conn.execute(
            "SELECT url, path, outcome, status_code, key, bytes, sha256, content_type, error,"
            f" attempts FROM results WHERE run_id = ? AND outcome {which} ORDER BY seq",
            (run_id,),
        )
        for row in cursor:
            yield ResultRecord(
                url=row[0],
                path=row[1],
                outcome=Outcome(row[2]),
                status_code=row[3],
                key=row[4] if row[2] != Outcome.FAILED.value else None,
                bytes=row[5],
                sha256=row[6],
                content_type=row[7],
                error=row[8],
                attempts=row[9],
            )

    def failure_messages(self, run_id: str) -> Iterator[str]:
        """The run's failure messages in input order."""
        cursor = self.conn.execute(
            "SELECT error FROM results WHERE run_id = ? AND outcome = ? ORDER BY seq",
            (run_id, Outcome.FAILED.value),
        )
        for (error,) in cursor:
            yield str(error)

    # -- the index ----------------------------------------------------------------------

    def lookup(self, urls: Sequence[str]) -> dict[str, StoredObject]:
        """The index rows of any of `urls`."""
        found: dict[str, StoredObject] = {}
        for start in range(0, len(urls), 500):
            part = urls[start : start + 500]
            marks = ",".join("?" * len(part))
            for url, key, size, sha, ctype in self.conn.execute(
                f"SELECT url, key, bytes, sha256, content_type FROM images WHERE url IN ({marks})",
                part,
            ):
                found[url] = StoredObject(key=key, bytes=size, sha256=sha, content_type=ctype)
        return found

    def stamps(self, urls: Sequence[str]) -> dict[str, tuple[StoredObject, int | None]]:
        """The index rows of any of `urls` (with their validators), each with its file's
        recorded mtime (or None)."""
        found: dict[str, tuple[StoredObject, int | None]] = {}
        for start in range(0, len(urls), 500):
            part = urls[start : start + 500]
            marks = ",".join("?" * len(part))
            for url, key, size, sha, ctype, mtime, etag, modified in self.conn.execute(
                "SELECT url, key, bytes, sha256, content_type, mtime_ns, etag, last_modified"
                f" FROM images WHERE url IN ({marks})",
                part,
            ):
                stored = StoredObject(key, size, sha, ctype, Validators(etag, modified))
                found[url] = (stored, mtime)
        return found

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
        mtimes = mtimes or {}
        stored = [
            (r.url, r.key, r.bytes, r.sha256, r.content_type, run_id, now,
             mtimes.get(r.key or ""), r.etag, r.last_modified)
            for r in records
            if r.outcome.wrote
        ]  # fmt: skip
        confirmed = [
            (r.etag, r.last_modified, r.url) for r in records if r.outcome is Outcome.UNCHANGED
        ]
        results = [
            (
                r.outcome.value,
                r.status_code,
                r.bytes,
                r.sha256,
                r.content_type,
                r.error,
                r.attempts,
                at,
                run_id,
                r.path,
            )
            for r, at in zip(records, times, strict=True)
        ]
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(
                "INSERT OR REPLACE INTO images (url, key, bytes, sha256, content_type, run_id,"
                " stored_at, mtime_ns, etag, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                stored,
            )
            self.conn.executemany(
                "UPDATE images SET etag = ?, last_modified = ? WHERE url = ?", confirmed
            )
            self.conn.executemany(
                "UPDATE results SET outcome = ?, status_code = ?, bytes = ?, sha256 = ?,"
                " content_type = ?, error = ?, attempts = ?, finished_at = ?"
                " WHERE run_id = ? AND path = ?",
                results,
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def index_rows(self) -> Iterator[tuple[str, str, int, str, int | None]]:
        """Every index row: (url, key, bytes, sha256, mtime_ns), streamed."""
        yield from self.conn.execute("SELECT url, key, bytes, sha256, mtime_ns FROM images")

    def forget(self, urls: Sequence[str]) -> None:
        """Drop index rows whose files are gone."""
        self.conn.executemany("DELETE FROM images WHERE url = ?", [(u,) for u in urls])


_RUN_COLUMNS = (
    "id, backend, base_url, concurrency, batch_size, max_batches, started_at, finished_at,"
    " state, pid, total, duplicates, stored, skipped, failed"
)


def _runs_select(conn: sqlite3.Connection) -> str:
    """The SELECT of a runs row (a database made by an older imgflow, opened read-only,
    has no revalidation counts: they read as 0)."""
    names = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    extra = ", updated, unchanged" if "unchanged" in names else ", 0, 0"
    return f"SELECT {_RUN_COLUMNS}{extra} FROM runs"


def retried(call: Callable[[], T], error: str, *, seconds: float, pause: float, most: float) -> T:
    """`call()`, tried again while it raises a sqlite3.OperationalError whose text holds
    `error`, for about `seconds`; the pauses start at `pause` and double up to `most`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if error not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, most)


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the database to WAL (a no-op once it is). The switch of a new file needs a
    lock that SQLite refuses at once, without waiting the busy timeout, to a connection
    whose read lock another one waits on (waiting could deadlock); so runs that open a
    new data folder together try again, within the busy timeout."""
    retried(
        lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone(),
        "locked",
        seconds=BUSY_TIMEOUT_MS / 1000,
        pause=0.001,
        most=0.05,
    )


def _add_missing_column(conn: sqlite3.Connection, table: str, column: str, kind: str) -> None:
    """Add a column that databases made by an older imgflow lack. Runs started together
    on a new folder may race to add it: the one that finds it added meanwhile is done."""
    names = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    if column not in names:
        try:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        except sqlite3.OperationalError as exc:
            if "duplicate column name" not in str(exc):
                raise


def process_alive(pid: object) -> bool:
    """True when a process with this id runs (a run's owner; pid reuse aside)."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
