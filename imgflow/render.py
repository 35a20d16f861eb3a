"""Rendering: rich tables, live progress and JSON documents. Pure data in, text out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import IO, Any

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
from rich.table import Table

from imgflow.engine.politeness import Change
from imgflow.engine.records import Outcome, ResultRecord, Summary

TABLE_ROWS = 500
_STYLE = {
    Outcome.STORED: "green",
    Outcome.UPDATED: "green",
    Outcome.SKIPPED: "cyan",
    Outcome.UNCHANGED: "cyan",
    Outcome.FAILED: "red",
}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 image``, ``2 images``, ``1,000 batches`` (`many` when adding an s is wrong)."""
    word = noun if count == 1 else (many or noun + "s")
    return f"{count:,} {word}"


def show_table(summary: Summary) -> bool:
    """A per-image table is worth printing: a small run, or a large one with failures.

    Past TABLE_ROWS rows the table lists only failures, so a large run without any is
    the summary line alone.
    """
    return summary.total <= TABLE_ROWS or summary.failed > 0


def summary_line(summary: Summary, duplicates: int = 0, elapsed: float | None = None) -> str:
    """``101 images: 100 stored, 0 skipped, 1 failed`` (+ duplicates and time).

    After a revalidation: ``6 images: 1 stored (1 updated), 5 skipped (5 unchanged), ...``.
    """
    stored = f"{summary.stored:,} stored"
    if summary.updated:
        stored += f" ({summary.updated:,} updated)"
    skipped = f"{summary.skipped:,} skipped"
    if summary.unchanged:
        skipped += f" ({summary.unchanged:,} unchanged)"
    text = f"{plural(summary.total, 'image')}: {stored}, {skipped}, {summary.failed:,} failed"
    if duplicates:
        text += f" ({plural(duplicates, 'duplicate path')} fetched once)"
    if elapsed is not None:
        text += f" in {elapsed:.1f}s"
    return text


def results_table(records: Iterable[ResultRecord], total: int, title: str | None = None) -> Table:
    """The per-image table. Past TABLE_ROWS rows only failures are listed."""
    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("url", overflow="fold")
    table.add_column("outcome")
    table.add_column("status", justify="right")
    table.add_column("key / error", overflow="fold")
    table.add_column("bytes", justify="right")
    only_failures = total > TABLE_ROWS
    shown = 0
    for record in records:
        if only_failures and record.outcome is not Outcome.FAILED:
            continue
        if shown >= TABLE_ROWS:
            break
        shown += 1
        style = _STYLE[record.outcome]
        table.add_row(
            record.url,
            f"[{style}]{record.outcome.value}[/]",
            "" if record.status_code is None else str(record.status_code),
            record.error if record.outcome is Outcome.FAILED else (record.key or ""),
            "" if record.bytes is None else f"{record.bytes:,}",
        )
    if only_failures:
        table.caption = (
            f"{plural(total, 'image')}: only failures are listed here (at most {TABLE_ROWS}); "
            "use --output json for every record"
        )
    return table


def camel_keys(value: Any) -> Any:
    """`value` with every mapping key in camelCase (``api_url`` -> ``apiUrl``), the one
    key style of imgflow's JSON output (as in the original job body: ``baseUrl``)."""
    if isinstance(value, dict):
        return {_camel(str(k)): camel_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [camel_keys(v) for v in value]
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def write_json(
    out: IO[str],
    run_id: str,
    backend: str,
    summary: Summary,
    records: Iterable[ResultRecord],
    extra: dict[str, Any] | None = None,
) -> None:
    """One JSON object, streamed record by record so huge runs stay small in memory."""
    head: dict[str, Any] = {"run": run_id, "backend": backend, "summary": summary.to_json()}
    if extra:
        head.update(extra)
    text = json.dumps(head)
    out.write(text[:-1] + ', "results": [')
    for i, record in enumerate(records):
        out.write((", " if i else "") + json.dumps(record.to_json()))
    out.write("]}\n")


def json_document(
    run_id: str, backend: str, summary: Summary, records: Iterable[ResultRecord]
) -> dict[str, Any]:
    """The `--output json` document as a dict (for small runs and tests)."""
    return {
        "run": run_id,
        "backend": backend,
        "summary": summary.to_json(),
        "results": [r.to_json() for r in records],
    }


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
            refresh_per_second=8,
        )
        self._task: TaskID | None = None
        self._done = 0
        self._bytes = 0

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
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
        elapsed = max(time.monotonic() - self.started, 1e-6)
        self._progress.update(
            self._task,
            advance=1,
            failed=self.failed,
            rate=f"{self._done / elapsed:,.0f} img/s",
            size=human_bytes(self._bytes),
        )


def throttle_line(throttles: Mapping[str, int]) -> str | None:
    """``throttled by img.example.com 12 times`` for the hosts that throttled a run."""
    if not throttles:
        return None
    parts = [f"{host} {plural(count, 'time')}" for host, count in sorted(throttles.items())]
    return "throttled by " + ", ".join(parts) + " (and slowed down for it)"


def human_bytes(size: int) -> str:
    """``1.5 MiB`` style sizes."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
