"""The JSON documents `imgflow serve` answers with, built from the queue and the local index.

A run's document has the shape of ``imgflow status <id> --output json`` (``run``,
``backend``, ``summary``, ``results``) plus the job's fields (``state``, ``baseUrl``,
``lambdaConcur``, times, ``attempts``, ``localRun``, ``error``, and ``hostNotes`` when its run
paused a host or failed to resolve some: the lines of ``imgflow status``). While a job runs
here, its summary holds live counts.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from imgflow.documents.run import write_json
from imgflow.engine.records import ResultRecord, Summary
from imgflow.local.index import Database
from imgflow.serve.queue import QUEUED, Job, JobQueue
from imgflow.serve.worker import Worker

SPOOL_BYTES = 1024 * 1024


def iso(ts: float | None) -> str | None:
    """A UTC ISO 8601 time, or None."""
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Documents:
    """Builds run documents; each thread reads the local index through its own connection."""

    def __init__(self, queue: JobQueue, worker: Worker, db_path: Path) -> None:
        self.queue = queue
        self.worker = worker
        self.db_path = db_path
        self.data_dir = db_path.parent
        self._local = threading.local()

    def _db(self) -> Database:
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = Database(self.db_path, readonly=True)
        return db

    def head(self, job: Job) -> dict[str, Any]:
        """The run's document without its results."""
        summary, duplicates, notes = self._counts(job)
        head: dict[str, Any] = {
            "run": job.id,
            "backend": "local",
            "summary": summary.to_json(),
            "state": job.state,
            "baseUrl": job.base_url,
            "lambdaConcur": job.concurrency,
            "duplicates": duplicates,
            "submittedAt": iso(job.submitted_at),
            "startedAt": iso(job.started_at),
            "finishedAt": iso(job.finished_at),
            "attempts": job.attempts,
            "localRun": job.run_id,
            "error": job.error,
        }
        if notes:  # a paused host, hosts that did not resolve: as in `imgflow status -o json`
            head["hostNotes"] = list(notes)
        return head

    def _counts(self, job: Job) -> tuple[Summary, int, tuple[str, ...]]:
        """The job's counts, its duplicates and its run's per-host lines (once it ended)."""
        live = self.worker.live(job.id)
        if live is not None:
            return (*live, ())
        if job.run_id is not None and job.state != QUEUED:
            info = self._db().run_info(job.run_id)
            if info is not None:
                return info.summary, info.duplicates, info.host_notes
        return Summary(total=job.total), job.duplicates, ()

    def spool(self, job: Job) -> IO[str]:
        """The whole document, results streamed from the index into a spooled file.

        Memory stays flat for runs of any size: past SPOOL_BYTES the file is on disk.
        """
        head = self.head(job)
        records: Iterator[ResultRecord] = (
            self._db().records(job.run_id) if job.run_id is not None else iter(())
        )
        summary = head.pop("summary")
        extra = {k: v for k, v in head.items() if k not in ("run", "backend")}
        out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+", encoding="utf-8")  # noqa: SIM115 (the caller streams and closes it)
        try:
            write_json(out, job.id, "local", Summary(**summary), records, extra)
        except BaseException:
            out.close()
            raise
        out.seek(0)
        return out

    def failures(self, job: Job) -> list[str]:
        """The run's failure messages: the original pipeline's JSON array."""
        if job.run_id is None or job.state == QUEUED:
            return []
        return list(self._db().failure_messages(job.run_id))
