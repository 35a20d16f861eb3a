"""Live progress bars on stderr: a local run's, fed record by record, and an aws
execution's, fed with each poll. Both are a backend's Watch."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from imgflow.documents.text import human_bytes, plural
from imgflow.engine.politeness import Change
from imgflow.engine.records import Outcome, ResultRecord, Summary

# The bar is redrawn 8 times a second: an update between two redraws is never seen, so
# records move it at most once per tick (and once more at the end, for the exact counts).
REFRESH_PER_SECOND = 8
TICK = 1 / REFRESH_PER_SECOND

WIDE = 120  # from this width on, the line also shows the bytes written and the time spent


class _DoneOfTotal(MofNCompleteColumn):
    """done/total with thousands separators (``12,345/1,000,000``, done padded to the
    total's width); while the input is still read (no total yet), done/<read so far>+, the
    count growing as the input is read (a large paths file, a table, a stream)."""

    def render(self, task: Task) -> Text:
        read = task.fields.get("read")
        total = f"{read:,}+" if read else "?"
        if task.total is not None:
            total = f"{int(task.total):,}"
        done = f"{int(task.completed):>{len(total.rstrip('+'))},}"
        return Text(f"{done}{self.separator}{total}", style="progress.download")


class _Headed(Progress):
    """A Progress whose live region starts with a header line (empty: none), so the header
    can change while the run goes: a run whose input is still read says so until its total
    is known, and no longer on its last frame."""

    header = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        if self.header:
            yield Text(self.header)
        yield from super().get_renderables()


def _columns(width: int, *middle: ProgressColumn | str) -> list[ProgressColumn | str]:
    """A bar as wide as the terminal leaves, done/total, `middle`, the failures and ETA.

    At 80 columns the line holds the worst case (1,000,000 images, 99,999 img/s, 99,999
    failed, ETA 99:59:59) without cutting a value: the run id is on its own line above.
    """
    wide = width >= WIDE
    bar = max(8, min(40, width - (110 if wide else 70)))
    columns: list[ProgressColumn | str] = [
        BarColumn(bar_width=bar),
        _DoneOfTotal(),
        *middle,
        TextColumn("[red]{task.fields[failed]} failed"),
    ]
    if wide:
        columns.append(TimeElapsedColumn())
    return [*columns, TextColumn("ETA"), TimeRemainingColumn()]


class RunProgress:
    """A live progress line on stderr: done / total, rate, failures so far, ETA (and, on a
    wide terminal, bytes and time spent); the run id once above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.failed = 0
        self.started = time.monotonic()
        size = [TextColumn("{task.fields[size]}")] if console.width >= WIDE else []
        self._progress = _Headed(
            *_columns(console.width, TextColumn("{task.fields[rate]}"), *size),
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

    def planned(self, run_id: str, total: int | None, duplicates: int) -> None:
        """Start the bar once the job is planned; a total of None shows as counting until
        it is known (a second call gives it)."""
        note = f" ({plural(duplicates, 'duplicate')})" if duplicates else ""
        if self._task is not None:  # the count of a source planned as the run went
            self._progress.header = f"run {run_id}{note}"
            self._progress.update(self._task, total=total, read=0)
            return
        if total is None:  # the header stays in the live region until the total is known
            reading = "(input still being read: total so far shown as N+)"
            self._progress.header = f"run {run_id} {reading}"
        else:
            self.console.print(f"run {run_id}{note}", markup=False)
        self._task = self._progress.add_task("", total=total, failed=0, rate="", size="", read=0)
        self.started = time.monotonic()

    def reading(self, count: int) -> None:
        """The input is still read: `count` items so far (the total's place shows it)."""
        if self._task is not None:
            self._progress.update(self._task, read=count)

    def throttled(self, change: Change) -> None:
        """Show that a host asked imgflow to slow down, and what imgflow did."""
        if self._task is None:
            return
        note = f"{change.host} throttled: c {change.limit_before} -> {change.limit_after}"
        if change.rate is not None:
            note += f", {change.rate:.2g} req/s"
        note += f", waiting {change.wait:.0f} s"
        self._progress.console.print(note, style="yellow", markup=False)

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
            TextColumn("{task.description}"),
            *_columns(console.width - 10, TextColumn("{task.fields[batches]}")),
            console=console,
            refresh_per_second=4,
        )
        self._task: TaskID | None = None
        self._failed = 0
        self._named = False

    def __enter__(self) -> AwsProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def planned(self, run_id: str, total: int | None, duplicates: int) -> None:
        """Start the bar once the execution has started."""
        self._task = self._progress.add_task(
            "starting", total=total, batches=plural(0, "batch", "batches"), failed=0
        )

    def polled(self, run_id: str, state: str, summary: Summary, batches_done: int) -> None:
        """Show the images and batches done so far."""
        if self._task is None:
            return
        self._failed = summary.failed
        if not self._named:
            self._progress.console.print(f"execution {run_id}", markup=False)
            self._named = True
        self._progress.update(
            self._task,
            description=state,
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

    def reading(self, count: int) -> None:
        """(An execution's input is planned before it starts.)"""


LIVE: dict[str, type[RunProgress] | type[AwsProgress]] = {"local": RunProgress, "aws": AwsProgress}


def live_progress(backend: str, console: Console) -> RunProgress | AwsProgress:
    """The progress bar that suits `backend`'s runs (a local run's for a new engine)."""
    return LIVE.get(backend, RunProgress)(console)
