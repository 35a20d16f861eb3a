"""Listings of recent runs: local runs (SQLite) and aws executions, as tables or JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from imgflow.aws.job_list import ExecutionRow
    from imgflow.engine.records import Summary
    from imgflow.local.index import RunInfo

COUNTS = ("total", "stored", "skipped", "failed")


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _counts(summary: Summary | None) -> list[str]:
    if summary is None:
        return ["", "", "", ""]
    return [str(summary.total), str(summary.stored), str(summary.skipped), str(summary.failed)]


def runs_json(runs: Sequence[RunInfo], parents: Mapping[str, str]) -> str:
    """``{"runs": [...]}``, newest first; a retry names its parent run."""
    rows = [
        {
            "run": r.id,
            "backend": r.backend,
            "state": r.state,
            "baseUrl": r.base_url,
            "started": _utc(r.started_at),
            "parent": parents.get(r.id),
            "summary": r.summary.to_json(),
        }
        for r in runs
    ]
    return json.dumps({"runs": rows})


def runs_table(runs: Sequence[RunInfo], parents: Mapping[str, str], title: str) -> Table:
    """The local runs as a table, newest first."""
    table = Table(title=title)
    for column in ("run", "state", "started", "base url", "retry of", *COUNTS):
        table.add_column(column)
    for r in runs:
        table.add_row(
            r.id,
            r.state,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at)),
            r.base_url,
            parents.get(r.id, ""),
            *_counts(r.summary),
        )
    return table


def executions_json(rows: Sequence[ExecutionRow]) -> str:
    """``{"executions": [...]}``, newest first; counts once an execution has ended."""
    items: list[dict[str, Any]] = [
        {
            "name": r.name,
            "executionArn": r.arn,
            "state": r.status.lower(),
            "started": _utc(r.started.timestamp()),
            "stopped": None if r.stopped is None else _utc(r.stopped.timestamp()),
            "parent": r.parent,
            "summary": None if r.summary is None else r.summary.to_json(),
        }
        for r in rows
    ]
    return json.dumps({"executions": items})


def executions_table(rows: Sequence[ExecutionRow], deployment: str) -> Table:
    """The executions as a table, newest first."""
    table = Table(title=f"recent executions of {deployment}")
    for column in ("execution", "state", "started", "retry of", *COUNTS):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.name,
            r.status.lower(),
            r.started.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            r.parent or "",
            *_counts(r.summary),
        )
    return table
