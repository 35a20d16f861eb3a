"""One run on the terminal: its table and summary line, or its JSON document."""

from __future__ import annotations

import sys

from imgflow.backends.base import RunView
from imgflow.documents.run import write_json
from imgflow.documents.text import summary_line, throttle_line
from imgflow.ui.console import err, out, warning
from imgflow.ui.tables import TABLE_ROWS, results_table, show_table


def show_run(view: RunView, as_json: bool) -> None:
    """The run on stdout, then what stderr should say about how it went."""
    if as_json:
        extra = {"state": view.state, **view.extra, "duplicates": view.duplicates}
        write_json(sys.stdout, view.id, view.backend, view.summary, view.records(False), extra)
    else:
        summary = view.summary
        if show_table(summary):
            # past TABLE_ROWS the table lists only failures
            records = view.records(summary.total > TABLE_ROWS)
            out.print(results_table(records, summary.total, title=view.title))
        line = summary_line(summary, view.duplicates, view.elapsed)
        out.print(line + f" [{view.state}]", markup=False)
        for note in view.notes:
            out.print(note, markup=False)
    if view.ended is not None:
        err.print(view.ended)
    throttled = throttle_line(view.throttles)
    if throttled is not None:
        err.print(throttled, markup=False)
    if view.failures_file is not None:
        err.print(f"failures: {view.failures_file}")
    if view.failures_problem:
        warning(view.failures_problem)
    if view.notify_problem:
        warning(view.notify_problem)
