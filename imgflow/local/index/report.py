"""Read-only queries of a local run, for the report (`imgflow/report/local.py`).

The connection is opened read-only, so a report never changes the index (a database of an
older imgflow is read as it is), and rows are streamed so memory stays flat at any run size.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, urlsplit

from imgflow.engine.records import Outcome
from imgflow.errors import BackendError
from imgflow.local.index.results import failure_kind
from imgflow.local.index.runs import PENDING as PENDING  # (the report counts them)
from imgflow.local.index.schema import column_or, columns
from imgflow.report.model import Failure, HostCount, Timeline

MAX_SLOTS = 60


@dataclass(frozen=True)
class RunRow:
    """The columns of a run the report shows."""

    id: str
    backend: str
    base_url: str
    state: str
    started_at: float
    finished_at: float | None
    duplicates: int


@dataclass(frozen=True)
class Counts:
    """Records and bytes per outcome."""

    records: dict[str, int]
    bytes: dict[str, int]


def connect(db_path: Path, thumbs_db: Path | None = None) -> sqlite3.Connection:
    """A read-only connection (with the thumbnail index attached as `thumbs` if given)."""
    try:
        conn = sqlite3.connect(_ro_uri(db_path), uri=True)
        conn.execute("PRAGMA busy_timeout=10000")
        if thumbs_db is not None and thumbs_db.exists():
            conn.execute("ATTACH DATABASE ? AS thumbs", (_ro_uri(thumbs_db),))
    except sqlite3.Error as exc:
        raise BackendError(f"cannot read {db_path}: {exc}") from None
    return conn


def _ro_uri(path: Path) -> str:
    return "file:" + quote(str(path.absolute())) + "?mode=ro"


def latest_run(conn: sqlite3.Connection) -> str | None:
    """The id of the newest run, or None."""
    row = conn.execute("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def run_row(conn: sqlite3.Connection, run_id: str) -> RunRow | None:
    """The run's row, or None."""
    row = conn.execute(
        "SELECT id, backend, base_url, state, started_at, finished_at, duplicates"
        " FROM runs WHERE id = ?",
        (run_id,),
    ).fetchone()
    if row is None:
        return None
    return RunRow(
        id=str(row[0]),
        backend=str(row[1]),
        base_url=str(row[2] or ""),  # (a source of full URLs has none)
        state=str(row[3]),
        started_at=float(row[4]),
        finished_at=None if row[5] is None else float(row[5]),
        duplicates=int(row[6]),
    )


def counts(conn: sqlite3.Connection, run_id: str) -> Counts:
    """Records and bytes of each outcome (pending included)."""
    records: dict[str, int] = {}
    size: dict[str, int] = {}
    for outcome, n, total in conn.execute(
        "SELECT outcome, COUNT(*), COALESCE(SUM(bytes), 0) FROM results WHERE run_id = ?"
        " GROUP BY outcome",
        (run_id,),
    ):
        records[str(outcome)] = int(n)
        size[str(outcome)] = int(total)
    return Counts(records, size)


