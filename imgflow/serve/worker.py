"""The worker of `imgflow serve`: one thread that runs queued jobs one at a time.

It survives anything a job raises: the job is marked failed with the error, the error is
logged with its traceback, and the next job runs. `stop` interrupts the running job (its
finished images are saved) and puts it back in the queue for the next start; `cancel`
interrupts it for good.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from imgflow.backends.local import execute, make_job
from imgflow.config import Config
from imgflow.documents.text import summary_line
from imgflow.engine.records import Outcome, ResultRecord, Summary
from imgflow.errors import ImgflowError
from imgflow.local.job import RunInterrupted
from imgflow.serve.queue import FAILED, INTERRUPTED, Job, JobQueue
from imgflow.sources.base import Source
from imgflow.sources.job_json import from_job, urls_from_document

log = logging.getLogger("imgflow.serve")

# Test hook: a job whose base URL contains this variable's value raises an unexpected error
# once planned (a bug anywhere below the worker).
FAULT_ENV = "TEST_IMGFLOW_SERVE_FAULT"  # not IMGFLOW_*: those name settings
IDLE_POLL = 1.0


class LiveCounts:
    """Counts of the running job, updated record by record (the runner's Progress)."""

    def __init__(self, total: int, fault: bool = False) -> None:
        self._fault = fault
        self.total = total
        self.duplicates = 0
        self.stored = self.skipped = self.failed = self.excluded = 0

    def planned(self, run_id: str, total: int | None, duplicates: int) -> None:
        """The run is planned."""
        if self._fault:
            raise RuntimeError(f"unexpected failure (injected by {FAULT_ENV})")
        if total is not None:  # (a job's source is always counted)
            self.total = total
        self.duplicates = duplicates

    def reading(self, count: int) -> None:
        """(A job's source is always counted before it runs.)"""

    def record(self, record: ResultRecord) -> None:
        """One path is done."""
        if record.outcome is Outcome.STORED:
            self.stored += 1
        elif record.outcome is Outcome.SKIPPED:
            self.skipped += 1
        elif record.outcome is Outcome.EXCLUDED:  # kept out by its site: not a failure
            self.excluded += 1
        else:
            self.failed += 1

    def summary(self) -> Summary:
        """The counts so far."""
        return Summary(self.total, self.stored, self.skipped, self.failed, excluded=self.excluded)


@dataclass
class _Current:
    job_id: str
    counts: LiveCounts
    stop: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False


class Worker:
    """Runs the queue's jobs in a background thread."""

    def __init__(self, queue: JobQueue, cfg: Config, data_dir: Path) -> None:
        self.queue = queue
        self.cfg = cfg
        self.data_dir = data_dir
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._current: _Current | None = None
        self._cancels: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="imgflow-serve-worker", daemon=True)

    def start(self) -> None:
        """Start taking jobs."""
        self._thread.start()

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Take no more jobs; interrupt the running one (it goes back to the queue)."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            if self._current is not None:
                self._current.stop.set()

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end; False if it is still running after `timeout`."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def cancel(self, job_id: str) -> None:
        """Interrupt `job_id` for good: now if it runs, else as soon as it starts here."""
        with self._lock:
            current = self._current
            if current is None or current.job_id != job_id:
                self._cancels.add(job_id)
                return
            current.cancelled = True
            current.stop.set()

    def live(self, job_id: str) -> tuple[Summary, int] | None:
        """(counts so far, duplicates) of `job_id` while this worker runs it."""
        current = self._current
        if current is None or current.job_id != job_id:
            return None
        return current.counts.summary(), current.counts.duplicates

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.queue.claim()
            except Exception:
                log.exception("could not read the job queue; retrying")
                self._stopping.wait(IDLE_POLL)
                continue
            if job is None:
                self._wake.wait(IDLE_POLL)
                self._wake.clear()
                continue
            try:
                self._run(job)
            except Exception:  # the queue itself failed while recording the job's end
                log.exception("run %s: could not record its end", job.id)

    def _run(self, job: Job) -> None:
        fault = bool(os.environ.get(FAULT_ENV)) and os.environ[FAULT_ENV] in (job.base_url or "")
        current = _Current(job.id, LiveCounts(job.total, fault))
        with self._lock:
            self._current = current
            if job.id in self._cancels:
                self._cancels.discard(job.id)
                current.cancelled = True
            if self._stopping.is_set() or current.cancelled:
                current.stop.set()
        started = time.monotonic()
        log.info(
            "run %s started (attempt %d, local run %s): %d paths from %s",
            job.id,
            job.attempts,
            job.run_id,
            job.total,
            job.base_url or "a list of URLs",
        )
        try:
            local = make_job(self.cfg, self._source(job), job.concurrency)
            result = execute(
                local,
                self.cfg,
                self.data_dir,
                progress=current.counts,
                run_id=job.run_id,
                stop=current.stop,
            )
        except RunInterrupted:
            elapsed = time.monotonic() - started
            done = summary_line(current.counts.summary(), elapsed=elapsed)
            if current.cancelled:
                self.queue.finish(job.id, INTERRUPTED)
                log.info("run %s interrupted; finished images are kept (%s)", job.id, done)
            else:
                self.queue.requeue(job.id)
                log.info(
                    "run %s interrupted by shutdown; queued for the next start (%s)", job.id, done
                )
        except Exception as exc:
            error = _one_line(exc)
            self.queue.finish(job.id, FAILED, error)
            log.error(
                "run %s failed: %s", job.id, error, exc_info=not isinstance(exc, ImgflowError)
            )
        else:
            self.queue.finish(job.id, result.state, result.notify_problem or None)
            line = summary_line(result.summary, result.duplicates, time.monotonic() - started)
            log.info("run %s finished: %s, %s", job.id, result.state, line)
        finally:
            with self._lock:
                self._current = None

    def _source(self, job: Job) -> Source:
        """The job's items: its paths under its base URL, or its list of URLs."""
        if job.base_url is not None:
            return from_job(job.base_url, self.queue.paths(job.id), None)
        entries = self.queue.urls(job.id) or []
        return urls_from_document({"urls": entries}, "job")  # (a bad entry: "job urls[3]: ...")


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, ImgflowError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
