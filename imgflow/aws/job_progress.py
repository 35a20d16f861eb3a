"""Live progress of an aws job on a console: images and batches done, failures so far."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from imgflow.aws.job import JobStatus
from imgflow.render import plural


class AwsProgress:
    """A progress bar fed with each polled `JobStatus` (use as a context manager)."""

    def __init__(self, console: Console, total: int) -> None:
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
        self._task = self._progress.add_task(
            "starting", total=total, batches=plural(0, "batch", "batches"), failed=0
        )

    def __enter__(self) -> AwsProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, status: JobStatus) -> None:
        """Show the images and batches done so far."""
        self._progress.update(
            self._task,
            description=f"{status.job_id[:16]} {status.status.lower()}",
            completed=status.summary.total,
            batches=plural(status.batches_done, "batch", "batches"),
            failed=status.summary.failed,
        )
