"""Tables: a run's per-image results and listings of recent runs."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table

from imgflow.documents.listing import COUNTS, Listing
from imgflow.documents.text import plural
from imgflow.engine.records import Outcome, ResultRecord, Summary

TABLE_ROWS = 500
_STYLE = {
    Outcome.STORED: "green",
    Outcome.UPDATED: "green",
    Outcome.SKIPPED: "cyan",
    Outcome.UNCHANGED: "cyan",
    Outcome.FAILED: "red",
}


def show_table(summary: Summary) -> bool:
    """A per-image table is worth printing: a small run, or a large one with failures.

    Past TABLE_ROWS rows the table lists only failures, so a large run without any is
    the summary line alone.
    """
    return summary.total <= TABLE_ROWS or summary.failed > 0


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


def listing_table(listing: Listing) -> Table:
    """Recent runs as a table, newest first, their counts once known."""
    table = Table(title=listing.title)
    for column in (*listing.columns, *COUNTS):
        table.add_column(column)
    for row in listing.rows:
        table.add_row(*row.cells, *_counts(row.summary))
    return table


def _counts(summary: Summary | None) -> list[str]:
    if summary is None:
        return ["", "", "", ""]
    return [str(summary.total), str(summary.stored), str(summary.skipped), str(summary.failed)]
