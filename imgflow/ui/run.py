"""One run on the terminal: its failures (or every row), summary line and next commands, or
its JSON document."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from imgflow.backends.base import RunView
from imgflow.documents.run import write_json
from imgflow.documents.text import summary_line, throttle_line
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.ui.console import err, out, warning


def show_run(view: RunView, as_json: bool, all_rows: bool = False) -> None:
    """The run on stdout, then what stderr should say about how it went.

    The table lists the failures, then (with `all_rows`) every other image; without
    failures and `all_rows` the summary line stands alone.
    """
    if as_json:
        extra = {"state": view.state, **view.extra, "duplicates": view.duplicates}
        write_json(sys.stdout, view.id, view.backend, view.summary, view.records(False), extra)
    else:
        summary = view.summary
        if summary.failed or all_rows:
            from imgflow.ui.tables import omitted, results_table  # (rich's tables: here only)

            caption = "" if all_rows or summary.failed == summary.total else omitted(summary)
            rows = _rows(view, all_rows)
            table = results_table(rows, out.width, view.title, caption, not all_rows)
            out.print(table)
        else:
            out.print(view.title, markup=False)
        line = summary_line(summary, view.duplicates, view.elapsed)
        out.print(line + f" [{view.state}]", markup=False)
        for note in view.notes:
            out.print(note, markup=False)
    if view.ended is not None:
        err.print(view.ended)
    throttled = throttle_line(view.throttles, view.summary.total)
    if throttled is not None:
        err.print(throttled, markup=False)
    if view.failures_file is not None:
        err.print(f"failures: {view.failures_file}")
    if view.failures_problem:
        warning(view.failures_problem)
    if view.notify_problem:
        warning(view.notify_problem)
    for line in next_steps(view):
        err.print(line, markup=False)


def next_steps(view: RunView) -> list[str]:
    """The commands that come next after a run with failures."""
    if not view.summary.failed:
        return []
    target = str(view.extra.get("executionArn") or view.id)  # (an ARN names its backend)
    return [
        f"retry the failures:  imgflow retry {target}",
        f"see them on a page:  imgflow report {target}",
    ]


def _rows(view: RunView, all_rows: bool) -> Iterator[ResultRecord]:
    """The failures first, then (with `all_rows`) the other records."""
    yield from (r for r in view.records(True) if r.outcome is Outcome.FAILED)
    if all_rows:
        yield from (r for r in view.records(False) if r.outcome is not Outcome.FAILED)
