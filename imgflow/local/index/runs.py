"""The ``runs`` and ``run_parents`` tables: one row per run, and which run a retry retries."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imgflow.engine.records import Summary
from imgflow.local.index.connection import Connected
from imgflow.local.index.schema import column_or, columns
from imgflow.sources.base import Source

PENDING = "pending"
RUNNING = "running"
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class RunInfo:
    """One row of the runs table (`source` is None for runs recorded before sources)."""

    id: str
    backend: str
    base_url: str | None
    concurrency: int
    batch_size: int
    max_batches: int
    started_at: float
    finished_at: float | None
    state: str
    total: int
    duplicates: int
    summary: Summary
    source: Mapping[str, Any] | None = None
    # False while (or when, once stopped) some of the source's items were never planned:
    # `total` and `summary.total` then count only those read so far.
    planned: bool = True
    host_notes: tuple[str, ...] = ()  # paused hosts, DNS failures (a per-host run)


class RunsTable(Connected):
    """Queries of the runs of a database."""

    _runs_select: str

    def _prepare_runs(self) -> None:
        """The SELECT of a runs row (a database made by an older imgflow, opened read-only,
        lacks the newer columns: they read as NULL, the revalidation counts as 0)."""
        have = columns(self.conn, "runs")
        self._runs_select = (
            "SELECT id, backend, base_url, concurrency, batch_size, max_batches, started_at,"
            " finished_at, state, pid, total, duplicates, stored, skipped, failed, "
            + ", ".join(
                (
                    column_or("updated", have, "0"),
                    column_or("unchanged", have, "0"),
                    column_or("source", have),
                    column_or("unplanned", have, "0"),
                    column_or("host_notes", have),
                )
            )
            + " FROM runs"
        )

    def create_run(
        self, run_id: str, source: Source, concurrency: int, batch_size: int, max_batches: int
    ) -> None:
        """Record a new run of `source` as running and unplanned (planning comes next)."""
        self.conn.execute(
            "INSERT INTO runs (id, backend, base_url, source, concurrency, batch_size,"
            " max_batches, started_at, state, pid, unplanned)"
            " VALUES (?, 'local', ?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (
                run_id,
                source.base_url,
                json.dumps(source.describe()),
                concurrency,
                batch_size,
                max_batches,
                time.time(),
                RUNNING,
                os.getpid(),
            ),
        )

    def planned(self, run_id: str, total: int, duplicates: int) -> None:
        """Record the run's whole plan: `total` unique items and `duplicates` left out."""
        self.conn.execute(
            "UPDATE runs SET total = ?, duplicates = ?, unplanned = 0 WHERE id = ?",
            (total, duplicates, run_id),
        )

    def note_hosts(self, run_id: str, lines: Sequence[str]) -> None:
        """Keep the run's summary lines of paused hosts and DNS failures (`imgflow status`)."""
        if lines:
            self.conn.execute(
                "UPDATE runs SET host_notes = ? WHERE id = ?", (json.dumps(list(lines)), run_id)
            )

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

    def _excluded(self, run_id: str) -> int:
        """How many of the run's images their sites kept out (not a column of runs)."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM results WHERE run_id = ? AND outcome = 'excluded'", (run_id,)
        ).fetchone()
        return int(row[0])

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
            source,
            unplanned,
            notes,
        ) = row
        if state == RUNNING and not process_alive(pid):
            state = INTERRUPTED
        summary = (
            self.summary(str(rid))  # (unplanned: the total so far, not the runs row's 0)
            if finished is None or unplanned
            else dataclasses.replace(
                Summary(
                    *(int(str(n)) for n in (total, stored, skipped, failed, updated, unchanged))
                ),
                excluded=self._excluded(str(rid)),
            )
        )
        return RunInfo(
            id=str(rid),
            backend=str(backend),
            base_url=None if base is None else str(base),
            concurrency=int(str(conc)),
            batch_size=int(str(bsize)),
            max_batches=int(str(mbatch)),
            started_at=float(str(started)),
            finished_at=None if finished is None else float(str(finished)),
            state=str(state),
            total=int(str(total)),
            duplicates=int(str(dups)),
            summary=summary,
            source=None if source is None else json.loads(str(source)),
            planned=not unplanned,
            host_notes=() if notes is None else tuple(json.loads(str(notes))),
        )

    def link(self, run_id: str, parent: str) -> None:
        """Record that `run_id` retries `parent`."""
        self.conn.execute("INSERT OR REPLACE INTO run_parents VALUES (?, ?)", (run_id, parent))

    def parents(self, run_ids: Iterable[str]) -> dict[str, str]:
        """run id -> the run it retries, for those of `run_ids` that are retries (an older
        database opened read-only may have no such table yet: no retries yet)."""
        ids = list(run_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        try:
            rows = self.conn.execute(
                f"SELECT run_id, parent FROM run_parents WHERE run_id IN ({marks})", ids
            ).fetchall()
        except sqlite3.OperationalError:
            return {}
        return {str(r): str(p) for r, p in rows}


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
