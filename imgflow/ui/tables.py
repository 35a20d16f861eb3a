"""Tables: a run's per-image results and listings of recent runs, fitted to the terminal."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text

from imgflow.documents.listing import COUNTS, Listing
from imgflow.documents.text import plural
from imgflow.engine.records import Outcome, ResultRecord, Summary
from imgflow.ui.fit import Cell, Column, fitted

TABLE_ROWS = 500
_STYLE = {
    Outcome.STORED: "green",
    Outcome.UPDATED: "green",
    Outcome.SKIPPED: "cyan",
    Outcome.UNCHANGED: "cyan",
    Outcome.FAILED: "red",
}
_RESULTS = (
    Column("url", shrink=True, overflow="fold"),
    Column("outcome", keep=2),
    Column("status", justify="right"),
    Column("key / error", shrink=True, overflow="fold"),  # (failures only: "error")
    Column("bytes", keep=1, justify="right"),
)
# recent runs: the id, its state and counts stay; the rest goes first at 80 columns
_KEEP = {"base url": 5, "started": 4, "retry of": 3, "skipped": 2, "stored": 1}


def results_table(
    records: Iterable[ResultRecord],
    width: int,
    title: str | None = None,
    caption: str = "",
    failures_only: bool = False,
) -> Table:
    """The per-image table of `records` (at most TABLE_ROWS of them); of failures only,
    without the outcome and bytes columns."""
    rows: list[list[Cell]] = []
    for record in records:
        if len(rows) >= TABLE_ROWS:
            caption = f"only the first {TABLE_ROWS} rows; --output json lists every record"
            break
        rows.append(
            [
                record.url,
                Text(record.outcome.value, style=_STYLE[record.outcome]),
                "" if record.status_code is None else str(record.status_code),
                (record.error if record.outcome is Outcome.FAILED else record.key) or "",
                "" if record.bytes is None else f"{record.bytes:,}",
            ]
        )
    if failures_only:
        kept = (0, 2, 3)
        return fitted(
            [_RESULTS[i] for i in kept],
            [[row[i] for i in kept] for row in rows],
            width,
            title,
            caption or None,
        )
    return fitted(_RESULTS, rows, width, title, caption or None)


def omitted(summary: Summary) -> str:
    """What the failures-only table leaves out, and how to list it."""
    shown = summary.total - summary.failed
    return f"{plural(shown, 'stored or skipped image')} not listed (--all lists them)"


def listing_table(listing: Listing, width: int) -> Table:
    """Recent runs as a table, newest first, their counts once known (an ``excluded``
    column when a listed run had images its sites kept out)."""
    excluded = any(row.summary is not None and row.summary.excluded for row in listing.rows)
    counts = (*COUNTS, "excluded") if excluded else COUNTS
    columns = [
        Column(
            name,
            keep=_KEEP.get(name, 0),
            shrink=name == "base url",
            justify="right" if name in counts else "left",
        )
        for name in (*listing.columns, *counts)
    ]
    rows = [[*row.cells, *_counts(row.summary, excluded, row.planned)] for row in listing.rows]
    return fitted(columns, rows, width, listing.title)


def _counts(summary: Summary | None, excluded: bool = False, planned: bool = True) -> list[str]:
    if summary is None:
        return [""] * (5 if excluded else 4)
    numbers = [summary.total, summary.stored, summary.skipped, summary.failed]
    if excluded:
        numbers.append(summary.excluded)
    cells = [f"{n:,}" for n in numbers]
    return cells if planned else ["?", *cells[1:]]  # (a total not known yet)
