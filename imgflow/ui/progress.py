"""Live progress bars on stderr: a local run's, fed record by record, and an aws
execution's, fed with each poll. Both are a backend's Watch."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from imgflow.documents.text import human_bytes, plural
from imgflow.engine.politeness import Change
from imgflow.engine.records import Outcome, ResultRecord, Summary

# The bar is redrawn 8 times a second: an update between two redraws is never seen, so
# records move it at most once per tick (and once more at the end, for the exact counts).
REFRESH_PER_SECOND = 8
TICK = 1 / REFRESH_PER_SECOND


class RunProgress:
    """A live progress bar on stderr: done / total, bytes, rate, failures so far."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.failed = 0
        self.started = time.monotonic()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[size]}"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("[yellow]{task.fields[note]}"),
            console=console,
            transient=False,
            refresh_per_second=REFRESH_PER_SECOND,
        )
        self._task: TaskID | None = None
        self._done = 0
        self._bytes = 0
        self._shown = 0.0  # when records last moved the bar

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._show()
        self._progress.stop()

    def planned(self, run_id: str, total: int, duplicates: int) -> None:
        """Start the bar once the job is planned."""
        note = f" ({plural(duplicates, 'duplicate')})" if duplicates else ""
        self._task = self._progress.add_task(
            f"run {run_id}{note}", total=total, failed=0, rate="", size="", note="", start=True
        )
        self.started = time.monotonic()

    def throttled(self, change: Change) -> None:
        """Show that a host asked imgflow to slow down, and what imgflow did."""
        if self._task is None:
            return
        note = f"{change.host} throttled: c {change.limit_before} -> {change.limit_after}"
        if change.rate is not None:
            note += f", {change.rate:.2g} req/s"
        note += f", waiting {change.wait:.0f} s"
        self._progress.update(self._task, note=note)

    def record(self, record: ResultRecord) -> None:
        """Advance the bar by one finished path."""
        if self._task is None:
            return
        self._done += 1
        if record.outcome is Outcome.FAILED:
            self.failed += 1
        elif record.outcome.wrote and record.bytes:
            self._bytes += record.bytes
        if time.monotonic() - self._shown >= TICK:
            self._show()

    def _show(self) -> None:
        """Move the bar to the counts so far."""
        assert self._task is not None
        self._shown = time.monotonic()
        rate, size = self._speed()
        self._progress.update(
            self._task, completed=self._done, failed=self.failed, rate=rate, size=size
        )

    def polled(self, run_id: str, state: str, summary: Summary, batches_done: int) -> None:
        """Move the bar to the counts polled."""
        if self._task is None:
            return
        self._done, self.failed = summary.total, summary.failed
        self._show()

    def _speed(self) -> tuple[str, str]:
        """(images per second, bytes written) so far."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return f"{self._done / elapsed:,.0f} img/s", human_bytes(self._bytes)


class AwsProgress:
    """A progress bar of an execution: images and batches done, failures so far."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[batches]}"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        self._task: TaskID | None = None
        self._failed = 0

    def __enter__(self) -> AwsProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def planned(self, run_id: str, total: int, duplicates: int) -> None:
        """Start the bar once the execution has started."""
        self._task = self._progress.add_task(
            "starting", total=total, batches=plural(0, "batch", "batches"), failed=0
        )

    def polled(self, run_id: str, state: str, summary: Summary, batches_done: int) -> None:
        """Show the images and batches done so far."""
        if self._task is None:
            return
        self._failed = summary.failed
        self._progress.update(
            self._task,
            description=f"{run_id[:16]} {state}",
            completed=summary.total,
            batches=plural(batches_done, "batch", "batches"),
            failed=summary.failed,
        )

    def record(self, record: ResultRecord) -> None:
        """Advance the bar by one finished path."""
        if self._task is None:
            return
        self._failed += record.outcome is Outcome.FAILED
        self._progress.update(self._task, advance=1, failed=self._failed)

    def throttled(self, change: Change) -> None:
        """(The execution's Lambdas slow down on their own; the bar has no note.)"""


LIVE: dict[str, type[RunProgress] | type[AwsProgress]] = {"local": RunProgress, "aws": AwsProgress}


def live_progress(backend: str, console: Console) -> RunProgress | AwsProgress:
    """The progress bar that suits `backend`'s runs (a local run's for a new engine)."""
    return LIVE.get(backend, RunProgress)(console)