def timeline(conn: sqlite3.Connection, run_id: str, started_at: float) -> Timeline | None:
    """Finished records per slot (at most MAX_SLOTS), or None when no times were kept."""
    last, finished = conn.execute(
        "SELECT MAX(finished_at), COUNT(*) FROM results WHERE run_id = ?"
        " AND finished_at IS NOT NULL",
        (run_id,),
    ).fetchone()
    if last is None:
        return None
    span = max(float(last) - started_at, 0.001)
    slots = min(MAX_SLOTS, max(1, int(finished) // 4))
    width = span / slots
    done = [0] * slots
    failed = [0] * slots
    rows = conn.execute(
        "SELECT CAST((finished_at - ?) / ? AS INTEGER) AS slot, outcome = ?, COUNT(*)"
        " FROM results WHERE run_id = ? AND finished_at IS NOT NULL GROUP BY slot, outcome = ?",
        (started_at, width, Outcome.FAILED.value, run_id, Outcome.FAILED.value),
    )
    for slot, is_failed, n in rows:
        index = min(max(int(slot), 0), slots - 1)
        (failed if is_failed else done)[index] += int(n)
    return Timeline(slot_seconds=width, done=done, failed=failed)


def hosts(conn: sqlite3.Connection, run_id: str, base_url: str) -> list[HostCount]:
    """Finished records and failures per host (the URL's authority), busiest first.

    Runs have one base URL, so first a cheap check: when every URL starts with the base
    URL's origin there is one host, and the page shows no host table for one host.
    """
    parts = urlsplit(base_url)
    origin = f"{parts.scheme}://{parts.netloc}/"
    others = conn.execute(
        "SELECT 1 FROM results WHERE run_id = ? AND outcome != ? AND substr(url, 1, ?) != ?"
        " LIMIT 1",
        (run_id, PENDING, len(origin), origin),
    ).fetchone()
    if others is None:
        return []
    rows = conn.execute(
        "SELECT CASE WHEN instr(rest, '/') > 0 THEN substr(rest, 1, instr(rest, '/') - 1)"
        " ELSE rest END AS host, COUNT(*), SUM(failed) FROM ("
        "  SELECT substr(url, instr(url, '://') + 3) AS rest, outcome = ? AS failed"
        "  FROM results WHERE run_id = ? AND outcome != ?"
        ") GROUP BY host ORDER BY COUNT(*) DESC, host",
        (Outcome.FAILED.value, run_id, PENDING),
    )
    return [HostCount(str(host), int(total), int(failed)) for host, total, failed in rows]


def failures(conn: sqlite3.Connection, run_id: str) -> Iterator[Failure]:
    """The run's failures in input order, streamed."""
    kind = column_or("failure_kind", columns(conn, "results"))
    for url, status, error, recorded in conn.execute(
        f"SELECT url, status_code, error, {kind} FROM results WHERE run_id = ? AND outcome = ?"
        " ORDER BY seq",
        (run_id, Outcome.FAILED.value),
    ):
        yield Failure(
            str(url),
            None if status is None else int(status),
            str(error or ""),
            failure_kind(recorded, error),
        )


def exclusions(conn: sqlite3.Connection, run_id: str) -> Iterator[tuple[str, str]]:
    """(url, reason) of the run's images their sites kept out, in input order, streamed."""
    for url, error in conn.execute(
        "SELECT url, error FROM results WHERE run_id = ? AND outcome = ? ORDER BY seq",
        (run_id, Outcome.EXCLUDED.value),
    ):
        yield str(url), str(error or "")


class StoredRow(NamedTuple):
    """A stored (or skipped: stored before) image of the run, with its thumbnail if made."""

    key: str
    bytes: int
    sha256: str | None
    thumb: int | None
    width: int
    height: int
    caption: str | None = None  # the source's caption (a URL table's), if any


def stored(conn: sqlite3.Connection, run_id: str) -> Iterator[StoredRow]:
    """The run's images in storage (stored or skipped), in input order, streamed."""
    attached = any(row[1] == "thumbs" for row in conn.execute("PRAGMA database_list"))
    meta = "r.meta" if "meta" in columns(conn, "results") else "NULL"
    if attached:
        sql = (
            "SELECT r.key, r.bytes, r.sha256, t.id, t.width, t.height, t.made,"
            f" {meta} FROM results r LEFT JOIN thumbs.thumbs t ON t.sha256 = r.sha256"
        )
    else:
        sql = f"SELECT r.key, r.bytes, r.sha256, NULL, NULL, NULL, NULL, {meta} FROM results r"
    sql += " WHERE r.run_id = ? AND r.outcome NOT IN (?, ?, ?) ORDER BY r.seq"
    for key, size, sha, thumb, width, height, made, item_meta in conn.execute(
        sql, (run_id, Outcome.FAILED.value, PENDING, Outcome.EXCLUDED.value)
    ):
        yield StoredRow(
            key, size or 0, sha, thumb if made else None, width or 0, height or 0,
            _caption(item_meta),
        )  # fmt: skip


def _caption(meta: str | None) -> str | None:
    """The caption in an item's metadata (JSON), if it has one."""
    if not meta:
        return None
    caption = json.loads(meta).get("caption")
    return None if caption is None else str(caption)
