"""Listings of recent runs: each backend's rows as JSON objects and as table cells.

A backend lists its runs as a `Listing` (newest first); the command line prints it as a
table or as ``{"<key>": [...]}``. Local runs come from SQLite, aws executions from Step
Functions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgflow.engine.records import Summary

if TYPE_CHECKING:
    from imgflow.aws.job_list import ExecutionRow
    from imgflow.local.index import RunInfo

COUNTS = ("total", "stored", "skipped", "failed")


@dataclass(frozen=True)
class ListedRun:
    """One run of a listing: its table cells (before the counts) and its JSON object."""

    cells: tuple[str, ...]
    summary: Summary | None  # None while an execution runs
    document: dict[str, Any]
    planned: bool = True  # False: stopped (or still) reading its input, the total unknown


@dataclass(frozen=True)
class Listing:
    """Recent runs of one backend, newest first."""

    title: str
    key: str  # the JSON document's one key: "runs" or "executions"
    columns: tuple[str, ...]  # the table's columns before the counts
    rows: Sequence[ListedRun]

    def to_json(self) -> str:
        """``{"<key>": [...]}``."""
        return json.dumps({self.key: [row.document for row in self.rows]})


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def local_runs(runs: Sequence[RunInfo], parents: dict[str, str], title: str) -> Listing:
    """The local runs; a retry names its parent run."""
    rows = [
        ListedRun(
            (
                r.id,
                r.state,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at)),
                r.base_url or "",  # a source of full URLs has none
                parents.get(r.id, ""),
            ),
            r.summary,
            {
                "run": r.id,
                "backend": r.backend,
                "state": r.state,
                "baseUrl": r.base_url,
                "startedAt": _utc(r.started_at),
                "parent": parents.get(r.id),
                "summary": r.summary.to_json() | ({} if r.planned else {"total": None}),
                **({} if r.planned else {"planned": False}),
            },
            r.planned,
        )
        for r in runs
    ]
    return Listing(title, "runs", ("run", "state", "started", "base url", "retry of"), rows)


def executions(rows: Sequence[ExecutionRow], deployment: str) -> Listing:
    """The executions of a deployment; counts once an execution has ended."""
    listed = [
        ListedRun(
            (
                r.name,
                r.status.lower(),
                r.started.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                r.parent or "",
            ),
            r.summary,
            {
                "name": r.name,
                "executionArn": r.arn,
                "state": r.status.lower(),
                "startedAt": _utc(r.started.timestamp()),
                "stoppedAt": None if r.stopped is None else _utc(r.stopped.timestamp()),
                "parent": r.parent,
                "summary": None if r.summary is None else r.summary.to_json(),
            },
        )
        for r in rows
    ]
    title = f"recent executions of {deployment}"
    return Listing(title, "executions", ("execution", "state", "started", "retry of"), listed)
